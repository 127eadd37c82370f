package delivery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoAPI is the part of the DynamoDB client a Ledger uses: the three actions the dispatch
// function is granted on the table.
type DynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// The table's layout.
const (
	KeyAttribute     = "key"       // partition key (string): order.IdempotencyKey
	ExpiresAttribute = "expiresAt" // TTL attribute, Unix seconds

	attrState       = "state"       // StateSending or StateDelivered
	attrToken       = "token"       // the claim holding the record
	attrLease       = "leaseUntil"  // end of a sending claim's lease, Unix milliseconds
	attrOrderID     = "orderId"     // for people reading the table
	attrClaims      = "claims"      // how many claims the record has had
	attrDeliveredAt = "deliveredAt" // RFC 3339 UTC
)

// Record states.
const (
	StateSending   = "sending"
	StateDelivered = "delivered"
)

// RecordTTL is how long a record lives after its last write: two retention periods (a copy on
// the orders queue, then parked on the orders DLQ and redriven as a new message) and two days.
const RecordTTL = 30 * 24 * time.Hour

// ErrDelivered is returned by Claim when the order was delivered already.
var ErrDelivered = errors.New("order delivered already")

// HeldError is returned by Claim when another sender holds a live claim on the key.
type HeldError struct {
	Until time.Time // the end of that claim's lease
}

func (e *HeldError) Error() string {
	return "order being sent by another instance until " + e.Until.UTC().Format(time.RFC3339Nano)
}

// Claim is a held claim on one key.
type Claim struct {
	Key   string
	Token string
	// Repeat: the claim took over a record whose lease had ended without a mark (a sender that
	// crashed after its claim, or whose request got no answer). That sender may have reached the
	// API, so the PUT made under this claim may repeat it.
	Repeat bool
	Claims int // claims on the record, this one included
}

// Ledger reads and writes delivery records in one DynamoDB table. Build it with New.
type Ledger struct {
	client DynamoAPI
	table  string
	now    func() time.Time
	mu     sync.Mutex // serializes writes (see the package doc)
}

// New returns a Ledger on the named table. now is its clock (nil: time.Now); leases are compared
// against it, so the instances sharing a table need clocks that agree to well under a lease.
func New(client DynamoAPI, table string, now func() time.Time) *Ledger {
	if now == nil {
		now = time.Now
	}
	return &Ledger{client: client, table: table, now: now}
}

// Claim claims key for a PUT of order id, with a lease until leaseUntil. It returns ErrDelivered,
// a *HeldError, or a wrapped store error when the claim was not taken.
func (l *Ledger) Claim(ctx context.Context, key, id string, leaseUntil time.Time) (Claim, error) {
	token, err := newToken()
	if err != nil {
		return Claim{}, err
	}
	now := l.now()
	l.mu.Lock()
	out, err := l.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(l.table),
		Key:                 keyOf(key),
		UpdateExpression:    aws.String("SET #s = :sending, #tok = :tok, #lease = :lease, #exp = :exp, #oid = :oid ADD #claims :one"),
		ConditionExpression: aws.String("attribute_not_exists(#k) OR (#s = :sending AND #lease < :now)"),
		ExpressionAttributeNames: map[string]string{"#k": KeyAttribute, "#s": attrState, "#tok": attrToken,
			"#lease": attrLease, "#exp": ExpiresAttribute, "#oid": attrOrderID, "#claims": attrClaims},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":sending": str(StateSending), ":tok": str(token), ":lease": num(leaseUntil.UnixMilli()),
			":exp": num(now.Add(RecordTTL).Unix()), ":oid": str(id), ":one": num(1), ":now": num(now.UnixMilli()),
		},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	l.mu.Unlock()
	var failed *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &failed):
		return Claim{}, l.refusal(ctx, key, failed.Item)
	case err != nil:
		return Claim{}, fmt.Errorf("claim delivery record %s: %w", key, err)
	}
	claims := intOf(out.Attributes[attrClaims])
	return Claim{Key: key, Token: token, Repeat: claims > 1, Claims: claims}, nil
}

// refusal says why a claim's condition failed, from the record the failure returned (read again
// when the store returned none).
func (l *Ledger) refusal(ctx context.Context, key string, item map[string]types.AttributeValue) error {
	if item == nil {
		out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.table), Key: keyOf(key), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return fmt.Errorf("read delivery record %s: %w", key, err)
		}
		item = out.Item
	}
	if s, ok := item[attrState].(*types.AttributeValueMemberS); ok && s.Value == StateDelivered {
		return ErrDelivered
	}
	// sending with a live lease (or, read after the failure, a record gone or expired since: the
	// copy comes back at once and claims then).
	return &HeldError{Until: time.UnixMilli(int64(intOf(item[attrLease])))}
}

// Delivered marks the claimed key delivered. It writes whatever the record holds now: the API
// accepted the order.
func (l *Ledger) Delivered(ctx context.Context, c Claim) error {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(l.table),
		Key:                      keyOf(c.Key),
		UpdateExpression:         aws.String("SET #s = :delivered, #at = :at, #exp = :exp REMOVE #lease"),
		ExpressionAttributeNames: map[string]string{"#s": attrState, "#at": attrDeliveredAt, "#exp": ExpiresAttribute, "#lease": attrLease},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":delivered": str(StateDelivered), ":at": str(now.UTC().Format(time.RFC3339Nano)), ":exp": num(now.Add(RecordTTL).Unix()),
		},
	})
	if err != nil {
		return fmt.Errorf("mark delivery record %s delivered: %w", c.Key, err)
	}
	return nil
}

// Release deletes the record if c still holds it: no request went out, or the API answered and
// did not take the order. A record held by another claim since is left alone.
func (l *Ledger) Release(ctx context.Context, c Claim) error {
	cond, names, values := heldBy(c)
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(l.table), Key: keyOf(c.Key),
		ConditionExpression: cond, ExpressionAttributeNames: names, ExpressionAttributeValues: values})
	return ignoreLost("release", c.Key, err)
}

// Abandon ends c's lease now: the request went out and no answer came, so the API may have the
// order; the next claim may send again and is a Repeat. A record held by another claim since is
// left alone.
func (l *Ledger) Abandon(ctx context.Context, c Claim) error {
	cond, names, values := heldBy(c)
	names["#lease"], values[":now"] = attrLease, num(l.now().UnixMilli()-1)
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(l.table), Key: keyOf(c.Key),
		UpdateExpression: aws.String("SET #lease = :now"), ConditionExpression: cond,
		ExpressionAttributeNames: names, ExpressionAttributeValues: values})
	return ignoreLost("abandon", c.Key, err)
}

// heldBy is the condition that c still holds its record.
func heldBy(c Claim) (*string, map[string]string, map[string]types.AttributeValue) {
	return aws.String("#tok = :tok AND #s = :sending"),
		map[string]string{"#tok": attrToken, "#s": attrState},
		map[string]types.AttributeValue{":tok": str(c.Token), ":sending": str(StateSending)}
}

// ignoreLost treats a failed condition (the claim is no longer held) as done.
func ignoreLost(op, key string, err error) error {
	var failed *types.ConditionalCheckFailedException
	if err == nil || errors.As(err, &failed) {
		return nil
	}
	return fmt.Errorf("%s delivery record %s: %w", op, key, err)
}

func keyOf(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{KeyAttribute: str(key)}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// intOf is a number attribute's value, 0 when absent or not a whole number.
func intOf(v types.AttributeValue) int {
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		return 0
	}
	i, err := strconv.Atoi(n.Value)
	if err != nil {
		return 0
	}
	return i
}

func newToken() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("claim token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

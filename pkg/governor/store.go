package governor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// MemoryStore is a Store in this process: instances sharing one MemoryStore share one schedule.
// The zero value is an empty store, ready to use and safe for concurrent use.
type MemoryStore struct {
	mu sync.Mutex
	st State
}

// Load returns the record (the zero State when none was saved).
func (m *MemoryStore) Load(context.Context) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st, nil
}

// Save writes next if the record still has version prev.
func (m *MemoryStore) Save(_ context.Context, next State, prev int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Version != max(prev, 0) {
		return ErrConflict
	}
	m.st = next
	return nil
}

// Advance takes a slot if the record is as a expects (see Advancer).
func (m *MemoryStore) Advance(_ context.Context, a Advance) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := a.take(m.st)
	if !ok {
		return State{}, ErrConflict
	}
	m.st = st
	return st, nil
}

// DynamoAPI is the part of the DynamoDB client the store uses: GetItem and UpdateItem only,
// the two actions the dispatch function is granted on the table.
type DynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// KeyAttribute is the table's partition key (a string); DefaultKey is the order API's record.
const (
	KeyAttribute = "pk"
	DefaultKey   = "order-api"
)

// Attribute names of the record. Times are Unix nanoseconds.
const (
	attrVersion  = "v"
	attrLast     = "last"
	attrLate     = "late"
	attrBy       = "by"
	attrRate     = "rate"
	attrGood     = "good"
	attrRun      = "run"
	attrCutAt    = "cutAt"
	attrRaisedAt = "raisedAt"
	attrThrottle = "throttledAt"
	attrPaused   = "pausedUntil"
	attrPolicy   = "policy"
	attrFailures = "failures"
	attrOpenedAt = "openedAt"
	attrProbeAt  = "probeAt"
)

// DynamoStore keeps the record as one item of a DynamoDB table, read with a strongly consistent
// GetItem and written with an UpdateItem conditional on its version; Advance takes a slot with
// one UpdateItem whose condition is the expected record. Safe for concurrent use.
//
// Within one process the Governors sharing a DynamoStore take turns (it is a Locker): each
// read-modify-write runs alone, so they never conflict with each other, and the local stand-in,
// which checks a condition and writes without a lock (two concurrent conditional UpdateItems on
// one item both succeeded there), sees one write at a time. Across processes the conditional
// write keeps the guarantee, as DynamoDB applies it atomically; in Lambda a process runs one
// invocation at a time, so the turns cost nothing there.
type DynamoStore struct {
	client DynamoAPI
	table  string
	key    string
	mu     sync.Mutex // held by a Governor across its read-modify-write (Lock, Unlock)
}

// Lock and Unlock make the Governors of this process take turns (sync.Locker).
func (d *DynamoStore) Lock()   { d.mu.Lock() }
func (d *DynamoStore) Unlock() { d.mu.Unlock() }

// NewDynamoStore returns a store of the item key ("" means DefaultKey) in table.
func NewDynamoStore(client DynamoAPI, table, key string) *DynamoStore {
	if key == "" {
		key = DefaultKey
	}
	return &DynamoStore{client: client, table: table, key: key}
}

func (d *DynamoStore) itemKey() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{KeyAttribute: &types.AttributeValueMemberS{Value: d.key}}
}

// Load reads the item. Attributes of the wrong type or unparsable are ErrCorrupt.
func (d *DynamoStore) Load(ctx context.Context) (State, error) {
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(d.table), Key: d.itemKey(), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return State{}, fmt.Errorf("get governor item %s/%s: %w", d.table, d.key, err)
	}
	if len(out.Item) == 0 {
		return State{}, nil
	}
	return decode(out.Item)
}

// decode reads an item; a missing attribute is its zero value, except the version.
func decode(item map[string]types.AttributeValue) (State, error) {
	var bad []string
	num := func(name string) float64 {
		a, ok := item[name]
		if !ok {
			return 0
		}
		n, isNum := a.(*types.AttributeValueMemberN)
		if !isNum {
			bad = append(bad, name)
			return 0
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			bad = append(bad, name)
		}
		return f
	}
	tm := func(name string) time.Time {
		a, ok := item[name]
		if !ok {
			return time.Time{}
		}
		n, isNum := a.(*types.AttributeValueMemberN)
		var ns int64
		var err error
		if isNum {
			ns, err = strconv.ParseInt(n.Value, 10, 64)
		}
		if !isNum || err != nil || ns < 0 {
			bad = append(bad, name)
			return time.Time{}
		}
		if ns == 0 {
			return time.Time{}
		}
		return time.Unix(0, ns)
	}
	st := State{Version: -1}
	if v, ok := item[attrVersion].(*types.AttributeValueMemberN); ok {
		if n, err := strconv.ParseInt(v.Value, 10, 64); err == nil && n > 0 {
			st.Version = n
		}
	}
	if st.Version < 0 {
		bad = append(bad, attrVersion)
	}
	st.Last, st.Late, st.CutAt, st.RaisedAt, st.ThrottledAt = tm(attrLast), tm(attrLate), tm(attrCutAt), tm(attrRaisedAt), tm(attrThrottle)
	st.PausedUntil, st.OpenedAt, st.ProbeAt = tm(attrPaused), tm(attrOpenedAt), tm(attrProbeAt)
	st.Rate, st.Good, st.Policy = num(attrRate), num(attrGood), num(attrPolicy)
	st.Failures, st.Run = int(num(attrFailures)), int(num(attrRun))
	if by, ok := item[attrBy]; ok {
		if s, isStr := by.(*types.AttributeValueMemberS); isStr {
			st.By = s.Value
		} else {
			bad = append(bad, attrBy)
		}
	}
	if st.Rate < 0 || st.Good < 0 || st.Policy < 0 || st.Failures < 0 || st.Run < 0 {
		bad = append(bad, "negative value")
	}
	if len(bad) > 0 {
		return st, fmt.Errorf("%w: %v", ErrCorrupt, bad)
	}
	return st, nil
}

// Save writes every attribute of next with one UpdateItem, conditional on the stored version:
// absent item (prev 0), the version prev, or an unusable version (prev -1).
func (d *DynamoStore) Save(ctx context.Context, next State, prev int64) error {
	values := map[string]types.AttributeValue{}
	names := map[string]string{}
	set := ""
	put := func(attr string, v types.AttributeValue) {
		ph := strconv.Itoa(len(values))
		names["#a"+ph] = attr
		values[":v"+ph] = v
		if set != "" {
			set += ", "
		}
		set += "#a" + ph + " = :v" + ph
	}
	n := func(s string) types.AttributeValue { return &types.AttributeValueMemberN{Value: s} }
	f := func(x float64) types.AttributeValue { return n(strconv.FormatFloat(x, 'g', -1, 64)) }
	t := func(x time.Time) types.AttributeValue {
		if x.IsZero() {
			return n("0")
		}
		return n(strconv.FormatInt(x.UnixNano(), 10))
	}
	put(attrVersion, n(strconv.FormatInt(next.Version, 10)))
	put(attrLast, t(next.Last))
	put(attrLate, t(next.Late))
	put(attrBy, &types.AttributeValueMemberS{Value: next.By})
	put(attrRate, f(next.Rate))
	put(attrGood, f(next.Good))
	put(attrRun, n(strconv.Itoa(next.Run)))
	put(attrCutAt, t(next.CutAt))
	put(attrRaisedAt, t(next.RaisedAt))
	put(attrThrottle, t(next.ThrottledAt))
	put(attrPaused, t(next.PausedUntil))
	put(attrPolicy, f(next.Policy))
	put(attrFailures, n(strconv.Itoa(next.Failures)))
	put(attrOpenedAt, t(next.OpenedAt))
	put(attrProbeAt, t(next.ProbeAt))

	// The version is #a0 (put first above).
	var cond string
	switch {
	case prev == 0:
		cond = "attribute_not_exists(#pk)"
		names["#pk"] = KeyAttribute
	case prev < 0:
		cond = "attribute_exists(#pk) AND (attribute_not_exists(#a0) OR NOT attribute_type(#a0, :numType) OR #a0 <= :zero)"
		names["#pk"] = KeyAttribute
		values[":numType"] = &types.AttributeValueMemberS{Value: "N"}
		values[":zero"] = n("0")
	default:
		cond = "#a0 = :prev"
		values[":prev"] = n(strconv.FormatInt(prev, 10))
	}
	_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       d.itemKey(),
		UpdateExpression:          aws.String("SET " + set),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		return fmt.Errorf("save governor item %s/%s: %w", d.table, d.key, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("save governor item %s/%s: %w", d.table, d.key, err)
	}
	return nil
}

// Advance takes a slot with one UpdateItem (ReturnValues ALL_NEW) conditional on the record
// being as a expects, trying the busy case (Late + Gap) first when a.Busy, else the idle one
// (Now), then the other. DynamoDB evaluates every action of an update expression on the item
// as it was before the update, so the busy case sets last = late + Gap and late = late + Gap +
// Margin in one write. DynamoDB applies the condition and the write atomically, so two
// Advances never take the same slot; the version goes up by one, so a read-modify-write that
// read before it conflicts.
func (d *DynamoStore) Advance(ctx context.Context, a Advance) (State, error) {
	n := func(x int64) types.AttributeValue {
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(x, 10)}
	}
	f := func(x float64) types.AttributeValue {
		return &types.AttributeValueMemberN{Value: strconv.FormatFloat(x, 'g', -1, 64)}
	}
	names := map[string]string{"#v": attrVersion, "#last": attrLast, "#late": attrLate, "#by": attrBy, "#rate": attrRate,
		"#policy": attrPolicy, "#opened": attrOpenedAt, "#paused": attrPaused}
	expect := "#v >= :one AND #late >= #last AND #rate = :rate AND #policy = :policy AND #opened = :zero AND "
	cases := []struct{ set, cond string }{
		{"#last = #late + :gap, #late = #late + :gapm", "#late >= :lo AND #late <= :hi AND #paused <= #last"}, // busy
		{"#last = :now, #late = :nowm", "#late < :lo AND #paused <= :now"},                                    // idle
	}
	if !a.Busy {
		cases[0], cases[1] = cases[1], cases[0]
	}
	for _, c := range cases {
		values := map[string]types.AttributeValue{":one": n(1), ":rate": f(a.Rate), ":policy": f(a.Policy), ":zero": n(0),
			":by": &types.AttributeValueMemberS{Value: a.By}}
		if strings.Contains(c.cond, ":lo") {
			values[":lo"] = n(a.Now.Add(-a.Gap).UnixNano())
		}
		if strings.Contains(c.set, ":gap") {
			values[":gap"], values[":hi"] = n(int64(a.Gap)), n(a.Latest.Add(-a.Gap).UnixNano())
			values[":gapm"] = n(int64(a.Gap + a.Margin))
		} else {
			if a.Now.After(a.Latest) {
				continue
			}
			values[":now"], values[":nowm"] = n(a.Now.UnixNano()), n(a.Now.Add(a.Margin).UnixNano())
		}
		out, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(d.table),
			Key:                       d.itemKey(),
			UpdateExpression:          aws.String("SET " + c.set + ", #v = #v + :one, #by = :by"),
			ConditionExpression:       aws.String(expect + c.cond),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: values,
			ReturnValues:              types.ReturnValueAllNew,
		})
		var failed *types.ConditionalCheckFailedException
		if errors.As(err, &failed) {
			continue
		}
		if err != nil {
			return State{}, fmt.Errorf("advance governor item %s/%s: %w", d.table, d.key, err)
		}
		return decode(out.Attributes)
	}
	return State{}, fmt.Errorf("advance governor item %s/%s: %w", d.table, d.key, ErrConflict)
}

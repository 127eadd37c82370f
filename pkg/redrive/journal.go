package redrive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// States of a Move record.
const (
	// MoveSending is written before the SendMessage: the move is about to happen, or happened
	// and its run ended before it could write MoveSent.
	MoveSending = "sending"
	// MoveSent is written after the SendMessage succeeded and before the DeleteMessage: a DLQ
	// message with this record is already on the orders queue.
	MoveSent = "sent"
)

// Move is the audit record of one selective move, keyed by the parked message's id in the DLQ.
type Move struct {
	MessageID string    `json:"messageId"` // in the DLQ
	OrderID   string    `json:"orderId,omitempty"`
	Class     string    `json:"class"`
	Source    string    `json:"source,omitempty"`
	Line      int       `json:"line,omitempty"`
	Operator  string    `json:"operator"` // Request.Operator
	State     string    `json:"state"`    // MoveSending or MoveSent
	At        time.Time `json:"at"`       // when MoveSending was written
	// SentMessageID is the id of the copy on the orders queue, once State is MoveSent.
	SentMessageID string    `json:"sentMessageId,omitempty"`
	SentAt        time.Time `json:"sentAt,omitzero"`
	// Resends counts the earlier runs that recorded MoveSending for this message and ended
	// before MoveSent: each may have put a copy on the orders queue, so this move may repeat
	// one (dispatch's delivery record keeps a delivered order from a second PUT). FirstAt is
	// when the first of them was recorded. The record stays one per DLQ message.
	Resends int       `json:"resends,omitempty"`
	FirstAt time.Time `json:"firstAt,omitzero"`
}

// Journal keeps the Move records. The selective move writes a record before each send and
// reads it back when it meets the same DLQ message again, so a run that ended between a send
// and its delete (a crash, a timeout, a failed delete) costs neither a lost nor a duplicated
// order. Implementations must be safe for concurrent use and durable once Put returns.
type Journal interface {
	// Put stores m under m.MessageID, replacing an earlier record of that message.
	Put(ctx context.Context, m Move) error
	// Get returns the record of DLQ message id; ok is false when there is none.
	Get(ctx context.Context, messageID string) (m Move, ok bool, err error)
}

// DefaultJournalPrefix is the key prefix of an S3Journal's records.
const DefaultJournalPrefix = "audit/redrive/"

// S3API is the part of *s3.Client an S3Journal uses.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// S3Journal keeps each Move as a JSON object at Bucket/Prefix{messageId}.json. S3's
// read-after-write consistency makes a record visible to the next run as soon as Put returns.
type S3Journal struct {
	Client S3API
	Bucket string
	Prefix string // default DefaultJournalPrefix
}

func (j S3Journal) key(messageID string) string {
	p := j.Prefix
	if p == "" {
		p = DefaultJournalPrefix
	}
	return p + messageID + ".json"
}

// Put writes m's object.
func (j S3Journal) Put(ctx context.Context, m Move) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode move record of %s: %w", m.MessageID, err)
	}
	_, err = j.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(j.Bucket),
		Key:         aws.String(j.key(m.MessageID)),
		Body:        bytes.NewReader(b),
		ContentType: aws.String("application/json"),
	})
	if err != nil {
		return fmt.Errorf("write move record s3://%s/%s: %w", j.Bucket, j.key(m.MessageID), err)
	}
	return nil
}

// Get reads the object of messageID; a missing object is no record.
func (j S3Journal) Get(ctx context.Context, messageID string) (Move, bool, error) {
	key := j.key(messageID)
	out, err := j.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(j.Bucket), Key: aws.String(key)})
	if err != nil {
		if errors.As(err, new(*s3types.NoSuchKey)) {
			return Move{}, false, nil
		}
		return Move{}, false, fmt.Errorf("read move record s3://%s/%s: %w", j.Bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return Move{}, false, fmt.Errorf("read move record s3://%s/%s: %w", j.Bucket, key, err)
	}
	var m Move
	if err := json.Unmarshal(b, &m); err != nil {
		return Move{}, false, fmt.Errorf("decode move record s3://%s/%s: %w", j.Bucket, key, err)
	}
	return m, true, nil
}

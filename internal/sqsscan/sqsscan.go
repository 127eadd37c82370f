// Package sqsscan reads a queue without consuming it: a Scan receives batches, remembers every
// message it has seen, holds the newest receipt handle of each one it keeps hidden, and makes
// them all visible again when it ends. It is the one receive/hold/release loop of the CLI's
// dlq commands, the selective redrive and the local poller's release on stop.
package sqsscan

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/detach"
)

// Receiver is the part of the SQS client a Scan uses; *sqs.Client implements it.
type Receiver interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	Releaser
}

// Releaser is the part of the SQS client Release uses; *sqs.Client implements it.
type Releaser interface {
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// ReleaseTimeout bounds a release, which runs even when the caller's context is cancelled.
const ReleaseTimeout = 15 * time.Second

// Scan is one read of a queue. Build it with New. Not safe for concurrent use.
type Scan struct {
	client   Receiver
	queueURL string
	held     map[string]string // message id -> newest receipt handle, of messages kept hidden
	seen     map[string]bool
}

// New starts a scan of the queue at queueURL.
func New(client Receiver, queueURL string) *Scan {
	return &Scan{client: client, queueURL: queueURL, held: map[string]string{}, seen: map[string]bool{}}
}

// Receive makes one ReceiveMessage call for up to maxMessages (1..10) messages with every
// attribute, hidden for visibility, long-polling up to wait (both in whole seconds). It holds
// and returns the messages not seen before, in the order received, and reports how many
// arrived in all. A message seen before that is still held (its visibility ran out during the
// scan) gets its new receipt handle; one no longer held (taken) stays taken.
func (s *Scan) Receive(ctx context.Context, maxMessages int, visibility, wait time.Duration) (fresh []sqstypes.Message, received int, err error) {
	out, err := s.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(s.queueURL),
		MaxNumberOfMessages:         int32(maxMessages),
		VisibilityTimeout:           int32(visibility / time.Second),
		WaitTimeSeconds:             int32(wait / time.Second),
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	})
	if err != nil {
		return nil, 0, fmt.Errorf("receive from %s: %w", s.queueURL, err)
	}
	for _, m := range out.Messages {
		id := aws.ToString(m.MessageId)
		if s.seen[id] {
			if _, ok := s.held[id]; ok {
				s.held[id] = aws.ToString(m.ReceiptHandle)
			}
			continue
		}
		s.seen[id] = true
		s.held[id] = aws.ToString(m.ReceiptHandle)
		fresh = append(fresh, m)
	}
	return fresh, len(out.Messages), nil
}

// Take stops holding the message id (it was deleted, or is about to be) and returns its newest
// receipt handle, or false when it is not held.
func (s *Scan) Take(id string) (handle string, ok bool) {
	handle, ok = s.held[id]
	delete(s.held, id)
	return handle, ok
}

// Held is how many messages the scan holds.
func (s *Scan) Held() int { return len(s.held) }

// Release makes every held message visible again and stops holding them; see Release.
func (s *Scan) Release(ctx context.Context) (int, error) {
	handles := s.held
	s.held = map[string]string{}
	return Release(ctx, s.client, s.queueURL, handles)
}

// Release makes the messages of handles (message id -> receipt handle) visible again at once,
// ten at a time, with a context detached from ctx's cancel and ending within ReleaseTimeout
// (and by ctx's deadline). A failed batch does not stop the others. It returns how many were
// released; the error names every call and message that failed: those reappear when their
// visibility timeout ends.
func Release(ctx context.Context, client Releaser, queueURL string, handles map[string]string) (int, error) {
	ctx, cancel := detach.Context(ctx, 0, ReleaseTimeout)
	defer cancel()
	released := 0
	var errs []error
	var ids []string // batch entry i releases message ids[i]: message ids need not fit the entry id rules
	var batch []sqstypes.ChangeMessageVisibilityBatchRequestEntry
	flush := func() {
		if len(batch) == 0 {
			return
		}
		out, err := client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(queueURL), Entries: batch})
		if err != nil {
			errs = append(errs, fmt.Errorf("make %d messages visible again on %s: %w", len(batch), queueURL, err))
		} else {
			released += len(out.Successful)
			for _, f := range out.Failed {
				id := aws.ToString(f.Id)
				if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < len(ids) {
					id = ids[i]
				}
				errs = append(errs, fmt.Errorf("make message %s visible again on %s: %s: %s", id, queueURL, aws.ToString(f.Code), aws.ToString(f.Message)))
			}
		}
		ids, batch = ids[:0], batch[:0]
	}
	for id, handle := range handles {
		batch = append(batch, sqstypes.ChangeMessageVisibilityBatchRequestEntry{
			Id: aws.String(strconv.Itoa(len(batch))), ReceiptHandle: aws.String(handle), VisibilityTimeout: 0,
		})
		ids = append(ids, id)
		if len(batch) == 10 {
			flush()
		}
	}
	flush()
	return released, errors.Join(errs...)
}

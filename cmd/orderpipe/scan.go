package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// peekVisibility is how long a scanned message stays hidden at most; scan makes the ones it
// keeps visible again as soon as it ends.
const peekVisibility = 30 * time.Second

// scanner reads a queue without consuming it: it receives up to max distinct messages, each
// hidden for peekVisibility, hands each to a visitor, deletes the ones the visitor takes and
// makes all others visible again before returning (even when ctx is cancelled). Each receive
// increments the message's ApproximateReceiveCount.
type scanner struct {
	sqs      *sqs.Client
	queueURL string
	max      int
}

// verdict is a visitor's decision about one message.
type verdict struct {
	remove bool // delete the message
	stop   bool // end the scan after this message
}

// scan visits messages until the queue returns none, max were seen, or the visitor stops.
// It returns how many distinct messages were visited.
func (s scanner) scan(ctx context.Context, visit func(sqstypes.Message) verdict) (n int, err error) {
	seen := make(map[string]bool)
	// held maps each message to release to its latest receipt handle: one that came back after
	// its visibility has a new handle, and the old one may no longer work.
	held := make(map[string]sqstypes.Message)
	defer func() {
		if rerr := s.release(context.WithoutCancel(ctx), slices.Collect(maps.Values(held))); rerr != nil && err == nil {
			err = rerr
		}
	}()
	for n < s.max {
		out, err := s.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    &s.queueURL,
			MaxNumberOfMessages:         int32(min(10, s.max-n)),
			VisibilityTimeout:           int32(peekVisibility / time.Second),
			WaitTimeSeconds:             1,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			return n, fmt.Errorf("receive from %s: %w", s.queueURL, err)
		}
		if len(out.Messages) == 0 {
			return n, nil
		}
		var remove []sqstypes.Message
		fresh, stop := 0, false
		for _, m := range out.Messages {
			id := aws.ToString(m.MessageId)
			if seen[id] || stop || n >= s.max {
				held[id] = m // came back after its visibility: keep its new handle to release
				continue
			}
			seen[id] = true
			fresh++
			n++
			v := visit(m)
			if v.remove {
				remove = append(remove, m)
			} else {
				held[id] = m
			}
			stop = v.stop
		}
		if err := s.remove(ctx, remove); err != nil {
			return n, err
		}
		if stop || fresh == 0 {
			return n, nil
		}
	}
	return n, nil
}

// release makes messages visible again, ten at a time. A failed batch does not stop the
// others: every message it can release is released, and the failures are reported together.
func (s scanner) release(ctx context.Context, msgs []sqstypes.Message) error {
	var errs []error
	for chunk := range slices.Chunk(msgs, 10) {
		entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		out, err := s.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &s.queueURL, Entries: entries})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("make %d messages visible again on %s: %w", len(chunk), s.queueURL, err))
		case len(out.Failed) > 0:
			errs = append(errs, fmt.Errorf("make messages visible again on %s: %d failed (%s): they reappear within %v", s.queueURL, len(out.Failed), aws.ToString(out.Failed[0].Message), peekVisibility))
		}
	}
	return errors.Join(errs...)
}

// remove deletes messages, ten at a time.
func (s scanner) remove(ctx context.Context, msgs []sqstypes.Message) error {
	for chunk := range slices.Chunk(msgs, 10) {
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		out, err := s.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &s.queueURL, Entries: entries})
		if err != nil {
			return fmt.Errorf("delete messages from %s: %w", s.queueURL, err)
		}
		if len(out.Failed) > 0 {
			return fmt.Errorf("delete messages from %s: %d failed (%s)", s.queueURL, len(out.Failed), aws.ToString(out.Failed[0].Message))
		}
	}
	return nil
}

// parked is what dlq ls shows of one parked order (docs/CONTRACTS.md, "Parked message").
type parked struct {
	redrive.Entry
	SentAt time.Time `json:"sentAt"` // SentTimestamp: what SQS retention counts from
}

// parkedFrom reads a parked message's attributes as the redrive does.
func parkedFrom(m sqstypes.Message) parked {
	return parked{Entry: redrive.EntryOf(m), SentAt: sentAt(m)}
}

// sentAt is the message's SentTimestamp, or the zero time when absent.
func sentAt(m sqstypes.Message) time.Time {
	ms, err := strconv.ParseInt(m.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// filter selects parked orders by class and source, as pkg/redrive does; empty fields match
// everything.
type filter struct {
	classes []string // any of these classes
	// source is an exact s3://bucket/key, or a prefix when it ends in "*"
	// ("s3://bucket/uploads/2026/*").
	source string
}

// classList is a flag.Value of comma-separated failure classes.
type classList []string

func (l *classList) String() string { return strings.Join(*l, ",") }

// Set adds the classes of v. A value naming no class is an error, not "every class": with
// dlq purge, `--class "$UNSET"` would otherwise delete the whole queue.
func (l *classList) Set(v string) error {
	added := 0
	for _, c := range strings.Split(v, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		if !slices.Contains(order.Classes, c) {
			return fmt.Errorf("unknown class %q: one of %s", c, strings.Join(order.Classes, ", "))
		}
		*l = append(*l, c)
		added++
	}
	if added == 0 {
		return fmt.Errorf("empty class list: name one or more of %s, or leave out --class", strings.Join(order.Classes, ", "))
	}
	return nil
}

func (f filter) empty() bool { return len(f.classes) == 0 && f.source == "" }

func (f filter) match(p parked) bool {
	return redrive.Request{Class: f.classes, Source: f.source}.Matches(p.Entry)
}

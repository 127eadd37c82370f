package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/sqsscan"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// peekVisibility is how long a scanned message stays hidden at most; scan makes the ones it
// keeps visible again as soon as it ends.
const peekVisibility = 30 * time.Second

// peekWait is how long a scan's receive long-polls for more messages: a short poll of SQS
// samples only some of its servers and can find none of the messages a queue holds.
const peekWait = time.Second

// scanner reads a queue without consuming it: it receives up to max distinct messages, each
// hidden for peekVisibility, hands each to a visitor, deletes the ones the visitor takes and
// makes all others visible again before returning (even when ctx is cancelled). Each receive
// increments the message's ApproximateReceiveCount.
//
// Use it on the dead-letter queues only: they have no redrive policy, so a receive there
// changes nothing but that count. On a source queue (files, orders) each receive counts toward
// maxReceiveCount and would park orders as unknown without a delivery attempt.
type scanner struct {
	sqs      *sqs.Client
	queueURL string
	max      int
	wait     time.Duration // each receive's long poll; 0: peekWait
}

// verdict is a visitor's decision about one message.
type verdict struct {
	remove bool // delete the message
	stop   bool // end the scan after this message
}

// scan visits messages until the queue returns none, max were seen, or the visitor stops.
// It returns how many distinct messages were visited.
func (s scanner) scan(ctx context.Context, visit func(sqstypes.Message) verdict) (n int, err error) {
	q := sqsscan.New(s.sqs, s.queueURL)
	defer func() {
		if _, rerr := q.Release(ctx); rerr != nil && err == nil {
			err = fmt.Errorf("%w: they reappear within %v", rerr, peekVisibility)
		}
	}()
	wait := s.wait
	if wait == 0 {
		wait = peekWait
	}
	for n < s.max {
		fresh, received, err := q.Receive(ctx, min(10, s.max-n), peekVisibility, wait)
		if err != nil {
			return n, err
		}
		if received == 0 || len(fresh) == 0 {
			return n, nil
		}
		var remove []sqstypes.Message
		stop := false
		for _, m := range fresh {
			if stop || n >= s.max {
				break // the rest stay held and are released
			}
			n++
			v := visit(m)
			if v.remove {
				q.Take(aws.ToString(m.MessageId))
				remove = append(remove, m)
			}
			stop = v.stop
		}
		if err := s.remove(ctx, remove); err != nil {
			return n, err
		}
		if stop {
			return n, nil
		}
	}
	return n, nil
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

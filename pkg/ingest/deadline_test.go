package ingest_test

import (
	"compress/gzip"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/clock"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// steppingClock moves a minute forward at every look: an invocation of 10 minutes with the
// default margin of 60s reaches its checkpoint time after nine looks at the clock, whatever the
// speed of the machine.
type steppingClock struct {
	start time.Time
	looks atomic.Int64
}

func (c *steppingClock) Now() time.Time {
	return c.start.Add(time.Duration(c.looks.Add(1)) * time.Minute)
}

func (c *steppingClock) Sleep(ctx context.Context, d time.Duration) error {
	return clock.Sleep(ctx, d)
}

// A gzip of one order, 64 MiB of newlines and one order, read with invocations whose checkpoint
// time comes after nine looks at the clock: the readers yield inside the newlines, so that each
// invocation checkpoints inside them and hands over, and the file ends with both orders sent
// once and the ledger balanced.
func TestIngestNewlineBombAtShortDeadline(t *testing.T) {
	e := newEnv(t)
	const key = "uploads/bomb.jsonl.gz"
	const first, last = `{"id":"a"}` + "\n", `{"id":"b"}` + "\n"
	body := first + strings.Repeat("\n", 64<<20) + last
	e.put(t, key, gzipped(t, body, gzip.BestCompression))
	var offsets []int64 // of the checkpoints handed over in the sending pass
	invoke := func(token string) ingest.Outcome {
		t.Helper()
		c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		svc := ingest.New(e.cfg, e.s3, e.sqs, ingest.Options{Clock: &steppingClock{start: time.Now()}})
		out, err := svc.Ingest(c, s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, token)
		if err != nil {
			t.Fatalf("Ingest = %v", err)
		}
		return out
	}
	out := invoke("")
	for i := 0; out == ingest.Continued; i++ {
		if i > 20 {
			t.Fatalf("still continuing after %d invocations", i)
		}
		var st ingest.State
		e.get(t, "state/"+key+"@null.json", &st)
		if st.VerifiedETag != "" {
			offsets = append(offsets, st.Offset)
		}
		m, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.filesURL, MaxNumberOfMessages: 1, WaitTimeSeconds: 1})
		if err != nil || len(m.Messages) != 1 {
			t.Fatalf("continuation: %d messages, %v; want 1", len(m.Messages), err)
		}
		msg, err := s3event.Decode(aws.ToString(m.Messages[0].Body))
		if err != nil || msg.Continuation == nil {
			t.Fatalf("decode continuation: %v, %+v", err, msg)
		}
		e.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &e.filesURL, ReceiptHandle: m.Messages[0].ReceiptHandle})
		out = invoke(msg.Continuation.Token)
	}
	inside := 0
	for _, o := range offsets {
		if o > int64(len(first)) && o < int64(len(body)-len(last)) {
			inside++
		}
	}
	if inside < 2 {
		t.Errorf("send checkpoints at offsets %v: want at least two inside the newlines", offsets)
	}
	if got := receiveAllDup(t, e.sqs, e.ordersURL); len(got) != 2 {
		t.Errorf("orders sent %q, want a and b once", got)
	}
	var rep ingest.Report
	if !e.get(t, "reports/"+key+".json", &rep) || rep.Lines != 2 || rep.Enqueued != 2 || rep.Unread != 0 || rep.Rejected != 0 {
		t.Errorf("report lines %d enqueued %d rejected %d unread %d; want 2, 2, 0, 0", rep.Lines, rep.Enqueued, rep.Rejected, rep.Unread)
	}
}

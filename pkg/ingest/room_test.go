package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// A file larger than the orders queue's room (API_RATE 0.1/s over a retention of 1m less a
// quarter: 4 orders) enqueues what fits, waits in S3 with a delayed continuation while the
// queue is full (its report says so and since when), and continues as the queue drains, until
// every order is enqueued once and the report is whole.
func TestIngestWaitsForRoom(t *testing.T) {
	e := newEnv(t)
	cfg := e.cfg
	cfg.APIRate, cfg.OrdersRetention, cfg.WaitDelay = 0.1, time.Minute, time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Room(); got != 4 {
		t.Fatalf("room %d, want 4", got)
	}
	svc := ingest.New(cfg, e.s3, e.sqs, ingest.Options{})
	const key = "uploads/large.jsonl"
	e.put(t, key, []byte(manyOrders(10)))

	next := func() string { // the continuation's token
		t.Helper()
		out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.filesURL, MaxNumberOfMessages: 1, WaitTimeSeconds: 5})
		if err != nil || len(out.Messages) != 1 {
			t.Fatalf("continuation: %d messages, %v; want 1", len(out.Messages), err)
		}
		e.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &e.filesURL, ReceiptHandle: out.Messages[0].ReceiptHandle})
		msg, err := s3event.Decode(aws.ToString(out.Messages[0].Body))
		if err != nil || msg.Continuation == nil {
			t.Fatalf("decode continuation: %v", err)
		}
		return msg.Continuation.Token
	}
	ingestNow := func(token string) ingest.Outcome {
		t.Helper()
		out, err := svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, token)
		if err != nil {
			t.Fatalf("Ingest: %v", err)
		}
		return out
	}
	waiting := func(wantEnqueued int64) {
		t.Helper()
		var rep ingest.Report
		if !e.get(t, "reports/"+key+".json", &rep) || rep.Waiting == "" || rep.WaitingSince.IsZero() || rep.Enqueued != wantEnqueued {
			t.Errorf("report while waiting: waiting %q since %v, enqueued %d; want a reason, a time, %d", rep.Waiting, rep.WaitingSince, rep.Enqueued, wantEnqueued)
		}
	}
	var sent []string
	if out := ingestNow(""); out != ingest.Continued {
		t.Fatalf("first run: %v, want continued (waiting)", out)
	}
	waiting(4)
	// The queue is still full: the continuation enqueues nothing and waits again.
	token := next()
	if out := ingestNow(token); out != ingest.Continued {
		t.Fatalf("run on a full queue: %v, want continued", out)
	}
	waiting(4)
	for range 3 {
		sent = append(sent, receiveAllDup(t, e.sqs, e.ordersURL)...) // dispatch drains the queue
		token = next()
		if out := ingestNow(token); out == ingest.Done {
			break
		}
	}
	sent = append(sent, receiveAllDup(t, e.sqs, e.ordersURL)...)
	if len(sent) != 10 {
		t.Errorf("%d orders enqueued in all, want the 10 of the file once: %q", len(sent), sent)
	}
	var rep ingest.Report
	if !e.get(t, "reports/"+key+".json", &rep) || rep.Waiting != "" || rep.Lines != 10 || rep.Enqueued != 10 || rep.Unread != 0 {
		t.Errorf("final report: waiting %q, lines %d enqueued %d unread %d; want none, 10, 10, 0", rep.Waiting, rep.Lines, rep.Enqueued, rep.Unread)
	}
}

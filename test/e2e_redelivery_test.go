package test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/local"
)

// seen records the messages a handler was invoked with that match a predicate: their message
// id and ApproximateReceiveCount, in order. Safe for concurrent use.
type seen struct {
	mu    sync.Mutex
	calls []string // "messageID@receiveCount"
}

func (s *seen) add(m events.SQSMessage) int {
	n, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, m.MessageId+"@"+strconv.Itoa(n))
	return len(s.calls)
}

func (s *seen) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// TestE2EDuplicateEvent delivers the S3 notification of a file twice (a copy of the
// files-queue message next to the original, as S3 and SQS may do): both are handled, possibly
// at the same time, and every order reaches the API exactly once.
func TestE2EDuplicateEvent(t *testing.T) {
	t.Parallel()
	const key = "uploads/dup.jsonl"
	var handled seen
	p := newE2E(t, e2eOptions{ingest: func(h local.Handler) local.Handler {
		return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			for _, m := range ev.Records {
				if strings.Contains(m.Body, "dup.jsonl") {
					handled.add(m)
				}
			}
			return h(ctx, ev)
		}
	}})
	f := &e2eFile{key: key, body: e2eFixture(t, "dup.jsonl"), ids: numbered("d", 8)}
	f.version = p.upload(t, key, f.body)

	// Before the pollers start: find the notification, put a copy next to it, release both.
	ctx := context.Background()
	var note string
	for deadline := time.Now().Add(awstest.Scale(t, p.sqs, 20*time.Second)); note == "" && time.Now().Before(deadline); {
		out, err := p.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &p.res.FilesQueueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("receive files queue: %v", err)
		}
		for _, m := range out.Messages {
			if strings.Contains(aws.ToString(m.Body), "dup.jsonl") {
				note = aws.ToString(m.Body)
			}
			if _, err := p.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
				QueueUrl: &p.res.FilesQueueURL, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
			}); err != nil {
				t.Fatalf("release files message: %v", err)
			}
		}
	}
	if note == "" {
		t.Fatalf("no S3 notification for %s on the files queue", key)
	}
	if _, err := p.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &p.res.FilesQueueURL, MessageBody: &note}); err != nil {
		t.Fatalf("send the copy: %v", err)
	}

	p.start(t)
	files := []*e2eFile{f}
	p.settle(t, 60*time.Second, files)
	p.checkLedger(t, files, nil)
	ids := map[string]bool{}
	for _, c := range handled.get() {
		id, _, _ := strings.Cut(c, "@")
		ids[id] = true
	}
	// The notification and its copy; one that found the file busy is re-sent as a new message.
	if len(ids) < 2 {
		t.Errorf("ingest handled %d distinct messages naming %s (%v), want at least 2: the notification and its copy", len(ids), key, handled.get())
	}
	if st := p.api.Stats(); st.Deliveries != len(f.ids) || st.Duplicates != 0 {
		t.Errorf("stand-in: %d deliveries, %d duplicates; want %d, 0", st.Deliveries, st.Duplicates, len(f.ids))
	}
}

// TestE2ECrash crashes each function once: dispatch panics on the first invocation for one
// order, before sending it; ingest returns an error after it has done all the work for a file.
// Both messages come back after their queue's visibility timeout: the order is delivered, the
// file is found done and skipped, and nothing is lost or sent twice. Dispatch runs with a 1 s
// timeout (times the slowness), so that the orders visibility, 6 times it, is short.
func TestE2ECrash(t *testing.T) {
	t.Parallel()
	const key, crashID = "uploads/crash.jsonl", "x-04"
	var orderCalls, fileCalls seen
	p := newE2E(t, e2eOptions{
		ingest: func(h local.Handler) local.Handler {
			return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
				resp, err := h(ctx, ev)
				for _, m := range ev.Records {
					if strings.Contains(m.Body, "crash.jsonl") && fileCalls.add(m) == 1 && err == nil {
						return resp, errors.New("injected crash after the file was ingested")
					}
				}
				return resp, err
			}
		},
	})
	s := p.settings
	s.DispatchTimeout, s.OrdersVisibility = p.slow*time.Second, p.slow*6*time.Second
	p.retune(t, s)
	dispatchH := p.shortDeadlineDispatch(t, p.slow*300*time.Millisecond)
	p.orders.Handler = func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		for _, m := range ev.Records {
			if orderID(m) == crashID && orderCalls.add(m) == 1 {
				panic("injected crash before sending " + crashID)
			}
		}
		return dispatchH(ctx, ev)
	}
	p.start(t)
	f := &e2eFile{key: key, body: e2eFixture(t, "crash.jsonl"), ids: numbered("x", 10)}
	f.version = p.upload(t, key, f.body)
	files := []*e2eFile{f}
	p.settle(t, 80*time.Second, files)
	// The crashed file message must have come back (and been skipped) before settle saw the
	// files queue empty; the crashed order must have been delivered.
	p.checkLedger(t, files, nil)

	receives := func(calls []string) []string {
		var out []string
		for _, c := range calls {
			_, n, _ := strings.Cut(c, "@")
			out = append(out, n)
		}
		return out
	}
	if diff := cmp.Diff([]string{"1", "2"}, receives(orderCalls.get())); diff != "" {
		t.Errorf("receive counts of %s's message (-want +got):\n%s", crashID, diff)
	}
	if diff := cmp.Diff([]string{"1", "2"}, receives(fileCalls.get())); diff != "" {
		t.Errorf("receive counts of %s's notification (-want +got):\n%s", key, diff)
	}
	if got := p.orders.Stats().Crashes; got != 1 {
		t.Errorf("dispatch crashes = %d, want 1", got)
	}
	if got := p.files.Stats().Failures; got != 1 {
		t.Errorf("ingest failed invocations = %d, want 1", got)
	}
	if st := p.api.Stats(); st.Deliveries != len(f.ids) || st.Duplicates != 0 {
		t.Errorf("stand-in: %d deliveries, %d duplicates; want %d, 0 (the skipped file sent nothing again)", st.Deliveries, st.Duplicates, len(f.ids))
	}
}

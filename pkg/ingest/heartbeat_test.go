package ingest_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/clock"
	"github.com/orderpipe/orderpipe/pkg/ingest"
)

// TestCrashedHolderIsTakenOverAtOnce: a claim whose lease is still live but whose holder's own
// message is back (its invocation died, so its heartbeat stopped) is taken over by that message
// and the file resumes from the checkpoint; another message finding it busy is re-sent delayed
// and succeeds, spending none of its receives.
func TestCrashedHolderIsTakenOverAtOnce(t *testing.T) {
	now := time.Now()
	crashed := ingest.State{Status: ingest.StatusRunning, Offset: 22, Line: 2, Lines: 2, Enqueued: 2, Size: 33, StartedAt: now,
		Owner: "dead", LeaseUntil: now.Add(time.Hour), Holder: "m-crashed"}
	const key = "uploads/crashed.jsonl"

	t.Run("another message: busy, re-sent delayed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.putWithState(t, key, threeOrders, &crashed)
		body := s3Event(e.bucket, key, "")
		resp, err := e.svc.Handle(ctx(t), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-duplicate", Body: body}}})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("Handle = %+v, %v; want success (re-sent)", resp, err)
		}
		if got := receiveAll(t, e.sqs, e.ordersURL); len(got) != 0 {
			t.Errorf("orders sent %v, want none", got)
		}
		attrs, err := e.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &e.filesURL, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
		if err != nil {
			t.Fatal(err)
		}
		if got := attrs.Attributes["ApproximateNumberOfMessagesDelayed"]; got != "1" {
			t.Errorf("delayed files messages %s, want 1 (the re-sent copy)", got)
		}
	})
	t.Run("the holder's message delivered twice at once: a fresh claim is busy", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.putWithState(t, key, threeOrders, &crashed)
		resp, err := e.svc.Handle(ctx(t), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-crashed", Body: s3Event(e.bucket, key, "")}}})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("Handle = %+v, %v; want success (re-sent)", resp, err)
		}
		if got := receiveAll(t, e.sqs, e.ordersURL); len(got) != 0 {
			t.Errorf("orders sent %v, want none: the claim was written just now", got)
		}
	})
	t.Run("the holder's message after its claim went quiet: taken over", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.putWithState(t, key, threeOrders, &crashed)
		// Two thirds of the files visibility after the claim's last write (a crashed owner's
		// message comes back no sooner after its last heartbeat).
		e.svc = ingest.New(e.cfg, e.s3, e.sqs, ingest.Options{Clock: shiftedClock(e.cfg.FilesVisibility * 2 / 3)})
		resp, err := e.svc.Handle(ctx(t), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-crashed", Body: s3Event(e.bucket, key, "")}}})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("Handle = %+v, %v; want success", resp, err)
		}
		if diff := cmp.Diff([]string{`{"id":"c"}`}, receiveAll(t, e.sqs, e.ordersURL)); diff != "" {
			t.Errorf("orders sent (-want +got):\n%s", diff)
		}
		var st ingest.State
		e.get(t, "state/"+key+"@null.json", &st)
		if st.Status != ingest.StatusDone {
			t.Errorf("state %q, want done", st.Status)
		}
	})
}

// recordingQueue passes every call to the stand-in and records the visibility changes.
type recordingQueue struct {
	*sqs.Client
	mu      sync.Mutex
	changes []string // receipt handle and seconds
}

func (q *recordingQueue) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, o ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	q.mu.Lock()
	q.changes = append(q.changes, aws.ToString(in.ReceiptHandle)+"="+strconv.Itoa(int(in.VisibilityTimeout)))
	q.mu.Unlock()
	return q.Client.ChangeMessageVisibility(ctx, in, o...)
}

// slowStore delays every object store call.
type slowStore struct {
	ingest.ObjectStore
	delay time.Duration
}

func (s slowStore) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	time.Sleep(s.delay)
	return s.ObjectStore.PutObject(ctx, in, o...)
}

// fastClock sleeps a thousandth of what it is asked: the heartbeat beats every 60 ms.
type fastClock struct{}

func (fastClock) Now() time.Time { return time.Now() }
func (fastClock) Sleep(ctx context.Context, d time.Duration) error {
	return clock.Sleep(ctx, d/1000)
}

// TestHeartbeatKeepsTheBatchHidden: while the handler works, every message of its batch not yet
// finished is set invisible for FilesVisibility again, with its own receipt handle; nothing after
// the handler returns.
func TestHeartbeatKeepsTheBatchHidden(t *testing.T) {
	e := newEnv(t)
	e.put(t, "uploads/slow.jsonl", []byte(threeOrders))
	// Receive two real messages, so that the receipt handles are the stand-in's.
	for range 2 {
		if _, err := e.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &e.filesURL, MessageBody: aws.String(s3Event(e.bucket, "uploads/slow.jsonl", ""))}); err != nil {
			t.Fatal(err)
		}
	}
	var msgs []events.SQSMessage
	for len(msgs) < 2 {
		out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.filesURL, MaxNumberOfMessages: 2, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			msgs = append(msgs, events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body)})
		}
	}
	q := &recordingQueue{Client: e.sqs}
	// A store slow enough that the batch takes many heartbeats.
	slow := slowStore{ObjectStore: e.s3, delay: 300 * time.Millisecond}
	svc := ingest.New(e.cfg, slow, q, ingest.Options{Clock: fastClock{}})
	if resp, err := svc.Handle(ctx(t), events.SQSEvent{Records: msgs}); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v", resp, err)
	}
	q.mu.Lock()
	changes := append([]string(nil), q.changes...)
	q.mu.Unlock()
	seen := map[string]bool{}
	for _, c := range changes {
		seen[c] = true
	}
	want := "=" + strconv.Itoa(int(e.cfg.FilesVisibility.Seconds()))
	for _, m := range msgs {
		if !seen[m.ReceiptHandle+want] {
			t.Errorf("message %s: no visibility change to %v in %v", m.MessageId, e.cfg.FilesVisibility, changes)
		}
	}
	time.Sleep(200 * time.Millisecond) // a heartbeat still running would record more
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.changes) != len(changes) {
		t.Errorf("visibility changed after Handle returned: %v", q.changes[len(changes):])
	}
}

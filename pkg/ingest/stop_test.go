package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/ingest"
)

// stopAfterFirstBatch is the SQS client that closes stop once the first batch of orders has
// been sent: the stop arrives while the file is being read.
type stopAfterFirstBatch struct {
	*sqs.Client
	once sync.Once
	stop chan struct{}
}

func (q *stopAfterFirstBatch) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	out, err := q.Client.SendMessageBatch(ctx, in, o...)
	q.once.Do(func() { close(q.stop) })
	return out, err
}

// A stop (WithStop) in the middle of a file checkpoints at once: the invocation succeeds with a
// continuation on the files queue and a checkpoint past line 0 and before the end, and the
// continuation, run without a stop, sends the rest: every order once.
func TestHandleStopCheckpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Longer than what the reader can queue before the stop (the sender holds at most
	// 2 x SEND_CONCURRENCY batches of 10 and the one being filled), so the stop lands mid-file.
	const key, n = "uploads/stopped.jsonl", 200
	var body strings.Builder
	var want []string
	for i := range n {
		fmt.Fprintf(&body, `{"id":"o-%d"}`+"\n", i)
		want = append(want, fmt.Sprintf(`{"id":"o-%d"}`, i))
	}
	e.put(t, key, []byte(body.String()))
	q := &stopAfterFirstBatch{Client: e.sqs, stop: make(chan struct{})}
	svc := ingest.New(e.cfg, e.s3, q, ingest.Options{})
	ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: s3Event(e.bucket, key, "")}}}
	resp, err := svc.Handle(ingest.WithStop(ctx(t), q.stop), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle(stopped) = %v, %v; want success", resp, err)
	}
	var st ingest.State
	if !e.get(t, "state/"+key+"@null.json", &st) {
		t.Fatal("no state after the stop")
	}
	if st.Status != ingest.StatusRunning || st.Line <= 0 || st.Line >= n || st.Enqueued != st.Line {
		t.Fatalf("state after the stop: status %q, line %d, enqueued %d; want running at a line in (0, %d), all of them enqueued", st.Status, st.Line, st.Enqueued, n)
	}
	out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.filesURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("continuations: %d, %v; want 1", len(out.Messages), err)
	}
	resp, err = e.svc.Handle(ctx(t), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "c1", Body: aws.ToString(out.Messages[0].Body)}}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle(continuation) = %v, %v", resp, err)
	}
	if diff := cmp.Diff(want, receiveAllDup(t, e.sqs, e.ordersURL), sortStrings); diff != "" {
		t.Errorf("orders sent (-want +got):\n%s", diff)
	}
	var rep ingest.Report
	if !e.get(t, ingest.ReportKey(key), &rep) || rep.Lines != n || rep.Enqueued != n || rep.Continuations != 1 {
		t.Errorf("report: lines %d, enqueued %d, continuations %d; want %d, %d, 1", rep.Lines, rep.Enqueued, rep.Continuations, n, n)
	}
}

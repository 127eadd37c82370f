package local

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
)

// runBound keeps a broken poller from hanging a test; no assertion depends on it.
const runBound = 40 * time.Second

func TestSQSMessageAsLambdaSendsIt(t *testing.T) {
	t.Parallel()
	m := sqstypes.Message{
		MessageId:              aws.String("MessageID_1"),
		ReceiptHandle:          aws.String("MessageReceiptHandle"),
		Body:                   aws.String("Message Body"),
		MD5OfBody:              aws.String("fce0ea8dd236ccb3ed9b37dae260836f"),
		MD5OfMessageAttributes: aws.String("582c92c5c5b6ac403040a4f3ab3115c9"),
		Attributes: map[string]string{
			"ApproximateReceiveCount":          "2",
			"SentTimestamp":                    "1520621625029",
			"SenderId":                         "AROAIWPX5BD2BHG722MW4:sender",
			"ApproximateFirstReceiveTimestamp": "1520621634884",
		},
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"Attribute1": {DataType: aws.String("String"), StringValue: aws.String("AttributeValue1")},
			"Attribute2": {DataType: aws.String("Number"), StringValue: aws.String("123")},
		},
	}
	got, err := json.Marshal(SQSMessage(m, "arn:aws:sqs:us-west-2:123456789012:SQSQueue", "us-west-2"))
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	want, err := os.ReadFile("testdata/sqs-record.json")
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	var gotV, wantV any
	if err := json.Unmarshal(got, &gotV); err != nil {
		t.Fatalf("unmarshal got: %v", err)
	}
	if err := json.Unmarshal(want, &wantV); err != nil {
		t.Fatalf("unmarshal fixture: %v", err)
	}
	if diff := cmp.Diff(wantV, gotV); diff != "" {
		t.Errorf("record JSON (-want +got):\n%s", diff)
	}
}

func TestPollerConfigErrors(t *testing.T) {
	t.Parallel()
	ok := func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
		return events.SQSEventResponse{}, nil
	}
	client := awstest.SQS(aws.Config{Region: "us-east-1"})
	for _, tc := range []struct {
		name string
		p    *Poller
		want string
	}{
		{"no client", &Poller{QueueURL: "q", Handler: ok}, "Client is nil"},
		{"no queue", &Poller{Client: client, Handler: ok}, "QueueURL is empty"},
		{"no handler", &Poller{Client: client, QueueURL: "q"}, "Handler is nil"},
		{"batch too big", &Poller{Client: client, QueueURL: "q", Handler: ok, BatchSize: 11}, "BatchSize 11"},
		{"negative concurrency", &Poller{Client: client, QueueURL: "q", Handler: ok, MaxConcurrency: -1}, "MaxConcurrency -1"},
		{"negative timeout", &Poller{Client: client, QueueURL: "q", Handler: ok, FunctionTimeout: -time.Second}, "FunctionTimeout -1s"},
		{"long poll too long", &Poller{Client: client, QueueURL: "q", Handler: ok, WaitTime: time.Minute}, "WaitTime 1m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestPollerBatchSizeAndConcurrency drains 30 messages with BatchSize 3 and MaxConcurrency 2:
// no batch is larger than 3, two invocations do overlap (the first two wait for each other)
// and never more than two, and every message is deleted once.
func TestPollerBatchSizeAndConcurrency(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	c := awstest.SQS(cfg)
	url, arn := testQueue(t, c, 60*time.Second)
	var bodies []string
	for i := range 30 {
		bodies = append(bodies, fmt.Sprintf("m%02d", i))
	}
	send(t, c, url, bodies...)

	ctx, stop := context.WithTimeout(context.Background(), runBound)
	defer stop()
	var (
		mu                  sync.Mutex
		seen                = map[string]int{}
		inFlight, maxFlight atomic.Int32
		maxBatch            atomic.Int32
		entered             = make(chan struct{}, 2)
		barrier             = make(chan struct{})
		barrierOnce         sync.Once
	)
	receives := &receiveCounter{Client: c}
	p := &Poller{
		Client: receives, Logger: testLogger(t), QueueURL: url, QueueARN: arn, BatchSize: 3, MaxConcurrency: 2, FunctionTimeout: 30 * time.Second, WaitTime: time.Second,
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for old := maxFlight.Load(); n > old && !maxFlight.CompareAndSwap(old, n); old = maxFlight.Load() {
			}
			for old := maxBatch.Load(); int32(len(ev.Records)) > old && !maxBatch.CompareAndSwap(old, int32(len(ev.Records))); old = maxBatch.Load() {
			}
			select {
			case entered <- struct{}{}: // one of the first two invocations: wait for the other
				if len(entered) == 2 {
					barrierOnce.Do(func() { close(barrier) })
				}
				select {
				case <-barrier:
				case <-ctx.Done():
				}
			default:
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range ev.Records {
				seen[r.Body]++
			}
			if len(seen) == len(bodies) {
				stop()
			}
			return events.SQSEventResponse{}, nil
		},
	}
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := maxFlight.Load(), int32(2); got != want {
		t.Errorf("most concurrent invocations: got %d, want %d", got, want)
	}
	if got, want := maxBatch.Load(), int32(3); got != want {
		t.Errorf("largest batch: got %d, want %d", got, want)
	}
	if got, want := receives.max.Load(), int32(1); got != want {
		t.Errorf("most concurrent receives: got %d, want %d (the stand-in can hand one message to two)", got, want)
	}
	if got, want := len(seen), len(bodies); got != want {
		t.Errorf("distinct messages handled: got %d, want %d", got, want)
	}
	st := p.Stats()
	if got, want := st.Deleted, int64(len(bodies)); got != want {
		t.Errorf("Stats.Deleted: got %d, want %d (%+v)", got, want, st)
	}
	if got, want := depth(t, c, url), 0; got != want {
		t.Errorf("queue depth after the run: got %d, want %d", got, want)
	}
}

// TestPollerOutcomes runs one invocation of a batch per case and checks which messages the
// poller deleted and which come back after the visibility timeout.
func TestPollerOutcomes(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	c := awstest.SQS(cfg)
	bodies := []string{"fail-1", "fail-2", "ok-1", "ok-2", "ok-3"}
	failFailing := func(ev events.SQSEvent) events.SQSEventResponse {
		var resp events.SQSEventResponse
		for _, r := range ev.Records {
			if strings.HasPrefix(r.Body, "fail") {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
		}
		return resp
	}
	for _, tc := range []struct {
		name    string
		handler func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)
		kept    []string
		want    Stats
	}{
		{
			name: "success deletes all",
			handler: func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
				return events.SQSEventResponse{}, nil
			},
			want: Stats{Received: 5, Invocations: 1, Deleted: 5},
		},
		{
			name: "partial failure keeps exactly the failed",
			handler: func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
				return failFailing(ev), nil
			},
			kept: []string{"fail-1", "fail-2"},
			want: Stats{Received: 5, Invocations: 1, Deleted: 3, ItemFailures: 2},
		},
		{
			name: "error keeps all",
			handler: func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
				return failFailing(ev), errors.New("batch unusable")
			},
			kept: bodies,
			want: Stats{Received: 5, Invocations: 1, Failures: 1},
		},
		{
			name: "unknown itemIdentifier keeps all",
			handler: func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
				return events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: "not-in-batch"}}}, nil
			},
			kept: bodies,
			want: Stats{Received: 5, Invocations: 1, Failures: 1},
		},
		{
			name: "empty itemIdentifier keeps all",
			handler: func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
				return events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{}}}, nil
			},
			kept: bodies,
			want: Stats{Received: 5, Invocations: 1, Failures: 1},
		},
		{
			name:    "panic keeps all",
			handler: func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) { panic("boom") },
			kept:    bodies,
			want:    Stats{Received: 5, Invocations: 1, Failures: 1, Crashes: 1},
		},
		{
			name: "crashed process keeps all",
			handler: func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
				return events.SQSEventResponse{}, fmt.Errorf("invoke: exit status 3: %w", ErrCrashed)
			},
			kept: bodies,
			want: Stats{Received: 5, Invocations: 1, Failures: 1, Crashes: 1},
		},
		{
			name: "timeout keeps all",
			handler: func(ctx context.Context, _ events.SQSEvent) (events.SQSEventResponse, error) {
				<-ctx.Done()
				return events.SQSEventResponse{}, nil // too late
			},
			kept: bodies,
			want: Stats{Received: 5, Invocations: 1, Failures: 1, Timeouts: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, arn := testQueue(t, c, time.Second)
			send(t, c, url, bodies...)
			ctx, stop := context.WithTimeout(context.Background(), runBound)
			defer stop()
			p := &Poller{
				Client: c, Logger: testLogger(t), QueueURL: url, QueueARN: arn, BatchSize: 10, MaxConcurrency: 1,
				FunctionTimeout: 500 * time.Millisecond, WaitTime: time.Second,
				Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
					stop() // one invocation: the poller finishes it and stops
					if got, want := len(ev.Records), len(bodies); got != want {
						t.Errorf("batch size: got %d, want %d", got, want)
					}
					return tc.handler(ctx, ev)
				},
			}
			if err := p.Run(ctx); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if diff := cmp.Diff(tc.want, p.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			checkKept(t, c, url, tc.kept)
		})
	}
}

// TestPollerRedeliversAfterCrash: the first invocation panics, the poller survives, and the
// messages come back after the visibility timeout with ApproximateReceiveCount 2 and are
// deleted. It also checks each record's fields and the invocation's context.
func TestPollerRedeliversAfterCrash(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	c := awstest.SQS(cfg)
	url, arn := testQueue(t, c, time.Second)
	bodies := []string{`{"id":"A-1"}`, `{"id":"A-2"}`}
	send(t, c, url, bodies...)

	ctx, stop := context.WithTimeout(context.Background(), runBound)
	defer stop()
	const timeout = 5 * time.Second
	var (
		calls    atomic.Int32
		mu       sync.Mutex
		counts   = map[string][]string{} // body -> ApproximateReceiveCount of each delivery
		requests = map[string]bool{}
	)
	p := &Poller{
		Client: c, Logger: testLogger(t), QueueURL: url, QueueARN: arn, BatchSize: 10, MaxConcurrency: 1,
		FunctionTimeout: timeout, WaitTime: time.Second, FunctionName: "dispatch",
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			start := time.Now()
			mu.Lock()
			defer mu.Unlock()
			lc, ok := lambdacontext.FromContext(ctx)
			if !ok || lc.AwsRequestID == "" || requests[lc.AwsRequestID] {
				t.Errorf("lambdacontext: got %+v, want a new request id", lc)
			} else {
				requests[lc.AwsRequestID] = true
				if got, want := lc.InvokedFunctionArn, "arn:aws:lambda:us-east-1:123456789012:function:dispatch"; got != want {
					t.Errorf("InvokedFunctionArn: got %s, want %s", got, want)
				}
			}
			if d, ok := ctx.Deadline(); !ok || d.After(start.Add(timeout)) {
				t.Errorf("deadline: got %v (set %v), want at most %v from the call", d, ok, timeout)
			}
			for _, r := range ev.Records {
				checkRecord(t, r, arn)
				counts[r.Body] = append(counts[r.Body], r.Attributes["ApproximateReceiveCount"])
			}
			if calls.Add(1) == 1 {
				panic("crash on first delivery")
			}
			done := 0
			for _, b := range bodies {
				if len(counts[b]) >= 2 {
					done++
				}
			}
			if done == len(bodies) {
				stop()
			}
			return events.SQSEventResponse{}, nil
		},
	}
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := map[string][]string{bodies[0]: {"1", "2"}, bodies[1]: {"1", "2"}}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("ApproximateReceiveCount per delivery (-want +got):\n%s", diff)
	}
	st := p.Stats()
	if st.Crashes != 1 || st.Deleted != 2 {
		t.Errorf("stats: got %+v, want 1 crash and 2 deleted", st)
	}
	if got, want := depth(t, c, url), 0; got != want {
		t.Errorf("queue depth: got %d, want %d", got, want)
	}
}

// checkRecord checks the fields Lambda fills in a record.
func checkRecord(t *testing.T, r events.SQSMessage, arn string) {
	t.Helper()
	sum := md5.Sum([]byte(r.Body))
	for _, f := range []struct{ name, got, want string }{
		{"eventSource", r.EventSource, "aws:sqs"},
		{"eventSourceARN", r.EventSourceARN, arn},
		{"awsRegion", r.AWSRegion, "us-east-1"},
		{"md5OfBody", r.Md5OfBody, hex.EncodeToString(sum[:])},
		{"OrderId attribute", aws.ToString(r.MessageAttributes["OrderId"].StringValue), r.Body},
		{"OrderId dataType", r.MessageAttributes["OrderId"].DataType, "String"},
	} {
		if f.got != f.want {
			t.Errorf("%s: got %q, want %q", f.name, f.got, f.want)
		}
	}
	for _, a := range []string{"ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp", "SenderId"} {
		if r.Attributes[a] == "" {
			t.Errorf("attribute %s missing in %v", a, r.Attributes)
		}
	}
	if r.MessageId == "" || r.ReceiptHandle == "" || r.Md5OfMessageAttributes == "" {
		t.Errorf("messageId %q, receiptHandle %q, md5OfMessageAttributes %q: want all set", r.MessageId, r.ReceiptHandle, r.Md5OfMessageAttributes)
	}
}

func TestSQSHandler(t *testing.T) {
	t.Parallel()
	ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: "b"}}}
	for _, tc := range []struct {
		name    string
		out     string
		err     error
		want    events.SQSEventResponse
		wantErr bool
	}{
		{name: "null", out: "null"},
		{name: "empty", out: ""},
		{name: "failures", out: `{"batchItemFailures":[{"itemIdentifier":"m1"}]}`,
			want: events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: "m1"}}}},
		{name: "not JSON", out: "oops", wantErr: true},
		{name: "invoke error", err: ErrCrashed, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var payload []byte
			h := SQSHandler(func(_ context.Context, p []byte) ([]byte, error) {
				payload = p
				return []byte(tc.out), tc.err
			})
			got, err := h(context.Background(), ev)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error: got %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			var sent events.SQSEvent
			if err := json.Unmarshal(payload, &sent); err != nil || len(sent.Records) != 1 || sent.Records[0].MessageId != "m1" {
				t.Errorf("payload %s: want the SQS event JSON (%v)", payload, err)
			}
		})
	}
}

// receiveCounter wraps the real client to count the receives in flight at once.
type receiveCounter struct {
	*sqs.Client
	in, max atomic.Int32
}

func (r *receiveCounter) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	n := r.in.Add(1)
	defer r.in.Add(-1)
	for old := r.max.Load(); n > old && !r.max.CompareAndSwap(old, n); old = r.max.Load() {
	}
	return r.Client.ReceiveMessage(ctx, in, optFns...)
}

// receiveSignal wraps the real client to tell when a receive starts.
type receiveSignal struct {
	*sqs.Client
	receiving chan struct{}
}

func (r receiveSignal) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	select {
	case r.receiving <- struct{}{}:
	default:
	}
	return r.Client.ReceiveMessage(ctx, in, optFns...)
}

// TestPollerStopReleasesReceived stops the poller during a long poll and then sends a message:
// the poll receives it, and the poller makes it visible again instead of invoking the handler
// or leaving it invisible for the visibility timeout.
func TestPollerStopReleasesReceived(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	c := awstest.SQS(cfg)
	url, arn := testQueue(t, c, time.Minute)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var calls atomic.Int32
	p := &Poller{
		Client: receiveSignal{c, make(chan struct{}, 1)}, Logger: testLogger(t), QueueURL: url, QueueARN: arn,
		MaxConcurrency: 1, WaitTime: 5 * time.Second,
		Handler: func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
			calls.Add(1)
			return events.SQSEventResponse{}, nil
		},
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-p.Client.(receiveSignal).receiving
	stop()
	send(t, c, url, "late")
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := calls.Load(); got != 0 {
		t.Errorf("handler calls after stop: got %d, want 0", got)
	}
	if got, want := p.Stats().Released, int64(1); got != want {
		t.Errorf("Stats.Released: got %d, want %d (%+v)", got, want, p.Stats())
	}
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		t.Fatalf("queue attributes: %v", err)
	}
	if got, want := out.Attributes["ApproximateNumberOfMessages"], "1"; got != want {
		t.Errorf("visible messages after the stop: got %s, want %s", got, want)
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// deadAfterBatches is the orders queue of an ingest that dies after n batches: later sends
// never return (until release is closed), so the invocation writes nothing more, as after a
// kill -9.
type deadAfterBatches struct {
	*sqs.Client
	n       int
	mu      sync.Mutex
	sent    int
	dead    chan struct{} // closed at the first send that never returns
	release chan struct{}
}

func (q *deadAfterBatches) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	q.mu.Lock()
	q.sent++
	if q.sent == q.n+1 {
		close(q.dead)
	}
	dead := q.sent > q.n
	q.mu.Unlock()
	if dead {
		<-q.release
		return nil, context.Canceled
	}
	return q.Client.SendMessageBatch(ctx, in, o...)
}

// TestStatusShowsKilledIngest: an ingest invocation dies part way through a file. status run at
// once shows the file in flight; a little over a minute later (its clock moved on) it calls it
// silent with a warning, as no checkpoint came; past the claim's lease it is stalled.
func TestStatusShowsKilledIngest(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	s3c := awstest.S3(cfg)
	bucket := awstest.NewBucket(t, cfg)
	queues := pipelineQueues(t, 0, 14*24*time.Hour)
	filesURL, ordersURL := queues[slices.Index(queues, "--files-queue")+1], queues[slices.Index(queues, "--orders-queue")+1]
	icfg, err := ingest.LoadConfig(func(k string) string {
		return map[string]string{ingest.EnvOrdersQueueURL: ordersURL, ingest.EnvFilesQueueURL: filesURL}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	const key = "uploads/killed.jsonl"
	var body bytes.Buffer
	for i := range 300 {
		fmt.Fprintf(&body, `{"id":"k-%d"}`+"\n", i)
	}
	if _, err := s3c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: bytes.NewReader(body.Bytes())}); err != nil {
		t.Fatal(err)
	}
	q := &deadAfterBatches{Client: awstest.SQS(cfg), n: 3, dead: make(chan struct{}), release: make(chan struct{})}
	ictx, cancel := context.WithTimeout(context.Background(), 4*time.Minute) // Lambda's deadline
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = ingest.New(icfg, s3c, q, ingest.Options{}).Ingest(ictx, s3event.Record{EventName: "ObjectCreated:Put", Bucket: bucket, Key: key}, "")
	})
	t.Cleanup(func() { close(q.release); cancel(); wg.Wait() })
	select {
	case <-q.dead:
	case <-time.After(awstest.Scale(t, q.Client, time.Minute)):
		t.Fatal("ingest never sent its fourth batch")
	}

	args := append([]string{"status", "--json", "--bucket", bucket, "--endpoint", awstest.Endpoint()}, queues...)
	statusAt := func(after time.Duration) fileProgress {
		t.Helper()
		var out, errb bytes.Buffer
		c := &cli{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, clock: func() time.Time { return time.Now().Add(after) }}
		var r statusReport
		mustJSON(t, result{code: c.main(context.Background(), args), stdout: out.String(), stderr: errb.String()}, &r)
		for _, f := range r.Files {
			if f.Key == key {
				silentWarned := slices.ContainsFunc(r.Warnings, func(w string) bool {
					return strings.HasPrefix(w, "files: s3://"+bucket+"/"+key+" has had no checkpoint")
				})
				if silentWarned != f.Silent {
					t.Errorf("status %v on: file silent %v, warning about it %v; want both or neither: %q", after, f.Silent, silentWarned, r.Warnings)
				}
				return f
			}
		}
		t.Fatalf("status %v after the kill does not show %s: %+v", after, key, r.Files)
		return fileProgress{}
	}
	if f := statusAt(0); f.Status != ingest.StatusRunning || f.Silent || f.Stalled || f.StartedAt.IsZero() {
		t.Errorf("status at once: %+v; want the file in flight (running, since its claim), neither silent nor stalled", f)
	}
	if f := statusAt(silentAfter + time.Second); !f.Silent || f.Stalled {
		t.Errorf("status %v on: %+v; want it silent, not yet stalled", silentAfter+time.Second, f)
	}
	if f := statusAt(4*time.Minute + icfg.LeaseSlack + time.Second); !f.Stalled || f.Silent {
		t.Errorf("status past the lease: %+v; want it stalled", f)
	}
}

package local

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/orderpipe/orderpipe/internal/awstest"
)

// BenchmarkProcessInvoke measures one round trip through the local Runtime API to the compiled
// echo function: queue, GET next, handler, POST response.
func BenchmarkProcessInvoke(b *testing.B) {
	p := &Process{Path: buildFunction(b, "testdata/echofn"), FunctionName: "echo", Output: io.Discard}
	if err := p.Start(); err != nil {
		b.Fatalf("Start: %v", err)
	}
	defer p.Close()
	payload := []byte(`{"action":"echo"}`)
	ctx := context.Background()
	start := time.Now()
	for b.Loop() {
		if _, err := p.Invoke(ctx, payload); err != nil {
			b.Fatalf("Invoke: %v", err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "invokes/s")
}

// BenchmarkPollerDrain measures how fast one running Poller drains 100 messages from the
// stand-in with a handler that does nothing, per batch size and concurrency: the runner's own
// ceiling, far above the order API's 1 request/s. Sending is not timed.
func BenchmarkPollerDrain(b *testing.B) {
	const n = 100
	for _, bc := range []struct{ batch, concurrency int }{{1, 1}, {1, 2}, {10, 2}} {
		b.Run(fmt.Sprintf("batch=%d/concurrency=%d", bc.batch, bc.concurrency), func(b *testing.B) {
			cfg := awstest.Config(b)
			c := awstest.SQS(cfg)
			url, arn := testQueue(b, c, 30*time.Second)
			bodies := make([]string, n)
			for i := range bodies {
				bodies[i] = fmt.Sprint(i)
			}
			drained := make(chan struct{}, 1)
			var handled atomic.Int64
			p := &Poller{
				Client: c, QueueURL: url, QueueARN: arn, BatchSize: bc.batch, MaxConcurrency: bc.concurrency,
				WaitTime: time.Second, Logger: slog.New(slog.DiscardHandler),
				Handler: func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
					if handled.Add(int64(len(ev.Records)))%n == 0 {
						drained <- struct{}{}
					}
					return events.SQSEventResponse{}, nil
				},
			}
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				send(b, c, url, bodies...)
				b.StartTimer()
				start := time.Now()
				<-drained
				total += time.Since(start)
			}
			stop()
			if err := <-done; err != nil {
				b.Fatalf("Run: %v", err)
			}
			if got, want := p.Stats().Deleted, int64(n*b.N); got != want {
				b.Fatalf("deleted %d, want %d", got, want)
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "msgs/s")
		})
	}
}

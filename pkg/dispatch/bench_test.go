package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
)

// nopQueue accepts every visibility change and send: the benchmark measures pacing and the API
// round trip; SQS requests are counted and costed in docs/BENCHMARKS.md instead.
type nopQueue struct{ visibility, sends atomic.Int64 }

func (q *nopQueue) ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	q.visibility.Add(1)
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func (q *nopQueue) SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	q.sends.Add(1)
	return &sqs.SendMessageOutput{}, nil
}

// BenchmarkDispatch runs b.N orders through two dispatch instances (each paced at 10 rps, one
// order per invocation) against the stand-in API limited to 20 rps with 50 ms latency. A
// throttled order is handed to its instance again, as the queue would after Retry-After.
// Run with a fixed count, e.g. -benchtime 400x (about 20 s).
//
// Sub-benchmarks: the API's bucket holding 2 requests (one per instance) or 1, and the instances
// pacing at the full limit or at half of it (API_RATE set to half the API's limit).
func BenchmarkDispatch(b *testing.B) {
	for _, c := range []struct {
		burst int
		pace  float64
	}{{2, 1}, {1, 1}, {1, 0.5}} {
		b.Run(fmt.Sprintf("apiBurst=%d/pace=%v", c.burst, c.pace), func(b *testing.B) { benchDispatch(b, 20, c.burst, c.pace) })
	}
}

// BenchmarkDispatchOneRPS is the production shape: the API at 1 request/s, two instances at
// 0.5/s each. Each order takes about a second: run it with -benchtime 20x.
func BenchmarkDispatchOneRPS(b *testing.B) { benchDispatch(b, 1, 2, 1) }

// benchDispatch runs the orders against an API limited to apiRate (bucket apiBurst) with
// API_RATE = pace * apiRate.
func benchDispatch(b *testing.B, apiRate float64, apiBurst int, pace float64) {
	const instances = 2
	api, err := apiserver.New(apiserver.Config{RPS: apiRate, Burst: apiBurst, Latency: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(api)
	defer ts.Close()
	cfg := dispatch.Config{OrdersQueueURL: "http://queue/orders", DLQURL: "http://queue/dlq", APIBaseURL: ts.URL, APITimeout: 5 * time.Second,
		APIRate: apiRate * pace, APIInstances: instances, MaxAttempts: 8, BackoffBase: time.Second, BackoffMax: time.Minute, FunctionName: "bench"}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	var visChanges, resends atomic.Int64
	var next atomic.Int64 // next order number to take
	type instance struct {
		metrics  bytes.Buffer
		handleNs []int64
		queue    *nopQueue
	}
	insts := make([]*instance, instances)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range insts {
		in := &instance{}
		insts[i] = in
		client, err := orderapi.New(cfg.OrderAPI(), orderapi.Options{})
		if err != nil {
			b.Fatal(err)
		}
		q := &nopQueue{}
		in.queue = q
		d := dispatch.New(cfg, q, client, dispatch.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: &in.metrics})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				ev := benchEvent(n, 1)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					t0 := time.Now()
					resp, _ := d.Handle(ctx, ev)
					in.handleNs = append(in.handleNs, time.Since(t0).Nanoseconds())
					cancel()
					switch sent := in.queue.sends.Swap(0); {
					case sent > 0: // re-sent as a fresh message (throttled or given back)
						resends.Add(sent)
						ev = benchEvent(n, 1)
					case len(resp.BatchItemFailures) > 0:
						ev = benchEvent(n, receiveCountOf(ev)+1)
					default:
						ev.Records = nil
					}
					if ev.Records == nil {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	st := api.Stats()
	var handleNs, waitMs, latencyMs float64
	invocations := 0
	for _, in := range insts {
		visChanges.Add(in.queue.visibility.Load())
		for _, ns := range in.handleNs {
			handleNs += float64(ns)
		}
		invocations += len(in.handleNs)
		for _, line := range strings.Split(strings.TrimSpace(in.metrics.String()), "\n") {
			if line == "" {
				continue
			}
			var m struct{ PacingWait, ApiLatency []float64 }
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				b.Fatalf("EMF line %q: %v", line, err)
			}
			for _, v := range m.PacingWait {
				waitMs += v
			}
			for _, v := range m.ApiLatency {
				latencyMs += v
			}
		}
	}
	orders := float64(b.N)
	// Utilisation: accepted orders over the most the API's token bucket could accept in the
	// run's wall time (a full bucket, then the rate).
	b.ReportMetric(100*float64(st.Accepted)/(float64(apiBurst)+elapsed.Seconds()*apiRate), "util%")
	b.ReportMetric(100*float64(st.Throttled)/float64(max(st.Requests, 1)), "429%")
	b.ReportMetric(float64(st.Duplicates), "dupPUTs")
	b.ReportMetric((handleNs/1e6-waitMs-latencyMs)/float64(invocations), "overhead-ms/inv")
	b.ReportMetric((waitMs+latencyMs)/orders, "billed-idle-ms/order")
	b.ReportMetric(waitMs/orders, "wait-ms/order")
	b.ReportMetric(float64(invocations)/orders, "inv/order")
	b.ReportMetric(float64(visChanges.Load())/orders, "visChanges/order")
	b.ReportMetric(float64(resends.Load())/orders, "resends/order")
	if st.Accepted != b.N {
		b.Errorf("accepted %d orders, want %d", st.Accepted, b.N)
	}
}

func benchEvent(n int64, receiveCount int) events.SQSEvent {
	id := "B-" + strconv.FormatInt(n, 10)
	return events.SQSEvent{Records: []events.SQSMessage{{
		MessageId:         id + "-" + strconv.Itoa(receiveCount),
		Body:              `{"id":"` + id + `","amount":"10.00"}`,
		Attributes:        map[string]string{"ApproximateReceiveCount": strconv.Itoa(receiveCount)},
		MessageAttributes: map[string]events.SQSMessageAttribute{order.AttrOrderID: {DataType: "String", StringValue: &id}},
	}}}
}

func receiveCountOf(ev events.SQSEvent) int {
	n, _ := strconv.Atoi(ev.Records[0].Attributes["ApproximateReceiveCount"])
	return n
}

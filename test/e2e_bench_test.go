package test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
)

// BenchmarkE2EThroughput measures how close the whole pipeline comes to the order API's rate,
// the one number that matters for a throttled API, at API_RATE 2 and 20 requests/s: each
// iteration uploads a file of 5 s worth of orders and waits until the stand-in API has accepted
// all of them. Metrics:
//   - api-rate-%: the delivery rate between the first and the last delivery, as a percentage of
//     API_RATE (two dispatch instances, each pacing at API_RATE/2);
//   - ms-to-first: from the upload to the first delivery (S3 event, ingest, queue, dispatch);
//   - ms-total: from the upload to the last delivery;
//   - throttled: 429 answers per iteration (pacing should leave none).
//
// Two stand-ins, both answering in 50 ms: "strict" has the real API's shape, a token bucket at
// API_RATE with burst 1 (429 beyond); "lenient" allows twice API_RATE with burst 4.
// Run: go test ./test -run '^$' -bench E2EThroughput -benchtime 3x (about 90 s).
func BenchmarkE2EThroughput(b *testing.B) {
	for _, api := range []struct {
		name   string
		factor float64 // the stand-in's limit is factor x API_RATE
		burst  int
	}{
		{"strict", 1, 1},  // the real API's shape: API_RATE, burst 1
		{"lenient", 2, 4}, // room above API_RATE: pacing alone sets the pace
	} {
		for _, rate := range []float64{2, 20} {
			b.Run(fmt.Sprintf("api=%s/rate=%g", api.name, rate), func(b *testing.B) {
				plan := apiserver.Config{RPS: api.factor * rate, Burst: api.burst, Latency: 50 * time.Millisecond}
				benchThroughput(b, rate, int(5*rate), plan)
			})
		}
	}
}

// benchThroughput runs BenchmarkE2EThroughput at API_RATE rate with files of n orders against
// a stand-in with plan.
func benchThroughput(b *testing.B, rate float64, n int, plan apiserver.Config) {
	p := newE2E(b, e2eOptions{apiRate: rate, plan: plan})
	p.start(b)
	var toFirst, total, pacing time.Duration
	iter := 0
	for b.Loop() {
		iter++
		var body bytes.Buffer
		for j := 1; j <= n; j++ {
			fmt.Fprintf(&body, `{"id":"b%d-%03d","amount":"%d.00"}`+"\n", iter, j, j)
		}
		before := p.api.Stats()
		start := time.Now()
		p.upload(b, fmt.Sprintf("uploads/bench-%d.jsonl", iter), body.Bytes())
		var first time.Time
		for {
			done := p.api.Stats().Deliveries - before.Deliveries
			if done > 0 && first.IsZero() {
				first = time.Now()
			}
			if done >= n {
				break
			}
			if time.Since(start) > 2*time.Minute {
				b.Fatalf("iteration %d: %d of %d orders delivered after 2 min", iter, done, n)
			}
			time.Sleep(2 * time.Millisecond)
		}
		last := time.Now()
		toFirst += first.Sub(start)
		total += last.Sub(start)
		pacing += last.Sub(first)
	}
	st := p.api.Stats()
	if st.Duplicates != 0 {
		b.Errorf("%d duplicate deliveries, want 0", st.Duplicates)
	}
	perIter := float64(iter)
	b.ReportMetric(100*float64((n-1)*iter)/pacing.Seconds()/rate, "api-rate-%")
	b.ReportMetric(float64(toFirst.Milliseconds())/perIter, "ms-to-first")
	b.ReportMetric(float64(total.Milliseconds())/perIter, "ms-total")
	b.ReportMetric(float64(st.Throttled)/perIter, "throttled")
	b.ReportMetric(0, "ns/op") // an iteration's time is the metrics above; ns/op would only repeat ms-total
}

package clock

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// BenchmarkSleepLateness: how late Sleep returns (its nanosleep tail) against a plain Go timer,
// for waits of 10-50 ms (a dispatch sender's wait for its slot at 20 rps). One op is one wait
// of each; it reports the 50th, 90th and 99th percentiles of the lateness in µs.
func BenchmarkSleepLateness(b *testing.B) {
	var sleep, timer []time.Duration
	ctx := context.Background()
	for b.Loop() {
		d := time.Duration(10+rand.IntN(40)) * time.Millisecond
		end := time.Now().Add(d)
		_ = Sleep(ctx, d)
		sleep = append(sleep, time.Since(end))
		d = time.Duration(10+rand.IntN(40)) * time.Millisecond
		end = time.Now().Add(d)
		<-time.NewTimer(d).C
		timer = append(timer, time.Since(end))
	}
	for _, s := range []struct {
		name string
		late []time.Duration
	}{{"sleep", sleep}, {"timer", timer}} {
		slices.Sort(s.late)
		n := len(s.late)
		b.ReportMetric(float64(s.late[n/2])/1e3, s.name+"-late-us-p50")
		b.ReportMetric(float64(s.late[n*9/10])/1e3, s.name+"-late-us-p90")
		b.ReportMetric(float64(s.late[n*99/100])/1e3, s.name+"-late-us-p99")
	}
}

package backoff_test

import (
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/backoff"
)

func TestPolicy(t *testing.T) {
	const maxDuration = time.Duration(1<<63 - 1)
	for _, tc := range []struct {
		name    string
		p       backoff.Policy
		attempt int
		r       float64
		ceiling time.Duration
		want    time.Duration
	}{
		{"first attempt", backoff.Policy{Base: 2 * time.Second, Max: time.Minute}, 1, 0.5, 2 * time.Second, time.Second},
		{"attempt 0 counts as 1", backoff.Policy{Base: 2 * time.Second, Max: time.Minute}, 0, 0.5, 2 * time.Second, time.Second},
		{"negative attempt", backoff.Policy{Base: 2 * time.Second, Max: time.Minute}, -3, 0.5, 2 * time.Second, time.Second},
		{"doubles", backoff.Policy{Base: 2 * time.Second, Max: time.Minute}, 4, 0.25, 16 * time.Second, 4 * time.Second},
		{"capped", backoff.Policy{Base: 2 * time.Second, Max: time.Minute}, 6, 0.5, time.Minute, 30 * time.Second},
		{"huge attempt capped", backoff.Policy{Base: 100 * time.Millisecond, Max: 10 * time.Second}, 1 << 30, 0, 10 * time.Second, 0},
		{"draw near 1 stays below the ceiling", backoff.Policy{Base: time.Second, Max: time.Second}, 1, 0.999, time.Second, 999 * time.Millisecond},
		{"base above max", backoff.Policy{Base: time.Hour, Max: time.Minute}, 1, 0.5, time.Minute, 30 * time.Second},
		{"no max: no overflow", backoff.Policy{Base: time.Hour}, 200, 0, maxDuration, 0},
		{"zero base waits nothing", backoff.Policy{Max: time.Minute}, 5, 0.9, 0, 0},
		{"zero value", backoff.Policy{}, 3, 0.5, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Ceiling(tc.attempt); got != tc.ceiling {
				t.Errorf("Ceiling(%d) = %v, want %v", tc.attempt, got, tc.ceiling)
			}
			if got := tc.p.FullJitter(tc.attempt, tc.r); got != tc.want {
				t.Errorf("FullJitter(%d, %v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
			}
		})
	}
}

// Package backoff is the project's one exponential backoff with full jitter: attempt n waits a
// uniform random time in [0, min(Max, Base*2^(n-1))).
package backoff

import "time"

// Policy is an exponential backoff. The zero value waits nothing. A Policy is a value: safe for
// concurrent use.
type Policy struct {
	Base time.Duration // the ceiling of the first attempt; <= 0 waits nothing
	Max  time.Duration // the largest ceiling; <= 0 means no cap besides overflow
}

// Ceiling is the longest wait of attempt: min(Max, Base*2^(attempt-1)), without overflow. An
// attempt below 1 counts as 1.
func (p Policy) Ceiling(attempt int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	limit := p.Max
	if limit <= 0 {
		limit = 1<<63 - 1
	}
	c := min(p.Base, limit)
	for n := max(attempt, 1) - 1; n > 0 && c < limit; n-- {
		if c > limit/2 {
			return limit
		}
		c *= 2
	}
	return c
}

// FullJitter is the wait of attempt for the random draw r in [0, 1): r * Ceiling(attempt).
func (p Policy) FullJitter(attempt int, r float64) time.Duration {
	return time.Duration(r * float64(p.Ceiling(attempt)))
}

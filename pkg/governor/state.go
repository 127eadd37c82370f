package governor

import (
	"math"
	"time"
)

// State is the shared record: the schedule, the adaptive rate, the pause and the breaker. Times
// are in the clock of the instance that wrote them. The zero value is "no record".
type State struct {
	// Version counts writes; every write is conditional on the version read (0: no record;
	// -1: a record whose version is unusable, which is replaced).
	Version int64

	Last time.Time // start of the last reserved slot
	// Late is the latest its sender may send (Last + the margin it was reserved with): the
	// next slot starts 1/rate (+ skew) after it. Zero (a record written without it): Last +
	// Config.Margin.
	Late time.Time
	By   string // instance that reserved it

	Rate        float64   // current rate, requests/s; <= 0 means the ceiling
	Good        float64   // highest rate sustained since the last cut; 0: unknown
	Run         int       // successes in a row at the current rate, up to Config.Proof
	CutAt       time.Time // last multiplicative decrease
	RaisedAt    time.Time // last additive increase
	ThrottledAt time.Time // last 429 seen

	PausedUntil time.Time // no request before then (Retry-After, RateLimit reset)
	Policy      float64   // quota/window of the API's RateLimit-Policy; 0: none seen

	Failures int       // 5xx, timeouts and connection errors in a row, across instances
	OpenedAt time.Time // the breaker opened then; zero: closed
	ProbeAt  time.Time // while open: the next probe may start then
}

// Open reports whether the breaker is open.
func (s State) Open() bool { return !s.OpenedAt.IsZero() }

// late is the end of the last slot: Late, or Last + floor when the record has none.
func (s State) late(floor time.Duration) time.Time {
	if s.Late.IsZero() {
		return s.Last.Add(floor)
	}
	if s.Late.Before(s.Last) {
		return s.Last
	}
	return s.Late
}

// rate is the rate in force under the ceiling: the adaptive rate, capped by the API's policy.
func (s State) rate(ceiling float64) float64 {
	r := ceiling
	if s.Rate > 0 && s.Rate < r {
		r = s.Rate
	}
	if s.Policy > 0 && s.Policy < r {
		r = s.Policy
	}
	return r
}

// interval is 1/rate as a duration, at most a day (a rate near 0 must not overflow).
func interval(rate float64) time.Duration {
	if !(rate > 0) {
		return 24 * time.Hour
	}
	return time.Duration(math.Min(float64(time.Second)/rate, float64(24*time.Hour)))
}

// fresh is a new record written at now: the schedule's first slot is one interval (plus the
// margins) away, since a request of a lost record's schedule may just have gone; full rate,
// breaker closed.
func fresh(cfg Config, now time.Time) State {
	return State{Last: now, Late: now.Add(cfg.Margin), By: "", Rate: cfg.Rate}
}

// Kind is what an answer of the API says about the API.
type Kind int

// Outcome kinds.
const (
	Answered  Kind = iota + 1 // any answer other than a throttle or a 5xx: the API is up
	Throttled                 // 429: the API wants less
	Failed                    // 5xx (503 included), timeout, connection error: the API may be down
)

// Outcome is one request's result, as Report takes it.
type Outcome struct {
	Kind Kind
	// RetryAfter, when HasRetryAfter, pauses every instance for that long.
	RetryAfter    time.Duration
	HasRetryAfter bool
	// PolicyRate is the API's RateLimit-Policy quota/window, requests/s; 0: none sent.
	PolicyRate float64
	// Remaining and Reset are the API's RateLimit r and t; Remaining 0 pauses everyone for
	// Reset. HasRemaining says whether they were sent.
	Remaining    int
	Reset        time.Duration
	HasRemaining bool
}

// apply returns the state after outcome o of a request that started in slot at, observed at
// now, and whether anything changed (nothing to write otherwise).
func (s State) apply(cfg Config, o Outcome, at, now time.Time) (State, bool) {
	n := s
	pause := func(d time.Duration) {
		if until := now.Add(d); until.After(n.PausedUntil) {
			n.PausedUntil = until
		}
	}
	if o.HasRetryAfter && (o.Kind == Throttled || o.Kind == Failed) {
		pause(o.RetryAfter)
	}
	if o.HasRemaining && o.Remaining <= 0 && o.Reset > 0 {
		pause(o.Reset)
	}
	if o.PolicyRate > 0 && o.PolicyRate != n.Policy {
		n.Policy = o.PolicyRate
	}
	ceiling := cfg.Rate
	cur := s.rate(ceiling)
	switch o.Kind {
	case Answered, Throttled:
		n.Failures, n.OpenedAt, n.ProbeAt = 0, time.Time{}, time.Time{}
	case Failed:
		n.Failures++
		if !n.Open() && n.Failures >= cfg.FailureThreshold {
			n.OpenedAt, n.ProbeAt = now, now.Add(cfg.ProbeInterval)
		}
	}
	switch o.Kind {
	case Throttled:
		n.ThrottledAt = now
		// A lone 429 at a proven rate (a request that reached the API a little early: network
		// or scheduling jitter) only pauses. The rate is cut when the 429s repeat (another
		// congestion event, a request reserved after the last 429, within ThrottleWindow and
		// RepeatSlots slots of it)
		// or when the rate in force is neither the API's advertised one nor proven yet by Proof
		// successes in a row (the API's limit is below it, or a raise overshot). Requests reserved before the last cut answer
		// for the old rate.
		repeated := !s.ThrottledAt.IsZero() && at.After(s.ThrottledAt) && now.Sub(s.ThrottledAt) < min(cfg.ThrottleWindow, RepeatSlots*interval(cur))
		// The API's own RateLimit-Policy needs no proof: a 429 at the rate it advertises is jitter.
		advertised := n.Policy > 0 && n.Policy <= cur
		unproven := s.Run < cfg.Proof && !advertised
		if (repeated || unproven) && (at.After(s.CutAt) || s.CutAt.IsZero()) {
			next := cur * cfg.Decrease
			n.Run = 0
			if cur > s.Good && s.Good > 0 {
				next = math.Max(next, s.Good) // the rate that held before the last raise
				if next == s.Good {
					n.Run = cfg.Proof // proven before the raise
				}
			} else {
				n.Good = 0 // throttled at or below the rate thought good: forget it
			}
			n.Rate = math.Max(next, cfg.MinRate)
			n.CutAt = now
			if !o.HasRetryAfter {
				pause(interval(n.Rate))
			}
		}
	case Answered:
		if s.Run < cfg.Proof && at.After(s.CutAt) && at.After(s.RaisedAt) {
			n.Run = s.Run + 1 // a success at the current rate
		}
		if cur < ceiling && (s.CutAt.IsZero() || now.Sub(s.CutAt) >= cfg.Hold) && at.After(s.RaisedAt) {
			n.Good = math.Max(s.Good, cur)
			n.Rate = math.Min(ceiling, cur+cfg.Step*ceiling)
			n.RaisedAt = now
			n.Run = 0
		}
	}
	return n, !equal(n, s)
}

func equal(a, b State) bool {
	return a.Version == b.Version && a.Last.Equal(b.Last) && a.Late.Equal(b.Late) && a.By == b.By && a.Rate == b.Rate &&
		a.Good == b.Good && a.Run == b.Run && a.CutAt.Equal(b.CutAt) && a.RaisedAt.Equal(b.RaisedAt) && a.ThrottledAt.Equal(b.ThrottledAt) &&
		a.PausedUntil.Equal(b.PausedUntil) && a.Policy == b.Policy && a.Failures == b.Failures &&
		a.OpenedAt.Equal(b.OpenedAt) && a.ProbeAt.Equal(b.ProbeAt)
}

package governor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultDecrease       = 0.5
	DefaultStep           = 0.05
	DefaultHold           = time.Minute
	DefaultThrottleWindow = 10 * time.Second
	// RepeatSlots bounds the throttle window in slots: at 20 requests/s a 429 is a repeat
	// within 1 s, not 10 s (200 requests, in which a request or two reaching the API early
	// is jitter, not a limit below the rate).
	RepeatSlots             = 20
	DefaultProof            = 10
	DefaultFailureThreshold = 5
	DefaultProbeInterval    = 30 * time.Second
	DefaultMinMargin        = 5 * time.Millisecond
	DefaultMaxMargin        = 20 * time.Millisecond
	DefaultStoreTimeout     = 2 * time.Second
	DefaultConflicts        = 16
)

// Config shapes a Governor. Rate is required; every other zero field takes its default.
type Config struct {
	Rate float64 // the ceiling, requests/s: API_RATE

	// Margin is the floor of the margin: how late a sender may wake and still use its slot (a
	// later wake-up gives the slot up), and what is added after its slot before the next one.
	// The margin in use adapts to this Governor's measured wake-ups (Woke) above it, up to
	// MaxMarginShare of 1/rate. Default: 2 % of 1/Rate, within [DefaultMinMargin,
	// DefaultMaxMargin]: a timer wakes a little late even on an idle host, and a write can be
	// held up after it (measured on a 2-core host: 1-5 ms at the 99th percentile at 20 rps; a
	// 1 ms floor there lost more slots to late senders, and drew more 429s, than 5 ms costs).
	Margin time.Duration
	// Skew is the most two instances' clocks may differ; it is added between two slots taken
	// by different instances. Default 0.
	Skew time.Duration

	Decrease float64       // multiplicative decrease on a throttle, default 0.5
	Step     float64       // additive increase per success, a fraction of Rate, default 0.05
	Hold     time.Duration // no increase for this long after a cut, default 1m
	// ThrottleWindow: a 429 within this long of the previous one, and within RepeatSlots
	// slots at the rate in force, is a repeat and cuts the rate; a lone 429 only pauses.
	// Default 10s.
	ThrottleWindow time.Duration
	// Proof: successes in a row at a rate that prove it. A 429 at a rate not yet proven cuts
	// it at once (the API's limit is below it); at a proven rate a lone 429 only pauses.
	// Default 10.
	Proof   int
	MinRate float64 // floor of the adaptive rate, default Rate/16

	FailureThreshold int           // failures in a row that open the breaker, default 5
	ProbeInterval    time.Duration // one probe per interval while open, default 30s

	StoreTimeout time.Duration // per store call, default 2s
	Conflicts    int           // conditional-write conflicts tolerated per call, default 16

	Instance string // this instance's name in the record; default: random
}

func (c Config) withDefaults() (Config, error) {
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		return c, fmt.Errorf("governor: rate %v: want a finite number > 0", c.Rate)
	}
	if c.Margin <= 0 {
		c.Margin = min(max(interval(c.Rate)/50, DefaultMinMargin), DefaultMaxMargin)
	}
	if c.Skew < 0 {
		return c, fmt.Errorf("governor: skew %v: want >= 0", c.Skew)
	}
	if !(c.Decrease > 0 && c.Decrease < 1) {
		c.Decrease = DefaultDecrease
	}
	if !(c.Step > 0 && c.Step <= 1) {
		c.Step = DefaultStep
	}
	if c.Hold <= 0 {
		c.Hold = DefaultHold
	}
	if c.ThrottleWindow <= 0 {
		c.ThrottleWindow = DefaultThrottleWindow
	}
	if c.Proof < 1 {
		c.Proof = DefaultProof
	}
	if !(c.MinRate > 0) || c.MinRate > c.Rate {
		c.MinRate = c.Rate / 16
	}
	if c.FailureThreshold < 1 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.Conflicts < 1 {
		c.Conflicts = DefaultConflicts
	}
	if c.Instance == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.Instance = hex.EncodeToString(b[:])
	}
	return c, nil
}

// Store holds the one shared State. A Store that is also a sync.Locker is held across each
// read-modify-write of the Governors sharing it (DynamoStore: the Governors of one process). Implementations: the DynamoDB store (NewDynamoStore) and
// an in-process one (NewMemoryStore).
type Store interface {
	// Load returns the record. A missing record is the zero State and no error; a record that
	// cannot be read is returned as far as it could be decoded with an error wrapping
	// ErrCorrupt (its Version is -1 when the version itself is unusable).
	Load(ctx context.Context) (State, error)
	// Save writes next if the record still has prev's version (prev.Version 0: no record;
	// -1: an unusable version), and returns an error wrapping ErrConflict if not.
	Save(ctx context.Context, next State, prevVersion int64) error
}

// Advancer is a Store that takes the next slot of a busy or idle schedule in one atomic write,
// without reading the record first (DynamoStore: one conditional UpdateItem).
type Advancer interface {
	// Advance takes a slot when the record is as a expects: it exists with Late >= Last, has a's
	// Rate and Policy, its breaker is closed, and either (busy) Late + Gap >= Now, PausedUntil
	// <= Last and Late + Gap <= Latest: Last moves to Late + Gap; or (idle) Late + Gap < Now,
	// PausedUntil <= Now <= Latest: Last moves to Now. Late moves to the new Last + Margin. It
	// sets By, increments the version and returns the record as written. Otherwise it writes
	// nothing and returns an error wrapping ErrConflict. Busy says which case to try first.
	Advance(ctx context.Context, a Advance) (State, error)
}

// Advance is what Advancer.Advance expects of the record, and the slot it takes.
type Advance struct {
	Rate, Policy float64       // the record's Rate and Policy: Gap holds under them
	Gap          time.Duration // from the end of the last slot (its Late) to the next: 1/rate + Skew
	Margin       time.Duration // the new slot's margin: its Late is its start + Margin
	Now, Latest  time.Time     // the slot starts at Now or later, and no later than Latest
	By           string
	Busy         bool // try the busy case first
}

// take returns the record after a on st, and whether a's expectations hold (the one rule both
// Advancers apply).
func (a Advance) take(st State) (State, bool) {
	if st.Version <= 0 || st.Late.Before(st.Last) || st.Late.IsZero() || st.Rate != a.Rate || st.Policy != a.Policy || st.Open() {
		return st, false
	}
	next := st.Late.Add(a.Gap)
	switch {
	case !next.Before(a.Now) && !st.PausedUntil.After(st.Last) && !next.After(a.Latest):
		st.Last = next
	case next.Before(a.Now) && !st.PausedUntil.After(a.Now) && !a.Now.After(a.Latest):
		st.Last = a.Now
	default:
		return st, false
	}
	st.Late = st.Last.Add(a.Margin)
	st.By = a.By
	st.Version++
	return st, true
}

// Store errors.
var (
	ErrConflict = errors.New("governor record changed since it was read")
	ErrCorrupt  = errors.New("governor record unreadable")
)

// Clock is the governor's time.
type Clock interface{ Now() time.Time }

// Slot is a reserved start time for one request.
type Slot struct {
	At     time.Time     // the request may start at At, and at most Margin later
	Late   time.Time     // At + Margin: a sender awake after Late gives the slot up
	Margin time.Duration // the margin this slot was reserved with (the Governor's when reserved)
	Probe  bool          // the breaker is open and this request is its probe
	Rate   float64       // the rate in force when reserved, requests/s

	// quiet: when reserved, the record had no failures, a closed breaker, the full rate, proven,
	// and policy, the API's RateLimit-Policy rate then: an ordinary answer changes nothing.
	quiet  bool
	policy float64
}

// WaitError reasons.
const (
	ReasonFull   = "schedule full" // the next free slot is too far away
	ReasonPaused = "paused"        // a Retry-After or RateLimit reset holds everyone
	ReasonOpen   = "breaker open"  // the API keeps failing: only probes go
)

// WaitError is Reserve's answer when no slot is free before the caller's limit.
type WaitError struct {
	Until  time.Time // the earliest a slot could start
	Reason string    // ReasonFull, ReasonPaused or ReasonOpen
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("no request slot before %s: %s", e.Until.Format(time.RFC3339Nano), e.Reason)
}

// StoreError is an error of the shared store: nothing was reserved or recorded.
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return "governor store: " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// Governor paces, pauses and breaks for every instance sharing its Store. It is safe for
// concurrent use; it holds no state of its own besides the last state it read.
type Governor struct {
	cfg   Config
	store Store
	clock Clock

	mu    sync.Mutex
	seen  State         // the record as this Governor last read or wrote it; Version 0: none yet
	lead  time.Duration // how long a write to the store takes (a decaying maximum): see Reserve
	wakes wakeups       // this Governor's senders' recent wake-ups, for the margin
	paths wakeups       // how long its senders' requests took from the call to the written request
	busy  bool          // the last Advance found the schedule busy: try that case first
}

// New returns a Governor on store. clock nil means the system clock.
func New(cfg Config, store Store, clock Clock) (*Governor, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if clock == nil {
		clock = systemClock{}
	}
	return &Governor{cfg: cfg, store: store, clock: clock}, nil
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Config returns the configuration in force, defaults applied.
func (g *Governor) Config() Config { return g.cfg }

// Reserve takes the next free slot of the shared schedule if fits accepts its start time, and
// returns it. When the breaker is open it takes the next probe slot the same way. Errors: a
// *WaitError (nothing reserved: the schedule, a pause or the open breaker puts the next slot
// where fits refuses it), a *StoreError (the store failed or kept changing under us: nothing
// reserved), or ctx's error.
//
// A slot starts no sooner than the time a write to the store takes from now (the lead: a
// decaying maximum of the writes measured), so that the caller, who learns of its slot when the
// write returns, is not already late for it.
func (g *Governor) Reserve(ctx context.Context, fits func(time.Time) bool) (Slot, error) {
	defer g.turn()()
	if slot, ok, err := g.advance(ctx, fits); ok || err != nil {
		return slot, err
	}
	for range g.cfg.Conflicts {
		st, err := g.load(ctx)
		if err != nil {
			return Slot{}, err
		}
		now, lead := g.clock.Now(), g.leadTime()
		at, reason := g.next(st, now.Add(lead))
		probe := st.Open()
		margin := g.Margin(st.rate(g.cfg.Rate))
		// While open, the probe goes to a caller that can send it now (within its margin):
		// nobody sleeps on a probe slot, and no probe is reserved ahead, which would hold the
		// schedule, and the instances, after the probe that closes the breaker.
		if !fits(at) || (probe && at.Sub(now) > margin+lead) {
			return Slot{}, &WaitError{Until: at, Reason: reason}
		}
		n := st
		n.Last, n.Late, n.By = at, at.Add(margin), g.cfg.Instance
		if probe {
			n.ProbeAt = at.Add(g.cfg.ProbeInterval)
		}
		if n.Rate <= 0 {
			n.Rate = g.cfg.Rate
		}
		err = g.save(ctx, n, st.Version)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return Slot{}, err
		}
		n.Version = max(st.Version, 0) + 1
		g.see(n)
		return g.slot(st, at, margin, probe), nil
	}
	return Slot{}, &StoreError{Err: fmt.Errorf("reserve: %d conflicting writes in a row", g.cfg.Conflicts)}
}

// slot is the slot at, with margin, reserved on record st (as read before the reservation).
func (g *Governor) slot(st State, at time.Time, margin time.Duration, probe bool) Slot {
	quiet := st.Failures == 0 && !st.Open() && (st.Rate <= 0 || st.Rate >= g.cfg.Rate) && st.Run >= g.cfg.Proof
	return Slot{At: at, Late: at.Add(margin), Margin: margin, Probe: probe, Rate: st.rate(g.cfg.Rate), quiet: quiet, policy: st.Policy}
}

// advance takes a slot with one atomic write when the store is an Advancer and the record, as
// this Governor last saw it, had a closed breaker and a rate: the write is conditional on the
// rate and policy being unchanged, so the gap it adds is the one the record's rate asks for.
// It reports false, having reserved nothing, when the record is not as expected (Reserve then
// reads it), or when fits refuses now (Reserve works out until when).
func (g *Governor) advance(ctx context.Context, fits func(time.Time) bool) (Slot, bool, error) {
	adv, ok := g.store.(Advancer)
	g.mu.Lock()
	seen, busy := g.seen, g.busy
	g.mu.Unlock()
	start := g.clock.Now()
	now := start.Add(g.leadTime())
	if !ok || seen.Version <= 0 || seen.Open() || seen.Rate <= 0 || seen.Late.IsZero() || seen.Late.Before(seen.Last) || !fits(now) {
		return Slot{}, false, nil
	}
	rate := seen.rate(g.cfg.Rate)
	gap, margin := interval(rate)+g.cfg.Skew, g.Margin(rate)
	a := Advance{Rate: seen.Rate, Policy: seen.Policy, Gap: gap, Margin: margin, Now: now, Latest: latest(fits, now),
		By: g.cfg.Instance, Busy: busy || !seen.Late.Add(gap).Before(now)}
	sctx, cancel := context.WithTimeout(ctx, g.cfg.StoreTimeout)
	defer cancel()
	st, err := adv.Advance(sctx, a)
	if err == nil || errors.Is(err, ErrConflict) {
		g.observe(g.clock.Now().Sub(start))
	}
	switch {
	case errors.Is(err, ErrConflict):
		return Slot{}, false, nil
	case err != nil:
		return Slot{}, false, &StoreError{Err: fmt.Errorf("advance: %w", err)}
	}
	g.see(st)
	g.mu.Lock()
	// Another instance's slots fill the schedule between this one's: the record as last seen
	// says idle, but trying the idle case first would cost a refused write a slot.
	g.busy = !st.Last.Equal(now)
	g.mu.Unlock()
	return g.slot(st, st.Last, margin, false), true, nil
}

// latest is the latest start fits accepts from now on, to a millisecond, within a day; fits
// accepts now and every time before one it accepts.
func latest(fits func(time.Time) bool, now time.Time) time.Time {
	lo, step := now, time.Second
	for step < 24*time.Hour && fits(now.Add(step)) {
		lo, step = now.Add(step), 2*step
	}
	hi := now.Add(step)
	for hi.Sub(lo) > time.Millisecond {
		mid := lo.Add(hi.Sub(lo) / 2)
		if fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// observe takes an answered write's duration into the lead: the largest seen, decaying by an eighth a
// write, at most StoreTimeout.
func (g *Governor) observe(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lead = min(max(d, g.lead-g.lead/8), g.cfg.StoreTimeout)
}

func (g *Governor) leadTime() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lead
}

// Woke records that the sender of slot acted at at: how late (at - the slot's start) is one
// of the LatenessWindow latenesses from which this Governor chooses its margin (see Margin).
// A sender calls it once a slot: with Sent when it sent, or with its wake-up when it woke too
// late and gave the slot up.
func (g *Governor) Woke(slot Slot, at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.wakes.add(at.Sub(slot.At))
}

// Sent records that the sender of slot started its request at start (after its wake-up) and
// that the request had been written at wrote: how late it left (wrote - the slot's start; see
// Woke), and how long the write itself took (wrote - start), which Usable allows for.
func (g *Governor) Sent(slot Slot, start, wrote time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.wakes.add(wrote.Sub(slot.At))
	g.paths.add(wrote.Sub(start))
}

// Usable says whether a sender that woke at woke may still send in slot: whether its request,
// started now, would be written by the slot's Late, allowing for how long this Governor's
// requests take to be written (the 95th percentile of the recent ones, Sent; at most half the
// slot's margin, so that a slow write path never leaves no slot usable). A request written
// after Late could reach the API closer than 1/rate to the next slot's.
func (g *Governor) Usable(slot Slot, woke time.Time) bool {
	g.mu.Lock()
	path := min(g.paths.quantile(PathQuantile), slot.Margin/2)
	g.mu.Unlock()
	return !woke.Add(path).After(slot.Late)
}

// Margin is the margin this Governor reserves slots with at rate: how late its sender may wake
// and still use a slot, and what the schedule adds after that slot. It is Config.Margin (the
// floor) until wake-ups are recorded (Woke); then, of the floor and the lateness of each recent
// wake-up up to MaxMarginShare of 1/rate, the one that leaves the most of the rate: the share
// of wake-ups it covers times 1/rate / (1/rate + margin) (a wake-up later than the margin loses
// its slot, a wider margin spaces every slot further).
func (g *Governor) Margin(rate float64) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.wakes.margin(g.cfg.Margin, interval(rate))
}

// see keeps st as the record this Governor last read or wrote.
func (g *Governor) see(st State) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = st
}

// ErrSlotTaken is Retake's answer when another slot was reserved after the late one.
var ErrSlotTaken = errors.New("a later slot is reserved: the late slot cannot move")

// Retake moves a slot whose sender woke after its Late bound to now plus the lead (the time a
// store write takes, as in Reserve), if it is still the last reserved slot (nobody reserved
// after it), and returns the moved slot: the next slot is then reckoned from the real send. The
// sender may send at once, up to the moved slot's Late: nothing is reserved between the old
// slot and the moved one. Otherwise it returns ErrSlotTaken (the slot is lost; reserve another),
// a *StoreError, or ctx's error.
func (g *Governor) Retake(ctx context.Context, slot Slot) (Slot, error) {
	defer g.turn()()
	st, err := g.load(ctx)
	if err != nil {
		return Slot{}, err
	}
	if !st.Last.Equal(slot.At) || st.By != g.cfg.Instance {
		return Slot{}, ErrSlotTaken
	}
	at := g.clock.Now().Add(g.leadTime())
	n := st
	n.Last, n.Late = at, at.Add(slot.Margin)
	if slot.Probe {
		n.ProbeAt = at.Add(g.cfg.ProbeInterval)
	}
	if err := g.save(ctx, n, st.Version); err != nil {
		if errors.Is(err, ErrConflict) {
			return Slot{}, ErrSlotTaken
		}
		return Slot{}, err
	}
	slot.At, slot.Late = at, at.Add(slot.Margin)
	return slot, nil
}

// turn takes the store's lock when it has one and returns its release.
func (g *Governor) turn() func() {
	l, ok := g.store.(sync.Locker)
	if !ok {
		return func() {}
	}
	l.Lock()
	return l.Unlock
}

// next is the earliest start a new slot may have at now, and what bounds it.
func (g *Governor) next(st State, now time.Time) (time.Time, string) {
	at, reason := now, ReasonFull
	gap := interval(st.rate(g.cfg.Rate))
	if st.By != g.cfg.Instance {
		gap += g.cfg.Skew
	}
	if t := st.late(g.cfg.Margin).Add(gap); t.After(at) {
		at = t
	}
	if st.PausedUntil.After(at) {
		at, reason = st.PausedUntil, ReasonPaused
	}
	if st.Open() {
		reason = ReasonOpen
		if st.ProbeAt.After(at) {
			at = st.ProbeAt
		}
	}
	return at, reason
}

// Report records the outcome of the request started in slot: throttles pause everyone and lower
// the shared rate, successes raise it back after the hold, failures count towards the breaker.
// It writes only when the record changes, and reads it only when the answer may change it (an
// ordinary answer to a slot reserved while all was well needs neither: it returns the zero
// State). Errors: a *StoreError or ctx's error; the outcome is then not recorded.
func (g *Governor) Report(ctx context.Context, slot Slot, o Outcome) (State, error) {
	if o.Kind == Answered && slot.quiet && o.PolicyRate == slot.policy && (!o.HasRemaining || o.Remaining > 0) {
		// Nothing to record (the common case at full rate): no store call. The zero State
		// says nothing was read.
		return State{}, nil
	}
	defer g.turn()()
	for range g.cfg.Conflicts {
		st, err := g.load(ctx)
		if err != nil {
			return State{}, err
		}
		n, changed := st.apply(g.cfg, o, slot.At, g.clock.Now())
		if !changed {
			return st, nil
		}
		err = g.save(ctx, n, st.Version)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return State{}, err
		}
		n.Version = max(st.Version, 0) + 1
		g.see(n)
		return n, nil
	}
	return State{}, &StoreError{Err: fmt.Errorf("report: %d conflicting writes in a row", g.cfg.Conflicts)}
}

// Opened says whether st, as Report returned it, records the report that opened the breaker:
// the breaker is open and the failures in a row are exactly the threshold. Every counted failure
// is a write conditional on the version it read, so exactly one report sees that state.
func (g *Governor) Opened(st State) bool {
	return st.Open() && st.Failures == g.cfg.FailureThreshold
}

// Current returns the shared state as stored (a missing or unreadable record as a fresh one).
func (g *Governor) Current(ctx context.Context) (State, error) { return g.load(ctx) }

// CurrentRate is the rate in force in st under this governor's ceiling.
func (g *Governor) CurrentRate(st State) float64 { return st.rate(g.cfg.Rate) }

// load reads the record; a missing one is a fresh record (version 0), an unreadable one a fresh
// record carrying the version to replace.
func (g *Governor) load(ctx context.Context) (State, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.StoreTimeout)
	defer cancel()
	st, err := g.store.Load(ctx)
	switch {
	case errors.Is(err, ErrCorrupt):
		f := fresh(g.cfg, g.clock.Now())
		f.Version = st.Version
		return f, nil
	case err != nil:
		return State{}, &StoreError{Err: fmt.Errorf("load: %w", err)}
	case st.Version == 0:
		return fresh(g.cfg, g.clock.Now()), nil
	}
	g.see(st)
	return st, nil
}

func (g *Governor) save(ctx context.Context, n State, prev int64) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.StoreTimeout)
	defer cancel()
	n.Version = max(prev, 0) + 1
	start := g.clock.Now()
	err := g.store.Save(ctx, n, prev)
	if err == nil || errors.Is(err, ErrConflict) {
		g.observe(g.clock.Now().Sub(start))
	}
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return err
		}
		return &StoreError{Err: fmt.Errorf("save: %w", err)}
	}
	return nil
}

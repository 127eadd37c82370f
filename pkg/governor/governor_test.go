package governor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/clock"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func always(time.Time) bool { return true }

// newPair returns two governors (instances a and b) sharing one store and one clock.
func newPair(t *testing.T, cfg Config, store Store) (a, b *Governor, clk *clock.Manual) {
	t.Helper()
	clk = clock.NewManual(t0)
	cfg.Instance = "a"
	a, err := New(cfg, store, clk)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Instance = "b"
	b, err = New(cfg, store, clk)
	if err != nil {
		t.Fatal(err)
	}
	return a, b, clk
}

func reserve(t *testing.T, g *Governor) Slot {
	t.Helper()
	s, err := g.Reserve(context.Background(), always)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	return s
}

// readWrite is a Store without Advance: every reservation reads and writes.
type readWrite struct{ Store }

func TestSlotsAreSpacedAcrossInstances(t *testing.T) {
	a, b, clk := newPair(t, Config{Rate: 1, Margin: 10 * time.Millisecond, Skew: 50 * time.Millisecond}, readWrite{&MemoryStore{}})
	first := reserve(t, a)
	// A fresh record puts the first slot one gap after its creation: a lost record's last
	// request may just have gone.
	if want := t0.Add(time.Second + 10*time.Millisecond + 50*time.Millisecond); !first.At.Equal(want) {
		t.Errorf("first slot %v, want %v", first.At, want)
	}
	second := reserve(t, b) // another instance: margin and skew
	if got, want := second.At.Sub(first.At), time.Second+60*time.Millisecond; got != want {
		t.Errorf("a->b gap %v, want %v", got, want)
	}
	third := reserve(t, b) // same instance: margin only
	if got, want := third.At.Sub(second.At), time.Second+10*time.Millisecond; got != want {
		t.Errorf("b->b gap %v, want %v", got, want)
	}
	if got, want := third.Late.Sub(third.At), 10*time.Millisecond; got != want {
		t.Errorf("late allowance %v, want %v", got, want)
	}
	// Idle long enough: the next slot is now.
	clk.Add(time.Hour)
	if s := reserve(t, a); !s.At.Equal(clk.Now()) {
		t.Errorf("slot after idle %v, want now %v", s.At, clk.Now())
	}
}

func TestAdvanceTakesSlotsInOneWrite(t *testing.T) {
	store := &countingStore{}
	a, b, clk := newPair(t, Config{Rate: 1, Margin: 10 * time.Millisecond, Skew: 50 * time.Millisecond}, store)
	first := reserve(t, a) // nothing seen yet: read and write
	second := reserve(t, b)
	third := reserve(t, b) // b saw the record: one Advance
	fourth := reserve(t, a)
	if store.loads != 2 || store.saves != 2 || store.advances != 2 {
		t.Errorf("4 reservations: %d loads, %d saves, %d advances; want 2, 2, 2", store.loads, store.saves, store.advances)
	}
	// An Advance cannot tell whose the last slot was: it always adds the skew.
	for i, gap := range []time.Duration{second.At.Sub(first.At), third.At.Sub(second.At), fourth.At.Sub(third.At)} {
		if want := time.Second + 60*time.Millisecond; gap != want {
			t.Errorf("gap %d: %v, want %v", i+1, gap, want)
		}
	}
	// Idle: the next slot is now, in one write.
	clk.Add(time.Hour)
	if s := reserve(t, b); !s.At.Equal(clk.Now()) || store.advances != 3 {
		t.Errorf("slot after idle %v (%d advances), want now %v in one Advance", s.At, store.advances, clk.Now())
	}
	// Another instance cuts the rate: the expected record is gone, so a reads it again and
	// paces at the new rate.
	clk.Add(time.Hour)
	s := reserve(t, b)
	clk.Set(s.At)
	if _, err := b.Report(context.Background(), s, Outcome{Kind: Throttled}); err != nil {
		t.Fatal(err)
	}
	loads := store.loads
	s1 := reserve(t, a)
	if store.loads != loads+1 {
		t.Errorf("reserve after another instance's cut: %d loads, want one more", store.loads-loads)
	}
	if s1.Rate != 0.5 {
		t.Errorf("rate after the cut %v, want 0.5", s1.Rate)
	}
	// A pause beyond the last slot is not taken in one write either.
	if _, err := b.Report(context.Background(), s1, Outcome{Kind: Throttled, RetryAfter: time.Minute, HasRetryAfter: true}); err != nil {
		t.Fatal(err)
	}
	if s2 := reserve(t, a); s2.At.Before(clk.Now().Add(time.Minute)) {
		t.Errorf("slot %v during a pause until %v", s2.At, clk.Now().Add(time.Minute))
	}
}

func TestDefaultMargin(t *testing.T) {
	tests := []struct {
		rate float64
		want time.Duration
	}{
		{1, 20 * time.Millisecond},
		{20, 5 * time.Millisecond},
		{1000, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		g, err := New(Config{Rate: tt.rate}, &MemoryStore{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.Config().Margin; got != tt.want {
			t.Errorf("rate %v: margin %v, want %v", tt.rate, got, tt.want)
		}
	}
}

func TestReserveRefusedReservesNothing(t *testing.T) {
	store := &MemoryStore{}
	a, _, _ := newPair(t, Config{Rate: 1}, store)
	before, _ := store.Load(context.Background())
	_, err := a.Reserve(context.Background(), func(time.Time) bool { return false })
	var we *WaitError
	if !errors.As(err, &we) || we.Reason != "schedule full" {
		t.Fatalf("Reserve = %v, want a WaitError (schedule full)", err)
	}
	if after, _ := store.Load(context.Background()); after.Version != before.Version {
		t.Errorf("record version %d after a refused reserve, want %d", after.Version, before.Version)
	}
}

// prove answers Proof requests of g with successes: the rate in force is then proven.
func prove(t *testing.T, g *Governor, clk *clock.Manual) {
	t.Helper()
	for range g.Config().Proof {
		s := reserve(t, g)
		clk.Set(s.At)
		if _, err := g.Report(context.Background(), s, Outcome{Kind: Answered}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestThrottlePausesEveryoneAndCutsOnRepeats(t *testing.T) {
	a, b, clk := newPair(t, Config{Rate: 2, Margin: time.Millisecond}, &MemoryStore{})
	ctx := context.Background()
	prove(t, a, clk)
	sa, sb := reserve(t, a), reserve(t, b)
	clk.Set(sb.At)
	st, err := b.Report(ctx, sb, Outcome{Kind: Throttled, RetryAfter: 3 * time.Second, HasRetryAfter: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Rate != 2 {
		t.Errorf("rate after a lone 429 = %v, want 2 (a lone 429 only pauses)", st.Rate)
	}
	// a's request, reserved before that 429 was seen, is throttled too: the same event.
	if st, _ = a.Report(ctx, sa, Outcome{Kind: Throttled}); st.Rate != 2 {
		t.Errorf("rate after a 429 of the same event = %v, want 2", st.Rate)
	}
	// Everyone waits for the Retry-After.
	s := reserve(t, a)
	if want := sb.At.Add(3 * time.Second); s.At.Before(want) {
		t.Errorf("slot after Retry-After at %v, want >= %v", s.At, want)
	}
	// A 429 of a request reserved after it, within the window: a repeat, the rate is halved.
	clk.Set(s.At)
	if st, _ = a.Report(ctx, s, Outcome{Kind: Throttled}); st.Rate != 1 {
		t.Errorf("rate after a repeated 429 = %v, want 1", st.Rate)
	}
	// Success within the hold: no raise.
	s = reserve(t, b)
	clk.Set(s.At)
	if st, _ = b.Report(ctx, s, Outcome{Kind: Answered}); st.Rate != 1.0 {
		t.Errorf("rate raised within the hold: %v", st.Rate)
	}
	// After the hold each success raises by Step x Rate.
	clk.Add(DefaultHold)
	s = reserve(t, b)
	clk.Set(s.At)
	st, _ = b.Report(ctx, s, Outcome{Kind: Answered})
	if got, want := st.Rate, 1.1; got != want {
		t.Errorf("rate after a success past the hold = %v, want %v", got, want)
	}
	if st.Good != 1.0 {
		t.Errorf("good rate = %v, want 1 (the rate that held)", st.Good)
	}
	// A 429 right after a raise (even a lone one) goes back to the rate that held, not to half.
	s = reserve(t, a)
	clk.Set(s.At)
	st, _ = a.Report(ctx, s, Outcome{Kind: Throttled})
	if st.Rate != 1.0 {
		t.Errorf("rate after a 429 above the good rate = %v, want 1", st.Rate)
	}
	// A repeated 429 at the good rate: it no longer holds.
	s = reserve(t, a)
	clk.Set(s.At)
	st, _ = a.Report(ctx, s, Outcome{Kind: Throttled})
	if st.Rate != 0.5 || st.Good != 0 {
		t.Errorf("rate, good after a 429 at the good rate = %v, %v, want 0.5, 0", st.Rate, st.Good)
	}
	// A lone 429 long after, once the rate in force is proven (raised meanwhile): no cut.
	clk.Add(time.Hour)
	prove(t, b, clk)
	clk.Add(DefaultHold)
	prove(t, b, clk) // raised back towards the ceiling,
	prove(t, b, clk) // and proven there
	cur, _ := b.Current(ctx)
	if cur.Run != b.Config().Proof {
		t.Fatalf("run %d at %v, want proven", cur.Run, cur.Rate)
	}
	s = reserve(t, b)
	clk.Set(s.At)
	if st, _ = b.Report(ctx, s, Outcome{Kind: Throttled}); st.Rate != cur.Rate {
		t.Errorf("rate after a lone 429 at a proven rate = %v, want %v", st.Rate, cur.Rate)
	}
}

func TestRepeatWindowIsBoundedInSlots(t *testing.T) {
	tests := []struct {
		after   time.Duration // the second 429's slot, after the first 429
		wantCut bool
	}{
		{500 * time.Millisecond, true},   // 10 slots at 20/s: a repeat
		{1500 * time.Millisecond, false}, // 30 slots: within ThrottleWindow, not RepeatSlots
	}
	for _, tt := range tests {
		a, _, clk := newPair(t, Config{Rate: 20}, &MemoryStore{})
		ctx := context.Background()
		prove(t, a, clk)
		s := reserve(t, a)
		clk.Set(s.At)
		if _, err := a.Report(ctx, s, Outcome{Kind: Throttled}); err != nil {
			t.Fatal(err)
		}
		clk.Add(tt.after)
		s = reserve(t, a)
		clk.Set(s.At)
		st, err := a.Report(ctx, s, Outcome{Kind: Throttled})
		if err != nil {
			t.Fatal(err)
		}
		if cut := st.Rate < 20; cut != tt.wantCut {
			t.Errorf("second 429 %v after the first: rate %v, cut %v; want cut %v", tt.after, st.Rate, cut, tt.wantCut)
		}
	}
}

func TestFirst429AtAnUnprovenRateCuts(t *testing.T) {
	a, b, clk := newPair(t, Config{Rate: 2, Margin: time.Millisecond, Proof: 3}, &MemoryStore{})
	ctx := context.Background()
	// The first answer of a fresh record: the ceiling has not been proven, so a lone 429 cuts.
	s := reserve(t, a)
	clk.Set(s.At)
	if st, _ := a.Report(ctx, s, Outcome{Kind: Answered}); st.Run != 1 {
		t.Errorf("run after one success = %d, want 1", st.Run)
	}
	s = reserve(t, b)
	clk.Set(s.At)
	st, _ := b.Report(ctx, s, Outcome{Kind: Throttled})
	if st.Rate != 1 || st.Run != 0 {
		t.Fatalf("rate, run after a first 429 at an unproven rate = %v, %d, want 1, 0", st.Rate, st.Run)
	}
	// 1 is unproven too until Proof successes at it: a lone 429 after two successes cuts again.
	for range 2 {
		s = reserve(t, a)
		clk.Set(s.At)
		st, _ = a.Report(ctx, s, Outcome{Kind: Answered})
	}
	if st.Run != 2 {
		t.Errorf("run after two successes at 1 = %d, want 2", st.Run)
	}
	clk.Add(time.Hour) // not a repeat
	s = reserve(t, b)
	clk.Set(s.At)
	if st, _ = b.Report(ctx, s, Outcome{Kind: Throttled}); st.Rate != 0.5 {
		t.Fatalf("rate after a lone 429 at an unproven 1 = %v, want 0.5", st.Rate)
	}
	// Proven: a lone 429 only pauses, and does not unprove the rate.
	clk.Add(time.Hour)
	prove(t, a, clk)
	clk.Add(time.Hour)
	s = reserve(t, b)
	clk.Set(s.At)
	st, _ = b.Report(ctx, s, Outcome{Kind: Throttled})
	if st.Rate < 0.5 || st.Run != 3 || !st.PausedUntil.After(s.At) {
		t.Errorf("after a lone 429 at a proven rate: rate %v, run %d, paused until %v; want >= 0.5, 3, a pause",
			st.Rate, st.Run, st.PausedUntil)
	}
}

func TestA429AtTheAdvertisedRateOnlyPauses(t *testing.T) {
	a, _, clk := newPair(t, Config{Rate: 2, Margin: time.Millisecond}, &MemoryStore{})
	ctx := context.Background()
	s := reserve(t, a)
	clk.Set(s.At)
	if st, _ := a.Report(ctx, s, Outcome{Kind: Answered, PolicyRate: 1}); st.Policy != 1 || st.Run != 1 {
		t.Fatalf("policy, run = %v, %d after an answer advertising 1/s, want 1, 1", st.Policy, st.Run)
	}
	s = reserve(t, a)
	clk.Set(s.At)
	st, _ := a.Report(ctx, s, Outcome{Kind: Throttled, PolicyRate: 1})
	if a.CurrentRate(st) != 1 || st.Rate != 2 || !st.CutAt.IsZero() {
		t.Errorf("after a 429 at the advertised 1/s: rate in force %v, adaptive %v, cut at %v; want 1, 2, no cut",
			a.CurrentRate(st), st.Rate, st.CutAt)
	}
}

func TestHoldRunsOnTheInjectedClock(t *testing.T) {
	a, _, clk := newPair(t, Config{Rate: 2, Margin: time.Millisecond, Hold: 2 * time.Second}, &MemoryStore{})
	ctx := context.Background()
	s := reserve(t, a)
	clk.Set(s.At)
	st, _ := a.Report(ctx, s, Outcome{Kind: Throttled}) // unproven: cut to 1
	cut := st.CutAt
	if st.Rate != 1 || !cut.Equal(clk.Now()) {
		t.Fatalf("rate %v cut at %v, want 1 at the clock's %v", st.Rate, cut, clk.Now())
	}
	for _, tt := range []struct {
		after time.Duration
		want  float64
	}{{time.Second, 1}, {2 * time.Second, 1.1}} {
		clk.Set(cut.Add(tt.after))
		s = reserve(t, a)
		if s.At.After(clk.Now()) {
			clk.Set(s.At)
		}
		if st, _ = a.Report(ctx, s, Outcome{Kind: Answered}); st.Rate != tt.want {
			t.Errorf("rate %v after the cut = %v, want %v", clk.Now().Sub(cut), st.Rate, tt.want)
		}
	}
}

func TestRateLimitHeaders(t *testing.T) {
	a, _, clk := newPair(t, Config{Rate: 5}, &MemoryStore{})
	ctx := context.Background()
	s := reserve(t, a)
	clk.Set(s.At)
	st, err := a.Report(ctx, s, Outcome{Kind: Answered, PolicyRate: 1, HasRemaining: true, Remaining: 0, Reset: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.CurrentRate(st); got != 1 {
		t.Errorf("rate under a policy of 1/s = %v, want 1", got)
	}
	next := reserve(t, a)
	if want := s.At.Add(4 * time.Second); next.At.Before(want) {
		t.Errorf("slot %v before the RateLimit reset %v", next.At, want)
	}
}

func TestBreaker(t *testing.T) {
	a, b, clk := newPair(t, Config{Rate: 1, FailureThreshold: 3, ProbeInterval: 30 * time.Second}, &MemoryStore{})
	ctx := context.Background()
	var st State
	for i := range 3 {
		g := []*Governor{a, b}[i%2]
		s := reserve(t, g)
		clk.Set(s.At)
		var err error
		if st, err = g.Report(ctx, s, Outcome{Kind: Failed}); err != nil {
			t.Fatal(err)
		}
		// Only the report that opens the breaker says so (dispatch logs it once).
		if got := g.Opened(st); got != (i == 2) {
			t.Errorf("Opened after failure %d = %v, want %v", i+1, got, i == 2)
		}
	}
	if !st.Open() {
		t.Fatalf("breaker closed after 3 failures in a row across instances")
	}
	opened := clk.Now()
	// Before the probe time nobody gets a slot, however far its deadline: the probe goes to a
	// caller that can send it at once, so nobody sleeps on a probe slot and none is held ahead.
	for _, fits := range []func(time.Time) bool{always, func(at time.Time) bool { return at.Sub(clk.Now()) < 10*time.Second }} {
		_, err := a.Reserve(ctx, fits)
		var we *WaitError
		if !errors.As(err, &we) || we.Reason != ReasonOpen || !we.Until.Equal(opened.Add(30*time.Second)) {
			t.Fatalf("Reserve while open = %v, want a WaitError until %v", err, opened.Add(30*time.Second))
		}
	}
	// One probe per interval, to the first caller once it is due.
	clk.Set(opened.Add(31 * time.Second))
	probe := reserve(t, b)
	if !probe.Probe || !probe.At.Equal(clk.Now()) {
		t.Errorf("probe slot %+v, want a probe at once (%v)", probe, clk.Now())
	}
	var we *WaitError
	if _, err := a.Reserve(ctx, always); !errors.As(err, &we) || we.Reason != ReasonOpen || !we.Until.Equal(probe.At.Add(30*time.Second)) {
		t.Errorf("Reserve after the probe = %v, want a WaitError until %v", err, probe.At.Add(30*time.Second))
	}
	// The probe fails: still open. The next probe succeeds: closed, normal pacing.
	clk.Set(probe.At)
	if st, _ = b.Report(ctx, probe, Outcome{Kind: Failed}); !st.Open() || b.Opened(st) || a.Opened(st) {
		t.Errorf("after a failed probe: open %v, opened by it %v (want open, not opened again)", st.Open(), b.Opened(st))
	}
	clk.Add(time.Minute)
	p2 := reserve(t, a)
	clk.Set(p2.At)
	if st, _ = a.Report(ctx, p2, Outcome{Kind: Answered}); st.Open() || st.Failures != 0 {
		t.Errorf("after a successful probe: open %v, failures %d", st.Open(), st.Failures)
	}
	if s := reserve(t, b); s.Probe || s.At.Sub(p2.At) > 2*time.Second {
		t.Errorf("slot after closing %+v, want a normal slot about 1 s after the probe", s)
	}
}

// failingStore fails every call.
type failingStore struct{}

func (failingStore) Load(context.Context) (State, error)      { return State{}, errors.New("unreachable") }
func (failingStore) Save(context.Context, State, int64) error { return errors.New("unreachable") }

func TestStoreErrors(t *testing.T) {
	g, err := New(Config{Rate: 1}, failingStore{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var se *StoreError
	if _, err := g.Reserve(context.Background(), always); !errors.As(err, &se) {
		t.Errorf("Reserve = %v, want a StoreError", err)
	}
	if _, err := g.Report(context.Background(), Slot{}, Outcome{Kind: Throttled}); !errors.As(err, &se) {
		t.Errorf("Report = %v, want a StoreError", err)
	}
}

func TestConcurrentReservesNeverShareASlot(t *testing.T) {
	store := &MemoryStore{}
	clk := clock.NewManual(t0)
	var gs []*Governor
	for _, name := range []string{"a", "b", "c", "d"} {
		g, err := New(Config{Rate: 20, Instance: name, Conflicts: 1000}, store, clk)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	slots := reserveConcurrently(t, gs, 50)
	checkSpacing(t, slots, 50*time.Millisecond)
}

// reserveConcurrently has each governor reserve n slots, all at once, and returns the slots.
func reserveConcurrently(t *testing.T, gs []*Governor, n int) []time.Time {
	t.Helper()
	var mu sync.Mutex
	var slots []time.Time
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Go(func() {
			for range n {
				s, err := g.Reserve(context.Background(), always)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				slots = append(slots, s.At)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return slots
}

// checkSpacing fails if two of the times are closer than min.
func checkSpacing(t *testing.T, times []time.Time, min time.Duration) {
	t.Helper()
	sorted := append([]time.Time(nil), times...)
	for i := range sorted {
		for j := i + 1; j < len(sorted); j++ {
			if sorted[j].Before(sorted[i]) {
				sorted[i], sorted[j] = sorted[j], sorted[i]
			}
		}
	}
	for i := 1; i < len(sorted); i++ {
		if d := sorted[i].Sub(sorted[i-1]); d < min {
			t.Errorf("slots %d and %d are %v apart, want >= %v", i-1, i, d, min)
		}
	}
}

// skewed reads a shared real clock plus an offset: an instance whose clock is off.
type skewed struct {
	real   *clock.Manual
	offset time.Duration
}

func (s skewed) Now() time.Time { return s.real.Now().Add(s.offset) }

// TestClockSkewMargin runs two instances whose clocks differ by 200 ms (one 100 ms ahead, one
// 100 ms behind) taking turns, each sending at its slot on its own clock, and measures the
// spacing on the real clock: Skew 200 ms keeps every gap at least 1/rate; without it the gaps
// from the slow instance to the fast one are 200 ms short.
func TestClockSkewMargin(t *testing.T) {
	for _, tc := range []struct {
		skew       time.Duration
		wantCloser bool
	}{{0, true}, {200 * time.Millisecond, false}} {
		real := clock.NewManual(t0)
		store := &MemoryStore{}
		var gs []*Governor
		for i, off := range []time.Duration{100 * time.Millisecond, -100 * time.Millisecond} {
			g, err := New(Config{Rate: 1, Skew: tc.skew, Instance: string(rune('a' + i))}, store, skewed{real, off})
			if err != nil {
				t.Fatal(err)
			}
			gs = append(gs, g)
		}
		var sent []time.Time // real times
		for i := range 20 {
			g := gs[i%2]
			s := reserve(t, g)
			local := g.clock.Now()
			real.Add(s.At.Sub(local)) // sleep until the slot on this instance's clock
			sent = append(sent, real.Now())
		}
		shortest := time.Hour
		for i := 1; i < len(sent); i++ {
			shortest = min(shortest, sent[i].Sub(sent[i-1]))
		}
		if closer := shortest < time.Second; closer != tc.wantCloser {
			t.Errorf("skew margin %v: shortest real gap %v; closer than 1/rate: %v, want %v", tc.skew, shortest, closer, tc.wantCloser)
		}
		t.Logf("skew margin %v: shortest real gap %v", tc.skew, shortest)
	}
}

// slowStore is a MemoryStore whose writes take latency on clk.
type slowStore struct {
	MemoryStore
	clk     *clock.Manual
	latency time.Duration
}

func (s *slowStore) Save(ctx context.Context, n State, prev int64) error {
	s.clk.Add(s.latency)
	return s.MemoryStore.Save(ctx, n, prev)
}

func (s *slowStore) Advance(ctx context.Context, a Advance) (State, error) {
	s.clk.Add(s.latency)
	return s.MemoryStore.Advance(ctx, a)
}

func TestSlotsLeadTheStoresLatency(t *testing.T) {
	for _, advance := range []bool{true, false} {
		clk := clock.NewManual(t0)
		slow := &slowStore{clk: clk, latency: 80 * time.Millisecond}
		var store Store = slow
		if !advance {
			store = readWrite{slow}
		}
		g, err := New(Config{Rate: 1, Instance: "a"}, store, clk)
		if err != nil {
			t.Fatal(err)
		}
		reserve(t, g) // the first write measures the store
		for i := range 3 {
			clk.Add(time.Hour) // idle: the slot would be "now" when the write was sent
			s := reserve(t, g)
			if clk.Now().After(s.Late) {
				t.Errorf("advance %v, slot %d: the write returned at %v, after the slot's latest start %v", advance, i, clk.Now(), s.Late)
			}
		}
		// A late sender's slot moved to now is not already late when the move returns.
		s := reserve(t, g)
		clk.Set(s.Late.Add(time.Second))
		moved, err := g.Retake(context.Background(), s)
		if err != nil || clk.Now().After(moved.Late) {
			t.Errorf("advance %v: Retake = %+v, %v; returned at %v, want a slot whose latest start is not past", advance, moved, err, clk.Now())
		}
	}
}

// countingStore counts the calls that reach a MemoryStore.
type countingStore struct {
	MemoryStore
	loads, saves, advances int
}

func (c *countingStore) Advance(ctx context.Context, a Advance) (State, error) {
	c.advances++
	return c.MemoryStore.Advance(ctx, a)
}

func (c *countingStore) Load(ctx context.Context) (State, error) {
	c.loads++
	return c.MemoryStore.Load(ctx)
}

func (c *countingStore) Save(ctx context.Context, n State, prev int64) error {
	c.saves++
	return c.MemoryStore.Save(ctx, n, prev)
}

func TestOrdinaryAnswersCostNoStoreCall(t *testing.T) {
	store := &countingStore{}
	a, _, clk := newPair(t, Config{Rate: 1, Proof: 1}, store)
	ctx := context.Background()
	prove(t, a, clk) // the first success proves the rate: one write
	store.loads, store.saves = 0, 0
	s := reserve(t, a)
	if store.loads != 0 || store.saves != 0 || store.advances != 1 {
		t.Fatalf("reserve: %d loads, %d saves, %d advances, want one Advance", store.loads, store.saves, store.advances)
	}
	clk.Set(s.At)
	if _, err := a.Report(ctx, s, Outcome{Kind: Answered}); err != nil || store.loads != 0 || store.saves != 0 {
		t.Errorf("an ordinary 200: %d loads, %d saves (err %v), want no store call", store.loads, store.saves, err)
	}
	// A failure, and an answer with RateLimit news, are recorded.
	if _, err := a.Report(ctx, s, Outcome{Kind: Failed}); err != nil || store.saves != 1 {
		t.Errorf("a failure: %d saves (err %v), want it written", store.saves, err)
	}
	s = reserve(t, a) // not quiet any more: a failure is on record
	clk.Set(s.At)
	st, _ := a.Report(ctx, s, Outcome{Kind: Answered})
	if st.Failures != 0 || store.saves != 2 {
		t.Errorf("a success after a failure: failures %d, %d saves; want the run reset and written", st.Failures, store.saves)
	}
}

package governor

import (
	"testing"
	"time"
)

func TestMarginChoice(t *testing.T) {
	ms := time.Millisecond
	// spread returns n wake-ups: most at 0.3 ms, a tail up to tail.
	spread := func(tail ...time.Duration) []time.Duration {
		var late []time.Duration
		for len(late)+len(tail) < LatenessWindow {
			late = append(late, 300*time.Microsecond)
		}
		return append(late, tail...)
	}
	tests := []struct {
		name  string
		floor time.Duration
		iv    time.Duration // 1/rate
		late  []time.Duration
		want  time.Duration
	}{
		{"no wake-ups yet: the floor", ms, time.Second, nil, ms},
		{"every wake-up within the floor", 5 * ms, 50 * ms, spread(4*ms, 5*ms), 5 * ms},
		// At 1 rps a millisecond of margin costs 0.1 % of the rate and a lost slot 1.6 %
		// (one wake-up of 64): cover the whole tail.
		{"1 rps: the latest wake-up", ms, time.Second, spread(3*ms, 9*ms, 18*ms), 18 * ms},
		// At 20 rps 18 ms of margin cost a quarter of the rate: leave the one 18 ms wake-up
		// out, cover the others (3 ms: 5.7 %).
		{"20 rps: below a rare outlier", ms, 50 * ms, spread(2*ms, 3*ms, 3*ms, 18*ms), 3 * ms},
		// Many wake-ups 10 ms late at 20 rps: losing a fifth of the slots costs more than
		// 10 ms between slots (17 %).
		{"20 rps: a starved host", ms, 50 * ms, append(spread(make([]time.Duration, 16)...)[:48], repeat(10*ms, 16)...), 10 * ms},
		{"capped at a quarter of the interval", ms, 50 * ms, repeat(40*ms, LatenessWindow), ms},
		{"a floor above the cap stays", 20 * ms, 50 * ms, repeat(40*ms, LatenessWindow), 20 * ms},
		{"the window keeps the latest wake-ups", ms, time.Second, append(repeat(500*ms, 10), spread(7*ms)...), 7 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w wakeups
			for _, d := range tt.late {
				w.add(d)
			}
			if got := w.margin(tt.floor, tt.iv); got != tt.want {
				t.Errorf("margin(%v, %v) = %v, want %v", tt.floor, tt.iv, got, tt.want)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// TestMarginTravelsWithTheSlot: an instance whose senders wake late reserves its slots with a
// wider margin, and the schedule spaces the next slot, whichever instance takes it, 1/rate
// after the end of that margin; the other instance keeps the floor. Both the read-and-write
// path and the one-write Advance.
func TestMarginTravelsWithTheSlot(t *testing.T) {
	const floor, skew = time.Millisecond, 5 * time.Millisecond
	for name, store := range map[string]Store{"read and write": readWrite{&MemoryStore{}}, "advance": &MemoryStore{}} {
		t.Run(name, func(t *testing.T) {
			a, b, clk := newPair(t, Config{Rate: 20, Margin: floor, Skew: skew}, store)
			// a's sender woke 8 ms late on every slot (a starved host).
			for range LatenessWindow {
				s := reserve(t, a)
				clk.Set(s.At.Add(8 * time.Millisecond))
				a.Woke(s, clk.Now())
			}
			if got := a.Margin(20); got != 8*time.Millisecond {
				t.Fatalf("a's margin after 8 ms late wake-ups: %v, want 8ms", got)
			}
			if got := b.Margin(20); got != floor {
				t.Fatalf("b's margin with no wake-ups: %v, want the floor %v", got, floor)
			}
			prev := reserve(t, b) // b sees the record, so that both take the Advance path from here
			for i := range 6 {
				g := a
				if i%2 == 1 {
					g = b
				}
				s := reserve(t, g)
				if want := g.Margin(20); s.Margin != want || !s.Late.Equal(s.At.Add(want)) {
					t.Errorf("slot %d: margin %v, late %v; want %v, at + %v", i, s.Margin, s.Late.Sub(s.At), want, want)
				}
				// The sender of prev may send up to its Late: the next slot starts 1/rate
				// (and the skew) after it.
				if got, want := s.At.Sub(prev.Late), 50*time.Millisecond+skew; got != want {
					t.Errorf("slot %d starts %v after the previous slot's end, want %v", i, got, want)
				}
				prev = s
			}
		})
	}
}

// TestLateSenderNeverCloserThanTheInterval: senders waking at random lateness (some beyond
// their margin, as on a starved host) send only within their slot's margin; whatever the
// margins the instances adapted to, no two sends are closer than 1/rate.
func TestLateSenderNeverCloserThanTheInterval(t *testing.T) {
	for name, store := range map[string]Store{"read and write": readWrite{&MemoryStore{}}, "advance": &MemoryStore{}} {
		t.Run(name, func(t *testing.T) {
			a, b, clk := newPair(t, Config{Rate: 20, Margin: time.Millisecond}, store)
			lateness := map[*Governor][]time.Duration{
				a: {0, 2 * time.Millisecond, 9 * time.Millisecond, 300 * time.Microsecond, 14 * time.Millisecond, 25 * time.Millisecond},
				b: {100 * time.Microsecond, 500 * time.Microsecond, 0, 3 * time.Millisecond},
			}
			var sent []time.Time
			for i := range 400 {
				g := a
				if i%3 == 0 {
					g = b
				}
				s := reserve(t, g)
				l := lateness[g][i%len(lateness[g])]
				clk.Set(s.At.Add(l))
				g.Woke(s, clk.Now())
				if !clk.Now().After(s.Late) {
					sent = append(sent, clk.Now())
				}
			}
			if len(sent) < 200 {
				t.Fatalf("%d of 400 slots used, want most", len(sent))
			}
			checkSpacing(t, sent, 50*time.Millisecond)
		})
	}
}

// TestUsableAllowsForTheWritePath: a wake-up is usable only when the request, written as long
// after it as this Governor's requests usually take (their 95th percentile), still leaves by
// the slot's Late; the allowance is at most half the margin.
func TestUsableAllowsForTheWritePath(t *testing.T) {
	us := time.Microsecond
	at := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	slot := Slot{At: at, Margin: 1000 * us, Late: at.Add(1000 * us)}
	tests := []struct {
		name  string
		paths []time.Duration // write times recorded by Sent
		woke  time.Duration   // after the slot's start
		want  bool
	}{
		{"nothing measured: up to Late", nil, 1000 * us, true},
		{"nothing measured: after Late", nil, 1001 * us, false},
		{"on time", repeat(200*us, LatenessWindow), 0, true},
		{"the write would end at Late", repeat(200*us, LatenessWindow), 800 * us, true},
		{"the write would end after Late", repeat(200*us, LatenessWindow), 801 * us, false},
		// 3 of 64 (4.7 %) slow writes are above the 95th percentile: 150 µs is allowed for.
		{"rare slow writes are not allowed for", append(repeat(150*us, LatenessWindow-3), repeat(5000*us, 3)...), 850 * us, true},
		{"4 of 64 are", append(repeat(150*us, LatenessWindow-4), repeat(400*us, 4)...), 850 * us, false},
		{"at most half the margin", repeat(5000*us, LatenessWindow), 500 * us, true},
		{"half the margin still holds", repeat(5000*us, LatenessWindow), 501 * us, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(Config{Rate: 20}, &MemoryStore{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.paths {
				g.Sent(slot, at, at.Add(p))
			}
			if got := g.Usable(slot, at.Add(tt.woke)); got != tt.want {
				t.Errorf("Usable(woke %v after the start) = %v, want %v", tt.woke, got, tt.want)
			}
		})
	}
}

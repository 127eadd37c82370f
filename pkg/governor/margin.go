package governor

import (
	"math"
	"slices"
	"time"
)

// Margin adaptation: how late a sender may wake and still use its slot.
const (
	// LatenessWindow is how many of its most recent wake-ups a Governor keeps to choose its
	// margin.
	LatenessWindow = 64
	// MaxMarginShare caps the adaptive margin at this share of 1/rate, so that margins take
	// at most a fifth of the rate (a quarter of the interval added to it); Config.Margin, the
	// floor, may be larger.
	MaxMarginShare = 0.25
	// PathQuantile is the share of recent requests whose write time Usable allows for.
	PathQuantile = 0.95
)

// wakeups keeps the lateness of a sender's most recent wake-ups (how long after its slot's
// start it woke), LatenessWindow of them. The zero value is empty.
type wakeups struct {
	late [LatenessWindow]time.Duration
	n    int // samples held, up to LatenessWindow
	next int // where the next sample goes
}

func (w *wakeups) add(d time.Duration) {
	w.late[w.next] = max(d, 0)
	w.next = (w.next + 1) % LatenessWindow
	w.n = min(w.n+1, LatenessWindow)
}

// margin is the margin that makes the most of the schedule for the wake-ups held, between
// floor and max(floor, MaxMarginShare × iv): of the candidates (floor, and each lateness in
// range) the one maximising the share of wake-ups it covers (those not later than it: their
// slots are used; a later one loses its slot) times iv / (iv + margin) (the rate left once the
// margin is added between slots), the smallest on a tie. No samples: floor.
func (w *wakeups) margin(floor, iv time.Duration) time.Duration {
	if w.n == 0 {
		return floor
	}
	ceil := max(floor, time.Duration(MaxMarginShare*float64(iv)))
	late := slices.Clone(w.late[:w.n])
	slices.Sort(late)
	score := func(m time.Duration, covered int) float64 {
		return float64(covered) / float64(len(late)) * float64(iv) / float64(iv+m)
	}
	covered := 0
	for covered < len(late) && late[covered] <= floor {
		covered++
	}
	best, bestScore := floor, score(floor, covered)
	for i, d := range late {
		if d <= floor || (i+1 < len(late) && late[i+1] == d) {
			continue // covered by the floor, or not the last of equal samples
		}
		if d > ceil {
			break
		}
		if s := score(d, i+1); s > bestScore {
			best, bestScore = d, s
		}
	}
	return best
}

// quantile is the q-quantile of the samples held (the smallest sample that at least q of them do
// not exceed); 0 when empty.
func (w *wakeups) quantile(q float64) time.Duration {
	if w.n == 0 {
		return 0
	}
	s := slices.Clone(w.late[:w.n])
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

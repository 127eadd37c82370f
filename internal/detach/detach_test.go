package detach_test

import (
	"context"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/detach"
)

type key struct{}

func TestContext(t *testing.T) {
	// Deadlines are far from now, so the test measures which bound wins, never elapsed time;
	// slack only absorbs the time between the two time.Now calls on a busy machine.
	const slack = time.Minute
	hour := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name            string
		deadline        time.Time // zero: ctx has none
		reserve, budget time.Duration
		want            time.Duration // from now
	}{
		{"deadline minus reserve", hour, 10 * time.Minute, 0, 50 * time.Minute},
		{"budget before the deadline", hour, 10 * time.Minute, 5 * time.Minute, 5 * time.Minute},
		{"deadline before the budget", hour, 10 * time.Minute, 2 * time.Hour, 50 * time.Minute},
		{"budget without deadline", time.Time{}, 10 * time.Minute, 3 * time.Hour, 3 * time.Hour},
		{"neither", time.Time{}, 0, 0, detach.DefaultBudget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
			if !tc.deadline.IsZero() {
				parent, cancelParent = context.WithDeadline(parent, tc.deadline)
			}
			cancelParent()
			ctx, cancel := detach.Context(parent, tc.reserve, tc.budget)
			defer cancel()
			if ctx.Err() != nil {
				t.Errorf("detached context ended with its parent: %v", ctx.Err())
			}
			if got := ctx.Value(key{}); got != "v" {
				t.Errorf("value: got %v, want the parent's", got)
			}
			d, ok := ctx.Deadline()
			if !ok {
				t.Fatal("no deadline")
			}
			want := time.Now().Add(tc.want)
			if d.Before(want.Add(-slack)) || d.After(want.Add(slack)) {
				t.Errorf("deadline in %v, want about %v", time.Until(d).Round(time.Second), tc.want)
			}
			cancel()
			if ctx.Err() == nil {
				t.Errorf("cancel did not end the context")
			}
		})
	}
}

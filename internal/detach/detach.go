// Package detach gives the calls that must run even when an invocation is cancelled (the
// bookkeeping that carries out a decision or cleans up after a failure) a context of their own,
// bounded so that they still end before the invocation's deadline.
package detach

import (
	"context"
	"time"
)

// DefaultBudget bounds a detached context when ctx has no deadline and no budget is given.
const DefaultBudget = 10 * time.Second

// Context returns a context with ctx's values that is not cancelled with ctx and ends at the
// earliest of: reserve before ctx's deadline (when ctx has one), and budget from now (when
// budget > 0). Without either it lasts DefaultBudget. Call cancel when the calls are done.
func Context(ctx context.Context, reserve, budget time.Duration) (context.Context, context.CancelFunc) {
	var end time.Time
	if budget > 0 {
		end = time.Now().Add(budget)
	}
	if d, ok := ctx.Deadline(); ok && (end.IsZero() || d.Add(-reserve).Before(end)) {
		end = d.Add(-reserve)
	}
	if end.IsZero() {
		end = time.Now().Add(DefaultBudget)
	}
	return context.WithDeadline(context.WithoutCancel(ctx), end)
}

// Package clock is the project's one context-aware sleep and the system clock that packages
// with injected time (x/time/rate style) take by default.
package clock

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx is done, whichever comes first, and returns ctx's error in the
// second case. A d <= 0 returns at once with ctx's error (nil while ctx is live).
//
// The last Tail of the wait is the kernel's own sleep, not a Go timer: the runtime's timers
// may fire up to a millisecond late (its poller waits in whole milliseconds), and a request sent
// that late loses its slot of the order API's schedule. ctx is not looked at during the tail.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	end := time.Now().Add(d)
	if d > Tail {
		t := time.NewTimer(d - Tail)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sleepTail(time.Until(end))
	return nil
}

// Tail is the end of a Sleep spent in the kernel's sleep (see Sleep).
const Tail = 2 * time.Millisecond

// System is the real clock. The zero value is ready to use and safe for concurrent use.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// Sleep is the package's Sleep.
func (System) Sleep(ctx context.Context, d time.Duration) error { return Sleep(ctx, d) }

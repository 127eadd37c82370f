package clock

import (
	"context"
	"sync"
	"time"
)

// Manual is a clock that moves only when told (tests): Sleep advances it by d at once instead of
// waiting. The zero value starts at the zero time; it is safe for concurrent use.
type Manual struct {
	mu  sync.Mutex
	now time.Time
}

// NewManual returns a Manual clock reading t.
func NewManual(t time.Time) *Manual { return &Manual{now: t} }

// Now returns the clock's time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Set moves the clock to t.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	m.now = t
	m.mu.Unlock()
}

// Add moves the clock by d.
func (m *Manual) Add(d time.Duration) {
	m.mu.Lock()
	m.now = m.now.Add(d)
	m.mu.Unlock()
}

// Sleep advances the clock by d (when > 0) and returns ctx's error.
func (m *Manual) Sleep(ctx context.Context, d time.Duration) error {
	if d > 0 {
		m.Add(d)
	}
	return ctx.Err()
}

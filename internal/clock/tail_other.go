//go:build !linux

package clock

import "time"

// sleepTail sleeps d (at most Tail) on a Go timer: Linux's nanosleep(2) is used there.
func sleepTail(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}

package clock

import (
	"syscall"
	"time"
)

// sleepTail sleeps d (at most Tail) in nanosleep(2), to tens of microseconds on an idle host.
func sleepTail(d time.Duration) {
	if d <= 0 {
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

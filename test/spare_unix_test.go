//go:build unix

package test

import (
	"runtime"
	"sync"
	"syscall"
	"time"
)

// spareCPU is the share of the machine's CPUs this process gets while it keeps all of them
// busy for d: about 1 on an idle machine, 0.5 when as many other busy processes as CPUs compete
// (stress-ng --cpu N), less on a busier one. 0 when it cannot be measured.
func spareCPU(d time.Duration) float64 {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			return -1
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	n := runtime.GOMAXPROCS(0)
	before, start := cpu(), time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < d {
			}
		}()
	}
	wg.Wait()
	used, wall := cpu()-before, time.Since(start)
	if before < 0 || used < 0 {
		return 0
	}
	return used.Seconds() / (wall.Seconds() * float64(n))
}

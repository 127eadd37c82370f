package apiserver

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestStampedArrival: served from a StampListener, a request's arrival is when its bytes reached
// the host, not when its handler got to run; each request on a kept-alive connection gets its
// own.
func TestStampedArrival(t *testing.T) {
	const stall = 300 * time.Millisecond
	var stall1 atomic.Bool
	s, err := New(Config{Now: func() time.Time {
		if stall1.CompareAndSwap(true, false) {
			time.Sleep(stall) // the first handler starts late, as on a host busy elsewhere
		}
		return time.Now()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &httptest.Server{Listener: StampListener(ln), Config: s.HTTPServer()}
	ts.Start()
	t.Cleanup(ts.Close)
	c := &http.Client{}
	// The kernel turns receive stamps on a little after the first socket asks (deferred
	// work): wait for a stamped arrival.
	for i := 0; ; i++ {
		if _, err := do(t, c, ts.URL, good(t, "W-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if a := s.Arrivals(); a[len(a)-1].At.Before(a[len(a)-1].Read) {
			break
		}
		if i == 100 {
			t.Fatal("no arrival stamped by the kernel in 100 requests")
		}
		time.Sleep(10 * time.Millisecond)
	}
	warm := len(s.Arrivals())
	var sent, answered [2]time.Time
	for i, id := range []string{"S-1", "S-2"} {
		stall1.Store(i == 0)
		sent[i] = time.Now()
		resp, err := do(t, c, ts.URL, good(t, id))
		if err != nil {
			t.Fatal(err)
		}
		answered[i] = time.Now()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", id, resp.StatusCode)
		}
	}
	a := s.Arrivals()[warm:]
	if len(a) != 2 {
		t.Fatalf("%d arrivals after the warm-up, want 2", len(a))
	}
	for i, x := range a {
		if x.At.Before(sent[i]) || x.At.After(x.Read) || x.Read.After(answered[i]) {
			t.Errorf("%s: sent %v, arrived %v, read %v, answered %v: want them in this order", x.ID,
				sent[i].Format(time.StampMicro), x.At.Format(time.StampMicro), x.Read.Format(time.StampMicro), answered[i].Format(time.StampMicro))
		}
	}
	if late := a[0].Read.Sub(a[0].At); late < stall {
		t.Errorf("first request read %v after it arrived, want >= the handler's stall %v (arrival timed by the handler, not the kernel)", late, stall)
	}
	if !a[1].At.After(a[0].Read) {
		t.Errorf("second request arrived %v, not after the first was read (%v): the connection's stamp is stale", a[1].At, a[0].Read)
	}
}

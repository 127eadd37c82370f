package apiserver

import (
	"flag"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestScriptedOutage(t *testing.T) {
	s, url, clk := start(t, Config{Outages: []Outage{{From: 10 * time.Second, To: 20 * time.Second, Status: 503, RetryAfter: 5 * time.Second}}})
	c := &http.Client{}
	var got []int
	var retryAfter []string
	for i, step := range []time.Duration{0, 10 * time.Second, 9 * time.Second, time.Second} {
		clk.Advance(step)
		resp, err := do(t, c, url, good(t, "O-"+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.StatusCode)
		retryAfter = append(retryAfter, resp.Header.Get("Retry-After"))
	}
	// At 0 s, 10 s (in), 19 s (in), 20 s (out again).
	if want := []int{200, 503, 503, 200}; !cmp.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if want := []string{"", "5", "5", ""}; !cmp.Equal(retryAfter, want) {
		t.Errorf("Retry-After %q, want %q", retryAfter, want)
	}
	if st := s.Stats(); st.OutageHits != 2 || st.Accepted != 2 {
		t.Errorf("stats %+v, want 2 outage hits and 2 accepted", st)
	}
}

func TestArrivalsAndGaps(t *testing.T) {
	s, url, clk := start(t, Config{RPS: 1, Burst: 1})
	c := &http.Client{}
	for _, step := range []time.Duration{0, 1500 * time.Millisecond, 400 * time.Millisecond} {
		clk.Advance(step)
		if _, err := do(t, c, url, good(t, "G-1")); err != nil {
			t.Fatal(err)
		}
	}
	a := s.Arrivals()
	var statuses []int
	for _, x := range a {
		statuses = append(statuses, x.Status)
	}
	if want := []int{200, 200, 429}; !cmp.Equal(statuses, want) {
		t.Errorf("arrival statuses %v, want %v", statuses, want)
	}
	shortest, closer := MinGap(a, time.Second)
	if shortest != 400*time.Millisecond || closer != 1 {
		t.Errorf("MinGap = %v, %d; want 400ms, 1", shortest, closer)
	}
}

func TestRateLimitHeaders(t *testing.T) {
	_, url, clk := start(t, Config{RPS: 2, Burst: 1, RateLimitHeaders: true})
	c := &http.Client{}
	resp, err := do(t, c, url, good(t, "R-1"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Header.Get("RateLimit-Policy"), `"default";q=1;w=0.5`; got != want {
		t.Errorf("RateLimit-Policy %q, want %q", got, want)
	}
	if got, want := resp.Header.Get("RateLimit"), `"default";r=0;t=1`; got != want {
		t.Errorf("RateLimit %q, want %q", got, want)
	}
	clk.Advance(time.Second)
	if resp, _ = do(t, c, url, good(t, "R-2")); resp.StatusCode != http.StatusOK {
		t.Errorf("status %d after the bucket refilled, want 200", resp.StatusCode)
	}
}

func TestOutageFlag(t *testing.T) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-api-outage", "10s-40s", "-api-outage", "1m-2m:500:30s", "-api-ratelimit-headers"}); err != nil {
		t.Fatal(err)
	}
	want := []Outage{{From: 10 * time.Second, To: 40 * time.Second, Status: 503}, {From: time.Minute, To: 2 * time.Minute, Status: 500, RetryAfter: 30 * time.Second}}
	if !cmp.Equal(c.Outages, want) || !c.RateLimitHeaders {
		t.Errorf("outages %+v, headers %v; want %+v, true", c.Outages, c.RateLimitHeaders, want)
	}
	for _, bad := range []string{"10s", "x-1s", "1s-2s:abc", "2s-1s"} {
		c := DefaultConfig()
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(nopWriter{})
		c.RegisterFlags(fs)
		err := fs.Parse([]string{"-api-outage", bad})
		if err == nil {
			_, err = New(c)
		}
		if err == nil {
			t.Errorf("outage %q accepted", bad)
		}
	}
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

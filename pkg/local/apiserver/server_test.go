package apiserver

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/order"
)

// fakeClock is a clock whose Sleep advances time instead of waiting.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.Advance(d)
	return ctx.Err()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func readOrder(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/order.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// start serves cfg on a fake clock and returns the server, its URL and the clock.
func start(t *testing.T, cfg Config) (*Server, string, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	if cfg.Now == nil {
		cfg.Now, cfg.Sleep = clk.Now, clk.Sleep
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL, clk
}

type req struct {
	method, path, contentType, key, auth string
	body                                 []byte
}

func do(t *testing.T, c *http.Client, base string, r req) (*http.Response, error) {
	t.Helper()
	hr, err := http.NewRequest(r.method, base+r.path, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	hr.GetBody = nil // no transport-level resend: count what the server really saw
	hr.Header.Set("Content-Type", r.contentType)
	hr.Header.Set("Idempotency-Key", r.key)
	if r.auth != "" {
		hr.Header.Set("Authorization", r.auth)
	}
	resp, err := c.Do(hr)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func good(t *testing.T, id string) req {
	body := readOrder(t)
	return req{method: http.MethodPut, path: "/orders/" + id, contentType: "application/json", key: order.IdempotencyKey(id, body), body: body}
}

func TestChecks(t *testing.T) {
	s, url, _ := start(t, Config{Authorization: "Bearer s3cret"})
	ok := good(t, "A-1")
	ok.auth = "Bearer s3cret"
	for _, tc := range []struct {
		name   string
		change func(*req)
		want   int
	}{
		{"valid", func(*req) {}, http.StatusOK},
		{"charset is fine", func(r *req) { r.contentType = "application/json; charset=utf-8" }, http.StatusOK},
		{"wrong method", func(r *req) { r.method = http.MethodPost }, http.StatusMethodNotAllowed},
		{"wrong path", func(r *req) { r.path = "/order/A-1" }, http.StatusNotFound},
		{"wrong content type", func(r *req) { r.contentType = "text/plain" }, http.StatusUnsupportedMediaType},
		{"key of another id", func(r *req) { r.key = "A-2~" + r.key[len("A-1~"):] }, http.StatusBadRequest},
		{"key is the id alone", func(r *req) { r.key = "A-1" }, http.StatusBadRequest},
		{"missing key", func(r *req) { r.key = "" }, http.StatusBadRequest},
		{"key reused with another body", func(r *req) { r.body = []byte(`{"id":"A-1","amount":"9.00"}`) }, http.StatusUnprocessableEntity},
		{"update: new key, new body", func(r *req) {
			r.body = []byte(`{"id":"A-1","amount":"9.00"}`)
			r.key = order.IdempotencyKey("A-1", r.body)
		}, http.StatusOK},
		{"replay of the update", func(r *req) {
			r.body = []byte(`{"id":"A-1","amount":"9.00"}`)
			r.key = order.IdempotencyKey("A-1", r.body)
		}, http.StatusOK},
		{"missing authorization", func(r *req) { r.auth = "" }, http.StatusUnauthorized},
		{"wrong authorization", func(r *req) { r.auth = "Bearer other" }, http.StatusUnauthorized},
		{"body not an object", func(r *req) { r.body = []byte(`[1,2]`) }, http.StatusBadRequest},
		{"body not JSON", func(r *req) { r.body = []byte(`{"id":`) }, http.StatusBadRequest},
		{"escaped id", func(r *req) { r.path, r.key = "/orders/B%3A1", order.IdempotencyKey("B:1", r.body) }, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.change(&r)
			resp, err := do(t, http.DefaultClient, url, r)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.StatusCode; got != tc.want {
				t.Errorf("status = %d, want %d", got, tc.want)
			}
		})
	}
	st := s.Stats()
	if st.Accepted != 2 || st.Duplicates != 2 || st.Updates != 1 || st.Rejected != 11 {
		t.Errorf("stats = %+v, want accepted 2 (A-1, B:1), duplicates 2 (charset, replay of the update), updates 1, rejected 11", st)
	}
	if got := s.Orders()["A-1"]; got.Count != 4 || string(got.Body) != `{"id":"A-1","amount":"9.00"}` {
		t.Errorf("record A-1 = %d, %q; want 4 and the updated body", got.Count, got.Body)
	}
}

func TestRateLimit(t *testing.T) {
	s, url, clk := start(t, Config{RPS: 1, Burst: 2})
	var got []int
	var retryAfter []string
	put := func(id string) {
		resp, err := do(t, http.DefaultClient, url, good(t, id))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.StatusCode)
		retryAfter = append(retryAfter, resp.Header.Get("Retry-After"))
	}
	put("a")
	put("b")
	put("c")
	clk.Advance(time.Second)
	put("c")
	put("d")
	if want := []int{200, 200, 429, 200, 429}; !cmp.Equal(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	if want := []string{"", "", "1", "", "1"}; !cmp.Equal(retryAfter, want) {
		t.Errorf("Retry-After = %q, want %q", retryAfter, want)
	}
	st := s.Stats()
	if st.Throttled != 2 || st.Accepted != 3 || !cmp.Equal(st.PerSecond, []int{2, 1}) {
		t.Errorf("stats = %+v, want 2 throttled, 3 accepted, per second [2 1]", st)
	}
}

func TestFaults(t *testing.T) {
	s, url, _ := start(t, Config{RejectIDs: []string{"rej"}, FailIDs: []string{"fail"}, FailTimes: 2, BrokenIDs: []string{"down"},
		ResetIDs: []string{"reset"}, FailStatus: 502})
	type outcome struct {
		Status int
		Err    bool
	}
	var got []outcome
	for _, id := range []string{"rej", "rej", "fail", "fail", "fail", "reset", "reset", "reset", "down", "down", "down"} {
		resp, err := do(t, http.DefaultClient, url, good(t, id))
		o := outcome{Err: err != nil}
		if err == nil {
			o.Status = resp.StatusCode
		}
		got = append(got, o)
	}
	want := []outcome{{422, false}, {422, false}, {502, false}, {502, false}, {200, false}, {0, true}, {0, true}, {200, false}, {502, false}, {502, false}, {502, false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	st := s.Stats()
	if st.Resets != 2 || st.ServerErrors != 5 || st.Rejected != 2 || st.Accepted != 2 || st.Duplicates != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestHang(t *testing.T) {
	for _, tc := range []struct {
		name         string
		commit       bool
		wantAccepted int
	}{
		{"client gives up, nothing recorded", false, 0},
		{"committed before hanging", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Real clock: the hang must end when the client goes away.
			s, err := New(Config{HangIDs: []string{"h"}, HangFor: time.Minute, CommitBeforeHang: tc.commit})
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(s)
			defer ts.Close()
			c := &http.Client{Timeout: 100 * time.Millisecond}
			_, err = do(t, c, ts.URL, good(t, "h"))
			var te interface{ Timeout() bool }
			if !errors.As(err, &te) || !te.Timeout() {
				t.Fatalf("err = %v, want a timeout", err)
			}
			resp, err := do(t, http.DefaultClient, ts.URL, good(t, "h"))
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("second attempt: %v, %v; want 200", resp, err)
			}
			st := s.Stats()
			if st.Hangs != 1 || st.Accepted != 1 || st.Duplicates != tc.wantAccepted {
				t.Errorf("stats = %+v, want 1 hang, 1 accepted, %d duplicates", st, tc.wantAccepted)
			}
		})
	}
}

func TestFractionsAreDeterministic(t *testing.T) {
	pick := func(seed int64) []string {
		s, err := New(Config{FailFraction: 0.3, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t"} {
			if s.is(faultFail, id) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	first, again, other := pick(7), pick(7), pick(8)
	if !cmp.Equal(first, again) {
		t.Errorf("same seed chose %v then %v", first, again)
	}
	if len(first) == 0 || len(first) == 20 || cmp.Equal(first, other) {
		t.Errorf("seed 7 chose %v, seed 8 chose %v: want a proper, seed-dependent subset", first, other)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"reject status 429", Config{RejectStatus: 429}},
		{"fail status 404", Config{FailStatus: 404}},
		{"fraction above 1", Config{HangFraction: 1.5}},
		{"negative latency", Config{Latency: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Error("New: nil error, want one")
			}
		})
	}
}

func TestRegisterFlags(t *testing.T) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	err := fs.Parse([]string{"-api-rps", "20", "-api-burst", "3", "-api-latency", "5ms", "-api-fail-ids", "a, b",
		"-api-fail-ids", "c", "-api-hang-fraction", "0.25", "-api-commit-before-hang"})
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.RPS, want.Burst, want.Latency, want.FailIDs, want.HangFraction, want.CommitBeforeHang = 20, 3, 5*time.Millisecond, []string{"a", "b", "c"}, 0.25, true
	if diff := cmp.Diff(want, cfg, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().Type().Kind().String() == "func" }, cmp.Ignore())); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

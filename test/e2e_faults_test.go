package test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// hangSwitch puts a fault the test can clear in front of the stand-in API: while it is on,
// requests for the chosen ids get no answer until the client gives up (every try, unlike the
// stand-in's HangIDs, which end after Config.FailTimes tries shared with the other faults).
// Clearing it is "fixing" the API. Safe for concurrent use.
type hangSwitch struct {
	next  http.Handler
	mu    sync.Mutex
	ids   map[string]bool
	hangs map[string]int // requests left hanging, by id
	off   chan struct{}  // closed by clear: hung requests end
}

func newHangSwitch(next http.Handler, ids []string) *hangSwitch {
	h := &hangSwitch{next: next, ids: map[string]bool{}, hangs: map[string]int{}, off: make(chan struct{})}
	for _, id := range ids {
		h.ids[id] = true
	}
	return h
}

func (h *hangSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, _ := strings.CutPrefix(r.URL.Path, "/orders/")
	id, _ := url.PathUnescape(rest)
	h.mu.Lock()
	hang := h.ids[id]
	if hang {
		h.hangs[id]++
	}
	h.mu.Unlock()
	if !hang {
		h.next.ServeHTTP(w, r)
		return
	}
	select {
	case <-r.Context().Done(): // the client timed out
	case <-h.off:
		http.Error(w, "hang cleared", http.StatusServiceUnavailable)
	}
}

// clear turns the fault off: later requests reach the stand-in, hung ones end. Idempotent.
func (h *hangSwitch) clear() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ids) > 0 {
		h.ids = map[string]bool{}
		close(h.off)
	}
}

// hung returns how many requests were left hanging, by id.
func (h *hangSwitch) hung() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := make(map[string]int, len(h.hangs))
	for k, v := range h.hangs {
		m[k] = v
	}
	return m
}

// redrive moves the parked orders of classes back to the orders queue with pkg/redrive's
// selective move, as `orderpipe dlq redrive --class ...` does.
func (p *e2ePipeline) redrive(t *testing.T, classes ...string) redrive.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), awstest.Scale(t, p.sqs, 30*time.Second))
	defer cancel()
	r := redrive.New(redrive.Config{QueueURL: p.res.OrdersQueueURL, DLQURL: p.res.OrdersDLQURL, ScanVisibility: 30 * time.Second}, e2eRedriveSQS(t, p.res),
		redrive.Options{Journal: e2eRedriveJournal(t, p.res), Logger: slog.New(slog.NewTextHandler(p.logs, nil))})
	res, err := r.Run(ctx, redrive.Request{Class: classes})
	if err != nil {
		t.Fatalf("redrive %v: %v", classes, err)
	}
	return res
}

// TestE2EFaultsAndRedrive runs a file through an API with every kind of fault: refused orders
// (422) are parked as permanent at once; orders failing with 500 or a connection reset on their
// first two tries are delivered by the retries; orders whose request hangs past the client
// timeout on every try are parked as exhausted after MAX_ATTEMPTS tries. Then the API is fixed
// and the exhausted orders are redriven: they are delivered and only the permanent ones stay.
func TestE2EFaultsAndRedrive(t *testing.T) {
	t.Parallel()
	const failTimes = 2
	refused, failing, resetting, hanging := []string{"f-03", "f-09"}, []string{"f-02", "f-05"}, []string{"f-07", "f-11"}, []string{"f-04", "f-10"}
	p := newE2E(t, e2eOptions{
		plan:    apiserver.Config{RejectIDs: refused, FailIDs: failing, ResetIDs: resetting, FailTimes: failTimes},
		hangIDs: hanging,
	})
	if failTimes >= p.settings.MaxAttempts {
		t.Fatalf("failTimes %d must stay under MaxAttempts %d for the retried orders to get through", failTimes, p.settings.MaxAttempts)
	}
	p.start(t)
	f := &e2eFile{key: "uploads/faults.jsonl", body: e2eFixture(t, "faults.jsonl"), ids: numbered("f", 12)}
	files := []*e2eFile{f}
	f.version = p.upload(t, f.key, f.body)
	p.settle(t, 60*time.Second, files)

	wantParked := map[string]string{}
	for _, id := range refused {
		wantParked[id] = order.ClassPermanent
	}
	for _, id := range hanging {
		wantParked[id] = order.ClassExhausted
	}
	parked := p.checkLedger(t, files, wantParked)
	for _, id := range refused {
		if m := parked[id]; !strings.HasPrefix(m.detail, "HTTP 422") || m.attempts != 1 {
			t.Errorf("parked %s: detail %q after %d attempts, want HTTP 422 at the first attempt", id, m.detail, m.attempts)
		}
	}
	for _, id := range hanging {
		if m := parked[id]; !strings.HasPrefix(m.detail, "timeout: ") || m.attempts != int64(p.settings.MaxAttempts) {
			t.Errorf("parked %s: detail %q after %d attempts, want a timeout after %d", id, m.detail, m.attempts, p.settings.MaxAttempts)
		}
	}
	wantHung := map[string]int{}
	for _, id := range hanging {
		wantHung[id] = p.settings.MaxAttempts
	}
	if diff := cmp.Diff(wantHung, p.hang.hung()); diff != "" {
		t.Errorf("requests left hanging by id (-want +got):\n%s", diff)
	}
	st := p.api.Stats()
	if st.ServerErrors != failTimes*len(failing) || st.Resets != failTimes*len(resetting) || st.Duplicates != 0 {
		t.Errorf("stand-in: %d 5xx, %d resets, %d duplicates; want %d, %d, 0", st.ServerErrors, st.Resets, st.Duplicates,
			failTimes*len(failing), failTimes*len(resetting))
	}
	if t.Failed() {
		t.FailNow()
	}

	// The API is fixed: the timeouts are redriven and delivered; the refused orders stay parked.
	p.hang.clear()
	res := p.redrive(t, order.ClassExhausted)
	if res.Moved != len(hanging) || res.Failed != 0 || res.DeleteFailed != 0 || res.Skipped != len(refused) {
		t.Errorf("redrive moved %d failed %d deleteFailed %d skipped %d; want %d 0 0 %d", res.Moved, res.Failed, res.DeleteFailed, res.Skipped, len(hanging), len(refused))
	}
	p.settle(t, 60*time.Second, files)
	for _, id := range hanging {
		delete(wantParked, id)
	}
	p.checkLedger(t, files, wantParked)
}

// TestE2ESlowAPI gives the order API client a timeout (30 s) far past the dispatch function's
// (4 s): a request that hangs must still end as a recorded timeout within the invocation's
// deadline minus the client's margin, never as an invocation killed at its deadline, so the
// order is parked as exhausted with a timeout detail after MAX_ATTEMPTS tries.
func TestE2ESlowAPI(t *testing.T) {
	t.Parallel()
	const hung = "s-02"
	p := newE2E(t, e2eOptions{hangIDs: []string{hung}, timeout: 30 * time.Second})
	p.start(t)
	body := []byte(`{"id":"s-01"}` + "\n" + `{"id":"s-02"}` + "\n" + `{"id":"s-03"}` + "\n")
	f := &e2eFile{key: "uploads/slow.jsonl", body: body, ids: numbered("s", 3)}
	f.version = p.upload(t, f.key, f.body)
	files := []*e2eFile{f}
	p.settle(t, 60*time.Second, files)
	parked := p.checkLedger(t, files, map[string]string{hung: order.ClassExhausted})
	if m := parked[hung]; !strings.HasPrefix(m.detail, "timeout: ") || m.attempts != int64(p.settings.MaxAttempts) {
		t.Errorf("parked %s: detail %q after %d attempts, want a timeout after %d", hung, m.detail, m.attempts, p.settings.MaxAttempts)
	}
	if st := p.orders.Stats(); st.Timeouts != 0 || st.Failures != 0 {
		t.Errorf("dispatch invocations: %d timed out, %d failed; want 0, 0 (the client must give up first)", st.Timeouts, st.Failures)
	}
	if got := p.hang.hung()[hung]; got != p.settings.MaxAttempts {
		t.Errorf("requests for %s left hanging = %d, want %d", hung, got, p.settings.MaxAttempts)
	}
}

// TestE2EStrictAPI runs orders against a stand-in limited exactly like the real API (API_RATE,
// burst 1, 429 beyond), where the two dispatch instances are throttled often, with some orders
// failing twice with a 500 first. Throttles never spend the transient budget (dispatch re-sends
// a fresh copy carrying Retries, pkg/dispatch), so no order is parked: the failing ones get
// through within MAX_ATTEMPTS too, and every order is delivered exactly once.
func TestE2EStrictAPI(t *testing.T) {
	t.Parallel()
	const n, rate = 40, 20
	var body []byte
	failing := map[string]bool{}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("t-%02d", i)
		body = fmt.Appendf(body, `{"id":%q,"amount":"%d.00"}`+"\n", id, i)
		if i%5 == 0 {
			failing[id] = true
		}
	}
	p := newE2E(t, e2eOptions{apiRate: rate, plan: apiserver.Config{
		RPS: rate, Burst: 1, FailIDs: slices.Sorted(maps.Keys(failing)), FailTimes: 2,
	}})
	p.start(t)
	f := &e2eFile{key: "uploads/strict.jsonl", body: body, ids: numbered("t", n)}
	f.version = p.upload(t, f.key, f.body)
	files := []*e2eFile{f}
	p.settle(t, 60*time.Second, files)

	for _, m := range p.peekDLQ(t) {
		t.Errorf("order %s parked as %s (failing: %v): throttles must not spend the transient budget", m.id, m.class, failing[m.id])
	}
	p.checkLedger(t, files, nil)
	st := p.api.Stats()
	t.Logf("stand-in: %d requests, %d throttled, %d 5xx", st.Requests, st.Throttled, st.ServerErrors)
}

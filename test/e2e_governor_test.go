package test

import (
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
)

// TestE2EGovernedStrictAPI runs the pipeline as deployed, the governor on (both dispatch
// instances take their request slots from one record in the stand-in's DynamoDB), against a
// stand-in limited exactly like the real API: a token bucket of one request at API_RATE, 429
// beyond. No two requests reach the API closer than 1/rate, so none is throttled, nothing is
// parked and every order is delivered once. The margin (GOVERNOR_MARGIN) is wide so that a
// request held up on its way by a busy machine still arrives after the one before it plus
// 1/rate: the test is about outcomes, the rate achieved is the benchmarks'.
func TestE2EGovernedStrictAPI(t *testing.T) {
	t.Parallel()
	const rate = 4
	body, ids := ordersNumbered("g", 16)
	p := newE2E(t, e2eOptions{apiRate: rate, governor: 100 * time.Millisecond, plan: apiserver.Config{RPS: rate, Burst: 1}})
	p.start(t)
	files := []*e2eFile{{key: "uploads/governed.jsonl", body: body, ids: ids}}
	files[0].version = p.upload(t, files[0].key, body)
	p.settle(t, time.Minute, files)

	if parked := p.peekDLQ(t); len(parked) > 0 {
		t.Errorf("parked %+v: the governed pipeline parks nothing", parked)
	}
	p.checkLedger(t, files, nil)
	arrivals := p.api.Arrivals()
	if shortest, closer := apiserver.MinGap(arrivals, time.Second/rate); closer > 0 {
		t.Errorf("%d of %d requests reached the API closer than 1/rate (%v) to the one before (shortest %v)", closer, len(arrivals), time.Second/rate, shortest)
	}
	if st := p.api.Stats(); st.Throttled > 0 || st.Duplicates > 0 {
		t.Errorf("stand-in: %d throttled, %d duplicate PUTs of %d requests; want none", st.Throttled, st.Duplicates, st.Requests)
	}
}

package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/clock"

	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
)

// sharedPair returns two Dispatchers (two instances) on one governor store and one clock, each
// with its own fake API whose deadline is far away.
func sharedPair(t *testing.T, cfg Config, store governor.Store) (a, b *Dispatcher, apiA, apiB *fakeAPI, qa, qb *recordingQueue, clk *testClock) {
	t.Helper()
	clk = &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	mk := func(name string) (*Dispatcher, *fakeAPI, *recordingQueue) {
		g, err := governor.New(governor.Config{Rate: cfg.APIRate, Instance: name, FailureThreshold: cfg.BreakerThreshold,
			ProbeInterval: cfg.ProbeInterval}, store, clk)
		if err != nil {
			t.Fatal(err)
		}
		api := &fakeAPI{clock: clk, budget: 1000 * time.Hour, start: clk.t}
		q := &recordingQueue{}
		return New(cfg, q, api, Options{Clock: clk, Metrics: &bytes.Buffer{}, Governor: g, Rand: func() float64 { return 0.5 }}), api, q
	}
	a, apiA, qa = mk("a")
	b, apiB, qb = mk("b")
	return
}

func TestInstancesShareOneSchedule(t *testing.T) {
	cfg := testConfig()
	cfg.APIRate = 1 // the total: with a shared governor each instance does not pace at 1/2
	a, b, apiA, apiB, _, _, clk := sharedPair(t, cfg, &governor.MemoryStore{})
	ctx := context.Background()
	for _, id := range []string{"a1", "b1", "a2", "b2"} {
		d := a
		if id[0] == 'b' {
			d = b
		}
		d.Handle(ctx, batch(id))
	}
	var all []time.Duration
	for i := range apiA.at {
		all = append(all, apiA.at[i], apiB.at[i])
	}
	for i := 1; i < len(all); i++ {
		if gap := all[i] - all[i-1]; gap < time.Second {
			t.Errorf("PUTs %d and %d of two instances %v apart, want >= 1/rate", i-1, i, gap)
		}
	}
	if elapsed := clk.t.Sub(apiA.start); elapsed > 5*time.Second {
		t.Errorf("4 orders at 1/s took %v, want about 4 s: the instances did not share the rate", elapsed)
	}
}

func TestThrottlePausesEveryInstance(t *testing.T) {
	cfg := testConfig()
	cfg.APIRate = 2
	a, b, apiA, apiB, qa, _, _ := sharedPair(t, cfg, &governor.MemoryStore{})
	apiA.results = []orderapi.Result{{Class: orderapi.Throttled, Status: http.StatusTooManyRequests, Sent: true,
		RetryAfter: 5 * time.Second, HasRetryAfter: true, Detail: "HTTP 429"}}
	ctx := context.Background()
	a.Handle(ctx, batch("x"))
	b.Handle(ctx, batch("y"))
	if got := apiB.at[0] - apiA.at[0]; got < 5*time.Second {
		t.Errorf("the other instance sent %v after a 429 with Retry-After 5, want >= 5s", got)
	}
	if len(qa.sent) != 1 || qa.sent[0].DelaySeconds != 5 {
		t.Errorf("throttled order re-sent %v, want one fresh copy delayed 5 s", qa.sent)
	}
}

func TestOpenBreakerHoldsOrdersWithoutSpendingBudget(t *testing.T) {
	cfg := testConfig()
	cfg.BreakerThreshold, cfg.ProbeInterval = 2, 30*time.Second
	a, b, apiA, apiB, qa, qb, clk := sharedPair(t, cfg, &governor.MemoryStore{})
	fail := orderapi.Result{Class: orderapi.Transient, Status: http.StatusInternalServerError, Sent: true, Detail: "HTTP 500"}
	apiA.results = []orderapi.Result{fail, fail}
	apiB.results = []orderapi.Result{fail}
	ctx := context.Background()
	// Two failures across instances open the breaker: both spent an attempt (visibility).
	a.Handle(ctx, batch("f1"))
	a.Handle(ctx, batch("f2"))
	if len(qa.visibility) != 2 {
		t.Fatalf("visibility changes %v, want 2 (transient attempts before the breaker opened)", qa.visibility)
	}
	// The other instance's order meets the open breaker: the probe slot is 30 s away and the
	// invocation's deadline is closer. Given back as a fresh copy, budget untouched, no PUT.
	b.api.(*fakeAPI).budget = clk.t.Sub(apiB.start) + 20*time.Second
	b.Handle(ctx, retried(batch("held"), "2"))
	if len(apiB.at) != 0 {
		t.Fatalf("%d PUTs while the breaker is open, want 0", len(apiB.at))
	}
	if len(qb.sent) != 1 || qb.sent[0].DelaySeconds != int32(2*cfg.ProbeInterval/time.Second) ||
		*qb.sent[0].MessageAttributes[order.AttrRetries].StringValue != "2" {
		t.Fatalf("held order re-sent %+v, want one fresh copy delayed two probe intervals (the mean hold) with Retries 2", qb.sent)
	}
	// An order arriving once the probe is due is the probe; it fails: given back, budget
	// untouched.
	b.api.(*fakeAPI).budget = 1000 * time.Hour
	clk.t = clk.t.Add(cfg.ProbeInterval)
	b.Handle(ctx, retried(batch("probe"), "2"))
	if len(apiB.at) != 1 || len(qb.sent) != 2 || *qb.sent[1].MessageAttributes[order.AttrRetries].StringValue != "2" {
		t.Fatalf("after a failed probe: %d PUTs, re-sent %d; want 1 PUT and a fresh copy with Retries 2", len(apiB.at), len(qb.sent))
	}
	probeAt := apiB.at[0]
	// The next probe goes one interval later and succeeds: the breaker closes.
	clk.t = apiB.start.Add(probeAt + cfg.ProbeInterval)
	a.Handle(ctx, batch("p2"))
	if got := apiA.at[2] - probeAt; got < 30*time.Second {
		t.Errorf("second probe %v after the first, want >= 30s", got)
	}
	b.Handle(ctx, batch("after"))
	if got := apiB.at[1] - apiA.at[2]; got > 2*time.Second {
		t.Errorf("order after a successful probe waited %v, want the normal interval", got)
	}
}

// brokenStore fails every call.
type brokenStore struct{}

func (brokenStore) Load(context.Context) (governor.State, error) {
	return governor.State{}, errors.New("connection refused")
}
func (brokenStore) Save(context.Context, governor.State, int64) error {
	return errors.New("connection refused")
}

func TestGovernorStoreDownSendsNothing(t *testing.T) {
	cfg := testConfig()
	a, _, apiA, _, qa, _, clk := sharedPair(t, cfg, brokenStore{})
	var logs bytes.Buffer
	a.log = slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()
	for i := range 3 {
		a.Handle(ctx, retried(batch("s"+string(rune('0'+i))), "1"))
		clk.t = clk.t.Add(10 * time.Second)
	}
	if len(apiA.at) != 0 {
		t.Errorf("%d PUTs without the governor, want 0", len(apiA.at))
	}
	for _, in := range qa.sent {
		if in.DelaySeconds != int32(storeRetry/time.Second) || *in.MessageAttributes[order.AttrRetries].StringValue != "1" {
			t.Errorf("given back %+v, want a fresh copy delayed %v with Retries 1", in, storeRetry)
		}
	}
	if len(qa.sent) != 3 {
		t.Errorf("%d orders given back, want 3", len(qa.sent))
	}
	if n := strings.Count(logs.String(), "level=ERROR msg=\"governor unavailable"); n != 1 {
		t.Errorf("%d error lines for 3 store failures within a minute, want 1:\n%s", n, logs.String())
	}
}

// retried sets the Retries attribute of every message of ev.
func retried(ev events.SQSEvent, v string) events.SQSEvent {
	for i := range ev.Records {
		val := v
		ev.Records[i].MessageAttributes[order.AttrRetries] = events.SQSMessageAttribute{DataType: "Number", StringValue: &val}
	}
	return ev
}

// lateClock wakes every Sleep late by extra.
type lateClock struct {
	testClock
	extra time.Duration
}

func (c *lateClock) Sleep(ctx context.Context, d time.Duration) error {
	return c.testClock.Sleep(ctx, max(d, 0)+c.extra)
}

func TestLateWakeUpMovesTheSlotOrTakesAnother(t *testing.T) {
	for _, tc := range []struct {
		name      string
		otherNext bool // another instance reserved the next slot meanwhile
	}{{"alone: the slot moves to the late send", false}, {"another slot reserved after: the late slot is given up", true}} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &lateClock{testClock: testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, extra: 300 * time.Millisecond}
			store := &governor.MemoryStore{}
			cfg := testConfig()
			mk := func(name string) *governor.Governor {
				g, err := governor.New(governor.Config{Rate: 1, Instance: name}, store, clk)
				if err != nil {
					t.Fatal(err)
				}
				return g
			}
			var ga Governor = mk("a")
			if tc.otherNext {
				ga = &reserveAfter{Governor: mk("a"), other: mk("b")}
			}
			api := &fakeAPI{clock: clk, budget: time.Hour, start: clk.t}
			q := &recordingQueue{}
			d := New(cfg, q, api, Options{Clock: clk, Metrics: &bytes.Buffer{}, Governor: ga})
			d.Handle(context.Background(), batch("x"))
			st, _ := store.Load(context.Background())
			if tc.otherNext {
				// Every slot of a is followed by one of b: each late slot is lost; after three
				// the order is given back unsent, budget untouched.
				if len(api.at) != 0 || len(q.sent) != 1 || q.sent[0].DelaySeconds != 0 {
					t.Errorf("%d PUTs, re-sent %d; want 0 PUTs and one fresh copy", len(api.at), len(q.sent))
				}
				return
			}
			if len(api.at) != 1 || !st.Last.Equal(api.start.Add(api.at[0])) {
				t.Errorf("PUTs at %v, last slot %v; want one PUT and the slot moved to it", api.at, st.Last)
			}
		})
	}
}

// reserveAfter has another instance reserve right after each of this one's reservations, as
// a busy pipeline would.
type reserveAfter struct {
	*governor.Governor
	other *governor.Governor
}

func (r *reserveAfter) Reserve(ctx context.Context, fits func(time.Time) bool) (governor.Slot, error) {
	s, err := r.Governor.Reserve(ctx, fits)
	if err == nil {
		_, _ = r.other.Reserve(ctx, fits)
	}
	return s, err
}

// lateBusySchedule is a host where every wake-up is 30 ms late and a busy schedule: instance
// a's governor (1 rps, a 1 ms margin floor), with b reserving right after each of a's slots, on
// one in-memory store.
func lateBusySchedule(t *testing.T) (*lateClock, *governor.MemoryStore, *reserveAfter) {
	t.Helper()
	clk := &lateClock{testClock: testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, extra: 30 * time.Millisecond}
	store := &governor.MemoryStore{}
	mk := func(name string) *governor.Governor {
		g, err := governor.New(governor.Config{Rate: 1, Margin: time.Millisecond, Instance: name}, store, clk)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	return clk, store, &reserveAfter{Governor: mk("a"), other: mk("b")}
}

// TestMarginAdaptsToLateWakeUps: on a host where every wake-up is 30 ms late, against a busy
// schedule (another instance reserves after each slot), the order loses its first slot at the
// 1 ms floor; that wake-up widens the instance's margin to 30 ms, so its next slot is used,
// and the other instance's slot starts 1/rate after the end of that margin.
func TestMarginAdaptsToLateWakeUps(t *testing.T) {
	clk, store, gov := lateBusySchedule(t)
	a := gov.Governor
	api := &fakeAPI{clock: clk, budget: time.Hour, start: clk.t}
	q := &recordingQueue{}
	var metricsOut bytes.Buffer
	d := New(testConfig(), q, api, Options{Clock: clk, Metrics: &metricsOut, Governor: gov})
	if got := a.Margin(1); got != time.Millisecond {
		t.Fatalf("margin before any wake-up: %v, want the 1 ms floor", got)
	}
	d.Handle(context.Background(), batch("x"))
	if len(api.at) != 1 || len(q.sent) != 0 {
		t.Fatalf("%d PUTs, %d given back; want the order sent on its second slot", len(api.at), len(q.sent))
	}
	if got := a.Margin(1); got != 30*time.Millisecond {
		t.Errorf("margin after wake-ups 30 ms late: %v, want 30ms", got)
	}
	st, _ := store.Load(context.Background())
	if sent := api.start.Add(api.at[0]); st.By != "b" || st.Last.Sub(sent) < time.Second {
		t.Errorf("the next slot (%s's) starts %v after the late send, want >= 1s", st.By, st.Last.Sub(sent))
	}
	var m map[string]any
	if err := json.Unmarshal(metricsOut.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if got := m["GovernorMargin"]; got != 30.0 {
		t.Errorf("GovernorMargin = %v, want 30 (ms)", got)
	}
}

// TestLateSlotsShareOneBound: slots lost to a late wake-up and to a write the connection found
// late count together: a message gives up three in all, then is given back unsent. Every
// wake-up is 30 ms late against a busy schedule (the first slot is lost at the 1 ms floor, the
// next ones are used with the widened margin), and the API's connection finds the next two
// writes late.
func TestLateSlotsShareOneBound(t *testing.T) {
	clk, _, gov := lateBusySchedule(t)
	api := &fakeAPI{clock: clk, budget: time.Hour, start: clk.t, late: 2}
	q := &recordingQueue{}
	d := New(testConfig(), q, api, Options{Clock: clk, Metrics: &bytes.Buffer{}, Governor: gov})
	resp, _ := d.Handle(context.Background(), batch("x"))
	if len(api.at) != 2 || len(resp.BatchItemFailures) != 0 || len(q.sent) != 1 || q.sent[0].DelaySeconds != 0 {
		t.Errorf("%d PUTs tried, failures %v, %d fresh copies; want 2 writes refused, then the order given back at once (3 slots lost)",
			len(api.at), resp.BatchItemFailures, len(q.sent))
	}
}

// slowSecrets is the Secrets Manager client (the stand-in's) whose fetch takes took on the
// injected clock.
type slowSecrets struct {
	orderapi.SecretsAPI
	clk  *clock.Manual
	took time.Duration
}

func (s slowSecrets) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	out, err := s.SecretsAPI.GetSecretValue(ctx, in, optFns...)
	s.clk.Add(s.took)
	return out, err
}

// A request whose Authorization secret is fetched after its slot started would leave late, closer
// than 1/rate to the next slot's request (another instance's): the secret is fetched before the
// slot is reserved.
func TestSecretFetchDoesNotDelayTheRequestPastItsSlot(t *testing.T) {
	ctx := context.Background()
	sm := secretsmanager.NewFromConfig(awstest.Config(t))
	out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(awstest.Name(t, "order-api")), SecretString: aws.String("Bearer t")})
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	var arrivals []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, clk.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	cfg := testConfig()
	cfg.APIRate = 1
	store := &governor.MemoryStore{}
	mk := func(name string, fetch time.Duration) *Dispatcher {
		g, err := governor.New(governor.Config{Rate: cfg.APIRate, Instance: name}, store, clk)
		if err != nil {
			t.Fatal(err)
		}
		api, err := orderapi.New(orderapi.Config{BaseURL: srv.URL, SecretARN: aws.ToString(out.ARN)},
			orderapi.Options{Secrets: slowSecrets{SecretsAPI: sm, clk: clk, took: fetch}, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return New(cfg, &recordingQueue{}, api, Options{Clock: clk, Metrics: &bytes.Buffer{}, Governor: g, Rand: func() float64 { return 0.5 }})
	}
	// b's fetch takes 300 ms, more than the margin (20 ms at 1/s).
	a, b := mk("a", 0), mk("b", 300*time.Millisecond)
	for _, step := range []struct {
		d  *Dispatcher
		id string
	}{{a, "a1"}, {b, "b1"}, {a, "a2"}} {
		step.d.Handle(ctx, batch(step.id))
	}
	if len(arrivals) != 3 {
		t.Fatalf("%d requests reached the API, want 3", len(arrivals))
	}
	for i := 1; i < len(arrivals); i++ {
		if gap := arrivals[i].Sub(arrivals[i-1]); gap < time.Second {
			t.Errorf("requests %d and %d reached the API %v apart, want >= 1/rate", i-1, i, gap)
		}
	}
}

package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
)

func testConfig() Config {
	return Config{
		OrdersQueueURL: "http://127.0.0.1:4566/000000000000/orders",
		DLQURL:         "http://127.0.0.1:4566/000000000000/orders-dlq",
		APIBaseURL:     "http://127.0.0.1:1",
		APITimeout:     10 * time.Second,
		APIRate:        1,
		APIInstances:   2,
		MaxAttempts:    8,
		BackoffBase:    2 * time.Second,
		BackoffMax:     15 * time.Minute,
		MaxThrottled:   24 * time.Hour,
		FunctionName:   "dispatch",
		MinRequest:     time.Second,
	}
}

func TestLoadConfig(t *testing.T) {
	required := map[string]string{
		"ORDERS_QUEUE_URL":   "http://q/orders",
		"ORDERS_DLQ_URL":     "http://q/orders-dlq",
		"ORDER_API_BASE_URL": "https://api.example.com/v1",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range required {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	defaults := Config{OrdersQueueURL: "http://q/orders", DLQURL: "http://q/orders-dlq", APIBaseURL: "https://api.example.com/v1",
		APITimeout: 10 * time.Second, APIRate: 1, APIInstances: 2, MaxAttempts: 8, BackoffBase: 2 * time.Second,
		BackoffMax: 15 * time.Minute, MaxThrottled: 24 * time.Hour, FunctionName: "dispatch", MinRequest: time.Second,
		BreakerThreshold: 5, ProbeInterval: 30 * time.Second, Hold: time.Minute, ThrottleWindow: 10 * time.Second, IDField: "id"}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    func(*Config)
		wantErr []string
	}{
		{"defaults", with(), func(*Config) {}, nil},
		{"everything set", with("ORDER_API_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:x", "ORDER_API_TIMEOUT", "3s",
			"API_RATE", "20", "API_INSTANCES", "4", "MAX_ATTEMPTS", "5", "BACKOFF_BASE", "1s", "BACKOFF_MAX", "1m",
			"LOG_LEVEL", "debug", "AWS_LAMBDA_FUNCTION_NAME", "orderpipe-dispatch", "MAX_THROTTLED", "6h", "GOVERNOR_TABLE", "gov",
			"GOVERNOR_CLOCK_SKEW", "100ms", "GOVERNOR_MARGIN", "5ms", "BREAKER_THRESHOLD", "3", "BREAKER_PROBE_INTERVAL", "10s", "ID_FIELD", "orderId",
			"GOVERNOR_HOLD", "2m", "GOVERNOR_THROTTLE_WINDOW", "5s"), func(c *Config) {
			c.IDField = "orderId"
			c.GovernorTable, c.ClockSkew, c.BreakerThreshold, c.ProbeInterval = "gov", 100*time.Millisecond, 3, 10*time.Second
			c.Margin, c.Hold, c.ThrottleWindow = 5*time.Millisecond, 2*time.Minute, 5*time.Second
			c.APISecretARN, c.APITimeout, c.APIRate, c.APIInstances, c.MaxAttempts = "arn:aws:secretsmanager:us-east-1:1:secret:x", 3*time.Second, 20, 4, 5
			c.BackoffBase, c.BackoffMax, c.LogLevel, c.FunctionName = time.Second, time.Minute, -4, "orderpipe-dispatch"
			c.MaxThrottled = 6 * time.Hour
		}, nil},
		{"missing required", map[string]string{}, nil, []string{"ORDERS_QUEUE_URL is required", "ORDERS_DLQ_URL is required", "ORDER_API_BASE_URL is required"}},
		{"bad values", with("ORDER_API_TIMEOUT", "10", "API_RATE", "-1", "LOG_LEVEL", "loud"), nil, []string{"ORDER_API_TIMEOUT", "API_RATE", "LOG_LEVEL"}},
		{"bad base URL", with("ORDER_API_BASE_URL", "api.example.com"), nil, []string{"ORDER_API_BASE_URL"}},
		{"backoff max below base", with("BACKOFF_BASE", "1m", "BACKOFF_MAX", "1s"), nil, []string{"BACKOFF_BASE"}},
		{"one attempt", with("MAX_ATTEMPTS", "1"), nil, []string{"MAX_ATTEMPTS"}},
		{"bad governor values", with("GOVERNOR_CLOCK_SKEW", "-1s", "BREAKER_THRESHOLD", "0", "BREAKER_PROBE_INTERVAL", "soon"), nil,
			[]string{"GOVERNOR_CLOCK_SKEW", "BREAKER_THRESHOLD", "BREAKER_PROBE_INTERVAL"}},
		{"negative throttle bound", with("MAX_THROTTLED", "-1h"), nil, []string{"MAX_THROTTLED"}},
		// Regressions: ParseFloat takes "Inf" (an unlimited limiter: no pacing at all) and "NaN"
		// (every comparison false), and counts went through a float (2.5 became 2, 1e30 garbage).
		{"infinite rate", with("API_RATE", "Inf"), nil, []string{`API_RATE="Inf"`}},
		{"NaN rate", with("API_RATE", "NaN"), nil, []string{`API_RATE="NaN"`}},
		{"fractional instances", with("API_INSTANCES", "2.5"), nil, []string{`API_INSTANCES="2.5": want a positive whole number`}},
		{"huge attempts", with("MAX_ATTEMPTS", "1e30"), nil, []string{`MAX_ATTEMPTS="1e30": want a positive whole number`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadConfig(func(k string) string { return tc.env[k] })
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("LoadConfig = %+v, want an error", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			want := defaults
			tc.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEnviron: what Environ writes, LoadConfig reads back unchanged, and DefaultConfig is what
// LoadConfig gives for the required variables alone.
func TestEnviron(t *testing.T) {
	required := DefaultConfig()
	required.OrdersQueueURL, required.DLQURL, required.APIBaseURL = "http://q/orders", "http://q/orders-dlq", "https://api.example.com/v1"
	everything := required
	everything.APISecretARN, everything.APITimeout, everything.APIRate, everything.APIInstances = "arn:aws:secretsmanager:us-east-1:1:secret:x", 3*time.Second, 0.35, 4
	everything.MaxAttempts, everything.BackoffBase, everything.BackoffMax, everything.LogLevel = 5, 1500*time.Millisecond, 90*time.Minute, slog.LevelDebug
	everything.MaxThrottled = 2 * time.Hour
	for _, tc := range []struct {
		name string
		cfg  Config
	}{{"defaults", required}, {"everything set", everything}} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.cfg.Environ()
			if _, ok := env[EnvFunctionName]; ok {
				t.Errorf("Environ sets %s, which Lambda reserves", EnvFunctionName)
			}
			got, err := LoadConfig(func(k string) string { return env[k] })
			if err != nil {
				t.Fatalf("LoadConfig(Environ): %v", err)
			}
			if diff := cmp.Diff(tc.cfg, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	if _, ok := required.Environ()[EnvAPISecretARN]; ok {
		t.Errorf("Environ sets %s without a secret", EnvAPISecretARN)
	}
}

func TestDecide(t *testing.T) {
	d := New(testConfig(), nil, nil, Options{Rand: func() float64 { return 0.5 }})
	for _, tc := range []struct {
		name     string
		res      orderapi.Result
		attempts int
		want     decision
	}{
		{"delivered", orderapi.Result{Class: orderapi.Delivered, Status: 200}, 1, decision{act: actDone, class: "delivered"}},
		{"permanent", orderapi.Result{Class: orderapi.Permanent, Status: 422, Detail: "HTTP 422: bad"}, 3,
			decision{act: actPark, class: "permanent", parkClass: order.ClassPermanent, detail: "HTTP 422: bad"}},
		{"throttled: a fresh copy after Retry-After, this try not counted", orderapi.Result{Class: orderapi.Throttled, RetryAfter: 7 * time.Second, HasRetryAfter: true, Detail: "HTTP 429: x"}, 1,
			decision{act: actRequeue, class: "throttled", detail: "HTTP 429: x", visibility: 7 * time.Second, retries: 0}},
		{"throttled, Retry-After 0 waits 1s", orderapi.Result{Class: orderapi.Throttled, HasRetryAfter: true}, 1,
			decision{act: actRequeue, class: "throttled", visibility: time.Second}},
		{"throttled later in life keeps the transient tries spent", orderapi.Result{Class: orderapi.Throttled, RetryAfter: 15 * time.Minute, HasRetryAfter: true}, 4,
			decision{act: actRequeue, class: "throttled", visibility: maxDelay, retries: 3}},
		{"throttled without Retry-After backs off", orderapi.Result{Class: orderapi.Throttled}, 3,
			decision{act: actRequeue, class: "throttled", visibility: 4 * time.Second, retries: 2}}, // 0.5 * 2s*2^2
		{"throttled beyond the delay maximum waits in place", orderapi.Result{Class: orderapi.Throttled, RetryAfter: 15*time.Minute + time.Second, HasRetryAfter: true}, 2,
			decision{act: actRetry, class: "throttled", visibility: 15*time.Minute + time.Second}},
		{"throttled beyond 12h is capped", orderapi.Result{Class: orderapi.Throttled, RetryAfter: 48 * time.Hour, HasRetryAfter: true}, 1,
			decision{act: actRetry, class: "throttled", visibility: maxVisibility}},
		{"long throttle at the budget's edge is re-sent early", orderapi.Result{Class: orderapi.Throttled, RetryAfter: time.Hour, HasRetryAfter: true}, 7,
			decision{act: actRequeue, class: "throttled", visibility: maxDelay, retries: 6}},
		{"throttled past the budget is still not parked", orderapi.Result{Class: orderapi.Throttled, RetryAfter: 5 * time.Second, HasRetryAfter: true}, 9,
			decision{act: actRequeue, class: "throttled", visibility: 5 * time.Second, retries: 8}},
		{"transient within budget", orderapi.Result{Class: orderapi.Transient, Status: 500, Detail: "HTTP 500: x"}, 1,
			decision{act: actRetry, class: "transient", detail: "transient: HTTP 500: x", visibility: time.Second}},
		{"timeout within budget", orderapi.Result{Class: orderapi.Transient, Timeout: true, Detail: "timeout after 3s"}, 7,
			decision{act: actRetry, class: "transient", detail: "timeout: timeout after 3s", visibility: 64 * time.Second}},
		{"transient at the budget", orderapi.Result{Class: orderapi.Transient, ConnError: true, Detail: "connection error: reset"}, 8,
			decision{act: actPark, class: "exhausted", parkClass: order.ClassExhausted, detail: "transient: connection error: reset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := d.decide(tc.res, tc.attempts)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(decision{})); diff != "" {
				t.Errorf("decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rand     float64
		attempts int
		want     time.Duration
	}{
		{"first, top of range", 0.999, 1, 1998 * time.Millisecond},
		{"zero draw waits 1s", 0, 5, time.Second},
		{"grows", 0.5, 4, 8 * time.Second},
		{"capped at max", 0.5, 30, 450 * time.Second},
		{"receive count 0 treated as 1", 0.5, 0, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(testConfig(), nil, nil, Options{Rand: func() float64 { return tc.rand }})
			if got := d.backoff(tc.attempts); got != tc.want {
				t.Errorf("backoff(%d) = %v, want %v", tc.attempts, got, tc.want)
			}
		})
	}
}

// The orders that meet the open breaker are held one to three of the intervals the governor
// probes at: a hand-built Config without ProbeInterval takes the governor's default for both,
// and a set interval is used as it is by both (at least a second for the hold).
func TestOpenHoldFollowsTheProbeInterval(t *testing.T) {
	for _, tc := range []struct {
		name      string
		set, want time.Duration // want: the governor's interval
		hold      time.Duration // the shortest hold
	}{
		{"zero takes the default", 0, governor.DefaultProbeInterval, governor.DefaultProbeInterval},
		{"negative takes the default", -time.Second, governor.DefaultProbeInterval, governor.DefaultProbeInterval},
		{"set", 10 * time.Second, 10 * time.Second, 10 * time.Second},
		{"below a second", 100 * time.Millisecond, 100 * time.Millisecond, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			c.ProbeInterval = tc.set
			if got := c.Governor(c.PerInstanceRate()).ProbeInterval; got != tc.want {
				t.Errorf("governor's probe interval %v, want %v", got, tc.want)
			}
			if lo, mid := c.openHold(0), c.openHold(0.5); lo != tc.hold || mid != 2*tc.hold {
				t.Errorf("openHold(0), openHold(0.5) = %v, %v; want %v, %v", lo, mid, tc.hold, 2*tc.hold)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	id := func(v string) map[string]events.SQSMessageAttribute {
		return map[string]events.SQSMessageAttribute{order.AttrOrderID: {DataType: "String", StringValue: &v}}
	}
	for _, tc := range []struct {
		name       string
		msg        events.SQSMessage
		wantID     string
		wantReason string
	}{
		{"ok", events.SQSMessage{Body: ` {"id":"A-1"}`, MessageAttributes: id("A-1")}, "A-1", ""},
		{"no attribute", events.SQSMessage{Body: `{}`}, "", "missing OrderId attribute"},
		{"binary attribute", events.SQSMessage{Body: `{}`, MessageAttributes: map[string]events.SQSMessageAttribute{order.AttrOrderID: {DataType: "Binary", BinaryValue: []byte("A")}}}, "", "missing OrderId attribute"},
		{"invalid id", events.SQSMessage{Body: `{}`, MessageAttributes: id("../admin")}, "", "invalid OrderId attribute"},
		{"array body", events.SQSMessage{Body: `[{"id":"A-1"}]`, MessageAttributes: id("A-1")}, "", "body is not a JSON object"},
		{"broken JSON", events.SQSMessage{Body: `{"id":`, MessageAttributes: id("A-1")}, "", "body is not a JSON object"},
		{"body of another order", events.SQSMessage{Body: `{"id":"B-2"}`, MessageAttributes: id("A-1")}, "", "body id differs from the OrderId attribute"},
		{"body without id", events.SQSMessage{Body: `{"x":{"id":"A-1"}}`, MessageAttributes: id("A-1")}, "", "body: missing id"},
		{"custom id field", events.SQSMessage{Body: `{"id":"B-2","orderId":"A-1"}`, MessageAttributes: id("A-1")}, "A-1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			field := ""
			if tc.name == "custom id field" {
				field = "orderId"
			}
			gotID, gotReason := decode(tc.msg, field)
			if gotID != tc.wantID || gotReason != tc.wantReason {
				t.Errorf("decode = %q, %q; want %q, %q", gotID, gotReason, tc.wantID, tc.wantReason)
			}
		})
	}
}

// fakeAPI is a consumer-side fake of the order API for pacing tests: it records when each PUT
// started on the injected clock.
type fakeAPI struct {
	clock   Clock
	budget  time.Duration
	at      []time.Duration
	start   time.Time
	results []orderapi.Result // answers in turn; delivered when exhausted
	late    int               // the next late PUTs answer ErrLate (nothing sent)
	sendBy  []time.Duration   // each PUT's SendBy, after start
}

func (f *fakeAPI) Put(ctx context.Context, id string, body []byte) (orderapi.Result, error) {
	f.at = append(f.at, f.clock.Now().Sub(f.start))
	by := time.Duration(-1)
	if t, ok := ctx.Value(orderapi.SendByKey).(time.Time); ok {
		by = t.Sub(f.start)
	}
	f.sendBy = append(f.sendBy, by)
	if f.late > 0 {
		f.late--
		return orderapi.Result{Class: orderapi.Transient, Detail: orderapi.ErrLate.Error()}, orderapi.ErrLate
	}
	if len(f.results) > 0 {
		r := f.results[0]
		f.results = f.results[1:]
		return r, nil
	}
	return orderapi.Result{Class: orderapi.Delivered, Status: http.StatusOK, Sent: true, Latency: 50 * time.Millisecond}, nil
}

func (f *fakeAPI) Authorize(context.Context) error { return nil }

// BudgetAt models an invocation whose deadline is budget after the fake's start.
func (f *fakeAPI) BudgetAt(ctx context.Context, at time.Time) time.Duration {
	return min(10*time.Second, f.start.Add(f.budget).Sub(at))
}

// testClock is a fake clock whose Sleep advances it (the dispatchtest.Clock, without the import
// cycle of an internal test).
type testClock struct{ t time.Time }

func (c *testClock) Now() time.Time { return c.t }
func (c *testClock) Sleep(ctx context.Context, d time.Duration) error {
	c.t = c.t.Add(max(d, 0))
	return ctx.Err()
}

func batch(ids ...string) events.SQSEvent {
	var ev events.SQSEvent
	for _, id := range ids {
		v := id
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: "m-" + id, Body: `{"id":"` + id + `"}`,
			MessageAttributes: map[string]events.SQSMessageAttribute{order.AttrOrderID: {DataType: "String", StringValue: &v}}})
	}
	return ev
}

func TestPacing(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	api := &fakeAPI{clock: clk, budget: time.Hour, start: clk.t}
	cfg := testConfig()
	cfg.APIRate, cfg.APIInstances = 4, 2 // 2 requests/s per instance
	var metricsOut bytes.Buffer
	d := New(cfg, nil, api, Options{Clock: clk, Metrics: &metricsOut})
	ctx := context.Background()

	// Two warm invocations, one of 3 messages then one of 1, then a pause longer than the
	// interval: the schedule carries over between invocations and never bursts. Slots are 1/rate
	// plus the margin (2 % of it) apart; a new schedule starts one slot after its creation.
	for _, ev := range []events.SQSEvent{batch("a", "b", "c"), batch("d")} {
		resp, _ := d.Handle(ctx, ev)
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("failures %v, want none", resp.BatchItemFailures)
		}
	}
	clk.t = clk.t.Add(5 * time.Second)
	d.Handle(ctx, batch("e", "f"))
	ms := time.Millisecond
	want := []time.Duration{510 * ms, 1020 * ms, 1530 * ms, 2040 * ms, 7040 * ms, 7550 * ms}
	if diff := cmp.Diff(want, api.at); diff != "" {
		t.Errorf("PUT start times (-want +got):\n%s", diff)
	}
	lines := strings.Split(strings.TrimSpace(metricsOut.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("EMF lines = %d, want 3 (one per invocation)", len(lines))
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if got, want := first["PacingWait"], []any{510.0, 510.0, 510.0}; !cmp.Equal(got, want) {
		t.Errorf("PacingWait = %v, want %v", got, want)
	}
	if got, want := first["ApiRate"], 2.0; got != want {
		t.Errorf("ApiRate = %v, want %v", got, want)
	}
}

func TestGiveBackWhenTimeIsShort(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := testConfig()
	cfg.APIRate, cfg.APIInstances = 1, 1
	for _, tc := range []struct {
		name      string
		budget    time.Duration
		want      []time.Duration // PUT start times
		wantDelay []int32         // of the fresh copies of the messages given back
	}{
		// Slots 1.02 s apart (1 s + the margin), the first 1.02 s in: the second order's slot
		// (2.04 s) would leave 0.46 s < MinRequest; it comes back when that slot would have
		// started (1.02 s after the first PUT, 2 whole seconds).
		{"second order given back", 2500 * time.Millisecond, []time.Duration{1020 * time.Millisecond}, []int32{2}},
		{"room for both", 3500 * time.Millisecond, []time.Duration{1020 * time.Millisecond, 2040 * time.Millisecond}, nil},
		{"no room at all", 500 * time.Millisecond, nil, []int32{2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{clock: clk, budget: tc.budget, start: clk.t}
			q := &recordingQueue{}
			d := New(cfg, q, api, Options{Clock: clk, Metrics: &bytes.Buffer{}})
			resp, _ := d.Handle(context.Background(), batch("a", "b"))
			if diff := cmp.Diff(tc.want, api.at); diff != "" {
				t.Errorf("PUT times (-want +got):\n%s", diff)
			}
			if got := len(resp.BatchItemFailures); got != 0 {
				t.Errorf("failures = %d, want 0: a message given back is replaced by its fresh copy", got)
			}
			var delays []int32
			for _, in := range q.sent {
				delays = append(delays, in.DelaySeconds)
			}
			if !cmp.Equal(delays, tc.wantDelay) || len(q.visibility) != 0 {
				t.Errorf("given back as fresh copies delayed %v and visibility changes %v; want copies delayed %v, no visibility change", delays, q.visibility, tc.wantDelay)
			}
			clk.t = clk.t.Add(time.Minute) // the schedule is free again between cases
		})
	}
}

// TestLateWriteTakesAnotherSlot: a request that could not be written by its slot's end (nothing
// sent) takes the next slot, up to maxLateSlots; then the order is given back at once with its
// budget untouched. Each PUT is bounded by its slot's end.
func TestLateWriteTakesAnotherSlot(t *testing.T) {
	ms := time.Millisecond
	cfg := testConfig()
	cfg.APIRate, cfg.APIInstances = 1, 1 // slots 1.02 s apart, 20 ms margin
	for _, tc := range []struct {
		name       string
		late       int
		want       []time.Duration // PUT start times
		wantCopies int
	}{
		{"sent in the third slot", 2, []time.Duration{1020 * ms, 2040 * ms, 3060 * ms}, 0},
		{"given back after three", 3, []time.Duration{1020 * ms, 2040 * ms, 3060 * ms}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			api := &fakeAPI{clock: clk, budget: time.Hour, start: clk.t, late: tc.late}
			q := &recordingQueue{}
			d := New(cfg, q, api, Options{Clock: clk, Metrics: &bytes.Buffer{}})
			resp, _ := d.Handle(context.Background(), batch("a"))
			if diff := cmp.Diff(tc.want, api.at); diff != "" {
				t.Errorf("PUT times (-want +got):\n%s", diff)
			}
			for i, at := range api.at {
				if by := api.sendBy[i]; by != at+20*ms {
					t.Errorf("PUT %d at %v sent by %v, want its slot's end %v", i, at, by, at+20*ms)
				}
			}
			if len(resp.BatchItemFailures) != 0 || len(q.sent) != tc.wantCopies {
				t.Fatalf("failures %v, copies %d; want none and %d", resp.BatchItemFailures, len(q.sent), tc.wantCopies)
			}
			for _, in := range q.sent {
				if in.DelaySeconds != 0 || in.MessageAttributes[order.AttrRetries].StringValue != nil && *in.MessageAttributes[order.AttrRetries].StringValue != "0" {
					t.Errorf("given back with delay %d and Retries %v, want at once and no retry spent", in.DelaySeconds, in.MessageAttributes[order.AttrRetries].StringValue)
				}
			}
		})
	}
}

// recordingQueue records visibility changes; pure-logic tests only (SQS behaviour is tested
// against the stand-in in dispatch_test.go).
type recordingQueue struct {
	Queue
	visibility []int32
	sent       []*sqs.SendMessageInput
}

func (q *recordingQueue) SendMessage(ctx context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	q.sent = append(q.sent, in)
	return &sqs.SendMessageOutput{}, nil
}

func (q *recordingQueue) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	q.visibility = append(q.visibility, in.VisibilityTimeout)
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func TestEMF(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := writeEMF(&buf, now, "orderpipe-dispatch", metrics{sent: 1, throttled: 2, latencyMs: []float64{51.5}}); err != nil {
		t.Fatal(err)
	}
	want := `{"ApiLatency":[51.5],"BreakerOpen":0,"Exhausted":0,"Function":"orderpipe-dispatch","GovernorErrors":0,"Held":0,"Permanent":0,"Sent":1,"Throttled":2,"Transient":0,` +
		`"_aws":{"Timestamp":1767225600000,"CloudWatchMetrics":[{"Namespace":"orderpipe","Dimensions":[["Function"]],"Metrics":[` +
		`{"Name":"Sent","Unit":"Count"},{"Name":"Throttled","Unit":"Count"},{"Name":"Transient","Unit":"Count"},` +
		`{"Name":"Permanent","Unit":"Count"},{"Name":"Exhausted","Unit":"Count"},{"Name":"Held","Unit":"Count"},` +
		`{"Name":"GovernorErrors","Unit":"Count"},{"Name":"BreakerOpen","Unit":"None"},{"Name":"ApiLatency","Unit":"Milliseconds"}]}]}}` + "\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("EMF line (-want +got):\n%s", diff)
	}
}

func TestGiveBackDecision(t *testing.T) {
	d := New(testConfig(), nil, nil, Options{})
	for _, tc := range []struct {
		name     string
		attempts int
		wait     time.Duration
		want     decision
	}{
		{"early: a fresh copy after the wait", 1, 2 * time.Second, decision{act: actRequeue, class: "given-back", detail: "x", visibility: 2 * time.Second}},
		{"deadline: a fresh copy at once", 3, 0, decision{act: actRequeue, class: "given-back", detail: "x", retries: 2}},
		{"at the edge: a fresh copy", 7, 2 * time.Second, decision{act: actRequeue, class: "given-back", detail: "x", visibility: 2 * time.Second, retries: 6}},
		{"long pause early: visible again after it", 1, time.Hour, decision{act: actGiveBack, class: "given-back", detail: "x", visibility: time.Hour}},
		{"long pause at the edge capped at the delay maximum", 9, time.Hour, decision{act: actRequeue, class: "given-back", detail: "x", visibility: maxDelay, retries: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, d.giveBack(tc.attempts, tc.wait, "x"), cmp.AllowUnexported(decision{})); diff != "" {
				t.Errorf("giveBack (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBadInputNeverCrashes(t *testing.T) {
	empty := ""
	withRetries := func(v string) map[string]events.SQSMessageAttribute {
		attrs := batch("x").Records[0].MessageAttributes
		attrs[order.AttrRetries] = events.SQSMessageAttribute{DataType: "Number", StringValue: &v}
		return attrs
	}
	ev := events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "no-maps"},
		{MessageId: "nil-string", Body: `{}`, MessageAttributes: map[string]events.SQSMessageAttribute{order.AttrOrderID: {DataType: "String"}}},
		{MessageId: "empty-id", Body: `{}`, MessageAttributes: map[string]events.SQSMessageAttribute{order.AttrOrderID: {DataType: "String", StringValue: &empty}}},
		{MessageId: "null-body", Body: `null`, Attributes: map[string]string{"ApproximateReceiveCount": "many"}, MessageAttributes: batch("x").Records[0].MessageAttributes},
		{MessageId: "retried", Body: `[]`, Attributes: map[string]string{"ApproximateReceiveCount": "2"}, MessageAttributes: withRetries("2")},
		{MessageId: "negative-retries", Body: `[]`, MessageAttributes: withRetries("-3")},
		{MessageId: "malformed-retries", Body: `[]`, MessageAttributes: withRetries("two")},
		{MessageId: "huge-retries", Body: `[]`, MessageAttributes: withRetries("9223372036854775807")},
	}}
	q := &recordingQueue{}
	var metricsOut bytes.Buffer
	d := New(testConfig(), q, &fakeAPI{clock: &testClock{}, budget: time.Hour}, Options{Clock: &testClock{}, Metrics: &metricsOut})
	resp, err := d.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Errorf("Handle = %v, %v; want every message parked and deleted", resp, err)
	}
	var classes, attempts []string
	for _, in := range q.sent {
		if *in.QueueUrl != testConfig().DLQURL {
			t.Errorf("sent to %s, want the DLQ", *in.QueueUrl)
		}
		classes = append(classes, *in.MessageAttributes[order.AttrFailureClass].StringValue)
		attempts = append(attempts, *in.MessageAttributes[order.AttrAttempts].StringValue)
		if r, ok := in.MessageAttributes[order.AttrRetries]; ok {
			t.Errorf("parked message carries Retries %q: a redriven order must start a fresh budget", *r.StringValue)
		}
	}
	if want := []string{"undecodable", "undecodable", "undecodable", "undecodable", "undecodable", "undecodable", "undecodable", "undecodable"}; !cmp.Equal(classes, want) {
		t.Errorf("classes = %v, want %v", classes, want)
	}
	// Attempts = Retries + receive count; a malformed or negative Retries counts as 0, a huge one
	// as maxRetries (so that the sum cannot overflow to a negative attempt number).
	if want := []string{"1", "1", "1", "1", "4", "1", "1", "1048577"}; !cmp.Equal(attempts, want) {
		t.Errorf("attempts = %v, want %v", attempts, want)
	}
	if !strings.Contains(metricsOut.String(), `"Permanent":8`) {
		t.Errorf("EMF = %s, want Permanent 8", metricsOut.String())
	}
}

func TestRequeuedAttributes(t *testing.T) {
	str := func(v string) events.SQSMessageAttribute {
		return events.SQSMessageAttribute{DataType: "String", StringValue: &v}
	}
	for _, tc := range []struct {
		name    string
		in      map[string]events.SQSMessageAttribute
		retries int
		want    map[string]string
	}{
		{"order attributes kept, Retries set", batch("R-1").Records[0].MessageAttributes, 2,
			map[string]string{order.AttrOrderID: "R-1", order.AttrRetries: "2"}},
		{"old Retries and failure attributes replaced", map[string]events.SQSMessageAttribute{
			order.AttrOrderID: str("R-2"), order.AttrRetries: str("5"), order.AttrFailureClass: str("exhausted"), order.AttrAttempts: str("3"),
		}, 6, map[string]string{order.AttrOrderID: "R-2", order.AttrRetries: "6"}},
		{"within the SQS limit of 10", map[string]events.SQSMessageAttribute{
			order.AttrOrderID: str("R-3"), order.AttrSource: str("s3://b/k"), order.AttrSourceVersion: str("null"), order.AttrLine: str("4"),
			"a": str("a"), "b": str("b"), "c": str("c"), "d": str("d"), "e": str("e"), order.AttrRetries: str("1"),
		}, 1, map[string]string{order.AttrOrderID: "R-3", order.AttrSource: "s3://b/k", order.AttrSourceVersion: "null", order.AttrLine: "4",
			"a": "a", "b": "b", "c": "c", "d": "d", "e": "e", order.AttrRetries: "1"}},
		{"over the limit: Redrives kept before other extras", map[string]events.SQSMessageAttribute{
			order.AttrOrderID: str("R-5"), order.AttrSource: str("s3://b/k"), order.AttrSourceVersion: str("null"), order.AttrLine: str("4"),
			"a": str("a"), "b": str("b"), "c": str("c"), "d": str("d"), "e": str("e"), order.AttrRedrives: str("2"),
		}, 0, map[string]string{order.AttrOrderID: "R-5", order.AttrSource: "s3://b/k", order.AttrSourceVersion: "null", order.AttrLine: "4",
			order.AttrRedrives: "2", "a": "a", "b": "b", "c": "c", "d": "d", order.AttrRetries: "0"}},
		{"over the limit: the extra attribute beyond the contract goes", map[string]events.SQSMessageAttribute{
			order.AttrOrderID: str("R-4"), order.AttrSource: str("s3://b/k"), order.AttrSourceVersion: str("null"), order.AttrLine: str("4"),
			"a": str("a"), "b": str("b"), "c": str("c"), "d": str("d"), "e": str("e"), "f": str("f"),
		}, 0, map[string]string{order.AttrOrderID: "R-4", order.AttrSource: "s3://b/k", order.AttrSourceVersion: "null", order.AttrLine: "4",
			"a": "a", "b": "b", "c": "c", "d": "d", "e": "e", order.AttrRetries: "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			for k, v := range requeuedAttributes(tc.in, tc.retries, "") {
				got[k] = *v.StringValue
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("requeued attributes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParkedAttributesKeepRedrives: an order parked again keeps how often it was redriven, so a
// scheduled redrive's MaxRedrives sees it.
func TestParkedAttributesKeepRedrives(t *testing.T) {
	id, redrives := "P-1", "3"
	in := map[string]events.SQSMessageAttribute{
		order.AttrOrderID:  {DataType: "String", StringValue: &id},
		order.AttrRedrives: {DataType: "Number", StringValue: &redrives},
	}
	got := parkedAttributes(in, order.ClassExhausted, "timeout", 8, time.Unix(0, 0))
	if v := got[order.AttrRedrives]; v.StringValue == nil || *v.StringValue != "3" || v.DataType == nil || *v.DataType != "Number" {
		t.Errorf("Redrives of the parked order: got %+v, want Number 3", v)
	}
}

// deadlineQueue records the deadline of every SQS call's context.
type deadlineQueue struct {
	deadlines []time.Time
}

func (q *deadlineQueue) record(ctx context.Context) error {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Time{}.Add(1<<63 - 1)
	}
	q.deadlines = append(q.deadlines, dl)
	return ctx.Err()
}

func (q *deadlineQueue) SendMessage(ctx context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return &sqs.SendMessageOutput{}, q.record(ctx)
}

func (q *deadlineQueue) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	return &sqs.ChangeMessageVisibilityOutput{}, q.record(ctx)
}

// The bookkeeping calls end before the invocation's deadline minus the response reserve: the
// request leaves only the client's margin (2 s), and a slow SQS call past the deadline would be
// a killed invocation, the whole batch back and its re-sent copies duplicated.
func TestBookkeepingEndsBeforeTheDeadline(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  events.SQSMessage
		res  orderapi.Result
	}{
		{"park", events.SQSMessage{MessageId: "u", Body: "[]", MessageAttributes: batch("U-1").Records[0].MessageAttributes}, orderapi.Result{}},
		{"re-send", batch("T-1").Records[0], orderapi.Result{Class: orderapi.Throttled, Status: 429, Sent: true}},
		{"visibility", batch("T-2").Records[0], orderapi.Result{Class: orderapi.Transient, Status: 500, Sent: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			q := &deadlineQueue{}
			api := &fakeAPI{clock: clk, budget: time.Hour, start: clk.t, results: []orderapi.Result{tc.res}}
			d := New(testConfig(), q, api, Options{Clock: clk, Metrics: &bytes.Buffer{}})
			deadline := time.Now().Add(3 * time.Second)
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			d.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{tc.msg}})
			if len(q.deadlines) == 0 {
				t.Fatal("no SQS call made")
			}
			for _, got := range q.deadlines {
				if limit := deadline.Add(-responseReserve); got.After(limit) {
					t.Errorf("SQS call deadline %v after the invocation's deadline %v minus %v", got.Sub(deadline), deadline, responseReserve)
				}
			}
		})
	}
}

// A Retries attribute near the int maximum still counts as attempts spent: Retries + receive
// count must not overflow to a negative attempt number, or a failing order would never be
// exhausted (retried until the queue's redrive policy parked it without a class).
func TestHugeRetriesIsExhausted(t *testing.T) {
	msg := batch("H-1").Records[0]
	huge := "9223372036854775807"
	msg.MessageAttributes[order.AttrRetries] = events.SQSMessageAttribute{DataType: "Number", StringValue: &huge}
	clk := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	api := &fakeAPI{clock: clk, budget: time.Hour, start: clk.t,
		results: []orderapi.Result{{Class: orderapi.Transient, Status: 500, Sent: true, Detail: "HTTP 500: x"}}}
	q := &recordingQueue{}
	d := New(testConfig(), q, api, Options{Clock: clk, Metrics: &bytes.Buffer{}})
	resp, _ := d.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{msg}})
	if len(resp.BatchItemFailures) != 0 || len(q.sent) != 1 {
		t.Fatalf("failures %v, %d messages sent; want the order parked and deleted", resp.BatchItemFailures, len(q.sent))
	}
	if got, want := *q.sent[0].MessageAttributes[order.AttrFailureClass].StringValue, order.ClassExhausted; got != want {
		t.Errorf("parked class = %q, want %q", got, want)
	}
}

// BACKOFF_MAX may be 12 h, but SQS refuses a visibility change that keeps a message invisible
// beyond 12 h after its receive: the backoff is capped so that the change is accepted (a refused
// one would leave the queue's 3 min in place).
func TestBackoffWithinTheVisibilityLimit(t *testing.T) {
	cfg := testConfig()
	cfg.BackoffMax = 12 * time.Hour
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	d := New(cfg, nil, nil, Options{Rand: func() float64 { return 0.9999 }})
	if got, want := d.backoff(30), maxVisibility; got != want {
		t.Errorf("backoff(30) = %v, want %v", got, want)
	}
	dec := d.decide(orderapi.Result{Class: orderapi.Transient, Status: 500}, 3)
	if dec.visibility > maxVisibility {
		t.Errorf("transient visibility = %v, want at most %v", dec.visibility, maxVisibility)
	}
}

// TestThrottleIsBounded throttles one order again and again on an injected clock: each re-sent
// copy carries when its throttling began, and once MaxThrottled has passed the order is parked
// as throttled with the detail.
func TestThrottleIsBounded(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &testClock{t: start}
	throttle := orderapi.Result{Class: orderapi.Throttled, Status: 503, Sent: true, Detail: "HTTP 503"}
	queue := &recordingQueue{}
	cfg := testConfig()
	cfg.MaxThrottled = 2 * time.Hour
	api := &fakeAPI{clock: clk, budget: 1000 * time.Hour, start: start,
		results: []orderapi.Result{throttle, throttle, throttle, {Class: orderapi.Delivered, Status: 200, Sent: true}}}
	d := New(cfg, queue, api, Options{Clock: clk, Metrics: &bytes.Buffer{}, Rand: func() float64 { return 0.5 }})
	attr := func(in *sqs.SendMessageInput, name string) string {
		if v, ok := in.MessageAttributes[name]; ok {
			return aws.ToString(v.StringValue)
		}
		return ""
	}
	msg := batch("T-1")
	send := func() *sqs.SendMessageInput {
		t.Helper()
		n := len(queue.sent)
		d.Handle(context.Background(), msg)
		if len(queue.sent) != n+1 {
			t.Fatalf("got %d messages sent, want one more than %d", len(queue.sent), n)
		}
		in := queue.sent[n]
		// The next receive is that copy.
		attrs := map[string]events.SQSMessageAttribute{}
		for k, v := range in.MessageAttributes {
			attrs[k] = events.SQSMessageAttribute{DataType: aws.ToString(v.DataType), StringValue: v.StringValue}
		}
		msg = events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-next", Body: aws.ToString(in.MessageBody), MessageAttributes: attrs}}}
		return in
	}
	first := send()
	// Throttled since the first PUT (its slot is one interval into a new schedule).
	stamp := start.Add(api.at[0]).Format(time.RFC3339)
	if got := attr(first, order.AttrThrottledSince); aws.ToString(first.QueueUrl) != cfg.OrdersQueueURL || got != stamp {
		t.Fatalf("first throttle: sent to %s with ThrottledSince %q; want the orders queue, %q", aws.ToString(first.QueueUrl), got, stamp)
	}
	clk.t = start.Add(time.Hour)
	second := send()
	if got := attr(second, order.AttrThrottledSince); aws.ToString(second.QueueUrl) != cfg.OrdersQueueURL || got != stamp {
		t.Fatalf("just under the bound: sent to %s with ThrottledSince %q; want the orders queue, %q", aws.ToString(second.QueueUrl), got, stamp)
	}
	clk.t = start.Add(api.at[0] + 2*time.Hour)
	parked := send()
	// The pacing pause after the earlier throttles advances the clock by a few seconds more.
	wantDetail := "throttled for 2h0m* since " + stamp + " (MAX_THROTTLED 2h0m0s): HTTP 503"
	prefix, suffix, _ := strings.Cut(wantDetail, "*")
	if detail := attr(parked, order.AttrFailureDetail); aws.ToString(parked.QueueUrl) != cfg.DLQURL || attr(parked, order.AttrFailureClass) != order.ClassThrottled ||
		!strings.HasPrefix(detail, prefix) || !strings.HasSuffix(detail, suffix) {
		t.Errorf("at the bound: sent to %s, class %q, detail %q; want the DLQ, %q, %q", aws.ToString(parked.QueueUrl),
			attr(parked, order.AttrFailureClass), attr(parked, order.AttrFailureDetail), order.ClassThrottled, wantDetail)
	}
	if got := attr(parked, order.AttrThrottledSince); got != "" {
		t.Errorf("parked copy carries ThrottledSince %q; a redrive must start a fresh throttle budget", got)
	}
}

package dispatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/syncbuf"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/dispatch/dispatchtest"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
)

// env is one test's queues, stand-in API and dispatcher.
type env struct {
	t                  *testing.T
	sqs                *sqs.Client
	queueURL, queueARN string
	dlqURL             string
	api                *apiserver.Server
	apiURL             string
	logs, metrics      *syncbuf.Buffer
	d                  *dispatch.Dispatcher
	// what d was built from, for another instance
	cfg    dispatch.Config
	client *orderapi.Client
	opts   dispatch.Options
}

type setup struct {
	api     apiserver.Config
	handler http.Handler // instead of the stand-in
	config  func(*dispatch.Config)
	client  func(*orderapi.Config)
	apiOpts orderapi.Options                 // the order API client's dependencies
	ledger  dispatch.Ledger                  // the delivery record; nil: none
	queue   func(*sqs.Client) dispatch.Queue // wraps the dispatcher's SQS client; nil: the client
}

func newEnv(t *testing.T, s setup) *env {
	t.Helper()
	cfg := awstest.Config(t)
	e := &env{t: t, sqs: awstest.SQS(cfg), logs: &syncbuf.Buffer{}, metrics: &syncbuf.Buffer{}}
	e.queueURL, e.queueARN = awstest.NewQueue(t, cfg, map[string]string{"VisibilityTimeout": "30"})
	e.dlqURL, _ = awstest.NewQueue(t, cfg, nil)
	h := s.handler
	if h == nil {
		api, err := apiserver.New(s.api)
		if err != nil {
			t.Fatal(err)
		}
		e.api, h = api, api
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	e.apiURL = ts.URL

	dc := dispatch.Config{OrdersQueueURL: e.queueURL, DLQURL: e.dlqURL, APIBaseURL: ts.URL, APITimeout: 5 * time.Second,
		APIRate: 1000, APIInstances: 1, MaxAttempts: 8, BackoffBase: time.Second, BackoffMax: time.Minute, FunctionName: "dispatch-test"}
	if s.config != nil {
		s.config(&dc)
	}
	if err := dc.Validate(); err != nil {
		t.Fatal(err)
	}
	oc := dc.OrderAPI()
	if s.client != nil {
		s.client(&oc)
	}
	client, err := orderapi.New(oc, s.apiOpts)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg, e.client, e.opts = dc, client, dispatch.Options{
		Rand:    func() float64 { return 0 }, // backoff = 1 s
		Logger:  slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: e.metrics,
		Ledger:  s.ledger,
	}
	var q dispatch.Queue = e.sqs
	if s.queue != nil {
		q = s.queue(e.sqs)
	}
	e.d = dispatch.New(e.cfg, q, e.client, e.opts)
	return e
}

// orderOf is the order of testdata/order.json with the order id id.
func orderOf(t *testing.T, id string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/order.json")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(strings.TrimSpace(string(b)), `"id":"A-1"`, fmt.Sprintf(`"id":%q`, id), 1)
}

func (e *env) send(id, body string) string {
	return dispatchtest.SendOrder(e.t, e.sqs, e.queueURL, id, body, nil)
}

// poll receives one message (waiting up to wait seconds) and handles it as the ESM would, in an
// invocation of 30 s.
func (e *env) poll(ctx context.Context, wait int32) ([]types.Message, []string) {
	e.t.Helper()
	return e.pollWithin(ctx, wait, 30*time.Second)
}

// pollWithin is poll with an invocation of the given timeout.
func (e *env) pollWithin(ctx context.Context, wait int32, timeout time.Duration) ([]types.Message, []string) {
	e.t.Helper()
	msgs, resp, err := dispatchtest.HandleOnceWithin(ctx, e.sqs, e.queueURL, e.queueARN, 1, wait, timeout, e.d.Handle)
	if err != nil {
		e.t.Fatalf("poll: %v", err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	return msgs, failed
}

// receiveAll receives what is visible now on url (several calls: moto may return fewer).
func (e *env) receiveAll(url string, wait int32) []types.Message {
	e.t.Helper()
	var all []types.Message
	for i := 0; i < 3; i++ {
		msgs, err := dispatchtest.Receive(context.Background(), e.sqs, url, 10, wait)
		if err != nil {
			e.t.Fatal(err)
		}
		all = append(all, msgs...)
		if len(msgs) == 0 {
			break
		}
		wait = 0
	}
	return all
}

// inFlight is the queue's count of received, undeleted, invisible messages.
func (e *env) inFlight() int {
	e.t.Helper()
	out, err := e.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &e.queueURL,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		e.t.Fatal(err)
	}
	n, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return n
}

// parked is what a DLQ message carries, for comparison.
type parked struct {
	Body, OrderID, Source, Line, Class, Detail, Attempts string
}

func asParked(t *testing.T, m types.Message) parked {
	t.Helper()
	at := dispatchtest.Attr(m, order.AttrParkedAt)
	if ts, err := time.Parse(time.RFC3339, at); err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Minute {
		t.Errorf("ParkedAt = %q, want RFC 3339 UTC of now", at)
	}
	return parked{Body: aws.ToString(m.Body), OrderID: dispatchtest.Attr(m, order.AttrOrderID), Source: dispatchtest.Attr(m, order.AttrSource),
		Line: dispatchtest.Attr(m, order.AttrLine), Class: dispatchtest.Attr(m, order.AttrFailureClass),
		Detail: dispatchtest.Attr(m, order.AttrFailureDetail), Attempts: dispatchtest.Attr(m, order.AttrAttempts)}
}

const source = "s3://uploads-bucket/uploads/orders.jsonl"

// wantParked checks that the DLQ holds exactly one message, equal to want.
func (e *env) wantParked(want parked) {
	e.t.Helper()
	dlq := e.receiveAll(e.dlqURL, 1)
	if len(dlq) != 1 {
		e.t.Fatalf("DLQ has %d messages, want 1", len(dlq))
	}
	if diff := cmp.Diff(want, asParked(e.t, dlq[0])); diff != "" {
		e.t.Errorf("parked message (-want +got):\n%s", diff)
	}
}

func TestPermanentIsParkedAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setup{api: apiserver.Config{RejectIDs: []string{"P-1"}}})
	e.send("P-1", orderOf(t, "P-1"))
	_, failed := e.poll(context.Background(), 1)
	if len(failed) != 0 {
		t.Errorf("failures = %v, want none: the source must be deleted", failed)
	}
	if left := e.receiveAll(e.queueURL, 0); len(left) != 0 || e.inFlight() != 0 {
		t.Errorf("source queue still has %d visible, %d in flight; want it deleted", len(left), e.inFlight())
	}
	e.wantParked(parked{Body: orderOf(t, "P-1"), OrderID: "P-1", Source: source, Line: "7", Class: order.ClassPermanent,
		Detail: "HTTP 422: order refused by the stand-in", Attempts: "1"})
	if got := e.api.Stats().Requests; got != 1 {
		t.Errorf("API requests = %d, want 1: no retries burnt on a permanent refusal", got)
	}
}

func TestUndecodableIsParked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, id, body, wantDetail string
	}{
		{"invalid order id", "-bad id", `{"id":"x"}`, "invalid OrderId attribute"},
		{"body is an array", "U-2", `[1,2]`, "body is not a JSON object"},
		{"body is not JSON", "U-3", `id=U-3`, "body is not a JSON object"},
		{"body of another order", "U-4", `{"id":"U-5","amount":"1.00"}`, "body id differs from the OrderId attribute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, setup{})
			e.send(tc.id, tc.body)
			if _, failed := e.poll(context.Background(), 1); len(failed) != 0 {
				t.Errorf("failures = %v, want none", failed)
			}
			e.wantParked(parked{Body: tc.body, OrderID: tc.id, Source: source, Line: "7", Class: order.ClassUndecodable, Detail: tc.wantDetail, Attempts: "1"})
			if got := e.api.Stats().Requests; got != 0 {
				t.Errorf("API requests = %d, want 0", got)
			}
		})
	}
	t.Run("missing order id", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, setup{})
		body := `{"id":"M-1"}`
		if _, err := e.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &e.queueURL, MessageBody: &body}); err != nil {
			t.Fatal(err)
		}
		e.poll(context.Background(), 1)
		e.wantParked(parked{Body: body, Class: order.ClassUndecodable, Detail: "missing OrderId attribute", Attempts: "1"})
	})
}

func TestDLQFailureKeepsTheMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setup{
		api: apiserver.Config{RejectIDs: []string{"P-2"}},
		config: func(c *dispatch.Config) {
			c.DLQURL = awstest.Endpoint() + "/000000000000/no-such-queue-" + awstest.Name(t, "x")
		},
	})
	id := e.send("P-2", orderOf(t, "P-2"))
	_, failed := e.poll(context.Background(), 1)
	if !cmp.Equal(failed, []string{id}) {
		t.Errorf("failures = %v, want [%s]: a message that could not be parked must not be deleted", failed, id)
	}
	if got := e.inFlight(); got != 1 {
		t.Errorf("in flight = %d, want 1 (still on the queue)", got)
	}
	if !strings.Contains(e.logs.String(), "order not parked") {
		t.Errorf("logs do not report the failed park:\n%s", e.logs)
	}
}

func TestTransientWithinBudgetIsDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setup{api: apiserver.Config{FailIDs: []string{"T-1"}, FailTimes: 2}, config: func(c *dispatch.Config) { c.MaxAttempts = 3 }})
	e.send("T-1", orderOf(t, "T-1"))
	var receives []int
	for i := 0; i < 6 && e.api.Stats().Accepted == 0; i++ {
		msgs, _ := e.poll(context.Background(), 3)
		for _, m := range msgs {
			receives = append(receives, dispatchtest.ReceiveCount(m))
		}
	}
	if want := []int{1, 2, 3}; !cmp.Equal(receives, want) {
		t.Errorf("receive counts = %v, want %v (two 500s retried after 1 s, then delivered)", receives, want)
	}
	if st := e.api.Stats(); st.Accepted != 1 || st.Duplicates != 0 {
		t.Errorf("stand-in = %+v, want 1 accepted, 0 duplicates", st)
	}
	if dlq := e.receiveAll(e.dlqURL, 0); len(dlq) != 0 {
		t.Errorf("DLQ has %d messages, want none", len(dlq))
	}
	if left := e.receiveAll(e.queueURL, 0); len(left) != 0 || e.inFlight() != 0 {
		t.Errorf("source queue not empty after delivery")
	}
}

func TestTransientPastBudgetIsExhausted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setup{api: apiserver.Config{FailIDs: []string{"X-1"}, FailTimes: 100, FailStatus: 502},
		config: func(c *dispatch.Config) { c.MaxAttempts = 2 }})
	e.send("X-1", orderOf(t, "X-1"))
	_, failed1 := e.poll(context.Background(), 1) // 502, receive 1 < 2: retry after 1 s
	_, failed2 := e.poll(context.Background(), 5) // 502, receive 2: exhausted
	if len(failed1) != 1 || len(failed2) != 0 {
		t.Errorf("failures = %v then %v, want 1 then 0", failed1, failed2)
	}
	e.wantParked(parked{Body: orderOf(t, "X-1"), OrderID: "X-1", Source: source, Line: "7", Class: order.ClassExhausted,
		Detail: "transient: HTTP 502: injected failure", Attempts: "2"})
	if got := e.api.Stats().ServerErrors; got != 2 {
		t.Errorf("API 5xx = %d, want 2 (MAX_ATTEMPTS)", got)
	}
}

// throttleOnce answers 429 with retryAfter() to the first request of each id, then 200.
func throttleOnce(retryAfter func() string) http.Handler {
	var mu sync.Mutex
	seen := map[string]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		first := !seen[r.URL.Path]
		seen[r.URL.Path] = true
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", retryAfter())
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
}

// sendRecorder is the SQS client that also records what the Dispatcher gave SendMessage.
type sendRecorder struct {
	*sqs.Client
	mu   sync.Mutex
	sent []*sqs.SendMessageInput
}

func (r *sendRecorder) SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	r.mu.Lock()
	r.sent = append(r.sent, in)
	r.mu.Unlock()
	return r.Client.SendMessage(ctx, in, optFns...)
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	// The client's clock stands still, so an HTTP date is exactly 4 s after its now.
	now := time.Now().Truncate(time.Second)
	for _, tc := range []struct {
		name       string
		retryAfter func() string
		wantDelay  int32
	}{
		{"delta seconds", func() string { return "3" }, 3},
		{"HTTP date", func() string { return now.Add(4 * time.Second).UTC().Format(http.TimeFormat) }, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var q *sendRecorder
			e := newEnv(t, setup{handler: throttleOnce(tc.retryAfter),
				apiOpts: orderapi.Options{Now: func() time.Time { return now }},
				queue:   func(c *sqs.Client) dispatch.Queue { q = &sendRecorder{Client: c}; return q }})
			e.send("R-1", orderOf(t, "R-1"))
			if _, failed := e.poll(context.Background(), 1); len(failed) != 0 {
				t.Fatalf("failures = %v, want none: the throttled message is replaced by a fresh copy", failed)
			}
			// The fresh copy is delayed by the Retry-After.
			if len(q.sent) != 1 || q.sent[0].DelaySeconds != tc.wantDelay {
				t.Fatalf("sent %d messages (first %+v), want one fresh copy delayed %d s", len(q.sent), q.sent, tc.wantDelay)
			}
			msgs, failed := e.poll(context.Background(), 20)
			if len(msgs) != 1 || len(failed) != 0 {
				t.Fatalf("second poll got %d messages, failures %v; want the fresh copy, delivered", len(msgs), failed)
			}
			if got, want := copyOf(msgs[0]), (fresh{Body: orderOf(t, "R-1"), OrderID: "R-1", Source: source, Line: "7", Retries: "0", ReceiveCount: 1}); got != want {
				t.Errorf("fresh copy = %+v, want %+v", got, want)
			}
			if !strings.Contains(e.logs.String(), `"class":"throttled"`) || !strings.Contains(e.logs.String(), `"delaySec":`) {
				t.Errorf("throttle not logged with its delay:\n%s", e.logs)
			}
		})
	}
}

func TestThrottleAtTheBudgetEdgeStartsAFreshMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setup{handler: throttleOnce(func() string { return "1" }), config: func(c *dispatch.Config) { c.MaxAttempts = 2 }})
	e.send("E-1", orderOf(t, "E-1"))
	if _, failed := e.poll(context.Background(), 1); len(failed) != 0 {
		t.Errorf("failures = %v, want none: the throttled copy is replaced by a fresh one", failed)
	}
	msgs, failed := e.poll(context.Background(), 5)
	if len(msgs) != 1 || len(failed) != 0 {
		t.Fatalf("second poll: %d messages, failures %v; want the fresh copy, delivered", len(msgs), failed)
	}
	if got, want := copyOf(msgs[0]), (fresh{Body: orderOf(t, "E-1"), OrderID: "E-1", Source: source, Line: "7", Retries: "0", ReceiveCount: 1}); got != want {
		t.Errorf("fresh copy = %+v, want %+v", got, want)
	}
	if dlq := e.receiveAll(e.dlqURL, 0); len(dlq) != 0 {
		t.Errorf("DLQ has %d messages: a throttle must never park", len(dlq))
	}
}

// fresh is what a re-sent copy carries, for comparison.
type fresh struct {
	Body, OrderID, Source, Line, Retries string
	ReceiveCount                         int
}

func copyOf(m types.Message) fresh {
	return fresh{Body: aws.ToString(m.Body), OrderID: dispatchtest.Attr(m, order.AttrOrderID), Source: dispatchtest.Attr(m, order.AttrSource),
		Line: dispatchtest.Attr(m, order.AttrLine), Retries: dispatchtest.Attr(m, order.AttrRetries), ReceiveCount: dispatchtest.ReceiveCount(m)}
}

// script answers the requests in turn with statuses (429 and 503 with Retry-After: 1), then 200.
func script(statuses ...int) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if len(statuses) == 0 {
			return
		}
		st := statuses[0]
		statuses = statuses[1:]
		if st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(st)
	})
}

// try is one receive of the order and how it ended.
type try struct {
	ReceiveCount int
	Retries      string
	Deleted      bool
}

// pollUntilGone handles the order until no copy is left on the queue (at most max receives).
func (e *env) pollUntilGone(max int) []try {
	e.t.Helper()
	var tries []try
	for i := 0; i < max; i++ {
		msgs, failed := e.poll(context.Background(), 4)
		for _, m := range msgs {
			tries = append(tries, try{dispatchtest.ReceiveCount(m), dispatchtest.Attr(m, order.AttrRetries), len(failed) == 0})
		}
		if len(msgs) == 0 && e.inFlight() == 0 {
			break
		}
	}
	return tries
}

func TestThrottlesDoNotSpendTheBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		statuses   []int
		maxAtts    int
		want       []try
		wantParked *parked
	}{
		// The bug this guards against: throttled receives used up ApproximateReceiveCount, so
		// two 429s and two 500s parked the order with MAX_ATTEMPTS 4.
		{"two throttles and two failures are delivered", []int{429, 429, 500, 500}, 4,
			[]try{{1, "", true}, {1, "0", true}, {1, "0", false}, {2, "0", false}, {3, "0", true}}, nil},
		{"transient failures alone reach the budget across a re-send", []int{500, 429, 500, 500}, 3,
			[]try{{1, "", false}, {2, "", true}, {1, "1", false}, {2, "1", true}},
			&parked{Body: "", OrderID: "B-1", Source: source, Line: "7", Class: order.ClassExhausted,
				Detail: "transient: HTTP 500: Internal Server Error", Attempts: "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, setup{handler: script(tc.statuses...), config: func(c *dispatch.Config) { c.MaxAttempts = tc.maxAtts }})
			e.send("B-1", orderOf(t, "B-1"))
			if diff := cmp.Diff(tc.want, e.pollUntilGone(8)); diff != "" {
				t.Errorf("tries (-want +got):\n%s", diff)
			}
			if tc.wantParked == nil {
				if dlq := e.receiveAll(e.dlqURL, 0); len(dlq) != 0 {
					t.Errorf("DLQ has %d messages, want none: the order must be delivered", len(dlq))
				}
				return
			}
			want := *tc.wantParked
			want.Body = orderOf(t, "B-1")
			dlq := e.receiveAll(e.dlqURL, 1)
			if len(dlq) != 1 {
				t.Fatalf("DLQ has %d messages, want 1", len(dlq))
			}
			if diff := cmp.Diff(want, asParked(t, dlq[0])); diff != "" {
				t.Errorf("parked message (-want +got):\n%s", diff)
			}
			if _, ok := dlq[0].MessageAttributes[order.AttrRetries]; ok {
				t.Errorf("parked message carries %s: a redriven order must start a fresh budget", order.AttrRetries)
			}
		})
	}
}

func TestTimeoutIsCappedByTheDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setup{
		api:    apiserver.Config{HangIDs: []string{"H-1"}, HangFor: time.Minute},
		config: func(c *dispatch.Config) { c.APITimeout = time.Minute },
		// The margin leaves the recording call (which must end before the deadline) room on a
		// busy stand-in.
		client: func(c *orderapi.Config) { c.Margin = 700 * time.Millisecond },
	})
	id := e.send("H-1", orderOf(t, "H-1"))
	_, failed := e.pollWithin(context.Background(), 1, 2*time.Second) // a 2 s function
	if !cmp.Equal(failed, []string{id}) {
		t.Fatalf("failures = %v, want [%s]", failed, id)
	}
	// The request got at most deadline - margin = 1.3 s, not the configured minute, and the
	// invocation still had time to record the outcome.
	logs := e.logs.String()
	_, after, found := strings.Cut(logs, `"detail":"timeout: timeout after `)
	got, err := time.ParseDuration(strings.SplitN(after, `"`, 2)[0])
	if !found || err != nil || got <= 0 || got > 1300*time.Millisecond {
		t.Errorf("request timeout = %v (%v), want a transient timeout of at most 1.3 s in the logs:\n%s", got, err, logs)
	}
	if !strings.Contains(logs, `"msg":"order to retry"`) {
		t.Errorf("the retry was not recorded:\n%s", logs)
	}
	if st := e.api.Stats(); st.Hangs != 1 {
		t.Errorf("stand-in hangs = %d, want 1", st.Hangs)
	}
}

func TestGiveBackWhenTooLittleTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setup{})
	e.send("G-1", orderOf(t, "G-1"))
	_, failed := e.pollWithin(context.Background(), 1, 2500*time.Millisecond) // budget 0.5 s after the 2 s margin
	if len(failed) != 0 {
		t.Fatalf("failures = %v, want none: the message given back is replaced by a fresh copy", failed)
	}
	if got := e.api.Stats().Requests; got != 0 {
		t.Errorf("API requests = %d, want 0: no request started without time for it", got)
	}
	msgs, failed := e.poll(context.Background(), 2) // the fresh copy, not delayed: here at once
	if len(msgs) != 1 || len(failed) != 0 || e.api.Stats().Accepted != 1 {
		t.Fatalf("next poll: %d messages, failures %v, accepted %d; want it delivered", len(msgs), failed, e.api.Stats().Accepted)
	}
	if got, want := copyOf(msgs[0]), (fresh{Body: orderOf(t, "G-1"), OrderID: "G-1", Source: source, Line: "7", Retries: "0", ReceiveCount: 1}); got != want {
		t.Errorf("fresh copy = %+v, want %+v", got, want)
	}
}

func TestAuthorizationAndLogHygiene(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sm := secretsmanager.NewFromConfig(awstest.Config(t))
	const token = "Bearer tok-7f3a9c"
	out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(awstest.Name(t, "order-api")), SecretString: aws.String(token)})
	if err != nil {
		t.Fatalf("create secret: %v", err)
	}
	e := newEnv(t, setup{
		api:     apiserver.Config{Authorization: token, RejectIDs: []string{"L-2"}, FailIDs: []string{"L-3"}},
		config:  func(c *dispatch.Config) { c.APISecretARN = *out.ARN },
		apiOpts: orderapi.Options{Secrets: sm},
	})
	for _, id := range []string{"L-1", "L-2", "L-3"} {
		e.send(id, orderOf(t, id))
	}
	for i := 0; i < 6 && len(e.api.Orders()) < 2; i++ {
		e.poll(ctx, 2)
	}
	if got := e.api.Orders(); got["L-1"].Count != 1 || got["L-3"].Count != 1 {
		t.Errorf("stand-in ledger = %v, want L-1 and L-3 accepted with the secret", got)
	}
	logs := e.logs.String()
	// The card as a whole: its first digits alone turn up in EMF timestamps by chance.
	for _, secret := range []string{"tok-7f3a9c", "4111-XXXX", `"sku"`} {
		if strings.Contains(logs, secret) || strings.Contains(e.metrics.String(), secret) {
			t.Errorf("logs or metrics contain %q:\n%s\nmetrics:\n%s", secret, logs, e.metrics.String())
		}
	}
	var delivered map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["class"] == "delivered" && rec["orderID"] == "L-1" {
			delivered = rec
		}
	}
	for _, key := range []string{"orderID", "messageID", "class", "status", "latencyMs", "attempts"} {
		if _, ok := delivered[key]; !ok {
			t.Errorf("delivered log line %v has no %q", delivered, key)
		}
	}
}

func TestMetricsPerInvocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setup{api: apiserver.Config{RejectIDs: []string{"M-2"}}})
	e.send("M-1", orderOf(t, "M-1"))
	e.send("M-2", orderOf(t, "M-2"))
	var sent, permanent float64
	var latencies int
	for i := 0; i < 4 && sent+permanent < 2; i++ {
		e.poll(context.Background(), 1)
		sent, permanent, latencies = 0, 0, 0
		for _, line := range strings.Split(strings.TrimSpace(e.metrics.String()), "\n") {
			var rec struct {
				AWS struct {
					CloudWatchMetrics []struct{ Namespace string } `json:"CloudWatchMetrics"`
				} `json:"_aws"`
				Function        string
				Sent, Permanent float64
				ApiLatency      []float64
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("EMF line %q: %v", line, err)
			}
			if rec.Function != "dispatch-test" || len(rec.AWS.CloudWatchMetrics) != 1 || rec.AWS.CloudWatchMetrics[0].Namespace != "orderpipe" {
				t.Errorf("EMF line %q: want Function dispatch-test, namespace orderpipe", line)
			}
			sent += rec.Sent
			permanent += rec.Permanent
			latencies += len(rec.ApiLatency)
		}
	}
	if sent != 1 || permanent != 1 || latencies != 2 {
		t.Errorf("metrics: Sent %v, Permanent %v, %d latencies; want 1, 1, 2", sent, permanent, latencies)
	}
}

// After the invocation's deadline (Lambda has killed it; the local runner leaves it running and
// keeps the batch) the handler sends no fresh copy of a message it gives back: the order would be
// on the queue twice, the fresh copy and the original the ESM never deleted.
func TestNothingIsSentAfterTheDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setup{})
	id := e.send("D-1", orderOf(t, "D-1"))
	msgs, err := dispatchtest.Receive(context.Background(), e.sqs, e.queueURL, 1, 1)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive = %d messages, %v; want 1", len(msgs), err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	resp, err := e.d.Handle(ctx, dispatchtest.Event(e.queueARN, msgs))
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	if err != nil || !cmp.Equal(failed, []string{id}) {
		t.Errorf("Handle = %v, %v; want the message kept: [%s]", failed, err, id)
	}
	if got := e.receiveAll(e.queueURL, 0); len(got) != 0 {
		t.Errorf("%d copies of the order visible after an invocation past its deadline, want 0 (the original stays in flight)", len(got))
	}
	if got := e.inFlight(); got != 1 {
		t.Errorf("in flight = %d, want 1 (the original)", got)
	}
	if got := e.api.Stats().Requests; got != 0 {
		t.Errorf("API requests = %d, want 0", got)
	}
}

// Lambda runs one invocation at a time per process, but the local runner can start the next
// invocation while one that missed its deadline is still running: one Dispatcher must then serve
// two at once (run with -race).
func TestConcurrentInvocationsShareOneDispatcher(t *testing.T) {
	t.Parallel()
	// A wide margin: a sender woken late on a busy machine three times in a row gives its order
	// back unsent, which is pacing's business, not this test's.
	e := newEnv(t, setup{api: apiserver.Config{RejectIDs: []string{"C-0"}}, config: func(c *dispatch.Config) { c.Margin = 50 * time.Millisecond }})
	const n = 12
	for i := 0; i < n; i++ {
		e.send("C-"+strconv.Itoa(i), orderOf(t, "C-"+strconv.Itoa(i)))
	}
	var msgs []types.Message
	for i := 0; i < 10 && len(msgs) < n; i++ {
		got, err := dispatchtest.Receive(context.Background(), e.sqs, e.queueURL, 10, 1)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, got...)
	}
	if len(msgs) != n {
		t.Fatalf("received %d messages, want %d", len(msgs), n)
	}
	var wg sync.WaitGroup
	failures := make([]int, 2)
	for i, half := range [][]types.Message{msgs[:n/2], msgs[n/2:]} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := e.d.Handle(context.Background(), dispatchtest.Event(e.queueARN, half))
			failures[i] = len(resp.BatchItemFailures)
		}()
	}
	wg.Wait()
	if !cmp.Equal(failures, []int{0, 0}) {
		t.Errorf("failures per invocation = %v, want none", failures)
	}
	if st := e.api.Stats(); st.Accepted != n-1 || st.Duplicates != 0 || st.Rejected != 1 {
		t.Errorf("stand-in = %+v, want %d accepted, 0 duplicates, 1 rejected", st, n-1)
	}
	if dlq := e.receiveAll(e.dlqURL, 1); len(dlq) != 1 {
		t.Errorf("DLQ has %d messages, want 1 (C-0)", len(dlq))
	}
}

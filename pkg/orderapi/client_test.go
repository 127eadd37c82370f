package orderapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func order(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/order.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newClient(t *testing.T, cfg orderapi.Config, o orderapi.Options) *orderapi.Client {
	t.Helper()
	c, err := orderapi.New(cfg, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestPutSendsTheContract(t *testing.T) {
	type seen struct {
		Method, Path, ContentType, Key, Auth, Body string
	}
	got := make(chan seen, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"), r.Header.Get("Idempotency-Key"), r.Header.Get("Authorization"), string(b)}
		w.WriteHeader(http.StatusCreated)
	}))
	defer ts.Close()
	c := newClient(t, orderapi.Config{BaseURL: ts.URL + "/v1/"}, orderapi.Options{})
	res, err := c.Put(context.Background(), "a/b?c d", order(t))
	if err != nil || res.Class != orderapi.Delivered || res.Status != http.StatusCreated || !res.Sent {
		t.Fatalf("Put = %+v, %v; want delivered 201", res, err)
	}
	want := seen{"PUT", "/v1/orders/a%2Fb%3Fc%20d", "application/json", "a/b?c d~" + bodyDigest(order(t)), "", string(order(t))}
	if diff := cmp.Diff(want, <-got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

func TestClassification(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		body       string
		want       orderapi.Result
	}{
		{"ok", 200, "", "", orderapi.Result{Class: orderapi.Delivered, Status: 200}},
		{"no content", 204, "", "", orderapi.Result{Class: orderapi.Delivered, Status: 204}},
		{"429 seconds", 429, "7", "slow down", orderapi.Result{Class: orderapi.Throttled, Status: 429, RetryAfter: 7 * time.Second, HasRetryAfter: true, Detail: "HTTP 429: slow down"}},
		{"429 date", 429, t0.Add(90 * time.Second).Format(http.TimeFormat), "", orderapi.Result{Class: orderapi.Throttled, Status: 429, RetryAfter: 90 * time.Second, HasRetryAfter: true, Detail: "HTTP 429: Too Many Requests"}},
		{"503 without Retry-After", 503, "", "", orderapi.Result{Class: orderapi.Throttled, Status: 503, Detail: "HTTP 503: Service Unavailable"}},
		{"500", 500, "", "boom\n\tat line 3", orderapi.Result{Class: orderapi.Transient, Status: 500, Detail: "HTTP 500: boom at line 3"}},
		{"401 may be a rotated secret", 401, "", "", orderapi.Result{Class: orderapi.Transient, Status: 401, Detail: "HTTP 401: Unauthorized"}},
		{"422", 422, "", `{"error":"unknown sku"}`, orderapi.Result{Class: orderapi.Permanent, Status: 422, Detail: `HTTP 422: {"error":"unknown sku"}`}},
		{"409: same key still in progress", 409, "", "", orderapi.Result{Class: orderapi.Transient, Status: 409, Detail: "HTTP 409: Conflict"}},
		{"redirect is not followed", 308, "", "", orderapi.Result{Class: orderapi.Transient, Status: 308, Detail: "HTTP 308: Permanent Redirect"}},
		{"long body is cut", 400, "", strings.Repeat("x", 5000), orderapi.Result{Class: orderapi.Permanent, Status: 400, Detail: "HTTP 400: " + strings.Repeat("x", 200)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer ts.Close()
			c := newClient(t, orderapi.Config{BaseURL: ts.URL}, orderapi.Options{Now: func() time.Time { return t0 }})
			got, err := c.Put(context.Background(), "A-1", order(t))
			tc.want.Sent, tc.want.Wrote = true, t0 // written to the connection at the injected time
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			var se *orderapi.StatusError
			if gotErr, wantErr := err != nil, tc.want.Class != orderapi.Delivered; gotErr != wantErr {
				t.Errorf("err = %v, want error %v", err, wantErr)
			} else if err != nil && (!errors.As(err, &se) || se.Status != tc.status) {
				t.Errorf("err = %v, want a *StatusError with status %d", err, tc.status)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{" 120 ", 120 * time.Second, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"99999999999", 0, false},
		{t0.Add(time.Hour).Format(http.TimeFormat), time.Hour, true},
		{"Sunday, 01-Mar-26 12:00:30 GMT", 30 * time.Second, true}, // RFC 850
		{"Sun Mar  1 12:00:10 2026", 10 * time.Second, true},       // ANSI C asctime
		{t0.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"tomorrow", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := orderapi.ParseRetryAfter(tc.in, t0)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestBudget(t *testing.T) {
	c := newClient(t, orderapi.Config{BaseURL: "http://api.invalid", Timeout: 10 * time.Second, Margin: time.Second}, orderapi.Options{Now: func() time.Time { return t0 }})
	for _, tc := range []struct {
		name     string
		deadline time.Duration // from t0; 0: none
		want     time.Duration
	}{
		{"no deadline", 0, 10 * time.Second},
		{"far deadline", time.Minute, 10 * time.Second},
		{"near deadline", 4 * time.Second, 3 * time.Second},
		{"inside the margin", 500 * time.Millisecond, -500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.deadline != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, t0.Add(tc.deadline))
				defer cancel()
			}
			if got := c.Budget(ctx); got != tc.want {
				t.Errorf("Budget = %v, want %v", got, tc.want)
			}
		})
	}
	ctx, cancel := context.WithDeadline(context.Background(), t0.Add(500*time.Millisecond))
	defer cancel()
	res, err := c.Put(ctx, "A-1", order(t))
	if !errors.Is(err, orderapi.ErrNoTime) || res.Sent || res.Class != orderapi.Transient {
		t.Errorf("Put inside the margin = %+v, %v; want unsent transient ErrNoTime", res, err)
	}
}

// standIn serves the stand-in API with cfg and returns it and its URL.
func standIn(t *testing.T, cfg apiserver.Config) (*apiserver.Server, string) {
	t.Helper()
	s, err := apiserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func TestTimeoutIsCappedByTheDeadline(t *testing.T) {
	api, url := standIn(t, apiserver.Config{HangIDs: []string{"slow"}, HangFor: time.Minute})
	c := newClient(t, orderapi.Config{BaseURL: url, Timeout: time.Minute, Margin: 200 * time.Millisecond}, orderapi.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	res, err := c.Put(ctx, "slow", order(t))
	if !res.Timeout || res.Class != orderapi.Transient || !res.Sent || err == nil {
		t.Errorf("Put = %+v, %v; want a transient timeout", res, err)
	}
	// The request's own timeout fired before the caller's deadline: the invocation still has
	// its margin left to record the outcome.
	if ctx.Err() != nil {
		t.Errorf("caller's context is done (%v): the request ran into the deadline", ctx.Err())
	}
	if !strings.HasPrefix(res.Detail, "timeout after ") {
		t.Errorf("Detail = %q, want a timeout", res.Detail)
	}
	if st := api.Stats(); st.Hangs != 1 || st.Accepted != 0 {
		t.Errorf("stand-in stats = %+v, want 1 hang, nothing accepted", st)
	}
}

func TestConnectionErrorsAreNotRetried(t *testing.T) {
	api, url := standIn(t, apiserver.Config{ResetIDs: []string{"reset"}})
	c := newClient(t, orderapi.Config{BaseURL: url}, orderapi.Options{})
	ctx := context.Background()
	if _, err := c.Put(ctx, "first", order(t)); err != nil { // leaves a keep-alive connection to reuse
		t.Fatal(err)
	}
	res, err := c.Put(ctx, "reset", order(t))
	if !res.ConnError || res.Timeout || res.Class != orderapi.Transient || err == nil {
		t.Errorf("Put = %+v, %v; want a transient connection error", res, err)
	}
	if st := api.Stats(); st.Requests != 2 || st.Resets != 1 {
		t.Errorf("stand-in saw %d requests, %d resets; want 2 and 1: the client must not resend", st.Requests, st.Resets)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	c = newClient(t, orderapi.Config{BaseURL: closed.URL}, orderapi.Options{})
	if res, _ := c.Put(ctx, "A-1", order(t)); !res.ConnError || res.Class != orderapi.Transient {
		t.Errorf("Put to a closed port = %+v, want a transient connection error", res)
	}
}

func TestConnectionsAreReused(t *testing.T) {
	var conns atomic.Int32
	api, err := apiserver.New(apiserver.Config{RejectIDs: []string{"bad"}, FailIDs: []string{"fail"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(api)
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	defer ts.Close()
	c := newClient(t, orderapi.Config{BaseURL: ts.URL}, orderapi.Options{})
	for _, id := range []string{"a", "bad", "fail", "b", "bad", "c"} {
		c.Put(context.Background(), id, order(t))
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("connections = %d, want 1 (keep-alive, bodies drained)", got)
	}
}

// countingSecrets counts calls to the real Secrets Manager client.
type countingSecrets struct {
	orderapi.SecretsAPI
	calls atomic.Int32
}

func (c *countingSecrets) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	c.calls.Add(1)
	return c.SecretsAPI.GetSecretValue(ctx, in, optFns...)
}

// standInSecret creates a secret holding value in the stand-in's Secrets Manager and returns
// the client and the secret's ARN.
func standInSecret(t *testing.T, value string) (*secretsmanager.Client, string) {
	t.Helper()
	sm := secretsmanager.NewFromConfig(awstest.Config(t))
	out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(awstest.Name(t, "api-token")), SecretString: aws.String(value)})
	if err != nil {
		t.Fatalf("create secret: %v", err)
	}
	return sm, *out.ARN
}

func TestAuthorizationFromSecretsManager(t *testing.T) {
	ctx := context.Background()
	sm, arn := standInSecret(t, "Bearer first")
	var want atomic.Value
	want.Store("Bearer first")
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want.Load().(string) {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer ts.Close()
	counting := &countingSecrets{SecretsAPI: sm}
	clk := &clock{t: t0}
	c := newClient(t, orderapi.Config{BaseURL: ts.URL, SecretARN: arn, SecretTTL: time.Minute}, orderapi.Options{Secrets: counting, Now: clk.Now})

	type step struct {
		Class   orderapi.Class
		Fetches int32
	}
	var got []step
	put := func() {
		res, err := c.Put(ctx, "A-1", order(t))
		if strings.Contains(res.Detail, "Bearer") || (err != nil && strings.Contains(err.Error(), "Bearer")) {
			t.Errorf("the Authorization value leaked: %q, %v", res.Detail, err)
		}
		got = append(got, step{res.Class, counting.calls.Load()})
	}
	put()
	put() // cached
	clk.Advance(2 * time.Minute)
	put() // TTL passed: fetched again
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: &arn, SecretString: aws.String("Bearer second")}); err != nil {
		t.Fatalf("rotate secret: %v", err)
	}
	want.Store("Bearer second")
	put() // stale cache: 401, and the cache is dropped
	put() // fetched again
	wantSteps := []step{
		{orderapi.Delivered, 1}, {orderapi.Delivered, 1}, {orderapi.Delivered, 2},
		{orderapi.Transient, 2}, {orderapi.Delivered, 3},
	}
	if diff := cmp.Diff(wantSteps, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
}

func TestMissingSecretSendsNothing(t *testing.T) {
	var requests atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	defer ts.Close()
	sm := secretsmanager.NewFromConfig(awstest.Config(t))
	arn := "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + awstest.Name(t, "missing")
	c := newClient(t, orderapi.Config{BaseURL: ts.URL, SecretARN: arn}, orderapi.Options{Secrets: sm})
	res, err := c.Put(context.Background(), "A-1", order(t))
	if err == nil || res.Sent || res.Class != orderapi.Transient || requests.Load() != 0 {
		t.Errorf("Put = %+v, %v with %d requests; want an unsent transient failure", res, err, requests.Load())
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  orderapi.Config
	}{
		{"empty base", orderapi.Config{}},
		{"no scheme", orderapi.Config{BaseURL: "api.example.com"}},
		{"ftp", orderapi.Config{BaseURL: "ftp://api.example.com"}},
		{"secret without client", orderapi.Config{BaseURL: "https://api.example.com", SecretARN: "arn:x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := orderapi.New(tc.cfg, orderapi.Options{}); err == nil {
				t.Error("New: nil error, want one")
			}
		})
	}
}

func TestCheckBaseURL(t *testing.T) {
	for _, tc := range []struct {
		base    string
		wantErr bool
	}{
		{"https://api.example.com", false},
		{"https://api.example.com/v1/", false},
		{"http://127.0.0.1:8080", false},
		{"ftp://api.example.com", true},
		{"https://", true},
		{"https://api.example.com/v1?tenant=a", true},
		{"https://api.example.com/v1?", true},
		{"https://api.example.com/#x", true},
		{"https://user:secret@api.example.com", true},
	} {
		t.Run(tc.base, func(t *testing.T) {
			err := orderapi.CheckBaseURL(tc.base)
			if got := err != nil; got != tc.wantErr {
				t.Errorf("CheckBaseURL(%q) = %v, want error %v", tc.base, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the URL's password", err)
			}
		})
	}
}

// slowSecrets is a Secrets Manager that takes d of the client's clock to answer.
type slowSecrets struct {
	clk *clock
	d   time.Duration
}

func (s slowSecrets) GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	s.clk.Advance(s.d)
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String("Bearer x")}, nil
}

// The request's budget is what is left after fetching the secret, not what was left before.
func TestBudgetCountsTheSecretFetch(t *testing.T) {
	var requests atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1) }))
	defer ts.Close()
	// The clock starts at the real now so that the context's deadline lies in the future.
	clk := &clock{t: time.Now()}
	c := newClient(t, orderapi.Config{BaseURL: ts.URL, Timeout: 10 * time.Second, Margin: 2 * time.Second,
		SecretARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:api"}, orderapi.Options{Secrets: slowSecrets{clk, 1500 * time.Millisecond}, Now: clk.Now})
	// 3 s to the deadline: 1 s of budget before the fetch, none after it.
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(3*time.Second))
	defer cancel()
	res, err := c.Put(ctx, "o-1", order(t))
	if !errors.Is(err, orderapi.ErrNoTime) || !res.Timeout || res.Class != orderapi.Transient {
		t.Errorf("Put = %+v, %v; want a transient timeout with ErrNoTime", res, err)
	}
	if got := requests.Load(); got != 0 {
		t.Errorf("API requests = %d, want 0: no time was left after the secret's fetch", got)
	}
}

// bodyDigest is the first 32 hex digits of the SHA-256 of body: the part of the Idempotency-Key
// after the id (docs/CONTRACTS.md), computed here independently of the client.
func bodyDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])[:32]
}

// Authorize fetches the secret ahead of a paced request when the cached one would expire before
// the deadline; Put, at the request's slot, then fetches nothing.
func TestAuthorizeFetchesAhead(t *testing.T) {
	ctx := context.Background()
	sm, arn := standInSecret(t, "Bearer x")
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ts.Close()
	counting := &countingSecrets{SecretsAPI: sm}
	clk := &clock{t: time.Now()} // the deadline below is a real context's
	c := newClient(t, orderapi.Config{BaseURL: ts.URL, SecretARN: arn, SecretTTL: time.Minute}, orderapi.Options{Secrets: counting, Now: clk.Now})
	if err := c.Authorize(ctx); err != nil || counting.calls.Load() != 1 {
		t.Fatalf("Authorize without a cached secret: %v, %d fetches; want nil, 1", err, counting.calls.Load())
	}
	clk.Advance(50 * time.Second)
	dctx, cancel := context.WithDeadline(ctx, clk.Now().Add(30*time.Second)) // past the TTL
	defer cancel()
	if err := c.Authorize(dctx); err != nil || counting.calls.Load() != 2 {
		t.Fatalf("Authorize with a secret expiring before the deadline: %v, %d fetches; want nil, 2", err, counting.calls.Load())
	}
	clk.Advance(20 * time.Second) // the slot: 70 s after the first fetch, 20 s after the second
	if res, err := c.Put(dctx, "A-1", order(t)); err != nil || counting.calls.Load() != 2 {
		t.Errorf("Put at the slot: %v (%s), %d fetches; want delivered, 2 (no fetch)", err, res.Class, counting.calls.Load())
	}
}

// TestSendByRefusesALateWrite: under SendBy, a request whose first byte would be written after
// the time given is not written at all (ErrLate, not sent, nothing at the API), on a fresh
// connection, on a kept-alive one, and over TLS; one in time goes as usual.
func TestSendByRefusesALateWrite(t *testing.T) {
	ctx := context.Background()
	past := func() context.Context { return orderapi.SendBy(ctx, time.Now().Add(-time.Millisecond)) }
	future := func() context.Context { return orderapi.SendBy(ctx, time.Now().Add(time.Minute)) }
	check := func(t *testing.T, api *apiserver.Server, c *orderapi.Client) {
		t.Helper()
		if res, err := c.Put(past(), "late-fresh", order(t)); !errors.Is(err, orderapi.ErrLate) || res.Sent || res.Class != orderapi.Transient {
			t.Errorf("late on a fresh connection: Put = %+v, %v; want unsent transient ErrLate", res, err)
		}
		if _, err := c.Put(future(), "in-time", order(t)); err != nil {
			t.Errorf("in time: %v", err)
		}
		if res, err := c.Put(past(), "late-reused", order(t)); !errors.Is(err, orderapi.ErrLate) || res.Sent {
			t.Errorf("late on a kept-alive connection: Put = %+v, %v; want unsent ErrLate", res, err)
		}
		if _, err := c.Put(ctx, "no-limit", order(t)); err != nil {
			t.Errorf("without SendBy after a refusal: %v", err)
		}
		var ids []string
		for _, a := range api.Arrivals() {
			ids = append(ids, a.ID)
		}
		if want := []string{"in-time", "no-limit"}; !cmp.Equal(ids, want) {
			t.Errorf("the API saw %v, want %v", ids, want)
		}
	}
	t.Run("http", func(t *testing.T) {
		api, url := standIn(t, apiserver.Config{})
		check(t, api, newClient(t, orderapi.Config{BaseURL: url}, orderapi.Options{}))
	})
	t.Run("tls", func(t *testing.T) {
		api, err := apiserver.New(apiserver.Config{})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewTLSServer(api)
		t.Cleanup(ts.Close)
		tr := &http.Transport{TLSClientConfig: ts.Client().Transport.(*http.Transport).TLSClientConfig,
			DialContext: orderapi.GateDial((&net.Dialer{}).DialContext)}
		check(t, api, newClient(t, orderapi.Config{BaseURL: ts.URL}, orderapi.Options{HTTPClient: &http.Client{Transport: tr}}))
	})
}

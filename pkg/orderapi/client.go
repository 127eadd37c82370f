package orderapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/orderpipe/orderpipe/pkg/order"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultMargin    = 2 * time.Second
	DefaultSecretTTL = 5 * time.Minute
)

// maxDetail bounds the API's own text copied into Result.Detail (docs/CONTRACTS.md: FailureDetail
// never carries more than 256 bytes of the API's body).
const maxDetail = 200

// maxDrain bounds how much of a response body is read to let the connection be reused.
const maxDrain = 64 << 10

// Class is what an outcome means for the order.
type Class string

// Outcome classes (what dispatch does with each: pkg/dispatch's doc, "Outcomes").
const (
	Delivered Class = "delivered" // 2xx: the API has the order
	Throttled Class = "throttled" // 429 or 503: retry at Retry-After
	Transient Class = "transient" // 5xx, 401, 408, 425, other unexpected statuses, timeouts, connection errors
	Permanent Class = "permanent" // any other 4xx: the API refuses this order
)

// Result is the classified outcome of one PUT.
type Result struct {
	Class  Class
	Status int // HTTP status, 0 when no response arrived
	// RetryAfter is the server's Retry-After (delta-seconds or HTTP date, relative to the
	// client's clock), valid when HasRetryAfter. A date in the past gives 0.
	RetryAfter    time.Duration
	HasRetryAfter bool
	Timeout       bool          // no response within the request timeout
	ConnError     bool          // the connection failed (refused, reset, closed early)
	Sent          bool          // the request was started (false: refused before sending)
	Latency       time.Duration // from sending the request to the end of the response headers
	// Wrote is when the request had been written to the connection (zero when it never was):
	// how late a paced request really left.
	Wrote     time.Time
	Detail    string    // short, secret-free reason, e.g. "HTTP 422: unknown sku"
	RateLimit RateLimit // the answer's RateLimit and RateLimit-Policy fields
}

// StatusError is the error Put returns for a non-2xx response.
type StatusError struct {
	Status int
	Detail string
}

func (e *StatusError) Error() string { return e.Detail }

// ErrNoTime is returned when the context's deadline leaves no time for a request.
var ErrNoTime = errors.New("no time left before the deadline")

// SecretsAPI is the part of the Secrets Manager client the Client uses.
type SecretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Config configures a Client. BaseURL is required; zero durations take the Default* values.
type Config struct {
	BaseURL string // http(s)://host[/prefix]; requests go to {BaseURL}/orders/{id}
	// Timeout is the most one request may take; it is further capped by the context's deadline
	// minus Margin.
	Timeout time.Duration
	Margin  time.Duration
	// SecretARN, when set, names the Secrets Manager secret whose SecretString is the whole
	// Authorization header value (for example "Bearer abc"). It is cached for SecretTTL and
	// fetched again after a 401.
	SecretARN string
	SecretTTL time.Duration
}

// Options are the Client's optional dependencies; the zero value is usable when
// Config.SecretARN is empty.
type Options struct {
	// HTTPClient sends the requests; default: a client of the Client's own with a keep-alive
	// transport. Its CheckRedirect is replaced: the Client never follows redirects.
	HTTPClient *http.Client
	// Secrets fetches the Authorization secret; required when Config.SecretARN is set.
	Secrets SecretsAPI
	// Now is the clock, for Retry-After dates, latency and the secret's TTL; default time.Now.
	Now func() time.Time
}

// Client puts orders to the order API. It is safe for concurrent use. It does not retry.
type Client struct {
	cfg     Config
	base    string
	http    *http.Client
	secrets SecretsAPI
	now     func() time.Time

	mu        sync.Mutex
	auth      string
	fetchedAt time.Time
}

// New returns a Client for cfg with the dependencies of o. It fails for an unusable
// cfg.BaseURL, or a cfg.SecretARN without o.Secrets.
func New(cfg Config, o Options) (*Client, error) {
	if err := CheckBaseURL(cfg.BaseURL); err != nil {
		return nil, err
	}
	if cfg.SecretARN != "" && o.Secrets == nil {
		return nil, errors.New("order API secret ARN set but no Secrets Manager client given")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Margin <= 0 {
		cfg.Margin = DefaultMargin
	}
	if cfg.SecretTTL <= 0 {
		cfg.SecretTTL = DefaultSecretTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	hc := o.HTTPClient
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 4
		t.DialContext = GateDial(t.DialContext)
		// HTTP/1.1 only: one request at a time per connection, so SendBy's check is of the
		// request's own first write (an HTTP/2 connection interleaves other frames), and one
		// order per invocation gains nothing from multiplexing.
		t.ForceAttemptHTTP2 = false
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		hc = &http.Client{Transport: t}
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), http: &c, secrets: o.Secrets, now: o.Now}, nil
}

// CheckBaseURL returns an error unless base is an absolute http(s) URL usable as Config.BaseURL.
func CheckBaseURL(base string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("order API base URL %q: want http(s)://host[/path]", base)
	}
	// A query or fragment would end up after /orders/{id} wrongly; credentials in the URL would
	// end up in logs and errors (the Authorization secret is the place for them).
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("order API base URL %s: no credentials, query or fragment allowed", u.Redacted())
	}
	return nil
}

// Budget is the timeout a request started now would get: min(Timeout, deadline - now - Margin).
// It is <= 0 when the context's deadline leaves no time.
func (c *Client) Budget(ctx context.Context) time.Duration { return c.BudgetAt(ctx, c.now()) }

// BudgetAt is Budget for a request that would start at start (after a pacing wait).
func (c *Client) BudgetAt(ctx context.Context, start time.Time) time.Duration {
	b := c.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		b = min(b, dl.Sub(start)-c.cfg.Margin)
	}
	return b
}

// Put sends the order once. The Result is always filled in; the error is nil exactly when the
// Result's Class is Delivered, and otherwise says why (a *StatusError for a non-2xx response,
// ErrNoTime, or the transport's error), wrapped with the order id.
func (c *Client) Put(ctx context.Context, id string, body []byte) (Result, error) {
	res, err := c.put(ctx, id, body)
	if err != nil {
		return res, fmt.Errorf("put order %s: %w", id, err)
	}
	return res, nil
}

func (c *Client) put(ctx context.Context, id string, body []byte) (Result, error) {
	budget := c.Budget(ctx)
	if budget <= 0 {
		return Result{Class: Transient, Timeout: true, Detail: ErrNoTime.Error()}, ErrNoTime
	}
	auth, err := c.authorization(ctx)
	if err != nil {
		return Result{Class: Transient, Detail: "authorization secret unavailable"}, err
	}
	// The secret's fetch took some of the time: the request gets what is left.
	if budget = c.Budget(ctx); budget <= 0 {
		return Result{Class: Transient, Timeout: true, Detail: ErrNoTime.Error()}, ErrNoTime
	}
	rctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	var wroteMu sync.Mutex // the transport's writer calls WroteRequest
	var wrote time.Time
	rctx = httptrace.WithClientTrace(rctx, armOnConn(ctx, c.now, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) {
		wroteMu.Lock()
		wrote = c.now()
		wroteMu.Unlock()
	}}))
	req, err := http.NewRequestWithContext(rctx, http.MethodPut, c.base+"/orders/"+url.PathEscape(id), bytes.NewReader(body))
	if err != nil {
		return Result{Class: Permanent, Detail: "cannot build request"}, fmt.Errorf("build request: %w", err)
	}
	// Without GetBody the transport never sends the request a second time: net/http would
	// otherwise replay a request carrying Idempotency-Key after a connection failure, a hidden
	// second retry layer (and a duplicate PUT if the API had read the first).
	req.GetBody = nil
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", order.IdempotencyKey(id, body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}

	start := c.now()
	resp, err := c.http.Do(req)
	res := Result{Sent: true, Latency: c.now().Sub(start)}
	wroteMu.Lock()
	res.Wrote = wrote
	wroteMu.Unlock()
	if errors.Is(err, ErrLate) {
		return Result{Class: Transient, Detail: ErrLate.Error()}, ErrLate
	}
	if err != nil {
		return classifyError(ctx, res, budget, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		resp.Body.Close()
	}()
	res.Status = resp.StatusCode
	res.RetryAfter, res.HasRetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	res.RateLimit = ParseRateLimit(resp.Header)
	res.Class = ClassifyStatus(resp.StatusCode)
	if res.Class == Delivered {
		return res, nil
	}
	if resp.StatusCode == http.StatusUnauthorized {
		c.forgetAuthorization()
	}
	res.Detail = statusDetail(resp)
	return res, &StatusError{Status: resp.StatusCode, Detail: res.Detail}
}

// classifyError turns a transport error into a Result: a timeout (ours or the caller's
// deadline) or a connection error; both are transient.
func classifyError(ctx context.Context, res Result, budget time.Duration, err error) (Result, error) {
	res.Class = Transient
	var ne net.Error
	switch {
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.Detail = "cancelled by the caller"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		res.Timeout = true
		res.Detail = "timeout after " + budget.Round(time.Millisecond).String()
	default:
		res.ConnError = true
		res.Detail = "connection error: " + connReason(err)
	}
	return res, err
}

// connReason is a short, stable description of a connection failure, without addresses.
func connReason(err error) string {
	var oe *net.OpError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed by server"
	case errors.As(err, &oe) && oe.Err != nil:
		return oe.Op + ": " + lastPart(oe.Err.Error())
	default:
		return lastPart(err.Error())
	}
}

// lastPart keeps the text after the last ": ", dropping URLs and addresses wrapped around it.
func lastPart(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// ClassifyStatus maps an HTTP status to a Class. 401 is transient (the cached secret may have
// rotated; the client fetches it again), as are 408 and 425, and 409: under the Idempotency-Key
// header's rules (IETF draft-ietf-httpapi-idempotency-key-header) 409 means a request with the
// same key is still being processed, so a retry gets its result; a key reused with another
// payload is 422, permanent. Every other 4xx is permanent.
// 3xx and other unexpected statuses are transient, so they end as exhausted with their reason
// rather than parking orders at once.
func ClassifyStatus(status int) Class {
	switch {
	case status >= 200 && status <= 299:
		return Delivered
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return Throttled
	case status == http.StatusUnauthorized || status == http.StatusRequestTimeout || status == http.StatusTooEarly ||
		status == http.StatusConflict:
		return Transient
	case status >= 400 && status <= 499:
		return Permanent
	default:
		return Transient
	}
}

// ParseRetryAfter reads a Retry-After value: delta-seconds or an HTTP date (relative to now; a
// past date gives 0). ok is false when v is empty or malformed.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// statusDetail is "HTTP {status}: {start of the body}", printable and bounded.
func statusDetail(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxDetail))
	text := strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, string(b))
	text = strings.Join(strings.Fields(text), " ")
	if text == "" {
		text = http.StatusText(resp.StatusCode)
	}
	return "HTTP " + strconv.Itoa(resp.StatusCode) + ": " + text
}

// Authorize fetches the Authorization secret ahead of a paced request when the cached one is
// missing or would expire before ctx's deadline, so that Put, called at the request's slot, does
// not fetch it between the slot's start and the write (the request would leave late, closer to
// the next slot's than 1/rate). It returns the fetch's error; without SecretARN it does nothing.
func (c *Client) Authorize(ctx context.Context) error {
	until := c.now()
	if dl, ok := ctx.Deadline(); ok && dl.After(until) {
		until = dl
	}
	_, err := c.authorizationAt(ctx, until)
	return err
}

// authorization returns the Authorization value, from the cache while it is younger than the TTL.
func (c *Client) authorization(ctx context.Context) (string, error) {
	return c.authorizationAt(ctx, c.now())
}

// authorizationAt returns the cached secret if it is still fresh at until, else fetches it.
func (c *Client) authorizationAt(ctx context.Context, until time.Time) (string, error) {
	if c.cfg.SecretARN == "" {
		return "", nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.auth != "" && until.Sub(c.fetchedAt) < c.cfg.SecretTTL {
		return c.auth, nil
	}
	out, err := c.secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &c.cfg.SecretARN})
	if err != nil {
		return "", fmt.Errorf("get order API secret: %w", err)
	}
	if out.SecretString == nil || strings.TrimSpace(*out.SecretString) == "" {
		return "", errors.New("get order API secret: SecretString is empty")
	}
	c.auth, c.fetchedAt = strings.TrimSpace(*out.SecretString), now
	return c.auth, nil
}

func (c *Client) forgetAuthorization() {
	c.mu.Lock()
	c.auth = ""
	c.mu.Unlock()
}

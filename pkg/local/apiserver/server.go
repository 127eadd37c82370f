package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/orderpipe/orderpipe/internal/clock"
)

// maxBody bounds a request body (an order line is at most 256 KiB).
const maxBody = 1 << 20

// Config configures a Server. Start from DefaultConfig; New fills zero values the same way.
type Config struct {
	RPS   float64 // token bucket rate, requests/s; <= 0 means no limit
	Burst int     // token bucket size; < 1 means 1

	Latency time.Duration // fixed latency of every answer except 429
	Jitter  time.Duration // plus a uniform draw in [0, Jitter)
	Seed    int64         // drives the fractions and the jitter

	// Authorization, when set, is the value every request must carry (else 401).
	Authorization string

	// Faults. An id is chosen for a fault when it is listed or falls in the fraction.
	RejectIDs      []string
	RejectFraction float64
	RejectStatus   int // default 422; every attempt of a chosen id gets it

	FailIDs      []string
	FailFraction float64
	FailStatus   int      // default 500
	BrokenIDs    []string // answered FailStatus on every attempt (a retry budget runs out)

	ResetIDs      []string
	ResetFraction float64

	HangIDs          []string
	HangFraction     float64
	HangFor          time.Duration // default 30s; the hang also ends when the client goes away
	CommitBeforeHang bool          // record the order, then hang: a retry becomes a duplicate

	// Outages are scripted windows, relative to the server's start, in which every request is
	// answered with the outage's status (or left hanging, Status 0, until the client gives up).
	Outages []Outage

	// RateLimitHeaders makes every answer carry the IETF RateLimit-Policy (the bucket as a quota
	// per window: q=Burst;w=Burst/RPS) and RateLimit (r = whole tokens left, t = seconds until
	// the next) fields.
	RateLimitHeaders bool

	// FailTimes is how many first attempts of a chosen id get the Fail, Reset or Hang fault;
	// < 1 means 1. Later attempts succeed.
	FailTimes int

	// Now and Sleep are the clock; nil means the real one. Sleep returns early with ctx's error.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Outage is a scripted outage: from From to To after the server's start, requests are answered
// Status (a 5xx; 0: no answer until the client goes away), with Retry-After when RetryAfter > 0.
type Outage struct {
	From, To   time.Duration
	Status     int
	RetryAfter time.Duration
}

// DefaultConfig is the real API's shape: 1 request/s, burst 1, 50 ms latency, no faults.
func DefaultConfig() Config {
	return Config{RPS: 1, Burst: 1, Latency: 50 * time.Millisecond, RejectStatus: http.StatusUnprocessableEntity,
		FailStatus: http.StatusInternalServerError, HangFor: 30 * time.Second, FailTimes: 1, Seed: 1}
}

// Record is what the server holds for one accepted order id.
type Record struct {
	Count int    // times accepted; more than 1 is a duplicate delivery
	Body  []byte // the last accepted body
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Requests     int   // every request received
	Accepted     int   // distinct ids accepted
	Deliveries   int   // accepted requests, duplicates included
	Duplicates   int   // accepted requests replaying an Idempotency-Key already accepted
	Updates      int   // accepted requests for an id already accepted, with a new key (new content)
	Throttled    int   // 429 answers
	ServerErrors int   // 5xx answers
	Rejected     int   // 4xx answers other than 429 (checks and Reject faults)
	Resets       int   // connections reset
	Hangs        int   // requests left hanging
	OutageHits   int   // requests answered by a scripted outage
	PerSecond    []int // accepted requests in each second since the server started
}

// Arrival is one request as the server saw it arrive.
type Arrival struct {
	// At is when the request reached the server: the kernel's receive time of its bytes when
	// served from a StampListener, else when its handler started (Read). The rate limit and
	// the scripted outages apply at At.
	At     time.Time
	Read   time.Time // when its handler started, on the server's clock
	ID     string    // the order id of the path, "" for other paths
	Status int       // the status answered (0: no answer, the client went away)
}

// Server is the stand-in order API. It is an http.Handler, safe for concurrent use.
type Server struct {
	cfg     Config
	start   time.Time
	limiter *rate.Limiter
	mux     *http.ServeMux
	chosen  map[string]map[string]bool // fault -> listed ids

	mu       sync.Mutex
	orders   map[string]*Record
	keys     map[string][sha256.Size]byte // accepted Idempotency-Key -> SHA-256 of its body
	attempts map[string]int
	stats    Stats
	arrivals []Arrival
}

// Fault names, also used to draw fractions.
const (
	faultReject = "reject"
	faultFail   = "fail"
	faultReset  = "reset"
	faultHang   = "hang"
	faultBroken = "broken"
)

// New returns a Server for cfg, or an error naming an invalid field.
func New(cfg Config) (*Server, error) {
	def := DefaultConfig()
	if cfg.Burst < 1 {
		cfg.Burst = 1
	}
	if cfg.RejectStatus == 0 {
		cfg.RejectStatus = def.RejectStatus
	}
	if cfg.FailStatus == 0 {
		cfg.FailStatus = def.FailStatus
	}
	if cfg.HangFor <= 0 {
		cfg.HangFor = def.HangFor
	}
	if cfg.FailTimes < 1 {
		cfg.FailTimes = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = clock.Sleep
	}
	var errs []error
	if cfg.RejectStatus < 400 || cfg.RejectStatus > 499 || cfg.RejectStatus == http.StatusTooManyRequests {
		errs = append(errs, fmt.Errorf("RejectStatus %d: want a 4xx other than 429", cfg.RejectStatus))
	}
	if cfg.FailStatus < 500 || cfg.FailStatus > 599 {
		errs = append(errs, fmt.Errorf("FailStatus %d: want a 5xx", cfg.FailStatus))
	}
	for name, f := range map[string]float64{faultReject: cfg.RejectFraction, faultFail: cfg.FailFraction, faultReset: cfg.ResetFraction, faultHang: cfg.HangFraction} {
		if f < 0 || f > 1 {
			errs = append(errs, fmt.Errorf("%s fraction %v: want 0..1", name, f))
		}
	}
	if cfg.Latency < 0 || cfg.Jitter < 0 {
		errs = append(errs, errors.New("latency and jitter must be >= 0"))
	}
	for _, o := range cfg.Outages {
		if o.From < 0 || o.To <= o.From || (o.Status != 0 && (o.Status < 500 || o.Status > 599)) || o.RetryAfter < 0 {
			errs = append(errs, fmt.Errorf("outage %v-%v status %d: want 0 <= from < to and a 5xx status (or 0: hang)", o.From, o.To, o.Status))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("stand-in order API config: %w", err)
	}
	limit := rate.Inf
	if cfg.RPS > 0 {
		limit = rate.Limit(cfg.RPS)
	}
	s := &Server{
		cfg:     cfg,
		start:   cfg.Now(),
		limiter: rate.NewLimiter(limit, cfg.Burst),
		mux:     http.NewServeMux(),
		chosen: map[string]map[string]bool{
			faultReject: set(cfg.RejectIDs), faultFail: set(cfg.FailIDs),
			faultReset: set(cfg.ResetIDs), faultHang: set(cfg.HangIDs), faultBroken: set(cfg.BrokenIDs),
		},
		orders:   map[string]*Record{},
		keys:     map[string][sha256.Size]byte{},
		attempts: map[string]int{},
	}
	s.mux.HandleFunc("/orders/{id}", s.putOrder)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.count(func(st *Stats) { st.Rejected++ })
		http.NotFound(w, r)
	})
	return s, nil
}

func set(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// ServeHTTP serves the order API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	read := s.cfg.Now()
	now := arrived(r, read)
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		id := ""
		if strings.HasPrefix(r.URL.Path, "/orders/") {
			id = strings.TrimPrefix(r.URL.Path, "/orders/")
		}
		s.mu.Lock()
		s.arrivals = append(s.arrivals, Arrival{At: now, Read: read, ID: id, Status: rec.status})
		s.mu.Unlock()
	}()
	s.count(func(st *Stats) { st.Requests++ })
	if o, ok := s.outage(now); ok {
		s.count(func(st *Stats) { st.OutageHits++ })
		if o.Status == 0 {
			<-r.Context().Done()
			return
		}
		s.count(func(st *Stats) { st.ServerErrors++ })
		if o.RetryAfter > 0 {
			rec.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(o.RetryAfter.Seconds()))))
		}
		http.Error(rec, "scripted outage", o.Status)
		return
	}
	if !s.limiter.AllowN(now, 1) {
		res := s.limiter.ReserveN(now, 1)
		wait := res.DelayFrom(now)
		res.CancelAt(now)
		s.count(func(st *Stats) { st.Throttled++ })
		s.rateLimitHeaders(rec, now)
		rec.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		http.Error(rec, "rate limit exceeded", http.StatusTooManyRequests)
		return
	}
	s.rateLimitHeaders(rec, now)
	s.mux.ServeHTTP(rec, r)
}

// outage returns the scripted outage in force at now, if any.
func (s *Server) outage(now time.Time) (Outage, bool) {
	since := now.Sub(s.start)
	for _, o := range s.cfg.Outages {
		if since >= o.From && since < o.To {
			return o, true
		}
	}
	return Outage{}, false
}

// rateLimitHeaders sets the RateLimit fields when configured and the server has a limit.
func (s *Server) rateLimitHeaders(w http.ResponseWriter, now time.Time) {
	if !s.cfg.RateLimitHeaders || s.cfg.RPS <= 0 {
		return
	}
	window := float64(s.cfg.Burst) / s.cfg.RPS
	w.Header().Set("RateLimit-Policy", fmt.Sprintf(`"default";q=%d;w=%s`, s.cfg.Burst, strconv.FormatFloat(window, 'g', -1, 64)))
	tokens := s.limiter.TokensAt(now)
	reset := 0.0
	if frac := tokens - math.Floor(tokens); tokens < float64(s.cfg.Burst) {
		reset = (1 - frac) / s.cfg.RPS
	}
	w.Header().Set("RateLimit", fmt.Sprintf(`"default";r=%d;t=%d`, max(int(tokens), 0), int(math.Ceil(reset))))
}

// statusRecorder remembers the status written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Hijack lets the reset fault take over the connection.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	return hj.Hijack()
}

func (s *Server) putOrder(w http.ResponseWriter, r *http.Request) {
	id, key := r.PathValue("id"), r.Header.Get("Idempotency-Key")
	body, status, reason := s.check(w, r, id)
	if status != 0 {
		s.count(func(st *Stats) { st.Rejected++ })
		http.Error(w, reason, status)
		return
	}

	s.mu.Lock()
	s.attempts[id]++
	attempt := s.attempts[id]
	s.mu.Unlock()

	if err := s.cfg.Sleep(r.Context(), s.cfg.Latency+s.jitter(id, attempt)); err != nil {
		return // the client went away
	}
	early := attempt <= s.cfg.FailTimes
	switch {
	case s.is(faultReject, id):
		s.count(func(st *Stats) { st.Rejected++ })
		http.Error(w, "order refused by the stand-in", s.cfg.RejectStatus)
	case early && s.is(faultReset, id):
		s.count(func(st *Stats) { st.Resets++ })
		reset(w)
	case early && s.is(faultHang, id):
		s.count(func(st *Stats) { st.Hangs++ })
		if s.cfg.CommitBeforeHang {
			s.accept(id, key, body)
		}
		if err := s.cfg.Sleep(r.Context(), s.cfg.HangFor); err != nil {
			return
		}
		if !s.cfg.CommitBeforeHang {
			s.accept(id, key, body)
		}
		w.WriteHeader(http.StatusOK)
	case s.is(faultBroken, id) || (early && s.is(faultFail, id)):
		s.count(func(st *Stats) { st.ServerErrors++ })
		http.Error(w, "injected failure", s.cfg.FailStatus)
	default:
		if s.accept(id, key, body) {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		w.WriteHeader(http.StatusOK)
	}
}

// check validates the request and returns its body, or a status and reason to refuse it with.
func (s *Server) check(w http.ResponseWriter, r *http.Request, id string) (body []byte, status int, reason string) {
	if r.Method != http.MethodPut {
		return nil, http.StatusMethodNotAllowed, "want PUT"
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, http.StatusUnsupportedMediaType, "want Content-Type application/json"
	}
	key := r.Header.Get("Idempotency-Key")
	if !strings.HasPrefix(key, id+"~") || len(key) == len(id)+1 {
		return nil, http.StatusBadRequest, "Idempotency-Key must be {id}~{digest of the body}"
	}
	if s.cfg.Authorization != "" && r.Header.Get("Authorization") != s.cfg.Authorization {
		return nil, http.StatusUnauthorized, "bad or missing Authorization"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, http.StatusBadRequest, "cannot read body"
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return nil, http.StatusBadRequest, "body must be a JSON object"
	}
	s.mu.Lock()
	sum, seen := s.keys[key]
	s.mu.Unlock()
	if seen && sum != sha256.Sum256(body) {
		return nil, http.StatusUnprocessableEntity, "Idempotency-Key reused with another body"
	}
	return body, 0, ""
}

// accept records an accepted order and reports whether it replays a key accepted before (a
// duplicate); a new key for an id accepted before is an update of the order.
func (s *Server) accept(id, key string, body []byte) (dup bool) {
	sec := int(s.cfg.Now().Sub(s.start) / time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, dup = s.keys[key]
	s.keys[key] = sha256.Sum256(body)
	rec, known := s.orders[id]
	switch {
	case !known:
		rec = &Record{}
		s.orders[id] = rec
		s.stats.Accepted++
	case dup:
		s.stats.Duplicates++
	default:
		s.stats.Updates++
	}
	rec.Count++
	rec.Body = bytes.Clone(body)
	s.stats.Deliveries++
	for len(s.stats.PerSecond) <= sec {
		s.stats.PerSecond = append(s.stats.PerSecond, 0)
	}
	s.stats.PerSecond[max(sec, 0)]++
	return dup
}

// reset closes the client's connection with a TCP reset (linger 0).
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok { // HTTP/2: no connection to reset; a gateway error is the nearest failure
		http.Error(w, "connection reset (simulated)", http.StatusBadGateway)
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// is reports whether id is chosen for fault, by list or by fraction.
func (s *Server) is(fault, id string) bool {
	if s.chosen[fault][id] {
		return true
	}
	var f float64
	switch fault {
	case faultReject:
		f = s.cfg.RejectFraction
	case faultFail:
		f = s.cfg.FailFraction
	case faultReset:
		f = s.cfg.ResetFraction
	case faultHang:
		f = s.cfg.HangFraction
	}
	return f > 0 && s.draw(fault, id, 0) < f
}

// jitter is a deterministic draw in [0, Jitter) for an id's attempt.
func (s *Server) jitter(id string, attempt int) time.Duration {
	return time.Duration(s.draw("jitter", id, attempt) * float64(s.cfg.Jitter))
}

// draw is a uniform number in [0, 1) fixed by the seed, the purpose, the id and n.
func (s *Server) draw(purpose, id string, n int) float64 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(s.cfg.Seed))
	binary.LittleEndian.PutUint64(b[8:], uint64(n))
	h.Write(b[:])
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write([]byte(id))
	x := h.Sum64() // FNV mixes the last bytes poorly into the high bits: finish with splitmix64
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.PerSecond = slices.Clone(s.stats.PerSecond)
	return st
}

// Arrivals returns every request answered so far (or abandoned by its client), in arrival
// order.
func (s *Server) Arrivals() []Arrival {
	s.mu.Lock()
	a := slices.Clone(s.arrivals)
	s.mu.Unlock()
	slices.SortStableFunc(a, func(x, y Arrival) int { return x.At.Compare(y.At) })
	return a
}

// MinGap returns the shortest time between two arrivals and the number of pairs closer than
// min (0, 0 with fewer than two arrivals).
func MinGap(arrivals []Arrival, min time.Duration) (shortest time.Duration, closer int) {
	for i := 1; i < len(arrivals); i++ {
		d := arrivals[i].At.Sub(arrivals[i-1].At)
		if i == 1 || d < shortest {
			shortest = d
		}
		if d < min {
			closer++
		}
	}
	return shortest, closer
}

// Orders returns a copy of the ledger: accepted id -> record.
func (s *Server) Orders() map[string]Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]Record, len(s.orders))
	for id, r := range s.orders {
		m[id] = Record{Count: r.Count, Body: bytes.Clone(r.Body)}
	}
	return m
}

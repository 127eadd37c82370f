package dispatch_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/syncbuf"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
)

// simQueue is an in-memory orders queue with SQS's timing: a fresh copy becomes receivable after
// its DelaySeconds, a visibility change brings a message back after it, and each receive counts.
// The instances take the earliest receivable message, as the event source mapping hands them out.
type simQueue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	msgs     map[string]*simMsg
	seq      int
	parked   int
	resends  int
	visits   int
	inFlight int
}

type simMsg struct {
	id       string
	body     string
	attrs    map[string]events.SQSMessageAttribute
	visible  time.Time
	receives int
	inFlight bool
}

func newSimQueue(n int) *simQueue {
	q := &simQueue{msgs: map[string]*simMsg{}}
	q.cond = sync.NewCond(&q.mu)
	now := time.Now()
	for i := 1; i <= n; i++ {
		id := "G-" + strconv.Itoa(i)
		q.add(&simMsg{body: `{"id":"` + id + `","amount":"10.00"}`, visible: now,
			attrs: map[string]events.SQSMessageAttribute{order.AttrOrderID: {DataType: "String", StringValue: aws.String(id)}}})
	}
	return q
}

// add stores m under a new message id; q.mu held or no concurrency yet.
func (q *simQueue) add(m *simMsg) {
	q.seq++
	m.id = "m-" + strconv.Itoa(q.seq)
	q.msgs[m.id] = m
}

// receive blocks until a message is receivable and returns it as an event, or false when the
// queue is empty and nothing is in flight, or ctx ends.
func (q *simQueue) receive(ctx context.Context) (events.SQSEvent, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if ctx.Err() != nil {
			return events.SQSEvent{}, false
		}
		now := time.Now()
		var best *simMsg
		var next time.Time
		for _, m := range q.msgs {
			if m.inFlight {
				continue
			}
			if !m.visible.After(now) && (best == nil || m.visible.Before(best.visible)) {
				best = m
			}
			if next.IsZero() || m.visible.Before(next) {
				next = m.visible
			}
		}
		if best != nil {
			best.inFlight, best.receives = true, best.receives+1
			q.inFlight++
			return events.SQSEvent{Records: []events.SQSMessage{{MessageId: best.id, ReceiptHandle: best.id, Body: best.body,
				Attributes:        map[string]string{"ApproximateReceiveCount": strconv.Itoa(best.receives)},
				MessageAttributes: best.attrs}}}, true
		}
		if next.IsZero() && q.inFlight == 0 {
			return events.SQSEvent{}, false
		}
		wait := 5 * time.Millisecond
		if !next.IsZero() {
			wait = min(max(next.Sub(now), time.Millisecond), 50*time.Millisecond)
		}
		q.mu.Unlock()
		time.Sleep(wait)
		q.mu.Lock()
	}
}

// done ends an invocation: deleted unless it is a batch item failure.
func (q *simQueue) done(id string, failed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.msgs[id]
	if m == nil {
		return
	}
	m.inFlight = false
	q.inFlight--
	if !failed {
		delete(q.msgs, id)
	}
}

func (q *simQueue) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.visits++
	if m := q.msgs[aws.ToString(in.ReceiptHandle)]; m != nil {
		m.visible = time.Now().Add(time.Duration(in.VisibilityTimeout) * time.Second)
	}
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func (q *simQueue) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if aws.ToString(in.QueueUrl) == simDLQ {
		q.parked++
		return &sqs.SendMessageOutput{}, nil
	}
	q.resends++
	attrs := map[string]events.SQSMessageAttribute{}
	for k, v := range in.MessageAttributes {
		attrs[k] = events.SQSMessageAttribute{DataType: aws.ToString(v.DataType), StringValue: v.StringValue}
	}
	q.add(&simMsg{body: aws.ToString(in.MessageBody), attrs: attrs, visible: time.Now().Add(time.Duration(in.DelaySeconds) * time.Second)})
	return &sqs.SendMessageOutput{}, nil
}

const simDLQ = "http://queue/dlq"

// govCase is one governor benchmark: the API's real limit and shape, and the pipeline's.
type govCase struct {
	apiRPS    float64 // the API's real limit
	apiBurst  int
	apiRate   float64 // API_RATE, the governor's ceiling
	instances int
	latency   time.Duration
	orders    int
	outages   []apiserver.Outage
	probe     time.Duration // BREAKER_PROBE_INTERVAL; 0: default
	headers   bool          // the API sends RateLimit headers
	margin    time.Duration // GOVERNOR_MARGIN; 0: default
	scale     float64       // time compression: the governor's hold and throttle window / scale; 0: none
}

// govResult is what a run measured.
type govResult struct {
	api       *apiserver.Server
	apiStart  time.Time // at or just before the stand-in's start, which its outages count from
	arrivals  []apiserver.Arrival
	start     time.Time
	elapsed   time.Duration
	q         *simQueue
	storeGets atomic.Int64
	storeSets atomic.Int64
	handlerNs atomic.Int64 // wall time inside Handle: what Lambda bills
	reserveNs atomic.Int64 // inside Governor.Reserve
	reportNs  atomic.Int64 // inside Governor.Report
	reserves  atomic.Int64
	retakes   atomic.Int64 // late wake-ups
	advances  atomic.Int64 // UpdateItems that took a slot without a read (ReturnValues ALL_NEW)
	marginNs  atomic.Int64 // the margins of the slots reserved, summed
	marginMax atomic.Int64
	writes    writeLog
	log       syncbuf.Buffer // the instances' logs, for the requests of closer pairs
}

// writeLog keeps when each request's first bytes were written by a sender, by order id.
type writeLog struct {
	mu sync.Mutex
	at map[string][]time.Time // the id's requests
}

// before is the latest write of id's requests not after t (zero if none).
func (l *writeLog) before(id string, t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var w time.Time
	for _, x := range l.at[id] {
		if !x.After(t) {
			w = x
		}
	}
	return w
}

// writeLoggedConn logs its requests' writes.
type writeLoggedConn struct {
	net.Conn
	l *writeLog
}

func (c writeLoggedConn) Write(p []byte) (int, error) {
	t := time.Now()
	if rest, ok := bytes.CutPrefix(p, []byte("PUT /orders/")); ok {
		if i := bytes.IndexByte(rest, ' '); i > 0 {
			c.l.mu.Lock()
			if c.l.at == nil {
				c.l.at = map[string][]time.Time{}
			}
			id := string(rest[:i])
			c.l.at[id] = append(c.l.at[id], t)
			c.l.mu.Unlock()
		}
	}
	return c.Conn.Write(p)
}

// timedGovernor measures where a slot's time goes: the governor's calls and how late senders
// wake (Retake is called for each late wake-up).
type timedGovernor struct {
	dispatch.Governor
	r *govResult
}

func (g timedGovernor) Reserve(ctx context.Context, fits func(time.Time) bool) (governor.Slot, error) {
	t0 := time.Now()
	s, err := g.Governor.Reserve(ctx, fits)
	g.r.reserveNs.Add(time.Since(t0).Nanoseconds())
	g.r.reserves.Add(1)
	if err == nil {
		g.r.marginNs.Add(int64(s.Margin))
		for m := g.r.marginMax.Load(); int64(s.Margin) > m && !g.r.marginMax.CompareAndSwap(m, int64(s.Margin)); m = g.r.marginMax.Load() {
		}
	}
	return s, err
}

func (g timedGovernor) Report(ctx context.Context, s governor.Slot, o governor.Outcome) (governor.State, error) {
	t0 := time.Now()
	st, err := g.Governor.Report(ctx, s, o)
	g.r.reportNs.Add(time.Since(t0).Nanoseconds())
	return st, err
}

func (g timedGovernor) Retake(ctx context.Context, s governor.Slot) (governor.Slot, error) {
	g.r.retakes.Add(1)
	return g.Governor.Retake(ctx, s)
}

// countingDynamo counts the governor's DynamoDB calls.
type countingDynamo struct {
	governor.DynamoAPI
	r *govResult
}

func (c countingDynamo) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.r.storeGets.Add(1)
	return c.DynamoAPI.GetItem(ctx, in, o...)
}

func (c countingDynamo) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.r.storeSets.Add(1)
	if in.ReturnValues != "" {
		c.r.advances.Add(1)
	}
	return c.DynamoAPI.UpdateItem(ctx, in, o...)
}

// runGoverned delivers c.orders through c.instances dispatch instances sharing one governor
// record in the stand-in's DynamoDB, each invocation one order with a 30 s deadline, against
// the stand-in API, until every order is delivered or parked.
func runGoverned(b *testing.B, c govCase) *govResult {
	b.Helper()
	apiStart := time.Now()
	api, err := apiserver.New(apiserver.Config{RPS: c.apiRPS, Burst: c.apiBurst, Latency: c.latency, Outages: c.outages, RateLimitHeaders: c.headers})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := apiserver.Listen("127.0.0.1:0") // arrivals timed by the kernel: see apiserver.StampListener
	if err != nil {
		b.Fatal(err)
	}
	ts := &httptest.Server{Listener: ln, Config: api.HTTPServer()}
	ts.Start()
	defer ts.Close()
	cfg := dispatch.Config{OrdersQueueURL: "http://queue/orders", DLQURL: simDLQ, APIBaseURL: ts.URL, APITimeout: 5 * time.Second,
		APIRate: c.apiRate, APIInstances: c.instances, MaxAttempts: 8, BackoffBase: time.Second, BackoffMax: time.Minute,
		FunctionName: "bench", BreakerThreshold: 5, ProbeInterval: c.probe, MinRequest: time.Second, Margin: c.margin}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = governor.DefaultProbeInterval
	}
	if c.scale > 1 {
		cfg.Hold = time.Duration(float64(governor.DefaultHold) / c.scale)
		cfg.ThrottleWindow = time.Duration(float64(governor.DefaultThrottleWindow) / c.scale)
	}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	r := &govResult{api: api, q: newSimQueue(c.orders), apiStart: apiStart}
	var store governor.Store = &governor.MemoryStore{}
	if os.Getenv("ORDERPIPE_BENCH_STORE") != "memory" {
		db := dynamodb.NewFromConfig(awstest.Config(b))
		table := awstest.Name(b, "govbench")
		if err := governor.CreateTable(context.Background(), db, table); err != nil {
			b.Fatal(err)
		}
		store = governor.NewDynamoStore(countingDynamo{db, r}, table, "")
	}
	log := slog.New(slog.NewTextHandler(&r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var wg sync.WaitGroup
	r.start = time.Now()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DialContext: orderapi.GateDial(func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return writeLoggedConn{conn, &r.writes}, nil
	})}}
	for i := range c.instances {
		client, err := orderapi.New(cfg.OrderAPI(), orderapi.Options{HTTPClient: hc})
		if err != nil {
			b.Fatal(err)
		}
		gcfg := cfg.Governor(cfg.APIRate)
		gcfg.Instance = "i" + strconv.Itoa(i)
		gov, err := governor.New(gcfg, store, nil)
		if err != nil {
			b.Fatal(err)
		}
		d := dispatch.New(cfg, r.q, client, dispatch.Options{Logger: log, Metrics: io.Discard, Governor: timedGovernor{gov, r}})
		wg.Go(func() {
			for {
				ev, ok := r.q.receive(context.Background())
				if !ok {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t0 := time.Now()
				resp, _ := d.Handle(ctx, ev)
				r.handlerNs.Add(time.Since(t0).Nanoseconds())
				cancel()
				r.q.done(ev.Records[0].MessageId, len(resp.BatchItemFailures) > 0)
			}
		})
	}
	wg.Wait()
	r.elapsed = time.Since(r.start)
	r.arrivals = api.Arrivals()
	return r
}

// report puts the common figures of a run.
func (r *govResult) report(b *testing.B, c govCase) {
	st := r.api.Stats()
	_, closer := apiserver.MinGap(r.arrivals, time.Duration(float64(time.Second)/c.apiRPS))
	first, last := r.arrivals[0].At, r.arrivals[len(r.arrivals)-1].At
	b.ReportMetric(100*float64(st.Accepted)/(1+last.Sub(first).Seconds()*c.apiRPS), "util%")
	b.ReportMetric(100*float64(st.Throttled)/float64(max(st.Requests, 1)), "429%")
	b.ReportMetric(float64(closer), "closer-than-1/rate")
	iv := time.Duration(float64(time.Second) / c.apiRPS)
	for i := 1; i < len(r.arrivals); i++ {
		if p, a := r.arrivals[i-1], r.arrivals[i]; a.At.Sub(p.At) < iv {
			wp, wa := r.writes.before(p.ID, p.At), r.writes.before(a.ID, a.At)
			for _, l := range strings.Split(r.log.String(), "\n") {
				if strings.Contains(l, "orderID="+p.ID+" ") || strings.Contains(l, "orderID="+a.ID+" ") {
					b.Logf("  %s", l)
				}
			}
			b.Logf("closer: %s then %s (status %d) %v apart at the API's host, %v as read, written %v apart; %s written %v before it arrived, read %v after",
				p.ID, a.ID, a.Status, a.At.Sub(p.At), a.Read.Sub(p.Read), wa.Sub(wp), a.ID, a.At.Sub(wa), a.Read.Sub(a.At))
		}
	}
	// The same arrivals as the stand-in's handlers got to them (its own scheduling delay
	// included, which a partner's API on its own hosts does not share with its clients).
	read := make([]apiserver.Arrival, len(r.arrivals))
	for i, a := range r.arrivals {
		read[i] = apiserver.Arrival{At: a.Read}
	}
	slices.SortFunc(read, func(x, y apiserver.Arrival) int { return x.At.Compare(y.At) })
	_, closerRead := apiserver.MinGap(read, time.Duration(float64(time.Second)/c.apiRPS))
	b.ReportMetric(float64(closerRead), "closer-as-read")
	b.ReportMetric(float64(st.Duplicates), "dupPUTs")
	b.ReportMetric(float64(r.q.parked), "parked")
	b.ReportMetric(float64(r.storeGets.Load())/float64(c.orders), "GetItem/order")
	b.ReportMetric(float64(r.storeSets.Load())/float64(c.orders), "UpdateItem/order")
	b.ReportMetric(float64(r.q.resends)/float64(c.orders), "resends/order")
	b.ReportMetric(float64(r.handlerNs.Load())/1e6/float64(c.orders), "billed-ms/order")
	b.ReportMetric(float64(r.reserveNs.Load())/1e6/float64(max(r.reserves.Load(), 1)), "reserve-ms/call")
	b.ReportMetric(float64(r.reportNs.Load())/1e6/float64(c.orders), "report-ms/order")
	b.ReportMetric(float64(r.retakes.Load())/float64(c.orders), "late-wakeups/order")
	b.ReportMetric(float64(r.advances.Load())/float64(c.orders), "one-write-slots/order")
	b.ReportMetric(float64(r.marginNs.Load())/1e6/float64(max(r.reserves.Load(), 1)), "margin-ms/slot")
	b.ReportMetric(float64(r.marginMax.Load())/1e6, "margin-ms-max")
	if late := r.lateness(); len(late) > 0 {
		b.ReportMetric(float64(late[len(late)/2])/1e3, "left-late-us-p50")
		b.ReportMetric(float64(late[len(late)*9/10])/1e3, "left-late-us-p90")
		b.ReportMetric(float64(late[len(late)*99/100])/1e3, "left-late-us-p99")
	}
	b.ReportMetric(loadAverage(), "load1")
	if st.Accepted+r.q.parked != c.orders {
		b.Errorf("accepted %d + parked %d, want %d orders", st.Accepted, r.q.parked, c.orders)
	}
}

// slotLine finds a sent order's slot start and write time (Unix µs) in its log line.
var slotLine = regexp.MustCompile(`slotAt=(\d+) slotLate=\d+ wrote=(\d+)`)

// lateness is, sorted, how long after its slot's start each request was written.
func (r *govResult) lateness() []time.Duration {
	var late []time.Duration
	for _, m := range slotLine.FindAllStringSubmatch(r.log.String(), -1) {
		at, _ := strconv.ParseInt(m[1], 10, 64)
		wrote, _ := strconv.ParseInt(m[2], 10, 64)
		late = append(late, time.Duration(wrote-at)*time.Microsecond)
	}
	slices.Sort(late)
	return late
}

// BenchmarkGovernorStrict: the real API's shape, a token bucket of 1, at 1 and 20 requests/s,
// with 2 and 4 instances sharing the governor. One op is the whole run (-benchtime 1x).
// ORDERPIPE_BENCH_ORDERS overrides the number of orders (default 120 at 1 rps, 400 at 20),
// ORDERPIPE_BENCH_MARGIN the governor's margin floor (GOVERNOR_MARGIN; default: its default, 5 ms
// at 20 rps and 20 ms at 1 rps).
func BenchmarkGovernorStrict(b *testing.B) {
	for _, rps := range []float64{1, 20} {
		for _, n := range []int{2, 4} {
			b.Run(fmt.Sprintf("rps=%v/instances=%d", rps, n), func(b *testing.B) {
				// Each instance adapts its margin to its own lateness above the floor
				// (GOVERNOR_MARGIN); the stand-in times arrivals by the kernel's receive
				// stamps, so its own scheduling delays on this shared host do not count.
				c := govCase{apiRPS: rps, apiBurst: 1, apiRate: rps, instances: n, latency: 50 * time.Millisecond, orders: benchOrders(rps)}
				if m, err := time.ParseDuration(os.Getenv("ORDERPIPE_BENCH_MARGIN")); err == nil {
					c.margin = m // 0: the default
				}
				for range b.N {
					runGoverned(b, c).report(b, c)
				}
			})
		}
	}
}

func benchOrders(rps float64) int {
	if v, err := strconv.Atoi(os.Getenv("ORDERPIPE_BENCH_ORDERS")); err == nil && v > 0 {
		return v
	}
	if rps >= 20 {
		return 400
	}
	return 120
}

// BenchmarkGovernorLimitBelowRate: API_RATE 2 against an API that allows 1 (bucket 1), with
// and without RateLimit headers; 429s in the first 60 s and over the run.
func BenchmarkGovernorLimitBelowRate(b *testing.B) {
	for _, headers := range []bool{false, true} {
		b.Run(fmt.Sprintf("headers=%v", headers), func(b *testing.B) {
			c := govCase{apiRPS: 1, apiBurst: 1, apiRate: 2, instances: 2, latency: 50 * time.Millisecond, orders: 90, headers: headers}
			for range b.N {
				r := runGoverned(b, c)
				r.report(b, c)
				var first60, thr60 int
				for _, a := range r.arrivals {
					if a.At.Sub(r.arrivals[0].At) < time.Minute {
						first60++
						if a.Status == 429 {
							thr60++
						}
					}
				}
				b.ReportMetric(100*float64(thr60)/float64(max(first60, 1)), "429%-first-60s")
			}
		})
	}
}

// BenchmarkGovernorOutage: a backlog of 500 and a scripted 30-minute outage (503), time-scaled
// by ORDERPIPE_BENCH_SCALE (default 10): the API allows scale requests/s for 1, the outage
// lasts 30 min / scale, the probe interval is 30 s / scale, the governor's hold a minute / scale
// and its throttle window 10 s / scale. SQS delays and Retry-After stay whole seconds (scale
// scaled seconds), so the larger the scale, the coarser the simulation. Reports the requests
// during the outage per probe interval, and the time from the end of the outage to the first
// delivery and to full rate, in scaled seconds (multiplied back by scale), parked orders and
// duplicates.
func BenchmarkGovernorOutage(b *testing.B) {
	scale := 10.0
	if v, err := strconv.ParseFloat(os.Getenv("ORDERPIPE_BENCH_SCALE"), 64); err == nil && v >= 1 {
		scale = v
	}
	scaled := func(d time.Duration) time.Duration { return time.Duration(float64(d) / scale) }
	from := 5 * time.Second
	to := from + scaled(30*time.Minute)
	c := govCase{apiRPS: scale, apiBurst: 1, apiRate: scale, instances: 4, latency: 10 * time.Millisecond, orders: 500,
		outages: []apiserver.Outage{{From: from, To: to, Status: 503}}, probe: scaled(30 * time.Second), scale: scale}
	if scale >= 10 {
		// At 10 requests/s and more the default margin (2 %: 2 ms) is below this shared
		// host's scheduling jitter: requests reach the stand-in early and draw 429s, whose
		// Retry-After (1 s at least) pauses everyone for scale scaled seconds.
		c.margin = 5 * time.Millisecond
	}
	for range b.N {
		r := runGoverned(b, c)
		r.report(b, c)
		apiStart := r.apiStart
		opened := from + 5*c.probe // the breaker is open by then
		var during int
		var firstOK time.Time
		var okAfter []time.Time
		for _, a := range r.arrivals {
			since := a.At.Sub(apiStart)
			if since >= opened && since < to {
				during++
			}
			if since >= to && a.Status == 200 {
				if firstOK.IsZero() {
					firstOK = a.At
				}
				okAfter = append(okAfter, a.At)
			}
		}
		b.ReportMetric(float64(during)/(float64(to-opened)/float64(c.probe)), "requests-per-probe-interval-open")
		b.ReportMetric(firstOK.Sub(apiStart.Add(to)).Seconds()*scale, "scaled-s-to-first-delivery")
		// Full rate: the first delivery from which deliveries run at >= 90 % of the API's rate
		// for the next second (scale scaled seconds), or the backlog ends.
		full := time.Duration(-1)
		for i := range okAfter {
			j := i
			for j < len(okAfter) && okAfter[j].Sub(okAfter[i]) < time.Second {
				j++
			}
			if float64(j-i) >= 0.9*c.apiRPS || j == len(okAfter) {
				full = okAfter[i].Sub(apiStart.Add(to))
				break
			}
		}
		b.ReportMetric(full.Seconds()*scale, "scaled-s-to-full-rate")
		if os.Getenv("ORDERPIPE_BENCH_TRACE") != "" {
			// Deliveries, 429s and other answers per scaled 10 s from a minute before recovery,
			// on stderr.
			step := scaled(10 * time.Second)
			for k := -6; k <= 12; k++ {
				var ok, thr, other int
				for _, a := range r.arrivals {
					if d := a.At.Sub(apiStart.Add(to)); d >= time.Duration(k)*step && d < time.Duration(k+1)*step {
						switch a.Status {
						case 200:
							ok++
						case 429:
							thr++
						default:
							other++
						}
					}
				}
				fmt.Fprintf(os.Stderr, "scaled s %+4d: %d delivered, %d 429, %d other\n", 10*k, ok, thr, other)
			}
		}
	}
}

// loadAverage is the host's one-minute load average at the end of a run: the figures depend
// on it.
func loadAverage() float64 {
	data, _ := os.ReadFile("/proc/loadavg")
	f, _ := strconv.ParseFloat(strings.Fields(string(data) + " 0")[0], 64)
	return f
}

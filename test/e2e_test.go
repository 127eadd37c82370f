package test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/syncbuf"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/dispatch/dispatchtest"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/local"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// The end-to-end tests run the whole pipeline as it is deployed, on moto, through the
// local.Pipeline that `orderpipe local` and `orderpipe demo` run: Provision makes the
// versioned bucket, SNS topic, files and orders queues and their DLQs from a validated
// pipeline.Settings; two local.Pollers play Lambda's event source mappings (files queue ->
// ingest, orders queue -> dispatch with batch size 1 and MaximumConcurrency 2, one Dispatcher
// per instance); the stand-in order API records what it accepted. Each test uploads files and
// then checks the ledger of every line: delivered (accepted once by the API), rejected (rejects
// object) or parked (orders DLQ, with its class), by exact order id and line number.

// The end-to-end tests run on a moto_server of their own, started by local.StartMotoIAM at the
// first test that needs it and stopped by TestMain. The shared stand-in at AWS_ENDPOINT_URL
// answers in 0.1 to 3 s a call while the other packages' tests load it, and a pipeline makes
// hundreds of calls with timeouts of a few seconds: the tests would measure the neighbours. It
// enforces IAM: the tests provision and observe as its administrator, and each function runs
// with the credentials of its own role (e2e_iam_test.go).
var e2eMoto struct {
	once     sync.Once
	endpoint string
	admin    aws.Credentials
	stop     func()
	err      error
}

func e2eEndpoint(t testing.TB) string {
	t.Helper()
	e2eMoto.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		e2eMoto.endpoint, e2eMoto.admin, e2eMoto.stop, e2eMoto.err = local.StartMotoIAM(ctx)
	})
	if e2eMoto.err != nil {
		t.Fatalf("end-to-end stand-in: %v", e2eMoto.err)
	}
	return e2eMoto.endpoint
}

// e2eAdmin is the configuration of the end-to-end stand-in's administrator.
func e2eAdmin(t testing.TB) aws.Config {
	t.Helper()
	return local.ClientConfig(e2eEndpoint(t), e2eMoto.admin)
}

// e2eParallel is how many of this package's parallel tests run at once on an idle machine,
// unless -parallel is given: most of their time is spent waiting for the pipeline (a
// visibility timeout, pacing), not computing, so running only GOMAXPROCS of them (go test's
// default) leaves an idle machine idle. On a busy machine (less than e2eIdleShare of the CPUs
// to spare, measured by spareCPU when the package starts) they compete for CPU with each other
// and their stand-in, whose slowness would outgrow what the tests stretch their deadlines by
// (e2eSlowness, at most 4 times): go test's default stays.
const (
	e2eParallel  = 4
	e2eIdleShare = 0.8
)

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	share := spareCPU(200 * time.Millisecond)
	if !given && share >= e2eIdleShare {
		if err := flag.Set("test.parallel", strconv.Itoa(e2eParallel)); err != nil {
			fmt.Fprintln(os.Stderr, "set -test.parallel:", err)
			os.Exit(2)
		}
	}
	if testing.Verbose() {
		fmt.Printf("test: %.0f%% of the CPUs to spare, -parallel %s\n", 100*share, flag.Lookup("test.parallel").Value)
	}
	// Every test runs (no -run): the end-to-end tests' template is synthesized while the tests
	// that need none run first, instead of by the first end-to-end test while the others wait.
	prefetch := flag.Lookup("test.run").Value.String() == ""
	if prefetch {
		go synthesizeE2E()
	}
	code := m.Run()
	if prefetch {
		synthesizeE2E() // the synthesis ends before the process does
	}
	if e2eMoto.stop != nil {
		e2eMoto.stop()
	}
	os.Exit(code)
}

// e2eSettings is a deployment that keeps every AWS rule of pipeline.Settings but with timeouts
// short enough that a retry takes a second and a redelivery after a crash well under a minute,
// times slow (e2eSlowness). The dispatch timeout must leave the order API client's 2 s margin
// plus a request. The files visibility, which a file's message waits out after a failure or a
// crash (and a busy copy as its delay), is twice the ingest timeout: ingest's heartbeat extends
// it every third of it.
func e2eSettings(slow time.Duration) pipeline.Settings {
	s := pipeline.Defaults()
	s.APIRate, s.Instances, s.ReservedConcurrency = 50, 2, 2
	s.IngestTimeout, s.FilesVisibility = slow*5*time.Second, slow*10*time.Second
	s.DispatchTimeout, s.OrdersVisibility = slow*4*time.Second, slow*24*time.Second
	s.MaxReceiveCount, s.MaxAttempts = 6, 4
	s.QueueRetention, s.DLQRetention = time.Hour, 2*time.Hour
	return s
}

// e2eIdleRoundTrip is about what awstest.RoundTrip measures of the end-to-end stand-in while the
// end-to-end tests run side by side on an otherwise idle two-core machine: the latency the
// pipeline's deadlines in these tests (function timeouts, visibility, API timeout, checkpoint
// margins) are written for.
const e2eIdleRoundTrip = 10 * time.Millisecond

// e2eSlowness is the whole factor by which a test stretches the pipeline's deadlines: how many
// times slower than e2eIdleRoundTrip the end-to-end stand-in answers when the test starts, from
// 1 to 4. A pipeline whose deadlines are shorter than the stand-in's pace on a busy machine
// would time out, retry and re-send: it would measure the machine, not the code.
func e2eSlowness(t testing.TB, c *sqs.Client) time.Duration {
	t.Helper()
	rtt := awstest.RoundTrip(t, c)
	f := min(max(time.Duration(math.Ceil(float64(rtt)/float64(e2eIdleRoundTrip))), 1), 4)
	if f > 1 {
		t.Logf("end-to-end stand-in round trip %v (about %v when idle): the pipeline's deadlines times %d", rtt.Round(time.Microsecond), e2eIdleRoundTrip, f)
	}
	return f
}

// e2eAPITimeout is ORDER_API_TIMEOUT: short so a hang costs little, long enough for a loaded
// machine to answer a healthy request.
const e2eAPITimeout = time.Second

// e2eOptions shape one pipeline.
type e2eOptions struct {
	plan    apiserver.Config // faults of the stand-in API; RPS 0: twice API_RATE, burst 4
	hangIDs []string         // never answered while the hang switch is on (see hangSwitch)
	apiRate float64          // API_RATE; 0 means e2eSettings' 50 requests/s
	timeout time.Duration    // ORDER_API_TIMEOUT; 0 means e2eAPITimeout
	// governor keeps the stack's GOVERNOR_TABLE (one schedule for both instances) with this
	// GOVERNOR_MARGIN; 0: each instance paces alone, as in most of these tests (below).
	governor time.Duration
	// ingest and dispatch wrap the handlers, to inject crashes; nil leaves them as they are.
	ingest, dispatch func(local.Handler) local.Handler
}

// e2ePipeline is one isolated pipeline: a local.Pipeline on its own resources, with its own
// stand-in API. The short fields name the Pipeline's.
type e2ePipeline struct {
	*local.Pipeline
	settings pipeline.Settings
	res      local.Resources
	s3       *s3.Client
	sqs      *sqs.Client
	api      *apiserver.Server
	hang     *hangSwitch
	files    *local.Poller
	orders   *local.Poller
	logs     *syncbuf.Buffer
	slow     time.Duration // e2eSlowness: multiplies every deadline of the pipeline
}

// newE2E provisions a pipeline and builds its handlers and pollers; start runs them.
func newE2E(t testing.TB, o e2eOptions) *e2ePipeline {
	t.Helper()
	slow := e2eSlowness(t, awstest.SQS(e2eAdmin(t)))
	settings := e2eSettings(slow)
	if o.apiRate > 0 {
		settings.APIRate = o.apiRate
	}
	plan := o.plan
	if plan.RPS == 0 {
		plan.RPS, plan.Burst = 2*settings.APIRate, 4 // never the limit: pacing is dispatch's job
	}
	api, err := apiserver.New(plan)
	if err != nil {
		t.Fatalf("stand-in API: %v", err)
	}
	p := &e2ePipeline{api: api, hang: newHangSwitch(api, o.hangIDs), logs: &syncbuf.Buffer{}, slow: slow}
	ts := httptest.NewServer(p.hang)
	t.Cleanup(func() {
		p.hang.clear() // let hung requests go before Close waits for them
		ts.Close()
	})
	apiTimeout := slow * e2eAPITimeout
	if o.timeout > 0 {
		apiTimeout = o.timeout
	}
	p.Pipeline, err = local.NewPipeline(context.Background(), local.Options{
		AWS: e2eAdmin(t), FunctionAWS: e2eFunctionAWS(t), Names: local.NamesFor(awstest.Name(t, "e2e")), APIBaseURL: ts.URL,
		// The synthesized stack's event source mappings and function environments, with the
		// timings (and retention, budget) of settings: seconds instead of minutes.
		Template: e2eStackTemplate(t), Retime: func(s *pipeline.Settings) { *s = settings },
		// One process: no clock skew between invocations for the lease's slack to cover, so a
		// claim whose release failed is free a moment after its invocation's deadline.
		Ingest: func(c *ingest.Config) { c.CheckpointMargin, c.LeaseSlack = slow*2*time.Second, slow*time.Second },
		Dispatch: func(c *dispatch.Config) {
			c.APITimeout, c.BackoffBase, c.BackoffMax = apiTimeout, time.Second, time.Second
			// These tests are about each order's fate, not flow control: each instance paces
			// alone (no governor table), so the functions' 4 s deadlines are not spent on the
			// shared stand-in's DynamoDB under the other packages' load, and a breaker opened by
			// per-order faults does not hold every order. The governor is tested in
			// pkg/governor, pkg/dispatch (benchmarks against the stand-in API), pkg/local and,
			// end to end, TestE2EGovernedStrictAPI (e2eOptions.governor).
			if o.governor > 0 {
				c.Margin = o.governor
				return
			}
			c.GovernorTable, c.BreakerThreshold = "", 1000
		},
		Logger: slog.New(slog.NewTextHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	p.settings, p.res, p.s3, p.sqs, p.files, p.orders = p.Settings, p.Resources, p.S3, p.SQS, p.Files, p.Orders
	if o.ingest != nil {
		p.files.Handler = o.ingest(p.files.Handler)
	}
	if o.dispatch != nil {
		p.orders.Handler = o.dispatch(p.orders.Handler)
	}
	return p
}

// start runs both pollers until the test ends; on failure the handlers' logs are printed.
func (p *e2ePipeline) start(t testing.TB) {
	t.Helper()
	p.Start(context.Background())
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("pipeline: %v", err)
		}
		if t.Failed() {
			t.Logf("files poller %+v\norders poller %+v\nlast handler logs:\n%s", p.files.Stats(), p.orders.Stats(), p.logs.Tail(16<<10))
		}
	})
}

// upload puts an object under uploads/ and returns its version id.
func (p *e2ePipeline) upload(t testing.TB, key string, body []byte) string {
	t.Helper()
	out, err := p.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &p.res.Bucket, Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("upload %s: %v", key, err)
	}
	return aws.ToString(out.VersionId)
}

// exists reports whether the bucket holds key.
func (p *e2ePipeline) exists(t testing.TB, key string) bool {
	t.Helper()
	_, err := p.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &p.res.Bucket, Key: &key})
	var nf *s3types.NotFound
	if errors.As(err, &nf) {
		return false
	}
	if err != nil {
		t.Fatalf("head %s: %v", key, err)
	}
	return true
}

// bucketObjects reads reports and rejects with the ingest tests' helpers.
func (p *e2ePipeline) bucketObjects() *ingestEnv { return &ingestEnv{s3: p.s3, bucket: p.res.Bucket} }

// settle waits until the pipeline is quiescent: a report for every file and the files and orders
// queues empty (nothing visible, in flight or delayed) on two readings in a row. Ingest writes a
// report after sending the file's orders and before its message is deleted, and dispatch parks
// an order before its message is deleted, so nothing can happen after that.
//
// It waits as long as the pipeline moves (a request to the API, an invocation, a change in what
// is missing), and gives up when nothing moved for timeout, stretched by how slow the stand-in
// answers (awstest.Scale), or after awstest.MaxScale times timeout in all: a busy machine makes
// the pipeline slower, not the test failed. It then reports what is still missing and returns
// false; the ledger shows what is unaccounted.
func (p *e2ePipeline) settle(t testing.TB, timeout time.Duration, files []*e2eFile) bool {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	stall, limit := awstest.Scale(t, p.sqs, timeout), awstest.MaxScale*timeout
	moved, last := start, ""
	for quiet := 0; quiet < 2; {
		var missing []string
		for _, f := range files {
			if !p.exists(t, "reports/"+f.key+".json") {
				missing = append(missing, "report of "+f.key)
			}
		}
		for _, q := range []struct{ name, url string }{{"files queue", p.res.FilesQueueURL}, {"orders queue", p.res.OrdersQueueURL}} {
			n, err := queueDepth(ctx, p.sqs, q.url)
			if err != nil {
				t.Fatalf("settle: %v", err)
			}
			if n > 0 {
				missing = append(missing, fmt.Sprintf("%s holds %d messages", q.name, n))
			}
		}
		if quiet = quiet + 1; len(missing) > 0 {
			quiet = 0
		}
		now := time.Now()
		state := fmt.Sprint(missing, p.api.Stats().Requests, p.files.Stats().Invocations, p.orders.Stats().Invocations)
		if state != last {
			moved, last = now, state
		}
		if now.Sub(moved) > stall || now.Sub(start) > limit {
			t.Errorf("pipeline not quiescent after %v (nothing moved for %v): %s; stand-in API %+v",
				now.Sub(start).Round(time.Second), now.Sub(moved).Round(time.Second), strings.Join(missing, "; "), p.api.Stats())
			return false
		}
		time.Sleep(300 * time.Millisecond)
	}
	return true
}

// e2eFile is one uploaded file and what must become of each of its lines.
type e2eFile struct {
	key      string
	body     []byte           // as uploaded
	ids      map[int64]string // line -> order id of every valid line
	rejects  map[int64]string // line -> reason of every rejected line
	version  string           // S3 version id, set by upload
	ingested string           // the version ingest recorded in its report, set by ledger
	// A file ingest refuses: the reason its report gives (a part of it), the lines that can be
	// read from the file before its fault (text; nil means the whole file) and which are all
	// unread.
	refused string
	text    []byte
}

func (f *e2eFile) csv() bool { return strings.Contains(f.key, ".csv") }

// plain is the file's content, uncompressed.
func (f *e2eFile) plain(t testing.TB) []byte {
	t.Helper()
	if f.text != nil {
		return f.text
	}
	if !strings.HasSuffix(f.key, ".gz") {
		return f.body
	}
	r, err := gzip.NewReader(bytes.NewReader(f.body))
	if err != nil {
		t.Fatalf("gunzip %s: %v", f.key, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("gunzip %s: %v", f.key, err)
	}
	return b
}

// lines counts the file's lines that are not blank (spaces, tabs, CR only), the CSV header
// aside: each must end delivered, rejected or parked.
func (f *e2eFile) lines(t testing.TB) int {
	t.Helper()
	n := 0
	for line := range bytes.Lines(f.plain(t)) {
		if len(bytes.Trim(line, " \t\r\n")) > 0 {
			n++
		}
	}
	if f.csv() && n > 0 {
		n-- // the header
	}
	return n
}

// ledger is, for every file key and line, what became of it: "delivered ID", "rejected REASON"
// or "parked CLASS ID"; a line accounted twice shows both, joined by " + ".
type ledger map[string]map[int64]string

func (l ledger) add(key string, line int64, what string) {
	if l[key] == nil {
		l[key] = map[int64]string{}
	}
	if prev, ok := l[key][line]; ok {
		what = prev + " + " + what
	}
	l[key][line] = what
}

// wantLedger is the expected ledger: valid lines are delivered unless parked names their id's class.
func wantLedger(files []*e2eFile, parked map[string]string) ledger {
	l := ledger{}
	for _, f := range files {
		for line, id := range f.ids {
			if class, ok := parked[id]; ok {
				l.add(f.key, line, "parked "+class+" "+id)
			} else {
				l.add(f.key, line, "delivered "+id)
			}
		}
		for line, reason := range f.rejects {
			l.add(f.key, line, "rejected "+reason)
		}
	}
	return l
}

// parkedOrder is one message on the orders DLQ.
type parkedOrder struct {
	id, class, detail, source, version string
	line, attempts                     int64
}

// ledger reads what the pipeline did: the API's accepted orders, the rejects objects and the
// orders DLQ (peeked and released, so a redrive still finds every message). It also checks what
// the ledger cannot show: no order accepted twice or unknown to the files, delivered bodies equal
// to the lines, reports that add up, and parked messages that name their file's version.
func (p *e2ePipeline) ledger(t *testing.T, files []*e2eFile) (ledger, []parkedOrder) {
	t.Helper()
	got := ledger{}
	where := map[string]*e2eFile{}
	lineOf := map[string]int64{}
	for _, f := range files {
		for line, id := range f.ids {
			where[id], lineOf[id] = f, line
		}
	}
	accepted := p.api.Orders()
	for _, id := range slices.Sorted(maps.Keys(accepted)) {
		rec, f := accepted[id], where[id]
		if f == nil {
			t.Errorf("the API accepted %s, which is no valid line of any file", id)
			continue
		}
		got.add(f.key, lineOf[id], "delivered "+id)
		if rec.Count != 1 {
			t.Errorf("the API accepted %s %d times, want exactly once", id, rec.Count)
		}
		if !f.csv() {
			if line := lineText(f.plain(t), lineOf[id]); string(rec.Body) != line {
				t.Errorf("%s: delivered body %s, want the line as in the file %s", id, rec.Body, line)
			}
		}
	}
	objs := p.bucketObjects()
	for _, f := range files {
		rejects := objs.rejects(t, f.key)
		for _, r := range rejects {
			got.add(f.key, r.Line, "rejected "+r.Reason)
		}
		b, ok := objs.object(t, "reports/"+f.key+".json")
		var rep ingest.Report
		if err := json.Unmarshal(b, &rep); !ok || err != nil {
			t.Errorf("%s: no report (%v)", f.key, err)
			continue
		}
		var unread int64
		if f.refused != "" {
			unread = int64(f.lines(t))
			if !strings.Contains(rep.Refused, f.refused) {
				t.Errorf("%s report: refused %q, want %q", f.key, rep.Refused, f.refused)
			}
		}
		if rep.Lines != int64(len(f.ids)+len(f.rejects))+unread || rep.Enqueued != int64(len(f.ids)) || rep.Rejected != int64(len(rejects)) || rep.Unread != unread {
			t.Errorf("%s report: lines %d enqueued %d rejected %d unread %d, want %d = %d + %d + %d", f.key, rep.Lines, rep.Enqueued, rep.Rejected, rep.Unread,
				int64(len(f.ids)+len(f.rejects))+unread, len(f.ids), len(f.rejects), unread)
		}
		// moto 5.2.1 leaves versionId out of S3 event notifications, so ingest (which takes the
		// version from the event) records "null" for the versioned bucket; real S3 sends it.
		if rep.Version != f.version && rep.Version != order.NullVersion {
			t.Errorf("%s report version %q, want the upload's %q (or %q when the event carries none)", f.key, rep.Version, f.version, order.NullVersion)
		}
		f.ingested = rep.Version
	}
	parked := p.peekDLQ(t)
	for _, m := range parked {
		key, ok := strings.CutPrefix(m.source, "s3://"+p.res.Bucket+"/")
		if !ok || where[m.id] == nil || where[m.id].key != key {
			t.Errorf("parked %s with source %s: not from the file holding that id", m.id, m.source)
		}
		if f := where[m.id]; f != nil && m.version != f.ingested {
			t.Errorf("parked %s with source version %q, want %q as in the report", m.id, m.version, f.ingested)
		}
		got.add(key, m.line, "parked "+m.class+" "+m.id)
	}
	return got, parked
}

// checkLedger compares the pipeline's ledger with the expected one and prints a readable diff;
// it returns the parked orders by id.
func (p *e2ePipeline) checkLedger(t *testing.T, files []*e2eFile, parkedClass map[string]string) map[string]parkedOrder {
	t.Helper()
	got, parked := p.ledger(t, files)
	if diff := cmp.Diff(wantLedger(files, parkedClass), got); diff != "" {
		t.Errorf("ledger by file and line (-want +got):\n%s", diff)
	}
	for _, f := range files {
		count := map[string]int{}
		for _, what := range got[f.key] {
			kind, _, _ := strings.Cut(what, " ")
			count[kind]++
		}
		unread := 0
		if f.refused != "" {
			unread = f.lines(t) // checked against the report's unread by ledger
		}
		if lines := f.lines(t); count["delivered"]+count["rejected"]+count["parked"]+unread != lines {
			t.Errorf("%s: %d non-blank lines, but delivered %d + rejected %d + parked %d + unread %d", f.key, lines, count["delivered"], count["rejected"], count["parked"], unread)
		}
	}
	byID := map[string]parkedOrder{}
	for _, m := range parked {
		if _, dup := byID[m.id]; dup {
			t.Errorf("order %s parked twice", m.id)
		}
		byID[m.id] = m
	}
	return byID
}

// peekDLQ returns every message on the orders DLQ and makes them visible again.
func (p *e2ePipeline) peekDLQ(t *testing.T) []parkedOrder {
	t.Helper()
	ctx := context.Background()
	var got []parkedOrder
	var held []sqstypes.ChangeMessageVisibilityBatchRequestEntry
	seen := map[string]bool{}
	for {
		out, err := p.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &p.res.OrdersDLQURL, MaxNumberOfMessages: 10, VisibilityTimeout: 30, MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatalf("peek orders DLQ: %v", err)
		}
		fresh := 0
		for _, m := range out.Messages {
			held = append(held, sqstypes.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(len(held))), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
			})
			if seen[aws.ToString(m.MessageId)] {
				continue
			}
			seen[aws.ToString(m.MessageId)], fresh = true, fresh+1
			num := func(name string) int64 { n, _ := strconv.ParseInt(dispatchtest.Attr(m, name), 10, 64); return n }
			got = append(got, parkedOrder{
				id: dispatchtest.Attr(m, order.AttrOrderID), class: dispatchtest.Attr(m, order.AttrFailureClass),
				detail: dispatchtest.Attr(m, order.AttrFailureDetail), source: dispatchtest.Attr(m, order.AttrSource),
				version: dispatchtest.Attr(m, order.AttrSourceVersion), line: num(order.AttrLine), attempts: num(order.AttrAttempts),
			})
		}
		if fresh == 0 {
			break
		}
	}
	for chunk := range slices.Chunk(held, 10) {
		if _, err := p.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &p.res.OrdersDLQURL, Entries: chunk}); err != nil {
			t.Fatalf("release orders DLQ messages: %v", err)
		}
	}
	return got
}

// lineText is line n (1-based) of text without its line end.
func lineText(text []byte, n int64) string {
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for i := int64(1); sc.Scan(); i++ {
		if i == n {
			return strings.TrimSuffix(sc.Text(), "\r")
		}
	}
	return ""
}

func e2eFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "e2e", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// numbered returns the ids of a fixture whose every line is a valid order, by line.
func numbered(prefix string, n int) map[int64]string {
	ids := map[int64]string{}
	for i := 1; i <= n; i++ {
		ids[int64(i)] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return ids
}

// TestE2ELedger uploads a JSON Lines file with every kind of bad line (malformed JSON, no id,
// bad id, duplicate id, not an object, blank lines, a 300 KiB line), a CSV file with bad rows
// and a gzip file, and checks that every non-blank line is delivered exactly once, rejected with
// its reason, or parked with its class (an order the API refuses), and nothing else.
func TestE2ELedger(t *testing.T) {
	t.Parallel()
	jsonl := e2eFixture(t, "orders.jsonl")
	n := int64(bytes.Count(jsonl, []byte("\n")))
	long := `{"id":"j-long","pad":"` + strings.Repeat("x", 300<<10) + `"}`
	jsonl = append(jsonl, long+"\n"+`{"id":"j-06","amount":"6.00"}`+"\n"...)
	gz := e2eFixture(t, "batch.ndjson")
	files := []*e2eFile{
		{key: "uploads/2026/orders.jsonl", body: jsonl,
			ids: map[int64]string{1: "j-01", 2: "j-02", 8: "j-04", 12: "j-05", n + 2: "j-06"},
			rejects: map[int64]string{
				4: order.ReasonInvalidJSON, 5: order.ReasonMissingID, 6: order.ReasonInvalidID, 7: ingest.ReasonDuplicateID,
				11: order.ReasonNotObject, n + 1: fmt.Sprintf("line longer than %d bytes", ingest.DefaultMaxLineBytes),
			}},
		{key: "uploads/2026/orders.csv", body: e2eFixture(t, "orders.csv"),
			ids:     map[int64]string{2: "c-01", 3: "c-02", 6: "c-04", 8: "c-05"},
			rejects: map[int64]string{4: order.ReasonFieldCount, 5: order.ReasonMissingID}},
		{key: "uploads/2026/batch.ndjson.gz", body: gzipped(t, gz),
			ids:     map[int64]string{1: "g-01", 2: "g-02", 3: "g-03", 4: "g-04", 6: "g-05", 8: "g-06", 9: "g-07"},
			rejects: map[int64]string{5: ingest.ReasonDuplicateID, 7: order.ReasonIDNotString}},
	}
	parked := map[string]string{"j-04": order.ClassPermanent, "g-05": order.ClassPermanent}
	p := newE2E(t, e2eOptions{plan: apiserver.Config{RejectIDs: []string{"j-04", "g-05"}, FailIDs: []string{"c-02"}}})
	p.start(t)
	for _, f := range files {
		f.version = p.upload(t, f.key, f.body)
	}
	p.settle(t, 60*time.Second, files)
	got := p.checkLedger(t, files, parked)
	for _, id := range []string{"j-04", "g-05"} {
		if m := got[id]; !strings.HasPrefix(m.detail, "HTTP 422") || m.attempts != 1 {
			t.Errorf("parked %s: detail %q after %d attempts, want HTTP 422 at the first attempt", id, m.detail, m.attempts)
		}
	}
	if st := p.api.Stats(); st.ServerErrors != 1 || st.Duplicates != 0 {
		t.Errorf("stand-in: %d 5xx and %d duplicate deliveries, want 1 (c-02 once) and 0", st.ServerErrors, st.Duplicates)
	}
}

package test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/local"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
	"github.com/orderpipe/orderpipe/pkg/redrive"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// The dead-letter tests follow a message that no handler can finish to the dead-letter queue
// the source queue's own redrive policy moves it to, after maxReceiveCount receives. That takes
// maxReceiveCount visibility timeouts, so these tests first retune the pipeline newE2E made to
// the shortest deployment pipeline.Settings accepts for the queue in question (function
// timeout 1 s, visibility 6 s, maxReceiveCount 5): about 30 s instead of minutes.

// retune provisions p's resources again with s (Provision validates s and sets the queues'
// visibility timeouts and redrive policies to match) and gives the pollers s's function
// timeouts. Call it before start.
func (p *e2ePipeline) retune(t *testing.T, s pipeline.Settings) {
	t.Helper()
	prefix, ok := strings.CutSuffix(p.res.Bucket, "-uploads")
	if !ok {
		t.Fatalf("bucket %s: not named by local.NamesFor", p.res.Bucket)
	}
	res, err := local.Provision(context.Background(), e2eAdmin(t), s, local.NamesFor(prefix))
	if err != nil {
		t.Fatalf("provision again: %v", err)
	}
	if res != p.res {
		t.Fatalf("provisioning again gave other resources:\n%s", cmp.Diff(p.res, res))
	}
	p.settings, p.Settings = s, s
	p.IngestConfig.FilesVisibility = s.FilesVisibility // for handlers made after this
	p.files.FunctionTimeout, p.orders.FunctionTimeout = s.IngestTimeout, s.DispatchTimeout
}

// shortDeadlineDispatch returns a dispatch handler for a function timeout of about a second: its
// order API client keeps margin (not orderapi.DefaultMargin, 2 s, which would leave no time at
// all before such a deadline) and a request needs at least margin too. It reaches the same
// stand-in API as the pipeline's own dispatch. One Dispatcher serves both instances (it is safe
// for concurrent use; sharing its limiter only halves the pace).
func (p *e2ePipeline) shortDeadlineDispatch(t *testing.T, margin time.Duration) local.Handler {
	t.Helper()
	ts := httptest.NewServer(p.hang)
	t.Cleanup(ts.Close) // after the pollers have stopped: start registers its cleanup later
	cfg := p.res.DispatchConfig(p.settings, ts.URL)
	cfg.APITimeout, cfg.BackoffBase, cfg.BackoffMax, cfg.MinRequest = 2*margin, time.Second, time.Second, margin
	// The faults here are per order: a breaker opened by them would hold every order
	// (pkg/governor; the breaker is tested there and in pkg/dispatch).
	cfg.BreakerThreshold = 1000
	if err := cfg.Validate(); err != nil {
		t.Fatalf("dispatch config: %v", err)
	}
	ac := cfg.OrderAPI()
	ac.Margin = margin
	api, err := orderapi.New(ac, orderapi.Options{})
	if err != nil {
		t.Fatalf("order API client: %v", err)
	}
	log := slog.New(slog.NewTextHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return dispatch.New(cfg, p.DispatchSQS, api, dispatch.Options{Logger: log, Metrics: io.Discard}).Handle
}

// orderID is the OrderId attribute of an order message, "" without one.
func orderID(m events.SQSMessage) string {
	if a, ok := m.MessageAttributes[order.AttrOrderID]; ok {
		return aws.ToString(a.StringValue)
	}
	return ""
}

// receiveCounts are the receive counts of calls recorded by seen ("messageID@count").
func receiveCounts(calls []string) []string {
	out := []string{}
	for _, c := range calls {
		_, n, _ := strings.Cut(c, "@")
		out = append(out, n)
	}
	return out
}

// countsUpTo is the receive counts of a message received n times: "1" to n.
func countsUpTo(n int) []string {
	out := []string{}
	for i := 1; i <= n; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

// noClass is how peekDLQ (which reads the FailureClass attribute as it is) shows a message the
// queue's redrive policy parked: it has no FailureClass; pkg/redrive and `dlq ls` call it unknown.
const noClass = ""

// TestE2ECrashLoopToDLQ crashes dispatch on every invocation for one order: the orders queue's
// redrive policy moves that message to the orders DLQ after maxReceiveCount receives, with no
// parking attributes, where pkg/redrive sees it as class unknown while every other order of the
// file is delivered. Then the handler is fixed and the unknown class is redriven: the order is
// delivered exactly once, and the ledger balances at both steps.
func TestE2ECrashLoopToDLQ(t *testing.T) {
	t.Parallel()
	const key, crashID, crashLine = "uploads/crashloop.jsonl", "x-04", 4
	p := newE2E(t, e2eOptions{})
	s := p.settings
	// Each of the maxReceiveCount crashes waits out the visibility (six times the function
	// timeout): 2 s of function timeout are ample for the healthy orders here, however slow the
	// stand-in (its slowness, up to 4, made this test take 2 minutes).
	slow := min(p.slow, 2)
	s.DispatchTimeout, s.OrdersVisibility = slow*time.Second, slow*6*time.Second
	s.MaxReceiveCount, s.MaxAttempts = 5, 4
	p.retune(t, s)
	dispatchH := p.shortDeadlineDispatch(t, slow*300*time.Millisecond)
	var fixed atomic.Bool
	var crashCalls seen
	p.orders.Handler = func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		for _, m := range ev.Records {
			if orderID(m) == crashID {
				crashCalls.add(m)
				if !fixed.Load() {
					panic("injected crash on every invocation for " + crashID)
				}
			}
		}
		return dispatchH(ctx, ev)
	}
	p.start(t)
	f := &e2eFile{key: key, body: e2eFixture(t, "crash.jsonl"), ids: numbered("x", 10)}
	f.version = p.upload(t, key, f.body)
	files := []*e2eFile{f}

	// Step 1: the crashing order ends on the DLQ by the queue's redrive policy alone.
	p.settle(t, 60*time.Second, files)
	parked := p.checkLedger(t, files, map[string]string{crashID: noClass})
	if m := parked[crashID]; m.detail != "" || m.attempts != 0 {
		t.Errorf("parked %s: detail %q, attempts %d; want neither (dispatch never parked it)", crashID, m.detail, m.attempts)
	}
	want := countsUpTo(s.MaxReceiveCount) // one receive per crash
	if diff := cmp.Diff(want, receiveCounts(crashCalls.get())); diff != "" {
		t.Errorf("receive counts of %s's message before it was parked (-want +got):\n%s", crashID, diff)
	}
	if got := p.orders.Stats().Crashes; got != int64(s.MaxReceiveCount) {
		t.Errorf("dispatch crashes = %d, want maxReceiveCount %d", got, s.MaxReceiveCount)
	}
	r := redrive.New(redrive.Config{QueueURL: p.res.OrdersQueueURL, DLQURL: p.res.OrdersDLQURL, ScanVisibility: 30 * time.Second}, e2eRedriveSQS(t, p.res), redrive.Options{Journal: e2eRedriveJournal(t, p.res)})
	dry, err := r.Run(context.Background(), redrive.Request{Class: redrive.Classes{order.ClassUnknown}, DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	for i := range dry.Listing {
		dry.Listing[i].MessageID = "" // new to each message
	}
	wantListing := []redrive.Entry{{OrderID: crashID, Class: order.ClassUnknown, Source: "s3://" + p.res.Bucket + "/" + key, SourceVersion: f.ingested, Line: crashLine}}
	if diff := cmp.Diff(wantListing, dry.Listing); diff != "" {
		t.Errorf("redrive dry run of class unknown, listing (-want +got):\n%s", diff)
	}
	if st := p.api.Stats(); st.Deliveries != len(f.ids)-1 || st.Duplicates != 0 {
		t.Errorf("stand-in after the crash loop: %d deliveries, %d duplicates; want %d, 0", st.Deliveries, st.Duplicates, len(f.ids)-1)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Step 2: the handler is fixed; the unknown class is redriven and delivered once.
	fixed.Store(true)
	res := p.redrive(t, order.ClassUnknown)
	if res.Moved != 1 || res.Failed != 0 || res.DeleteFailed != 0 || res.ByClass[order.ClassUnknown].Moved != 1 {
		t.Errorf("redrive moved %d (unknown: %d) failed %d deleteFailed %d; want 1 (1) 0 0", res.Moved, res.ByClass[order.ClassUnknown].Moved, res.Failed, res.DeleteFailed)
	}
	p.settle(t, 30*time.Second, files)
	p.checkLedger(t, files, nil)
	if diff := cmp.Diff(append(want, "1"), receiveCounts(crashCalls.get())); diff != "" {
		t.Errorf("receive counts of %s's messages, after the redrive (-want +got):\n%s", crashID, diff)
	}
	if st := p.api.Stats(); st.Deliveries != len(f.ids) || st.Duplicates != 0 {
		t.Errorf("stand-in after the redrive: %d deliveries, %d duplicates; want %d, 0", st.Deliveries, st.Duplicates, len(f.ids))
	}
}

// ingestHandler returns an ingest handler like the pipeline's own but with CHECKPOINT_MARGIN
// margin (the pipeline's 2 s would leave nothing of a 1 s function timeout).
func (p *e2ePipeline) ingestHandler(t *testing.T, margin time.Duration) local.Handler {
	t.Helper()
	cfg := p.IngestConfig
	cfg.CheckpointMargin = margin
	if err := cfg.Validate(); err != nil {
		t.Fatalf("ingest config: %v", err)
	}
	return ingest.New(cfg, p.IngestS3, p.IngestSQS, ingest.Options{}).Handle
}

// pacedBatches is an ingest queue whose SendMessageBatch calls wait for the limiter.
type pacedBatches struct {
	ingest.Queue
	lim *rate.Limiter
}

func (q pacedBatches) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	if err := q.lim.Wait(ctx); err != nil {
		return nil, err
	}
	return q.Queue.SendMessageBatch(ctx, in, o...)
}

// names reports whether a files-queue message body names key.
func names(body, key string) bool {
	msg, err := s3event.Decode(body)
	if err != nil {
		return false
	}
	if c := msg.Continuation; c != nil {
		return c.Key == key
	}
	for _, r := range msg.Records {
		if r.Key == key {
			return true
		}
	}
	return false
}

// drainFilesDLQ receives every message on the files DLQ (until a receive comes back empty) and
// returns their bodies; they stay invisible for the rest of the test.
func (p *e2ePipeline) drainFilesDLQ(t *testing.T) []string {
	t.Helper()
	var bodies []string
	for {
		out, err := p.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: &p.res.FilesDLQURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 300,
		})
		if err != nil {
			t.Fatalf("receive files DLQ: %v", err)
		}
		if len(out.Messages) == 0 {
			return bodies
		}
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
		}
	}
}

// TestE2EFilesDLQ deletes one uploaded file before ingest can read it (its notification is
// already on the files queue): every try fails, and the files queue's redrive policy moves the
// notification to the files DLQ after maxReceiveCount receives, still naming the bucket and key
// so an operator can act. The other files of the same period are ingested and delivered, and
// nothing of the deleted file reaches the orders queue.
func TestE2EFilesDLQ(t *testing.T) {
	t.Parallel()
	const gone = "uploads/2026/gone.jsonl"
	p := newE2E(t, e2eOptions{})
	s := p.settings
	s.IngestTimeout, s.FilesVisibility = p.slow*time.Second, p.slow*6*time.Second
	s.MaxReceiveCount, s.MaxAttempts = 5, 4
	p.retune(t, s)
	ingestH := p.ingestHandler(t, p.slow*300*time.Millisecond)
	var goneCalls seen
	p.files.Handler = func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		for _, m := range ev.Records {
			if names(m.Body, gone) {
				goneCalls.add(m)
			}
		}
		return ingestH(ctx, ev)
	}
	files := []*e2eFile{
		{key: "uploads/2026/dup.jsonl", body: e2eFixture(t, "dup.jsonl"), ids: numbered("d", 8)},
		{key: "uploads/2026/orders.csv", body: e2eFixture(t, "orders.csv"),
			ids:     map[int64]string{2: "c-01", 3: "c-02", 6: "c-04", 8: "c-05"},
			rejects: map[int64]string{4: order.ReasonFieldCount, 5: order.ReasonMissingID}},
	}
	for _, f := range files {
		f.version = p.upload(t, f.key, f.body)
	}
	p.upload(t, gone, e2eFixture(t, "faults.jsonl"))
	if _, err := p.s3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &p.res.Bucket, Key: aws.String(gone)}); err != nil {
		t.Fatalf("delete %s: %v", gone, err)
	}
	p.start(t)

	p.settle(t, 60*time.Second, files) // the files queue is empty once the notification is parked
	p.checkLedger(t, files, nil)
	if p.exists(t, "reports/"+gone+".json") {
		t.Errorf("report of the deleted %s written, want none", gone)
	}
	if diff := cmp.Diff(countsUpTo(s.MaxReceiveCount), receiveCounts(goneCalls.get())); diff != "" {
		t.Errorf("receive counts of %s's notification (-want +got):\n%s", gone, diff)
	}
	if got := p.files.Stats().ItemFailures; got != int64(s.MaxReceiveCount) {
		t.Errorf("ingest item failures = %d, want maxReceiveCount %d", got, s.MaxReceiveCount)
	}

	type named struct{ Bucket, Key string }
	var got []named
	for _, body := range p.drainFilesDLQ(t) {
		msg, err := s3event.Decode(body)
		if err != nil {
			t.Errorf("files DLQ message %q: %v", body, err)
			continue
		}
		for _, r := range msg.Records {
			if !r.Created() {
				t.Errorf("files DLQ record %+v: want an ObjectCreated event", r)
			}
			got = append(got, named{r.Bucket, r.Key})
		}
	}
	if diff := cmp.Diff([]named{{p.res.Bucket, gone}}, got); diff != "" {
		t.Errorf("objects named on the files DLQ (-want +got):\n%s", diff)
	}
	if st := p.api.Stats(); st.Deliveries != 12 || st.Duplicates != 0 {
		t.Errorf("stand-in: %d deliveries, %d duplicates; want 12 (8 + 4, none of %s), 0", st.Deliveries, st.Duplicates, gone)
	}
}

// TestE2EIngestCheckpoint ingests a file of 200 orders through the files poller with a short
// ingest timeout (6 s) and a CHECKPOINT_MARGIN that leaves each invocation 1 s of work before it
// must checkpoint and hand over, while ingest sends one SendMessageBatch at a time, paced at 3 a
// second (the work and the pace both times the test's slowness, e2eSlowness): an invocation
// enqueues about 30 orders and never more than 70 (the batches in flight at the checkpoint time
// are flushed), so the file needs at least three invocations, more when the stand-in cannot
// keep the pace. The margin is wide because the hand-over (flush the batches in flight, save
// rejects, id set and state, send the continuation) takes seconds on a busy moto. No
// invocation may fail or be killed at its deadline, every valid line is delivered exactly once,
// a duplicate id far from its first use is still found (the id set carries over), the rejects
// of every invocation are in the rejects object, and the ledger balances.
func TestE2EIngestCheckpoint(t *testing.T) {
	t.Parallel()
	const key, n, minContinuations = "uploads/big.jsonl", 200, 2
	p := newE2E(t, e2eOptions{apiRate: 400})
	s := p.settings
	s.IngestTimeout, s.FilesVisibility = p.slow*6*time.Second, p.slow*12*time.Second
	p.retune(t, s)
	cfg := p.IngestConfig
	cfg.CheckpointMargin, cfg.SendConcurrency = s.IngestTimeout-p.slow*time.Second, 1
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	paced := pacedBatches{p.IngestSQS, rate.NewLimiter(rate.Limit(3/float64(p.slow)), 1)}
	p.files.Handler = ingest.New(cfg, p.IngestS3, paced, ingest.Options{}).Handle
	p.start(t)

	f := &e2eFile{key: key, ids: map[int64]string{}, rejects: map[int64]string{
		80: order.ReasonInvalidJSON, 180: ingest.ReasonDuplicateID, n - 1: order.ReasonMissingID,
	}}
	for line := int64(1); line <= n; line++ {
		id := fmt.Sprintf("k-%04d", line)
		switch line {
		case 80:
			f.body = append(f.body, `{"id":"k-0080","amount":`+"\n"...)
		case 180:
			f.body = fmt.Appendf(f.body, `{"id":"k-0010","amount":"%d.50"}`+"\n", line) // line 10's id
		case n - 1:
			f.body = fmt.Appendf(f.body, `{"amount":"%d.50"}`+"\n", line)
		default:
			f.ids[line] = id
			f.body = fmt.Appendf(f.body, `{"id":%q,"amount":"%d.50"}`+"\n", id, line)
		}
	}
	f.version = p.upload(t, key, f.body)
	files := []*e2eFile{f}
	// The stand-in's receive slows with the queue's depth: on a loaded machine the 1000 orders
	// take over a minute to drain.
	p.settle(t, 3*time.Minute, files)
	p.checkLedger(t, files, nil)

	rep := p.bucketObjects().report(t, key)
	t.Logf("%d lines in %d invocations (%d continuations), %v; stand-in API %+v", rep.Lines, rep.Continuations+1, rep.Continuations,
		rep.FinishedAt.Sub(rep.StartedAt), p.api.Stats())
	if rep.Continuations < minContinuations {
		t.Errorf("report: %d continuations, want at least %d (raise n or CHECKPOINT_MARGIN)", rep.Continuations, minContinuations)
	}
	if diff := cmp.Diff([]string{"k-0010"}, rep.DuplicateIDs); diff != "" {
		t.Errorf("report: duplicate ids (-want +got):\n%s", diff)
	}
	if st := p.files.Stats(); st.Failures != 0 || st.ItemFailures != 0 || st.Invocations < int64(rep.Continuations+1) {
		t.Errorf("ingest invocations %d, failed %d (timed out %d), item failures %d; want >= %d, 0 (0), 0: every hand-over before the deadline",
			st.Invocations, st.Failures, st.Timeouts, st.ItemFailures, rep.Continuations+1)
	}
	if st := p.api.Stats(); st.Deliveries != len(f.ids) || st.Duplicates != 0 {
		t.Errorf("stand-in: %d deliveries, %d duplicates; want %d, 0", st.Deliveries, st.Duplicates, len(f.ids))
	}
	// The whole (test-owned) bucket is listed: the stand-in cannot check the signature of a
	// query holding "/" or "@" (docs/DECISIONS.md).
	out, err := p.s3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &p.res.Bucket})
	if err != nil {
		t.Fatalf("list state of %s: %v", key, err)
	}
	var state []string
	for _, o := range out.Contents {
		if strings.HasPrefix(aws.ToString(o.Key), "state/"+key+"@") {
			state = append(state, path.Ext(aws.ToString(o.Key)))
		}
	}
	if diff := cmp.Diff([]string{".json"}, state); diff != "" {
		t.Errorf("state objects of %s by extension (-want +got): only the done state may remain\n%s", key, diff)
	}
}

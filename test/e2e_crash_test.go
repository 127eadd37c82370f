package test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/syncbuf"
	"github.com/orderpipe/orderpipe/pkg/delivery"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
)

// errKilled is what every call of a killed process gets: it has no effect.
var errKilled = errors.New("process killed")

// process is one ingest function process whose AWS calls stop having any effect once it is
// killed, as after kill -9: nothing it would still do (checkpoint, release its claim, send a
// continuation, extend its message's visibility) happens.
type process struct {
	dead   atomic.Bool
	killed chan struct{}
	once   sync.Once
	sent   atomic.Int64 // orders its SendMessageBatch calls enqueued
	killAt int64        // kill once this many orders are enqueued; 0: never
}

func (p *process) kill() { p.once.Do(func() { p.dead.Store(true); close(p.killed) }) }

// alive makes call unless p was killed; a killed process's call has no effect and gets errKilled.
func alive[O any](p *process, call func() (O, error)) (O, error) {
	if p.dead.Load() {
		var zero O
		return zero, errKilled
	}
	return call()
}

// do is alive for a call that returns only an error.
func (p *process) do(call func() error) error {
	_, err := alive(p, func() (struct{}, error) { return struct{}{}, call() })
	return err
}

// killableS3 and killableSQS are a process's clients.
type killableS3 struct {
	ingest.ObjectStore
	p *process
}

func (k killableS3) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return alive(k.p, func() (*s3.GetObjectOutput, error) { return k.ObjectStore.GetObject(ctx, in, o...) })
}

func (k killableS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return alive(k.p, func() (*s3.PutObjectOutput, error) { return k.ObjectStore.PutObject(ctx, in, o...) })
}

func (k killableS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, o ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	return alive(k.p, func() (*s3.DeleteObjectOutput, error) { return k.ObjectStore.DeleteObject(ctx, in, o...) })
}

type killableSQS struct {
	ingest.Queue
	p *process
}

func (k killableSQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	if k.p.dead.Load() {
		return nil, errKilled
	}
	out, err := k.Queue.SendMessageBatch(ctx, in, o...)
	if err == nil {
		if n := k.p.sent.Add(int64(len(out.Successful))); k.p.killAt > 0 && n >= k.p.killAt {
			k.p.kill()
		}
	}
	return out, err
}

func (k killableSQS) SendMessage(ctx context.Context, in *sqs.SendMessageInput, o ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return alive(k.p, func() (*sqs.SendMessageOutput, error) { return k.Queue.SendMessage(ctx, in, o...) })
}

func (k killableSQS) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, o ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	return alive(k.p, func() (*sqs.ChangeMessageVisibilityOutput, error) {
		return k.Queue.ChangeMessageVisibility(ctx, in, o...)
	})
}

// TestE2EIngestKilledMidFile kills the ingest process (every later call of it without effect,
// its invocation ended as a crash) once it has enqueued a third of a 300-order file, between
// checkpoints. A new process gets the same files-queue message once its visibility runs out
// (nobody heartbeats it any more), takes its claim over at once and resumes from the last
// checkpoint, re-sending the orders enqueued since; dispatch's delivery record deletes those
// copies unsent. Every order reaches the API exactly once, none is lost, the file is finished.
func TestE2EIngestKilledMidFile(t *testing.T) {
	t.Parallel()
	const key, n = "uploads/killed.jsonl", 300
	p := newE2E(t, e2eOptions{apiRate: 100})
	s := p.settings
	// The first invocation has 8 s (times the slowness) to enqueue the third of the file at
	// which it is killed, before its checkpoint time.
	s.IngestTimeout = p.slow * 12 * time.Second
	s.FilesVisibility = s.IngestTimeout // the deployed rule's least
	p.retune(t, s)
	cfg := p.IngestConfig
	cfg.CheckpointMargin, cfg.CheckpointEvery = p.slow*4*time.Second, 500*time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	first := &process{killed: make(chan struct{}), killAt: n / 3}
	restarted := &process{killed: make(chan struct{})}
	var logs syncbuf.Buffer
	service := func(pr *process) *ingest.Service {
		return ingest.New(cfg, killableS3{p.IngestS3, pr}, killableSQS{p.IngestSQS, pr},
			ingest.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	}
	dying, fresh := service(first), service(restarted)
	var mu sync.Mutex
	var calls []string // message id of each invocation for the file
	var killedAt, resumedAt time.Time
	p.files.Handler = func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		for _, m := range ev.Records {
			if names(m.Body, key) {
				mu.Lock()
				calls = append(calls, m.MessageId)
				if !killedAt.IsZero() && resumedAt.IsZero() {
					resumedAt = time.Now()
				}
				mu.Unlock()
			}
		}
		if first.dead.Load() {
			return fresh.Handle(ctx, ev)
		}
		type result struct {
			resp events.SQSEventResponse
			err  error
		}
		done := make(chan result, 1)
		go func() { r, err := dying.Handle(ctx, ev); done <- result{r, err} }()
		select {
		case r := <-done:
			return r.resp, r.err
		case <-first.killed:
			mu.Lock()
			killedAt = time.Now()
			mu.Unlock()
			panic("kill -9") // the poller records a crash and keeps the batch, as Lambda does
		}
	}
	p.start(t)

	body, ids := ordersNumbered("x", n)
	f := &e2eFile{key: key, body: body, ids: ids}
	f.version = p.upload(t, key, f.body)
	files := []*e2eFile{f}
	p.settle(t, 4*time.Minute, files)
	p.checkLedger(t, files, nil)

	if !first.dead.Load() || p.files.Stats().Crashes < 1 {
		t.Fatalf("ingest was not killed (enqueued %d, crashes %d): the test proves nothing", first.sent.Load(), p.files.Stats().Crashes)
	}
	if st := p.api.Stats(); st.Duplicates != 0 || st.Accepted != n {
		t.Errorf("stand-in API: %d accepted, %d duplicate PUTs; want %d, 0", st.Accepted, st.Duplicates, n)
	}
	resent := first.sent.Load() + restarted.sent.Load() - n
	if resent <= 0 {
		t.Errorf("enqueued %d + %d for %d orders: the crash re-sent nothing, so the record was not tested", first.sent.Load(), restarted.sent.Load(), n)
	}
	mu.Lock()
	defer mu.Unlock()
	// The message the killed invocation held is the one that resumes: it takes its own claim over.
	if len(calls) < 2 || calls[1] != calls[0] {
		t.Errorf("invocations for the file by message %v: want the killed one's message next", calls)
	}
	if strings.Contains(logs.String(), "file busy") {
		t.Errorf("the restarted ingest found the file busy (it waited for the lease):\n%s", logs.String())
	}
	t.Logf("killed after %d orders enqueued; resumed %v later by the same message (files visibility %v); %d orders enqueued twice, 0 sent twice",
		first.sent.Load(), resumedAt.Sub(killedAt).Round(time.Second), s.FilesVisibility, resent)
}

// killableAPI, killableQueue and killableLedger are a dispatch process's dependencies; the API
// kills the process when it is asked to PUT killID, before the request goes out.
type killableAPI struct {
	dispatch.OrderAPI
	p      *process
	killID string
}

func (k killableAPI) Put(ctx context.Context, id string, body []byte) (orderapi.Result, error) {
	if id == k.killID {
		k.p.kill()
	}
	if k.p.dead.Load() {
		return orderapi.Result{Class: orderapi.Transient, Detail: "killed"}, errKilled
	}
	return k.OrderAPI.Put(ctx, id, body)
}

type killableQueue struct {
	dispatch.Queue
	p *process
}

func (k killableQueue) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, o ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	return alive(k.p, func() (*sqs.ChangeMessageVisibilityOutput, error) {
		return k.Queue.ChangeMessageVisibility(ctx, in, o...)
	})
}

func (k killableQueue) SendMessage(ctx context.Context, in *sqs.SendMessageInput, o ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return alive(k.p, func() (*sqs.SendMessageOutput, error) { return k.Queue.SendMessage(ctx, in, o...) })
}

type killableLedger struct {
	dispatch.Ledger
	p *process
}

func (k killableLedger) Delivered(ctx context.Context, c delivery.Claim) error {
	return k.p.do(func() error { return k.Ledger.Delivered(ctx, c) })
}

func (k killableLedger) Release(ctx context.Context, c delivery.Claim) error {
	return k.p.do(func() error { return k.Ledger.Release(ctx, c) })
}

func (k killableLedger) Abandon(ctx context.Context, c delivery.Claim) error {
	return k.p.do(func() error { return k.Ledger.Abandon(ctx, c) })
}

// TestE2EDispatchKilledMidOrder kills a dispatch process holding an order's delivery claim,
// just before its PUT (at 1 rps an instance spends nearly all its time there, waiting for its
// slot): nothing it would still do (PUT, mark, release, re-send, visibility change) happens. The
// order's message comes back after the orders visibility; its claim holds it back until the
// lease ends, then a new process sends it, counted and logged as a possible repeat. Every
// order reaches the API exactly once.
func TestE2EDispatchKilledMidOrder(t *testing.T) {
	t.Parallel()
	const key, n, victim = "uploads/dispatch-killed.jsonl", 60, "y-030"
	p := newE2E(t, e2eOptions{})
	db := dynamodb.NewFromConfig(e2eAdmin(t))
	ledger := delivery.New(db, p.DispatchConfig.DeliveryTable, nil)
	api, err := orderapi.New(p.DispatchConfig.OrderAPI(), orderapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	opts := dispatch.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: io.Discard}
	dead := &process{killed: make(chan struct{})}
	dyingOpts := opts
	dyingOpts.Ledger = killableLedger{ledger, dead}
	dying := dispatch.New(p.DispatchConfig, killableQueue{p.DispatchSQS, dead}, killableAPI{api, dead, victim}, dyingOpts)
	opts.Ledger = ledger
	fresh := dispatch.New(p.DispatchConfig, p.DispatchSQS, api, opts)
	p.orders.Handler = func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		if dead.dead.Load() || len(ev.Records) != 1 || orderID(ev.Records[0]) != victim {
			return fresh.Handle(ctx, ev)
		}
		type result struct {
			resp events.SQSEventResponse
			err  error
		}
		done := make(chan result, 1)
		go func() { r, err := dying.Handle(ctx, ev); done <- result{r, err} }()
		select {
		case r := <-done:
			return r.resp, r.err
		case <-dead.killed:
			panic("kill -9")
		}
	}
	p.start(t)

	body, ids := ordersNumbered("y", n)
	f := &e2eFile{key: key, body: body, ids: ids}
	f.version = p.upload(t, key, f.body)
	files := []*e2eFile{f}
	p.settle(t, 3*time.Minute, files)
	p.checkLedger(t, files, nil)

	if !dead.dead.Load() || p.orders.Stats().Crashes < 1 {
		t.Fatalf("dispatch was not killed (crashes %d): the test proves nothing", p.orders.Stats().Crashes)
	}
	if st := p.api.Stats(); st.Duplicates != 0 || st.Accepted != n {
		t.Errorf("stand-in API: %d accepted, %d duplicate PUTs; want %d, 0", st.Accepted, st.Duplicates, n)
	}
	// The killed claim's order is one; a try timed out on a slow machine would be another.
	if !strings.Contains(logs.String(), "possible repeat") || !strings.Contains(logs.String(), "orderID="+victim) {
		t.Errorf("no possible repeat of %s logged:\n%s", victim, logs.String())
	}
}

package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/local"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
)

// TestPipelineStopCheckpointsIngest stops the pipeline while ingest is in the middle of a file
// (its SendMessageBatch calls held after the third until the stop), then runs a new pipeline on
// the same resources: the stop checkpointed the file past line 0 and before its end and left a
// continuation on the files queue, the second run resumes there, and every order reaches the
// stand-in API once: the ledger balances with no duplicate PUT.
func TestPipelineStopCheckpointsIngest(t *testing.T) {
	t.Parallel()
	api, ts := standInAPI(t, apiserver.Config{RPS: 200, Burst: 10})
	const n, key = 300, "uploads/stopped.jsonl"
	names := local.NamesFor(awstest.Name(t, "stop"))

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	var batches atomic.Int32
	held := make(chan struct{})
	var heldOnce sync.Once
	// holdBatches makes ingest's fourth and later SendMessageBatch calls wait until the run
	// is stopped: the stop comes while the file is being read.
	holdBatches := func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("HoldBatches", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if _, ok := in.Parameters.(*sqs.SendMessageBatchInput); ok && batches.Add(1) > 3 {
				heldOnce.Do(func() { close(held) })
				select {
				case <-runCtx.Done():
				case <-ctx.Done():
				}
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
	}
	// Ingest gets room to finish the rest in one invocation on a loaded stand-in: the stop, not
	// a timeout, is what this test is about.
	settings := pipelineSettings()
	settings.IngestTimeout = 30 * time.Second
	newPipeline := func(hold bool) *local.Pipeline {
		t.Helper()
		p, err := local.NewPipeline(context.Background(), local.Options{
			AWS: awstest.Config(t), Names: names, Settings: settings, APIBaseURL: ts.URL,
			// One process: a claim whose release failed (a deadline missed on a busy machine)
			// is free a second after its deadline, not a minute (LeaseSlack covers clock skew).
			Ingest: func(c *ingest.Config) { c.CheckpointMargin, c.LeaseSlack = 2*time.Second, time.Second },
			// Each instance paces alone (see TestPipeline).
			Dispatch: func(c *dispatch.Config) { c.APITimeout, c.GovernorTable = 2*time.Second, "" },
			FunctionAWS: func(_ context.Context, function string, _ local.Resources) (aws.Config, error) {
				cfg := awstest.Config(t)
				if hold && function == "ingest" {
					cfg.APIOptions = append(cfg.APIOptions, holdBatches)
				}
				return cfg, nil
			},
			Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		})
		if err != nil {
			t.Fatalf("NewPipeline: %v", err)
		}
		return p
	}

	p := newPipeline(true)
	p.Start(runCtx)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = p.Stop()
		}
	})
	var body bytes.Buffer
	for i := range n {
		fmt.Fprintf(&body, `{"id":"o-%03d","amount":"%d.00"}`+"\n", i, i)
	}
	ctx := context.Background()
	if _, err := p.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.Resources.Bucket, Key: aws.String(key), Body: bytes.NewReader(body.Bytes())}); err != nil {
		t.Fatalf("upload: %v", err)
	}
	select {
	case <-held:
	case <-time.After(awstest.Scale(t, p.SQS, time.Minute)):
		t.Fatalf("ingest sent no fourth batch: pollers %+v", p.Files.Stats())
	}
	if busy := p.Busy(); len(busy.Files) != 1 || busy.Files[0] != "s3://"+p.Resources.Bucket+"/"+key {
		t.Errorf("Busy().Files = %q while ingest reads %s", busy.Files, key)
	}
	stopRun()
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	stopped = true

	st := fileState(t, p, key)
	if st.Status != ingest.StatusRunning || st.Line <= 0 || st.Line >= n || st.Enqueued != st.Line {
		t.Fatalf("state after the stop: status %q, line %d, enqueued %d; want running, checkpointed at a line in (0, %d) with every line before it enqueued", st.Status, st.Line, st.Enqueued, n)
	}
	if files, _, err := p.Pending(ctx); err != nil || files != 1 {
		t.Errorf("files queue after the stop: %d messages, %v; want the continuation", files, err)
	}
	if fs := p.Files.Stats(); fs.Failures != 0 {
		t.Errorf("ingest invocations failed: %+v; want the stopped one to succeed with its continuation", fs)
	}

	p2 := newPipeline(false)
	p2.Start(ctx)
	t.Cleanup(func() { _ = p2.Stop() })
	waitQuiescent(t, p2, api, key, n)
	var rep ingest.Report
	readJSON(t, p2, ingest.ReportKey(key), &rep)
	stats := api.Stats()
	if rep.Lines != n || rep.Enqueued != n || rep.Continuations < 1 {
		t.Errorf("report: lines %d, enqueued %d, continuations %d; want %d, %d, >= 1", rep.Lines, rep.Enqueued, rep.Continuations, n, n)
	}
	if stats.Deliveries != n || stats.Duplicates != 0 || len(api.Orders()) != n {
		t.Errorf("API: %d deliveries of %d orders, %d duplicates; want %d, %d, 0", stats.Deliveries, len(api.Orders()), stats.Duplicates, n, n)
	}
}

// fileState reads the ingest state of key's only version.
func fileState(t *testing.T, p *local.Pipeline, key string) ingest.State {
	t.Helper()
	out, err := p.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &p.Resources.Bucket, Prefix: aws.String("state/" + key + "@")})
	if err != nil {
		t.Fatalf("list state of %s: %v", key, err)
	}
	var st ingest.State
	found := 0
	for _, o := range out.Contents {
		if k := aws.ToString(o.Key); strings.HasSuffix(k, ".json") {
			readJSON(t, p, k, &st)
			found++
		}
	}
	if found != 1 {
		t.Fatalf("state objects of %s: %d, want 1", key, found)
	}
	return st
}

func readJSON(t *testing.T, p *local.Pipeline, key string, v any) {
	t.Helper()
	out, err := p.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &p.Resources.Bucket, Key: aws.String(key)})
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	defer out.Body.Close()
	if err := json.NewDecoder(out.Body).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", key, err)
	}
}

package local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/local"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// pipelineSettings keeps every rule of pipeline.Settings with timeouts of a few seconds.
func pipelineSettings() pipeline.Settings {
	s := pipeline.Defaults()
	s.APIRate = 50
	s.IngestTimeout, s.FilesVisibility = 5*time.Second, 30*time.Second
	s.DispatchTimeout, s.OrdersVisibility = 4*time.Second, 24*time.Second
	s.QueueRetention, s.DLQRetention = time.Hour, 2*time.Hour
	return s
}

// TestPipeline runs a file through the whole local pipeline: every valid order reaches the
// stand-in API once, the bad line is rejected, and the queues end empty.
func TestPipeline(t *testing.T) {
	t.Parallel()
	api, ts := standInAPI(t, apiserver.Config{RPS: 100, Burst: 4})
	var tuned []string
	p, err := local.NewPipeline(context.Background(), local.Options{
		AWS: awstest.Config(t), Names: local.NamesFor(awstest.Name(t, "pipe")), Settings: pipelineSettings(), APIBaseURL: ts.URL,
		Ingest: func(c *ingest.Config) { c.CheckpointMargin = 2 * time.Second; tuned = append(tuned, "ingest") },
		Dispatch: func(c *dispatch.Config) {
			// Each instance paces alone: with a 4 s deadline, 2 s of it the client's margin, the
			// shared stand-in's DynamoDB under the other packages' load leaves no slot that fits
			// (the governor's own pipeline run is the demo's, cmd/orderpipe).
			if c.GovernorTable == "" {
				t.Errorf("the pipeline's dispatch config has no governor table")
			}
			c.APITimeout, c.GovernorTable = 2*time.Second, ""
			tuned = append(tuned, "dispatch")
		},
		DispatchOptions: func(i int, c dispatch.Config) (dispatch.Options, error) {
			tuned = append(tuned, fmt.Sprintf("instance %d at %v", i, c.APITimeout))
			return dispatch.Options{}, nil
		},
	})
	if err != nil {
		t.Fatalf("NewPipeline: %v", err)
	}
	if got, want := strings.Join(tuned, ","), "ingest,dispatch,instance 0 at 2s,instance 1 at 2s"; got != want {
		t.Errorf("hooks called: %q, want %q", got, want)
	}
	if p.IngestConfig.CheckpointMargin != 2*time.Second || p.DispatchConfig.APITimeout != 2*time.Second {
		t.Errorf("configs not tuned: ingest %+v, dispatch %+v", p.IngestConfig, p.DispatchConfig)
	}
	if p.DispatchConfig.APIRate != 50 || p.DispatchConfig.APIBaseURL != ts.URL || p.Orders.MaxConcurrency != 2 {
		t.Errorf("dispatch does not follow Settings: rate %v, base %q, instances %d", p.DispatchConfig.APIRate, p.DispatchConfig.APIBaseURL, p.Orders.MaxConcurrency)
	}
	ctx := context.Background()
	p.Start(ctx)
	p.Start(ctx) // a second Start does nothing
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = p.Stop()
		}
	})

	body := "{\"id\":\"o-1\",\"amount\":\"1.00\"}\n{\"amount\":\"2.00\"}\n{\"id\":\"o-2\"}\n{\"id\":\"o-3\"}\n"
	key := "uploads/pipe.jsonl"
	if _, err := p.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.Resources.Bucket, Key: &key, Body: bytes.NewReader([]byte(body))}); err != nil {
		t.Fatalf("upload: %v", err)
	}
	waitQuiescent(t, p, api, key, 3)
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	stopped = true
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	st := api.Stats()
	if st.Deliveries != 3 || st.Duplicates != 0 {
		t.Errorf("API: %d deliveries, %d duplicates; want 3, 0", st.Deliveries, st.Duplicates)
	}
	for _, id := range []string{"o-1", "o-2", "o-3"} {
		if _, ok := api.Orders()[id]; !ok {
			t.Errorf("order %s not delivered", id)
		}
	}
	out, err := p.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.Resources.Bucket, Key: aws.String(ingest.RejectsKey(key))})
	if err != nil {
		t.Fatalf("rejects: %v", err)
	}
	defer out.Body.Close()
	var rejects bytes.Buffer
	if _, err := rejects.ReadFrom(out.Body); err != nil {
		t.Fatalf("read rejects: %v", err)
	}
	if !strings.Contains(rejects.String(), `"line":2`) {
		t.Errorf("rejects %q: want line 2", rejects.String())
	}
}

var errBoom = errors.New("boom")

// TestNewPipelineErrors: a pipeline that cannot run is refused before anything runs.
func TestNewPipelineErrors(t *testing.T) {
	t.Parallel()
	bad := pipeline.Defaults()
	bad.Instances = 1
	for _, tc := range []struct {
		name string
		o    local.Options
		want string
	}{
		{"no API", local.Options{Names: local.NamesFor("x")}, "APIBaseURL is required"},
		{"invalid settings", local.Options{Names: local.NamesFor("x"), APIBaseURL: "http://127.0.0.1:1", Settings: bad}, "invalid settings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := local.NewPipeline(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("dispatch options fail", func(t *testing.T) {
		_, err := local.NewPipeline(context.Background(), local.Options{
			AWS: awstest.Config(t), Names: local.NamesFor(awstest.Name(t, "pipe")), APIBaseURL: "http://127.0.0.1:1",
			DispatchOptions: func(int, dispatch.Config) (dispatch.Options, error) { return dispatch.Options{}, errBoom },
		})
		if !errors.Is(err, errBoom) {
			t.Errorf("got %v, want %v", err, errBoom)
		}
	})
	t.Run("invalid dispatch config", func(t *testing.T) {
		_, err := local.NewPipeline(context.Background(), local.Options{
			AWS: awstest.Config(t), Names: local.NamesFor(awstest.Name(t, "pipe")), APIBaseURL: "http://127.0.0.1:1",
			Dispatch: func(c *dispatch.Config) { c.MaxAttempts = 1 },
		})
		if err == nil || !strings.Contains(err.Error(), dispatch.EnvMaxAttempts) {
			t.Errorf("got %v, want the MAX_ATTEMPTS error", err)
		}
	})
	if err := (&local.Pipeline{}).Stop(); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
}

// standInAPI serves a stand-in order API of cfg for the test.
func standInAPI(t *testing.T, cfg apiserver.Config) (*apiserver.Server, *httptest.Server) {
	t.Helper()
	api, err := apiserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	return api, ts
}

// waitQuiescent waits until key's report exists, the API has taken deliveries and both queues
// stay empty for two looks in a row.
func waitQuiescent(t *testing.T, p *local.Pipeline, api *apiserver.Server, key string, deliveries int) {
	t.Helper()
	ctx := context.Background()
	// The deadline only ends a stuck test; nothing here measures time.
	deadline := time.Now().Add(awstest.Scale(t, p.SQS, 3*time.Minute))
	for quiet := 0; quiet < 2; time.Sleep(300 * time.Millisecond) {
		files, orders, err := p.Pending(ctx)
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		_, rerr := p.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &p.Resources.Bucket, Key: aws.String(ingest.ReportKey(key))})
		quiet++
		if files+orders > 0 || rerr != nil || api.Stats().Deliveries < deliveries {
			quiet = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("not quiescent: files %d, orders %d pending, report: %v, API %+v, pollers %+v %+v", files, orders, rerr, api.Stats(), p.Files.Stats(), p.Orders.Stats())
		}
	}
}

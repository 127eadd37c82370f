package local

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/syncbuf"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// TestPipelineBootstraps runs the whole pipeline on the compiled functions: the ingest and
// dispatch bootstraps (built here for linux and this machine's architecture, laid out as
// `make build` does) run as Processes behind the pollers, and a file's orders reach the order
// API once each.
func TestPipelineBootstraps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, fn := range []string{"ingest", "dispatch"} {
		if err := os.MkdirAll(filepath.Join(dir, fn), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(buildFunction(t, "../../functions/"+fn), filepath.Join(dir, fn, "bootstrap")); err != nil {
			t.Fatal(err)
		}
	}
	api, err := apiserver.New(apiserver.Config{RPS: 100, Burst: 4})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	s := pipeline.Defaults()
	s.APIRate = 50
	s.IngestTimeout, s.FilesVisibility = 20*time.Second, 2*time.Minute
	s.DispatchTimeout, s.OrdersVisibility = 10*time.Second, time.Minute
	s.QueueRetention, s.DLQRetention = time.Hour, 2*time.Hour
	var out syncbuf.Buffer
	p, err := NewPipeline(context.Background(), Options{
		AWS: awstest.Config(t), Names: NamesFor(awstest.Name(t, "boot")), Settings: s, APIBaseURL: ts.URL,
		Bootstraps: dir, BootstrapOutput: &out, Logger: testLogger(t),
		// Each instance paces alone: the governor's own runs are TestPipeline's and the demo's.
		Dispatch: func(c *dispatch.Config) { c.GovernorTable = "" },
	})
	if err != nil {
		t.Fatalf("NewPipeline: %v", err)
	}
	if len(p.procs) != 2+s.Instances {
		t.Errorf("%d bootstrap processes, want %d (2 ingest, %d dispatch)", len(p.procs), 2+s.Instances, s.Instances)
	}
	ctx := context.Background()
	p.Start(ctx)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = p.Stop()
		}
		if t.Failed() {
			t.Logf("bootstraps' output:\n%s", out.String())
		}
	})
	body := "{\"id\":\"b-1\",\"amount\":\"1.00\"}\n{\"id\":\"b-2\"}\n{\"id\":\"b-3\"}\n"
	key := "uploads/boot.jsonl"
	if _, err := p.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.Resources.Bucket, Key: &key, Body: bytes.NewReader([]byte(body))}); err != nil {
		t.Fatalf("upload: %v", err)
	}
	// The deadline only ends a stuck test; nothing here measures time.
	for deadline := time.Now().Add(3 * time.Minute); api.Stats().Deliveries < 3; time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("API %+v after 3 min; pollers %+v %+v", api.Stats(), p.Files.Stats(), p.Orders.Stats())
		}
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	stopped = true
	if st := api.Stats(); st.Deliveries != 3 || st.Duplicates != 0 {
		t.Errorf("API: %d deliveries, %d duplicates; want 3, 0", st.Deliveries, st.Duplicates)
	}
	for _, id := range []string{"b-1", "b-2", "b-3"} {
		if _, ok := api.Orders()[id]; !ok {
			t.Errorf("order %s not delivered", id)
		}
	}
	var starts int64
	for _, proc := range p.procs {
		starts += proc.Stats().Starts
	}
	if starts < int64(len(p.procs)) {
		t.Errorf("bootstraps started %d times, want each at least once", starts)
	}
}

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/syncbuf"
	"github.com/orderpipe/orderpipe/pkg/local"
)

func TestDemo(t *testing.T) {
	t.Parallel()
	awstest.Config(t) // fails with how to start the stand-in when it does not answer
	r := standIn(t, "demo", "--orders", "8", "--json", "--timeout", "2m")
	var got ledger
	mustJSON(t, r, &got)
	if !got.Balanced || len(got.Lost) != 0 {
		t.Errorf("got a ledger that does not balance: %+v", got)
	}
	// 8 orders and 3 bad lines (malformed, no id, duplicate id); the blank line is not counted.
	// The API refuses one order (parked as permanent) and fails another once (delivered).
	want := struct {
		Lines, Rejected int64
		Delivered       int
		Parked          map[string]int
	}{11, 3, 7, map[string]int{"permanent": 1}}
	gotSum := struct {
		Lines, Rejected int64
		Delivered       int
		Parked          map[string]int
	}{got.Lines, got.Rejected, got.Delivered, got.ParkedByClass}
	if diff := cmp.Diff(want, gotSum); diff != "" {
		t.Errorf("ledger (-want +got):\n%s\nstderr:\n%s", diff, r.stderr)
	}
	if got.APIServerErrors < 1 {
		t.Errorf("got %d server errors, want the injected one", got.APIServerErrors)
	}
}

func TestNewSample(t *testing.T) {
	t.Parallel()
	s := newSample(5)
	lines := strings.Split(strings.TrimSuffix(string(s.body), "\n"), "\n")
	blank := 0
	for _, l := range lines {
		if l == "" {
			blank++
		}
	}
	if got, want := len(lines)-blank, len(s.ids)+s.badLines; got != want || blank != 1 {
		t.Errorf("got %d non-blank lines and %d blank, want %d and 1", got, blank, want)
	}
	if s.rejectedID == s.flakyID || !strings.Contains(string(s.body), `"id":"`+s.flakyID+`"`) {
		t.Errorf("got fault ids %q and %q, want two distinct ids of the file", s.rejectedID, s.flakyID)
	}
}

// TestLocal starts local, reads the resources it prints, checks they exist and stops it.
func TestLocal(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prefix := awstest.Name(t, "local")
	info, done, errb := startLocal(ctx, t, "--name-prefix", prefix)
	if got, want := info.Resources.Bucket, prefix+"-uploads"; got != want || !info.StandInAPI || info.APIBaseURL == "" {
		t.Errorf("got bucket %q, stand-in %v, API %q; want %q, a stand-in API with a URL", got, info.StandInAPI, info.APIBaseURL, want)
	}
	for _, q := range []string{info.Resources.FilesQueue, info.Resources.FilesDLQ, info.Resources.OrdersQueue, info.Resources.OrdersDLQ} {
		if _, err := awstest.SQS(cfg).GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &q}); err != nil {
			t.Errorf("queue %s printed by local: %v", q, err)
		}
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("local exited %d after Ctrl-C, want 0: %s", code, errb.String())
	}
	if want := "stand-in order API: 0 requests"; !strings.Contains(errb.String(), want) {
		t.Errorf("got stderr %q after stop, want the stand-in's counts (%q)", errb.String(), want)
	}
}

// TestLocalChecksFlagsFirst checks that a bad flag of local creates nothing.
func TestLocalChecksFlagsFirst(t *testing.T) {
	t.Parallel()
	for _, api := range []string{"api.example.com", "ftp://api.example.com", "http://"} {
		t.Run(api, func(t *testing.T) {
			prefix := awstest.Name(t, "bad")
			r := standIn(t, "local", "--api", api, "--name-prefix", prefix)
			wantCode(t, r, exitUsage, "want the order API's base URL")
			_, err := awstest.SQS(awstest.Config(t)).GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(prefix + "-orders")})
			if err == nil {
				t.Errorf("queue %s-orders exists after a bad --api, want nothing created", prefix)
			}
		})
	}
}

// TestLocalFromTemplate: `local --template` runs as the synthesized stack: the CDK context's
// instances (3, the flag's default is 2) reach the dispatch poller, and the files queue gets the
// template's visibility timeout.
func TestLocalFromTemplate(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	tpl, err := local.SynthPlaceholders(ctx, filepath.Join("..", ".."), filepath.Join(os.TempDir(), "orderpipe-synth"), "OrderPipe",
		map[string]any{"instances": 3, "reservedConcurrency": 3})
	if err != nil {
		t.Fatal(err)
	}
	w, err := tpl.Wiring()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "OrderPipe.template.json")
	b, err := json.Marshal(tpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	info, done, _ := startLocal(ctx, t, "--name-prefix", awstest.Name(t, "tpl"), "--template", path)
	if info.Instances != 3 {
		t.Errorf("local --template: %d dispatch instances, want the template's 3", info.Instances)
	}
	q := info.Resources.FilesQueue
	attrs, err := awstest.SQS(cfg).GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &q, AttributeNames: []sqstypes.QueueAttributeName{"VisibilityTimeout"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := attrs.Attributes["VisibilityTimeout"], strconv.Itoa(int(w.FilesQueue.Visibility.Seconds())); got != want {
		t.Errorf("files queue visibility %s s, want the template's %s", got, want)
	}
	cancel()
	<-done
}

// startLocal runs `local --json` on the shared stand-in with args until ctx ends, and returns the
// resources it printed, its exit code's channel and its stderr.
func startLocal(ctx context.Context, t *testing.T, args ...string) (pipelineInfo, <-chan int, *syncbuf.Buffer) {
	t.Helper()
	var out, errb syncbuf.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() {
		done <- c.main(ctx, append([]string{"local", "--json", "--endpoint", awstest.Endpoint(), "--log-level", "error"}, args...))
	}()
	for !strings.HasSuffix(out.String(), "}\n") { // until local prints its JSON, or exits
		select {
		case code := <-done:
			t.Fatalf("local exited %d before printing its resources: %s", code, errb.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	var info pipelineInfo
	if err := json.Unmarshal([]byte(out.String()), &info); err != nil {
		t.Fatalf("decode local's output %q: %v", out.String(), err)
	}
	return info, done, &errb
}

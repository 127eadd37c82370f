package redrive_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// startLocalSQS starts npm local-aws-sqs (tools/node_modules) on a free port through
// testdata/local-aws-sqs.cjs and returns its endpoint. The server stops with the test.
func startLocalSQS(t *testing.T) string {
	t.Helper()
	const howto = "run `make tools` (installs the pinned Node tools, local-aws-sqs among them)"
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): install Node.js, then %s", err, howto)
	}
	pkgDir := filepath.Join("..", "..", "tools", "node_modules", "local-aws-sqs")
	if _, err := os.Stat(filepath.Join(pkgDir, "package.json")); err != nil {
		t.Fatalf("local-aws-sqs is not installed at %s (%v): %s", pkgDir, err, howto)
	}
	abs, err := filepath.Abs(pkgDir)
	if err != nil {
		t.Fatalf("locate local-aws-sqs: %v", err)
	}
	cmd := exec.Command(node, filepath.Join("testdata", "local-aws-sqs.cjs"), abs)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("local-aws-sqs stdin: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("local-aws-sqs stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start local-aws-sqs: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close() // the script exits when its stdin closes
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})

	type ready struct {
		Endpoint string `json:"endpoint"`
	}
	got := make(chan ready, 1)
	go func() {
		var r ready
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil {
			err = json.Unmarshal([]byte(line), &r)
		}
		got <- r
	}()
	select {
	case r := <-got:
		if r.Endpoint == "" {
			cmd.Wait()
			t.Fatalf("local-aws-sqs did not start: %s; if it cannot load, %s", stderr.String(), howto)
		}
		return r.Endpoint
	case <-time.After(30 * time.Second):
		t.Fatalf("local-aws-sqs printed no endpoint within 30s: %s", stderr.String())
	}
	return ""
}

func TestNativeMoveWithLocalAWSSQS(t *testing.T) {
	t.Parallel()
	awsCfg := awstest.ConfigAt(t, startLocalSQS(t))
	dlq, dlqARN := awstest.NewQueue(t, awsCfg, nil)
	policy := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"5"}`, dlqARN)
	q, qARN := awstest.NewQueue(t, awsCfg, map[string]string{"RedrivePolicy": policy})
	e := env{client: awstest.SQS(awsCfg), cfg: redrive.Config{QueueURL: q, DLQURL: dlq, Rate: 100}}
	park(t, e.client, dlq, loadParked(t))
	r := newRedriver(t, e.cfg, e.client, redrive.Options{})

	got, err := r.Run(context.Background(), redrive.Request{Native: true})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got.Mode != redrive.ModeNative || got.Fallback || got.Task == nil {
		t.Fatalf("got %+v, want a native move with its task", got)
	}
	if got.Task.Handle == "" || got.Task.SourceARN != dlqARN || got.Task.DestinationARN != qARN || got.Task.Rate != 100 || got.Task.ToMove != 6 {
		t.Errorf("got task %+v, want a handle, %s -> %s at 100/s, 6 to move", *got.Task, dlqARN, qARN)
	}

	// The task moves asynchronously (local-aws-sqs ticks once a second): wait for its end.
	var last redrive.Task
	for range 100 {
		tasks, err := r.Tasks(context.Background())
		if err != nil {
			t.Fatalf("Tasks: %v", err)
		}
		if len(tasks) != 1 {
			t.Fatalf("got %d tasks, want 1", len(tasks))
		}
		if last = tasks[0]; last.Status != "RUNNING" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last.Status != "COMPLETED" || last.Moved != 6 {
		t.Fatalf("got task %+v, want COMPLETED with 6 moved", last)
	}
	// A native move keeps every attribute, the parking ones included (see the package doc).
	checkQueue(t, e.client, q, "the orders queue", allOrders, false)
	checkParked(t, e, nil)
}

func TestNativeFallsBackWhenNotImplemented(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // moto: StartMessageMoveTask answers HTTP 500
	park(t, e.client, e.cfg.DLQURL, loadParked(t))

	got, err := newRedriver(t, e.cfg, e.client, redrive.Options{}).Run(context.Background(), redrive.Request{Native: true})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got.Mode != redrive.ModeSelective || !got.Fallback || got.Moved != 6 || got.Task != nil {
		t.Errorf("got mode %q fallback %v moved %d task %v, want a selective fallback moving 6", got.Mode, got.Fallback, got.Moved, got.Task)
	}
	checkMoved(t, e, allOrders)
	checkParked(t, e, nil)
}

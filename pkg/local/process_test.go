package local

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/syncbuf"
)

var (
	buildDir  string
	buildMu   sync.Mutex
	buildDone = map[string]string{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "local-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildFunction builds the Lambda function in pkg (a directory relative to this package) as a
// bootstrap for linux and this host's GOARCH, as `make build` does for the target's, once per
// test binary.
func buildFunction(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if out, ok := buildDone[pkg]; ok {
		return out
	}
	out := filepath.Join(buildDir, strconv.Itoa(len(buildDone)), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", out, "./"+pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	buildDone[pkg] = out
	return out
}

// startEcho starts a Process running the echo function with extra environment.
func startEcho(t *testing.T, timeout time.Duration, env map[string]string) *Process {
	t.Helper()
	var out syncbuf.Buffer
	p := &Process{
		Path: buildFunction(t, "testdata/echofn"), FunctionName: "echo", Timeout: timeout,
		Env: env, Output: &out,
	}
	if err := p.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("function output:\n%s", out.String())
		}
	})
	return p
}

// echoed is what the echo function answers.
type echoed struct {
	RequestID    string          `json:"requestId"`
	FunctionARN  string          `json:"functionArn"`
	DeadlineMS   int64           `json:"deadlineMs"`
	FunctionName string          `json:"functionName"`
	EchoEnv      string          `json:"echoEnv"`
	PID          int             `json:"pid"`
	Payload      json.RawMessage `json:"payload"`
}

func echo(t *testing.T, p *Process) echoed {
	t.Helper()
	out, err := p.Invoke(context.Background(), []byte(`{"action":"echo"}`))
	if err != nil {
		t.Fatalf("Invoke echo: %v", err)
	}
	var e echoed
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("echo response %s: %v", out, err)
	}
	return e
}

func TestProcessEcho(t *testing.T) {
	t.Parallel()
	p := startEcho(t, 0, map[string]string{"ECHO_ENV": "from-env"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
	payload := `{"action":"echo","n":1}`
	out, err := p.Invoke(ctx, []byte(payload))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var got echoed
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	want := echoed{
		RequestID: "req-1", FunctionARN: "arn:aws:lambda:us-east-1:000000000000:function:echo",
		DeadlineMS: deadline.UnixMilli(), FunctionName: "echo", EchoEnv: "from-env", PID: got.PID,
		Payload: json.RawMessage(payload),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("what the function saw (-want +got):\n%s", diff)
	}
}

// TestProcessFailures makes the function fail in each way, then checks the next invocation
// works, in a restarted process when the failure ended the last one.
func TestProcessFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		action      string
		check       func(error) bool
		wantRestart bool
	}{
		{"error", func(err error) bool {
			var fe *FunctionError
			return errors.As(err, &fe) && fe.Message == "asked to fail"
		}, false},
		{"panic", func(err error) bool {
			var fe *FunctionError
			return errors.As(err, &fe) && strings.Contains(fe.Message, "asked to panic")
		}, true},
		{"exit", func(err error) bool { return errors.Is(err, ErrCrashed) }, true},
		{"hang", func(err error) bool { return errors.Is(err, ErrTimedOut) }, true},
	} {
		t.Run(tc.action, func(t *testing.T) {
			t.Parallel()
			p := startEcho(t, 2*time.Second, nil)
			before := echo(t, p)
			_, err := p.Invoke(context.Background(), []byte(`{"action":"`+tc.action+`"}`))
			if err == nil || !tc.check(err) {
				t.Fatalf("Invoke %s: got error %v, want another", tc.action, err)
			}
			after := echo(t, p)
			if got, want := after.PID != before.PID, tc.wantRestart; got != want {
				t.Errorf("restarted (pid %d then %d): got %v, want %v", before.PID, after.PID, got, want)
			}
			if got, want := p.Stats().Exits > 0, tc.wantRestart; got != want {
				t.Errorf("Stats %+v: exits counted %v, want %v", p.Stats(), got, want)
			}
		})
	}
}

func TestProcessInitError(t *testing.T) {
	t.Parallel()
	p := startEcho(t, 0, map[string]string{"ECHO_INIT": "fail"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := p.Invoke(ctx, []byte(`{}`))
	var fe *FunctionError
	if !errors.As(err, &fe) || fe.Type != "InitFailed" || !errors.Is(err, ErrCrashed) {
		t.Errorf("Invoke: got %v, want the InitFailed function error, as a crash", err)
	}
}

func TestProcessStartErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "bootstrap")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"not executable", notExec, "not an executable"},
		{"directory", dir, "not an executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Process{Path: tc.path}
			err := p.Start()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestEmulator(t *testing.T) {
	t.Parallel()
	found := func(name string) (string, error) { return "/usr/bin/" + name, nil }
	missing := func(name string) (string, error) { return "", exec.ErrNotFound }
	for _, tc := range []struct {
		name, arch, host string
		look             func(string) (string, error)
		want, wantErr    string
	}{
		{"same arch", "arm64", "arm64", missing, "", ""},
		{"script", "", "amd64", missing, "", ""},
		{"arm64 on amd64", "arm64", "amd64", found, "/usr/bin/qemu-aarch64-static", ""},
		{"amd64 on arm64", "amd64", "arm64", found, "/usr/bin/qemu-x86_64-static", ""},
		{"no qemu", "arm64", "amd64", missing, "", "qemu-user-static"},
		{"unknown arch", "riscv64", "amd64", found, "", "no emulator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := emulator(tc.arch, tc.host, tc.look)
			if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("emulator(%s on %s): got %q, %v; want %q, error containing %q", tc.arch, tc.host, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestBinaryArch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, path, want string }{
		{"built for the host", buildFunction(t, "testdata/echofn"), runtime.GOARCH},
		{"not ELF", "testdata/sqs-record.json", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := binaryArch(tc.path)
			if err != nil || got != tc.want {
				t.Errorf("binaryArch: got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestRuntimeAPIProtocol plays the runtime's side over HTTP: the next invocation's headers and
// body, an unknown request id, a response and an error.
func TestRuntimeAPIProtocol(t *testing.T) {
	t.Parallel()
	arn := "arn:aws:lambda:us-east-1:000000000000:function:f"
	r, err := startRuntimeAPI(arn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	base := "http://" + r.addr() + "/2018-06-01/runtime/"
	deadline := time.Now().Add(time.Minute)

	for _, tc := range []struct {
		name, path, body string
		status           int // of the POST
		want             outcome
	}{
		{"response", "response", `{"ok":true}`, http.StatusAccepted, outcome{body: []byte(`{"ok":true}`)}},
		{"error", "error", `{"errorType":"errorString","errorMessage":"bad"}`, http.StatusAccepted, outcome{err: &FunctionError{Type: "errorString", Message: "bad"}}},
		{"too large", "response", strings.Repeat("x", maxPayload+1), http.StatusRequestEntityTooLarge, outcome{err: &FunctionError{
			Type: "Function.ResponseSizeTooLarge", Message: "read the runtime's answer: http: request body too large",
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan outcome, 1)
			go func() {
				b, _, err := r.invoke(context.Background(), "id-"+tc.name, []byte(`{"in":1}`), deadline)
				got <- outcome{b, err}
			}()
			resp, err := http.Get(base + "invocation/next")
			if err != nil {
				t.Fatalf("next: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, h := range []struct{ name, want string }{
				{headerRequestID, "id-" + tc.name},
				{headerDeadlineMS, strconv.FormatInt(deadline.UnixMilli(), 10)},
				{headerFunctionARN, arn},
			} {
				if got := resp.Header.Get(h.name); got != h.want {
					t.Errorf("header %s: got %q, want %q", h.name, got, h.want)
				}
			}
			if got, want := string(body), `{"in":1}`; got != want {
				t.Errorf("payload: got %s, want %s", got, want)
			}
			if got, want := post(t, base+"invocation/unknown/"+tc.path, tc.body), http.StatusBadRequest; got != want {
				t.Errorf("POST for an unknown id: got %d, want %d", got, want)
			}
			if got, want := post(t, base+"invocation/id-"+tc.name+"/"+tc.path, tc.body), tc.status; got != want {
				t.Errorf("POST %s: got %d, want %d", tc.path, got, want)
			}
			o := <-got
			if diff := cmp.Diff(tc.want.body, o.body); diff != "" {
				t.Errorf("response body (-want +got):\n%s", diff)
			}
			if fmt.Sprint(o.err) != fmt.Sprint(tc.want.err) {
				t.Errorf("error: got %v, want %v", o.err, tc.want.err)
			}
		})
	}
}

func post(t *testing.T, url, body string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestPollerWithBinary drives batches from a queue through the compiled echo function via the
// Runtime API: a partial batch response keeps exactly the failed message; an error and a crash
// of the process keep the whole batch.
func TestPollerWithBinary(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	c := awstest.SQS(cfg)
	for _, tc := range []struct {
		name   string
		bodies []string
		kept   []string
		want   Stats
	}{
		{"partial", []string{"fail", "ok-1", "ok-2"}, []string{"fail"}, Stats{Received: 3, Invocations: 1, Deleted: 2, ItemFailures: 1}},
		{"error", []string{"error", "ok-1"}, []string{"error", "ok-1"}, Stats{Received: 2, Invocations: 1, Failures: 1}},
		{"exit", []string{"exit", "ok-1"}, []string{"exit", "ok-1"}, Stats{Received: 2, Invocations: 1, Failures: 1, Crashes: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proc := startEcho(t, 0, nil)
			url, arn := testQueue(t, c, time.Second)
			send(t, c, url, tc.bodies...)
			ctx, stop := context.WithTimeout(context.Background(), runBound)
			defer stop()
			invoke := SQSHandler(proc.Invoke)
			p := &Poller{
				Client: c, Logger: testLogger(t), QueueURL: url, QueueARN: arn, BatchSize: 10, MaxConcurrency: 1,
				FunctionTimeout: 10 * time.Second, WaitTime: time.Second,
				Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
					stop()
					return invoke(ctx, ev)
				},
			}
			if err := p.Run(ctx); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if diff := cmp.Diff(tc.want, p.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			checkKept(t, c, url, tc.kept)
		})
	}
}

// TestProcessForeignArch checks that a binary for the other architecture is run through its
// qemu emulator when that is on PATH, and refused with a message naming the package otherwise.
// The binary is a bare ELF header: the tests build only for the host (see buildFunction).
func TestProcessForeignArch(t *testing.T) {
	t.Parallel()
	arch, machine := "arm64", elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		arch, machine = "amd64", elf.EM_X86_64
	}
	var hdr bytes.Buffer
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT), Ehsize: 64, Phentsize: 56, Shentsize: 64}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	if err := binary.Write(&hdr, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bootstrap")
	if err := os.WriteFile(path, hdr.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := binaryArch(path); got != arch || err != nil {
		t.Fatalf("binaryArch: got %q, %v; want %q", got, err, arch)
	}
	argv, err := (&Process{Path: path}).command()
	if emu, lookErr := exec.LookPath(emulators[arch]); lookErr == nil {
		if diff := cmp.Diff([]string{emu, path}, argv); diff != "" || err != nil {
			t.Errorf("command with %s on PATH (-want +got):\n%s%v", emulators[arch], diff, err)
		}
	} else if err == nil || !strings.Contains(err.Error(), "qemu-user-static") {
		t.Errorf("command without %s: got %v, %v; want an error naming qemu-user-static", emulators[arch], argv, err)
	}
}

// TestPool keeps one instance busy with a hanging invocation: the next invocation runs on the
// other instance, and a third, with both busy, waits until its context ends.
func TestPool(t *testing.T) {
	t.Parallel()
	a, b := startEcho(t, 0, nil), startEcho(t, 0, nil)
	invoke := Pool(a, b)
	hangCtx, cancelHang := context.WithTimeout(context.Background(), 30*time.Second)
	hung := make(chan error, 1)
	go func() {
		_, err := invoke(hangCtx, []byte(`{"action":"hang"}`))
		hung <- err
	}()
	busy := waitInflight(t, a, b)

	out, err := invoke(context.Background(), []byte(`{"action":"echo"}`))
	if err != nil {
		t.Fatalf("Invoke while one instance is busy: %v", err)
	}
	var e echoed
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("echo response %s: %v", out, err)
	}
	if e.PID == busy.cmdPID() {
		t.Errorf("echo ran on the busy instance (pid %d)", e.PID)
	}

	// Both busy: the other one with a second hang.
	go func() { _, _ = invoke(hangCtx, []byte(`{"action":"hang"}`)) }()
	other := a
	if busy == a {
		other = b
	}
	waitInflight(t, other)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := invoke(ctx, []byte(`{"action":"echo"}`)); !errors.Is(err, ErrTimedOut) {
		t.Errorf("Invoke with all instances busy and a done context: got %v, want ErrTimedOut", err)
	}
	cancelHang()
	if err := <-hung; !errors.Is(err, ErrTimedOut) {
		t.Errorf("hanging invocation: got %v, want ErrTimedOut", err)
	}
}

// waitInflight waits until one of procs holds an invocation and returns it. The bound only
// keeps a broken Runtime API from hanging the test.
func waitInflight(t *testing.T, procs ...*Process) *Process {
	t.Helper()
	for start := time.Now(); time.Since(start) < runBound; {
		for _, p := range procs {
			p.api.mu.Lock()
			n := len(p.api.inflight)
			p.api.mu.Unlock()
			if n > 0 {
				return p
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no invocation reached the runtime within %v", runBound)
	return nil
}

func (p *Process) cmdPID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

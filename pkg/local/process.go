package local

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Emulators by the GOARCH of the binary they run (Debian package qemu-user-static).
var emulators = map[string]string{"arm64": "qemu-aarch64-static", "amd64": "qemu-x86_64-static"}

// Process is one Lambda execution environment for a compiled custom-runtime binary (a Go
// `bootstrap` built with aws-lambda-go): it serves the Lambda Runtime API on 127.0.0.1 and runs
// the binary with AWS_LAMBDA_RUNTIME_API pointing at it and the usual Lambda variables, plus Env.
// When the binary exits, for whatever reason, it is started again (after a pause that grows
// while it keeps exiting within a second of its start).
//
// Set the fields, call Start once, then Invoke from any number of goroutines and Close when
// done. Like one Lambda instance, a Process runs one invocation at a time (others wait their
// turn, counted against their own deadline): start several Processes for parallel invocations.
// Fields must not change after Start.
type Process struct {
	Path string // required: the bootstrap binary
	// Env is the function's environment (configuration, AWS_ENDPOINT_URL, credentials): the
	// process gets nothing else from this one's environment.
	Env          map[string]string
	FunctionName string // default "function"
	Region       string // AWS_REGION; default "us-east-1"
	MemoryMB     int    // AWS_LAMBDA_FUNCTION_MEMORY_SIZE; default 128
	// Timeout caps each invocation's deadline (which is otherwise its context's); when neither is
	// set, DefaultFunctionTimeout applies.
	Timeout time.Duration
	Output  io.Writer // the binary's stdout and stderr; nil means os.Stderr

	api      *runtimeAPI
	arn      string
	mu       sync.Mutex
	cmd      *exec.Cmd // the running binary, nil between runs
	closing  bool
	stop     chan struct{}
	done     chan struct{}
	starts   atomic.Int64
	exits    atomic.Int64
	stopOnce sync.Once
}

// ProcessStats counts a Process's runs of its binary.
type ProcessStats struct {
	Starts int64 // times the binary was started
	Exits  int64 // times it exited or was killed (after a timeout) other than by Close
}

// Stats returns the counts so far. Safe for concurrent use.
func (p *Process) Stats() ProcessStats {
	return ProcessStats{Starts: p.starts.Load(), Exits: p.exits.Load()}
}

// Start serves the Runtime API and starts the binary. An arm64 binary on another host runs
// through qemu-aarch64-static (an amd64 one through qemu-x86_64-static). Errors: Path missing
// or not executable, the emulator it needs not on PATH, or no port to listen on.
func (p *Process) Start() error {
	if p.api != nil {
		return fmt.Errorf("start %s: already started", p.Path)
	}
	argv, err := p.command()
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Path, err)
	}
	if p.FunctionName == "" {
		p.FunctionName = "function"
	}
	if p.Region == "" {
		p.Region = "us-east-1"
	}
	if p.MemoryMB == 0 {
		p.MemoryMB = 128
	}
	if p.Output == nil {
		p.Output = os.Stderr
	}
	p.arn = fmt.Sprintf("arn:aws:lambda:%s:000000000000:function:%s", p.Region, p.FunctionName)
	if p.api, err = startRuntimeAPI(p.arn); err != nil {
		return fmt.Errorf("start %s: %w", p.Path, err)
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.supervise(argv, p.environ())
	return nil
}

// command returns the argv that runs Path on this host.
func (p *Process) command() ([]string, error) {
	info, err := os.Stat(p.Path)
	if err != nil {
		return nil, err
	}
	if info.IsDir() || info.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("%s is not an executable file", p.Path)
	}
	arch, err := binaryArch(p.Path)
	if err != nil {
		return nil, err
	}
	emu, err := emulator(arch, runtime.GOARCH, exec.LookPath)
	if err != nil {
		return nil, err
	}
	if emu == "" {
		return []string{p.Path}, nil
	}
	return []string{emu, p.Path}, nil
}

// binaryArch returns the GOARCH an ELF binary is built for, or "" for another file (a script).
func binaryArch(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return "", nil
		}
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	}
	return "", nil
}

// emulator returns the emulator to run a binary for arch on host ("" when none is needed).
func emulator(arch, host string, lookPath func(string) (string, error)) (string, error) {
	if arch == "" || arch == host {
		return "", nil
	}
	name, ok := emulators[arch]
	if !ok {
		return "", fmt.Errorf("no emulator for linux/%s binaries", arch)
	}
	path, err := lookPath(name)
	if err != nil {
		return "", fmt.Errorf("the binary is linux/%s and this host is %s: install %s (Debian package qemu-user-static), or build for GOARCH=%s: %w", arch, host, name, host, err)
	}
	return path, nil
}

// environ is the binary's environment: what Lambda sets for a custom runtime, then Env.
func (p *Process) environ() []string {
	env := map[string]string{
		"AWS_LAMBDA_RUNTIME_API":          p.api.addr(),
		"AWS_LAMBDA_FUNCTION_NAME":        p.FunctionName,
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(p.MemoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + p.FunctionName,
		"AWS_LAMBDA_LOG_STREAM_NAME":      time.Now().UTC().Format("2006/01/02") + "/[$LATEST]" + newRequestID(),
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_REGION":                      p.Region,
		"AWS_DEFAULT_REGION":              p.Region,
		"LAMBDA_TASK_ROOT":                filepath.Dir(p.Path),
		"LAMBDA_RUNTIME_DIR":              filepath.Dir(p.Path),
		"_HANDLER":                        filepath.Base(p.Path),
		"TZ":                              ":UTC",
		"LANG":                            "en_US.UTF-8",
		"PATH":                            "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
	}
	maps.Copy(env, p.Env)
	var out []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// supervise runs the binary until Close, restarting it when it exits. An exit fails the
// invocation in flight (ErrCrashed); an exit before the runtime ever asked for an invocation is
// a failed init and fails the first invocation waiting.
func (p *Process) supervise(argv, env []string) {
	defer close(p.done)
	var pause time.Duration
	for {
		p.mu.Lock()
		if p.closing {
			p.mu.Unlock()
			return
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env, cmd.Dir = env, filepath.Dir(p.Path)
		cmd.Stdout, cmd.Stderr = p.Output, p.Output
		dieWithParent(cmd)
		err := cmd.Start()
		if err == nil {
			p.cmd = cmd
		}
		p.mu.Unlock()
		started := time.Now()
		var reason error
		if err != nil {
			reason = fmt.Errorf("%w: start runtime: %v", ErrCrashed, err)
		} else {
			p.starts.Add(1)
			err = cmd.Wait()
			p.mu.Lock()
			p.cmd = nil
			closing := p.closing
			p.mu.Unlock()
			if closing {
				return
			}
			p.exits.Add(1)
			reason = fmt.Errorf("%w: runtime exited: %v", ErrCrashed, exitStatus(err))
			p.api.failInflight(reason)
		}
		if nexts, initErr := p.api.takeRunState(); nexts == 0 {
			if initErr != nil {
				reason = fmt.Errorf("init: %w (%w)", initErr, ErrCrashed)
			}
			p.api.failQueued(fmt.Errorf("init: %w", reason))
		}
		if time.Since(started) < time.Second {
			pause = min(max(2*pause, 50*time.Millisecond), 2*time.Second)
		} else {
			pause = 0
		}
		select {
		case <-p.stop:
			return
		case <-time.After(pause):
		}
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Pid is the process id of the running binary, 0 between runs (to measure it: /proc, a CPU
// cgroup). A binary started again after an exit has a new one. Safe for concurrent use.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Invoke sends payload to the function and returns its response, as a synchronous Lambda
// invoke does. The deadline is ctx's, capped by Timeout (DefaultFunctionTimeout when neither is
// set); the request id is that of a lambdacontext in ctx (the Poller puts one there), else a
// new one.
//
// Errors: *FunctionError when the function reported one (its handler's error or panic, or a
// failed init); ErrCrashed when the binary exited during the invocation (or before it could
// take it); ErrTimedOut when the deadline passed first, after which the binary is killed and
// restarted, as Lambda resets an environment after a timeout.
func (p *Process) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if p.api == nil {
		return nil, fmt.Errorf("invoke %s: not started", p.FunctionName)
	}
	deadline, ok := ctx.Deadline()
	if limit := time.Now().Add(p.Timeout); p.Timeout > 0 && (!ok || limit.Before(deadline)) {
		deadline, ok = limit, true
	}
	if !ok {
		deadline = time.Now().Add(DefaultFunctionTimeout)
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	id := newRequestID()
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		id = lc.AwsRequestID
	}
	out, expired, err := p.api.invoke(ctx, id, payload, deadline)
	if expired {
		p.kill()
	}
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", p.FunctionName, err)
	}
	return out, nil
}

// kill ends the running binary; supervise starts it again.
func (p *Process) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = p.cmd.Process.Kill()
	}
}

// Close kills the binary, waits for it, fails the invocations not answered, and stops the
// Runtime API. Safe to call more than once.
func (p *Process) Close() error {
	if p.api == nil {
		return nil
	}
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.closing = true
		if p.cmd != nil {
			_ = p.cmd.Process.Kill()
		}
		p.mu.Unlock()
		close(p.stop)
		<-p.done
		p.api.close()
	})
	return nil
}

// Pool returns an invoke function that runs each invocation on an idle one of procs (started
// Processes), as Lambda sends concurrent invocations to separate execution environments: use
// it with SQSHandler and a Poller whose MaxConcurrency is len(procs). When all are busy, an
// invocation waits for one, within its context (ErrTimedOut otherwise). Safe for concurrent use.
func Pool(procs ...*Process) func(ctx context.Context, payload []byte) ([]byte, error) {
	idle := make(chan *Process, len(procs))
	for _, p := range procs {
		idle <- p
	}
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		var p *Process
		select {
		case p = <-idle:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for an idle function instance: %w (%v)", ErrTimedOut, context.Cause(ctx))
		}
		defer func() { idle <- p }()
		return p.Invoke(ctx, payload)
	}
}

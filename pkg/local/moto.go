package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// MotoCommand is the AWS stand-in StartMoto runs (Python moto 5.2.1 with its server extra).
const MotoCommand = "moto_server"

// motoReadyTimeout bounds how long StartMoto waits for the server to answer. It is ready in about
// a second on an idle machine; a loaded shared machine can take several.
const motoReadyTimeout = 30 * time.Second

// StartMoto starts `moto_server -H 127.0.0.1 -p <free port>` and returns once it answers on
// endpoint (http://127.0.0.1:port). Use it when no AWS_ENDPOINT_URL is given. stop ends that
// server and waits for it; it is safe to call more than once. ctx bounds the start only, not
// the server's life.
//
// Errors: moto_server not on PATH (the message says how to install it), the server exiting or
// not answering within 30 s (the message carries the end of its output), or ctx done.
func StartMoto(ctx context.Context) (endpoint string, stop func(), err error) {
	return startMoto(ctx, nil)
}

// startMoto is StartMoto with extra environment variables for the server (moto reads its
// settings from them).
func startMoto(ctx context.Context, env []string) (endpoint string, stop func(), err error) {
	bin, err := exec.LookPath(MotoCommand)
	if err != nil {
		return "", nil, fmt.Errorf("start moto: %s not found on PATH: install Python moto 5.2.1 with its server extra (pip install 'moto[server]==5.2.1'), or set AWS_ENDPOINT_URL to a running stand-in: %w", MotoCommand, err)
	}
	port, err := freePort()
	if err != nil {
		return "", nil, fmt.Errorf("start moto: %w", err)
	}
	var out tailBuffer
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start moto: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitReady(ctx, endpoint+"/moto-api/", exited); err != nil {
		stop()
		return "", nil, fmt.Errorf("start moto on %s: %w; output: %s", endpoint, err, out.String())
	}
	return endpoint, stop, nil
}

// waitReady polls url until it answers 200, exited is closed, ctx is done or motoReadyTimeout passes.
func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, motoReadyTimeout)
	defer cancel()
	client := http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("server exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last 4 KiB written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const tailMax = 4 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if extra := t.buf.Len() - tailMax; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RuntimeAPIVersion is the path prefix of the Lambda Runtime API.
const RuntimeAPIVersion = "2018-06-01"

// maxPayload is Lambda's limit on a synchronous invocation's request and response.
const maxPayload = 6 << 20

// Headers of the Runtime API's next-invocation response.
const (
	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadlineMS  = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
)

// FunctionError is an error the function reported through the Runtime API: a handler's error or
// panic (POST .../invocation/{id}/error), or an initialization error (POST .../init/error).
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("function error %s: %s", e.Type, e.Message)
}

// invocation is one Invoke, from queued to answered.
type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	done     chan outcome // buffered: the first answer wins
}

type outcome struct {
	body []byte
	err  error
}

func (inv *invocation) answer(o outcome) {
	select {
	case inv.done <- o:
	default:
	}
}

// runtimeAPI serves the Lambda Runtime API of one execution environment on 127.0.0.1. Invocations
// queue until the runtime asks for the next one; the runtime's answers complete them.
type runtimeAPI struct {
	functionARN string
	ln          net.Listener
	srv         *http.Server

	mu       sync.Mutex
	queue    []*invocation
	wake     chan struct{} // closed and replaced when the queue grows or the API closes
	inflight map[string]*invocation
	nexts    int // GET next calls, so that a runtime that exits without one failed its init
	initErr  *FunctionError
	closed   bool
}

func startRuntimeAPI(functionARN string) (*runtimeAPI, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the runtime API: %w", err)
	}
	r := &runtimeAPI{functionARN: functionARN, ln: ln, wake: make(chan struct{}), inflight: map[string]*invocation{}}
	mux := http.NewServeMux()
	base := "/" + RuntimeAPIVersion + "/runtime/"
	mux.HandleFunc("GET "+base+"invocation/next", r.next)
	mux.HandleFunc("POST "+base+"invocation/{id}/response", r.response)
	mux.HandleFunc("POST "+base+"invocation/{id}/error", r.invocationError)
	mux.HandleFunc("POST "+base+"init/error", r.initError)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// addr is the value of AWS_LAMBDA_RUNTIME_API.
func (r *runtimeAPI) addr() string { return r.ln.Addr().String() }

// close fails what is queued or in flight and stops the server.
func (r *runtimeAPI) close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.wake)
	}
	queued := r.queue
	r.queue = nil
	r.mu.Unlock()
	for _, inv := range queued {
		inv.answer(outcome{err: errors.New("runtime API closed")})
	}
	r.failInflight(errors.New("runtime API closed"))
	_ = r.srv.Close()
}

// enqueue adds inv for the runtime's next GET next.
func (r *runtimeAPI) enqueue(inv *invocation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("runtime API closed")
	}
	r.queue = append(r.queue, inv)
	close(r.wake)
	r.wake = make(chan struct{})
	return nil
}

// requeue puts an invocation handed to a runtime that did not receive it back at the head of the
// queue.
func (r *runtimeAPI) requeue(inv *invocation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight[inv.id] != inv || r.closed {
		return
	}
	delete(r.inflight, inv.id)
	r.queue = append([]*invocation{inv}, r.queue...)
	close(r.wake)
	r.wake = make(chan struct{})
}

// withdraw removes inv from the queue or the in-flight set; it reports where inv was.
func (r *runtimeAPI) withdraw(inv *invocation) (wasQueued, wasInflight bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, q := range r.queue {
		if q == inv {
			r.queue = append(r.queue[:i], r.queue[i+1:]...)
			return true, false
		}
	}
	if r.inflight[inv.id] == inv {
		delete(r.inflight, inv.id)
		return false, true
	}
	return false, false
}

// failInflight answers every invocation in flight with err.
func (r *runtimeAPI) failInflight(err error) {
	r.mu.Lock()
	failed := r.inflight
	r.inflight = map[string]*invocation{}
	r.mu.Unlock()
	for id, inv := range failed {
		inv.answer(outcome{err: fmt.Errorf("invocation %s: %w", id, err)})
	}
}

// failQueued answers the first queued invocation with err (the one whose runtime failed to start).
func (r *runtimeAPI) failQueued(err error) {
	r.mu.Lock()
	var inv *invocation
	if len(r.queue) > 0 {
		inv, r.queue = r.queue[0], r.queue[1:]
	}
	r.mu.Unlock()
	if inv != nil {
		inv.answer(outcome{err: err})
	}
}

// takeRunState returns the number of GET next calls and the last init error, and resets them.
func (r *runtimeAPI) takeRunState() (nexts int, initErr *FunctionError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	nexts, initErr = r.nexts, r.initErr
	r.nexts, r.initErr = 0, nil
	return nexts, initErr
}

// next blocks until an invocation is queued and hands it to the runtime.
func (r *runtimeAPI) next(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.nexts++
	r.mu.Unlock()
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			writeRuntimeError(w, http.StatusInternalServerError, "Runtime.Closed", "the runtime API is closing")
			return
		}
		if len(r.queue) > 0 {
			inv := r.queue[0]
			r.queue = r.queue[1:]
			r.inflight[inv.id] = inv
			r.mu.Unlock()
			h := w.Header()
			h.Set(headerRequestID, inv.id)
			h.Set(headerDeadlineMS, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
			h.Set(headerFunctionARN, r.functionARN)
			h.Set(headerTraceID, traceID())
			h.Set("Content-Type", "application/json")
			_, _ = w.Write(inv.payload)
			if err := http.NewResponseController(w).Flush(); err != nil || req.Context().Err() != nil {
				r.requeue(inv) // the runtime went away before it got the invocation
			}
			return
		}
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-req.Context().Done():
			return
		}
	}
}

// take removes the in-flight invocation the request names and reads the body, or answers 400
// (unknown id) or 413 (a body above Lambda's 6 MB limit, which fails the invocation).
func (r *runtimeAPI) take(w http.ResponseWriter, req *http.Request) (*invocation, []byte, bool) {
	id := req.PathValue("id")
	r.mu.Lock()
	inv := r.inflight[id]
	delete(r.inflight, id)
	r.mu.Unlock()
	if inv == nil {
		writeRuntimeError(w, http.StatusBadRequest, "InvalidRequestID", fmt.Sprintf("no invocation %q in flight", id))
		return nil, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxPayload))
	if err != nil {
		fe := &FunctionError{Type: "Function.ResponseSizeTooLarge", Message: fmt.Sprintf("read the runtime's answer: %v", err)}
		inv.answer(outcome{err: fe})
		writeRuntimeError(w, http.StatusRequestEntityTooLarge, fe.Type, fe.Message)
		return nil, nil, false
	}
	return inv, body, true
}

func (r *runtimeAPI) response(w http.ResponseWriter, req *http.Request) {
	inv, body, ok := r.take(w, req)
	if !ok {
		return
	}
	inv.answer(outcome{body: body})
	accepted(w)
}

func (r *runtimeAPI) invocationError(w http.ResponseWriter, req *http.Request) {
	inv, body, ok := r.take(w, req)
	if !ok {
		return
	}
	inv.answer(outcome{err: decodeFunctionError(body, req.Header)})
	accepted(w)
}

func (r *runtimeAPI) initError(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxPayload))
	if err != nil {
		writeRuntimeError(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", fmt.Sprintf("read body: %v", err))
		return
	}
	fe := decodeFunctionError(body, req.Header)
	r.mu.Lock()
	r.initErr = fe
	r.mu.Unlock()
	accepted(w)
}

// decodeFunctionError reads the runtime's error document; the Lambda-Runtime-Function-Error-Type
// header names the type when the body does not.
func decodeFunctionError(body []byte, h http.Header) *FunctionError {
	var fe FunctionError
	if err := json.Unmarshal(body, &fe); err != nil {
		fe.Message = string(body)
	}
	if fe.Type == "" {
		fe.Type = h.Get("Lambda-Runtime-Function-Error-Type")
	}
	if fe.Type == "" {
		fe.Type = "Unhandled"
	}
	return &fe
}

// traceID returns an X-Ray trace header of a new, unsampled trace.
func traceID() string {
	id := strings.ReplaceAll(newRequestID(), "-", "")
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", time.Now().Unix(), id[:24], id[16:])
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

func writeRuntimeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(FunctionError{Type: typ, Message: msg})
}

// invoke queues payload and waits for the runtime's answer or ctx. expired reports that ctx
// ended while the runtime held the invocation: Lambda would then reset the environment.
func (r *runtimeAPI) invoke(ctx context.Context, id string, payload []byte, deadline time.Time) (out []byte, expired bool, err error) {
	inv := &invocation{id: id, payload: payload, deadline: deadline, done: make(chan outcome, 1)}
	if err := r.enqueue(inv); err != nil {
		return nil, false, err
	}
	select {
	case o := <-inv.done:
		return o.body, false, o.err
	case <-ctx.Done():
		_, inflight := r.withdraw(inv) // an answer arriving meanwhile is too late all the same
		return nil, inflight, fmt.Errorf("invocation %s: %w (%v)", id, ErrTimedOut, context.Cause(ctx))
	}
}

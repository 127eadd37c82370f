package orderapi

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http/httptrace"
	"sync"
	"time"
)

// ErrLate is Put's error when its request could not be written by the time SendBy set: nothing
// of it was sent (Result.Sent is false), so the order is not at the API.
var ErrLate = errors.New("request not written by its send-by time: nothing sent")

// sendByKey is the type of SendByKey.
type sendByKey struct{}

// SendByKey is the context key under which SendBy keeps its time (a time.Time), for fakes of
// the Client.
var SendByKey any = sendByKey{}

// SendBy returns a context under which Put writes its request's first byte by t or not at all
// (ErrLate): the check is made at the connection, as the byte is handed to the kernel, so a
// sender held up after its last look at the clock still cannot send late. A governed sender
// gives its slot's end: a request written after it could reach the API closer than 1/rate to
// the next slot's. It holds for HTTP/1.1 connections dialled through GateDial (the Client's
// default transport is both); on an HTTP/2 connection, which other frames share, the first
// write after the connection is handed to the request is checked, whatever it carries.
func SendBy(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, SendByKey, t)
}

func sendByFrom(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(SendByKey).(time.Time)
	return t, ok
}

// DialFunc is an http.Transport's DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// GateDial wraps dial so that its connections honour SendBy. Give it to the transport of an
// Options.HTTPClient whose requests must honour SendBy (the default client's transport has it).
func GateDial(dial DialFunc) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &gateConn{Conn: c}, nil
	}
}

// gateConn refuses the first write after it is armed when that write comes after the armed time.
type gateConn struct {
	net.Conn
	mu  sync.Mutex
	by  time.Time        // armed: the next write must start by then; zero: not armed
	now func() time.Time // the clock by is on
}

func (c *gateConn) arm(by time.Time, now func() time.Time) {
	c.mu.Lock()
	c.by, c.now = by, now
	c.mu.Unlock()
}

func (c *gateConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	by, now := c.by, c.now
	c.by = time.Time{}
	c.mu.Unlock()
	if !by.IsZero() && now().After(by) {
		return 0, ErrLate
	}
	return c.Conn.Write(p)
}

// armOnConn returns trace with a GotConn that arms the request's connection with ctx's SendBy
// on the clock now, or trace unchanged when ctx has none.
func armOnConn(ctx context.Context, now func() time.Time, trace *httptrace.ClientTrace) *httptrace.ClientTrace {
	by, ok := sendByFrom(ctx)
	if !ok {
		return trace
	}
	trace.GotConn = func(info httptrace.GotConnInfo) {
		c := info.Conn
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn()
		}
		if g, ok := c.(*gateConn); ok {
			g.arm(by, now)
		}
	}
	return trace
}

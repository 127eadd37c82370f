package apiserver

import (
	"context"
	"net"
	"net/http"
	"time"
)

// connKey is the context key under which ConnContext keeps a timed connection.
type connKey struct{}

// ConnContext is an http.Server's ConnContext for a StampListener: it lets the Server find the
// receive time of each request's bytes.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if sc, ok := c.(*stampConn); ok {
		return context.WithValue(ctx, connKey{}, sc)
	}
	return ctx
}

// HTTPServer returns an http.Server serving s that times arrivals on a StampListener's
// connections (give it one to Serve).
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ConnContext: ConnContext}
}

// arrived is when r reached this host: the receive time of its bytes on a timed connection, when
// known and not after now (the handler's start), else now.
func arrived(r *http.Request, now time.Time) time.Time {
	sc, ok := r.Context().Value(connKey{}).(*stampConn)
	if !ok {
		return now
	}
	at := sc.received()
	if at.IsZero() || at.After(now) || now.Sub(at) > time.Minute {
		return now
	}
	return at
}

// Listen listens on addr (TCP) for a Server's HTTPServer, arrivals timed (StampListener).
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return StampListener(l), nil
}

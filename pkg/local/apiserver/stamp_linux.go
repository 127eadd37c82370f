package apiserver

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// StampListener wraps l (a TCP listener) so that every connection it accepts remembers when the
// kernel received the bytes of its latest read (SO_TIMESTAMPNS): a Server serving it (through an
// http.Server whose ConnContext is ConnContext) times each request's arrival at this host, not
// when its handler got the CPU. The difference is the stand-in's own scheduling delay, which a
// partner's API on its own hosts does not share with its clients. Timestamps are enabled on the
// listening socket, so that accepted connections have them from their first byte (a client may
// send before Accept returns); a connection without them is served untimed, and so are the
// bytes received before the kernel has turned stamping on (it does so shortly after the first
// socket asks).
func StampListener(l net.Listener) net.Listener {
	if tl, ok := l.(*net.TCPListener); ok {
		if raw, err := tl.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) { _ = enableStamps(fd) })
		}
	}
	return stampListener{l}
}

func enableStamps(fd uintptr) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
}

type stampListener struct{ net.Listener }

func (l stampListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = enableStamps(fd) }); err != nil || serr != nil {
		return c, nil
	}
	return &stampConn{TCPConn: tc, raw: raw, oob: make([]byte, syscall.CmsgSpace(16))}, nil
}

// stampConn reads with recvmsg to get each read's receive timestamp.
type stampConn struct {
	*net.TCPConn
	raw syscall.RawConn
	oob []byte // one SCM_TIMESTAMPNS; reads are not concurrent (net/http reads a connection from one goroutine at a time)

	mu   sync.Mutex
	last time.Time // receive time of the bytes the latest read returned; zero: not stamped
}

func (c *stampConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n, oobn int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), p, c.oob, 0)
		return rerr != syscall.EAGAIN
	})
	switch {
	case err != nil: // a deadline or a closed connection, as net.Conn reports them
		return 0, err
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: rerr}
	case n == 0:
		return 0, io.EOF
	}
	at, _ := receiveTime(c.oob[:oobn]) // none: zero, and the request is timed by its handler
	c.mu.Lock()
	c.last = at
	c.mu.Unlock()
	return n, nil
}

// received is when the kernel received the bytes of the latest read; zero before any.
func (c *stampConn) received() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// receiveTime finds the SCM_TIMESTAMPNS in a recvmsg's control data.
func receiveTime(oob []byte) (time.Time, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

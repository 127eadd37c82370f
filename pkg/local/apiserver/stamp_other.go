//go:build !linux

package apiserver

import (
	"net"
	"time"
)

// StampListener returns l: receive timestamps are read on Linux only, so elsewhere a request's
// arrival is when its handler starts.
func StampListener(l net.Listener) net.Listener { return l }

// stampConn is never made off Linux.
type stampConn struct{ net.Conn }

func (c *stampConn) received() time.Time { return time.Time{} }

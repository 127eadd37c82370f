// Package syncbuf is a bytes.Buffer that goroutines may write and read at once: tests hand it to
// loggers, pollers and child processes and read what they wrote.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects writes. The zero value is ready to use; it is safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail returns at most the last n bytes written.
func (b *Buffer) Tail(n int) string {
	s := b.String()
	return s[max(0, len(s)-n):]
}

package ingest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"unicode/utf8"
)

// MaxRawBytes is the most bytes of a rejected line kept in the rejects object.
const MaxRawBytes = 1 << 10

// ReasonDuplicateID is the reason of a line whose order id came earlier in the same file.
const ReasonDuplicateID = "duplicate id"

// ReasonTooLarge is the reason of an order whose message (body and attributes) is larger than
// MaxMessageBytes: the queue would refuse the whole batch.
const ReasonTooLarge = "order message larger than 1048576 bytes"

// Reject is one line of the rejects object.
type Reject struct {
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
	Raw    string `json:"raw"` // at most the first MaxRawBytes of the line, cut at a rune boundary
}

// rejectLog collects the rejects of one invocation in a temporary file, so that memory stays
// bounded whatever the number of rejects. It is safe for concurrent use.
type rejectLog struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
	n  int64 // rejects in the file
}

func (l *rejectLog) add(line int64, reason string, raw []byte) error {
	raw = truncate(raw, MaxRawBytes)
	b, err := json.Marshal(Reject{Line: line, Reason: reason, Raw: string(raw)})
	if err != nil {
		return fmt.Errorf("encode reject of line %d: %w", line, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		if l.f, err = os.CreateTemp("", "orderpipe-rejects-*.jsonl"); err != nil {
			return fmt.Errorf("create rejects file: %w", err)
		}
		l.w = bufio.NewWriter(l.f)
	}
	l.w.Write(b)
	if err := l.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("write reject of line %d: %w", line, err)
	}
	l.n++
	return nil
}

func (l *rejectLog) count() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// reader flushes the log and returns its content from the start.
func (l *rejectLog) reader() (io.ReadSeeker, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil, 0, nil
	}
	if err := l.w.Flush(); err != nil {
		return nil, 0, fmt.Errorf("write rejects file: %w", err)
	}
	size, err := l.f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = l.f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("rewind rejects file: %w", err)
	}
	return l.f, size, nil
}

// reset empties the log after its content was saved.
func (l *rejectLog) reset() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n = 0
	if l.f == nil {
		return nil
	}
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate rejects file: %w", err)
	}
	_, err := l.f.Seek(0, io.SeekStart)
	l.w.Reset(l.f)
	return err
}

// truncate cuts b to at most n bytes without splitting a UTF-8 sequence at the end.
func truncate(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[:n]
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				b = b[:i]
			}
			break
		}
	}
	return b
}

func (l *rejectLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		os.Remove(l.f.Name())
		l.f = nil
	}
}

package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

func TestConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got, want := b.String(), strings.Repeat("x", 800); got != want {
		t.Errorf("String() has %d bytes, want %d", len(got), len(want))
	}
}

func TestTail(t *testing.T) {
	var b Buffer
	b.Write([]byte("hello world"))
	for _, tt := range []struct {
		n    int
		want string
	}{{5, "world"}, {0, ""}, {100, "hello world"}} {
		if got := b.Tail(tt.n); got != tt.want {
			t.Errorf("Tail(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

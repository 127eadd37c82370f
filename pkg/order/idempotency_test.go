package order_test

import (
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/pkg/order"
)

func TestIdempotencyKey(t *testing.T) {
	a := order.IdempotencyKey("A-1", []byte(`{"id":"A-1","amount":"10.00"}`))
	if got := order.IdempotencyKey("A-1", []byte(`{"id":"A-1","amount":"10.00"}`)); got != a {
		t.Errorf("same content: got %q, want %q", got, a)
	}
	if got := order.IdempotencyKey("A-1", []byte(`{"id":"A-1","amount":"10.01"}`)); got == a {
		t.Errorf("another body: got the same key %q", got)
	}
	if !strings.HasPrefix(a, "A-1~") || len(a) != len("A-1~")+32 {
		t.Errorf("key %q: want the id, ~ and 32 hex digits", a)
	}
	long := strings.Repeat("x", 128)
	if got := len(order.IdempotencyKey(long, nil)); got != 161 {
		t.Errorf("longest key: got %d bytes, want 161", got)
	}
}

package order_test

import (
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/order"
)

func TestStripParking(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   map[string]string
		want map[string]string
	}{
		{"nil", nil, nil},
		{"only parking", map[string]string{order.AttrFailureClass: "x", order.AttrFailureDetail: "x", order.AttrAttempts: "1", order.AttrParkedAt: "t", order.AttrRetries: "2"}, nil},
		{"mixed", map[string]string{order.AttrOrderID: "o1", order.AttrLine: "3", "Custom": "c", order.AttrFailureClass: "exhausted", order.AttrRetries: "2"},
			map[string]string{order.AttrOrderID: "o1", order.AttrLine: "3", "Custom": "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.in)
			got := order.StripParking(tc.in)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("StripParking (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.in); diff != "" {
				t.Errorf("StripParking changed its input (-before +after):\n%s", diff)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	a := order.IdempotencyKey("A-1", []byte(`{"id":"A-1","amount":"1.00"}`))
	if want := "A-1:"; len(a) != len(want)+16 || a[:len(want)] != want {
		t.Errorf("key %q, want A-1: and 16 hex digits", a)
	}
	if b := order.IdempotencyKey("A-1", []byte(`{"id":"A-1","amount":"1.00"}`)); b != a {
		t.Errorf("same order: keys %q and %q, want equal", a, b)
	}
	if b := order.IdempotencyKey("A-1", []byte(`{"id":"A-1","amount":"9.00"}`)); b == a {
		t.Errorf("changed body: key %q unchanged", b)
	}
}

func TestBodyID(t *testing.T) {
	for _, tc := range []struct {
		body, field, wantID, wantReason string
	}{
		{`{"id":"A-1","x":{"id":"inner"}}`, "", "A-1", ""},
		{`{"orderId":"B-2","id":"other"}`, "orderId", "B-2", ""},
		{`{"x":1}`, "", "", order.ReasonMissingID},
		{`{"id":1}`, "", "", order.ReasonIDNotString},
		{`{"id":"A","id":"B"}`, "", "", order.ReasonDuplicateID},
		{" \n", "", "", order.ReasonInvalidJSON},
		{"{\"id\":\"\xff\"}", "", "", order.ReasonInvalidUTF8},
	} {
		id, reason := order.BodyID([]byte(tc.body), tc.field)
		if id != tc.wantID || reason != tc.wantReason {
			t.Errorf("BodyID(%q, %q) = %q, %q; want %q, %q", tc.body, tc.field, id, reason, tc.wantID, tc.wantReason)
		}
	}
}

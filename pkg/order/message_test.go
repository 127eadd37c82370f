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
		{"a fresh throttle budget too", map[string]string{order.AttrOrderID: "o2", order.AttrThrottledSince: "2026-01-01T00:00:00Z", order.AttrFailureClass: "throttled"},
			map[string]string{order.AttrOrderID: "o2"}},
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

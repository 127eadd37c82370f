package order

import (
	"bytes"
	"slices"
	"strings"
	"unicode/utf8"
)

// Message attribute names of the order message on the orders queue (docs/CONTRACTS.md).
const (
	AttrOrderID       = "OrderId"       // String: the order id
	AttrSource        = "Source"        // String: s3://bucket/key
	AttrSourceVersion = "SourceVersion" // String: S3 version id, or NullVersion
	AttrLine          = "Line"          // Number: 1-based line number in the file
	AttrRetries       = "Retries"       // Number, optional (absent = 0): transient attempts spent by earlier copies (set by dispatch)
	AttrRedrives      = "Redrives"      // Number, optional (absent = 0): times redrive moved the order back from the DLQ (set by redrive, kept by dispatch when it parks)
	// AttrThrottledSince is String, optional: RFC 3339 UTC, when the API first throttled this
	// order (set by dispatch on the copies it re-sends after a throttle).
	AttrThrottledSince = "ThrottledSince"
)

// Attribute names added when a message is parked on the orders dead-letter queue.
const (
	AttrFailureClass  = "FailureClass"  // String: one of the Class* values
	AttrFailureDetail = "FailureDetail" // String: short, secret-free reason
	AttrAttempts      = "Attempts"      // Number: attempt number when parked (Retries + receive count)
	AttrParkedAt      = "ParkedAt"      // String: RFC 3339 UTC
)

// ParkingAttributes are the attributes added when a message is parked, in the order above. Do
// not modify it.
var ParkingAttributes = []string{AttrFailureClass, AttrFailureDetail, AttrAttempts, AttrParkedAt}

// StripParking returns a copy of attrs without the ParkingAttributes, Retries and
// ThrottledSince: the attributes of an order going back to the orders queue (re-sent by
// dispatch or redriven from the DLQ), which starts a fresh retry and throttle budget. It
// returns nil when nothing is left.
func StripParking[M ~map[string]V, V any](attrs M) M {
	var out M
	for k, v := range attrs {
		if k == AttrRetries || k == AttrThrottledSince || slices.Contains(ParkingAttributes, k) {
			continue
		}
		if out == nil {
			out = make(M, len(attrs))
		}
		out[k] = v
	}
	return out
}

// Failure classes of a parked message.
const (
	ClassPermanent   = "permanent"   // the API refused the order (a 4xx: orderapi.ClassifyStatus)
	ClassExhausted   = "exhausted"   // transient failures past the retry budget
	ClassUndecodable = "undecodable" // the message itself is unusable
	ClassUnknown     = "unknown"     // parked by the queue's redrive policy, not by dispatch
	ClassThrottled   = "throttled"   // throttled by the API for longer than dispatch's MAX_THROTTLED in all
)

// Classes lists every failure class, in the order above. Do not modify it.
var Classes = []string{ClassPermanent, ClassExhausted, ClassUndecodable, ClassUnknown, ClassThrottled}

// NullVersion stands for the version of an object in an unversioned bucket.
const NullVersion = "null"

// BodyID returns the order id in body, a JSON object, under the top-level key field, with the
// rules of a JSON Lines line (order.Reader.Next): or the reason there is none.
func BodyID(body []byte, field string) (id, reason string) {
	if !utf8.Valid(body) {
		return "", ReasonInvalidUTF8
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return "", ReasonInvalidJSON
	}
	r := &Reader{id: field}
	if r.id == "" {
		r.id = DefaultIDField
	}
	o, reason := r.parseJSON(body)
	return strings.Clone(o.ID), reason
}

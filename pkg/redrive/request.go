package redrive

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/orderpipe/orderpipe/pkg/order"
)

// ErrBadRequest is wrapped by every error about the Request itself (as opposed to the queues).
var ErrBadRequest = errors.New("bad redrive request")

// Classes is a set of failure classes (order.Class*). In JSON it is an array of strings or one
// string of comma-separated classes: ["permanent","unknown"] or "permanent,unknown".
type Classes []string

// UnmarshalJSON accepts an array of strings, a comma-separated string or null.
func (c *Classes) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*c = list
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("class: want a string or an array of strings: %w", err)
	}
	*c = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*c = append(*c, p)
		}
	}
	return nil
}

// Request says which parked messages to move and how. The zero value moves every message with
// the selective move.
type Request struct {
	// Class selects messages whose FailureClass is one of these; empty selects every class.
	Class Classes `json:"class,omitempty"`
	// Source selects by the Source attribute: an exact s3://bucket/key, or a prefix when it ends
	// in "*" ("s3://bucket/uploads/2026/*"). Empty selects every source.
	Source string `json:"source,omitempty"`
	// Max stops after this many selected messages; 0 means no limit.
	Max int `json:"max,omitempty"`
	// DryRun lists what would move and moves nothing (see the package doc for its side effects).
	DryRun bool `json:"dryRun,omitempty"`
	// Native asks for the service's own message move task. It cannot select, so it is refused
	// with Class, Source, Max or DryRun. It falls back to the selective move when the service
	// does not implement it.
	Native bool `json:"native,omitempty"`
	// MaxRedrives, when > 0, selects only orders redriven fewer times than this (their Redrives
	// attribute): an order that keeps failing stays parked for a person instead of going round
	// for ever. 0 means no cap.
	MaxRedrives int `json:"maxRedrives,omitempty"`
	// Operator names who asked for the run, in every Move record; empty is UnnamedOperator.
	Operator string `json:"operator,omitempty"`
}

// UnnamedOperator is the Move.Operator of a Request without one (a scheduled redrive).
const UnnamedOperator = "unnamed"

func (r Request) operator() string {
	if r.Operator == "" {
		return UnnamedOperator
	}
	return r.Operator
}

// Validate returns an error wrapping ErrBadRequest when the request cannot be run.
func (r Request) Validate() error {
	var errs []error
	for _, c := range r.Class {
		if !slices.Contains(order.Classes, c) {
			errs = append(errs, fmt.Errorf("class %q: want one of %s", c, strings.Join(order.Classes, ", ")))
		}
	}
	if r.Max < 0 {
		errs = append(errs, fmt.Errorf("max %d: must be >= 0", r.Max))
	}
	if r.MaxRedrives < 0 {
		errs = append(errs, fmt.Errorf("maxRedrives %d: must be >= 0", r.MaxRedrives))
	}
	if r.Native && r.selects() {
		errs = append(errs, errors.New("native move cannot select: drop class, source, max, maxRedrives and dryRun, or drop native"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrBadRequest, errors.Join(errs...))
	}
	return nil
}

func (r Request) selects() bool {
	return len(r.Class) > 0 || r.Source != "" || r.Max > 0 || r.MaxRedrives > 0 || r.DryRun
}

// Matches reports whether a parked message is selected by the class, source and MaxRedrives
// filters (Max and DryRun aside).
func (r Request) Matches(e Entry) bool {
	if len(r.Class) > 0 && !slices.Contains(r.Class, e.Class) {
		return false
	}
	if r.MaxRedrives > 0 && e.Redrives >= r.MaxRedrives {
		return false
	}
	if r.Source == "" {
		return true
	}
	if prefix, ok := strings.CutSuffix(r.Source, "*"); ok {
		return strings.HasPrefix(e.Source, prefix)
	}
	return e.Source == r.Source
}

// Modes of a Result.
const (
	ModeSelective = "selective"
	ModeNative    = "native"
)

// Why a selective scan stopped (Result.Stop).
const (
	StopEmpty    = "empty"    // a receive came back empty
	StopSeen     = "seen"     // a receive brought back only messages already scanned
	StopMax      = "max"      // Request.Max messages selected
	StopBound    = "bound"    // scanned ApproximateNumberOfMessages plus a margin
	StopDeadline = "deadline" // the context deadline was near
	StopError    = "error"    // Run returned an error
)

// MaxListing bounds Result.Listing so that a Lambda response stays small.
const MaxListing = 1000

// Result reports a run. Counts are of distinct messages.
type Result struct {
	Mode     string `json:"mode"`               // ModeSelective or ModeNative
	Fallback bool   `json:"fallback,omitempty"` // native was asked and not implemented: selective ran
	DryRun   bool   `json:"dryRun,omitempty"`
	Stop     string `json:"stop,omitempty"` // selective: why the scan stopped (Stop*)

	Scanned      int `json:"scanned"`                // received from the DLQ
	Selected     int `json:"selected"`               // matched the filters, within Max
	Moved        int `json:"moved"`                  // sent to the orders queue
	Skipped      int `json:"skipped"`                // not selected, left in the DLQ
	Failed       int `json:"failed"`                 // selected, not sent: still in the DLQ
	DeleteFailed int `json:"deleteFailed,omitempty"` // sent but not deleted: also still in the DLQ
	// AlreadyMoved counts messages an earlier run sent (their Move record says MoveSent) and
	// did not delete: deleted now, not sent again.
	AlreadyMoved int `json:"alreadyMoved,omitempty"`
	// Resent counts messages an earlier run recorded as sending and ended before recording
	// them sent: sent again (their Move record's Resends says how often), as that run may not
	// have sent them.
	Resent   int `json:"resent,omitempty"`
	Released int `json:"released"` // made visible again in the DLQ at the end

	ByClass map[string]ClassCount `json:"byClass,omitempty"`

	// Listing holds the selected messages of a dry run, at most MaxListing of them.
	Listing          []Entry `json:"listing,omitempty"`
	ListingTruncated bool    `json:"listingTruncated,omitempty"`

	Task *Task `json:"task,omitempty"` // native: the move task started
}

// ClassCount counts the messages of one failure class.
type ClassCount struct {
	Scanned  int `json:"scanned"`
	Selected int `json:"selected"`
	Moved    int `json:"moved"`
	Failed   int `json:"failed,omitempty"`
}

func (r *Result) count(class string, f func(*ClassCount)) {
	if r.ByClass == nil {
		r.ByClass = map[string]ClassCount{}
	}
	c := r.ByClass[class]
	f(&c)
	r.ByClass[class] = c
}

// Entry describes one parked message, from its attributes.
type Entry struct {
	MessageID     string `json:"messageId"`
	OrderID       string `json:"orderId,omitempty"`
	Class         string `json:"class"`
	Detail        string `json:"detail,omitempty"`
	Source        string `json:"source,omitempty"`
	SourceVersion string `json:"sourceVersion,omitempty"`
	Line          int    `json:"line,omitempty"`
	Attempts      int    `json:"attempts,omitempty"`
	ParkedAt      string `json:"parkedAt,omitempty"`
	Redrives      int    `json:"redrives,omitempty"` // times redriven before (order.AttrRedrives)
}

// Task is the state of a native message move task.
type Task struct {
	Handle         string    `json:"handle,omitempty"` // only while running
	Status         string    `json:"status"`           // RUNNING, COMPLETED, CANCELLING, CANCELLED, FAILED
	SourceARN      string    `json:"sourceArn"`
	DestinationARN string    `json:"destinationArn,omitempty"`
	Rate           int32     `json:"rate,omitempty"`
	ToMove         int64     `json:"toMove,omitempty"`
	Moved          int64     `json:"moved"`
	StartedAt      time.Time `json:"startedAt,omitzero"`
	FailureReason  string    `json:"failureReason,omitempty"`
}

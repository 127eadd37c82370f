package dispatch

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// MetricsNamespace is the CloudWatch namespace of the dispatch metrics.
const MetricsNamespace = "orderpipe"

// Metric names, emitted once per invocation in the Embedded Metric Format.
const (
	MetricSent       = "Sent"       // orders the API accepted (2xx)
	MetricThrottled  = "Throttled"  // 429/503 answers
	MetricTransient  = "Transient"  // 5xx, timeouts, connection errors retried via visibility
	MetricPermanent  = "Permanent"  // orders parked at once: refused by the API or undecodable
	MetricExhausted  = "Exhausted"  // orders parked after the transient budget
	MetricApiLatency = "ApiLatency" // milliseconds per PUT, one value per request
	MetricPacingWait = "PacingWait" // milliseconds spent waiting for the request slot, per order

	MetricApiRate        = "ApiRate"        // the shared rate in force, requests/s (when a slot was taken)
	MetricGovernorMargin = "GovernorMargin" // milliseconds: the margin the slot was reserved with (when a slot was taken)
	MetricBreakerOpen    = "BreakerOpen"    // 1 when the invocation met the open circuit breaker, else 0
	MetricHeld           = "Held"           // orders given back unsent: schedule full, paused, breaker open
	MetricGovernorErrors = "GovernorErrors" // governor store calls that failed

	// Delivery record (pkg/delivery) counts.
	MetricDuplicates      = "Duplicates"      // copies of delivered orders, deleted unsent
	MetricHeldElsewhere   = "HeldElsewhere"   // copies given back: another instance was sending the order
	MetricPossibleRepeats = "PossibleRepeats" // PUTs after an earlier try that ended without a record
	MetricLedgerErrors    = "LedgerErrors"    // delivery record reads or writes that failed
)

// MetricDimension is the one dimension of every dispatch metric: its value is the function name.
const MetricDimension = "Function"

// OutcomeMetrics returns the names of the outcome counts, one per order outcome, in the order
// they are emitted.
func OutcomeMetrics() []string {
	return []string{MetricSent, MetricThrottled, MetricTransient, MetricPermanent, MetricExhausted}
}

// maxEMFValues is the most values EMF accepts for one metric in one line.
const maxEMFValues = 100

// metrics are the counts of one invocation.
type metrics struct {
	sent, throttled, transient, permanent, exhausted int
	// the delivery record's counts, emitted when a record was used (recorded)
	recorded                                bool
	duplicates, held, repeats, ledgerErrors int
	latencyMs, waitMs                       []float64

	// the governor's
	govHeld, lateSlots, governorErrors int
	breakerOpen                        bool
	rate                               float64       // the shared rate of the last slot taken; 0: none
	margin                             time.Duration // the widest margin of the slots taken; 0: none
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMeta struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

// writeEMF writes m as one EMF JSON line with the dimension Function=function. A metric list with
// no values (no PUT made) is left out, as EMF requires every declared metric to have a value.
func writeEMF(w io.Writer, now time.Time, function string, m metrics) error {
	doc := map[string]any{MetricDimension: function}
	var declared []emfMetric
	add := func(name, unit string, v any) {
		declared = append(declared, emfMetric{name, unit})
		doc[name] = v
	}
	add(MetricSent, "Count", m.sent)
	add(MetricThrottled, "Count", m.throttled)
	add(MetricTransient, "Count", m.transient)
	add(MetricPermanent, "Count", m.permanent)
	add(MetricExhausted, "Count", m.exhausted)
	add(MetricHeld, "Count", m.govHeld)
	add(MetricGovernorErrors, "Count", m.governorErrors)
	open := 0
	if m.breakerOpen {
		open = 1
	}
	add(MetricBreakerOpen, "None", open)
	if m.rate > 0 {
		add(MetricApiRate, "Count/Second", m.rate)
	}
	if m.margin > 0 {
		add(MetricGovernorMargin, "Milliseconds", ms(m.margin))
	}
	if m.recorded {
		add(MetricDuplicates, "Count", m.duplicates)
		add(MetricHeldElsewhere, "Count", m.held)
		add(MetricPossibleRepeats, "Count", m.repeats)
		add(MetricLedgerErrors, "Count", m.ledgerErrors)
	}
	if len(m.latencyMs) > 0 {
		add(MetricApiLatency, "Milliseconds", m.latencyMs[:min(len(m.latencyMs), maxEMFValues)])
	}
	if len(m.waitMs) > 0 {
		add(MetricPacingWait, "Milliseconds", m.waitMs[:min(len(m.waitMs), maxEMFValues)])
	}
	doc["_aws"] = emfMeta{
		Timestamp: now.UnixMilli(),
		CloudWatchMetrics: []emfDirective{{
			Namespace:  MetricsNamespace,
			Dimensions: [][]string{{MetricDimension}},
			Metrics:    declared,
		}},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode EMF metrics: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write EMF metrics: %w", err)
	}
	return nil
}

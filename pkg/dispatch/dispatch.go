package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/backoff"
	"github.com/orderpipe/orderpipe/internal/clock"
	"github.com/orderpipe/orderpipe/internal/detach"
	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// Queue is the part of the SQS client the Dispatcher uses.
type Queue interface {
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// OrderAPI is the part of *orderapi.Client the Dispatcher uses.
type OrderAPI interface {
	Put(ctx context.Context, id string, body []byte) (orderapi.Result, error)
	BudgetAt(ctx context.Context, start time.Time) time.Duration
	// Authorize readies the request's Authorization before pacing: Put must not fetch it
	// between the slot's start and the write.
	Authorize(ctx context.Context) error
}

// Governor is the part of *governor.Governor the Dispatcher uses: the schedule, pause, rate and
// breaker shared by every instance.
type Governor interface {
	Reserve(ctx context.Context, fits func(time.Time) bool) (governor.Slot, error)
	Report(ctx context.Context, slot governor.Slot, o governor.Outcome) (governor.State, error)
	Retake(ctx context.Context, slot governor.Slot) (governor.Slot, error)
	// Woke records a wake-up too late for slot, Sent a request sent in it (started, written):
	// the governor's margin adapts to how late they left, and Usable allows for how long
	// requests take to be written.
	Woke(slot governor.Slot, at time.Time)
	Sent(slot governor.Slot, start, wrote time.Time)
	// Usable says whether a sender that woke at woke may still send in slot.
	Usable(slot governor.Slot, woke time.Time) bool
	// Opened says whether the state Report returned records the report that opened the breaker.
	Opened(st governor.State) bool
}

// Clock is the Dispatcher's time. Sleep returns early with ctx's error.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

// Options are the Dispatcher's injected dependencies; every zero field takes the real one.
type Options struct {
	Clock   Clock          // default: the system clock
	Rand    func() float64 // [0, 1), for backoff jitter; default math/rand/v2
	Logger  *slog.Logger   // default slog.Default()
	Metrics io.Writer      // EMF lines; default os.Stdout
	// Governor paces every request. Default: one of this Dispatcher's own (an in-process store)
	// at PerInstanceRate: each instance alone, as without a GOVERNOR_TABLE.
	Governor Governor
	// Ledger keeps each order's delivery record; nil: none (every copy is sent).
	Ledger Ledger
}

// Limits of SQS used when deciding visibility.
const (
	// maxVisibility keeps a margin under the 12 h a message may stay invisible in total since
	// its receipt: the ESM received it moments before the invocation.
	maxVisibility = pipeline.MaxVisibility - 5*time.Minute
	maxDelay      = pipeline.MaxDelay
	maxAttributes = 10              // message attributes per SQS message
	sqsCallBudget = 5 * time.Second // bookkeeping calls run detached from the invocation's cancel
	// responseReserve is left between the last bookkeeping call and the invocation's deadline,
	// for the response to reach Lambda: a call still running at the deadline is a killed
	// invocation, and then the whole batch comes back, copies already re-sent included.
	responseReserve = 100 * time.Millisecond
)

// Dispatcher delivers order messages to the order API at the paced rate. One Dispatcher lives
// for the whole process (a warm Lambda instance). It is
// safe for concurrent use.
type Dispatcher struct {
	cfg    Config
	queue  Queue
	api    OrderAPI
	clock  Clock
	rand   func() float64
	log    *slog.Logger
	gov    Governor
	ledger Ledger

	mu         sync.Mutex
	metricsOut io.Writer
	storeLog   time.Time // the last governor store error logged at error level
}

// New returns a Dispatcher. cfg must be valid (LoadConfig or Config.Validate).
func New(cfg Config, queue Queue, api OrderAPI, opts Options) *Dispatcher {
	d := &Dispatcher{cfg: cfg, queue: queue, api: api, clock: opts.Clock, rand: opts.Rand,
		log: opts.Logger, gov: opts.Governor, ledger: opts.Ledger, metricsOut: opts.Metrics}
	if d.clock == nil {
		d.clock = clock.System{}
	}
	if d.rand == nil {
		d.rand = rand.Float64
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.metricsOut == nil {
		d.metricsOut = os.Stdout
	}
	if d.gov == nil {
		// PerInstanceRate is finite and > 0 in a valid Config: New cannot fail.
		d.gov, _ = governor.New(cfg.Governor(cfg.PerInstanceRate()), &governor.MemoryStore{}, d.clock)
	}
	if d.cfg.MaxThrottled == 0 {
		d.cfg.MaxThrottled = DefaultMaxThrottled
	}
	if d.cfg.MinRequest == 0 {
		d.cfg.MinRequest = time.Second
	}
	d.cfg.MinRequest = min(d.cfg.MinRequest, d.cfg.APITimeout)
	return d
}

// Handle processes the batch in order and reports every message that must come back as a
// BatchItemFailure; the others are deleted by the event source mapping. It never returns an
// error: each message's fate is decided on its own.
func (d *Dispatcher) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	var m metrics
	for _, msg := range ev.Records {
		if !d.process(ctx, msg, &m) {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
		}
	}
	d.mu.Lock()
	err := writeEMF(d.metricsOut, d.clock.Now(), d.cfg.FunctionName, m)
	d.mu.Unlock()
	if err != nil {
		d.log.ErrorContext(ctx, "metrics not written", "error", err)
	}
	return resp, nil
}

// action is what happens to a message after its outcome.
type action int

const (
	actDone     action = iota // delivered: delete
	actRetry                  // make visible again after visibility
	actPark                   // send to the DLQ with class and detail, then delete
	actRequeue                // re-send a fresh copy delayed by visibility, then delete
	actGiveBack               // not attempted: visible again at once
)

// decision is the fate of one message.
type decision struct {
	act        action
	class      string        // outcome for logs and metrics: delivered, throttled, transient, permanent, exhausted, undecodable, given-back
	parkClass  string        // order.Class* when parking
	detail     string        // reason, secret-free
	visibility time.Duration // for actRetry, actRequeue
	retries    int           // for actRequeue: the fresh copy's Retries attribute
	since      string        // for actRequeue: the fresh copy's ThrottledSince attribute ("" none)
}

// decide maps an API outcome and the attempt number of this try (Retries + receive count) to
// its fate (see doc.go).
func (d *Dispatcher) decide(res orderapi.Result, attempts int) decision {
	switch res.Class {
	case orderapi.Delivered:
		return decision{act: actDone, class: "delivered"}
	case orderapi.Permanent:
		return decision{act: actPark, class: "permanent", parkClass: order.ClassPermanent, detail: res.Detail}
	case orderapi.Throttled:
		wait := d.backoff(attempts)
		if res.HasRetryAfter {
			wait = res.RetryAfter
		}
		return d.notAttempted(attempts, decision{act: actRetry, class: "throttled", detail: res.Detail,
			visibility: min(max(wait, time.Second), maxVisibility)})
	default:
		detail := "transient: " + res.Detail
		if res.Timeout {
			detail = "timeout: " + res.Detail
		}
		if attempts >= d.cfg.MaxAttempts {
			return decision{act: actPark, class: "exhausted", parkClass: order.ClassExhausted, detail: detail}
		}
		return decision{act: actRetry, class: "transient", detail: detail, visibility: d.backoff(attempts)}
	}
}

// boundThrottle parks an order the API has throttled for cfg.MaxThrottled in all, counted from
// the ThrottledSince attribute of its copy; otherwise it carries that attribute to the copy a
// requeue sends, stamped with now at the first throttle. Other outcomes keep it as it is.
func (d *Dispatcher) boundThrottle(msg events.SQSMessage, dec decision) decision {
	var raw string
	if a, ok := msg.MessageAttributes[order.AttrThrottledSince]; ok && a.StringValue != nil {
		raw = *a.StringValue
	}
	since, err := time.Parse(time.RFC3339, raw)
	if dec.class != "throttled" {
		if err == nil {
			dec.since = raw
		}
		return dec
	}
	now := d.clock.Now()
	if err != nil { // the first throttle (or an unreadable stamp: the count starts again)
		dec.since = now.UTC().Format(time.RFC3339)
		return dec
	}
	if throttled := now.Sub(since); throttled >= d.cfg.MaxThrottled {
		return decision{act: actPark, class: dec.class, parkClass: order.ClassThrottled,
			detail: fmt.Sprintf("throttled for %v since %s (%s %v): %s", throttled.Round(time.Second), raw, EnvMaxThrottled, d.cfg.MaxThrottled, dec.detail)}
	}
	dec.since = raw
	return dec
}

// giveBack returns a message that was not attempted: visible again once the pacing wait it could
// not afford has passed (0 when the deadline, not the wait, was the problem).
func (d *Dispatcher) giveBack(attempts int, wait time.Duration, detail string) decision {
	return d.notAttempted(attempts, decision{act: actGiveBack, class: "given-back", detail: detail, visibility: min(wait, maxVisibility)})
}

// notAttempted keeps throttles and give-backs from spending the transient budget: the message
// is re-sent as a fresh copy (receive count 1) delayed by the wait, carrying Retries =
// attempts-1 since this receive was no transient attempt. A wait beyond SendMessage's delay
// maximum keeps dec (a visibility change, so this receive counts), unless the next receive
// would reach MaxAttempts: then the copy is re-sent early, at the delay maximum.
func (d *Dispatcher) notAttempted(attempts int, dec decision) decision {
	if dec.visibility <= maxDelay || attempts+1 >= d.cfg.MaxAttempts {
		dec.act, dec.visibility, dec.retries = actRequeue, min(dec.visibility, maxDelay), max(attempts-1, 0)
	}
	return dec
}

// backoff is exponential with full jitter: uniform in [0, min(max, base*2^(attempts-1))), at
// least 1 s so a failing order never spins, and at most maxVisibility (BACKOFF_MAX may be 12 h,
// which SQS refuses as a visibility change after the receive).
func (d *Dispatcher) backoff(attempts int) time.Duration {
	p := backoff.Policy{Base: d.cfg.BackoffBase, Max: d.cfg.BackoffMax}
	return min(max(p.FullJitter(attempts, d.rand()), time.Second), maxVisibility)
}

// process decides and carries out one message's fate, and reports whether it may be deleted.
func (d *Dispatcher) process(ctx context.Context, msg events.SQSMessage, m *metrics) bool {
	attempts := retries(msg) + receiveCount(msg)
	log := d.log.With("messageID", msg.MessageId, "attempts", attempts)
	id, reason := decode(msg, d.cfg.IDField)
	if reason != "" {
		m.permanent++
		return d.apply(ctx, log, msg, attempts, decision{act: actPark, class: "undecodable", parkClass: order.ClassUndecodable, detail: reason})
	}
	log = log.With("orderID", id)
	claim, fate, ok := d.claim(ctx, log, msg, id, attempts, m)
	if !ok {
		return d.apply(ctx, log, msg, attempts, fate)
	}

	// The secret is fetched before the slot is taken: a fetch after the wake-up would send the
	// request late, closer than 1/rate to the next slot's (another instance's) request. When it
	// fails, the order fares as a request that could not be sent (transient).
	var slot governor.Slot
	res := orderapi.Result{Class: orderapi.Transient, Detail: "authorization secret unavailable"}
	if err := d.api.Authorize(ctx); err == nil {
		lost := 0 // slots this message gave up, late: at most maxLateSlots
		for {
			var wait time.Duration
			var why string
			if slot, wait, why, ok = d.pace(ctx, m, &lost); !ok {
				d.settle(ctx, log, claim, orderapi.Result{}, m)
				return d.apply(ctx, log, msg, attempts, d.giveBack(attempts, wait, why))
			}
			// The request is written by the slot's end or not at all: held up after the
			// wake-up, it could otherwise reach the API closer than 1/rate to the next slot's.
			start := d.clock.Now()
			var err error
			res, err = d.api.Put(orderapi.SendBy(ctx, slot.Late), id, []byte(msg.Body))
			if errors.Is(err, orderapi.ErrLate) {
				if d.lose(slot, d.clock.Now(), m, &lost) {
					continue // nothing sent: take another slot
				}
				d.settle(ctx, log, claim, orderapi.Result{}, m)
				return d.apply(ctx, log, msg, attempts, d.giveBack(attempts, 0, "request not written by the end of its slot"))
			}
			// How late the request left its slot (written, or else tried) is what the margin adapts to.
			left := res.Wrote
			if left.IsZero() {
				left = d.clock.Now()
			}
			d.gov.Sent(slot, start, left)
			log = log.With("slotAt", slot.At.UnixMicro(), "slotLate", slot.Late.UnixMicro(), "wrote", left.UnixMicro())
			break
		}
	}
	d.settle(ctx, log, claim, res, m)
	if res.Sent {
		m.latencyMs = append(m.latencyMs, ms(res.Latency))
		d.report(ctx, log, slot, res, m)
	}
	if !res.Sent && res.Class == orderapi.Transient && ctx.Err() != nil {
		return d.apply(ctx, log, msg, attempts, d.giveBack(attempts, 0, res.Detail))
	}
	dec := d.boundThrottle(msg, d.decide(res, attempts))
	if slot.Probe && outcome(res).Kind == governor.Failed {
		// The breaker's probe failed: the API is down, which says nothing about this order, so
		// it waits like the others without spending its budget.
		m.transient++
		return d.apply(ctx, log.With("status", res.Status), msg, attempts, d.giveBack(attempts, d.cfg.openHold(d.rand()), "breaker probe: "+res.Detail))
	}
	switch dec.class {
	case "delivered":
		m.sent++
	case "throttled":
		m.throttled++
	case "transient":
		m.transient++
	case "permanent":
		m.permanent++
	case "exhausted":
		m.exhausted++
	}
	log = log.With("status", res.Status, "latencyMs", ms(res.Latency))
	return d.apply(ctx, log, msg, attempts, dec)
}

// maxLateSlots bounds how many slots one message gives up, late (a late wake-up or a write the
// connection found late), before it is given back.
const maxLateSlots = 3

// lose records that slot was given up, its sender late at at: the governor's margin learns of
// it, and it counts towards the message's maxLateSlots (lost). It reports whether the message
// may take another slot.
func (d *Dispatcher) lose(slot governor.Slot, at time.Time, m *metrics, lost *int) bool {
	d.gov.Woke(slot, at)
	m.lateSlots++
	*lost++
	return *lost < maxLateSlots
}

// storeLogEvery is how often a failing governor store is logged at error level per instance;
// in between, at debug.
const storeLogEvery = time.Minute

// pace reserves a slot of the shared schedule and sleeps until it starts. A slot is reserved
// only where a request would still get MinRequest before the deadline. A wake-up too late for the
// request to be written by the slot's Late (Governor.Usable) gives the slot up (sending then
// could land closer than 1/rate to the next slot's request) and takes another, unless nobody
// reserved after it: then the slot moves to now (Governor.Retake); lost counts the slots the
// message gave up (lose). It reports false, with the delay the message should be given back
// with and why, when no slot fits (schedule full, paused, breaker open), the message has lost
// maxLateSlots, the governor's store fails (nothing sent that is not accounted for), or ctx ends.
func (d *Dispatcher) pace(ctx context.Context, m *metrics, lost *int) (governor.Slot, time.Duration, string, bool) {
	start := d.clock.Now()
	fits := func(at time.Time) bool { return d.api.BudgetAt(ctx, at) >= d.cfg.MinRequest }
	for {
		slot, err := d.gov.Reserve(ctx, fits)
		var wait *governor.WaitError
		switch {
		case errors.As(err, &wait):
			m.govHeld++
			delay := max(wait.Until.Sub(d.clock.Now()), 0)
			if wait.Reason == governor.ReasonOpen {
				m.breakerOpen = true
				delay = max(delay, d.cfg.openHold(d.rand()))
			}
			return governor.Slot{}, delay, "no request slot before the deadline: " + wait.Reason, false
		case err != nil && ctx.Err() != nil:
			return governor.Slot{}, 0, "deadline reached while reserving a request slot", false
		case err != nil:
			m.governorErrors++
			d.logStoreError(ctx, err)
			return governor.Slot{}, d.cfg.storeRetry(), "governor unavailable", false
		}
		m.rate = slot.Rate
		m.margin = max(m.margin, slot.Margin)
		m.breakerOpen = m.breakerOpen || slot.Probe
		if err := d.clock.Sleep(ctx, slot.At.Sub(d.clock.Now())); err != nil {
			return governor.Slot{}, 0, "deadline reached while waiting for the request slot", false
		}
		woke := d.clock.Now()
		if !d.gov.Usable(slot, woke) {
			// Woke late: move the slot to now if nobody reserved after it, else take another.
			more := d.lose(slot, woke, m, lost)
			moved, err := d.gov.Retake(ctx, slot)
			switch {
			case err == nil && d.gov.Usable(moved, d.clock.Now()):
				slot = moved
			case (err == nil || errors.Is(err, governor.ErrSlotTaken)) && more:
				continue // taken, or the move itself took too long: the next slot counts from it
			case err == nil || errors.Is(err, governor.ErrSlotTaken):
				return governor.Slot{}, 0, fmt.Sprintf("woke too late for the request slot (%v after it, margin %v)", woke.Sub(slot.At).Round(time.Microsecond), slot.Margin), false
			default:
				m.governorErrors++
				d.logStoreError(ctx, err)
				return governor.Slot{}, d.cfg.storeRetry(), "governor unavailable", false
			}
		}
		m.waitMs = append(m.waitMs, ms(d.clock.Now().Sub(start)))
		return slot, 0, "", true
	}
}

// report records the answer with the governor, detached from the invocation's cancel: a throttle
// or a failure must reach the other instances. A store error is counted and logged (the order's
// fate does not depend on it).
func (d *Dispatcher) report(ctx context.Context, log *slog.Logger, slot governor.Slot, res orderapi.Result, m *metrics) {
	rctx, cancel := bookkeepingContext(ctx)
	defer cancel()
	st, err := d.gov.Report(rctx, slot, outcome(res))
	if err != nil {
		m.governorErrors++
		d.logStoreError(ctx, err)
		return
	}
	if st.Open() {
		m.breakerOpen = true
	}
	if !slot.Probe && d.gov.Opened(st) {
		log.WarnContext(ctx, "circuit breaker opened: the order API keeps failing", "failures", st.Failures)
	}
}

// outcome is what an answer says about the API, for the governor.
func outcome(res orderapi.Result) governor.Outcome {
	o := governor.Outcome{Kind: governor.Answered, RetryAfter: res.RetryAfter, HasRetryAfter: res.HasRetryAfter,
		PolicyRate: res.RateLimit.PolicyRate, Remaining: res.RateLimit.Remaining, Reset: res.RateLimit.Reset,
		HasRemaining: res.RateLimit.HasRemaining}
	switch {
	case res.Status == http.StatusTooManyRequests:
		o.Kind = governor.Throttled
	case res.Status >= 500 || res.Timeout || res.ConnError:
		o.Kind = governor.Failed
	}
	return o
}

// logStoreError logs a governor store failure at error level once per storeLogEvery, at debug
// otherwise.
func (d *Dispatcher) logStoreError(ctx context.Context, err error) {
	now := d.clock.Now()
	d.mu.Lock()
	loud := d.storeLog.IsZero() || now.Sub(d.storeLog) >= storeLogEvery
	if loud {
		d.storeLog = now
	}
	d.mu.Unlock()
	if loud {
		d.log.ErrorContext(ctx, "governor unavailable: orders are given back unsent", "error", err)
		return
	}
	d.log.DebugContext(ctx, "governor unavailable", "error", err)
}

// apply carries out dec, logs the outcome once and reports whether the message may be deleted.
func (d *Dispatcher) apply(ctx context.Context, log *slog.Logger, msg events.SQSMessage, attempts int, dec decision) bool {
	sctx, cancel := bookkeepingContext(ctx)
	defer cancel()
	log = log.With("class", dec.class)
	if dec.detail != "" {
		log = log.With("detail", dec.detail)
	}
	switch dec.act {
	case actDone:
		if dec.class == classDuplicate {
			log.InfoContext(ctx, "order delivered already; copy deleted unsent")
			return true
		}
		log.InfoContext(ctx, "order delivered")
		return true
	case actPark:
		if err := d.park(sctx, msg, attempts, dec); err != nil {
			log.ErrorContext(ctx, "order not parked; it stays on the queue", "error", err)
			return false
		}
		log.WarnContext(ctx, "order parked", "failureClass", dec.parkClass)
		return true
	case actRequeue:
		err := d.requeue(sctx, msg, dec.retries, dec.since, dec.visibility)
		if err == nil {
			log.WarnContext(ctx, "order re-sent as a fresh message", "delaySec", seconds(dec.visibility))
			return true
		}
		log.WarnContext(ctx, "order not re-sent; retrying in place", "error", err)
	}
	// actRetry, actGiveBack, and a failed requeue: the message comes back after visibility.
	if err := d.setVisibility(sctx, msg, dec.visibility); err != nil {
		log.ErrorContext(ctx, "visibility not changed; the queue's timeout applies", "error", err, "visibilitySec", seconds(dec.visibility))
	} else {
		log.WarnContext(ctx, "order to retry", "visibilitySec", seconds(dec.visibility))
	}
	return false
}

// bookkeepingContext is the context of the SQS calls that carry out a decision: not cancelled
// with the invocation's ctx, at most sqsCallBudget, and ending responseReserve before ctx's
// deadline. A call cut short by it fails, and the message stays on the queue.
func bookkeepingContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return detach.Context(ctx, responseReserve, sqsCallBudget)
}

func (d *Dispatcher) setVisibility(ctx context.Context, msg events.SQSMessage, v time.Duration) error {
	_, err := d.queue.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(d.cfg.OrdersQueueURL),
		ReceiptHandle:     aws.String(msg.ReceiptHandle),
		VisibilityTimeout: int32(seconds(v)),
	})
	if err != nil {
		return fmt.Errorf("change visibility of message %s: %w", msg.MessageId, err)
	}
	return nil
}

// park sends the message to the DLQ with its original body and attributes plus the failure ones.
func (d *Dispatcher) park(ctx context.Context, msg events.SQSMessage, attempts int, dec decision) error {
	attrs := parkedAttributes(msg.MessageAttributes, dec.parkClass, dec.detail, attempts, d.clock.Now())
	_, err := d.queue.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:          aws.String(d.cfg.DLQURL),
		MessageBody:       aws.String(msg.Body),
		MessageAttributes: attrs,
	})
	if err != nil {
		return fmt.Errorf("park message %s: %w", msg.MessageId, err)
	}
	return nil
}

// requeue sends a fresh copy of the message to the orders queue, delayed, carrying Retries and
// ThrottledSince (when not empty).
func (d *Dispatcher) requeue(ctx context.Context, msg events.SQSMessage, retries int, since string, delay time.Duration) error {
	_, err := d.queue.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:          aws.String(d.cfg.OrdersQueueURL),
		MessageBody:       aws.String(msg.Body),
		MessageAttributes: requeuedAttributes(msg.MessageAttributes, retries, since),
		DelaySeconds:      int32(seconds(min(delay, maxDelay))),
	})
	if err != nil {
		return fmt.Errorf("re-send message %s: %w", msg.MessageId, err)
	}
	return nil
}

// decode returns the order id, or why the message cannot be dispatched: among others a body
// whose order id (top-level field idField) is not the OrderId attribute's, which would PUT one
// order's content under another's id.
func decode(msg events.SQSMessage, idField string) (id, reason string) {
	a, ok := msg.MessageAttributes[order.AttrOrderID]
	if !ok || a.StringValue == nil {
		return "", "missing " + order.AttrOrderID + " attribute"
	}
	if !order.ValidID(*a.StringValue) {
		return "", "invalid " + order.AttrOrderID + " attribute"
	}
	body := bytes.TrimSpace([]byte(msg.Body))
	if len(body) == 0 || body[0] != '{' || !json.Valid(body) {
		return "", "body is not a JSON object"
	}
	switch bodyID, why := order.BodyID(body, idField); {
	case why != "":
		return "", "body: " + why
	case bodyID != *a.StringValue:
		return "", "body id differs from the " + order.AttrOrderID + " attribute"
	}
	return *a.StringValue, ""
}

// receiveCount is the message's ApproximateReceiveCount, 1 when absent or malformed.
func receiveCount(msg events.SQSMessage) int {
	n, err := strconv.Atoi(msg.Attributes["ApproximateReceiveCount"])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// maxRetries bounds the Retries attribute, far above any budget, so that Retries + receive
// count cannot overflow.
const maxRetries = 1 << 20

// retries is the message's Retries attribute, 0 when absent, malformed or negative, at most
// maxRetries.
func retries(msg events.SQSMessage) int {
	a, ok := msg.MessageAttributes[order.AttrRetries]
	if !ok || a.StringValue == nil {
		return 0
	}
	n, err := strconv.Atoi(*a.StringValue)
	if err != nil || n < 0 {
		return 0
	}
	return min(n, maxRetries)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// seconds rounds a positive duration up to whole seconds, as SQS counts them.
func seconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

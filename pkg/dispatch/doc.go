// Package dispatch delivers order messages from the orders queue to the order API, one order
// per invocation (the event source mapping uses batch size 1; a batch of N is handled in order),
// at the API's rate, and decides the fate of every message so that no order is lost.
//
// # Pacing, throttles and the breaker
//
// Every request takes a slot from the Governor (pkg/governor), shared by all instances through
// GOVERNOR_TABLE: no two requests leave closer than 1/rate apart whichever instance sends them,
// a 429/503 with Retry-After pauses every instance, 429s lower the shared rate (API_RATE is the
// ceiling), and a run of failures across instances opens the circuit breaker. Without
// GOVERNOR_TABLE each Dispatcher paces alone with a governor of its own at
// API_RATE/API_INSTANCES. The Dispatcher lives for the whole process (a warm Lambda instance).
//
// A slot is reserved only where a request would still get MinRequest before the invocation's
// deadline minus the client's margin; the Dispatcher sleeps until it and sends if it woke
// in time to write the request by the slot's Late bound (its start + the margin it was
// reserved with; Governor.Usable), with the request bounded by that bound at the connection
// (orderapi.SendBy: a write found late sends nothing), else gives the slot up and takes
// another (three at most, then the order is given back, its retry budget untouched). How
// late each slot's request left (when it was written to the connection, or the late wake-up)
// is reported to the governor (Sent, Woke), whose margin adapts to it. An order that gets no
// slot (the schedule is full until past the deadline, a pause, the open breaker) or whose
// governor store fails (nothing is sent that the schedule does not account for; logged at error
// level once a minute per instance) is given back without being attempted (a fresh copy delayed
// until its slot could start; one to three probe intervals, uniformly, when the breaker is open
// (so that the backlog comes back spread out, not in waves); 10 s after a store
// failure), so it spends none of its retry budget. A failed breaker probe is given back the same
// way: the API is down, which says nothing about that order. Time comes from an injected Clock.
//
// # Outcomes
//
//   - delivered (2xx): success; the event source mapping deletes the message.
//   - throttled (429/503): a fresh copy delayed by Retry-After (or the backoff when absent), at
//     least 1 s, and success so the old copy is deleted (see "Throttles and the retry budget").
//     The first throttle stamps the copy's ThrottledSince; later copies carry it. An order
//     throttled for MAX_THROTTLED (default 24h) in all is parked, class throttled, its detail
//     saying since when and the last answer: a throttle that never ends is bounded.
//   - transient (5xx, 401, 408, 409, 425, timeout, connection error; orderapi.ClassifyStatus): ChangeMessageVisibility to an
//     exponential backoff with full jitter, uniform in [0, min(BACKOFF_MAX,
//     BACKOFF_BASE*2^(n-1))) (at least 1 s) where n is the attempt number (below), and
//     BatchItemFailure.
//   - permanent (other 4xx) and undecodable (missing or invalid OrderId attribute, body not a
//     JSON object, body whose ID_FIELD is not the OrderId attribute's id): SendMessage to ORDERS_DLQ_URL with the original body and attributes plus
//     FailureClass, FailureDetail, Attempts and ParkedAt, then success so the source is deleted.
//   - exhausted (transient with attempt number >= MAX_ATTEMPTS): parked the same way, class
//     exhausted, with the last reason ("timeout: ..." or "transient: ..."); Attempts is the
//     attempt number.
//
// If the DLQ send fails the message is reported as a BatchItemFailure and is not deleted. If a
// visibility change fails, the queue's own visibility timeout brings the message back. These SQS
// calls are not cancelled with the invocation's context but end shortly before its deadline
// (at most 5 s each): a call past the deadline would be a killed invocation, which brings the
// whole batch back, fresh copies already sent included. A call cut short counts as failed.
//
// # Throttles and the retry budget
//
// The attempt number of a try is the message's Retries attribute (transient attempts spent by
// earlier copies; absent, malformed or negative counts as 0) plus its ApproximateReceiveCount.
// Backoff, the exhausted check and the parked Attempts use it. A throttle or a give-back is no
// transient attempt, so it must not spend the budget: the Dispatcher re-sends a fresh copy of
// the message (same body and order attributes, Retries = attempt number - 1, receive count 1,
// DelaySeconds = the wait) to the orders queue and reports success so the old copy is deleted.
// Only transient failures then bring a message back in place and raise its receive count.
//
// Two cases fall back to ChangeMessageVisibility, and there the receive does count as an
// attempt: a wait longer than SendMessage's 15 min delay maximum (a long Retry-After; but when
// the next receive would reach MAX_ATTEMPTS the copy is re-sent at 15 min instead, so a throttle
// never parks an order), and a re-send that fails. The queue's maxReceiveCount
// (pipeline.Settings: MaxAttempts < MaxReceiveCount) still leaves room before its redrive policy
// moves such a message. Parking never carries Retries to the DLQ, so a redriven order starts a
// fresh budget. A re-sent copy could be delivered twice if the old copy's delete failed; the
// delivery record (below) deletes it unsent.
//
// # Exactly once
//
// With a Ledger (Options.Ledger; DELIVERY_TABLE in the function), every order has a delivery
// record keyed by order.IdempotencyKey (id and body digest) in a DynamoDB table all instances
// share (pkg/delivery has the protocol). Before pacing, the Dispatcher claims the key with a lease
// until the invocation's deadline plus 30 s:
//   - a copy whose record says delivered is deleted without a PUT (log "copy deleted unsent",
//     metric Duplicates): ingest re-sends after a crash, SQS redelivery, redrive re-sends and
//     re-published events cost no request;
//   - a copy whose key another instance holds by a live lease is given back until that lease
//     ends, as a fresh copy, spending no budget (metric HeldElsewhere): two copies in flight
//     never both send;
//   - a record that cannot be read or written sends nothing: the copy is given back for 30 s
//     (metric LedgerErrors, logged at error).
//
// After a 2xx the record is marked delivered (three tries; a mark that fails is logged and
// counted, and the message is still deleted: the order is delivered). After any other answer,
// or when no request went out, the claim is released so the next copy claims at once. A request
// that got no answer (timeout, broken connection) may have reached the API: its claim's lease is
// ended instead, and so is a claim that was a possible repeat. A claim that takes over a lease
// that ended without a mark (a sender killed mid-PUT, or an API that committed and hung) is a
// possible repeat: its PUT is logged ("possible repeat") and counted (metric PossibleRepeats).
// That is the only way an order reaches the API twice from this side; its Idempotency-Key header
// is the API's own guard.
//
// # Observability
//
// One slog line per message with stable keys: messageID, orderID, attempts, class, status,
// latencyMs, detail, visibilitySec. Never the order body or the Authorization value. One EMF
// line per invocation (namespace "orderpipe", dimension Function, metrics Sent, Throttled,
// Transient, Permanent, Exhausted, Held (given back unsent by the governor), GovernorErrors,
// BreakerOpen (0/1), ApiRate (the shared rate in force, requests/s), GovernorMargin (the
// margin of the slot, ms), ApiLatency and PacingWait in ms; with a Ledger also Duplicates, HeldElsewhere, PossibleRepeats and LedgerErrors).
package dispatch

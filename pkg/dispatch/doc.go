// Package dispatch delivers order messages from the orders queue to the order API, one order
// per invocation (the event source mapping uses batch size 1; a batch of N is handled in order),
// at the API's rate, and decides the fate of every message so that no order is lost.
//
// # Pacing
//
// Each instance paces with a golang.org/x/time/rate limiter at API_RATE/API_INSTANCES, burst 1.
// The limiter belongs to the Dispatcher, which main builds once per process, so pacing carries
// over between warm invocations. The token is taken when the request really goes, so a late
// wake-up never lets two requests of one instance go closer than 1/rate. After a 429/503 the
// instance holds back one pacing interval, doubling with each throttle in a row up to the
// Retry-After (a minute without one): a lone 429 is two instances' phases colliding and costs one
// slot, a run of them means the API wants less. Before waiting, the Dispatcher checks that the wait
// leaves at least MinRequest for the request before the invocation's deadline minus the
// client's margin; if not, the limiter slot is returned and the message is given back without
// being attempted (BatchItemFailure, visible again after the wait it could not afford: 0 when the
// deadline was the problem, so an instance paused by a long Retry-After does not spin on it).
// Time comes from an injected Clock.
//
// # Outcomes (docs/DESIGN.md)
//
//   - delivered (2xx): success; the event source mapping deletes the message.
//   - throttled (429/503): ChangeMessageVisibility to Retry-After (or the backoff when absent),
//     at least 1 s, and BatchItemFailure.
//   - transient (5xx, 401, timeout, connection error): ChangeMessageVisibility to an
//     exponential backoff with full jitter, uniform in [0, min(BACKOFF_MAX,
//     BACKOFF_BASE*2^(n-1))) (at least 1 s) where n is ApproximateReceiveCount, and
//     BatchItemFailure.
//   - permanent (other 4xx) and undecodable (missing or invalid OrderId attribute, body not a
//     JSON object): SendMessage to ORDERS_DLQ_URL with the original body and attributes plus
//     FailureClass, FailureDetail, Attempts and ParkedAt, then success so the source is deleted.
//   - exhausted (transient with ApproximateReceiveCount >= MAX_ATTEMPTS): parked the same way,
//     class exhausted, with the last reason ("timeout: ..." or "transient: ...").
//
// If the DLQ send fails the message is reported as a BatchItemFailure and is not deleted. If a
// visibility change fails, the queue's own visibility timeout brings the message back.
//
// # Throttles and the retry budget
//
// ApproximateReceiveCount also counts receives that ended in a throttle or a give-back. Neither
// ever parks an order: when such a message's next receive would reach MAX_ATTEMPTS, the
// Dispatcher re-sends a fresh copy of it (same body and attributes, receive
// count 1, DelaySeconds = the wait capped at 15 min) to the orders queue and reports success so
// the old copy is deleted; if that send fails it falls back to the visibility change, and the
// queue's maxReceiveCount (pipeline.Settings: MaxAttempts < MaxReceiveCount) still leaves room
// before the redrive policy moves it. Throttles and give-backs earlier in a message's life do use
// up receive counts, so a message throttled k times has MAX_ATTEMPTS-k transient attempts left;
// pacing keeps throttles rare (see docs/BENCHMARKS.md). A re-sent copy could be delivered twice
// if the old copy's delete failed; the API's Idempotency-Key makes that harmless.
//
// # Observability
//
// One slog line per message with stable keys: messageID, orderID, attempts, class, status,
// latencyMs, detail, visibilitySec. Never the order body or the Authorization value. One EMF
// line per invocation (namespace "orderpipe", dimension Function, metrics Sent, Throttled,
// Transient, Permanent, Exhausted, ApiLatency and PacingWait in ms).
package dispatch

// Package governor makes every dispatch instance one client of the order API: one schedule of
// request slots, one pause, one adaptive rate and one circuit breaker, kept in one shared record
// (a DynamoDB item in the deployment, DynamoStore; an in-process MemoryStore for a single
// process) that every instance reads and writes with a conditional update.
//
// # Pacing
//
// Each slot carries a margin: how late its sender may wake and still send (the slot's Late =
// its start + margin). The record keeps the last slot's start and its Late, and Reserve takes
// the next slot, at = max(now, late + 1/rate [+ Skew when the last slot was another
// instance's], paused-until, next probe): the schedule takes whatever margin the last slot's
// sender needed. When the store is an Advancer and the record was, when this Governor last saw
// it, at a rate with the breaker closed, it takes the slot with one atomic write conditional on
// the rate, policy, breaker and pause being unchanged (Advance: late + 1/rate + Skew, or now
// when the schedule is idle). Otherwise, or when
// that condition fails, it reads the record and writes last = at conditional on the version it
// read; a conflicting writer makes it read again. "now" is the time of the reservation plus
// the lead, the time a write to the store takes (the largest measured, decaying): the caller
// learns of its slot when the write returns, and must not be late for it already. The caller
// sleeps until at and sends only if its request is written by at + margin (Slot.Late); a later
// wake-up (Usable: allowing for how long this Governor's writes take) gives the slot up, and
// so does a write the connection finds late, so two requests never leave closer than 1/rate on
// one clock whoever sends them, whatever margins the instances use.
//
// The margin adapts to the host: the sender reports how late each slot's request left (Sent:
// when it was written to the connection; Woke: the wake-up that gave the slot up), and a
// Governor reserves with the margin that leaves the most of the rate for its last
// LatenessWindow of them (Margin: each wake-up later than the margin loses a slot, each millisecond of
// margin is added between slots), at least Config.Margin and at most MaxMarginShare of 1/rate
// above it. An instance on a starved host widens only the gaps after its own slots. Skew covers instances whose clocks differ: requests from two instances whose clocks
// differ by d are 1/rate + Margin + Skew - d apart. Reserve takes a fits function and reserves
// nothing when the slot would start where fits refuses (the invocation's deadline): a
// *WaitError then says until when.
//
// # Throttles and the adaptive rate
//
// Report records an answer. A 429 (Throttled) or a 5xx with Retry-After pauses every instance
// until then; an API's RateLimit header with no requests remaining pauses until its reset, and
// its RateLimit-Policy quota/window caps the rate. A 429 cuts the shared rate (times
// Decrease, never below the rate that held before the last raise, nor below MinRate), once per
// congestion event: answers to slots reserved before the cut do not cut again. It cuts when the
// 429s repeat within ThrottleWindow (and RepeatSlots slots), or when the rate in force is neither the API's
// RateLimit-Policy rate nor proven by Proof successes in a row at it (a fresh record's ceiling,
// a rate just cut or raised); a lone 429 at a proven rate (a request that reached the API a
// little early) only pauses. After Hold
// without a cut, each success raises the rate by Step × Rate, up to Rate (API_RATE, the ceiling).
//
// # Circuit breaker
//
// FailureThreshold failures in a row across instances (5xx, timeouts, connection errors) open
// the breaker; they never cut the rate. While open, Reserve hands out one probe slot per
// ProbeInterval, to a caller that can send it at once (within Margin: no probe is reserved
// ahead), and answers every other caller with a *WaitError ("breaker open") until the next
// probe; the caller gives its order back without spending its retry budget. Any answer that is
// not a 5xx closes it, and the next slot is reckoned from the probe.
//
// # Cost
//
// A reservation is one conditional UpdateItem when the record is as last seen (Advance), else a
// strongly consistent GetItem and a conditional UpdateItem (more when another instance wrote in
// between). Report reads and writes only when the answer may change the record: an ordinary
// answer to a slot reserved while all was well (no failures on record, breaker closed, full
// rate, the same RateLimit-Policy) costs nothing, so at full rate an order costs one write. Such an answer does not reset a failure run recorded by another
// instance after the slot was reserved; the next answer read with the record does.
//
// # Faults
//
// Store calls are bounded by StoreTimeout; a failure is a *StoreError and nothing was reserved
// or recorded, so the caller sends nothing it cannot account for. A missing record is created
// (conditional on absence); an unreadable one is replaced (conditional on the bad version) by a
// fresh record whose last slot is "now", so the first slot after a repair is one interval away.
// Times in the record are the writers' clocks.
package governor

// Package delivery is the delivery record of every order: one DynamoDB item per idempotency key
// (order.IdempotencyKey: the order id and a digest of its body), shared by every dispatch
// instance, so that no copy of an order already delivered, or being delivered, is sent again.
//
// # Protocol
//
// Before its PUT, dispatch claims the key (Ledger.Claim): a conditional write that succeeds when
// there is no record, or when the record is "sending" with a lease that has ended. The claim
// sets state "sending", a fresh token and a lease (until the invocation's deadline plus a
// margin). Then:
//   - the API answered 2xx: Ledger.Delivered sets state "delivered" (unconditionally: the API has
//     the order, whoever claimed last);
//   - the API answered anything else, or no request went out: Ledger.Release deletes the record
//     if it still holds this claim's token, so the next copy claims at once;
//   - the request went out and no answer came (timeout, broken connection): Ledger.Abandon ends
//     the lease now; the API may have committed, so the next claim is a possible repeat.
//
// A claim that finds the record "delivered" fails with ErrDelivered (dispatch deletes the copy
// without a PUT); one that finds a live "sending" lease fails with a *HeldError carrying the
// lease's end (dispatch gives the copy back until then, spending no budget). A claim that takes
// over a record whose lease ended (its sender crashed between claim and mark, or it was
// abandoned) succeeds with Claim.Repeat set: the earlier sender may have reached the API, so the
// PUT that follows may repeat it; dispatch counts and logs it. Any other error is the store
// failing; dispatch then sends nothing.
//
// Every record expires (DynamoDB TTL on ExpiresAttribute) RecordTTL after its last write:
// longer than a copy can live (14 days on the orders queue, 14 more on the orders DLQ for a copy
// parked and then redriven as a new message).
//
// # Concurrency
//
// A Ledger is safe for concurrent use. DynamoDB applies each conditional write atomically, so
// two instances never both hold a live claim. The local stand-in (moto) checks a condition and
// writes without a lock, so a Ledger also serializes its own writes: in Lambda one process runs
// one invocation at a time, so this costs nothing there.
package delivery

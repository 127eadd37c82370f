package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/orderpipe/orderpipe/pkg/delivery"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
)

// Ledger is the part of *delivery.Ledger the Dispatcher uses: the delivery record of each order,
// shared by every instance (see the package doc, "Exactly once").
type Ledger interface {
	Claim(ctx context.Context, key, id string, leaseUntil time.Time) (delivery.Claim, error)
	Delivered(ctx context.Context, c delivery.Claim) error
	Release(ctx context.Context, c delivery.Claim) error
	Abandon(ctx context.Context, c delivery.Claim) error
}

const (
	// leaseMargin is how long a claim outlives the invocation that took it: the PUT ends before
	// the deadline, and the margin covers clock differences between instances.
	leaseMargin = 30 * time.Second
	// ledgerRetry is how long a copy waits when the delivery record cannot be read or written.
	ledgerRetry = 30 * time.Second
	// markTries is how many times a delivered order's mark is written before giving up.
	markTries = 3
	// classDuplicate is the outcome of a copy of an order delivered already: deleted unsent.
	classDuplicate = "duplicate"
)

// claim takes the order's delivery record before it is sent. It reports false with the copy's
// fate when the copy must not be sent: delivered already (deleted), being sent by another
// instance (given back until that claim's lease ends) or the record unavailable (given back).
// Without a Ledger every copy may be sent.
func (d *Dispatcher) claim(ctx context.Context, log *slog.Logger, msg events.SQSMessage, id string, attempts int, m *metrics) (*delivery.Claim, decision, bool) {
	if d.ledger == nil {
		return nil, decision{}, true
	}
	m.recorded = true
	now := d.clock.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = now.Add(d.cfg.APITimeout)
	}
	c, err := d.ledger.Claim(ctx, order.IdempotencyKey(id, []byte(msg.Body)), id, deadline.Add(leaseMargin))
	var held *delivery.HeldError
	switch {
	case errors.Is(err, delivery.ErrDelivered):
		m.duplicates++
		return nil, decision{act: actDone, class: classDuplicate}, false
	case errors.As(err, &held):
		m.held++
		return nil, d.giveBack(attempts, max(held.Until.Sub(now), time.Second), "being sent by another instance"), false
	case err != nil:
		m.ledgerErrors++
		log.ErrorContext(ctx, "delivery record unavailable; order not sent", "error", err)
		return nil, d.giveBack(attempts, ledgerRetry, "delivery record unavailable"), false
	}
	return &c, decision{}, true
}

// settle records the outcome of the try made under c: delivered after a 2xx; otherwise the
// claim is released for the next copy, or, when the API may have the order (a request without
// an answer, or a claim that was a possible repeat itself), its lease ends now and the next
// claim is a possible repeat. A failed write is logged and counted; the lease then ends by
// itself.
func (d *Dispatcher) settle(ctx context.Context, log *slog.Logger, c *delivery.Claim, res orderapi.Result, m *metrics) {
	if c == nil {
		return
	}
	sctx, cancel := bookkeepingContext(ctx)
	defer cancel()
	if c.Repeat && res.Sent {
		m.repeats++
		log.WarnContext(ctx, "possible repeat: an earlier try of this order ended without a record and may have reached the API", "claims", c.Claims)
	}
	var err error
	switch {
	case res.Class == orderapi.Delivered:
		for range markTries {
			if err = d.ledger.Delivered(sctx, *c); err == nil || sctx.Err() != nil {
				break
			}
		}
		if err != nil {
			log.ErrorContext(ctx, "order delivered but not recorded; a later copy of it would be sent again", "error", err)
		}
	case c.Repeat || (res.Sent && res.Status == 0):
		err = d.ledger.Abandon(sctx, *c)
	default:
		err = d.ledger.Release(sctx, *c)
	}
	if err != nil {
		m.ledgerErrors++
		if res.Class != orderapi.Delivered {
			log.WarnContext(ctx, "delivery claim not released; it ends with its lease", "error", err)
		}
	}
}

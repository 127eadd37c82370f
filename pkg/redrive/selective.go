package redrive

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/sqsscan"
)

// maxSendFailures consecutive failed sends stop a scan: the orders queue is likely unusable.
const maxSendFailures = 3

// scanMargin is the least number of messages a scan may receive beyond
// ApproximateNumberOfMessages at its start.
const scanMargin = 100

// scan is the state of one selective run.
type scan struct {
	r   *Redriver
	req Request
	res Result
	// dlq holds each message received and still in the DLQ; they are made visible again when
	// the scan ends.
	dlq *sqsscan.Scan
	// sendFailures counts consecutive failed sends.
	sendFailures int
}

func (r *Redriver) selective(ctx context.Context, req Request) (Result, error) {
	if r.journal == nil && !req.DryRun {
		return Result{Mode: ModeSelective, Stop: StopError}, ErrNoJournal
	}
	s := &scan{
		r:   r,
		req: req,
		res: Result{Mode: ModeSelective, DryRun: req.DryRun},
		dlq: sqsscan.New(r.client, r.cfg.DLQURL),
	}
	err := s.run(ctx)
	if err != nil {
		s.res.Stop = StopError
	}
	s.release(ctx)
	return s.res, err
}

func (s *scan) run(ctx context.Context) error {
	v, err := s.r.queueAttr(ctx, s.r.cfg.DLQURL, sqstypes.QueueAttributeNameApproximateNumberOfMessages)
	if err != nil {
		return fmt.Errorf("size the scan: %w", err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("size the scan: ApproximateNumberOfMessages %q: %w", v, err)
	}
	// Messages parked during the scan may be scanned too, up to this bound. The margin also
	// covers the lag of ApproximateNumberOfMessages behind recent sends.
	bound := n + max(scanMargin, n/10)
	// Hide each batch long enough to send all ten at Rate, whatever ScanVisibility says.
	visibility := min(s.r.cfg.ScanVisibility+time.Duration(10/s.r.cfg.Rate*float64(time.Second)), 12*time.Hour)
	for {
		switch {
		case s.req.Max > 0 && s.res.Selected >= s.req.Max:
			s.res.Stop = StopMax
			return nil
		case s.res.Scanned >= bound:
			s.res.Stop = StopBound
			return nil
		case s.nearDeadline(ctx):
			s.res.Stop = StopDeadline
			return nil
		}
		fresh, received, err := s.dlq.Receive(ctx, 10, visibility, s.r.cfg.ReceiveWait)
		if err != nil {
			return fmt.Errorf("receive from the DLQ: %w", err)
		}
		if received == 0 {
			s.res.Stop = StopEmpty
			return nil
		}
		if len(fresh) == 0 {
			s.res.Stop = StopSeen
			return nil
		}
		selected := s.classify(ctx, fresh)
		for _, m := range selected {
			if err := s.move(ctx, m); err != nil {
				return err
			}
		}
	}
}

func (s *scan) nearDeadline(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && d.Sub(s.r.now()) < s.r.cfg.StopMargin
}

// classify counts and audits messages not seen before, and returns those selected for a move
// (none in a dry run).
func (s *scan) classify(ctx context.Context, fresh []sqstypes.Message) (selected []sqstypes.Message) {
	for _, m := range fresh {
		s.res.Scanned++
		e := EntryOf(m)
		s.res.count(e.Class, func(c *ClassCount) { c.Scanned++ })
		if !s.req.Matches(e) || (s.req.Max > 0 && s.res.Selected >= s.req.Max) {
			s.res.Skipped++
			s.r.audit(ctx, slog.LevelDebug, "skip", e, s.req.DryRun)
			continue
		}
		s.res.Selected++
		s.res.count(e.Class, func(c *ClassCount) { c.Selected++ })
		if s.req.DryRun {
			if len(s.res.Listing) < MaxListing {
				s.res.Listing = append(s.res.Listing, e)
			} else {
				s.res.ListingTruncated = true
			}
			s.r.audit(ctx, slog.LevelInfo, "would-move", e, true)
			continue
		}
		selected = append(selected, m)
	}
	return selected
}

// move sends one selected message to the orders queue, then deletes it from the DLQ, recording
// the move in the journal before the send (MoveSending) and before the delete (MoveSent). A
// message whose record says MoveSent was sent by an earlier run that ended before its delete:
// it is deleted without a second send. A failed send leaves it held (released at the end); an
// error stops the scan.
func (s *scan) move(ctx context.Context, m sqstypes.Message) error {
	e := EntryOf(m)
	rec, found, err := s.r.journal.Get(ctx, e.MessageID)
	if err != nil {
		return s.notSent(ctx, e, "record-failed", err)
	}
	if found && rec.State == MoveSent {
		s.res.AlreadyMoved++
		s.res.count(e.Class, func(c *ClassCount) { c.Moved++ })
		s.delete(ctx, e, "already-moved", "sentMessageID", rec.SentMessageID, "sentAt", rec.SentAt)
		return nil
	}
	if err := s.r.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("wait to send message %s: %w", e.MessageID, err)
	}
	prev := rec
	rec = Move{MessageID: e.MessageID, OrderID: e.OrderID, Class: e.Class, Source: e.Source, Line: e.Line,
		Operator: s.req.operator(), State: MoveSending, At: s.r.now().UTC()}
	if found {
		// An earlier run wrote MoveSending and ended before MoveSent: it may have sent, or not.
		// Sending again risks a duplicate (absorbed by the delivery record and the
		// Idempotency-Key); not sending risks losing the order. The record marks the repeat.
		rec.Resends, rec.FirstAt = prev.Resends+1, prev.FirstAt
		if rec.FirstAt.IsZero() {
			rec.FirstAt = prev.At
		}
		s.res.Resent++
		s.r.audit(ctx, slog.LevelWarn, "resend", e, false, "recordedAt", prev.At, "recordedBy", prev.Operator, "resends", rec.Resends)
	}
	if err := s.r.journal.Put(ctx, rec); err != nil {
		return s.notSent(ctx, e, "record-failed", err)
	}
	s.r.audit(ctx, slog.LevelInfo, "moving", e, false, "operator", rec.Operator)
	out, err := s.r.client.SendMessage(ctx, s.r.requeueInput(m))
	if err != nil {
		return s.notSent(ctx, e, "send-failed", err)
	}
	s.sendFailures = 0
	s.res.Moved++
	s.res.count(e.Class, func(c *ClassCount) { c.Moved++ })
	rec.State, rec.SentMessageID, rec.SentAt = MoveSent, aws.ToString(out.MessageId), s.r.now().UTC()
	if err := s.r.journal.Put(context.WithoutCancel(ctx), rec); err != nil {
		// Deleting still ends the move; only a failed delete on top would let a later run send
		// it again.
		s.r.audit(ctx, slog.LevelWarn, "record-sent-failed", e, false, "error", err)
	}
	s.delete(ctx, e, "move", "sentMessageID", rec.SentMessageID)
	return nil
}

// notSent counts a selected message that was not sent and returns an error once sends keep
// failing (or ctx is done).
func (s *scan) notSent(ctx context.Context, e Entry, action string, err error) error {
	s.res.Failed++
	s.res.count(e.Class, func(c *ClassCount) { c.Failed++ })
	s.r.audit(ctx, slog.LevelWarn, action, e, false, "error", err)
	s.sendFailures++
	if ctx.Err() != nil || s.sendFailures >= maxSendFailures {
		return fmt.Errorf("move message %s (order %s) to the orders queue: %d consecutive failures: %w", e.MessageID, e.OrderID, s.sendFailures, err)
	}
	return nil
}

// delete removes a sent message from the DLQ and writes its audit line (action, or
// moved-not-deleted when the delete fails: the next run meets it again and deletes it then).
func (s *scan) delete(ctx context.Context, e Entry, action string, extra ...any) {
	// Sent: whatever happens next, releasing it would only invite a second redrive.
	handle, _ := s.dlq.Take(e.MessageID)
	_, err := s.r.client.DeleteMessage(context.WithoutCancel(ctx), &sqs.DeleteMessageInput{
		QueueUrl:      aws.String(s.r.cfg.DLQURL),
		ReceiptHandle: aws.String(handle),
	})
	if err != nil {
		s.res.DeleteFailed++
		s.r.audit(ctx, slog.LevelWarn, "moved-not-deleted", e, false, append(extra, "error", err)...)
		return
	}
	s.r.audit(ctx, slog.LevelInfo, action, e, false, extra...)
}

// release makes every held message visible again. It runs even when ctx is done; what it
// cannot release becomes visible when its ScanVisibility ends.
func (s *scan) release(ctx context.Context) {
	released, err := s.dlq.Release(ctx)
	s.res.Released += released
	if err != nil {
		s.r.log.WarnContext(ctx, "redrive release failed: messages reappear when their visibility ends",
			"visibility", s.r.cfg.ScanVisibility, "error", err)
	}
}

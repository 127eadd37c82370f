package ingest

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// backlog is the orders queue's depth: messages visible, in flight and delayed.
func (s *Service) backlog(ctx context.Context) (int64, error) {
	out, err := s.queue.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(s.cfg.OrdersQueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		}})
	if err != nil {
		return 0, fmt.Errorf("orders queue backlog: %w", err)
	}
	var n int64
	for _, v := range out.Attributes {
		c, _ := strconv.ParseInt(v, 10, 64)
		n += c
	}
	return n, nil
}

// makeRoom decides how many orders this invocation may enqueue before the orders queue is
// full (Config.Room less the backlog): 0 means no limit, the rest of the file fits. With no
// room at all the file waits (wait) and ok is false.
func (r *fileRun) makeRoom(ctx context.Context) (budget int64, out Outcome, ok bool, err error) {
	backlog, err := r.svc.backlog(ctx)
	if err != nil {
		return 0, 0, false, err
	}
	st := r.claim.state
	room, need := r.svc.cfg.Room()-backlog, st.FileLines-st.Lines
	if room >= need {
		r.saved.WaitingSince = time.Time{}
		return 0, 0, true, nil
	}
	if room > 0 {
		return room, 0, true, nil // this much now, the rest when the queue has drained
	}
	out, err = r.wait(ctx, st.savedPosition(), fmt.Sprintf("the orders queue holds %d orders and this file %d more", backlog, need))
	return 0, out, false, err
}

// wait checkpoints at offset and hands the file over to a continuation delayed by
// Config.WaitDelay: the orders queue has no room for its next orders (full says how). The
// report says the file is waiting and since when; the state keeps WaitingSince.
func (r *fileRun) wait(ctx context.Context, pos position, full string) (Outcome, error) {
	if r.saved.WaitingSince.IsZero() {
		r.saved.WaitingSince = r.svc.now()
	}
	obj := r.claim.obj
	why := fmt.Sprintf("%s: above the room of %d orders (API_RATE %g/s over ORDERS_RETENTION %v less a quarter)",
		full, r.svc.cfg.Room(), r.svc.cfg.APIRate, r.svc.cfg.OrdersRetention)
	r.svc.log.WarnContext(ctx, LogFileWaiting, "bucket", obj.Bucket, "key", obj.Key, "version", obj.Version,
		"reason", why, "waitingSince", r.saved.WaitingSince, "report", obj.reportKey())
	r.svc.emit(ctx, fileMetrics{waiting: 1})
	if err := r.writeWaitingReport(ctx, why); err != nil {
		return 0, err
	}
	return r.handoffAfter(ctx, pos, r.svc.cfg.WaitDelay)
}

// LogFileWaiting is the log message of a file held back in S3 because the orders queue is full.
const LogFileWaiting = "file waiting"

package ingest

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// heartbeat keeps the messages of one batch invisible while the invocation works on them: every
// third of FilesVisibility it sets each message not yet finished invisible for FilesVisibility
// again. When the invocation dies (killed, timed out, out of memory) the heartbeat stops with it,
// and its messages are back on the files queue within FilesVisibility.
type heartbeat struct {
	mu      sync.Mutex
	pending map[string]string // message id -> receipt handle, of the messages not yet finished
	cancel  context.CancelFunc
	done    chan struct{}
}

// startHeartbeat starts the heartbeat of the batch's messages; stop ends it.
func (s *Service) startHeartbeat(ctx context.Context, records []events.SQSMessage) *heartbeat {
	ctx, cancel := context.WithCancel(ctx)
	h := &heartbeat{pending: map[string]string{}, cancel: cancel, done: make(chan struct{})}
	for _, m := range records {
		h.pending[m.MessageId] = m.ReceiptHandle
	}
	every := s.cfg.FilesVisibility / 3
	go func() {
		defer close(h.done)
		for s.clock.Sleep(ctx, every) == nil {
			h.mu.Lock()
			beats := make(map[string]string, len(h.pending))
			for id, rh := range h.pending {
				beats[id] = rh
			}
			h.mu.Unlock()
			for id, rh := range beats {
				_, err := s.queue.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
					QueueUrl: aws.String(s.cfg.FilesQueueURL), ReceiptHandle: aws.String(rh),
					VisibilityTimeout: int32(s.cfg.FilesVisibility / time.Second),
				})
				if err != nil && ctx.Err() == nil {
					// The message may come back while this invocation still works on it: the
					// other invocation then finds the claim busy, or takes it over once this one
					// stops heartbeating.
					s.log.WarnContext(ctx, "files message visibility not extended", "messageID", id, "error", err)
				}
			}
		}
	}()
	return h
}

// finished takes a message out of the heartbeat.
func (h *heartbeat) finished(id string) {
	h.mu.Lock()
	delete(h.pending, id)
	h.mu.Unlock()
}

// stop ends the heartbeat and waits for it.
func (h *heartbeat) stop() {
	h.cancel()
	<-h.done
}

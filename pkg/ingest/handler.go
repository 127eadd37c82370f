package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// Handle ingests the object versions named by a batch of files-queue messages. A message that
// cannot be decoded or whose object cannot be ingested now is returned in BatchItemFailures
// (and logged); the others succeed. A message whose object version another live invocation
// holds (ErrBusy) is re-sent as a fresh copy delayed by FilesVisibility and succeeds, so that
// waiting spends none of its receives (a failure when the re-send fails). While the batch is
// worked on, its messages are kept invisible (heartbeat). The error is always nil.
func (s *Service) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	started := false
	hb := s.startHeartbeat(ctx, ev.Records)
	defer hb.stop()
	for _, m := range ev.Records {
		// A live owner writes its claim at least every CheckpointEvery; its message comes back
		// at least two thirds of FILES_VISIBILITY after its last heartbeat.
		quiet := max(s.cfg.FilesVisibility*2/3, s.cfg.CheckpointEvery)
		err := s.handleMessage(withHolder(ctx, holder{id: m.MessageId, quiet: quiet}), m, &started)
		hb.finished(m.MessageId)
		if errors.Is(err, ErrBusy) {
			if rerr := s.requeueBusy(ctx, m); rerr == nil {
				s.log.InfoContext(ctx, "file busy in another invocation; message re-sent delayed", "messageID", m.MessageId, "delaySec", int(s.busyDelay().Seconds()))
				continue
			} else {
				err = errors.Join(err, rerr)
			}
		}
		if err != nil {
			level, attrs := slog.LevelError, []any{"messageID", m.MessageId, "error", err}
			var oe *objectError
			if errors.As(err, &oe) {
				attrs = append(attrs, "bucket", oe.obj.Bucket, "key", oe.obj.Key, "version", oe.obj.Version)
			}
			if errors.Is(err, ErrBusy) {
				level = slog.LevelWarn // expected with duplicate deliveries: retried later
			}
			s.log.Log(ctx, level, "ingest message failed", attrs...)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return resp, nil
}

// handleMessage ingests every object a message names. started says whether an earlier object
// of this invocation was started: from then on an object is requeued rather than started when
// the checkpoint time has come (the first one always makes progress).
func (s *Service) handleMessage(ctx context.Context, m events.SQSMessage, started *bool) error {
	msg, err := s3event.Decode(m.Body)
	if err != nil {
		return err
	}
	if msg.TestEvent {
		s.log.InfoContext(ctx, "skip s3:TestEvent", "messageID", m.MessageId)
		return nil
	}
	recs, token := msg.Records, ""
	if c := msg.Continuation; c != nil {
		recs, token = []s3event.Record{c.Record()}, c.Token
	}
	for _, rec := range recs {
		if !rec.Created() {
			s.log.InfoContext(ctx, "skip event", "messageID", m.MessageId, "event", rec.EventName, "bucket", rec.Bucket, "key", rec.Key)
			continue
		}
		if *started && checkpointDue(ctx, s.stopAt(ctx), s.now()) {
			if err := s.sendContinuation(ctx, rec, token, 0); err != nil {
				return err
			}
			continue
		}
		*started = true
		out, err := s.Ingest(ctx, rec, token)
		if err != nil {
			return &objectError{obj: objectOf(rec), err: err}
		}
		s.log.InfoContext(ctx, "ingest "+out.String(), "messageID", m.MessageId, "bucket", rec.Bucket, "key", rec.Key, "version", objectOf(rec).Version)
	}
	return nil
}

// busyDelay is how long a message that found its file busy waits: the files visibility, at most
// SendMessage's 15 min delay.
func (s *Service) busyDelay() time.Duration { return min(s.cfg.FilesVisibility, 15*time.Minute) }

// requeueBusy re-sends m's body to the files queue delayed by busyDelay.
func (s *Service) requeueBusy(ctx context.Context, m events.SQSMessage) error {
	_, err := s.queue.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &s.cfg.FilesQueueURL, MessageBody: &m.Body,
		DelaySeconds: int32(s.busyDelay() / time.Second)})
	if err != nil {
		return fmt.Errorf("re-send busy files message %s: %w", m.MessageId, err)
	}
	return nil
}

// sendContinuation puts a continuation of rec on the files queue, delivered after delay.
func (s *Service) sendContinuation(ctx context.Context, rec s3event.Record, token string, delay time.Duration) error {
	body, err := s3event.Continuation{Bucket: rec.Bucket, Key: rec.Key, VersionID: rec.VersionID, ETag: rec.ETag, Token: token}.Body()
	if err != nil {
		return err
	}
	in := &sqs.SendMessageInput{QueueUrl: &s.cfg.FilesQueueURL, MessageBody: &body, DelaySeconds: int32(min(delay, DefaultWaitDelay) / time.Second)}
	if _, err := s.queue.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("send continuation of s3://%s/%s: %w", rec.Bucket, rec.Key, err)
	}
	return nil
}

// objectError is the failure of one object version of a message.
type objectError struct {
	obj object
	err error
}

func (e *objectError) Error() string {
	return "ingest " + e.obj.uri() + " (version " + e.obj.Version + "): " + e.err.Error()
}

func (e *objectError) Unwrap() error { return e.err }

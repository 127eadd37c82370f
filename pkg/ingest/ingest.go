package ingest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/clock"
)

// ObjectStore is the part of the S3 client ingest uses, with the SDK's own signatures.
type ObjectStore interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// Queue is the part of the SQS client ingest uses: orders go to the orders queue in batches,
// continuations to the files queue one at a time.
type Queue interface {
	BatchSender
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	// GetQueueAttributes reads the orders queue's backlog before a file enqueues (Config.Room).
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	// ChangeMessageVisibility keeps the files queue's messages hidden while they are worked on.
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// Clock is the Service's time: deadlines, leases, report times and the backoff between
// retries of failed batch entries. Sleep returns early with ctx's error.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

// Options are the Service's injected dependencies and retry tuning; every zero field takes
// the default.
type Options struct {
	Clock  Clock        // default: the system clock
	Logger *slog.Logger // default: slog.Default()
	// Metrics receives the EMF lines of the ingest metrics (MetricFilesRefused, ...); default
	// os.Stdout, which Lambda sends to CloudWatch Logs.
	Metrics io.Writer
	// SendAttempts is how many times a failing batch entry is sent before the file's message
	// fails (ErrSendFailed); default 5.
	SendAttempts int
	// SendBackoff is the base of the exponential backoff between those sends; default 100ms.
	SendBackoff time.Duration
}

// Service ingests order files. Make it with New. A Service is safe for concurrent use by
// invocations of different object versions.
type Service struct {
	cfg     Config
	objects ObjectStore
	queue   Queue
	clock   Clock
	log     *slog.Logger
	metrics io.Writer
	retry   SenderOptions // MaxAttempts and Backoff of every Sender

	skipVerify bool // benchmarks only (export_test.go): send without the verifying pass
	// chunks are the bytes read between two looks at the clock: verifyChunk and yieldBytes
	// (tests make them smaller: export_test.go).
	chunks struct{ verify, yield int64 }
}

// New returns a Service for cfg (validated by LoadConfig or Config.Validate) using objects and
// queue.
func New(cfg Config, objects ObjectStore, queue Queue, opts Options) *Service {
	s := &Service{cfg: cfg, objects: objects, queue: queue, clock: opts.Clock, log: opts.Logger, metrics: opts.Metrics,
		retry: SenderOptions{MaxAttempts: opts.SendAttempts, Backoff: opts.SendBackoff}}
	if s.clock == nil {
		s.clock = clock.System{}
	}
	if s.metrics == nil {
		s.metrics = os.Stdout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.chunks.verify, s.chunks.yield = verifyChunk, yieldBytes
	return s
}

func (s *Service) now() time.Time { return s.clock.Now() }

// stopAt is when an invocation must checkpoint: the deadline minus the margin; zero without a
// deadline.
func (s *Service) stopAt(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Time{}
	}
	return d.Add(-s.cfg.CheckpointMargin)
}

// stopKey is the context key of WithStop's channel.
type stopKey struct{}

// WithStop returns ctx carrying stop. Once stop is closed, an invocation of Handle or Ingest
// with the returned context checkpoints at its next line as it does at its checkpoint time: the
// orders read so far are enqueued, the claim is handed to a continuation on the files queue (a
// later invocation resumes at that line) and the file's message succeeds. Lambda has no such
// signal (an invocation ends at its deadline); the local runner closes stop when it is asked to
// stop, so that it exits at once without losing or repeating an order.
func WithStop(ctx context.Context, stop <-chan struct{}) context.Context {
	return context.WithValue(ctx, stopKey{}, stop)
}

// checkpointDue reports whether an invocation must checkpoint now: at stopAt (never when zero),
// or once WithStop's channel is closed.
func checkpointDue(ctx context.Context, stopAt, now time.Time) bool {
	return (!stopAt.IsZero() && now.After(stopAt)) || stopped(stopOf(ctx))
}

// stopOf is WithStop's channel in ctx, nil without one.
func stopOf(ctx context.Context) <-chan struct{} {
	stop, _ := ctx.Value(stopKey{}).(<-chan struct{})
	return stop
}

// stopped reports whether stop is closed (never for a nil stop).
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// handoffReserve is how long before the deadline the hand-over's writes must end: the
// BookkeepingReserve plus up to a second (a quarter of the margin if that is less) to read a
// state write back and send the continuation or release the claim.
func (s *Service) handoffReserve() time.Duration {
	return BookkeepingReserve + min(s.cfg.CheckpointMargin/4, time.Second)
}

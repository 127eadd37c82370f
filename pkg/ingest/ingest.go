package ingest

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
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
}

// Service ingests order files. Make it with New; set the optional fields before the first
// call. A Service is safe for concurrent use by invocations of different object versions.
type Service struct {
	cfg     Config
	objects ObjectStore
	queue   Queue

	// Now is the clock for deadlines, leases and report times; nil means time.Now.
	Now func() time.Time
	// Retry tunes the retries of failed batch entries (MaxAttempts, Backoff); its
	// Concurrency and Refused are set by the Service.
	Retry SenderOptions
}

// New returns a Service for cfg (validated by LoadConfig) using objects and queue.
func New(cfg Config, objects ObjectStore, queue Queue) *Service {
	return &Service{cfg: cfg, objects: objects, queue: queue}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// stopAt is when an invocation must checkpoint: the deadline minus the margin; zero without a
// deadline.
func (s *Service) stopAt(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Time{}
	}
	return d.Add(-s.cfg.CheckpointMargin)
}

// handoffReserve is how long before the deadline the hand-over's writes must end: the
// BookkeepingReserve plus up to a second (a quarter of the margin if that is less) to read a
// state write back and send the continuation or release the claim.
func (s *Service) handoffReserve() time.Duration {
	return BookkeepingReserve + min(s.cfg.CheckpointMargin/4, time.Second)
}

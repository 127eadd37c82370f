package ingest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/backoff"
	"github.com/orderpipe/orderpipe/internal/clock"
	"github.com/orderpipe/orderpipe/pkg/order"
)

// SQS limits the sender keeps to.
const (
	MaxBatchEntries = 10        // entries in one SendMessageBatch
	MaxBatchBytes   = 256 << 10 // payload of one SendMessageBatch: bodies plus attributes
	// MaxMessageBytes is SQS's limit for one message. An entry larger than MaxBatchBytes is
	// sent alone in its own batch.
	MaxMessageBytes = 1 << 20
)

// ErrSendFailed is wrapped by the error of a batch whose entries still failed after the
// retries: the file's message must be retried.
var ErrSendFailed = errors.New("orders not accepted by the queue")

// BatchSender is the part of the SQS client that sends orders.
type BatchSender interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// Entry is one order message to send.
type Entry struct {
	ID      string // order id
	Body    string // order JSON
	Line    int64  // line number in the file
	Source  string // s3://bucket/key
	Version string // object version or order.NullVersion
}

// size is what the entry counts towards MaxBatchBytes: the body plus, for each attribute, its
// name, data type and value, as SQS counts them.
func (e *Entry) size() int {
	const names = len(order.AttrOrderID) + len(order.AttrSource) + len(order.AttrSourceVersion) + len(order.AttrLine)
	const types = 3*len("String") + len("Number")
	return len(e.Body) + names + types + len(e.ID) + len(e.Source) + len(e.Version) + digits(e.Line)
}

func digits(n int64) int { return len(strconv.FormatInt(n, 10)) }

func (e *Entry) request(id string) sqstypes.SendMessageBatchRequestEntry {
	str := func(v string) sqstypes.MessageAttributeValue {
		return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return sqstypes.SendMessageBatchRequestEntry{
		Id:          aws.String(id),
		MessageBody: aws.String(e.Body),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			order.AttrOrderID:       str(e.ID),
			order.AttrSource:        str(e.Source),
			order.AttrSourceVersion: str(e.Version),
			order.AttrLine:          {DataType: aws.String("Number"), StringValue: aws.String(strconv.FormatInt(e.Line, 10))},
		},
	}
}

// Refusal is an entry the queue refused for a reason of the entry itself (SenderFault): it
// cannot be sent however often it is retried, so it becomes a rejected line.
type Refusal struct {
	Entry *Entry
	Code  string
}

// Sender sends entries with SendMessageBatch: batches of at most MaxBatchEntries and
// MaxBatchBytes, Concurrency batches in flight, entries that fail with SenderFault=false
// retried with exponential backoff and full jitter up to MaxAttempts sends.
//
// Add and Flush are called from one goroutine; Refused is called from the sending goroutines.
// Close the Sender when done with it.
type Sender struct {
	client   BatchSender
	queueURL string
	attempts int
	backoff  time.Duration
	refused  func(Refusal)
	clock    Clock

	ctx     context.Context
	cancel  context.CancelFunc
	batches chan []*Entry
	workers sync.WaitGroup
	pending sync.WaitGroup

	batch      []*Entry // the batch being filled
	batchBytes int      // its size as SQS counts it

	sent atomic.Int64
	mu   sync.Mutex
	err  error
}

// SenderOptions tune a Sender; zero fields take the defaults.
type SenderOptions struct {
	Concurrency int           // batches in flight; default 4
	MaxAttempts int           // sends of a failing entry before giving up; default 5
	Backoff     time.Duration // base of the backoff between retries; default 100ms
	// Refused is called for each entry refused by the queue for a reason of its own (it is
	// not retried); nil counts it as a failure of the whole send.
	Refused func(Refusal)
	// Clock waits out the backoff (its Sleep); default the system clock.
	Clock Clock
}

// NewSender returns a Sender to queueURL. Its goroutines stop when ctx ends or on Close.
func NewSender(ctx context.Context, client BatchSender, queueURL string, o SenderOptions) *Sender {
	if o.Concurrency < 1 {
		o.Concurrency = DefaultSendConcurrency
	}
	if o.MaxAttempts < 1 {
		o.MaxAttempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sender{
		client: client, queueURL: queueURL, attempts: o.MaxAttempts, backoff: o.Backoff, refused: o.Refused, clock: o.Clock,
		ctx: ctx, cancel: cancel, batches: make(chan []*Entry, o.Concurrency),
	}
	for range o.Concurrency {
		s.workers.Add(1)
		go s.worker()
	}
	return s
}

// Add queues e for sending; it blocks while Concurrency batches are in flight. After a failure
// it returns the error and drops e.
func (s *Sender) Add(e *Entry) error {
	if err := s.Err(); err != nil {
		return err
	}
	n := e.size()
	if len(s.batch) > 0 && s.batchBytes+n > MaxBatchBytes {
		s.submitBatch()
	}
	s.batch = append(s.batch, e)
	s.batchBytes += n
	if len(s.batch) == MaxBatchEntries {
		s.submitBatch() // full: send it now rather than when the next entry arrives
	}
	return nil
}

// submitBatch hands the batch being filled to the sending goroutines and starts a new one;
// it blocks while Concurrency batches are in flight.
func (s *Sender) submitBatch() {
	if len(s.batch) == 0 {
		return
	}
	s.pending.Add(1)
	select {
	case s.batches <- s.batch:
	case <-s.ctx.Done():
		s.pending.Done()
		s.fail(fmt.Errorf("send orders: %w", s.ctx.Err()))
	}
	s.batch, s.batchBytes = make([]*Entry, 0, MaxBatchEntries), 0
}

// Flush sends what is queued and waits for every batch in flight. It returns the first error
// of any batch since the Sender was made: once it is nil, every entry added so far was
// accepted by the queue or passed to Refused.
func (s *Sender) Flush() error {
	s.submitBatch()
	s.pending.Wait()
	return s.Err()
}

// Close stops the sending goroutines; entries not flushed are dropped.
func (s *Sender) Close() {
	s.cancel()
	close(s.batches)
	s.workers.Wait()
}

// Sent is the number of entries the queue accepted.
func (s *Sender) Sent() int64 { return s.sent.Load() }

// Err returns the first send error, if any.
func (s *Sender) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Sender) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// worker sends the batches it receives until Close; after the first error it drops them.
func (s *Sender) worker() {
	defer s.workers.Done()
	for b := range s.batches {
		if s.Err() == nil {
			if err := s.sendBatch(b); err != nil {
				s.fail(err)
			}
		}
		s.pending.Done()
	}
}

// sendBatch sends one batch, retrying the entries that failed for a reason of the queue.
func (s *Sender) sendBatch(b []*Entry) error {
	reqs := make([]sqstypes.SendMessageBatchRequestEntry, len(b))
	for i, e := range b {
		reqs[i] = e.request(strconv.Itoa(i))
	}
	for attempt := 1; ; attempt++ {
		out, err := s.client.SendMessageBatch(s.ctx, &sqs.SendMessageBatchInput{QueueUrl: &s.queueURL, Entries: reqs})
		if err != nil {
			return fmt.Errorf("send message batch (lines %d-%d): %w", b[0].Line, b[len(b)-1].Line, err)
		}
		s.sent.Add(int64(len(out.Successful)))
		if len(out.Failed) == 0 {
			return nil
		}
		byID := make(map[string]sqstypes.SendMessageBatchRequestEntry, len(reqs))
		for _, r := range reqs {
			byID[*r.Id] = r
		}
		var retry []sqstypes.SendMessageBatchRequestEntry
		var last sqstypes.BatchResultErrorEntry
		for _, f := range out.Failed {
			r, ok := byID[aws.ToString(f.Id)]
			if !ok {
				return fmt.Errorf("send message batch: %w: unknown failed entry id %q", ErrSendFailed, aws.ToString(f.Id))
			}
			i, _ := strconv.Atoi(*r.Id)
			if entryFault(f) && s.refused != nil {
				s.refused(Refusal{Entry: b[i], Code: aws.ToString(f.Code)})
				continue
			}
			if f.SenderFault && !throttled(f) {
				return fmt.Errorf("send order %s (line %d): %w: %s: %s", b[i].ID, b[i].Line, ErrSendFailed, aws.ToString(f.Code), aws.ToString(f.Message))
			}
			retry, last = append(retry, r), f
		}
		if len(retry) == 0 {
			return nil
		}
		if attempt >= s.attempts {
			return fmt.Errorf("send message batch: %w: %d entries still failing after %d attempts, last %s: %s",
				ErrSendFailed, len(retry), attempt, aws.ToString(last.Code), aws.ToString(last.Message))
		}
		if err := s.clock.Sleep(s.ctx, backoff.Policy{Base: s.backoff, Max: maxBackoff}.FullJitter(attempt, rand.Float64())); err != nil {
			return fmt.Errorf("send message batch: retry: %w", err)
		}
		reqs = retry
	}
}

// throttled reports whether a failed entry was throttled (by SQS or by KMS for an encrypted
// queue): SQS flags some of these SenderFault, yet they pass when retried.
func throttled(f sqstypes.BatchResultErrorEntry) bool {
	return strings.Contains(strings.ToLower(aws.ToString(f.Code)), "throttl")
}

// entryFault reports whether a failed entry was refused for a fault of the entry itself, so that
// it can never be sent. A throttle is not, nor is a KMS error of an encrypted queue (disabled
// key, access denied: the queue's fault, not the order's), though SQS flags them SenderFault:
// turning those into rejected lines would drop valid orders.
func entryFault(f sqstypes.BatchResultErrorEntry) bool {
	code := strings.ToLower(aws.ToString(f.Code))
	return f.SenderFault && !throttled(f) && !strings.HasPrefix(code, "kms")
}

// maxBackoff caps the full-jitter exponential delay between retries of a batch's entries.
const maxBackoff = 10 * time.Second

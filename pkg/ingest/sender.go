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
	Body    []byte // order JSON
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

// digits is the length of n in decimal.
func digits(n int64) int {
	d := 1
	if n < 0 {
		d++
	}
	for n /= 10; n != 0; n /= 10 {
		d++
	}
	return d
}

// The attributes' data types and the batch entry ids "0" to "9", the index of the entry in its
// batch: SendMessageBatchRequestEntry takes pointers, which point here rather than to copies.
var (
	typeString = "String"
	typeNumber = "Number"
	entryIDs   = func() (ids [MaxBatchEntries]string) {
		for i := range ids {
			ids[i] = strconv.Itoa(i)
		}
		return ids
	}()
)

// batch is the entries of one SendMessageBatch. Its entries own their bodies: Add copies each
// into text, so the caller's buffer may be reused. A batch is recycled once sent, so nothing
// of it may be kept after: a Refusal's Entry is valid only during the Refused callback.
type batch struct {
	entries []Entry // Body of each is a slice of text
	text    []byte  // the bodies, then the line numbers in decimal, as added
	bytes   int     // its size as SQS counts it

	// Set by seal: the entries' bodies and line numbers as strings (slices of one string copy
	// of text), for the request's pointers.
	bodies [MaxBatchEntries]string
	lines  [MaxBatchEntries]string
}

// add copies e into the batch; size is e.size().
func (b *batch) add(e *Entry, size int) {
	start := len(b.text)
	b.text = append(b.text, e.Body...)
	b.entries = append(b.entries, *e)
	b.entries[len(b.entries)-1].Body = b.text[start:len(b.text):len(b.text)]
	b.bytes += size
}

// seal makes the strings the requests point to, slices of one string: a single allocation for
// the batch's bodies and line numbers. The entries' bodies then alias text, which seal has
// finished appending to.
func (b *batch) seal() {
	for i := range b.entries {
		b.text = strconv.AppendInt(b.text, b.entries[i].Line, 10)
	}
	text := string(b.text)
	off := 0
	for i := range b.entries {
		e := &b.entries[i]
		n := len(e.Body)
		e.Body, b.bodies[i] = b.text[off:off+n:off+n], text[off:off+n]
		off += n
	}
	for i := range b.entries {
		n := digits(b.entries[i].Line)
		b.lines[i] = text[off : off+n]
		off += n
	}
}

// keptText is the largest text buffer a recycled batch keeps: a file of large orders does not
// hold 2*Concurrency+1 buffers of up to MaxBatchBytes once its batches are sent.
const keptText = 64 << 10

// reset empties b for reuse.
func (b *batch) reset() {
	clear(b.entries) // drop the ids and sources: the batch may wait in the free list
	b.entries, b.text, b.bytes = b.entries[:0], b.text[:0], 0
	if cap(b.text) > keptText {
		b.text = nil
	}
	clear(b.bodies[:])
	clear(b.lines[:])
}

// requests is a sending goroutine's SendMessageBatch input, reused from batch to batch: the SDK
// keeps nothing of its input once SendMessageBatch returns. The attribute maps are made once;
// every pointer points into the batch being sent or at the constants above.
type requests struct {
	in      sqs.SendMessageBatchInput
	entries [MaxBatchEntries]sqstypes.SendMessageBatchRequestEntry
}

func newRequests(queueURL *string) *requests {
	r := &requests{in: sqs.SendMessageBatchInput{QueueUrl: queueURL}}
	for i := range r.entries {
		r.entries[i] = sqstypes.SendMessageBatchRequestEntry{Id: &entryIDs[i], MessageAttributes: make(map[string]sqstypes.MessageAttributeValue, 4)}
	}
	return r
}

// fill makes the request entries of sealed batch b: entry i has the id entryIDs[i].
func (r *requests) fill(b *batch) []sqstypes.SendMessageBatchRequestEntry {
	for i := range b.entries {
		e, q := &b.entries[i], &r.entries[i]
		q.MessageBody = &b.bodies[i]
		m := q.MessageAttributes
		m[order.AttrOrderID] = sqstypes.MessageAttributeValue{DataType: &typeString, StringValue: &e.ID}
		m[order.AttrSource] = sqstypes.MessageAttributeValue{DataType: &typeString, StringValue: &e.Source}
		m[order.AttrSourceVersion] = sqstypes.MessageAttributeValue{DataType: &typeString, StringValue: &e.Version}
		m[order.AttrLine] = sqstypes.MessageAttributeValue{DataType: &typeNumber, StringValue: &b.lines[i]}
	}
	return r.entries[:len(b.entries)]
}

// Refusal is an entry the queue refused for a reason of the entry itself (SenderFault): it
// cannot be sent however often it is retried, so it becomes a rejected line. Entry belongs to
// the Sender and is valid only during the Refused callback (copy what is kept).
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
	batches chan *batch
	free    chan *batch // sent batches, for reuse
	workers sync.WaitGroup
	pending sync.WaitGroup

	batch  *batch // the batch being filled
	handed int64  // batches handed to the sending goroutines (Add's goroutine only)

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
		ctx: ctx, cancel: cancel, batches: make(chan *batch, o.Concurrency),
		// Batches exist at most: Concurrency being sent, Concurrency waiting, one being filled.
		free: make(chan *batch, 2*o.Concurrency+1),
	}
	s.batch = s.newBatch()
	for range o.Concurrency {
		s.workers.Add(1)
		go s.worker()
	}
	return s
}

// Add queues a copy of e (its Body included: the caller may reuse e and its Body once Add
// returns); it blocks while Concurrency batches are in flight. After a failure it returns the
// error and drops e.
func (s *Sender) Add(e *Entry) error {
	if err := s.Err(); err != nil {
		return err
	}
	n := e.size()
	if len(s.batch.entries) > 0 && s.batch.bytes+n > MaxBatchBytes {
		s.submitBatch()
	}
	s.batch.add(e, n)
	if len(s.batch.entries) == MaxBatchEntries {
		s.submitBatch() // full: send it now rather than when the next entry arrives
	}
	return nil
}

// submitBatch hands the batch being filled to the sending goroutines and starts a new one;
// it blocks while Concurrency batches are in flight.
func (s *Sender) submitBatch() {
	if len(s.batch.entries) == 0 {
		return
	}
	s.batch.seal()
	s.pending.Add(1)
	select {
	case s.batches <- s.batch:
		s.batch = s.newBatch()
		s.handed++
	case <-s.ctx.Done():
		s.pending.Done()
		s.fail(fmt.Errorf("send orders: %w", s.ctx.Err()))
		s.batch.reset()
	}
}

// newBatch returns an empty batch, a recycled one if there is one.
func (s *Sender) newBatch() *batch {
	select {
	case b := <-s.free:
		return b
	default:
		return &batch{entries: make([]Entry, 0, MaxBatchEntries)}
	}
}

// recycle empties a sent batch and keeps it for reuse.
func (s *Sender) recycle(b *batch) {
	b.reset()
	select {
	case s.free <- b:
	default:
	}
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

// Handed is the number of batches Add and Flush handed to the sending goroutines (handing one
// over may wait while Concurrency batches are in flight). Call it from the goroutine that calls
// Add.
func (s *Sender) Handed() int64 { return s.handed }

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
	reqs := newRequests(&s.queueURL)
	for b := range s.batches {
		if s.Err() == nil {
			if err := s.sendBatch(reqs, b); err != nil {
				s.fail(err)
			}
		}
		s.recycle(b)
		s.pending.Done()
	}
}

// sendBatch sends one batch, retrying the entries that failed for a reason of the queue.
func (s *Sender) sendBatch(r *requests, sealed *batch) error {
	b := sealed.entries
	reqs := r.fill(sealed)
	for attempt := 1; ; attempt++ {
		r.in.Entries = reqs
		out, err := s.client.SendMessageBatch(s.ctx, &r.in)
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
				s.refused(Refusal{Entry: &b[i], Code: aws.ToString(f.Code)})
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

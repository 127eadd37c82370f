package local

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/sqsscan"
)

// Handler is the shape of the ingest and dispatch handlers (docs/CONTRACTS.md): a batch in, the
// messages that failed out, an error only when the whole batch failed.
type Handler func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

// SQSAPI is the part of the SQS client the Poller uses; *sqs.Client implements it.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// Defaults of the Poller, those of a Lambda SQS event source mapping and function.
const (
	DefaultBatchSize       = 10
	DefaultMaxConcurrency  = 2
	DefaultFunctionTimeout = 3 * time.Second
	DefaultWaitTime        = 20 * time.Second
)

// deleteTimeout bounds the DeleteMessageBatch after an invocation, which runs even while the
// poller stops.
const deleteTimeout = 10 * time.Second

// Poller feeds a queue's messages to a Handler the way a Lambda SQS event source mapping with
// ReportBatchItemFailures does (see the package documentation). Set the fields, then call Run
// once; Stats may be read at any time. Fields must not change once Run has started.
type Poller struct {
	Client   SQSAPI // required
	QueueURL string // required
	// QueueARN is the eventSourceARN of the records; its region is their awsRegion.
	QueueARN string
	// BatchSize is MaxNumberOfMessages of each receive, 1 to 10; 0 means DefaultBatchSize.
	BatchSize int
	// MaxConcurrency bounds the invocations in flight; 0 means DefaultMaxConcurrency.
	MaxConcurrency int
	// FunctionTimeout is each invocation's deadline; 0 means DefaultFunctionTimeout.
	FunctionTimeout time.Duration
	// WaitTime is the long poll of each receive, at most 20 s; 0 means DefaultWaitTime.
	WaitTime time.Duration
	// FunctionName names the function in the invocation's lambdacontext; default "local".
	FunctionName string
	Handler      Handler      // required
	Logger       *slog.Logger // nil means slog.Default()

	// receiveMu makes the workers take turns at ReceiveMessage (the invocations still run
	// concurrently): the stand-in's receive is not atomic, and two receives in flight on one
	// queue can both be handed the same message (seen as the same message id with receive counts
	// 1 and 2 at once, and a second PUT of its order). SQS itself hands a message to one receive.
	receiveMu sync.Mutex

	inflightMu sync.Mutex
	inflight   map[string]Invocation // by request id

	stats struct {
		received, invocations, deleted, itemFailures, failures, crashes, timeouts, receiveErrors, deleteErrors, released atomic.Int64
	}
}

// Stats counts what a Poller did.
type Stats struct {
	Received     int64 // messages received
	Invocations  int64 // handler calls
	Deleted      int64 // messages deleted after a successful invocation
	ItemFailures int64 // messages a successful invocation reported in BatchItemFailures (kept)
	// Failures are invocations whose whole batch was kept: an error, a timeout, a crash, or a
	// partial batch response naming a message not in the batch.
	Failures      int64
	Crashes       int64 // of Failures: a panic, or a function process that died (ErrCrashed)
	Timeouts      int64 // of Failures: the handler had not returned by FunctionTimeout (or ErrTimedOut)
	ReceiveErrors int64 // failed ReceiveMessage calls (retried after a pause)
	DeleteErrors  int64 // messages whose delete failed (they will be received again)
	Released      int64 // messages received while stopping and made visible again, not invoked
}

// Stats returns the counts so far. Safe to call concurrently with Run.
func (p *Poller) Stats() Stats {
	s := &p.stats
	return Stats{
		Received: s.received.Load(), Invocations: s.invocations.Load(), Deleted: s.deleted.Load(),
		ItemFailures: s.itemFailures.Load(), Failures: s.failures.Load(), Crashes: s.crashes.Load(),
		Timeouts: s.timeouts.Load(), ReceiveErrors: s.receiveErrors.Load(), DeleteErrors: s.deleteErrors.Load(),
		Released: s.released.Load(),
	}
}

// Invocation is an invocation in flight.
type Invocation struct {
	RequestID string
	Started   time.Time
	Records   []events.SQSMessage
}

// InFlight returns the invocations in flight, oldest first. Safe to call concurrently with Run.
func (p *Poller) InFlight() []Invocation {
	p.inflightMu.Lock()
	defer p.inflightMu.Unlock()
	out := make([]Invocation, 0, len(p.inflight))
	for _, inv := range p.inflight {
		out = append(out, inv)
	}
	slices.SortFunc(out, func(a, b Invocation) int { return a.Started.Compare(b.Started) })
	return out
}

// track records inv as in flight until the returned func is called.
func (p *Poller) track(inv Invocation) (done func()) {
	p.inflightMu.Lock()
	if p.inflight == nil {
		p.inflight = map[string]Invocation{}
	}
	p.inflight[inv.RequestID] = inv
	p.inflightMu.Unlock()
	return func() {
		p.inflightMu.Lock()
		delete(p.inflight, inv.RequestID)
		p.inflightMu.Unlock()
	}
}

// config is the Poller's fields with defaults applied.
type config struct {
	batchSize, concurrency int
	timeout, wait          time.Duration
	region, functionARN    string
	log                    *slog.Logger
}

func (p *Poller) config() (config, error) {
	c := config{batchSize: p.BatchSize, concurrency: p.MaxConcurrency, timeout: p.FunctionTimeout, wait: p.WaitTime, log: p.Logger}
	var errs []error
	if p.Client == nil {
		errs = append(errs, errors.New("Client is nil"))
	}
	if p.QueueURL == "" {
		errs = append(errs, errors.New("QueueURL is empty"))
	}
	if p.Handler == nil {
		errs = append(errs, errors.New("Handler is nil"))
	}
	if c.batchSize == 0 {
		c.batchSize = DefaultBatchSize
	}
	if c.batchSize < 1 || c.batchSize > 10 {
		errs = append(errs, fmt.Errorf("BatchSize %d: must be 1 to 10 (no batching window here)", p.BatchSize))
	}
	if c.concurrency == 0 {
		c.concurrency = DefaultMaxConcurrency
	}
	if c.concurrency < 1 {
		errs = append(errs, fmt.Errorf("MaxConcurrency %d: must be >= 1", p.MaxConcurrency))
	}
	if c.timeout == 0 {
		c.timeout = DefaultFunctionTimeout
	}
	if c.timeout < 0 {
		errs = append(errs, fmt.Errorf("FunctionTimeout %v: must be > 0", p.FunctionTimeout))
	}
	if c.wait == 0 {
		c.wait = DefaultWaitTime
	}
	if c.wait < time.Second || c.wait > 20*time.Second {
		errs = append(errs, fmt.Errorf("WaitTime %v: must be 1 s to 20 s", p.WaitTime))
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.region, c.functionARN = functionARN(p.QueueARN, p.FunctionName)
	return c, errors.Join(errs...)
}

// functionARN derives the region and a function ARN from the queue's ARN.
func functionARN(queueARN, name string) (region, arn string) {
	region, account := "us-east-1", "000000000000"
	if parts := strings.Split(queueARN, ":"); len(parts) == 6 {
		region, account = parts[3], parts[4]
	}
	if name == "" {
		name = "local"
	}
	return region, fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", region, account, name)
}

// Run polls until ctx is done, then waits for the receives in flight (within WaitTime: what they
// got is made visible again, not invoked) and the invocations in flight (each within
// FunctionTimeout) and their deletes, and returns nil. It runs MaxConcurrency workers, each
// receiving a batch and invoking the handler with it, so no more than MaxConcurrency invocations
// are ever in flight. It returns an error at once if a required field is missing or a value is
// out of range. Receive errors are logged, counted and retried after a pause.
func (p *Poller) Run(ctx context.Context) error {
	c, err := p.config()
	if err != nil {
		return fmt.Errorf("run poller on %s: %w", p.QueueURL, err)
	}
	var wg sync.WaitGroup
	for range c.concurrency {
		wg.Go(func() { p.work(ctx, c) })
	}
	wg.Wait()
	return nil
}

// work receives and invokes until ctx is done.
//
// A receive is not cancelled when ctx is done: the queue would still count the messages it
// hands to an abandoned long poll as received, and they would only come back after the
// visibility timeout. The receive finishes (within WaitTime) and what it got is released.
func (p *Poller) work(ctx context.Context, c config) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.wait+receiveMargin)
		p.receiveMu.Lock()
		out, err := p.Client.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    &p.QueueURL,
			MaxNumberOfMessages:         int32(c.batchSize),
			WaitTimeSeconds:             int32(c.wait / time.Second),
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		p.receiveMu.Unlock()
		cancel()
		if err != nil {
			p.stats.receiveErrors.Add(1)
			c.log.ErrorContext(ctx, "receive messages", "queueURL", p.QueueURL, "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
			pause = min(2*pause, 5*time.Second)
			continue
		}
		pause = 100 * time.Millisecond
		switch {
		case len(out.Messages) == 0:
		case ctx.Err() != nil:
			p.release(ctx, c.log, out.Messages)
		default:
			p.invoke(ctx, c, out.Messages)
		}
	}
}

// receiveMargin bounds a receive beyond its long poll.
const receiveMargin = 10 * time.Second

// release makes messages received while stopping visible again at once.
func (p *Poller) release(ctx context.Context, log *slog.Logger, msgs []sqstypes.Message) {
	p.stats.released.Add(int64(len(msgs)))
	handles := make(map[string]string, len(msgs))
	for _, m := range msgs {
		handles[aws.ToString(m.MessageId)] = aws.ToString(m.ReceiptHandle)
	}
	if _, err := sqsscan.Release(ctx, p.Client, p.QueueURL, handles); err != nil {
		log.WarnContext(ctx, "release messages received while stopping: they return after the visibility timeout", "queueURL", p.QueueURL, "messages", len(msgs), "error", err)
	}
}

// result is what one handler call gave.
type result struct {
	resp  events.SQSEventResponse
	err   error
	crash bool
}

// invoke runs one invocation with msgs and deletes what succeeded. It does not stop when ctx is
// done: an invocation in flight finishes (or times out) and its deletes are made.
func (p *Poller) invoke(ctx context.Context, c config, msgs []sqstypes.Message) {
	p.stats.received.Add(int64(len(msgs)))
	p.stats.invocations.Add(1)
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(msgs))}
	for i, m := range msgs {
		ev.Records[i] = SQSMessage(m, p.QueueARN, c.region)
	}
	requestID := newRequestID()
	defer p.track(Invocation{RequestID: requestID, Started: time.Now(), Records: ev.Records})()
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	ictx = lambdacontext.NewContext(ictx, &lambdacontext.LambdaContext{AwsRequestID: requestID, InvokedFunctionArn: c.functionARN})
	log := c.log.With("queueURL", p.QueueURL, "requestID", requestID)

	r := p.call(ictx, ev)
	if r.err != nil {
		p.stats.failures.Add(1)
		switch {
		case r.crash || errors.Is(r.err, ErrCrashed):
			p.stats.crashes.Add(1)
		case errors.Is(r.err, ErrTimedOut):
			p.stats.timeouts.Add(1)
		}
		log.WarnContext(ctx, "invocation failed: batch kept", "messages", len(msgs), "error", r.err)
		return
	}
	keep, err := failedIDs(r.resp, msgs)
	if err != nil {
		p.stats.failures.Add(1)
		log.WarnContext(ctx, "invalid partial batch response: batch kept", "messages", len(msgs), "error", err)
		return
	}
	p.stats.itemFailures.Add(int64(len(keep)))
	var entries []sqstypes.DeleteMessageBatchRequestEntry
	for _, m := range msgs {
		if !keep[aws.ToString(m.MessageId)] {
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: m.MessageId, ReceiptHandle: m.ReceiptHandle})
		}
	}
	p.delete(ctx, log, entries)
}

// call runs the handler, turning a panic into a crash and a missed deadline into ErrTimedOut.
// A handler that ignores its context's deadline is left running, as Lambda would have killed it.
func (p *Poller) call(ctx context.Context, ev events.SQSEvent) result {
	done := make(chan result, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- result{err: fmt.Errorf("handler panicked: %v", v), crash: true}
			}
		}()
		resp, err := p.Handler(ctx, ev)
		done <- result{resp: resp, err: err}
	}()
	select {
	case r := <-done:
		if r.err == nil && ctx.Err() != nil {
			return result{err: fmt.Errorf("invocation returned after its deadline: %w", ErrTimedOut)}
		}
		return r
	case <-ctx.Done():
		return result{err: fmt.Errorf("invocation: %w", ErrTimedOut)}
	}
}

// failedIDs returns the message ids of the BatchItemFailures, or an error, as Lambda treats the
// whole batch as failed, if one is empty or not in the batch.
func failedIDs(resp events.SQSEventResponse, msgs []sqstypes.Message) (map[string]bool, error) {
	in := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		in[aws.ToString(m.MessageId)] = true
	}
	keep := make(map[string]bool, len(resp.BatchItemFailures))
	for _, f := range resp.BatchItemFailures {
		if !in[f.ItemIdentifier] {
			return nil, fmt.Errorf("itemIdentifier %q is not a message of the batch", f.ItemIdentifier)
		}
		keep[f.ItemIdentifier] = true
	}
	return keep, nil
}

// delete deletes entries (at most 10), even while the poller stops.
func (p *Poller) delete(ctx context.Context, log *slog.Logger, entries []sqstypes.DeleteMessageBatchRequestEntry) {
	if len(entries) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
	defer cancel()
	out, err := p.Client.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: &p.QueueURL, Entries: entries})
	if err != nil {
		p.stats.deleteErrors.Add(int64(len(entries)))
		log.ErrorContext(ctx, "delete messages", "messages", len(entries), "error", err)
		return
	}
	p.stats.deleted.Add(int64(len(out.Successful)))
	p.stats.deleteErrors.Add(int64(len(out.Failed)))
	for _, f := range out.Failed {
		log.ErrorContext(ctx, "delete message", "messageID", aws.ToString(f.Id), "code", aws.ToString(f.Code), "error", aws.ToString(f.Message))
	}
}

// SQSMessage converts a received message into the record Lambda gives a function: the system
// attributes as received, message attributes with stringValue/binaryValue and list values as
// empty arrays, eventSource "aws:sqs", the queue's ARN and region.
func SQSMessage(m sqstypes.Message, queueARN, region string) events.SQSMessage {
	attrs := make(map[string]string, len(m.Attributes))
	for k, v := range m.Attributes {
		attrs[k] = v
	}
	mattrs := make(map[string]events.SQSMessageAttribute, len(m.MessageAttributes))
	for k, v := range m.MessageAttributes {
		a := events.SQSMessageAttribute{
			StringValue:      v.StringValue,
			BinaryValue:      v.BinaryValue,
			StringListValues: v.StringListValues,
			BinaryListValues: v.BinaryListValues,
			DataType:         aws.ToString(v.DataType),
		}
		if a.StringListValues == nil {
			a.StringListValues = []string{}
		}
		if a.BinaryListValues == nil {
			a.BinaryListValues = [][]byte{}
		}
		mattrs[k] = a
	}
	return events.SQSMessage{
		MessageId:              aws.ToString(m.MessageId),
		ReceiptHandle:          aws.ToString(m.ReceiptHandle),
		Body:                   aws.ToString(m.Body),
		Md5OfBody:              aws.ToString(m.MD5OfBody),
		Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
		Attributes:             attrs,
		MessageAttributes:      mattrs,
		EventSourceARN:         queueARN,
		EventSource:            "aws:sqs",
		AWSRegion:              region,
	}
}

// SQSHandler adapts a function that takes and returns JSON, such as Process.Invoke, into a
// Handler: it marshals the event and unmarshals the response. An empty or null response is a
// success with no failures; a response that is not a partial batch response is an error, so
// the whole batch is kept, as Lambda does.
func SQSHandler(invoke func(ctx context.Context, payload []byte) ([]byte, error)) Handler {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		payload, err := json.Marshal(ev)
		if err != nil {
			return resp, fmt.Errorf("marshal SQS event: %w", err)
		}
		out, err := invoke(ctx, payload)
		if err != nil {
			return resp, err
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			return resp, nil
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			return resp, fmt.Errorf("decode partial batch response: %w", err)
		}
		return resp, nil
	}
}

// newRequestID returns a random (version 4) UUID, the shape of a Lambda request id.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

package ingest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/s3event"
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

// ErrObjectMissing is wrapped by the error for an object (or object version) that does not
// exist: the message fails and is retried, then parked on the files DLQ.
var ErrObjectMissing = errors.New("object not found")

// MaxListedDuplicates is the most duplicate ids listed in a report; the rest are counted in
// rejected and flagged with duplicateIdsTruncated.
const MaxListedDuplicates = 1000

// Lease lengths of a claim.
const (
	// LeaseSlack is added to the invocation's deadline: the claim outlives the invocation
	// by this much, for clock skew between invocations.
	LeaseSlack = time.Minute
	// DefaultLease is the lease without a deadline, and of a claim handed to a continuation.
	DefaultLease = 15 * time.Minute
)

// Outcome says how Ingest left an object version.
type Outcome int

// The outcomes of Ingest.
const (
	Done      Outcome = iota + 1 // ingested (or refused) to the end: report written
	Skipped                      // done earlier: nothing sent
	Continued                    // checkpointed: a continuation is on the files queue
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case Done:
		return "done"
	case Skipped:
		return "skipped"
	case Continued:
		return "continued"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Report is the content of `reports/{key}.json`.
type Report struct {
	Bucket                string    `json:"bucket"`
	Key                   string    `json:"key"`
	Version               string    `json:"version"`
	Lines                 int64     `json:"lines"` // lines read, blank ones aside: enqueued + rejected
	Enqueued              int64     `json:"enqueued"`
	Rejected              int64     `json:"rejected"`
	DuplicateIDs          []string  `json:"duplicateIds"`
	DuplicateIDsTruncated bool      `json:"duplicateIdsTruncated,omitempty"`
	DuplicateCheck        string    `json:"duplicateCheck"` // "complete", or "partial" past MaxTrackedIDs
	Continuations         int       `json:"continuations"`
	Refused               string    `json:"refused,omitempty"` // why no line was read
	Stopped               string    `json:"stopped,omitempty"` // why reading stopped before the end
	StartedAt             time.Time `json:"startedAt"`
	FinishedAt            time.Time `json:"finishedAt"`
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

// Handle ingests the object versions named by a batch of files-queue messages. A message that
// cannot be decoded or whose object cannot be ingested now is returned in BatchItemFailures
// (and logged); the others succeed. The error is always nil.
func (s *Service) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	started := false
	for _, m := range ev.Records {
		if err := s.handleMessage(ctx, m, &started); err != nil {
			level, attrs := slog.LevelError, []any{"messageID", m.MessageId, "err", err}
			var oe *objectError
			if errors.As(err, &oe) {
				attrs = append(attrs, "bucket", oe.obj.Bucket, "key", oe.obj.Key, "version", oe.obj.Version)
			}
			if errors.Is(err, ErrBusy) {
				level = slog.LevelWarn // expected with duplicate deliveries: retried later
			}
			slog.Log(ctx, level, "ingest message failed", attrs...)
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
		slog.InfoContext(ctx, "skip s3:TestEvent", "messageID", m.MessageId)
		return nil
	}
	recs, token := msg.Records, ""
	if c := msg.Continuation; c != nil {
		recs, token = []s3event.Record{c.Record()}, c.Token
	}
	for _, rec := range recs {
		if !rec.Created() {
			slog.InfoContext(ctx, "skip event", "messageID", m.MessageId, "event", rec.EventName, "bucket", rec.Bucket, "key", rec.Key)
			continue
		}
		if stop := s.stopAt(ctx); *started && !stop.IsZero() && s.now().After(stop) {
			if err := s.sendContinuation(ctx, rec, token); err != nil {
				return err
			}
			continue
		}
		*started = true
		out, err := s.Ingest(ctx, rec, token)
		if err != nil {
			return &objectError{obj: objectOf(rec), err: err}
		}
		slog.InfoContext(ctx, "ingest "+out.String(), "messageID", m.MessageId, "bucket", rec.Bucket, "key", rec.Key, "version", objectOf(rec).Version)
	}
	return nil
}

// sendContinuation puts a continuation of rec on the files queue.
func (s *Service) sendContinuation(ctx context.Context, rec s3event.Record, token string) error {
	body, err := s3event.Continuation{Bucket: rec.Bucket, Key: rec.Key, VersionID: rec.VersionID, ETag: rec.ETag, Token: token}.Body()
	if err != nil {
		return err
	}
	if _, err := s.queue.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &s.cfg.FilesQueueURL, MessageBody: &body}); err != nil {
		return fmt.Errorf("send continuation of s3://%s/%s: %w", rec.Bucket, rec.Key, err)
	}
	return nil
}

// Ingest sends the orders of the object version rec names, from its checkpoint if it has one,
// and writes its rejects, report and state. token is the owner token of a continuation ("" for
// an S3 event). It returns Skipped for a version done earlier, Continued when it stopped at the
// checkpoint time and sent a continuation, Done otherwise. An error (ErrBusy, ErrObjectMissing,
// ErrSendFailed, S3 or SQS errors) leaves the checkpoint as it was and releases the claim:
// retrying the message resumes there.
func (s *Service) Ingest(ctx context.Context, rec s3event.Record, token string) (Outcome, error) {
	obj := objectOf(rec)
	now := s.now()
	lease := now.Add(DefaultLease)
	if d, ok := ctx.Deadline(); ok {
		lease = d.Add(LeaseSlack)
	}
	// An S3 event names a version that is most likely fresh: its GET from the first byte goes
	// out together with the claim (used only once the claim is held at offset 0). A
	// continuation resumes from a checkpoint, and a file refused whole is never read.
	var pre *prefetch
	if token == "" && s.readable(rec) {
		pre = startPrefetch(ctx, s.objects, obj)
	}
	defer pre.discard()
	c, err := acquire(ctx, s.objects, obj, rec.ETag, token, now, lease)
	if errors.Is(err, errDone) {
		return Skipped, nil
	}
	if err != nil {
		return 0, err
	}
	r := &run{s: s, c: c, saved: c.state, line: c.state.Line, pre: pre}
	defer r.rejects.close()
	if c.abandoned {
		done, err := r.adoptReport(ctx)
		if err != nil {
			r.release(ctx)
			return 0, err
		}
		if done {
			return Skipped, nil
		}
	}
	out, err := r.run(ctx, rec.Size)
	if err != nil {
		r.release(ctx)
	}
	return out, err
}

// readable reports whether the object of rec passes the checks made before its first read
// (size in the event, file name): those that fail are refused without a GET.
func (s *Service) readable(rec s3event.Record) bool {
	_, _, err := order.FormatOf(rec.Key)
	return err == nil && rec.Size <= s.cfg.MaxFileBytes
}

// objectOf names the object version of rec.
func objectOf(rec s3event.Record) object {
	obj := object{Bucket: rec.Bucket, Key: rec.Key, Version: rec.VersionID}
	// "null" is the version id of an object written while versioning was suspended: overwritten
	// in place like an unversioned one, so its ETag names the content too.
	if obj.Version == "" || obj.Version == order.NullVersion {
		obj.Version = order.NullVersion
		obj.ETag = strings.Trim(rec.ETag, `"`)
	}
	return obj
}

// objectError is the failure of one object version of a message.
type objectError struct {
	obj object
	err error
}

func (e *objectError) Error() string {
	return "ingest " + e.obj.source() + " (version " + e.obj.Version + "): " + e.err.Error()
}

func (e *objectError) Unwrap() error { return e.err }

// run is one invocation's work on one object version.
type run struct {
	s     *Service
	c     *claim
	saved State     // the state as last saved
	pre   *prefetch // GET of the whole object started with the claim, or nil

	send    *Sender
	rejects rejectLog
	ids     idSet
	dups    []string // duplicate ids found since the last save, to list in the report
	dupsCut bool     // more duplicates than MaxListedDuplicates
	lines   int64    // lines read since the last save
	sent    int64    // s.send.Sent() at the last save
	line    int64    // number of the last line read
}

func (r *run) run(ctx context.Context, eventSize int64) (Outcome, error) {
	st := r.c.state
	limit := r.s.cfg.MaxFileBytes
	if eventSize > limit {
		return r.finish(ctx, fmt.Sprintf("object is %d bytes, above MAX_FILE_BYTES %d", eventSize, limit), "")
	}
	format, gz, err := order.FormatOf(r.c.obj.Key)
	if err != nil {
		return r.finish(ctx, "unsupported file name: want .jsonl, .ndjson or .csv, optionally .gz", "")
	}
	if st.Offset > 0 && !gz && st.Offset >= st.Size {
		return r.finish(ctx, "", "")
	}
	body, err := r.open(ctx, gz)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	if r.c.state.Size > limit {
		return r.finish(ctx, fmt.Sprintf("object is %d bytes, above MAX_FILE_BYTES %d", r.c.state.Size, limit), "")
	}
	in := io.Reader(body)
	if gz {
		zr, err := gzip.NewReader(body)
		switch {
		case errors.Is(err, io.EOF):
			in = bytes.NewReader(nil)
		case err != nil:
			return r.finish(ctx, "", "gzip: "+err.Error())
		default:
			in = zr
			// No byte range into a gzip stream: decompress the part before the checkpoint again.
			if _, err := io.CopyN(io.Discard, zr, st.Offset); err != nil {
				return 0, fmt.Errorf("skip %d decompressed bytes to the checkpoint: %w", st.Offset, err)
			}
		}
	}
	if err := r.loadIDs(ctx); err != nil {
		return 0, err
	}
	rd := order.NewReader(in, format, order.Options{
		IDField: r.s.cfg.IDField, MaxLineBytes: r.s.cfg.MaxLineBytes, Header: st.Header, StartLine: st.Line,
	})
	return r.read(ctx, rd)
}

// open starts the GET of the object from the checkpoint, pinned to the version (or, for an
// unversioned object, to the ETag seen at the start) so that a continuation reads the same bytes.
func (r *run) open(ctx context.Context, gz bool) (io.ReadCloser, error) {
	st := &r.c.state
	obj := r.c.obj
	in := &s3.GetObjectInput{Bucket: aws.String(obj.Bucket), Key: aws.String(obj.Key), VersionId: obj.versionID(), IfMatch: obj.firstRead()}
	if st.Offset > 0 {
		if obj.Version == order.NullVersion && st.ETag != "" {
			in.IfMatch = aws.String(st.ETag)
		}
		if !gz {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-", st.Offset))
		}
	}
	var out *s3.GetObjectOutput
	var err error
	if st.Offset == 0 && r.pre.pending() {
		out, err = r.pre.take() // the same request, started with the claim
	} else {
		r.pre.discard()
		out, err = r.s.objects.GetObject(ctx, in)
	}
	switch {
	case isNotFound(err):
		return nil, fmt.Errorf("get object: %w: %w", ErrObjectMissing, err)
	case isPreconditionFailed(err):
		return nil, fmt.Errorf("get object: changed since its event or the checkpoint (use a versioned bucket): %w", err)
	case err != nil:
		return nil, fmt.Errorf("get object: %w", err)
	}
	if st.Offset == 0 {
		st.Size = aws.ToInt64(out.ContentLength)
		st.ETag = aws.ToString(out.ETag)
	}
	return out.Body, nil
}

// read sends the orders of rd until the end, a checkpoint time or an error.
func (r *run) read(ctx context.Context, rd *order.Reader) (Outcome, error) {
	r.send = NewSender(ctx, r.s.queue, r.s.cfg.OrdersQueueURL, SenderOptions{
		Concurrency: r.s.cfg.SendConcurrency, MaxAttempts: r.s.Retry.MaxAttempts, Backoff: r.s.Retry.Backoff,
		Refused: r.refused,
	})
	defer r.send.Close()
	obj, base := r.c.obj, r.c.state.Offset
	src := obj.source()
	stopAt := r.s.stopAt(ctx)
	saveAt := r.s.now().Add(r.s.cfg.CheckpointEvery)
	var le *order.LineError
	for {
		o, err := rd.Next()
		switch {
		case err == io.EOF:
			return r.finish(ctx, "", "")
		case errors.As(err, &le):
			r.line = le.Line
			if err := r.rejects.add(le.Line, le.Reason, le.Raw); err != nil {
				return 0, err
			}
		case err != nil && fileError(err):
			return r.finish(ctx, "", fmt.Sprintf("after line %d: %v", r.line, err))
		case err != nil:
			// An I/O error: keep what is done so that the retry resumes here.
			return 0, errors.Join(err, r.save(ctx, base+rd.Offset(), rd.Header(), "", time.Time{}))
		default:
			r.line = o.Line
			if !r.ids.add(hashID(o.ID)) {
				if len(r.saved.DuplicateIDs)+len(r.dups) < MaxListedDuplicates {
					r.dups = append(r.dups, strings.Clone(o.ID))
				} else {
					r.dupsCut = true
				}
				if err := r.rejects.add(o.Line, ReasonDuplicateID, o.Body); err != nil {
					return 0, err
				}
				break
			}
			e := &Entry{ID: strings.Clone(o.ID), Body: string(o.Body), Line: o.Line, Source: src, Version: obj.Version}
			if e.size() > MaxMessageBytes {
				// The queue would refuse the whole batch, on every retry of the file.
				if err := r.rejects.add(o.Line, ReasonTooLarge, o.Body); err != nil {
					return 0, err
				}
				break
			}
			if err := r.send.Add(e); err != nil {
				return 0, err
			}
		}
		r.lines++
		now := r.s.now()
		switch {
		case !stopAt.IsZero() && now.After(stopAt):
			return r.handoff(ctx, base+rd.Offset(), rd.Header())
		case now.After(saveAt):
			if err := r.save(ctx, base+rd.Offset(), rd.Header(), r.c.state.Owner, r.c.state.LeaseUntil); err != nil {
				return 0, err
			}
			saveAt = now.Add(r.s.cfg.CheckpointEvery)
		}
	}
}

// fileError reports whether a fatal reader error is the file's fault: retrying cannot help.
func fileError(err error) bool {
	var corrupt flate.CorruptInputError
	return errors.Is(err, order.ErrBadHeader) || errors.Is(err, gzip.ErrChecksum) ||
		errors.Is(err, gzip.ErrHeader) || errors.As(err, &corrupt)
}

// refused records an order the queue refused for a reason of its own as a rejected line.
func (r *run) refused(f Refusal) {
	reason := "refused by the queue: " + f.Code
	if err := r.rejects.add(f.Entry.Line, reason, []byte(f.Entry.Body)); err != nil {
		slog.Error("record refused order", "orderID", f.Entry.ID, "err", err)
	}
}

// save flushes the sender and saves the checkpoint at offset with the given owner and lease
// (the claim's own for a periodic save; the zero lease releases the claim).
func (r *run) save(ctx context.Context, offset int64, header []string, owner string, lease time.Time) error {
	st, err := r.fold(ctx)
	if err != nil {
		return err
	}
	if n := r.rejects.count(); n > 0 {
		f, size, err := r.rejects.reader()
		if err == nil {
			err = putFile(ctx, r.s.objects, r.c.obj.Bucket, r.c.obj.rejectPartKey(st.RejectParts), f, size, "application/x-ndjson")
		}
		if err != nil {
			return fmt.Errorf("save rejects: %w", err)
		}
		st.RejectParts++
	}
	if r.ids.n != st.TrackedIDs {
		// Into the slot the saved state does not name: if this state write fails, the retry
		// resumes at the saved checkpoint with the id set of that checkpoint, not one ahead of it
		// (which would reject the lines after the checkpoint as duplicates of themselves).
		slot := 1 - st.IDsSlot
		b, _ := r.ids.MarshalBinary()
		if err := putFile(ctx, r.s.objects, r.c.obj.Bucket, r.c.obj.idsKey(slot), bytes.NewReader(b), int64(len(b)), "application/octet-stream"); err != nil {
			return fmt.Errorf("save id set: %w", err)
		}
		st.TrackedIDs, st.IDsSlot = r.ids.n, slot
	}
	st.Offset, st.Line, st.Header = offset, r.line, header
	st.Owner, st.LeaseUntil = owner, lease
	return r.commit(ctx, st)
}

// fold flushes the sender and returns the saved state plus the counts since the last save.
func (r *run) fold(ctx context.Context) (State, error) {
	st := r.saved
	st.Size, st.ETag = r.c.state.Size, r.c.state.ETag
	if r.send != nil {
		if err := r.send.Flush(); err != nil {
			return st, err
		}
		st.Enqueued += r.send.Sent() - r.sent
	}
	st.Lines += r.lines
	st.Rejected += r.rejects.count()
	st.DuplicateIDs = append(slices.Clip(st.DuplicateIDs), r.dups...)
	st.DuplicateIDsTruncated = st.DuplicateIDsTruncated || r.dupsCut
	st.DuplicateCheckPartial = st.DuplicateCheckPartial || r.ids.partial
	return st, nil
}

// commit writes st over the claim's state (compare-and-swap) and starts counting afresh.
func (r *run) commit(ctx context.Context, st State) error {
	prev := r.c.state
	r.c.state = st
	if err := r.c.save(ctx, r.s.objects); err != nil {
		r.c.state = prev
		return err
	}
	r.saved = st
	r.lines, r.dups = 0, nil
	if r.send != nil {
		r.sent = r.send.Sent()
	}
	return r.rejects.reset()
}

// handoff saves the checkpoint, hands the claim to a new token and sends the continuation
// that carries it.
//
// The margin exists for this work: its S3 writes run detached from the invocation's cancel and
// end a little before the deadline (handoffReserve), leaving time to read a state write of
// unknown outcome back (claim.put) and then to send the continuation or release the claim.
func (r *run) handoff(ctx context.Context, offset int64, header []string) (Outcome, error) {
	token := newToken()
	r.saved.Continuations++
	wctx, cancel := bookkeeping(ctx, r.s.handoffReserve())
	defer cancel()
	if err := r.save(wctx, offset, header, token, r.s.now().Add(DefaultLease)); err != nil {
		r.saved.Continuations--
		return 0, err
	}
	// The claim is the new token's now: the continuation must go out even if ctx is done.
	ctx, cancelSend := bookkeeping(ctx, BookkeepingReserve)
	defer cancelSend()
	obj := r.c.obj
	etag := r.c.state.ETag
	if obj.Version == order.NullVersion {
		// The continuation must name this state (@null-{the event's eTag}, or @null without one),
		// not the GET's ETag: the reads are pinned by the state's own ETag.
		etag = obj.ETag
	}
	rec := s3event.Record{Bucket: obj.Bucket, Key: obj.Key, VersionID: obj.versionIDString(), ETag: etag}
	if err := r.s.sendContinuation(ctx, rec, token); err != nil {
		return 0, err
	}
	return Continued, nil
}

// release gives up the claim (lease in the past) so that a retry resumes at once from the
// last checkpoint. It is best effort: the lease runs out anyway.
func (r *run) release(ctx context.Context) {
	ctx, cancel := bookkeeping(ctx, BookkeepingReserve)
	defer cancel()
	st := r.saved
	st.LeaseUntil = time.Time{}
	r.c.state = st
	if err := r.c.save(ctx, r.s.objects); err != nil {
		slog.WarnContext(ctx, "release claim", "bucket", r.c.obj.Bucket, "key", r.c.obj.Key, "err", err)
	}
}

// finish writes the rejects object, the report and the done state. refused or stopped say
// why the file was not read (to the end).
func (r *run) finish(ctx context.Context, refused, stopped string) (Outcome, error) {
	st, err := r.fold(ctx)
	if err != nil {
		return 0, err
	}
	obj := r.c.obj
	// Without rejects, the rejects object of an earlier version of the key is deleted: it must
	// not stand beside this run's report.
	if st.Rejected > 0 {
		err = r.writeRejects(ctx, st.RejectParts)
	} else {
		err = r.deleteRejects(ctx)
	}
	if err != nil {
		return 0, err
	}
	now := r.s.now()
	rep := Report{
		Bucket: obj.Bucket, Key: obj.Key, Version: obj.Version,
		Lines: st.Lines, Enqueued: st.Enqueued, Rejected: st.Rejected,
		DuplicateIDs: st.DuplicateIDs, DuplicateIDsTruncated: st.DuplicateIDsTruncated,
		DuplicateCheck: "complete", Continuations: st.Continuations,
		Refused: refused, Stopped: stopped, StartedAt: st.StartedAt, FinishedAt: now,
	}
	if rep.DuplicateIDs == nil {
		rep.DuplicateIDs = []string{}
	}
	if st.DuplicateCheckPartial {
		rep.DuplicateCheck = "partial"
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return 0, fmt.Errorf("encode report: %w", err)
	}
	if err := putFile(ctx, r.s.objects, obj.Bucket, obj.reportKey(), bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
		return 0, fmt.Errorf("write report: %w", err)
	}
	st.Status, st.Refused, st.FinishedAt, st.LeaseUntil = StatusDone, refused+stopped, now, time.Time{}
	if err := r.commit(ctx, st); err != nil {
		return 0, err
	}
	r.cleanup(ctx, st)
	return Done, nil
}

// adoptReport finishes a run whose earlier owner wrote the report but not the done state (it
// crashed, or the state write failed), and reports whether it did. finish writes the report
// only once every order was accepted by the queue and the rejects object is written, so the
// report of this run (same version, same StartedAt as the state) means that nothing is left to
// send: the done state is written from the report and the checkpoint's sidecars deleted.
// A missing report, or one of another run (an older version, another content of the same
// key), says nothing: the run resumes from the checkpoint.
func (r *run) adoptReport(ctx context.Context) (bool, error) {
	obj := r.c.obj
	var buf bytes.Buffer
	err := r.copyObject(ctx, &buf, obj.reportKey())
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for the report of an abandoned run: %w", err)
	}
	var rep Report
	st := r.c.state
	if json.Unmarshal(buf.Bytes(), &rep) != nil || rep.Version != obj.Version || st.StartedAt.IsZero() || !rep.StartedAt.Equal(st.StartedAt) {
		return false, nil
	}
	st.Status, st.LeaseUntil, st.FinishedAt = StatusDone, time.Time{}, rep.FinishedAt
	st.Lines, st.Enqueued, st.Rejected, st.Continuations = rep.Lines, rep.Enqueued, rep.Rejected, rep.Continuations
	st.DuplicateIDs, st.DuplicateIDsTruncated = rep.DuplicateIDs, rep.DuplicateIDsTruncated
	st.DuplicateCheckPartial = rep.DuplicateCheck == "partial"
	st.Refused = rep.Refused + rep.Stopped
	if err := r.commit(ctx, st); err != nil {
		return false, err
	}
	r.cleanup(ctx, st)
	return true, nil
}

// deleteRejects deletes `rejects/{key}.jsonl` (left by an earlier version of the key, if any;
// S3 answers a delete of a missing key with success).
func (r *run) deleteRejects(ctx context.Context) error {
	obj := r.c.obj
	if _, err := r.s.objects.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(obj.Bucket), Key: aws.String(obj.rejectsKey())}); err != nil {
		return fmt.Errorf("delete rejects of an earlier version %s: %w", obj.rejectsKey(), err)
	}
	return nil
}

// writeRejects writes `rejects/{key}.jsonl`: the parts saved at earlier checkpoints, then this
// invocation's rejects.
func (r *run) writeRejects(ctx context.Context, parts int) error {
	obj := r.c.obj
	f, size, err := r.rejects.reader()
	if err != nil {
		return err
	}
	if f == nil {
		f = bytes.NewReader(nil)
	}
	if parts > 0 {
		all, err := os.CreateTemp("", "orderpipe-rejects-all-*.jsonl")
		if err != nil {
			return fmt.Errorf("combine rejects: %w", err)
		}
		defer os.Remove(all.Name())
		defer all.Close()
		for i := range parts {
			if err := r.copyObject(ctx, all, obj.rejectPartKey(i)); err != nil {
				return fmt.Errorf("combine rejects: %w", err)
			}
		}
		if _, err := io.Copy(all, f); err != nil {
			return fmt.Errorf("combine rejects: %w", err)
		}
		if size, err = all.Seek(0, io.SeekCurrent); err == nil {
			_, err = all.Seek(0, io.SeekStart)
		}
		if err != nil {
			return fmt.Errorf("combine rejects: %w", err)
		}
		f = all
	}
	if err := putFile(ctx, r.s.objects, obj.Bucket, obj.rejectsKey(), f, size, "application/x-ndjson"); err != nil {
		return fmt.Errorf("write rejects: %w", err)
	}
	return nil
}

func (r *run) copyObject(ctx context.Context, w io.Writer, key string) error {
	out, err := r.s.objects.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.c.obj.Bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	if _, err := io.Copy(w, out.Body); err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	return nil
}

// loadIDs reads the id set saved at the checkpoint.
func (r *run) loadIDs(ctx context.Context) error {
	if r.c.state.TrackedIDs == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := r.copyObject(ctx, &buf, r.c.obj.idsKey(r.c.state.IDsSlot)); err != nil {
		return fmt.Errorf("load id set: %w", err)
	}
	if err := r.ids.UnmarshalBinary(buf.Bytes()); err != nil {
		return fmt.Errorf("load id set: %w", err)
	}
	r.ids.partial = r.c.state.DuplicateCheckPartial
	return nil
}

// cleanup deletes the checkpoint's sidecar objects; best effort.
func (r *run) cleanup(ctx context.Context, st State) {
	keys := []string{}
	if st.TrackedIDs > 0 {
		keys = append(keys, r.c.obj.idsKey(0), r.c.obj.idsKey(1))
	}
	for i := range st.RejectParts {
		keys = append(keys, r.c.obj.rejectPartKey(i))
	}
	for _, k := range keys {
		if _, err := r.s.objects.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(r.c.obj.Bucket), Key: aws.String(k)}); err != nil {
			slog.WarnContext(ctx, "delete checkpoint object", "bucket", r.c.obj.Bucket, "key", k, "err", err)
		}
	}
}

package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// ErrObjectMissing is wrapped by the error for an object (or object version) that does not
// exist: the message fails and is retried, then parked on the files DLQ.
var ErrObjectMissing = errors.New("object not found")

// DefaultLease is the lease of a claim without a deadline, and of a claim handed to a
// continuation. With a deadline the lease ends Config.LeaseSlack after it: the claim outlives
// the invocation by that much, for clock skew between invocations.
const DefaultLease = 15 * time.Minute

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
		lease = d.Add(s.cfg.LeaseSlack)
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
	r := &fileRun{svc: s, claim: c, saved: c.state, line: c.state.Line, prefetch: pre}
	defer r.rejects.close()
	if c.abandoned {
		done, err := r.adoptReport(ctx)
		if err != nil {
			r.releaseClaim(ctx)
			return 0, err
		}
		if done {
			return Skipped, nil
		}
	}
	out, err := r.openAndSend(ctx, rec.Size)
	if err != nil {
		r.releaseClaim(ctx)
	}
	return out, err
}

// readable reports whether the object of rec passes the checks made before its first read
// (size in the event, file name): those that fail are refused without a GET.
func (s *Service) readable(rec s3event.Record) bool {
	_, _, err := order.FormatOf(rec.Key)
	return err == nil && rec.Size <= s.cfg.MaxFileBytes
}

// fileRun is one invocation's work on one object version, from its claim to the checkpoint
// or report that ends it.
type fileRun struct {
	svc      *Service
	claim    *claim
	saved    State     // the state as last saved
	prefetch *prefetch // GET of the whole object started with the claim, or nil

	retriedChecksum bool // the verifying pass read the object again after a checksum mismatch

	send          *Sender
	rejects       rejectLog
	ids           idSet
	newDups       []string // duplicate ids found since the last save, to list in the report
	dupsTruncated bool     // more duplicates than MaxListedDuplicates
	lines         int64    // lines read since the last save
	sent          int64    // send.Sent() at the last save
	line          int64    // number of the last line read
	budget        int64    // orders this invocation may enqueue before the orders queue is full; 0: no limit
	added         int64    // orders this invocation enqueued (or is enqueueing)
}

// openAndSend refuses a file that cannot be read (size, name), opens it at the checkpoint and
// sends its orders (sendOrders).
func (r *fileRun) openAndSend(ctx context.Context, eventSize int64) (Outcome, error) {
	st := r.claim.state
	limit := r.svc.cfg.MaxFileBytes
	if eventSize > limit {
		return r.finish(ctx, fmt.Sprintf("object is %d bytes, above MAX_FILE_BYTES %d", eventSize, limit), "")
	}
	_, gz, err := order.FormatOf(r.claim.obj.Key)
	if err != nil {
		return r.finish(ctx, "unsupported file name: want .jsonl, .ndjson or .csv, optionally .gz", "")
	}
	if !st.verified() && !r.svc.skipVerify {
		out, ok, err := r.verify(ctx, gz)
		if !ok {
			return out, err
		}
	}
	if st.Offset > 0 && !gz && st.Offset >= st.Size {
		return r.finish(ctx, "", "")
	}
	budget, out, ok, err := r.makeRoom(ctx)
	if !ok {
		return out, err
	}
	r.budget = budget
	body, err := r.open(ctx, gz)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	if r.claim.state.Size > limit {
		return r.finish(ctx, fmt.Sprintf("object is %d bytes, above MAX_FILE_BYTES %d", r.claim.state.Size, limit), "")
	}
	rd, err := order.Open(body, r.claim.obj.Key, order.Options{
		IDField: r.svc.cfg.IDField, MaxLineBytes: r.svc.cfg.MaxLineBytes, Header: st.Header, StartLine: st.Line,
		InLine: st.InLine, YieldBytes: r.svc.chunks.yield,
	})
	if err != nil {
		return r.finish(ctx, "", err.Error()) // not a gzip stream: retrying cannot help
	}
	if gz {
		// No byte range into a gzip stream: decompress the part before the checkpoint again.
		if err := rd.Skip(st.Offset); err != nil {
			return 0, fmt.Errorf("skip to the checkpoint: %w", err)
		}
	}
	if err := r.loadIDs(ctx); err != nil {
		return 0, err
	}
	return r.sendOrders(ctx, rd)
}

// open starts the GET of the object from the checkpoint, pinned to the version (or, for an
// unversioned object, to the ETag seen at the start) so that a continuation reads the same bytes.
func (r *fileRun) open(ctx context.Context, gz bool) (io.ReadCloser, error) {
	st := &r.claim.state
	obj := r.claim.obj
	in := &s3.GetObjectInput{Bucket: aws.String(obj.Bucket), Key: aws.String(obj.Key), VersionId: obj.versionID(), IfMatch: obj.firstReadIfMatch()}
	if obj.Version == order.NullVersion && st.ETag != "" {
		in.IfMatch = aws.String(st.ETag) // the bytes verified
	}
	if st.Offset > 0 && !gz {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", st.Offset))
	}
	var out *s3.GetObjectOutput
	var err error
	if st.Offset == 0 && r.prefetch.pending() {
		out, err = r.prefetch.take() // not taken by a verifying pass: the same request
	} else {
		r.prefetch.discard()
		out, err = r.svc.objects.GetObject(ctx, in)
	}
	if err := getError(err); err != nil {
		return nil, err
	}
	if st.Offset == 0 {
		st.Size = aws.ToInt64(out.ContentLength)
		st.ETag = aws.ToString(out.ETag)
	}
	return out.Body, nil
}

// sendOrders sends the orders of rd until the end, a checkpoint time or an error, saving a
// checkpoint every CheckpointEvery on the way.
func (r *fileRun) sendOrders(ctx context.Context, rd *order.Reader) (Outcome, error) {
	opts := r.svc.retry
	opts.Concurrency, opts.Clock, opts.Refused = r.svc.cfg.SendConcurrency, r.svc.clock, r.rejectRefused
	r.send = NewSender(ctx, r.svc.queue, r.svc.cfg.OrdersQueueURL, opts)
	defer r.send.Close()
	obj, base := r.claim.obj, r.claim.state.Offset
	src := obj.uri()
	e := &Entry{Source: src, Version: obj.Version} // Add copies it: one for every order
	stopAt, stop := r.svc.stopAt(ctx), stopOf(ctx)
	saveAt := r.svc.now().Add(r.svc.cfg.CheckpointEvery)
	look := clockLook{lines: clockLines} // the first line looks: a pass begun past the checkpoint time stops at once
	var le *order.LineError
	for {
		o, err := rd.Next()
		switch {
		case err == io.EOF:
			return r.finish(ctx, "", "")
		case err == order.ErrYield:
			// Only blank lines or the rest of a line too long so far: nothing to count, but the
			// clock is looked at.
			r.line = rd.Line()
		case errors.As(err, &le):
			r.line = le.Line
			if err := r.rejects.add(le.Line, le.Reason, le.Raw); err != nil {
				return 0, err
			}
		case err != nil && isFileFault(err):
			return r.finish(ctx, "", fmt.Sprintf("after line %d: %v", r.line, err))
		case err != nil:
			// An I/O error: keep what is done so that the retry resumes here.
			return 0, errors.Join(err, r.checkpoint(ctx, positionOf(base, rd), "", time.Time{}))
		default:
			r.line = o.Line
			if !r.ids.add(hashID(o.ID)) {
				if len(r.saved.DuplicateIDs)+len(r.newDups) < MaxListedDuplicates {
					r.newDups = append(r.newDups, strings.Clone(o.ID)) // kept for the file: not its id block
				} else {
					r.dupsTruncated = true
				}
				if err := r.rejects.add(o.Line, ReasonDuplicateID, o.Body); err != nil {
					return 0, err
				}
				break
			}
			e.ID, e.Body, e.Line = o.ID, o.Body, o.Line
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
			r.added++
		}
		if err != order.ErrYield {
			r.lines++
		}
		if r.budget > 0 && r.added >= r.budget {
			return r.wait(ctx, positionOf(base, rd), fmt.Sprintf("%d orders of this file enqueued, the orders queue is full", r.added))
		}
		if !look.due(err == order.ErrYield, r.send.Handed(), rd.Offset(), r.svc.chunks.yield) && !stopped(stop) {
			continue
		}
		now := r.svc.now()
		switch {
		case checkpointDue(ctx, stopAt, now):
			return r.handoff(ctx, positionOf(base, rd))
		case now.After(saveAt):
			if err := r.checkpoint(ctx, positionOf(base, rd), r.claim.state.Owner, r.claim.state.LeaseUntil); err != nil {
				return 0, err
			}
			saveAt = now.Add(r.svc.cfg.CheckpointEvery)
		}
	}
}

// clockLines is the most lines the sending pass reads between two looks at the clock.
const clockLines = 256

// clockLook tells the sending pass when to look at the clock (the checkpoint time, the periodic
// checkpoint), which after every line would cost about a tenth of the pass's CPU: after every
// batch handed to the sender (handing one over may wait for the queue), after a yield
// (yieldBytes read without an order), and otherwise every clockLines lines or yieldBytes bytes,
// whichever comes first; and after the first line. WithStop's channel is looked at after every
// line.
type clockLook struct {
	lines, handed, offset int64 // since, and as of, the last look
}

// due counts a line (or a yield) and reports whether the clock is to be looked at now, given
// the batches handed so far, the reader's offset and yieldBytes (chunk).
func (l *clockLook) due(yield bool, handed, offset, chunk int64) bool {
	l.lines++
	if !yield && handed == l.handed && l.lines < clockLines && offset-l.offset < chunk {
		return false
	}
	l.lines, l.handed, l.offset = 0, handed, offset
	return true
}

// rejectRefused records an order the queue refused for a reason of its own as a rejected line.
func (r *fileRun) rejectRefused(f Refusal) {
	reason := "refused by the queue: " + f.Code
	if err := r.rejects.add(f.Entry.Line, reason, f.Entry.Body); err != nil {
		r.svc.log.Error("record refused order", "orderID", f.Entry.ID, "error", err)
	}
}

// loadIDs reads the id set saved at the checkpoint.
func (r *fileRun) loadIDs(ctx context.Context) error {
	if r.claim.state.TrackedIDs == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := getFile(ctx, r.svc.objects, r.claim.obj.Bucket, r.claim.obj.idsKey(r.claim.state.IDsSlot), &buf); err != nil {
		return fmt.Errorf("load id set: %w", err)
	}
	if err := r.ids.UnmarshalBinary(buf.Bytes()); err != nil {
		return fmt.Errorf("load id set: %w", err)
	}
	r.ids.partial = r.claim.state.DuplicateCheckPartial
	return nil
}

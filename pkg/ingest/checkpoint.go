package ingest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/orderpipe/orderpipe/internal/detach"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// position is where the sending pass stands in a file: a checkpoint.
type position struct {
	offset int64    // bytes of the decompressed object done
	header []string // CSV header, nil before it is read
	inLine bool     // offset is inside a line too long, rejected already: its rest is skipped
}

// positionOf is the position of rd, which started at base.
func positionOf(base int64, rd *order.Reader) position {
	return position{offset: base + rd.Offset(), header: rd.Header(), inLine: rd.InLine()}
}

// savedPosition is the position of the last checkpoint.
func (st *State) savedPosition() position {
	return position{offset: st.Offset, header: st.Header, inLine: st.InLine}
}

// checkpoint flushes the sender and saves the checkpoint at pos with the given owner and
// lease (the claim's own for a periodic save; the zero lease releases the claim): the rejects
// since the last save as a new part, the id set if it grew, then the state.
func (r *fileRun) checkpoint(ctx context.Context, pos position, owner string, lease time.Time) error {
	st, err := r.flushProgress(ctx)
	if err != nil {
		return err
	}
	obj := r.claim.obj
	if n := r.rejects.count(); n > 0 {
		f, size, err := r.rejects.reader()
		if err == nil {
			err = putFile(ctx, r.svc.objects, obj.Bucket, obj.rejectPartKey(st.RejectParts), f, size, "application/x-ndjson")
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
		if err := putFile(ctx, r.svc.objects, obj.Bucket, obj.idsKey(slot), bytes.NewReader(b), int64(len(b)), "application/octet-stream"); err != nil {
			return fmt.Errorf("save id set: %w", err)
		}
		st.TrackedIDs, st.IDsSlot = r.ids.n, slot
	}
	st.Offset, st.Line, st.Header, st.InLine = pos.offset, r.line, pos.header, pos.inLine
	st.Owner, st.LeaseUntil = owner, lease
	return r.writeState(ctx, st)
}

// flushProgress flushes the sender and returns the saved state with the progress since the
// last save added to its counts.
func (r *fileRun) flushProgress(ctx context.Context) (State, error) {
	st := r.saved
	st.Size, st.ETag = r.claim.state.Size, r.claim.state.ETag
	if r.send != nil {
		if err := r.send.Flush(); err != nil {
			return st, err
		}
		st.Enqueued += r.send.Sent() - r.sent
	}
	st.Lines += r.lines
	st.Rejected += r.rejects.count()
	st.DuplicateIDs = append(slices.Clip(st.DuplicateIDs), r.newDups...)
	st.DuplicateIDsTruncated = st.DuplicateIDsTruncated || r.dupsTruncated
	st.DuplicateCheckPartial = st.DuplicateCheckPartial || r.ids.partial
	return st, nil
}

// writeState writes st over the claim's state (compare-and-swap) and starts counting the
// progress afresh.
func (r *fileRun) writeState(ctx context.Context, st State) error {
	prev := r.claim.state
	r.claim.state = st
	if err := r.claim.save(ctx, r.svc.objects); err != nil {
		r.claim.state = prev
		return err
	}
	r.saved = st
	r.lines, r.newDups = 0, nil
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
// unknown outcome back (claim.write) and then to send the continuation or release the claim.
func (r *fileRun) handoff(ctx context.Context, pos position) (Outcome, error) {
	return r.handoffAfter(ctx, pos, 0)
}

// handoffAfter is handoff with the continuation delayed by delay (at most 15 minutes).
func (r *fileRun) handoffAfter(ctx context.Context, pos position, delay time.Duration) (Outcome, error) {
	token := newToken()
	r.saved.Continuations++
	wctx, cancel := detach.Context(ctx, r.svc.handoffReserve(), 0)
	defer cancel()
	if err := r.checkpoint(wctx, pos, token, r.svc.now().Add(DefaultLease)); err != nil {
		r.saved.Continuations--
		return 0, err
	}
	// The claim is the new token's now: the continuation must go out even if ctx is done.
	ctx, cancelSend := detach.Context(ctx, BookkeepingReserve, 0)
	defer cancelSend()
	obj := r.claim.obj
	etag := r.claim.state.ETag
	if obj.Version == order.NullVersion {
		// The continuation must name this state (@null-{the event's eTag}, or @null without one),
		// not the GET's ETag: the reads are pinned by the state's own ETag.
		etag = obj.ETag
	}
	rec := s3event.Record{Bucket: obj.Bucket, Key: obj.Key, VersionID: obj.versionIDString(), ETag: etag}
	if err := r.svc.sendContinuation(ctx, rec, token, delay); err != nil {
		return 0, err
	}
	return Continued, nil
}

// releaseClaim gives up the claim (lease in the past) so that a retry resumes at once from the
// last checkpoint. It is best effort: the lease runs out anyway.
func (r *fileRun) releaseClaim(ctx context.Context) {
	ctx, cancel := detach.Context(ctx, BookkeepingReserve, 0)
	defer cancel()
	st := r.saved
	st.LeaseUntil = time.Time{}
	r.claim.state = st
	if err := r.claim.save(ctx, r.svc.objects); err != nil {
		r.svc.log.WarnContext(ctx, "release claim", "bucket", r.claim.obj.Bucket, "key", r.claim.obj.Key, "error", err)
	}
}

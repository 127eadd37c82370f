package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MaxListedDuplicates is the most duplicate ids listed in a report; the rest are counted in
// rejected and flagged with duplicateIdsTruncated.
const MaxListedDuplicates = 1000

// Log messages of a file ingest did not read to the end, at warn level once its report is
// written: refused whole (it failed verification, or its name or size) or stopped after
// verification. The stack counts them with log metric filters and alarms.
const (
	LogFileRefused = "file refused"
	LogFileStopped = "file stopped"
)

// Report is the content of `reports/{key}.json`.
type Report struct {
	Bucket                string   `json:"bucket"`
	Key                   string   `json:"key"`
	Version               string   `json:"version"`
	Lines                 int64    `json:"lines"` // lines of the file, blank ones aside: enqueued + rejected + unread
	Enqueued              int64    `json:"enqueued"`
	Rejected              int64    `json:"rejected"`
	Unread                int64    `json:"unread"` // lines never read as orders: the file was refused or stopped
	DuplicateIDs          []string `json:"duplicateIds"`
	DuplicateIDsTruncated bool     `json:"duplicateIdsTruncated,omitempty"`
	DuplicateCheck        string   `json:"duplicateCheck"` // "complete", or "partial" past MaxTrackedIDs
	Continuations         int      `json:"continuations"`
	Refused               string   `json:"refused,omitempty"` // why no line was read
	Stopped               string   `json:"stopped,omitempty"` // why reading stopped before the end
	// Waiting, in a report written before the end, says why the file waits in S3 (the orders
	// queue is full) and WaitingSince since when; a finished report has neither.
	Waiting      string    `json:"waiting,omitempty"`
	WaitingSince time.Time `json:"waitingSince,omitzero"`
	StartedAt    time.Time `json:"startedAt"`
	FinishedAt   time.Time `json:"finishedAt"`
}

// finish writes the rejects object, the report and the done state, in that order, then
// deletes the checkpoint's sidecars. refused or stopped say why the file was not read (to the
// end).
func (r *fileRun) finish(ctx context.Context, refused, stopped string) (Outcome, error) {
	st, err := r.flushProgress(ctx)
	if err != nil {
		return 0, err
	}
	obj := r.claim.obj
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
	if stopped != "" && st.FileLines > st.Lines {
		st.Unread = st.FileLines - st.Lines // counted by the verifying pass, never read as orders
	}
	now := r.svc.now()
	rep := Report{
		Bucket: obj.Bucket, Key: obj.Key, Version: obj.Version,
		Lines: st.Lines + st.Unread, Enqueued: st.Enqueued, Rejected: st.Rejected, Unread: st.Unread,
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
	if err := r.putReports(ctx, b); err != nil {
		return 0, err
	}
	st.Status, st.Refused, st.FinishedAt, st.LeaseUntil = StatusDone, refused+stopped, now, time.Time{}
	if err := r.writeState(ctx, st); err != nil {
		return 0, err
	}
	r.deleteSidecars(ctx, st)
	r.announce(ctx, rep)
	return Done, nil
}

// announce makes a file that was refused or stopped loud: a WARN log and its metrics.
func (r *fileRun) announce(ctx context.Context, rep Report) {
	if rep.Refused == "" && rep.Stopped == "" {
		return
	}
	msg, m := LogFileRefused, fileMetrics{refused: 1, unread: rep.Unread}
	if rep.Refused == "" {
		msg, m = LogFileStopped, fileMetrics{stopped: 1, unread: rep.Unread}
	}
	r.svc.log.WarnContext(ctx, msg, "bucket", rep.Bucket, "key", rep.Key, "version", rep.Version,
		"reason", rep.Refused+rep.Stopped, "lines", rep.Lines, "enqueued", rep.Enqueued, "unread", rep.Unread,
		"report", r.claim.obj.reportKey())
	r.svc.emit(ctx, m)
}

// putReports writes the report b as the version's own and then as the key's: the version's first,
// so the key's report is never the only copy.
func (r *fileRun) putReports(ctx context.Context, b []byte) error {
	obj := r.claim.obj
	for _, key := range []string{obj.versionReportKey(), obj.reportKey()} {
		if err := putFile(ctx, r.svc.objects, obj.Bucket, key, bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
			return fmt.Errorf("write report %s: %w", key, err)
		}
	}
	return nil
}

// writeWaitingReport writes the report of a file that waits for room in the orders queue: the
// counts so far, why it waits and since when. The finished report replaces it.
func (r *fileRun) writeWaitingReport(ctx context.Context, why string) error {
	st, err := r.flushProgress(ctx)
	if err != nil {
		return err
	}
	obj := r.claim.obj
	rep := Report{
		Bucket: obj.Bucket, Key: obj.Key, Version: obj.Version,
		Lines: st.Lines, Enqueued: st.Enqueued, Rejected: st.Rejected, DuplicateIDs: st.DuplicateIDs,
		DuplicateCheck: "complete", Continuations: st.Continuations, StartedAt: st.StartedAt,
		Waiting: why, WaitingSince: st.WaitingSince,
	}
	if rep.DuplicateIDs == nil {
		rep.DuplicateIDs = []string{}
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode waiting report: %w", err)
	}
	return r.putReports(ctx, b)
}

// adoptReport finishes a run whose earlier owner wrote the report but not the done state (it
// crashed, or the state write failed), and reports whether it did. finish writes the report
// only once every order was accepted by the queue and the rejects object is written, so the
// report of this run (same version, same StartedAt as the state) means that nothing is left to
// send: the done state is written from the report and the checkpoint's sidecars deleted.
// A missing report, or one of another run (an older version, another content of the same
// key), says nothing: the run resumes from the checkpoint.
func (r *fileRun) adoptReport(ctx context.Context) (bool, error) {
	obj := r.claim.obj
	var buf bytes.Buffer
	err := getFile(ctx, r.svc.objects, obj.Bucket, obj.reportKey(), &buf)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for the report of an abandoned run: %w", err)
	}
	var rep Report
	st := r.claim.state
	if json.Unmarshal(buf.Bytes(), &rep) != nil || rep.Version != obj.Version || st.StartedAt.IsZero() || !rep.StartedAt.Equal(st.StartedAt) ||
		rep.Waiting != "" {
		return false, nil
	}
	st.Status, st.LeaseUntil, st.FinishedAt = StatusDone, time.Time{}, rep.FinishedAt
	st.Lines, st.Enqueued, st.Rejected, st.Unread, st.Continuations = rep.Lines-rep.Unread, rep.Enqueued, rep.Rejected, rep.Unread, rep.Continuations
	st.DuplicateIDs, st.DuplicateIDsTruncated = rep.DuplicateIDs, rep.DuplicateIDsTruncated
	st.DuplicateCheckPartial = rep.DuplicateCheck == "partial"
	st.Refused = rep.Refused + rep.Stopped
	if err := r.writeState(ctx, st); err != nil {
		return false, err
	}
	r.deleteSidecars(ctx, st)
	return true, nil
}

// deleteRejects deletes `rejects/{key}.jsonl` (left by an earlier version of the key, if any;
// S3 answers a delete of a missing key with success).
func (r *fileRun) deleteRejects(ctx context.Context) error {
	obj := r.claim.obj
	if _, err := r.svc.objects.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(obj.Bucket), Key: aws.String(obj.rejectsKey())}); err != nil {
		return fmt.Errorf("delete rejects of an earlier version %s: %w", obj.rejectsKey(), err)
	}
	return nil
}

// writeRejects writes `rejects/{key}.jsonl`: the parts saved at earlier checkpoints, then this
// invocation's rejects.
func (r *fileRun) writeRejects(ctx context.Context, parts int) error {
	obj := r.claim.obj
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
			if err := getFile(ctx, r.svc.objects, obj.Bucket, obj.rejectPartKey(i), all); err != nil {
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
	if err := putFile(ctx, r.svc.objects, obj.Bucket, obj.rejectsKey(), f, size, "application/x-ndjson"); err != nil {
		return fmt.Errorf("write rejects: %w", err)
	}
	return nil
}

// deleteSidecars deletes the checkpoint's sidecar objects (id sets, rejects parts); best
// effort.
func (r *fileRun) deleteSidecars(ctx context.Context, st State) {
	obj := r.claim.obj
	keys := []string{}
	if st.TrackedIDs > 0 {
		keys = append(keys, obj.idsKey(0), obj.idsKey(1))
	}
	for i := range st.RejectParts {
		keys = append(keys, obj.rejectPartKey(i))
	}
	for _, k := range keys {
		if _, err := r.svc.objects.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(obj.Bucket), Key: aws.String(k)}); err != nil {
			r.svc.log.WarnContext(ctx, "delete checkpoint object", "bucket", obj.Bucket, "key", k, "error", err)
		}
	}
}

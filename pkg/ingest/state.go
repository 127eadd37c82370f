package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/orderpipe/orderpipe/internal/detach"
)

// Status values of a state object.
const (
	StatusRunning = "running"
	StatusDone    = "done"
)

// StateSchemaVersion is the schema version of the state objects this package writes. A state
// object without one (written before the field existed, same layout) is read as version 1; a
// newer one is refused with ErrStateSchema, never overwritten. Version 2 adds the verifying
// pass (VerifiedETag, FileLines, Verify*), Unread and WaitingSince: an ingest that knows only
// version 1 would send a file's orders without verifying it, so it must not read them. A
// version 1 state reads as a file not yet verified. Version 3 adds InLine and VerifyInLine (a
// checkpoint inside a line too long): an ingest that knows only version 2 would read the rest
// of that line as a line of its own, so it must not read them either. A version 2 state has
// neither set.
const StateSchemaVersion = 3

// ErrStateSchema is wrapped by the error for a state object of a schema version newer than
// StateSchemaVersion (written by a newer ingest): the message fails, the state is left as it is.
var ErrStateSchema = errors.New("state object of an unknown schema version")

// State is the content of the state object `state/{key}@{version}.json`: the claim on one
// object version and its checkpoint.
type State struct {
	// SchemaVersion is the layout of this object: StateSchemaVersion when written; 0 (absent)
	// reads as 1.
	SchemaVersion int `json:"schemaVersion"`

	Status     string    `json:"status"`     // StatusRunning or StatusDone
	Owner      string    `json:"owner"`      // token of the invocation that holds the claim
	LeaseUntil time.Time `json:"leaseUntil"` // the claim is abandoned after this instant
	// Holder is the files-queue message id the claim is held under. The same message received
	// again means its invocation died (its heartbeat stopped): it takes the claim over at once.
	Holder string `json:"holder,omitempty"`

	Bucket  string `json:"bucket"`
	Key     string `json:"key"`
	Version string `json:"version"`        // version id or order.NullVersion
	ETag    string `json:"eTag,omitempty"` // of the object, from the first GET
	Size    int64  `json:"size"`           // of the object, from the first GET

	// Checkpoint: everything before Offset (bytes of the decompressed object) is done.
	Offset int64    `json:"offset"`
	Line   int64    `json:"line"`             // line number of the last line before Offset
	Header []string `json:"header,omitempty"` // CSV header
	// InLine: Offset is inside line Line, a line too long already rejected, whose rest is
	// skipped first (a checkpoint taken while skipping a huge line).
	InLine bool `json:"inLine,omitempty"`

	Lines                 int64    `json:"lines"`
	Enqueued              int64    `json:"enqueued"`
	Rejected              int64    `json:"rejected"`
	DuplicateIDs          []string `json:"duplicateIds,omitempty"`
	DuplicateIDsTruncated bool     `json:"duplicateIdsTruncated,omitempty"`
	DuplicateCheckPartial bool     `json:"duplicateCheckPartial,omitempty"`
	TrackedIDs            int      `json:"trackedIds,omitempty"`  // hashes in the id set sidecar
	IDsSlot               int      `json:"idsSlot,omitempty"`     // which id set sidecar: 0 .ids, 1 .ids-1
	RejectParts           int      `json:"rejectParts,omitempty"` // .rejects-N.jsonl sidecars
	Continuations         int      `json:"continuations"`

	// The verifying pass: VerifiedETag is the ETag of the object read whole and found usable
	// (orders are sent only then), FileLines the lines it counted (blank lines and a CSV header
	// aside). While it runs across invocations, the Verify* fields are its progress.
	VerifiedETag    string   `json:"verifiedETag,omitempty"`
	FileLines       int64    `json:"fileLines,omitempty"`
	VerifyOffset    int64    `json:"verifyOffset,omitempty"`    // decompressed bytes counted
	VerifyLines     int64    `json:"verifyLines,omitempty"`     // lines counted before VerifyOffset
	VerifyHeader    []string `json:"verifyHeader,omitempty"`    // CSV header read by the count
	VerifyBadHeader string   `json:"verifyBadHeader,omitempty"` // why the CSV header is unusable
	VerifyInLine    bool     `json:"verifyInLine,omitempty"`    // VerifyOffset is inside a line too long, counted already

	Unread       int64     `json:"unread,omitempty"`      // lines not read: the file was refused or stopped
	WaitingSince time.Time `json:"waitingSince,omitzero"` // the orders queue had no room for the file since then

	Refused    string    `json:"refused,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// Errors of the claim.
var (
	// ErrBusy: another live invocation holds the claim on the object version. The message is
	// retried after the files queue's visibility timeout, by when the claim is done or its
	// lease has run out.
	ErrBusy = errors.New("object version is being ingested by another invocation")
	// errDone: the object version was ingested already.
	errDone = errors.New("object version already ingested")
)

// claim is a held claim: the state as last written and the ETag to write it again.
type claim struct {
	obj   object
	state State
	etag  string
	// abandoned: the claim was taken over from an owner whose lease ran out or was released,
	// which may have got as far as the report (see fileRun.adoptReport).
	abandoned bool
}

// holderKey is the context key of the holder an invocation works as.
type holderKey struct{}

// holder is the files-queue message an invocation works under, and how long its claim must have
// gone unwritten before that message, received again, takes it over.
type holder struct {
	id    string
	quiet time.Duration
}

// withHolder returns ctx carrying h.
func withHolder(ctx context.Context, h holder) context.Context {
	return context.WithValue(ctx, holderKey{}, h)
}

// holderOf is the holder withHolder put in ctx, or the zero holder.
func holderOf(ctx context.Context) holder {
	h, _ := ctx.Value(holderKey{}).(holder)
	return h
}

// newToken returns a random owner token.
func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// acquire claims obj for an invocation whose lease ends at lease. A fresh object version is
// claimed with a conditional create (If-None-Match: *). An existing claim is taken over, with
// a compare-and-swap on its ETag (If-Match), only when it was handed to token by a
// checkpoint or its lease has run out; a done one gives errDone and a live one ErrBusy.
func acquire(ctx context.Context, store objectStore, obj object, etag, token string, now, lease time.Time) (*claim, error) {
	c := &claim{obj: obj, state: State{
		Status: StatusRunning, Owner: newToken(), LeaseUntil: lease, Holder: holderOf(ctx).id,
		Bucket: obj.Bucket, Key: obj.Key, Version: obj.Version, ETag: etag, StartedAt: now,
	}}
	err := c.write(ctx, store, &s3.PutObjectInput{IfNoneMatch: aws.String("*")})
	if !isPreconditionFailed(err) {
		return c, err
	}
	cur, curETag, saved, err := getState(ctx, store, obj)
	if err != nil {
		return nil, err
	}
	switch {
	case cur.Status == StatusDone:
		return nil, errDone
	case token != "" && cur.Owner == token: // handed to us by a checkpoint
	case now.After(cur.LeaseUntil): // abandoned: its owner crashed or gave up
		c.abandoned = true
	case cur.Holder != "" && cur.Holder == holderOf(ctx).id && now.Sub(saved) >= holderOf(ctx).quiet:
		// The holder's own message is back and the claim has not been written for longer than a
		// live owner ever waits between checkpoints: its invocation died. (The same message
		// delivered twice at once finds a fresh claim, and is busy.)
		c.abandoned = true
	default:
		return nil, fmt.Errorf("claim %s: %w (lease until %s)", obj.stateKey(), ErrBusy, cur.LeaseUntil.Format(time.RFC3339))
	}
	c.state, c.etag = cur, curETag
	c.state.Owner, c.state.LeaseUntil, c.state.Holder = newToken(), lease, holderOf(ctx).id
	c.state.Bucket, c.state.Key, c.state.Version = obj.Bucket, obj.Key, obj.Version
	if err := c.save(ctx, store); err != nil {
		if isPreconditionFailed(err) {
			return nil, fmt.Errorf("claim %s: %w (taken over meanwhile)", obj.stateKey(), ErrBusy)
		}
		return nil, err
	}
	return c, nil
}

// save writes the claim's state if nobody wrote it since this claim did (If-Match).
func (c *claim) save(ctx context.Context, store objectStore) error {
	return c.write(ctx, store, &s3.PutObjectInput{IfMatch: aws.String(c.etag)})
}

// write puts the claim's state with the conditions of in (If-None-Match or If-Match) and keeps
// the new ETag. A write whose outcome is unknown is read back (landed).
func (c *claim) write(ctx context.Context, store objectStore, in *s3.PutObjectInput) error {
	c.state.SchemaVersion = StateSchemaVersion
	b, err := json.Marshal(c.state)
	if err != nil {
		return fmt.Errorf("encode state %s: %w", c.obj.stateKey(), err)
	}
	in.Bucket, in.Key = aws.String(c.obj.Bucket), aws.String(c.obj.stateKey())
	in.Body, in.ContentType = bytes.NewReader(b), aws.String("application/json")
	out, err := store.PutObject(ctx, in)
	if err != nil && !isPreconditionFailed(err) {
		// The outcome is unknown: the write may have landed with its reply lost or cut short by
		// the deadline. Read the state back: if it holds these bytes, the write is ours (and the
		// ETag to write it again is the one read); if not, c.etag is still the current one.
		if etag, ok := c.landed(ctx, store, b); ok {
			c.etag = etag
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("write state %s: %w", c.obj.stateKey(), err)
	}
	c.etag = aws.ToString(out.ETag)
	return nil
}

// landed reports whether the state object holds exactly body, and its ETag: the check after a
// state write whose outcome is unknown. It reads with a context detached from ctx's cancel and
// ending BookkeepingReserve before ctx's deadline. A failed read says no.
func (c *claim) landed(ctx context.Context, store objectStore, body []byte) (string, bool) {
	ctx, cancel := detach.Context(ctx, BookkeepingReserve, 0)
	defer cancel()
	got, etag, _, err := getStateBytes(ctx, store, c.obj)
	return etag, err == nil && bytes.Equal(got, body)
}

// BookkeepingReserve is how long before the invocation's deadline the bookkeeping that follows
// a failed or cut-short call (reading a state back, releasing the claim, sending the
// continuation) must end, so that the invocation returns before it is killed.
const BookkeepingReserve = 100 * time.Millisecond

// getState reads the state object of obj and its ETag. A state without a schema version is
// read as version 1; one newer than StateSchemaVersion gives an error wrapping ErrStateSchema.
// It also returns when the state was last written.
func getState(ctx context.Context, store objectStore, obj object) (State, string, time.Time, error) {
	b, etag, saved, err := getStateBytes(ctx, store, obj)
	if err != nil {
		return State{}, "", time.Time{}, err
	}
	s, err := decodeState(b)
	if err != nil {
		return State{}, "", time.Time{}, fmt.Errorf("decode state %s: %w", obj.stateKey(), err)
	}
	return s, etag, saved, nil
}

// decodeState decodes a state object of any schema version up to StateSchemaVersion.
func decodeState(b []byte) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, err
	}
	switch {
	case s.SchemaVersion == 0:
		s.SchemaVersion = 1
	case s.SchemaVersion < 0 || s.SchemaVersion > StateSchemaVersion:
		return State{}, fmt.Errorf("%w: %d, this ingest knows up to %d", ErrStateSchema, s.SchemaVersion, StateSchemaVersion)
	}
	return s, nil
}

// getStateBytes reads the state object of obj as stored, its ETag and when it was written.
func getStateBytes(ctx context.Context, store objectStore, obj object) ([]byte, string, time.Time, error) {
	out, err := store.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(obj.Bucket), Key: aws.String(obj.stateKey())})
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("read state %s: %w", obj.stateKey(), err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("read state %s: %w", obj.stateKey(), err)
	}
	return b, aws.ToString(out.ETag), aws.ToTime(out.LastModified), nil
}

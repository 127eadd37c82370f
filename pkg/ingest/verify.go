package ingest

import (
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/orderpipe/orderpipe/pkg/order"
)

// How often the passes look at the clock, in (decompressed) bytes read, whatever they hold
// (Service.chunks; tests make them smaller).
const (
	// verifyChunk is how many bytes the verifying pass counts between two looks.
	verifyChunk = 8 << 20
	// yieldBytes bounds the bytes the sending pass reads without an order to return (blank
	// lines, the rest of a line too long) between two looks (order.Options.YieldBytes).
	yieldBytes = 4 << 20
)

// verified reports whether the object version was read whole and found usable by an earlier
// verifying pass.
func (st *State) verified() bool { return st.VerifiedETag != "" && st.VerifiedETag == st.ETag }

// verify is the verifying pass: it reads the whole object (S3's checksum validated where the
// object has one), decompresses a gzip file to its end (every member's CRC-32 and length
// checked) or to MAX_DECOMPRESSED_BYTES, checks a CSV header and counts the lines. Nothing is sent before it ends. On
// success it records the ETag verified and the count in the state and returns ok. A file that
// fails it is refused at once (finish, every counted line unread); at the checkpoint time the
// pass hands off with its progress. An I/O error (a body cut short, a checksum mismatch on the
// way) is returned: the retry verifies again.
func (r *fileRun) verify(ctx context.Context, gz bool) (out Outcome, ok bool, err error) {
	out, ok, err = r.verifyOnce(ctx)
	if errors.Is(err, errChecksum) {
		// S3 validated the object's checksum when it was stored: a mismatch is most likely
		// damage on the way, and one more read tells.
		r.svc.log.WarnContext(ctx, "verify again", "bucket", r.claim.obj.Bucket, "key", r.claim.obj.Key, "error", err)
		r.retriedChecksum = true
		out, ok, err = r.verifyOnce(ctx)
	}
	return out, ok, err
}

// errChecksum marks a body whose checksum did not match the one S3 holds for the object.
var errChecksum = errors.New("object checksum mismatch")

// verifyOnce is one try of verify.
func (r *fileRun) verifyOnce(ctx context.Context) (out Outcome, ok bool, err error) {
	st := &r.claim.state
	body, err := r.openWhole(ctx)
	if err != nil {
		return 0, false, err
	}
	defer body.Close()
	if limit := r.svc.cfg.MaxFileBytes; st.Size > limit {
		out, err := r.refuse(ctx, fmt.Sprintf("object is %d bytes, above MAX_FILE_BYTES %d", st.Size, limit), 0)
		return out, false, err
	}
	cb := &countingBody{r: body}
	opts := order.Options{IDField: r.svc.cfg.IDField, MaxLineBytes: r.svc.cfg.MaxLineBytes, Header: st.VerifyHeader, InLine: st.VerifyInLine}
	if st.VerifyBadHeader != "" {
		opts.Header = []string{} // unusable: count the lines all the same
	}
	rd, err := order.Open(cb, r.claim.obj.Key, opts)
	if err != nil {
		out, err := r.refuse(ctx, err.Error(), 0) // not a gzip stream: retrying cannot help
		return out, false, err
	}
	if err := rd.Skip(st.VerifyOffset); err != nil {
		out, err := r.verifyFault(ctx, cb, fmt.Errorf("skip to the verified offset: %w", err), st.VerifyLines)
		return out, false, err
	}
	lines := st.VerifyLines
	stopAt := r.svc.stopAt(ctx)
	maxContent := r.svc.cfg.MaxDecompressedBytes
	for {
		// Count no further than one byte past MAX_DECOMPRESSED_BYTES: a gzip bomb is refused
		// after that much decompression, not after all of it (a budget of 0 is no budget).
		n, err := rd.Count(max(1, min(r.svc.chunks.verify, maxContent-st.VerifyOffset-rd.Offset()+1)))
		lines += n
		switch {
		case (err == nil || err == io.EOF) && st.VerifyOffset+rd.Offset() > maxContent:
			out, err := r.refuse(ctx, fmt.Sprintf("decompressed beyond MAX_DECOMPRESSED_BYTES %d", maxContent), lines)
			return out, false, err
		case err == io.EOF:
			r.saved.VerifiedETag, r.saved.FileLines = st.ETag, lines
			r.saved.VerifyOffset, r.saved.VerifyLines, r.saved.VerifyHeader, r.saved.VerifyBadHeader, r.saved.VerifyInLine = 0, 0, nil, "", false
			st.VerifiedETag, st.FileLines = st.ETag, lines
			return 0, true, nil
		case errors.Is(err, order.ErrBadHeader):
			reason := err.Error()
			if st.VerifyBadHeader != "" {
				reason = st.VerifyBadHeader // found by an earlier invocation
			}
			out, err := r.refuse(ctx, reason, lines)
			return out, false, err
		case err != nil:
			out, err := r.verifyFault(ctx, cb, err, lines)
			return out, false, err
		}
		if checkpointDue(ctx, stopAt, r.svc.now()) {
			r.saved.VerifyOffset, r.saved.VerifyLines = st.VerifyOffset+rd.Offset(), lines
			r.saved.VerifyHeader, r.saved.VerifyInLine = rd.Header(), rd.InLine()
			if err := rd.BadHeader(); err != nil && st.VerifyBadHeader == "" {
				r.saved.VerifyBadHeader = err.Error() // resumed, the count knows only that it is unusable
			}
			// The sending pass has not started, or (a state of schema 1) stands where it stood.
			out, err := r.handoff(ctx, st.savedPosition())
			return out, false, err
		}
	}
}

// verifyFault refuses the file for a reading error that is its own fault (a corrupt or
// truncated gzip stream), or returns err (an I/O error: the message is retried).
func (r *fileRun) verifyFault(ctx context.Context, cb *countingBody, err error, lines int64) (Outcome, error) {
	var reason string
	switch {
	case isFileFault(err):
		reason = fmt.Sprintf("corrupt gzip stream after %d lines: %v", lines, err)
	case errors.Is(err, io.ErrUnexpectedEOF) && cb.eof:
		// The whole object was read: the gzip stream itself ends early.
		reason = fmt.Sprintf("gzip stream truncated after %d lines (object of %d bytes read whole)", lines, cb.n)
	case strings.Contains(err.Error(), "checksum did not match") && r.retriedChecksum:
		reason = fmt.Sprintf("object does not match its S3 checksum (read twice): %v", err)
	case strings.Contains(err.Error(), "checksum did not match"): // the SDK's error has no type
		return 0, fmt.Errorf("verify %s: %w: %w", r.claim.obj.uri(), errChecksum, err)
	default:
		return 0, fmt.Errorf("verify %s: %w", r.claim.obj.uri(), err)
	}
	return r.refuse(ctx, reason, lines)
}

// refuse ends the file without sending anything: its report says why and counts lines as
// unread.
func (r *fileRun) refuse(ctx context.Context, reason string, lines int64) (Outcome, error) {
	r.saved.Unread = lines
	return r.finish(ctx, reason, "")
}

// openWhole starts the GET of the whole object for the verifying pass, with S3's checksum
// validation, pinned like open's first read.
func (r *fileRun) openWhole(ctx context.Context) (io.ReadCloser, error) {
	st := &r.claim.state
	obj := r.claim.obj
	in := &s3.GetObjectInput{Bucket: aws.String(obj.Bucket), Key: aws.String(obj.Key), VersionId: obj.versionID(),
		IfMatch: obj.firstReadIfMatch(), ChecksumMode: s3types.ChecksumModeEnabled}
	if obj.Version == order.NullVersion && st.ETag != "" {
		in.IfMatch = aws.String(st.ETag)
	}
	var out *s3.GetObjectOutput
	var err error
	if r.prefetch.pending() {
		out, err = r.prefetch.take() // the same request, started with the claim
	} else {
		out, err = r.svc.objects.GetObject(ctx, in, quietChecksum)
	}
	if err := getError(err); err != nil {
		return nil, err
	}
	st.Size, st.ETag = aws.ToInt64(out.ContentLength), aws.ToString(out.ETag)
	return out.Body, nil
}

// quietChecksum turns off the SDK's log line for a response without a checksum to validate (an
// object uploaded without one, or in parts): the verifying pass asks for validation on every
// object.
func quietChecksum(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true }

// getError classifies the error of the GET of the object.
func getError(err error) error {
	switch {
	case err == nil:
		return nil
	case isNotFound(err):
		return fmt.Errorf("get object: %w: %w", ErrObjectMissing, err)
	case isPreconditionFailed(err):
		return fmt.Errorf("get object: changed since its event or the checkpoint (use a versioned bucket): %w", err)
	}
	return fmt.Errorf("get object: %w", err)
}

// countingBody counts the bytes read from an object's body and whether it ended cleanly (io.EOF
// from the body itself, not an early end of the connection).
type countingBody struct {
	r   io.Reader
	n   int64
	eof bool
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

// isFileFault reports whether a fatal reader error is the file's fault: retrying cannot help.
func isFileFault(err error) bool {
	var corrupt flate.CorruptInputError
	return errors.Is(err, order.ErrBadHeader) || errors.Is(err, gzip.ErrChecksum) ||
		errors.Is(err, gzip.ErrHeader) || errors.As(err, &corrupt)
}

package ingest

import (
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// prefetch is a GET of a whole object version started before its claim is settled, so that the
// two requests overlap. Nothing is read from it until the claim is held: a lost claim discards
// it, body unread. The zero of *prefetch (nil) is no prefetch. Not safe for concurrent use.
type prefetch struct {
	in     *s3.GetObjectInput
	cancel context.CancelFunc
	done   chan struct{}
	out    *s3.GetObjectOutput
	err    error
	taken  bool
}

// startPrefetch starts the GET of obj from its first byte, as fileRun.openWhole makes it for a
// fresh claim (pinned to the version id, or to the event's ETag; S3's checksum validated).
func startPrefetch(ctx context.Context, objects ObjectStore, obj object) *prefetch {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetch{
		in: &s3.GetObjectInput{Bucket: aws.String(obj.Bucket), Key: aws.String(obj.Key), VersionId: obj.versionID(), IfMatch: obj.firstReadIfMatch(),
			ChecksumMode: s3types.ChecksumModeEnabled},
		cancel: cancel, done: make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		p.out, p.err = objects.GetObject(ctx, p.in, quietChecksum)
	}()
	return p
}

// pending reports whether p holds a GET not yet taken or discarded.
func (p *prefetch) pending() bool { return p != nil && !p.taken }

// take waits for the GET of a pending prefetch and hands its answer over, once; the body
// cancels the request's context when closed.
func (p *prefetch) take() (*s3.GetObjectOutput, error) {
	p.taken = true
	<-p.done
	if p.err != nil {
		p.cancel()
		return nil, p.err
	}
	p.out.Body = &cancelOnClose{ReadCloser: p.out.Body, cancel: p.cancel}
	return p.out, nil
}

// discard abandons a prefetch that was not taken: it cancels the GET, waits for it and closes
// the body unread. It does nothing on a nil or taken prefetch.
func (p *prefetch) discard() {
	if !p.pending() {
		return
	}
	p.taken = true
	p.cancel()
	<-p.done
	if p.err == nil && p.out.Body != nil {
		p.out.Body.Close()
	}
}

// cancelOnClose ends the request's context when the body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

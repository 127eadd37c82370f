package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// keyLimitStore is the real S3 client refusing keys longer than S3's limit, as S3 does
// (KeyTooLongError) and the stand-in does not.
type keyLimitStore struct{ ingest.ObjectStore }

func tooLong(key *string) error {
	if n := len(aws.ToString(key)); n > ingest.MaxKeyBytes {
		return fmt.Errorf("KeyTooLongError: key of %d bytes", n)
	}
	return nil
}

func (s keyLimitStore) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if err := tooLong(in.Key); err != nil {
		return nil, err
	}
	return s.ObjectStore.GetObject(ctx, in, o...)
}

func (s keyLimitStore) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if err := tooLong(in.Key); err != nil {
		return nil, err
	}
	return s.ObjectStore.PutObject(ctx, in, o...)
}

func (s keyLimitStore) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, o ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	if err := tooLong(in.Key); err != nil {
		return nil, err
	}
	return s.ObjectStore.DeleteObject(ctx, in, o...)
}

// An object key near S3's 1024-byte limit leaves no room for `state/{key}@{version}.json`:
// every derived key shortens the object key (ingest.ReportKey) and the file is ingested, with
// checkpoints (id set and rejects sidecars), its rejects and its report, which names the full key.
func TestIngestLongKey(t *testing.T) {
	e := newEnv(t)
	key := "uploads/" + strings.Repeat("k", 1000-len("uploads/")-len(".jsonl")) + ".jsonl"
	e.put(t, key, []byte(`{"id":"a"}`+"\n"+`{"id":"b"}`+"\n"+`{"id":"a"}`+"\n"))
	cfg := e.cfg
	cfg.CheckpointEvery = time.Nanosecond // a checkpoint at every look at the clock: sidecars too
	svc := ingest.New(cfg, keyLimitStore{e.s3}, e.sqs, ingest.Options{})
	ingest.SetChunks(svc, 1<<20, 1) // a look after every line (a byte or more read)
	rec := s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}
	if got, err := svc.Ingest(ctx(t), rec, ""); err != nil || got != ingest.Done {
		t.Fatalf("Ingest = %v, %v; want done", got, err)
	}
	if diff := cmp.Diff([]string{`{"id":"a"}`, `{"id":"b"}`}, receiveAll(t, e.sqs, e.ordersURL)); diff != "" {
		t.Errorf("orders sent (-want +got):\n%s", diff)
	}
	var rep ingest.Report
	if !e.get(t, ingest.ReportKey(key), &rep) {
		t.Fatalf("no report at %.40s...", ingest.ReportKey(key))
	}
	if rep.Key != key || rep.Lines != 3 || rep.Enqueued != 2 || rep.Rejected != 1 {
		t.Errorf("report: key of %d bytes, lines %d enqueued %d rejected %d; want %d bytes, 3, 2, 1", len(rep.Key), rep.Lines, rep.Enqueued, rep.Rejected, len(key))
	}
	var rej ingest.Reject
	if !e.get(t, ingest.RejectsKey(key), &rej) || rej.Line != 3 || rej.Reason != ingest.ReasonDuplicateID {
		t.Errorf("rejects: %+v; want line 3, %q", rej, ingest.ReasonDuplicateID)
	}
	if got, err := svc.Ingest(ctx(t), rec, ""); err != nil || got != ingest.Skipped {
		t.Errorf("second Ingest = %v, %v; want skipped (the state is found)", got, err)
	}
}

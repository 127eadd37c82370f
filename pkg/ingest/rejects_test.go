package ingest_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// The rejects object holds the rejects of the latest file of its key: a new version without
// rejects deletes the previous version's, one with rejects replaces them.
func TestIngestRejectsObjectOfLatestVersion(t *testing.T) {
	const withReject, clean = `{"id":"a"}` + "\n" + `{"id":"a"}` + "\n", `{"id":"x"}` + "\n"
	tests := []struct {
		name   string
		bodies []string // uploaded and ingested in turn
		want   string   // the rejects object after the last; "" for none
	}{
		{"rejects, then none", []string{withReject, clean}, ""},
		{"none", []string{clean}, ""},
		{"none, then rejects", []string{clean, withReject}, `{"line":2,"reason":"duplicate id","raw":"{\"id\":\"a\"}"}` + "\n"},
		{"rejects, then rejects", []string{withReject + `{"id":"b"}` + "\n", `{"id":"b"}` + "\n" + withReject}, `{"line":3,"reason":"duplicate id","raw":"{\"id\":\"a\"}"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			const key = "uploads/versions.jsonl"
			for _, body := range tt.bodies {
				out, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String(key), Body: strings.NewReader(body)})
				if err != nil {
					t.Fatal(err)
				}
				rec := s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key, ETag: strings.Trim(aws.ToString(out.ETag), `"`)}
				if got, err := e.svc.Ingest(ctx(t), rec, ""); err != nil || got != ingest.Done {
					t.Fatalf("Ingest = %v, %v; want done", got, err)
				}
			}
			out, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &e.bucket, Key: aws.String(ingest.RejectsKey(key))})
			var nsk *s3types.NoSuchKey
			if tt.want == "" {
				if !errors.As(err, &nsk) {
					t.Errorf("get rejects object: %v; want NoSuchKey (no rejects in the latest file)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("get rejects object: %v", err)
			}
			defer out.Body.Close()
			b, err := io.ReadAll(out.Body)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tt.want {
				t.Errorf("rejects object = %q, want %q", got, tt.want)
			}
		})
	}
}

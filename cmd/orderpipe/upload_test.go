package main

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
)

func TestUpload(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	client := awstest.S3(cfg)
	want, err := os.ReadFile("testdata/orders.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		versioned bool
		args      []string
		wantKey   string
	}{
		{"unversioned bucket", false, nil, "uploads/orders.jsonl"},
		{"versioned bucket", true, nil, "uploads/orders.jsonl"},
		{"key prefix after the file", false, []string{"--key-prefix", "uploads/2026/"}, "uploads/2026/orders.jsonl"},
		{"the trailing slash is added", false, []string{"--key-prefix", "uploads"}, "uploads/orders.jsonl"},
		{"a leading slash is dropped", false, []string{"--key-prefix", "/uploads/2026"}, "uploads/2026/orders.jsonl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			bucket := awstest.NewBucket(t, cfg)
			if tc.versioned {
				if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
					Bucket:                  &bucket,
					VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
				}); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"upload", "testdata/orders.jsonl", "--bucket", bucket, "--json"}, tc.args...)
			var got []uploaded
			mustJSON(t, standIn(t, args...), &got)
			if len(got) != 1 {
				t.Fatalf("got %d uploads, want 1", len(got))
			}
			if got[0].Key != tc.wantKey || got[0].Bytes != int64(len(want)) {
				t.Errorf("got key %q, %d bytes; want %q, %d bytes", got[0].Key, got[0].Bytes, tc.wantKey, len(want))
			}
			obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &got[0].Key})
			if err != nil {
				t.Fatalf("get uploaded object: %v", err)
			}
			defer obj.Body.Close()
			body, _ := io.ReadAll(obj.Body)
			if string(body) != string(want) {
				t.Errorf("got object %q, want %q", body, want)
			}
			wantVersion := "null"
			if tc.versioned {
				wantVersion = aws.ToString(obj.VersionId)
			}
			if got[0].Version != wantVersion || got[0].Version == "" {
				t.Errorf("got version %q, want %q", got[0].Version, wantVersion)
			}
		})
	}
}

func TestUploadText(t *testing.T) {
	t.Parallel()
	bucket := awstest.NewBucket(t, awstest.Config(t))
	r := standIn(t, "upload", "--bucket", bucket, "testdata/orders.jsonl")
	if got, want := r.stdout, "uploads/orders.jsonl\tnull\n"; r.code != exitOK || got != want {
		t.Errorf("got exit %d, stdout %q; want 0, %q (stderr %s)", r.code, got, want, r.stderr)
	}
}

func TestUploadFailures(t *testing.T) {
	t.Parallel()
	bucket := awstest.NewBucket(t, awstest.Config(t))
	for _, tc := range []struct {
		name    string
		args    []string
		errPart string
	}{
		{"missing file", []string{"upload", "testdata/nope.jsonl", "--bucket", bucket}, "testdata/nope.jsonl"},
		{"a directory", []string{"upload", "testdata", "--bucket", bucket}, "not a regular file"},
		{"missing bucket", []string{"upload", "testdata/orders.jsonl", "--bucket", bucket + "-gone"}, "NoSuchBucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, standIn(t, tc.args...), exitFailure, tc.errPart)
		})
	}
}

// TestUploadRefusedWhole checks that a list with a file ingest cannot take uploads nothing: a
// partial upload invites uploading the first files again, as new versions ingested again.
func TestUploadRefusedWhole(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	for _, tc := range []struct {
		name    string
		files   []string
		errPart string
	}{
		{"unknown format after a good file", []string{"testdata/orders.jsonl", "testdata/parked.json"}, "unknown orders file format"},
		{"two files to one key", []string{"testdata/orders.jsonl", "testdata/../testdata/orders.jsonl"}, "would both be written to key uploads/orders.jsonl"},
		{"a prefix ingest never hears of", []string{"testdata/orders.jsonl", "--key-prefix", "foo/"}, `--key-prefix "foo/" is outside uploads/`},
		{"a prefix that only starts like it", []string{"testdata/orders.jsonl", "--key-prefix", "uploads-old"}, `--key-prefix "uploads-old/" is outside uploads/`},
		{"the bucket's root", []string{"testdata/orders.jsonl", "--key-prefix", ""}, "is outside uploads/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bucket := awstest.NewBucket(t, cfg)
			wantCode(t, standIn(t, append(append([]string{"upload"}, tc.files...), "--bucket", bucket)...), exitUsage, tc.errPart)
			out, err := awstest.S3(cfg).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket})
			if err != nil {
				t.Fatalf("list bucket: %v", err)
			}
			if got := aws.ToInt32(out.KeyCount); got != 0 {
				t.Errorf("got %d objects uploaded, want 0", got)
			}
		})
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// maxPutObject is the largest object one PutObject call takes.
const maxPutObject = 5 << 30

// uploaded is one file written to the bucket.
type uploaded struct {
	File    string `json:"file"`
	Bucket  string `json:"bucket"`
	Key     string `json:"key"`
	Version string `json:"version"` // S3 version id, or "null" for an unversioned bucket
	Bytes   int64  `json:"bytes"`
}

func runUpload(ctx context.Context, c *cli, args []string) error {
	fs, o := c.newFlags("upload", "FILE... [--key-prefix "+pipeline.UploadsPrefix+"]")
	prefix := fs.String("key-prefix", pipeline.UploadsPrefix, "key prefix under "+pipeline.UploadsPrefix+" (a trailing / is added); the key is the prefix and the file's base name")
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageErrorf("upload: no files")
	}
	if *prefix, err = uploadPrefix(*prefix); err != nil {
		return err
	}
	// Check every file before uploading any: a bad name half way through the list would leave
	// the first files uploaded, and uploading them again makes new versions, ingested again.
	keys := make([]string, len(files))
	byKey := make(map[string]string, len(files))
	for i, f := range files {
		keys[i] = *prefix + filepath.Base(f)
		if _, err := uploadSize(f); err != nil {
			return fmt.Errorf("upload %s: %w", f, err)
		}
		if _, _, err := order.FormatOf(keys[i]); err != nil {
			return usageErrorf("upload %s: %v", f, err)
		}
		if other, ok := byKey[keys[i]]; ok {
			// On an unversioned bucket the second would replace the first before ingest reads it.
			return usageErrorf("upload: %s and %s would both be written to key %s", other, f, keys[i])
		}
		byKey[keys[i]] = f
	}
	s, err := c.connect(ctx, o)
	if err != nil {
		return err
	}
	bucket, err := s.bucket()
	if err != nil {
		return err
	}
	done := []uploaded{}
	for i, f := range files {
		u, err := s.upload(ctx, bucket, keys[i], f)
		if err != nil {
			if o.json && len(done) > 0 {
				_ = writeJSON(c.stdout, done) // the operator must know what is already in the bucket
			}
			return fmt.Errorf("%w (%d of %d files uploaded before this one; do not upload those again)", err, len(done), len(files))
		}
		done = append(done, u)
		if !o.json {
			fmt.Fprintf(c.stdout, "%s\t%s\n", u.Key, u.Version)
		}
	}
	if o.json {
		return writeJSON(c.stdout, done)
	}
	return nil
}

// uploadPrefix normalises a --key-prefix: no leading "/", one trailing "/". It returns a usage
// error for a prefix outside pipeline.UploadsPrefix: ingest never hears of such a key, and the
// file would sit in the bucket unprocessed.
func uploadPrefix(p string) (string, error) {
	p = strings.TrimLeft(p, "/")
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	if !strings.HasPrefix(p, pipeline.UploadsPrefix) {
		return "", usageErrorf("upload: --key-prefix %q is outside %s: only files under %s are ingested", p, pipeline.UploadsPrefix, pipeline.UploadsPrefix)
	}
	return p, nil
}

// uploadSize returns the size of file, or why it cannot be uploaded with one PutObject.
func uploadSize(file string) (int64, error) {
	st, err := os.Stat(file)
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, errors.New("not a regular file")
	}
	if st.Size() > maxPutObject {
		return 0, fmt.Errorf("%d bytes is over the 5 GiB a single PutObject takes", st.Size())
	}
	return st.Size(), nil
}

// upload streams one file to bucket/key with a single PutObject.
func (s *session) upload(ctx context.Context, bucket, key, file string) (uploaded, error) {
	f, err := os.Open(file)
	if err != nil {
		return uploaded{}, fmt.Errorf("upload %s: %w", file, err)
	}
	defer f.Close()
	size, err := uploadSize(file)
	if err != nil {
		return uploaded{}, fmt.Errorf("upload %s: %w", file, err)
	}
	out, err := s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &bucket,
		Key:           &key,
		Body:          f,
		ContentLength: aws.Int64(size),
	})
	if err != nil {
		return uploaded{}, fmt.Errorf("upload %s to s3://%s/%s: %w", file, bucket, key, err)
	}
	version := aws.ToString(out.VersionId)
	if version == "" {
		version = order.NullVersion
	}
	return uploaded{File: file, Bucket: bucket, Key: key, Version: version, Bytes: size}, nil
}

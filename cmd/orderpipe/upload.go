package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/orderpipe/orderpipe/pkg/order"
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
	fs, o := c.newFlags("upload", "FILE... [--key-prefix uploads/]")
	prefix := fs.String("key-prefix", "uploads/", "key prefix; the key is the prefix and the file's base name")
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageErrorf("upload: no files")
	}
	s, err := c.connect(ctx, o)
	if err != nil {
		return err
	}
	bucket, err := s.bucket()
	if err != nil {
		return err
	}
	var done []uploaded
	for _, f := range files {
		u, err := s.upload(ctx, bucket, *prefix+filepath.Base(f), f)
		if err != nil {
			return err
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

// upload streams one file to bucket/key with a single PutObject.
func (s *session) upload(ctx context.Context, bucket, key, file string) (uploaded, error) {
	f, err := os.Open(file)
	if err != nil {
		return uploaded{}, fmt.Errorf("upload %s: %w", file, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return uploaded{}, fmt.Errorf("upload %s: %w", file, err)
	}
	if !st.Mode().IsRegular() {
		return uploaded{}, fmt.Errorf("upload %s: not a regular file", file)
	}
	if st.Size() > maxPutObject {
		return uploaded{}, fmt.Errorf("upload %s: %d bytes is over the 5 GiB a single PutObject takes", file, st.Size())
	}
	out, err := s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &bucket,
		Key:           &key,
		Body:          f,
		ContentLength: aws.Int64(st.Size()),
	})
	if err != nil {
		return uploaded{}, fmt.Errorf("upload %s to s3://%s/%s: %w", file, bucket, key, err)
	}
	version := aws.ToString(out.VersionId)
	if version == "" {
		version = order.NullVersion
	}
	return uploaded{File: file, Bucket: bucket, Key: key, Version: version, Bytes: st.Size()}, nil
}

package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// objectStore is the part of the S3 client the claim and the files ingest writes need.
type objectStore interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// putFile uploads r (size bytes) to bucket/key.
func putFile(ctx context.Context, store objectStore, bucket, key string, r io.ReadSeeker, size int64, contentType string) error {
	_, err := store.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: r,
		ContentLength: aws.Int64(size), ContentType: aws.String(contentType),
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// getFile copies the object bucket/key to w.
func getFile(ctx context.Context, store objectStore, bucket, key string, w io.Writer) error {
	out, err := store.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	if _, err := io.Copy(w, out.Body); err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	return nil
}

// isPreconditionFailed reports whether err is S3's answer to a failed If-Match/If-None-Match.
func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed"
}

// isNotFound reports whether err says the object or version does not exist.
func isNotFound(err error) bool {
	var nsk *s3types.NoSuchKey
	var ae smithy.APIError
	return errors.As(err, &nsk) || (errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchVersion" || ae.ErrorCode() == "NotFound"))
}

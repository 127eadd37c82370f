package awstest

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestStandIn(t *testing.T) {
	cfg := Config(t)
	b := NewBucket(t, cfg)
	if _, err := S3(cfg).PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &b, Key: strPtr("k"), Body: strings.NewReader("x"),
	}); err != nil {
		t.Fatalf("put object: %v", err)
	}
	url, arn := NewQueue(t, cfg, nil)
	if url == "" || !strings.HasPrefix(arn, "arn:aws:sqs:") {
		t.Errorf("NewQueue = %q, %q; want a URL and an SQS ARN", url, arn)
	}
	if a, b := Name(t, "x"), Name(t, "x"); a == b {
		t.Errorf("Name returned %q twice", a)
	}
}

func strPtr(s string) *string { return &s }

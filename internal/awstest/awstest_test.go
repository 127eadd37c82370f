package awstest

import (
	"context"
	"strings"
	"testing"
	"time"

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

func TestScale(t *testing.T) {
	c := SQS(Config(t))
	if rtt := RoundTrip(t, c); rtt <= 0 {
		t.Errorf("RoundTrip = %v, want > 0", rtt)
	}
	d := 10 * time.Second
	if got := Scale(t, c, d); got < d || got > MaxScale*d {
		t.Errorf("Scale(%v) = %v, want between %v and %v", d, got, d, MaxScale*d)
	}
}

func strPtr(s string) *string { return &s }

package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// TestStartMotoIAM shows what the enforcing stand-in checks: a principal created from a policy
// may do what it allows, on the resources it names, and nothing else; unknown keys are refused.
func TestStartMotoIAM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	endpoint, adminCfg := startMotoIAM(t)
	as3, asqs := s3Client(adminCfg), sqs.NewFromConfig(adminCfg)
	bucket := "iam-proof"
	if _, err := as3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("admin CreateBucket: %v", err)
	}
	q, err := asqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("iam-proof")})
	if err != nil {
		t.Fatalf("admin CreateQueue: %v", err)
	}
	other, err := asqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("iam-other")})
	if err != nil {
		t.Fatalf("admin CreateQueue: %v", err)
	}
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::%s/in/*"},
		{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"arn:aws:sqs:us-east-1:123456789012:iam-proof"}]}`, bucket)
	creds, err := CreatePrincipal(ctx, adminCfg, "fn", []string{policy})
	if err != nil {
		t.Fatalf("CreatePrincipal: %v", err)
	}
	fnCfg := ClientConfig(endpoint, creds)
	fs3, fsqs := s3Client(fnCfg), sqs.NewFromConfig(fnCfg)

	put := func(c *s3.Client, key string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader([]byte("x"))})
		return err
	}
	get := func(key string) error {
		out, err := fs3.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		if err == nil {
			_, err = io.Copy(io.Discard, out.Body)
			out.Body.Close()
		}
		return err
	}
	send := func(url *string) error {
		_, err := fsqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("m")})
		return err
	}
	sendBatch := func(url *string) error {
		out, err := fsqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: url, Entries: []sqstypes.SendMessageBatchRequestEntry{
			{Id: aws.String("1"), MessageBody: aws.String("m")},
		}})
		if err == nil && len(out.Failed) > 0 {
			err = fmt.Errorf("entry failed: %s", aws.ToString(out.Failed[0].Code))
		}
		return err
	}
	if err := put(as3, "out/x"); err != nil {
		t.Fatalf("admin PutObject: %v", err)
	}
	for _, c := range []struct {
		name   string
		call   func() error
		denied bool
	}{
		{"PutObject in/", func() error { return put(fs3, "in/a") }, false},
		{"PutObject in/ key with @", func() error { return put(fs3, "in/a@b=c+d (1).json") }, false},
		{"PutObject in/ if none match", func() error {
			_, err := fs3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("in/c"), Body: bytes.NewReader([]byte("x")), IfNoneMatch: aws.String("*")})
			return err
		}, false},
		{"GetObject in/", func() error { return get("in/a") }, false},
		{"PutObject out/", func() error { return put(fs3, "out/a") }, true},
		{"GetObject out/", func() error { return get("out/x") }, true},
		{"SendMessage granted queue", func() error { return send(q.QueueUrl) }, false},
		{"SendMessageBatch granted queue", func() error { return sendBatch(q.QueueUrl) }, false},
		{"SendMessage other queue", func() error { return send(other.QueueUrl) }, true},
		{"SendMessageBatch other queue", func() error { return sendBatch(other.QueueUrl) }, true},
		{"ReceiveMessage not granted", func() error {
			_, err := fsqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl})
			return err
		}, true},
		{"unknown access key", func() error {
			_, err := sqs.NewFromConfig(ClientConfig(endpoint, aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"})).
				SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("m")})
			return err
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if c.denied != isDenied(err) {
				t.Errorf("got %v, want denied %v", err, c.denied)
			}
			if !c.denied && err != nil {
				t.Errorf("got %v, want success", err)
			}
		})
	}
}

// TestStartMotoIAMMissingObject records a gap of the stand-in's enforcement: without
// s3:ListBucket, AWS answers a GetObject of a missing key with 403; moto answers 404.
func TestStartMotoIAMMissingObject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	endpoint, adminCfg := startMotoIAM(t)
	if _, err := s3Client(adminCfg).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("missing")}); err != nil {
		t.Fatalf("admin CreateBucket: %v", err)
	}
	creds, err := CreatePrincipal(ctx, adminCfg, "reader", []string{
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::missing/*"}]}`,
	})
	if err != nil {
		t.Fatalf("CreatePrincipal: %v", err)
	}
	_, err = s3Client(ClientConfig(endpoint, creds)).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("missing"), Key: aws.String("nokey")})
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusNotFound {
		t.Errorf("GetObject of a missing key without s3:ListBucket: got %v, want moto's 404 (docs/DECISIONS.md)", err)
	}
}

// startMotoIAM starts an enforcing stand-in for the test and returns its endpoint and the
// administrator's configuration.
func startMotoIAM(t *testing.T) (string, aws.Config) {
	t.Helper()
	endpoint, admin, stop, err := StartMotoIAM(context.Background())
	if err != nil {
		t.Fatalf("StartMotoIAM: %v", err)
	}
	t.Cleanup(stop)
	return endpoint, ClientConfig(endpoint, admin)
}

// isDenied reports whether err is an authorization refusal: HTTP 403 (moto answers an SQS
// refusal in the query protocol's XML, which the JSON client cannot decode, so the status is
// what is left of it).
func isDenied(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
}

func s3Client(cfg aws.Config) *s3.Client { return s3.NewFromConfig(cfg, S3Options) }

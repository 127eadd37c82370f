package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// TestMotoNotifications sends real notifications through moto by the three routes a files
// queue can be fed and decodes what arrives with pkg/s3event (pkg/s3event/testdata/moto-*.json
// were captured this way).
func TestMotoNotifications(t *testing.T) {
	ctx := context.Background()
	cfg := awstest.Config(t)
	s3c, sqsc, snsc := awstest.S3(cfg), awstest.SQS(cfg), awstest.SNS(cfg)

	bucket := awstest.NewBucket(t, cfg)
	rawURL, rawARN := awstest.NewQueue(t, cfg, nil)
	envURL, envARN := awstest.NewQueue(t, cfg, nil)
	directURL, directARN := awstest.NewQueue(t, cfg, nil)
	topic, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(awstest.Name(t, "t"))})
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	for _, sub := range []struct {
		arn string
		raw string
	}{{rawARN, "true"}, {envARN, "false"}} {
		if _, err := snsc.Subscribe(ctx, &sns.SubscribeInput{
			TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(sub.arn),
			Attributes: map[string]string{"RawMessageDelivery": sub.raw},
		}); err != nil {
			t.Fatalf("subscribe %s: %v", sub.arn, err)
		}
	}
	if _, err := s3c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: &bucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{
			TopicConfigurations: []s3types.TopicConfiguration{{
				TopicArn: topic.TopicArn,
				Events:   []s3types.Event{"s3:ObjectCreated:*"},
				Filter:   prefixFilter("uploads/"),
			}},
			QueueConfigurations: []s3types.QueueConfiguration{{
				QueueArn: &directARN,
				Events:   []s3types.Event{"s3:ObjectCreated:*"},
				Filter:   prefixFilter("uploads/"),
			}},
		},
	}); err != nil {
		t.Fatalf("put bucket notification: %v", err)
	}

	const key = "uploads/2026 Q1/ordres été 😀 a+b%.jsonl"
	content := `{"id":"a1"}` + "\n"
	put, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: strings.NewReader(content)})
	if err != nil {
		t.Fatalf("put object: %v", err)
	}

	for _, q := range []struct {
		name, url string
		viaSNS    bool
	}{{"raw", rawURL, false}, {"envelope", envURL, true}, {"direct", directURL, false}} {
		t.Run(q.name, func(t *testing.T) {
			var rec *s3event.Record
			var tests int
			deadline := time.Now().Add(awstest.Scale(t, sqsc, 20*time.Second))
			for rec == nil && time.Now().Before(deadline) {
				out, err := sqsc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &q.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if err != nil {
					t.Fatalf("receive: %v", err)
				}
				for _, m := range out.Messages {
					got, err := s3event.Decode(*m.Body)
					if err != nil {
						t.Fatalf("Decode(%s): %v", *m.Body, err)
					}
					if got.ViaSNS != q.viaSNS {
						t.Errorf("ViaSNS = %v, want %v", got.ViaSNS, q.viaSNS)
					}
					if got.TestEvent {
						tests++
						continue
					}
					for i := range got.Records {
						rec = &got.Records[i]
					}
				}
			}
			if rec == nil {
				t.Fatalf("no object notification arrived on the %s queue", q.name)
			}
			want := s3event.Record{Bucket: bucket, Key: key, Size: int64(len(content)), ETag: strings.Trim(aws.ToString(put.ETag), `"`)}
			if rec.Bucket != want.Bucket || rec.Key != want.Key || rec.Size != want.Size || rec.ETag != want.ETag || !rec.Created() {
				t.Errorf("record = %+v, want bucket %q key %q size %d eTag %q, ObjectCreated", *rec, want.Bucket, want.Key, want.Size, want.ETag)
			}
			if rec.EventTime == "" {
				t.Errorf("EventTime is empty")
			}
			t.Logf("%s: %d test events, record %+v", q.name, tests, *rec)
		})
	}
}

func prefixFilter(prefix string) *s3types.NotificationConfigurationFilter {
	return &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{
		FilterRules: []s3types.FilterRule{{Name: s3types.FilterRuleNamePrefix, Value: aws.String(prefix)}},
	}}
}

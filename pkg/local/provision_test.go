package local

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/delivery"
	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

func awstestName(t testing.TB) string { return awstest.Name(t, "local") }

func shortSettings() pipeline.Settings {
	s := pipeline.Defaults()
	s.IngestTimeout, s.FilesVisibility = time.Minute, 7*time.Minute
	s.DispatchTimeout, s.OrdersVisibility = 5*time.Second, 40*time.Second
	s.MaxReceiveCount, s.MaxAttempts = 6, 5
	s.QueueRetention, s.DLQRetention = 2*24*time.Hour, 3*24*time.Hour
	return s
}

func TestProvision(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	ctx := context.Background()
	names := NamesFor(awstest.Name(t, "prov"))
	var first Resources
	// The second run finds everything and sets the new settings: Provision is idempotent and
	// converges.
	for i, s := range []pipeline.Settings{pipeline.Defaults(), shortSettings()} {
		r, err := Provision(ctx, cfg, s, names)
		if err != nil {
			t.Fatalf("run %d: Provision: %v", i, err)
		}
		if i == 0 {
			first = r
		} else if r != first {
			t.Errorf("run %d: got resources %+v, want the same as the first run %+v", i, r, first)
		}
		checkResources(t, cfg, r, s)
	}
}

func checkResources(t *testing.T, cfg aws.Config, r Resources, s pipeline.Settings) {
	t.Helper()
	ctx := context.Background()
	sq := awstest.SQS(cfg)
	for _, q := range []struct {
		name, url, dlqARN string
		visibility        time.Duration
		retention         time.Duration
	}{
		{"files", r.FilesQueueURL, r.FilesDLQARN, s.FilesVisibility, s.QueueRetention},
		{"orders", r.OrdersQueueURL, r.OrdersDLQARN, s.OrdersVisibility, s.QueueRetention},
		{"files DLQ", r.FilesDLQURL, "", 0, s.DLQRetention},
		{"orders DLQ", r.OrdersDLQURL, "", 0, s.DLQRetention},
	} {
		out, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: &q.url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
		})
		if err != nil {
			t.Fatalf("%s queue attributes: %v", q.name, err)
		}
		a := out.Attributes
		if got, want := a["MessageRetentionPeriod"], seconds(q.retention); got != want {
			t.Errorf("%s MessageRetentionPeriod: got %s, want %s", q.name, got, want)
		}
		if q.dlqARN == "" {
			if a["RedrivePolicy"] != "" {
				t.Errorf("%s RedrivePolicy: got %s, want none", q.name, a["RedrivePolicy"])
			}
			continue
		}
		if got, want := a["VisibilityTimeout"], seconds(q.visibility); got != want {
			t.Errorf("%s VisibilityTimeout: got %s, want %s", q.name, got, want)
		}
		var rp struct {
			DeadLetterTargetArn string
			MaxReceiveCount     json.Number
		}
		if err := json.Unmarshal([]byte(a["RedrivePolicy"]), &rp); err != nil {
			t.Fatalf("%s RedrivePolicy %q: %v", q.name, a["RedrivePolicy"], err)
		}
		if got, want := rp.DeadLetterTargetArn, q.dlqARN; got != want {
			t.Errorf("%s redrive target: got %s, want %s", q.name, got, want)
		}
		if got, want := rp.MaxReceiveCount.String(), seconds(time.Duration(s.MaxReceiveCount)*time.Second); got != want {
			t.Errorf("%s maxReceiveCount: got %s, want %s", q.name, got, want)
		}
	}
	pol, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &r.FilesQueueURL, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNamePolicy},
	})
	if err != nil {
		t.Fatalf("files queue policy: %v", err)
	}
	if p := pol.Attributes["Policy"]; !strings.Contains(p, r.TopicARN) || !strings.Contains(p, "sqs:SendMessage") {
		t.Errorf("files queue policy %s: want sqs:SendMessage allowed for %s", p, r.TopicARN)
	}

	sn := awstest.SNS(cfg)
	subs, err := sn.ListSubscriptionsByTopic(ctx, &sns.ListSubscriptionsByTopicInput{TopicArn: &r.TopicARN})
	if err != nil {
		t.Fatalf("list subscriptions: %v", err)
	}
	if got, want := len(subs.Subscriptions), 1; got != want {
		t.Fatalf("subscriptions of the topic: got %d, want %d", got, want)
	}
	if got, want := aws.ToString(subs.Subscriptions[0].Endpoint), r.FilesQueueARN; got != want {
		t.Errorf("subscription endpoint: got %s, want %s", got, want)
	}
	sa, err := sn.GetSubscriptionAttributes(ctx, &sns.GetSubscriptionAttributesInput{SubscriptionArn: &r.SubscriptionARN})
	if err != nil {
		t.Fatalf("subscription attributes: %v", err)
	}
	if got, want := sa.Attributes["RawMessageDelivery"], "true"; got != want {
		t.Errorf("RawMessageDelivery: got %q, want %q", got, want)
	}

	s3c := awstest.S3(cfg)
	v, err := s3c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &r.Bucket})
	if err != nil {
		t.Fatalf("bucket versioning: %v", err)
	}
	if got, want := string(v.Status), "Enabled"; got != want {
		t.Errorf("bucket versioning: got %q, want %q", got, want)
	}
	n, err := s3c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: &r.Bucket})
	if err != nil {
		t.Fatalf("bucket notification: %v", err)
	}
	if got, want := len(n.TopicConfigurations), 1; got != want {
		t.Fatalf("topic notifications: got %d, want %d", got, want)
	}
	tc := n.TopicConfigurations[0]
	if got, want := aws.ToString(tc.TopicArn), r.TopicARN; got != want {
		t.Errorf("notification topic: got %s, want %s", got, want)
	}
	if tc.Filter == nil || tc.Filter.Key == nil || len(tc.Filter.Key.FilterRules) != 1 ||
		aws.ToString(tc.Filter.Key.FilterRules[0].Value) != UploadsPrefix {
		t.Errorf("notification filter: got %+v, want prefix %s", tc.Filter, UploadsPrefix)
	}
	ttl, err := dynamodb.NewFromConfig(cfg).DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &r.DeliveryTable})
	if err != nil {
		t.Fatalf("delivery table: %v", err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != delivery.ExpiresAttribute {
		t.Errorf("delivery table TTL %+v: want it on %s", d, delivery.ExpiresAttribute)
	}
	if got := r.DispatchConfig(pipeline.Defaults(), "http://api").DeliveryTable; got != r.DeliveryTable || got == "" {
		t.Errorf("DispatchConfig DeliveryTable = %q, want %q", got, r.DeliveryTable)
	}
	d, err := dynamodb.NewFromConfig(cfg).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &r.GovernorTable})
	if err != nil {
		t.Fatalf("governor table: %v", err)
	}
	if d.Table.BillingModeSummary == nil || d.Table.BillingModeSummary.BillingMode != ddbtypes.BillingModePayPerRequest ||
		len(d.Table.KeySchema) != 1 || aws.ToString(d.Table.KeySchema[0].AttributeName) != governor.KeyAttribute {
		t.Errorf("governor table %+v: want on-demand, partition key %s", d.Table, governor.KeyAttribute)
	}
	if got := r.DispatchConfig(pipeline.Defaults(), "http://api").GovernorTable; got != r.GovernorTable || got == "" {
		t.Errorf("DispatchConfig GovernorTable = %q, want %q", got, r.GovernorTable)
	}
}

func TestProvisionRefusesInvalidSettings(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	s := pipeline.Defaults()
	s.OrdersVisibility = s.DispatchTimeout // < 6 x timeout
	names := NamesFor(awstest.Name(t, "bad"))
	_, err := Provision(context.Background(), cfg, s, names)
	if err == nil || !strings.Contains(err.Error(), "orders queue visibility") {
		t.Fatalf("Provision: got error %v, want one about the orders queue visibility", err)
	}
	if _, err := awstest.SQS(cfg).GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: &names.OrdersQueue}); err == nil {
		t.Errorf("orders queue %s exists, want nothing created", names.OrdersQueue)
	}
}

// TestProvisionNotifiesUploads puts one object outside uploads/ and then one inside, and reads
// the files queue through a Poller: moto's s3:TestEvent (sent when the notification is set) and
// then the raw S3 event of the upload arrive, delivered and deleted like any message; the other
// object's event never does (it would have arrived before the upload's).
func TestProvisionNotifiesUploads(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	ctx := context.Background()
	r, err := Provision(ctx, cfg, pipeline.Defaults(), NamesFor(awstest.Name(t, "up")))
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	s3c := awstest.S3(cfg)
	for _, key := range []string{"elsewhere/a.jsonl", UploadsPrefix + "2026/b.jsonl"} {
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: &r.Bucket, Key: aws.String(key), Body: strings.NewReader(`{"id":"1"}` + "\n")}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}

	var keys []string
	// The bound only keeps a broken notification from hanging the test; the assertions follow.
	runCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	p := &Poller{
		Client: awstest.SQS(cfg), Logger: testLogger(t), QueueURL: r.FilesQueueURL, QueueARN: r.FilesQueueARN,
		BatchSize: 10, MaxConcurrency: 1, WaitTime: time.Second,
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			for _, rec := range ev.Records {
				// Decoded loosely: moto's eventTime has no time zone.
				var s3ev struct {
					Event   string
					Records []struct {
						EventName string
						S3        struct{ Object struct{ Key string } }
					}
				}
				if err := json.Unmarshal([]byte(rec.Body), &s3ev); err != nil {
					t.Errorf("files queue body %q is not a raw S3 event: %v", rec.Body, err)
				}
				if s3ev.Event != "" {
					keys = append(keys, s3ev.Event)
				}
				for _, s := range s3ev.Records {
					key, err := url.QueryUnescape(s.S3.Object.Key)
					if err != nil {
						t.Errorf("object key %q: %v", s.S3.Object.Key, err)
					}
					keys = append(keys, s.EventName+" "+key)
					if strings.HasPrefix(key, UploadsPrefix) {
						stop()
					}
				}
			}
			return events.SQSEventResponse{}, nil
		},
	}
	if err := p.Run(runCtx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{"s3:TestEvent", "ObjectCreated:Put " + UploadsPrefix + "2026/b.jsonl"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("events on the files queue (-want +got):\n%s", diff)
	}
	if got, want := depth(t, awstest.SQS(cfg), r.FilesQueueURL), 0; got != want {
		t.Errorf("files queue depth after the poller: got %d, want %d (all deleted)", got, want)
	}
}

package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/pkg/delivery"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// UploadsPrefix is the key prefix whose ObjectCreated events start the pipeline (docs/CONTRACTS.md).
const UploadsPrefix = pipeline.UploadsPrefix

// Names are the names of the resources Provision creates or finds.
type Names struct {
	Bucket      string // S3 bucket of uploads, rejects, reports and state
	Topic       string // SNS topic the bucket notifies
	FilesQueue  string // SQS queue of S3 events, subscribed to Topic
	FilesDLQ    string // dead-letter queue of FilesQueue
	OrdersQueue string // SQS queue of order messages
	OrdersDLQ   string // dead-letter queue of OrdersQueue
	Deliveries  string // DynamoDB table of the delivery records (pkg/delivery)
	Governor    string // DynamoDB table of the order API's shared schedule (pkg/governor)
}

// NamesFor returns the conventional names with the given prefix, for example
// NamesFor("orderpipe").OrdersDLQ is "orderpipe-orders-dlq". prefix must be lower case and short
// enough for a bucket name (at most 55 characters).
func NamesFor(prefix string) Names {
	return Names{
		Bucket:      prefix + "-uploads",
		Topic:       prefix + "-uploads",
		FilesQueue:  prefix + "-files",
		FilesDLQ:    prefix + "-files-dlq",
		OrdersQueue: prefix + "-orders",
		OrdersDLQ:   prefix + "-orders-dlq",
		Deliveries:  prefix + "-deliveries",
		Governor:    prefix + "-governor",
	}
}

func (n Names) validate() error {
	for _, f := range []struct{ what, v string }{
		{"Bucket", n.Bucket}, {"Topic", n.Topic}, {"FilesQueue", n.FilesQueue},
		{"FilesDLQ", n.FilesDLQ}, {"OrdersQueue", n.OrdersQueue}, {"OrdersDLQ", n.OrdersDLQ}, {"Governor", n.Governor}, {"Deliveries", n.Deliveries},
	} {
		if f.v == "" {
			return fmt.Errorf("name of %s is empty", f.what)
		}
	}
	return nil
}

// Resources are what Provision created or found.
type Resources struct {
	Region string

	Bucket   string
	TopicARN string

	FilesQueueURL, FilesQueueARN   string
	FilesDLQURL, FilesDLQARN       string
	OrdersQueueURL, OrdersQueueARN string
	OrdersDLQURL, OrdersDLQARN     string

	SubscriptionARN string // the files queue's subscription to the topic

	DeliveryTable string // the delivery records' DynamoDB table
	GovernorTable string // the governor's DynamoDB table
}

// IngestConfig is the ingest function's configuration on these resources: the defaults with
// the orders and files queues.
func (r Resources) IngestConfig() ingest.Config {
	c := ingest.DefaultConfig()
	c.OrdersQueueURL, c.FilesQueueURL = r.OrdersQueueURL, r.FilesQueueURL
	return c
}

// DispatchConfig is the dispatch function's configuration on these resources for a deployment
// of s with the order API at apiURL: the defaults with the orders queue and DLQ and what s
// decides (API rate, instances, transient budget), and the governor's and delivery records'
// tables.
func (r Resources) DispatchConfig(s pipeline.Settings, apiURL string) dispatch.Config {
	c := dispatch.DefaultConfig().WithSettings(s)
	c.OrdersQueueURL, c.DLQURL, c.APIBaseURL = r.OrdersQueueURL, r.OrdersDLQURL, apiURL
	c.GovernorTable, c.DeliveryTable = r.GovernorTable, r.DeliveryTable
	return c
}

// Provision creates, with the real SDK, the pipeline's storage and messaging as the CDK app
// deploys it: a versioned bucket whose ObjectCreated events under UploadsPrefix go to an SNS
// topic; the files queue subscribed to the topic with raw message delivery and a queue policy
// letting the topic send; the orders queue; a dead-letter queue for each source queue; and the
// governor's DynamoDB table (governor.CreateTable) and the delivery records' (delivery.CreateTable). The
// source queues get the visibility timeouts, QueueRetention and a redrive policy with
// MaxReceiveCount from s; the DLQs get DLQRetention. s is validated first.
//
// It is idempotent: what exists is found and its attributes are set again to match s. Setting
// the bucket notification makes the stand-in send an s3:TestEvent to the files queue (each
// time); consumers of that queue must skip it.
//
// Errors name the step that failed; a failure can leave earlier resources in place, and running
// Provision again completes them.
func Provision(ctx context.Context, cfg aws.Config, s pipeline.Settings, n Names) (Resources, error) {
	if err := s.Validate(); err != nil {
		return Resources{}, fmt.Errorf("provision: invalid settings: %w", err)
	}
	if err := n.validate(); err != nil {
		return Resources{}, fmt.Errorf("provision: %w", err)
	}
	p := provisioner{
		s3:  s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = o.BaseEndpoint != nil || os.Getenv("AWS_ENDPOINT_URL") != "" }),
		sns: sns.NewFromConfig(cfg),
		sqs: sqs.NewFromConfig(cfg),
	}
	r := Resources{Region: cfg.Region, Bucket: n.Bucket}
	var err error
	if err = p.bucket(ctx, n.Bucket, cfg.Region); err != nil {
		return r, err
	}
	if r.TopicARN, err = p.topic(ctx, n.Topic, n.Bucket); err != nil {
		return r, err
	}
	if r.FilesDLQURL, r.FilesDLQARN, err = p.queue(ctx, n.FilesDLQ, map[string]string{
		"MessageRetentionPeriod": seconds(s.DLQRetention),
	}); err != nil {
		return r, err
	}
	if r.OrdersDLQURL, r.OrdersDLQARN, err = p.queue(ctx, n.OrdersDLQ, map[string]string{
		"MessageRetentionPeriod": seconds(s.DLQRetention),
	}); err != nil {
		return r, err
	}
	if r.FilesQueueURL, r.FilesQueueARN, err = p.queue(ctx, n.FilesQueue, map[string]string{
		"VisibilityTimeout":      seconds(s.FilesVisibility),
		"MessageRetentionPeriod": seconds(s.QueueRetention),
		"RedrivePolicy":          redrivePolicy(r.FilesDLQARN, s.MaxReceiveCount),
	}); err != nil {
		return r, err
	}
	if r.OrdersQueueURL, r.OrdersQueueARN, err = p.queue(ctx, n.OrdersQueue, map[string]string{
		"VisibilityTimeout":      seconds(s.OrdersVisibility),
		"MessageRetentionPeriod": seconds(s.QueueRetention),
		"RedrivePolicy":          redrivePolicy(r.OrdersDLQARN, s.MaxReceiveCount),
	}); err != nil {
		return r, err
	}
	if err = p.setQueuePolicy(ctx, r.FilesQueueURL, r.FilesQueueARN, r.TopicARN); err != nil {
		return r, err
	}
	if r.SubscriptionARN, err = p.subscribe(ctx, r.TopicARN, r.FilesQueueARN); err != nil {
		return r, err
	}
	if err = p.notify(ctx, n.Bucket, r.TopicARN); err != nil {
		return r, err
	}
	tables := dynamodb.NewFromConfig(cfg)
	if err = delivery.CreateTable(ctx, tables, n.Deliveries); err != nil {
		return r, fmt.Errorf("provision: %w", err)
	}
	r.DeliveryTable = n.Deliveries
	if err = governor.CreateTable(ctx, tables, n.Governor); err != nil {
		return r, err
	}
	r.GovernorTable = n.Governor
	return r, nil
}

type provisioner struct {
	s3  *s3.Client
	sns *sns.Client
	sqs *sqs.Client
}

func (p provisioner) bucket(ctx context.Context, name, region string) error {
	in := &s3.CreateBucketInput{Bucket: &name}
	if region != "" && region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{
			LocationConstraint: s3types.BucketLocationConstraint(region),
		}
	}
	if _, err := p.s3.CreateBucket(ctx, in); err != nil {
		var owned *s3types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	if _, err := p.s3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  &name,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	}); err != nil {
		return fmt.Errorf("enable versioning of bucket %s: %w", name, err)
	}
	return nil
}

// topic creates the topic (CreateTopic returns an existing one) and lets the bucket publish to it.
func (p provisioner) topic(ctx context.Context, name, bucket string) (string, error) {
	out, err := p.sns.CreateTopic(ctx, &sns.CreateTopicInput{Name: &name})
	if err != nil {
		return "", fmt.Errorf("create topic %s: %w", name, err)
	}
	arn := aws.ToString(out.TopicArn)
	policy := mustJSON(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":       "AllowBucketNotifications",
			"Effect":    "Allow",
			"Principal": map[string]any{"Service": "s3.amazonaws.com"},
			"Action":    "sns:Publish",
			"Resource":  arn,
			"Condition": map[string]any{"ArnLike": map[string]any{"aws:SourceArn": "arn:aws:s3:::" + bucket}},
		}},
	})
	if _, err := p.sns.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{
		TopicArn: &arn, AttributeName: aws.String("Policy"), AttributeValue: &policy,
	}); err != nil {
		return "", fmt.Errorf("set policy of topic %s: %w", name, err)
	}
	return arn, nil
}

// queue creates the queue with attrs, or finds it and sets attrs, and returns its URL and ARN.
func (p provisioner) queue(ctx context.Context, name string, attrs map[string]string) (url, arn string, err error) {
	created, err := p.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	var exists *sqstypes.QueueNameExists
	switch {
	case errors.As(err, &exists):
		// The queue exists with other attributes (older settings): find it and set them.
		got, err := p.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
		if err != nil {
			return "", "", fmt.Errorf("find queue %s: %w", name, err)
		}
		url = aws.ToString(got.QueueUrl)
		if _, err := p.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: attrs}); err != nil {
			return "", "", fmt.Errorf("set attributes of queue %s: %w", name, err)
		}
	case err != nil:
		return "", "", fmt.Errorf("create queue %s: %w", name, err)
	default:
		// Created, or found with equal attributes.
		url = aws.ToString(created.QueueUrl)
	}
	a, err := p.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("get arn of queue %s: %w", name, err)
	}
	return url, a.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
}

// setQueuePolicy lets the topic (and only it) send to the queue.
func (p provisioner) setQueuePolicy(ctx context.Context, url, queueARN, topicARN string) error {
	policy := mustJSON(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":       "AllowTopic",
			"Effect":    "Allow",
			"Principal": map[string]any{"Service": "sns.amazonaws.com"},
			"Action":    "sqs:SendMessage",
			"Resource":  queueARN,
			"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": topicARN}},
		}},
	})
	if _, err := p.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{
		QueueUrl: &url, Attributes: map[string]string{"Policy": policy},
	}); err != nil {
		return fmt.Errorf("set policy of queue %s: %w", queueARN, err)
	}
	return nil
}

// subscribe subscribes the queue to the topic with raw message delivery, or finds the
// subscription and turns raw delivery on.
func (p provisioner) subscribe(ctx context.Context, topicARN, queueARN string) (string, error) {
	pages := sns.NewListSubscriptionsByTopicPaginator(p.sns, &sns.ListSubscriptionsByTopicInput{TopicArn: &topicARN})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("list subscriptions of topic %s: %w", topicARN, err)
		}
		for _, s := range page.Subscriptions {
			if aws.ToString(s.Protocol) != "sqs" || aws.ToString(s.Endpoint) != queueARN {
				continue
			}
			if _, err := p.sns.SetSubscriptionAttributes(ctx, &sns.SetSubscriptionAttributesInput{
				SubscriptionArn: s.SubscriptionArn,
				AttributeName:   aws.String("RawMessageDelivery"),
				AttributeValue:  aws.String("true"),
			}); err != nil {
				return "", fmt.Errorf("set raw delivery of subscription %s: %w", aws.ToString(s.SubscriptionArn), err)
			}
			return aws.ToString(s.SubscriptionArn), nil
		}
	}
	out, err := p.sns.Subscribe(ctx, &sns.SubscribeInput{
		TopicArn:              &topicARN,
		Protocol:              aws.String("sqs"),
		Endpoint:              &queueARN,
		Attributes:            map[string]string{"RawMessageDelivery": "true"},
		ReturnSubscriptionArn: true,
	})
	if err != nil {
		return "", fmt.Errorf("subscribe %s to topic %s: %w", queueARN, topicARN, err)
	}
	return aws.ToString(out.SubscriptionArn), nil
}

// notify sends the bucket's ObjectCreated events under UploadsPrefix to the topic.
func (p provisioner) notify(ctx context.Context, bucket, topicARN string) error {
	if _, err := p.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: &bucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{
			TopicConfigurations: []s3types.TopicConfiguration{{
				Id:       aws.String("uploads"),
				TopicArn: &topicARN,
				Events:   []s3types.Event{"s3:ObjectCreated:*"},
				Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{
					FilterRules: []s3types.FilterRule{{Name: s3types.FilterRuleNamePrefix, Value: aws.String(UploadsPrefix)}},
				}},
			}},
		},
	}); err != nil {
		return fmt.Errorf("set notification of bucket %s: %w", bucket, err)
	}
	return nil
}

func seconds(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

func redrivePolicy(dlqARN string, maxReceiveCount int) string {
	return mustJSON(map[string]any{"deadLetterTargetArn": dlqARN, "maxReceiveCount": maxReceiveCount})
}

// mustJSON marshals values built here from strings, numbers, maps and slices, which cannot fail.
func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

package main

import (
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/orderpipe/orderpipe/pkg/pipeline"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// S3 layout of the bucket (docs/CONTRACTS.md).
const (
	PrefixUploads = pipeline.UploadsPrefix
	PrefixRejects = "rejects/"
	PrefixReports = "reports/"
	PrefixState   = "state/"
	// PrefixAudit holds redrive's move records (kept: no expiry).
	PrefixAudit = redrive.DefaultJournalPrefix
)

// UploadsProps configures Uploads. Zero durations take the defaults noted.
type UploadsProps struct {
	Settings pipeline.Settings // FilesVisibility, QueueRetention, DLQRetention, MaxReceiveCount
	// OutputExpiry expires rejects/, reports/ and state/ objects (default 90 days).
	OutputExpiry time.Duration
	// NoncurrentExpiry expires noncurrent object versions (default 30 days).
	NoncurrentExpiry time.Duration
	// AccessLogExpiry expires server access logs (default 365 days).
	AccessLogExpiry time.Duration
}

// Uploads is where order files arrive and how ingest hears of them: the bucket (versioned,
// SSE-S3, TLS-only, no public access, access-logged), an encrypted SNS topic that only this
// bucket may publish to, and the files queue (+DLQ) subscribed to it with raw message delivery.
//
// Encryption: the bucket uses SSE-S3. The objects are read by ingest only, and SSE-KMS would add a
// KMS call per GetObject/PutObject (ingest writes checkpoints often) and key grants everywhere,
// without changing who can read them (IAM and the bucket policy do). The topic, however, must use
// a customer managed key: S3 publishes to it, and the AWS managed SNS key's policy cannot let S3
// use it. Key holds that key, whose policy lets s3.amazonaws.com generate data keys only for
// this bucket in this account.
type Uploads struct {
	constructs.Construct
	Bucket     awss3.Bucket
	AccessLogs awss3.Bucket
	Key        awskms.Key
	Topic      awssns.Topic
	FilesQueue awssqs.Queue
	FilesDLQ   awssqs.Queue
	// SubscriptionDLQ holds the S3 events SNS could not deliver to the files queue (its
	// retries exhausted, or the queue refused them): files that would otherwise never be
	// ingested.
	SubscriptionDLQ awssqs.Queue
}

// NewUploads creates the bucket, its access-log bucket, the topic and the files queue.
func NewUploads(scope constructs.Construct, id string, props UploadsProps) *Uploads {
	c := constructs.NewConstruct(scope, jsii.String(id))
	u := &Uploads{Construct: c}
	outputs := orDefault(props.OutputExpiry, 90*24*time.Hour)

	u.AccessLogs = awss3.NewBucket(c, jsii.String("AccessLogs"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:        awss3.BucketEncryption_S3_MANAGED, // S3 log delivery supports only SSE-S3
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:         jsii.String("expire-logs"),
			Expiration: days(orDefault(props.AccessLogExpiry, 365*24*time.Hour)),
		}},
	})
	// cdk-nag's S1 (access logs) accepts a bucket that is itself a server access log target.

	rules := []*awss3.LifecycleRule{{
		Id:                                  jsii.String("noncurrent-and-incomplete"),
		NoncurrentVersionExpiration:         days(orDefault(props.NoncurrentExpiry, 30*24*time.Hour)),
		AbortIncompleteMultipartUploadAfter: days(7 * 24 * time.Hour),
	}}
	for _, prefix := range []string{PrefixRejects, PrefixReports, PrefixState} {
		rules = append(rules, &awss3.LifecycleRule{
			Id:         jsii.String("expire-" + prefix[:len(prefix)-1]),
			Prefix:     jsii.String(prefix),
			Expiration: days(outputs),
		})
	}
	u.Bucket = awss3.NewBucket(c, jsii.String("Bucket"), &awss3.BucketProps{
		BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:             awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:             jsii.Bool(true),
		MinimumTLSVersion:      jsii.Number(1.2),
		ObjectOwnership:        awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Versioned:              jsii.Bool(true),
		RemovalPolicy:          awscdk.RemovalPolicy_RETAIN,
		ServerAccessLogsBucket: u.AccessLogs,
		ServerAccessLogsPrefix: jsii.String("uploads-bucket/"),
		LifecycleRules:         &rules,
	})

	stack := awscdk.Stack_Of(c)
	fromThisBucket := &map[string]any{
		"ArnLike":      map[string]any{"aws:SourceArn": u.Bucket.BucketArn()},
		"StringEquals": map[string]any{"aws:SourceAccount": stack.Account()},
	}
	s3Principal := awsiam.NewServicePrincipal(jsii.String("s3.amazonaws.com"), nil)

	u.Key = awskms.NewKey(c, jsii.String("TopicKey"), &awskms.KeyProps{
		Description:       jsii.String("orderpipe uploads topic: S3 event notifications"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	u.Key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("S3PublishesEncryptedNotifications"),
		Principals: &[]awsiam.IPrincipal{s3Principal},
		Actions:    jsii.Strings("kms:GenerateDataKey", "kms:Decrypt"),
		Resources:  jsii.Strings("*"), // in a key policy, "*" is this key
		Conditions: fromThisBucket,
	}), nil)

	u.Topic = awssns.NewTopic(c, jsii.String("Topic"), &awssns.TopicProps{
		MasterKey:  u.Key,
		EnforceSSL: jsii.Bool(true),
	})
	u.Bucket.AddEventNotification(awss3.EventType_OBJECT_CREATED,
		&topicFromBucket{topic: u.Topic, allow: awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("OnlyTheUploadsBucketPublishes"),
			Principals: &[]awsiam.IPrincipal{s3Principal},
			Actions:    jsii.Strings("sns:Publish"),
			Resources:  &[]*string{u.Topic.TopicArn()},
			Conditions: fromThisBucket,
		})},
		&awss3.NotificationKeyFilter{Prefix: jsii.String(PrefixUploads)})

	files := newQueuePair(c, "Files", queueSettings(props.Settings, props.Settings.FilesVisibility))
	u.FilesQueue, u.FilesDLQ = files.Queue, files.DLQ
	u.SubscriptionDLQ = awssqs.NewQueue(c, jsii.String("SubscriptionDLQ"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: seconds(props.Settings.DLQRetention),
		RemovalPolicy:   awscdk.RemovalPolicy_RETAIN,
	})
	suppress(u.SubscriptionDLQ, true, nag("AwsSolutions-SQS3",
		"This queue is the dead-letter queue of the uploads topic's subscription (SNS RedrivePolicy), which cdk-nag does not recognise."))
	u.Topic.AddSubscription(awssnssubscriptions.NewSqsSubscription(u.FilesQueue, &awssnssubscriptions.SqsSubscriptionProps{
		RawMessageDelivery: jsii.Bool(true),
		DeadLetterQueue:    u.SubscriptionDLQ,
	}))
	return u
}

// topicFromBucket is an S3 notification destination (awss3.IBucketNotificationDestination)
// like awss3notifications.SnsDestination, but its topic policy statement also pins
// aws:SourceAccount, so a bucket of the same name in another account cannot publish.
type topicFromBucket struct {
	topic awssns.Topic
	allow awsiam.PolicyStatement
}

// Bind implements awss3.IBucketNotificationDestination.
func (d *topicFromBucket) Bind(_ constructs.Construct, _ interfacesawss3.IBucketRef) *awss3.BucketNotificationDestinationConfig {
	res := d.topic.AddToResourcePolicy(d.allow)
	deps := []constructs.IDependable{}
	if res.PolicyDependable != nil {
		deps = append(deps, res.PolicyDependable)
	}
	return &awss3.BucketNotificationDestinationConfig{
		Arn:          d.topic.TopicArn(),
		Type:         awss3.BucketNotificationDestinationType_TOPIC,
		Dependencies: &deps,
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// days converts d to a CDK Duration in whole days (S3 lifecycle rules count days).
func days(d time.Duration) awscdk.Duration {
	return awscdk.Duration_Days(jsii.Number(float64((d + 24*time.Hour - 1) / (24 * time.Hour))))
}

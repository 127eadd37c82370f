package main

import (
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// queuePair is a source queue and its dead-letter queue, both encrypted with SQS-managed keys
// (SSE-SQS) and TLS-only.
//
// Why SSE-SQS and not a customer KMS key: the files queue is written by SNS and read by Lambda;
// with SSE-SQS neither needs a key grant, whereas a customer key would need a key policy for SNS
// plus kms:Decrypt for every consumer, for no gain in who can read the messages (the queue
// policy and IAM already decide that).
type queuePair struct {
	Queue awssqs.Queue
	DLQ   awssqs.Queue
}

type queuePairProps struct {
	Visibility      time.Duration
	Retention       time.Duration
	DLQRetention    time.Duration
	MaxReceiveCount int
}

// queueSettings is the queuePairProps of a source queue with the given visibility timeout.
func queueSettings(s pipeline.Settings, visibility time.Duration) queuePairProps {
	return queuePairProps{
		Visibility:      visibility,
		Retention:       s.QueueRetention,
		DLQRetention:    s.DLQRetention,
		MaxReceiveCount: s.MaxReceiveCount,
	}
}

func newQueuePair(scope constructs.Construct, id string, p queuePairProps) queuePair {
	dlq := awssqs.NewQueue(scope, jsii.String(id+"DLQ"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: seconds(p.DLQRetention),
		RemovalPolicy:   awscdk.RemovalPolicy_RETAIN,
	})
	q := awssqs.NewQueue(scope, jsii.String(id), &awssqs.QueueProps{
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		VisibilityTimeout: seconds(p.Visibility),
		RetentionPeriod:   seconds(p.Retention),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue:           dlq,
			MaxReceiveCount: jsii.Number(float64(p.MaxReceiveCount)),
		},
	})
	return queuePair{Queue: q, DLQ: dlq}
}

// seconds converts d to a CDK Duration, whole seconds.
func seconds(d time.Duration) awscdk.Duration {
	return awscdk.Duration_Seconds(jsii.Number(d.Round(time.Second).Seconds()))
}

// OrderQueueProps configures OrderQueue from the deployment settings.
type OrderQueueProps struct {
	Settings pipeline.Settings // OrdersVisibility, QueueRetention, DLQRetention, MaxReceiveCount
}

// OrderQueue is the orders queue (one message per order, written by ingest and redrive, read by
// dispatch) and its dead-letter queue (parked orders, read by redrive and the CLI).
type OrderQueue struct {
	constructs.Construct
	Queue awssqs.Queue
	DLQ   awssqs.Queue
}

// NewOrderQueue creates the orders queue and its DLQ.
func NewOrderQueue(scope constructs.Construct, id string, props OrderQueueProps) *OrderQueue {
	c := constructs.NewConstruct(scope, jsii.String(id))
	p := newQueuePair(c, "Orders", queueSettings(props.Settings, props.Settings.OrdersVisibility))
	return &OrderQueue{Construct: c, Queue: p.Queue, DLQ: p.DLQ}
}

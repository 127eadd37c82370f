package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/orderpipe/orderpipe/pkg/delivery"
)

// Deliveries is the DynamoDB table of the delivery records (pkg/delivery): one item per order
// content, partition key delivery.KeyAttribute, on-demand, encrypted with an AWS managed key,
// TTL on delivery.ExpiresAttribute, point-in-time recovery, kept when the stack is deleted (it is
// what stops a redeployed pipeline from sending a delivered order again). Only the dispatch
// function is granted it (GetItem, UpdateItem, DeleteItem).
type Deliveries struct {
	constructs.Construct
	Table awsdynamodb.Table
}

// NewDeliveries creates the delivery record table.
func NewDeliveries(scope constructs.Construct, id string) *Deliveries {
	c := constructs.NewConstruct(scope, jsii.String(id))
	t := awsdynamodb.NewTable(c, jsii.String("Table"), &awsdynamodb.TableProps{
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String(delivery.KeyAttribute), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		Encryption:          awsdynamodb.TableEncryption_AWS_MANAGED,
		TimeToLiveAttribute: jsii.String(delivery.ExpiresAttribute),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	return &Deliveries{Construct: c, Table: t}
}

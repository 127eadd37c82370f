package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/orderpipe/orderpipe/pkg/governor"
)

// GovernorProps configures Governor.
type GovernorProps struct {
	// PointInTimeRecovery keeps 35 days of the record's history (costs next to nothing for one
	// small item; the record is rebuilt safely when lost, so it is a convenience).
	PointInTimeRecovery bool
}

// Governor is the DynamoDB table of the order API's shared schedule, pause, rate and breaker
// (pkg/governor): one item, partition key governor.KeyAttribute, on-demand, encrypted with an
// AWS owned key. Only the dispatch function is granted it (GetItem and UpdateItem).
type Governor struct {
	constructs.Construct
	Table awsdynamodb.Table
}

// NewGovernor creates the governor's table.
func NewGovernor(scope constructs.Construct, id string, props GovernorProps) *Governor {
	c := constructs.NewConstruct(scope, jsii.String(id))
	t := awsdynamodb.NewTable(c, jsii.String("Table"), &awsdynamodb.TableProps{
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String(governor.KeyAttribute), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		Encryption:   awsdynamodb.TableEncryption_AWS_MANAGED,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(props.PointInTimeRecovery),
		},
		// The record holds no orders: a new stack starts a fresh schedule.
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	if !props.PointInTimeRecovery {
		suppress(t, true, nag("AwsSolutions-DDB3", "The governor record is pacing state, rebuilt safely when missing or unreadable (pkg/governor); point-in-time recovery is optional (context governorPitr)."))
	}
	return &Governor{Construct: c, Table: t}
}

package delivery

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/orderpipe/orderpipe/internal/ddbtable"
)

// TableAPI is the part of the DynamoDB client CreateTable uses (provisioning, not dispatch).
type TableAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// CreateTable creates the delivery table as the CDK app deploys it (partition key KeyAttribute,
// a string; on-demand billing; server-side encryption; TTL on ExpiresAttribute), waits until it
// is active and turns TTL on. A table that exists already is accepted as it is.
func CreateTable(ctx context.Context, c TableAPI, name string) error {
	created, err := ddbtable.Create(ctx, c, name, KeyAttribute, "delivery table")
	if err != nil {
		return err
	}
	if !created {
		return nil
	}
	_, err = c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(ExpiresAttribute), Enabled: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("turn on TTL of delivery table %s: %w", name, err)
	}
	return nil
}

// Package ddbtable creates the project's small DynamoDB tables locally as the CDK app deploys
// them: one string partition key, on-demand billing, server-side encryption.
package ddbtable

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// API is the part of the DynamoDB client Create uses.
type API interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// Create creates table name with the string partition key key and waits until it is active. A
// table that exists already is accepted as it is; created says which. what names the table in
// errors ("governor table").
func Create(ctx context.Context, c API, name, key, what string) (created bool, err error) {
	_, err = c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(key), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(key), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
		SSESpecification:     &types.SSESpecification{Enabled: aws.Bool(true)},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return false, fmt.Errorf("create %s %s: %w", what, name, err)
	}
	for {
		out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return false, fmt.Errorf("describe %s %s: %w", what, name, err)
		}
		if out.Table != nil && out.Table.TableStatus == types.TableStatusActive {
			return inUse == nil, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("%s %s not active: %w", what, name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

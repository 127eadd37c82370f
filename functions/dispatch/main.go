package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/lambdalog"
	"github.com/orderpipe/orderpipe/pkg/delivery"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
)

func main() {
	d, err := wire(context.Background())
	if err != nil {
		slog.Error("dispatch: cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(d.Handle)
}

// wire builds the Dispatcher once per process. With GOVERNOR_TABLE every instance paces on the
// shared schedule; without it, this instance paces alone at API_RATE/API_INSTANCES.
func wire(ctx context.Context) (*dispatch.Dispatcher, error) {
	cfg, err := dispatch.LoadConfig(os.Getenv)
	if err != nil {
		return nil, err
	}
	slog.SetDefault(lambdalog.New(cfg.LogLevel))
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	var secrets orderapi.SecretsAPI
	if cfg.APISecretARN != "" {
		secrets = secretsmanager.NewFromConfig(awsCfg)
	}
	api, err := orderapi.New(cfg.OrderAPI(), orderapi.Options{Secrets: secrets})
	if err != nil {
		return nil, fmt.Errorf("order API client: %w", err)
	}
	var opts dispatch.Options
	if cfg.DeliveryTable != "" {
		opts.Ledger = delivery.New(dynamodb.NewFromConfig(awsCfg), cfg.DeliveryTable, nil)
	}
	if cfg.GovernorTable != "" {
		// One store per process: its writes go one at a time (governor.DynamoStore).
		store := governor.NewDynamoStore(dynamodb.NewFromConfig(awsCfg), cfg.GovernorTable, "")
		if opts.Governor, err = governor.New(cfg.Governor(cfg.APIRate), store, nil); err != nil {
			return nil, err
		}
	}
	return dispatch.New(cfg, sqs.NewFromConfig(awsCfg), api, opts), nil
}

// Command redrive is the redrive Lambda function: it moves parked orders from the orders DLQ
// back to the orders queue (package redrive). It only wires configuration, clients and logger.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/lambdalog"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

func main() {
	h, err := setup(context.Background())
	if err != nil {
		slog.Error("redrive: setup", "error", err)
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

func setup(ctx context.Context) (*redrive.Redriver, error) {
	cfg, err := redrive.LoadConfig(os.Getenv)
	if err != nil {
		return nil, err
	}
	// Lambda's structured handler (request id on every line) filtered at LOG_LEVEL.
	slog.SetDefault(lambdalog.New(cfg.LogLevel))
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	var journal redrive.Journal
	if cfg.AuditBucket != "" {
		journal = redrive.S3Journal{Client: s3.NewFromConfig(awsCfg), Bucket: cfg.AuditBucket}
	}
	return redrive.New(cfg, sqs.NewFromConfig(awsCfg), redrive.Options{Journal: journal}), nil
}

// Command ingest is the ingest Lambda function: it reads order files named by files-queue
// messages and sends their orders to the orders queue (see pkg/ingest).
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
	"github.com/orderpipe/orderpipe/pkg/ingest"
)

func main() {
	if err := run(); err != nil {
		slog.Error("ingest: start", "error", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := ingest.LoadConfig(os.Getenv)
	if err != nil {
		return err
	}
	slog.SetDefault(lambdalog.New(cfg.LogLevel))
	ingest.ApplyMemoryLimit(os.Getenv)
	awsCfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		return fmt.Errorf("load AWS config: %w", err)
	}
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = os.Getenv("AWS_ENDPOINT_URL") != "" // the local stand-in needs it
	})
	h := ingest.New(cfg, s3c, sqs.NewFromConfig(awsCfg), ingest.Options{})
	lambda.Start(h.Handle)
	return nil
}

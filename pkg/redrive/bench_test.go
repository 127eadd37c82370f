package redrive_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/time/rate"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// BenchmarkSelectiveMove measures the selective move against moto with no pacing: receive,
// record, send, record, delete per message (the records in an S3Journal), 50 messages a run
// (Max, so no final empty receive is timed). In production REDRIVE_RATE paces it far below
// this.
func BenchmarkSelectiveMove(b *testing.B) {
	const n = 50
	awsCfg := awstest.Config(b)
	c := awstest.SQS(awsCfg)
	q, _ := awstest.NewQueue(b, awsCfg, nil)
	dlq, _ := awstest.NewQueue(b, awsCfg, nil)
	r := redrive.New(redrive.Config{QueueURL: q, DLQURL: dlq}, c, redrive.Options{
		Limiter: rate.NewLimiter(rate.Inf, 1), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Journal: redrive.S3Journal{Client: awstest.S3(awsCfg), Bucket: awstest.NewBucket(b, awsCfg)},
	})
	ctx := context.Background()
	moved := 0
	for b.Loop() {
		b.StopTimer()
		for i := 0; i < n; i += 10 {
			var entries []sqstypes.SendMessageBatchRequestEntry
			for j := range 10 {
				id := fmt.Sprintf("B-%d", i+j)
				entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
					Id:          aws.String(id),
					MessageBody: aws.String(fmt.Sprintf(`{"id":%q}`, id)),
					MessageAttributes: map[string]sqstypes.MessageAttributeValue{
						order.AttrOrderID:      {DataType: aws.String("String"), StringValue: aws.String(id)},
						order.AttrFailureClass: {DataType: aws.String("String"), StringValue: aws.String(order.ClassExhausted)},
					},
				})
			}
			if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &dlq, Entries: entries}); err != nil {
				b.Fatalf("park: %v", err)
			}
		}
		b.StartTimer()
		res, err := r.Run(ctx, redrive.Request{Max: n})
		if err != nil || res.Moved != n {
			b.Fatalf("Run: moved %d, error %v; want %d, nil", res.Moved, err, n)
		}
		moved += res.Moved
	}
	b.ReportMetric(float64(moved)/b.Elapsed().Seconds(), "msgs/s")
}

package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
)

// BenchmarkPeek measures a full peek of a dead-letter queue against the stand-in: receive every
// message, then make them all visible again. The final empty receive waits its 1 s long poll.
func BenchmarkPeek(b *testing.B) {
	cfg := awstest.Config(b)
	client := awstest.SQS(cfg)
	for _, size := range []int{10, 100} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			url, _ := awstest.NewQueue(b, cfg, nil)
			for i := 0; i < size; i += 10 {
				var entries []sqstypes.SendMessageBatchRequestEntry
				for j := i; j < min(i+10, size); j++ {
					entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String("{}")})
				}
				if _, err := client.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
					b.Fatal(err)
				}
			}
			sc := scanner{sqs: client, queueURL: url, max: size + 10}
			for b.Loop() {
				n, err := sc.scan(context.Background(), func(sqstypes.Message) verdict { return verdict{} })
				if err != nil || n != size {
					b.Fatalf("scanned %d, err %v; want %d", n, err, size)
				}
			}
			b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

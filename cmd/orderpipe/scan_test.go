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

// TestReleaseGoesOnAfterAFailure: one handle the queue refuses must not leave the messages of
// the following batches hidden (dlq ls, status and purge release what they peeked).
func TestReleaseGoesOnAfterAFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := awstest.Config(t)
	client := awstest.SQS(cfg)
	url, _ := awstest.NewQueue(t, cfg, nil)
	for i := range 11 {
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprint(i))}); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	var held []sqstypes.Message
	for len(held) < 11 {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 600, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 0 {
			t.Fatalf("got %d messages, want 11", len(held))
		}
		held = append(held, out.Messages...)
	}
	wantVisible(t, client, url, "0", "after the receives")
	// The first batch of ten carries a handle the queue refuses; the second batch holds two.
	bogus := sqstypes.Message{MessageId: aws.String("bogus"), ReceiptHandle: aws.String("not-a-receipt-handle")}
	msgs := append([]sqstypes.Message{bogus}, held...)
	err := scanner{sqs: client, queueURL: url}.release(ctx, msgs)
	if err == nil {
		t.Errorf("got no error, want the refused handle reported")
	}
	wantVisible(t, client, url, "11", "after the release")
}

package sqsscan_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/sqsscan"
)

// queueWith makes a queue holding n messages with bodies "0".."n-1".
func queueWith(t *testing.T, n int) (*sqs.Client, string) {
	t.Helper()
	cfg := awstest.Config(t)
	client := awstest.SQS(cfg)
	url, _ := awstest.NewQueue(t, cfg, nil)
	for i := range n {
		if _, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprint(i))}); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	return client, url
}

// counts returns the queue's visible and in-flight message counts.
func counts(t *testing.T, client *sqs.Client, url string) (visible, hidden string) {
	t.Helper()
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatalf("get queue attributes: %v", err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)],
		out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)]
}

// TestScan reads a queue to its end: every message is returned once, the taken one is deleted
// and the others are visible again after Release.
func TestScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, url := queueWith(t, 13)
	s := sqsscan.New(client, url)
	var bodies []string
	for {
		fresh, received, err := s.Receive(ctx, 10, time.Minute, time.Second)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if received == 0 || len(fresh) == 0 {
			break
		}
		for _, m := range fresh {
			bodies = append(bodies, aws.ToString(m.Body))
			if aws.ToString(m.Body) == "7" {
				handle, ok := s.Take(aws.ToString(m.MessageId))
				if !ok || handle != aws.ToString(m.ReceiptHandle) {
					t.Fatalf("Take = %q, %v; want the message's handle", handle, ok)
				}
				if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: &handle}); err != nil {
					t.Fatalf("delete: %v", err)
				}
			}
			if m.Attributes[string(sqstypes.MessageSystemAttributeNameSentTimestamp)] == "" {
				t.Errorf("message %s came without its system attributes", aws.ToString(m.MessageId))
			}
		}
	}
	slices.Sort(bodies)
	want := []string{"0", "1", "10", "11", "12", "2", "3", "4", "5", "6", "7", "8", "9"}
	if !slices.Equal(bodies, want) {
		t.Errorf("bodies: got %v, want each of %v once", bodies, want)
	}
	if got := s.Held(); got != 12 {
		t.Errorf("Held: got %d, want 12", got)
	}
	if v, h := counts(t, client, url); v != "0" || h != "12" {
		t.Errorf("before Release: %s visible, %s hidden; want 0, 12", v, h)
	}
	released, err := s.Release(ctx)
	if err != nil || released != 12 {
		t.Errorf("Release = %d, %v; want 12, nil", released, err)
	}
	if v, h := counts(t, client, url); v != "12" || h != "0" {
		t.Errorf("after Release: %s visible, %s hidden; want 12, 0", v, h)
	}
	if got := s.Held(); got != 0 {
		t.Errorf("Held after Release: got %d, want 0", got)
	}
}

// TestReleaseGoesOnAfterAFailure: one handle the queue refuses must not leave the messages of
// the other batches hidden (dlq ls, status and purge release what they peeked).
func TestReleaseGoesOnAfterAFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, url := queueWith(t, 11)
	handles := map[string]string{"bogus": "not-a-receipt-handle"}
	for len(handles) < 12 {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 600, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 0 {
			t.Fatalf("got %d messages, want 11", len(handles)-1)
		}
		for _, m := range out.Messages {
			handles[aws.ToString(m.MessageId)] = aws.ToString(m.ReceiptHandle)
		}
	}
	if v, _ := counts(t, client, url); v != "0" {
		t.Fatalf("after the receives: %s visible, want 0", v)
	}
	released, err := sqsscan.Release(ctx, client, url, handles)
	if err == nil {
		t.Errorf("got no error, want the refused handle reported")
	}
	if released != 11 {
		t.Errorf("released: got %d, want 11", released)
	}
	if v, _ := counts(t, client, url); v != "11" {
		t.Errorf("after the release: %s visible, want 11", v)
	}
}

// TestReleaseAfterCancel: a release runs even when the caller's context is already cancelled.
func TestReleaseAfterCancel(t *testing.T) {
	t.Parallel()
	client, url := queueWith(t, 3)
	s := sqsscan.New(client, url)
	ctx, cancel := context.WithCancel(context.Background())
	for s.Held() < 3 {
		if _, received, err := s.Receive(ctx, 10, time.Minute, time.Second); err != nil || received == 0 {
			t.Fatalf("Receive: %d, %v", received, err)
		}
	}
	cancel()
	if released, err := s.Release(ctx); err != nil || released != 3 {
		t.Errorf("Release after cancel = %d, %v; want 3, nil", released, err)
	}
}

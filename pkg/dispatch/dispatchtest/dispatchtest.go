// Package dispatchtest helps test the dispatch handler against real SQS (the local stand-in):
// sending order messages, receiving one the way the event source mapping does (batch size 1,
// every attribute), turning it into the Lambda event, and deleting what the handler reports as
// done. Test code only.
package dispatchtest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/pkg/order"
)

// Handler is the dispatch handler's shape.
type Handler func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

// SendOrder sends an order message with the contract's attributes (docs/CONTRACTS.md) and returns
// its message id. extra attributes are added (or replace).
func SendOrder(t testing.TB, c *sqs.Client, queueURL, id, body string, extra map[string]types.MessageAttributeValue) string {
	t.Helper()
	attrs := map[string]types.MessageAttributeValue{
		order.AttrOrderID:       {DataType: aws.String("String"), StringValue: aws.String(id)},
		order.AttrSource:        {DataType: aws.String("String"), StringValue: aws.String("s3://uploads-bucket/uploads/orders.jsonl")},
		order.AttrSourceVersion: {DataType: aws.String("String"), StringValue: aws.String(order.NullVersion)},
		order.AttrLine:          {DataType: aws.String("Number"), StringValue: aws.String("7")},
	}
	for k, v := range extra {
		attrs[k] = v
	}
	out, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &queueURL, MessageBody: &body, MessageAttributes: attrs})
	if err != nil {
		t.Fatalf("send order %s: %v", id, err)
	}
	return *out.MessageId
}

// Receive receives up to max messages with every system and message attribute.
func Receive(ctx context.Context, c *sqs.Client, queueURL string, max, waitSeconds int32) ([]types.Message, error) {
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    &queueURL,
		MaxNumberOfMessages:         max,
		WaitTimeSeconds:             waitSeconds,
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	})
	if err != nil {
		return nil, err
	}
	return out.Messages, nil
}

// Event is the Lambda SQS event for messages received from the queue with ARN queueARN.
func Event(queueARN string, msgs []types.Message) events.SQSEvent {
	var ev events.SQSEvent
	for _, m := range msgs {
		e := events.SQSMessage{
			MessageId:         aws.ToString(m.MessageId),
			ReceiptHandle:     aws.ToString(m.ReceiptHandle),
			Body:              aws.ToString(m.Body),
			Md5OfBody:         aws.ToString(m.MD5OfBody),
			Attributes:        map[string]string{},
			MessageAttributes: map[string]events.SQSMessageAttribute{},
			EventSource:       "aws:sqs",
			EventSourceARN:    queueARN,
			AWSRegion:         "us-east-1",
		}
		for k, v := range m.Attributes {
			e.Attributes[k] = v
		}
		for k, v := range m.MessageAttributes {
			e.MessageAttributes[k] = events.SQSMessageAttribute{DataType: aws.ToString(v.DataType), StringValue: v.StringValue, BinaryValue: v.BinaryValue}
		}
		ev.Records = append(ev.Records, e)
	}
	return ev
}

// HandleOnce does one poll as the event source mapping would: receive up to batch messages
// (waiting up to waitSeconds), call h with ctx, and delete every message not in its
// BatchItemFailures. It returns the messages handed to h and h's response. A handler error
// leaves every message.
func HandleOnce(ctx context.Context, c *sqs.Client, queueURL, queueARN string, batch, waitSeconds int32, h Handler) ([]types.Message, events.SQSEventResponse, error) {
	return HandleOnceWithin(ctx, c, queueURL, queueARN, batch, waitSeconds, 0, h)
}

// HandleOnceWithin is HandleOnce where h's context has a deadline timeout after the start of the
// invocation (after the receive), as a function with that timeout would; 0 means none.
func HandleOnceWithin(ctx context.Context, c *sqs.Client, queueURL, queueARN string, batch, waitSeconds int32, timeout time.Duration, h Handler) ([]types.Message, events.SQSEventResponse, error) {
	msgs, err := Receive(ctx, c, queueURL, batch, waitSeconds)
	if err != nil || len(msgs) == 0 {
		return nil, events.SQSEventResponse{}, err
	}
	ictx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		ictx, cancel = context.WithTimeout(ctx, timeout)
	}
	resp, err := h(ictx, Event(queueARN, msgs))
	cancel()
	if err != nil {
		return msgs, resp, err
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, m := range msgs {
		if failed[aws.ToString(m.MessageId)] {
			continue
		}
		if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &queueURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
			return msgs, resp, err
		}
	}
	return msgs, resp, nil
}

// Attr returns the string value of a message attribute, "" when absent.
func Attr(m types.Message, name string) string {
	if a, ok := m.MessageAttributes[name]; ok {
		return aws.ToString(a.StringValue)
	}
	return ""
}

// ReceiveCount is the message's ApproximateReceiveCount, 0 when absent.
func ReceiveCount(m types.Message) int {
	n, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	return n
}

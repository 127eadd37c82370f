package local

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"
)

// testQueue creates a queue on the stand-in with the given visibility timeout.
func testQueue(t testing.TB, c *sqs.Client, visibility time.Duration) (url, arn string) {
	t.Helper()
	ctx := context.Background()
	name := awstestName(t)
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: map[string]string{
		"VisibilityTimeout": strconv.Itoa(int(visibility / time.Second)),
	}})
	if err != nil {
		t.Fatalf("create queue %s: %v", name, err)
	}
	a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("get arn of queue %s: %v", name, err)
	}
	return *out.QueueUrl, a.Attributes["QueueArn"]
}

// send sends one message per body, each with an OrderId string attribute equal to the body.
func send(t testing.TB, c *sqs.Client, url string, bodies ...string) {
	t.Helper()
	for i := 0; i < len(bodies); i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j, b := range bodies[i:min(i+10, len(bodies))] {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
				Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(b),
				MessageAttributes: map[string]sqstypes.MessageAttributeValue{
					"OrderId": {DataType: aws.String("String"), StringValue: aws.String(b)},
				},
			})
		}
		out, err := c.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("send messages: %v %v", err, out)
		}
	}
}

// depth returns visible + in-flight messages of the queue.
func depth(t testing.TB, c *sqs.Client, url string) int {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatalf("get depth of %s: %v", url, err)
	}
	visible, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	hidden, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return visible + hidden
}

// receiveBodies receives until it has n messages or a receive (long polling 3 s) returns none,
// and returns their bodies sorted (nil for none). The messages stay on the queue.
func receiveBodies(t *testing.T, c *sqs.Client, url string, n int) []string {
	t.Helper()
	var bodies []string
	for len(bodies) < n {
		out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 3,
		})
		if err != nil {
			t.Fatalf("receive from %s: %v", url, err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
		}
	}
	sort.Strings(bodies)
	return bodies
}

// testLogger logs to the test's output, shown when it fails or with -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// checkKept checks that exactly the messages with bodies kept are left on the queue: they come
// back after the visibility timeout, and nothing else is there, visible or not.
func checkKept(t *testing.T, c *sqs.Client, url string, kept []string) {
	t.Helper()
	if len(kept) > 0 {
		if diff := cmp.Diff(kept, receiveBodies(t, c, url, len(kept))); diff != "" {
			t.Errorf("messages back after the visibility timeout (-want +got):\n%s", diff)
		}
	}
	if got, want := depth(t, c, url), len(kept); got != want {
		t.Errorf("queue depth: got %d, want %d", got, want)
	}
}

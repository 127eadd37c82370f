package redrive_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// parked is one fixture message of testdata/parked.json.
type parked struct {
	Body       string            `json:"body"`
	Attributes map[string]string `json:"attributes"`
}

// numberAttrs are the attributes sent with DataType Number (docs/CONTRACTS.md).
var numberAttrs = []string{order.AttrLine, order.AttrAttempts}

func loadParked(t *testing.T) []parked {
	t.Helper()
	b, err := os.ReadFile("testdata/parked.json")
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	var ps []parked
	if err := json.Unmarshal(b, &ps); err != nil {
		t.Fatalf("decode fixture: %v", err)
	}
	return ps
}

// byOrderID indexes the fixture by order id.
func byOrderID(ps []parked) map[string]parked {
	m := map[string]parked{}
	for _, p := range ps {
		m[p.Attributes[order.AttrOrderID]] = p
	}
	return m
}

func sqsAttrs(attrs map[string]string) map[string]sqstypes.MessageAttributeValue {
	out := map[string]sqstypes.MessageAttributeValue{}
	for k, v := range attrs {
		typ := "String"
		if slices.Contains(numberAttrs, k) {
			typ = "Number"
		}
		out[k] = sqstypes.MessageAttributeValue{DataType: aws.String(typ), StringValue: aws.String(v)}
	}
	return out
}

// plainAttrs turns received attributes back into name -> "Type:value".
func plainAttrs(m sqstypes.Message) map[string]string {
	out := map[string]string{}
	for k, v := range m.MessageAttributes {
		out[k] = aws.ToString(v.DataType) + ":" + aws.ToString(v.StringValue)
	}
	return out
}

// typedAttrs is plainAttrs for fixture attributes.
func typedAttrs(attrs map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range attrs {
		typ := "String"
		if slices.Contains(numberAttrs, k) {
			typ = "Number"
		}
		out[k] = typ + ":" + v
	}
	return out
}

// park sends the fixture messages to the DLQ as dispatch would have parked them, in one batch.
func park(t *testing.T, c *sqs.Client, dlq string, ps []parked) {
	t.Helper()
	var entries []sqstypes.SendMessageBatchRequestEntry
	for i, p := range ps {
		entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(i)),
			MessageBody:       aws.String(p.Body),
			MessageAttributes: sqsAttrs(p.Attributes),
		})
	}
	out, err := c.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(dlq), Entries: entries})
	if err != nil {
		t.Fatalf("park: %v", err)
	}
	if len(out.Failed) > 0 {
		t.Fatalf("park: %d failed: %+v", len(out.Failed), out.Failed)
	}
}

// receiveAll receives every visible message of a queue (hiding them for a minute) and returns
// them by order id. Receiving a message proves it is visible.
func receiveAll(t *testing.T, c *sqs.Client, url string) map[string]sqstypes.Message {
	t.Helper()
	got := map[string]sqstypes.Message{}
	for {
		out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl:              aws.String(url),
			MaxNumberOfMessages:   10,
			VisibilityTimeout:     60,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatalf("receive from %s: %v", url, err)
		}
		if len(out.Messages) == 0 {
			return got
		}
		for _, m := range out.Messages {
			id := aws.ToString(m.MessageAttributes[order.AttrOrderID].StringValue)
			if _, dup := got[id]; dup {
				t.Errorf("order %s received twice from %s", id, url)
			}
			got[id] = m
		}
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// env is one orders queue and its DLQ on the moto stand-in.
type env struct {
	client *sqs.Client
	cfg    redrive.Config
}

func newEnv(t *testing.T) env {
	t.Helper()
	awsCfg := awstest.Config(t)
	q, _ := awstest.NewQueue(t, awsCfg, nil)
	dlq, _ := awstest.NewQueue(t, awsCfg, nil)
	return env{
		client: awstest.SQS(awsCfg),
		cfg:    redrive.Config{QueueURL: q, DLQURL: dlq, Rate: redrive.MaxRate},
	}
}

// newJournal returns an S3Journal in a fresh bucket of the stand-in.
func newJournal(t *testing.T) redrive.S3Journal {
	t.Helper()
	cfg := awstest.Config(t)
	return redrive.S3Journal{Client: awstest.S3(cfg), Bucket: awstest.NewBucket(t, cfg)}
}

// newRedriver returns a Redriver with o, logging to the test's output and recording moves in a
// fresh journal unless o says otherwise.
func newRedriver(t *testing.T, cfg redrive.Config, c redrive.SQS, o redrive.Options) *redrive.Redriver {
	if o.Journal == nil {
		o.Journal = newJournal(t)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return redrive.New(cfg, c, o)
}

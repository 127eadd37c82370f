package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/order"
)

// result is one in-process run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI in process with env as its whole environment.
func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runWith(&cli{getenv: func(k string) string { return env[k] }}, args...)
}

// runWith runs c with args, capturing its stdout and stderr.
func runWith(c *cli, args ...string) result {
	var out, errb bytes.Buffer
	c.stdout, c.stderr = &out, &errb
	code := c.main(context.Background(), args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// standIn runs the CLI against the AWS stand-in with the given extra arguments.
func standIn(t *testing.T, args ...string) result {
	t.Helper()
	return runCLI(t, nil, append(args, "--endpoint", awstest.Endpoint())...)
}

// mustJSON decodes a successful run's stdout into v.
func mustJSON(t *testing.T, r result, v any) {
	t.Helper()
	if r.code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr: %s", r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("decode stdout %q: %v", r.stdout, err)
	}
}

// fixtureMessage is a parked message in testdata/parked.json.
type fixtureMessage struct {
	Body       string            `json:"body"`
	Attributes map[string]string `json:"attributes"`
}

// seedParked sends the messages of testdata/parked.json to queueURL.
func seedParked(t *testing.T, client *sqs.Client, queueURL string) {
	t.Helper()
	raw, err := os.ReadFile("testdata/parked.json")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []fixtureMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		t.Fatalf("decode testdata/parked.json: %v", err)
	}
	for _, m := range msgs {
		sendMessage(t, client, queueURL, m)
	}
}

func sendMessage(t *testing.T, client *sqs.Client, queueURL string, m fixtureMessage) {
	t.Helper()
	attrs := map[string]sqstypes.MessageAttributeValue{}
	for k, v := range m.Attributes {
		typ := "String"
		if k == order.AttrLine || k == order.AttrAttempts {
			typ = "Number"
		}
		attrs[k] = sqstypes.MessageAttributeValue{DataType: aws.String(typ), StringValue: aws.String(v)}
	}
	if _, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: &queueURL, MessageBody: &m.Body, MessageAttributes: attrs,
	}); err != nil {
		t.Fatalf("send message: %v", err)
	}
}

// parkedQueue creates a queue holding the messages of testdata/parked.json.
func parkedQueue(t *testing.T) (*sqs.Client, string) {
	t.Helper()
	cfg := awstest.Config(t)
	client := awstest.SQS(cfg)
	dlq, _ := awstest.NewQueue(t, cfg, nil)
	seedParked(t, client, dlq)
	return client, dlq
}

// wantVisible checks the queue's ApproximateNumberOfMessages: a peek must leave every
// message in place.
func wantVisible(t *testing.T, client *sqs.Client, queueURL, want, when string) {
	t.Helper()
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl:       &queueURL,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		t.Fatalf("get queue attributes: %v", err)
	}
	if got := out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]; got != want {
		t.Errorf("%s: got %s visible messages, want %s", when, got, want)
	}
}

// wantCode fails the test unless the run exited with code and its stderr contains errPart.
func wantCode(t *testing.T, r result, code int, errPart string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, errPart) {
		t.Errorf("exit %d, stderr %q; want exit %d, stderr containing %q", r.code, r.stderr, code, errPart)
	}
}

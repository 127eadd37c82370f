package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// shownMessage is one parked message in full.
type shownMessage struct {
	MessageID string `json:"messageId"`
	Body      string `json:"body"`
	// Attributes are the message attributes (string and number values as text).
	Attributes map[string]string `json:"attributes"`
	// System are the SQS system attributes (SentTimestamp, ApproximateReceiveCount, ...).
	System map[string]string `json:"system"`
}

func runDLQShow(ctx context.Context, c *cli, args []string) error {
	fs, o := c.newFlags("dlq show", "MESSAGE-ID|ORDER-ID [--scan N]")
	maxScan := fs.Int("scan", 1000, "look at most at this many parked messages")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("dlq show: want one MESSAGE-ID or ORDER-ID, got %d arguments", len(pos))
	}
	id := pos[0]
	_, sc, err := c.openDLQ(ctx, o, *maxScan)
	if err != nil {
		return err
	}
	var found *shownMessage
	_, err = sc.scan(ctx, func(m sqstypes.Message) verdict {
		if aws.ToString(m.MessageId) != id && parkedFrom(m).OrderID != id {
			return verdict{}
		}
		found = &shownMessage{MessageID: aws.ToString(m.MessageId), Body: aws.ToString(m.Body), Attributes: map[string]string{}, System: m.Attributes}
		for k, v := range m.MessageAttributes {
			found.Attributes[k] = aws.ToString(v.StringValue)
		}
		return verdict{stop: true}
	})
	if err != nil {
		return fmt.Errorf("dlq show %s: %w", id, err)
	}
	if found == nil {
		return fmt.Errorf("dlq show %s: no such message id or order id among the first %d parked messages", id, *maxScan)
	}
	if o.json {
		return writeJSON(c.stdout, found)
	}
	fmt.Fprintf(c.stdout, "message %s\n", found.MessageID)
	for _, group := range []map[string]string{found.Attributes, found.System} {
		for _, k := range slices.Sorted(maps.Keys(group)) {
			fmt.Fprintf(c.stdout, "  %s: %s\n", k, group[k])
		}
	}
	fmt.Fprintf(c.stdout, "body:\n%s\n", strings.TrimRight(found.Body, "\n"))
	return nil
}

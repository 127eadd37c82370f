package main

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// drain receives every message of a queue and returns the order ids and whether any still
// carried a parking attribute.
func drain(t *testing.T, client *sqs.Client, url string) (ids []string, parkingLeft bool) {
	t.Helper()
	for {
		out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: &url, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}, VisibilityTimeout: 60,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			slices.Sort(ids)
			return ids, parkingLeft
		}
		for _, m := range out.Messages {
			ids = append(ids, aws.ToString(m.MessageAttributes[order.AttrOrderID].StringValue))
			_, parked := m.MessageAttributes[order.AttrFailureClass]
			parkingLeft = parkingLeft || parked
		}
	}
}

func TestDLQRedrive(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		args      []string
		wantMoved [][]string // order ids now on the orders queue: one of these lists
		wantLeft  int        // still parked
		fallback  bool
	}{
		{"one class", []string{"--class", "permanent"}, [][]string{{"A1", "B1"}}, 3, false},
		{"by source prefix, at most one", []string{"--source", "s3://in/uploads/a*", "--max", "1"}, [][]string{{"A1"}, {"A2"}}, 4, false},
		{"native falls back where not implemented", []string{"--native"}, [][]string{{"", "A1", "A2", "B1", "C1"}}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, dlq := parkedQueue(t)
			orders, _ := awstest.NewQueue(t, awstest.Config(t), nil)
			var got redrive.Result
			mustJSON(t, standIn(t, append([]string{"dlq", "redrive", "--json", "--rate", "200", "--orders-queue", orders, "--orders-dlq", dlq}, tc.args...)...), &got)
			if got.Fallback != tc.fallback {
				t.Errorf("got fallback %v, want %v", got.Fallback, tc.fallback)
			}
			ids, parkingLeft := drain(t, client, orders)
			if !slices.ContainsFunc(tc.wantMoved, func(want []string) bool { return cmp.Equal(want, ids) }) {
				t.Errorf("got %q moved to the orders queue, want one of %q", ids, tc.wantMoved)
			}
			if parkingLeft {
				t.Errorf("a redriven message still carries %s", order.AttrFailureClass)
			}
			if got.Moved != len(ids) {
				t.Errorf("got Moved %d, want %d", got.Moved, len(ids))
			}
			wantVisible(t, client, dlq, strconv.Itoa(tc.wantLeft), "after redrive")
		})
	}
	t.Run("dry run lists the selection and moves nothing", func(t *testing.T) {
		client, dlq := parkedQueue(t)
		orders, _ := awstest.NewQueue(t, awstest.Config(t), nil)
		r := standIn(t, "dlq", "redrive", "--dry-run", "--class", "permanent", "--orders-queue", orders, "--orders-dlq", dlq)
		for _, want := range []string{"would move 2 of 5 scanned", "HTTP 409: conflict", "HTTP 422: amount must be positive"} {
			if r.code != exitOK || !strings.Contains(r.stdout, want) {
				t.Errorf("got exit %d, stdout\n%s\nwant it to contain %q (stderr %s)", r.code, r.stdout, want, r.stderr)
			}
		}
		wantVisible(t, client, dlq, "5", "after a dry run")
		wantVisible(t, client, orders, "0", "orders queue after a dry run")
	})
	t.Run("native cannot select", func(t *testing.T) {
		wantCode(t, standIn(t, "dlq", "redrive", "--native", "--class", "permanent", "--orders-queue", "q", "--orders-dlq", "d"), exitUsage, "native move cannot select")
	})
	for _, rate := range []string{"0", "1000"} {
		t.Run("rate "+rate, func(t *testing.T) {
			wantCode(t, standIn(t, "dlq", "redrive", "--rate", rate, "--orders-queue", "http://x/q", "--orders-dlq", "http://x/d"), exitUsage, rate+": must be > 0")
		})
	}
}

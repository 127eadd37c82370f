package test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/dispatch/dispatchtest"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// TestRedriveParkedOrder parks an order the way dispatch does (the API refuses it: permanent),
// redrives it with the selective move, and checks that it arrives on the orders queue with its
// body and order attributes intact and no parking attributes, and that dispatch then delivers
// it once the API accepts it.
func TestRedriveParkedOrder(t *testing.T) {
	ctx := context.Background()
	cfg := awstest.Config(t)
	client := awstest.SQS(cfg)
	queueURL, queueARN := awstest.NewQueue(t, cfg, map[string]string{"VisibilityTimeout": "30"})
	dlqURL, _ := awstest.NewQueue(t, cfg, nil)
	const id, body = "RD-1", `{"id":"RD-1","amount":"12.34"}`
	dispatchtest.SendOrder(t, client, queueURL, id, body, nil)

	// 1. The API refuses the order: dispatch parks it as permanent.
	refusing := newDispatcher(t, client, queueURL, dlqURL, apiserver.Config{RejectIDs: []string{id}})
	if msgs, _, err := dispatchtest.HandleOnce(ctx, client, queueURL, queueARN, 1, 0, refusing.handle); err != nil || len(msgs) != 1 {
		t.Fatalf("dispatch: %d messages, error %v; want 1, nil", len(msgs), err)
	}
	if n := refusing.api.Orders()[id].Count; n != 0 {
		t.Fatalf("the refusing API accepted %s %d times, want 0", id, n)
	}

	// 2. Redrive the permanent failures: a dry run lists it, the run moves it.
	journal := redrive.S3Journal{Client: awstest.S3(cfg), Bucket: awstest.NewBucket(t, cfg)}
	r := redrive.New(redrive.Config{QueueURL: queueURL, DLQURL: dlqURL}, client, redrive.Options{Journal: journal, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	req := redrive.Request{Class: redrive.Classes{order.ClassPermanent}, DryRun: true}
	dry, err := r.Run(ctx, req)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if len(dry.Listing) != 1 || dry.Listing[0].OrderID != id || dry.Listing[0].Class != order.ClassPermanent || dry.Listing[0].Attempts < 1 {
		t.Fatalf("dry run listing %+v, want %s parked as permanent after at least one attempt", dry.Listing, id)
	}
	req.DryRun = false
	res, err := r.Run(ctx, req)
	if err != nil {
		t.Fatalf("redrive: %v", err)
	}
	if res.Moved != 1 || res.Failed != 0 || res.DeleteFailed != 0 {
		t.Fatalf("redrive moved %d failed %d deleteFailed %d, want 1 0 0", res.Moved, res.Failed, res.DeleteFailed)
	}

	// 3. Dispatch receives it again, with its original attributes, and the API now accepts it.
	accepting := newDispatcher(t, client, queueURL, dlqURL, apiserver.Config{})
	var seen []events.SQSMessage
	spy := func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		seen = append(seen, ev.Records...)
		return accepting.handle(ctx, ev)
	}
	if _, _, err := dispatchtest.HandleOnce(ctx, client, queueURL, queueARN, 10, 0, spy); err != nil {
		t.Fatalf("dispatch after redrive: %v", err)
	}
	if len(seen) != 1 {
		t.Fatalf("dispatch got %d messages after the redrive, want 1", len(seen))
	}
	gotAttrs := map[string]string{}
	for k, v := range seen[0].MessageAttributes {
		gotAttrs[k] = v.DataType + ":" + *v.StringValue
	}
	wantAttrs := map[string]string{
		order.AttrOrderID:       "String:" + id,
		order.AttrSource:        "String:s3://uploads-bucket/uploads/orders.jsonl",
		order.AttrSourceVersion: "String:" + order.NullVersion,
		order.AttrLine:          "Number:7",
		order.AttrRedrives:      "Number:1", // the move is counted
	}
	if diff := cmp.Diff(wantAttrs, gotAttrs); diff != "" {
		t.Errorf("attributes after the redrive (-want +got):\n%s", diff)
	}
	if seen[0].Body != body {
		t.Errorf("body after the redrive: got %q, want %q", seen[0].Body, body)
	}
	if n := accepting.api.Orders()[id].Count; n != 1 {
		t.Errorf("the API accepted %s %d times after the redrive, want 1", id, n)
	}
	for _, q := range []string{queueURL, dlqURL} {
		if n := approxMessages(t, client, q); n != "0" {
			t.Errorf("queue %s holds %s messages at the end, want 0", q, n)
		}
	}
}

type testDispatcher struct {
	api    *apiserver.Server
	handle dispatchtest.Handler
}

// newDispatcher returns a dispatch handler in front of a stand-in order API with plan.
func newDispatcher(t *testing.T, client *sqs.Client, queueURL, dlqURL string, plan apiserver.Config) testDispatcher {
	t.Helper()
	plan.RPS, plan.Burst = 50, 5
	api, err := apiserver.New(plan)
	if err != nil {
		t.Fatalf("stand-in API: %v", err)
	}
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	dc := dispatch.Config{OrdersQueueURL: queueURL, DLQURL: dlqURL, APIBaseURL: ts.URL, APITimeout: time.Second,
		APIRate: 50, APIInstances: 2, MaxAttempts: 3, BackoffBase: time.Second, BackoffMax: 2 * time.Second, FunctionName: "dispatch"}
	if err := dc.Validate(); err != nil {
		t.Fatalf("dispatch config: %v", err)
	}
	oa, err := orderapi.New(dc.OrderAPI(), orderapi.Options{})
	if err != nil {
		t.Fatalf("order API client: %v", err)
	}
	d := dispatch.New(dc, client, oa, dispatch.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), Metrics: io.Discard})
	return testDispatcher{api: api, handle: d.Handle}
}

func approxMessages(t *testing.T, c *sqs.Client, url string) string {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
		},
	})
	if err != nil {
		t.Fatalf("get attributes of %s: %v", url, err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]
}

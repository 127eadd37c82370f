package local

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/syncbuf"
	"github.com/orderpipe/orderpipe/pkg/order"
)

// TestDispatchBootstrap builds the real functions/dispatch bootstrap, runs it through the local
// Runtime API with the environment docs/CONTRACTS.md gives it, and has the Poller drive one
// order message through it to an order API served by httptest.
func TestDispatchBootstrap(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	c := awstest.SQS(cfg)
	ordersURL, ordersARN := testQueue(t, c, 3*time.Minute)
	dlqURL, _ := testQueue(t, c, 30*time.Second)

	type put struct{ Method, Path, IdempotencyKey, ContentType, Body string }
	puts := make(chan put, 8)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		puts <- put{r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), r.Header.Get("Content-Type"), string(b)}
		w.WriteHeader(http.StatusOK)
	}))
	defer api.Close()

	var out syncbuf.Buffer
	proc := &Process{
		Path: buildFunction(t, "../../functions/dispatch"), FunctionName: "dispatch", Output: &out,
		Env: map[string]string{
			"ORDERS_QUEUE_URL": ordersURL, "ORDERS_DLQ_URL": dlqURL, "ORDER_API_BASE_URL": api.URL,
			"AWS_ENDPOINT_URL": awstest.Endpoint(), "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		},
	}
	if err := proc.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer func() {
		proc.Close()
		if t.Failed() {
			t.Logf("dispatch output:\n%s", out.String())
		}
	}()

	body := `{"id":"ORD-1","amount":"12.30","currency":"EUR"}`
	str := func(v string) sqstypes.MessageAttributeValue {
		return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: &ordersURL, MessageBody: &body,
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			order.AttrOrderID:       str("ORD-1"),
			order.AttrSource:        str("s3://b/uploads/a.jsonl"),
			order.AttrSourceVersion: str(order.NullVersion),
			order.AttrLine:          {DataType: aws.String("Number"), StringValue: aws.String("1")},
		},
	}); err != nil {
		t.Fatalf("send order: %v", err)
	}

	ctx, stop := context.WithTimeout(context.Background(), runBound)
	defer stop()
	invoke := SQSHandler(proc.Invoke)
	p := &Poller{
		Client: c, Logger: testLogger(t), QueueURL: ordersURL, QueueARN: ordersARN, BatchSize: 1, MaxConcurrency: 1,
		FunctionTimeout: 30 * time.Second, WaitTime: time.Second, FunctionName: "dispatch",
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			defer stop()
			return invoke(ctx, ev)
		},
	}
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	close(puts)
	var got []put
	for p := range puts {
		got = append(got, p)
	}
	want := []put{{http.MethodPut, "/orders/ORD-1", order.IdempotencyKey("ORD-1", []byte(body)), "application/json", body}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests to the order API (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Stats{Received: 1, Invocations: 1, Deleted: 1}, p.Stats()); diff != "" {
		t.Errorf("poller stats (-want +got):\n%s", diff)
	}
	if got, want := depth(t, c, ordersURL)+depth(t, c, dlqURL), 0; got != want {
		t.Errorf("messages left on the orders queue and DLQ: got %d, want %d", got, want)
	}
}

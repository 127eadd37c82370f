package test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/dispatch/dispatchtest"
	"github.com/orderpipe/orderpipe/pkg/local"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
)

// TestDispatchLedger drives a queue of orders through two dispatch instances (two pollers, each
// with its own Dispatcher and limiter, as two Lambda instances would be) against the stand-in API
// with faults, and checks the ledger: every order is delivered exactly once or parked with the
// class its fault calls for.
func TestDispatchLedger(t *testing.T) {
	const n = 24
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ORD-%03d", i+1)
	}
	plan := apiserver.Config{
		RPS: 20, Burst: 2, Latency: 5 * time.Millisecond, Jitter: 5 * time.Millisecond, Seed: 42,
		FailIDs:   []string{"ORD-003", "ORD-011", "ORD-023"}, // 500 twice, then fine
		ResetIDs:  []string{"ORD-005", "ORD-019"},            // connection reset twice, then fine
		HangIDs:   []string{"ORD-008"},                       // past the client timeout twice, then fine
		FailTimes: 2,
		HangFor:   10 * time.Second,
		RejectIDs: []string{"ORD-013", "ORD-024"}, // 422: permanent
		BrokenIDs: []string{"ORD-021"},            // 500 forever: exhausted
	}
	wantParked := map[string]string{
		"ORD-013": order.ClassPermanent, "ORD-024": order.ClassPermanent,
		"ORD-021": order.ClassExhausted, "BAD-1": order.ClassUndecodable, "MIS-1": order.ClassUndecodable,
	}
	api, err := apiserver.New(plan)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(api)
	defer ts.Close()

	cfg := awstest.Config(t)
	client := awstest.SQS(cfg)
	queueURL, queueARN := awstest.NewQueue(t, cfg, map[string]string{"VisibilityTimeout": "30"})
	dlqURL, _ := awstest.NewQueue(t, cfg, nil)
	for _, id := range ids {
		dispatchtest.SendOrder(t, client, queueURL, id, fmt.Sprintf(`{"id":%q,"amount":"10.00"}`, id), nil)
	}
	dispatchtest.SendOrder(t, client, queueURL, "BAD-1", `not json`, nil)
	// Another order's body under this id: PUT /orders/MIS-1 must not carry MIS-2's content.
	dispatchtest.SendOrder(t, client, queueURL, "MIS-1", `{"id":"MIS-2","amount":"10.00"}`, nil)

	// The faults are per order, but a breaker cannot tell a run of them from an outage: the
	// failing orders' retries bunch at the end of the drain, and five failures in a row on one
	// instance would open its breaker, which holds every order until its next probe (the
	// governor's default interval, 30 s) and again after each failed probe, for as long as the
	// broken order (a failed probe spends no budget) is the one probing. The breaker is tested in
	// pkg/governor and pkg/dispatch.
	dc := dispatch.Config{OrdersQueueURL: queueURL, DLQURL: dlqURL, APIBaseURL: ts.URL, APITimeout: 500 * time.Millisecond,
		APIRate: 20, APIInstances: 2, MaxAttempts: 3, BackoffBase: time.Second, BackoffMax: 2 * time.Second, FunctionName: "dispatch",
		BreakerThreshold: 1000}
	if err := dc.Validate(); err != nil {
		t.Fatal(err)
	}
	newInstance := func() *dispatch.Dispatcher {
		api, err := orderapi.New(dc.OrderAPI(), orderapi.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return dispatch.New(dc, client, api, dispatch.Options{
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
			Metrics: io.Discard,
		})
	}

	// copies records the distinct messages seen per order id: SQS is at-least-once (and so is a
	// producer whose send is retried), so a second copy of an order makes a duplicate PUT
	// unavoidable; dispatch must not add one of its own.
	var mu sync.Mutex
	copies := map[string]map[string]bool{}
	record := func(h dispatchtest.Handler) dispatchtest.Handler {
		return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			mu.Lock()
			for _, m := range ev.Records {
				id := aws.ToString(m.MessageAttributes[order.AttrOrderID].StringValue)
				if copies[id] == nil {
					copies[id] = map[string]bool{}
				}
				copies[id][m.MessageId] = true
			}
			mu.Unlock()
			return h(ctx, ev)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), awstest.Scale(t, client, 50*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		d := newInstance()
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pollUntilEmpty(ctx, client, queueURL, queueARN, 30*time.Second, record(d.Handle))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("poller: %v", err)
		}
	}

	parked := map[string]string{}
	for {
		msgs, err := dispatchtest.Receive(context.Background(), client, dlqURL, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			id := dispatchtest.Attr(m, order.AttrOrderID)
			if _, dup := parked[id]; dup {
				t.Errorf("order %s parked twice", id)
			}
			parked[id] = dispatchtest.Attr(m, order.AttrFailureClass)
			if a, _ := strconv.Atoi(dispatchtest.Attr(m, order.AttrAttempts)); a < 1 || dispatchtest.Attr(m, order.AttrFailureDetail) == "" {
				t.Errorf("parked %s without attempts or detail: %v", id, m.MessageAttributes)
			}
		}
	}
	if diff := cmp.Diff(wantParked, parked); diff != "" {
		t.Errorf("parked orders (-want +got):\n%s", diff)
	}
	ledger := api.Orders()
	unavoidable := 0
	for _, id := range ids {
		_, isParked := wantParked[id]
		got, n := ledger[id].Count, len(copies[id])
		if n > 1 {
			unavoidable += n - 1
			t.Logf("order %s arrived as %d messages (at-least-once): %d deliveries allowed", id, n, n)
		}
		switch {
		case isParked && got != 0:
			t.Errorf("order %s accepted %d times, want 0 (parked)", id, got)
		case !isParked && (got < 1 || got > n):
			t.Errorf("order %s accepted %d times from %d message copies, want 1 (and never more than the copies)", id, got, n)
		}
	}
	st := api.Stats()
	if st.Duplicates > unavoidable {
		t.Errorf("duplicate deliveries = %d, want <= %d (the extra message copies SQS handed out)", st.Duplicates, unavoidable)
	}
	t.Logf("stand-in: %d requests, %d accepted, %d throttled, %d 5xx, %d resets, %d hangs, %d rejected",
		st.Requests, st.Accepted, st.Throttled, st.ServerErrors, st.Resets, st.Hangs, st.Rejected)
}

// pollUntilEmpty is a minimal event source mapping: receive one message at a time, call h with a
// per-invocation context, delete what h did not report as failed; stop when the queue holds
// nothing visible, in flight or delayed. timeout is the function's timeout.
func pollUntilEmpty(ctx context.Context, c *sqs.Client, queueURL, queueARN string, timeout time.Duration, h dispatchtest.Handler) error {
	for ctx.Err() == nil {
		msgs, _, err := dispatchtest.HandleOnceWithin(ctx, c, queueURL, queueARN, 1, 1, timeout, h)
		if err != nil {
			return err
		}
		if len(msgs) > 0 {
			continue
		}
		left, err := queueDepth(ctx, c, queueURL)
		if err != nil {
			return err
		}
		if left == 0 {
			return nil
		}
	}
	return fmt.Errorf("queue not drained: %w", ctx.Err())
}

// queueDepth is the number of messages visible, in flight and delayed.
func queueDepth(ctx context.Context, c *sqs.Client, queueURL string) (int, error) {
	return local.QueueDepth(ctx, c, queueURL)
}

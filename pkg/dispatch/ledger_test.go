package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/delivery"
	"github.com/orderpipe/orderpipe/pkg/delivery/deliverytest"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/dispatch/dispatchtest"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/order"
)

// metric sums an EMF count over every line written.
func (e *env) metric(name string) int {
	e.t.Helper()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(e.metrics.String()), "\n") {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			e.t.Fatalf("EMF line %q: %v", line, err)
		}
		v, _ := doc[name].(float64)
		n += int(v)
	}
	return n
}

// handle runs the dispatcher on messages received already, as the event source mapping would.
func (e *env) handle(d *dispatch.Dispatcher, msgs ...types.Message) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.Handle(ctx, dispatchtest.Event(e.queueARN, msgs)); err != nil {
		e.t.Fatal(err)
	}
}

func TestCopyOfADeliveredOrderIsDeletedUnsent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setup{api: apiserver.Config{}, ledger: deliverytest.NewLedger(t)})
	e.send("A-1", orderOf(t, "A-1"))
	e.send("A-1", orderOf(t, "A-1")) // an ingest that crashed re-sends it
	for range 2 {
		if _, failed := e.poll(context.Background(), 1); len(failed) != 0 {
			t.Fatalf("failures %v, want none", failed)
		}
	}
	if got := e.api.Stats().Requests; got != 1 {
		t.Errorf("API requests %d, want 1", got)
	}
	if left := e.receiveAll(e.queueURL, 0); len(left) != 0 || e.inFlight() != 0 {
		t.Errorf("queue holds %d visible, %d in flight; want both copies deleted", len(left), e.inFlight())
	}
	if got := e.metric(dispatch.MetricDuplicates); got != 1 {
		t.Errorf("Duplicates %d, want 1", got)
	}
	if !strings.Contains(e.logs.String(), "copy deleted unsent") {
		t.Errorf("logs do not say the copy was deleted unsent:\n%s", e.logs)
	}
	// The same id with another body is another order: it is sent.
	e.send("A-1", strings.Replace(orderOf(t, "A-1"), "}", `,"note":"updated"}`, 1))
	e.poll(context.Background(), 1)
	if got := e.api.Stats().Requests; got != 2 {
		t.Errorf("API requests after an updated order %d, want 2", got)
	}
}

// TestConcurrentCopiesNeverBothSend: two instances handed copies of the same orders at the same
// moment send each order once; the other copy is given back, and deleted unsent once delivered.
func TestConcurrentCopiesNeverBothSend(t *testing.T) {
	t.Parallel()
	ledger := deliverytest.NewLedger(t)
	e := newEnv(t, setup{api: apiserver.Config{Latency: 2 * time.Second}, ledger: ledger})
	other := dispatch.New(e.cfg, e.sqs, e.client, e.opts) // another instance: its own pacing, the same table
	const orders = 4
	for i := range orders {
		for range 2 {
			e.send("C-"+string(rune('1'+i)), orderOf(t, "C-"+string(rune('1'+i))))
		}
	}
	var msgs []types.Message
	for len(msgs) < 2*orders {
		got := e.receiveAll(e.queueURL, 1)
		if len(got) == 0 {
			t.Fatalf("received %d of %d copies", len(msgs), 2*orders)
		}
		msgs = append(msgs, got...)
	}
	byID := map[string][]types.Message{}
	for _, m := range msgs {
		id := dispatchtest.Attr(m, order.AttrOrderID)
		byID[id] = append(byID[id], m)
	}
	var wg sync.WaitGroup
	for _, copies := range byID {
		for i, d := range []*dispatch.Dispatcher{e.d, other} {
			wg.Add(1)
			go func() { defer wg.Done(); e.handle(d, copies[i]) }()
		}
	}
	wg.Wait()
	if st := e.api.Stats(); st.Requests != orders || st.Duplicates != 0 {
		t.Errorf("API requests %d, duplicates %d; want %d, 0", st.Requests, st.Duplicates, orders)
	}
	// The other copy of each order was given back (held), or, on a machine slow enough that it
	// started after the first was delivered, deleted unsent.
	held, dups := e.metric(dispatch.MetricHeldElsewhere), e.metric(dispatch.MetricDuplicates)
	if held+dups != orders || held == 0 {
		t.Errorf("HeldElsewhere %d + Duplicates %d, want %d, some held", held, dups, orders)
	}
	// The copies given back come again: they are deleted unsent.
	for _, copies := range byID {
		e.handle(e.d, copies[0])
		e.handle(other, copies[1])
	}
	if st := e.api.Stats(); st.Requests != orders {
		t.Errorf("API requests after the copies came back %d, want %d", st.Requests, orders)
	}
	if got := e.metric(dispatch.MetricDuplicates) - dups; got != 2*orders {
		t.Errorf("Duplicates of the copies that came back %d, want %d", got, 2*orders)
	}
}

// TestCrashAfterClaim: an instance killed between its claim and its PUT holds the order until
// its lease ends; then a copy is sent, counted as a possible repeat, and later copies are not.
func TestCrashAfterClaim(t *testing.T) {
	t.Parallel()
	ledger := deliverytest.NewLedger(t)
	e := newEnv(t, setup{api: apiserver.Config{}, ledger: ledger})
	body := orderOf(t, "K-1")
	e.send("K-1", body)
	msgs := e.receiveAll(e.queueURL, 1)
	// The crashed instance's claim, taken just before the copy arrives; its lease (2 s, stretched
	// by the stand-in's measured slowness) must outlive the handler's calls to the stand-ins.
	lease := time.Now().Add(awstest.Scale(t, e.sqs, 2*time.Second))
	if _, err := ledger.Claim(context.Background(), order.IdempotencyKey("K-1", []byte(body)), "K-1", lease); err != nil {
		t.Fatal(err)
	}
	e.handle(e.d, msgs...)
	if got := e.api.Stats().Requests; got != 0 {
		t.Fatalf("API requests %d while the crashed claim's lease lives, want 0", got)
	}
	time.Sleep(time.Until(lease) + 100*time.Millisecond)
	e.handle(e.d, msgs...)
	e.handle(e.d, msgs...)
	if st := e.api.Stats(); st.Requests != 1 {
		t.Errorf("API requests %d, want 1", st.Requests)
	}
	if got := e.metric(dispatch.MetricPossibleRepeats); got != 1 {
		t.Errorf("PossibleRepeats %d, want 1", got)
	}
	if got := e.metric(dispatch.MetricDuplicates); got != 1 {
		t.Errorf("Duplicates %d, want 1", got)
	}
}

// TestCrashAfterPutBeforeMark: an instance killed after the API took the order and before its
// mark: the next copy after the lease is the one repeat the record cannot prevent; it is counted
// and logged.
func TestCrashAfterPutBeforeMark(t *testing.T) {
	t.Parallel()
	ledger := deliverytest.NewLedger(t)
	e := newEnv(t, setup{api: apiserver.Config{}, ledger: ledger})
	body := orderOf(t, "K-2")
	lease := time.Now().Add(2 * time.Second)
	if _, err := ledger.Claim(context.Background(), order.IdempotencyKey("K-2", []byte(body)), "K-2", lease); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, e.apiURL+"/orders/K-2", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", order.IdempotencyKey("K-2", []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("first PUT: %v %v", resp, err)
	}
	resp.Body.Close()
	e.send("K-2", body)
	msgs := e.receiveAll(e.queueURL, 1)
	time.Sleep(time.Until(lease) + 100*time.Millisecond)
	e.handle(e.d, msgs...)
	if st := e.api.Stats(); st.Duplicates != 1 {
		t.Errorf("API duplicates %d, want 1 (the repeat)", st.Duplicates)
	}
	if got := e.metric(dispatch.MetricPossibleRepeats); got != 1 {
		t.Errorf("PossibleRepeats %d, want 1", got)
	}
	if !strings.Contains(e.logs.String(), "possible repeat") {
		t.Errorf("logs do not report the possible repeat:\n%s", e.logs)
	}
}

// TestAPICommitsAndHangs: a request that got no answer leaves the record abandoned; the retry
// is sent at once and counted as a possible repeat.
func TestAPICommitsAndHangs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, setup{
		api:    apiserver.Config{HangIDs: []string{"H-1"}, CommitBeforeHang: true, HangFor: time.Minute},
		config: func(c *dispatch.Config) { c.APITimeout = time.Second },
		ledger: deliverytest.NewLedger(t),
	})
	e.send("H-1", orderOf(t, "H-1"))
	msgs := e.receiveAll(e.queueURL, 1)
	e.handle(e.d, msgs...)
	e.handle(e.d, msgs...)
	st := e.api.Stats()
	if st.Requests != 2 || st.Duplicates != 1 {
		t.Errorf("API requests %d, duplicates %d; want 2, 1", st.Requests, st.Duplicates)
	}
	if got := e.metric(dispatch.MetricPossibleRepeats); got != 1 {
		t.Errorf("PossibleRepeats %d, want 1", got)
	}
}

// TestLedgerUnreachable: without the record nothing is sent; the copy is given back.
func TestLedgerUnreachable(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	cfg.BaseEndpoint = aws.String("http://127.0.0.1:1")
	cfg.RetryMaxAttempts = 1
	e := newEnv(t, setup{api: apiserver.Config{}, ledger: delivery.New(dynamodb.NewFromConfig(cfg), "nowhere", nil)})
	e.send("U-1", orderOf(t, "U-1"))
	if _, failed := e.poll(context.Background(), 1); len(failed) != 0 {
		t.Errorf("failures %v, want none: the copy is re-sent delayed", failed)
	}
	if got := e.api.Stats().Requests; got != 0 {
		t.Errorf("API requests %d, want 0", got)
	}
	if got := e.metric(dispatch.MetricLedgerErrors); got != 1 {
		t.Errorf("LedgerErrors %d, want 1", got)
	}
	if !strings.Contains(e.logs.String(), "delivery record unavailable") {
		t.Errorf("logs do not say the record was unavailable:\n%s", e.logs)
	}
}

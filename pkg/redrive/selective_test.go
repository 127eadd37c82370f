package redrive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

var allOrders = []string{"A1", "A2", "A3", "A4", "A5", "A6"}

func without(all []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(all), func(s string) bool { return slices.Contains(drop, s) })
}

// checkMoved asserts that the orders queue holds exactly the orders want, each with its
// original body and its attributes minus the parking ones.
func checkMoved(t *testing.T, e env, want []string) {
	t.Helper()
	checkQueue(t, e.client, e.cfg.QueueURL, "the orders queue", want, true)
}

// checkParked asserts that the DLQ holds exactly the orders want, visible now, unchanged.
func checkParked(t *testing.T, e env, want []string) {
	t.Helper()
	checkQueue(t, e.client, e.cfg.DLQURL, "the DLQ", want, false)
}

// checkQueue asserts that the visible messages of url are exactly the fixture orders want, with
// their fixture body and attributes, minus the parking attributes when stripped.
func checkQueue(t *testing.T, c *sqs.Client, url, what string, want []string, stripped bool) {
	t.Helper()
	fixture := byOrderID(loadParked(t))
	got := receiveAll(t, c, url)
	if diff := cmp.Diff(want, keys(got), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("visible orders on %s (-want +got):\n%s", what, diff)
	}
	for id, m := range got {
		p := fixture[id]
		if b := aws.ToString(m.Body); b != p.Body {
			t.Errorf("order %s on %s: got body %q, want %q", id, what, b, p.Body)
		}
		wantAttrs := typedAttrs(p.Attributes)
		if stripped {
			for _, k := range []string{order.AttrFailureClass, order.AttrFailureDetail, order.AttrAttempts, order.AttrParkedAt} {
				delete(wantAttrs, k)
			}
			wantAttrs[order.AttrRedrives] = "Number:1" // the fixtures were never redriven
		}
		if diff := cmp.Diff(wantAttrs, plainAttrs(m)); diff != "" {
			t.Errorf("order %s attributes on %s (-want +got):\n%s", id, what, diff)
		}
	}
}

func TestRunSelective(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		req       redrive.Request
		wantMoved []string
		wantStop  string
	}{
		{"everything", redrive.Request{}, allOrders, redrive.StopEmpty},
		{"class permanent", redrive.Request{Class: redrive.Classes{order.ClassPermanent}}, []string{"A1", "A2"}, redrive.StopEmpty},
		{"class unknown", redrive.Request{Class: redrive.Classes{order.ClassUnknown}}, []string{"A6"}, redrive.StopEmpty},
		{"two classes", redrive.Request{Class: redrive.Classes{order.ClassExhausted, order.ClassUndecodable}}, []string{"A3", "A4", "A5"}, redrive.StopEmpty},
		{"source exact", redrive.Request{Source: "s3://in/uploads/2026/b.jsonl"}, []string{"A3", "A5", "A6"}, redrive.StopEmpty},
		{"source exact is not a prefix", redrive.Request{Source: "s3://in/uploads/2026/b"}, nil, redrive.StopEmpty},
		{"source prefix", redrive.Request{Source: "s3://in/uploads/2026/*"}, []string{"A1", "A2", "A3", "A5", "A6"}, redrive.StopEmpty},
		{"class and source", redrive.Request{Class: redrive.Classes{order.ClassExhausted}, Source: "s3://in/uploads/2027/*"}, []string{"A4"}, redrive.StopEmpty},
		{"max", redrive.Request{Max: 2}, nil, redrive.StopMax}, // which two depends on the receive order
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			park(t, e.client, e.cfg.DLQURL, loadParked(t))

			got, err := newRedriver(t, e.cfg, e.client, redrive.Options{}).Run(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			wantCount := len(tt.wantMoved)
			if tt.req.Max > 0 {
				wantCount = tt.req.Max
			}
			want := redrive.Result{
				Mode: redrive.ModeSelective, Stop: tt.wantStop,
				Scanned: len(allOrders), Selected: wantCount, Moved: wantCount,
				Skipped: len(allOrders) - wantCount, Released: len(allOrders) - wantCount,
			}
			if tt.req.Max > 0 {
				// It stops as soon as Max are selected: it may not have scanned everything.
				want.Scanned, want.Skipped, want.Released = got.Scanned, got.Skipped, got.Released
			}
			if diff := cmp.Diff(want, got, ignoreByClass()); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			moved := receiveAll(t, e.client, e.cfg.QueueURL)
			if tt.wantMoved != nil {
				if diff := cmp.Diff(tt.wantMoved, keys(moved)); diff != "" {
					t.Errorf("orders on the orders queue (-want +got):\n%s", diff)
				}
			}
			if len(moved) != wantCount {
				t.Errorf("got %d orders on the orders queue, want %d", len(moved), wantCount)
			}
			checkParked(t, e, without(allOrders, keys(moved)...))
		})
	}
}

// ignoreByClass ignores the per-class counts, checked by TestRunCountsByClass.
func ignoreByClass() cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "ByClass" }, cmp.Ignore())
}

func TestRunStripsParkingAttributes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	park(t, e.client, e.cfg.DLQURL, loadParked(t))
	if _, err := newRedriver(t, e.cfg, e.client, redrive.Options{}).Run(context.Background(), redrive.Request{}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkMoved(t, e, allOrders)
	checkParked(t, e, nil)
}

// TestRunResetsRetries: an order the queue's redrive policy parked (no parking attributes)
// may carry Retries from dispatch's re-sent copies; moved back with it, it would be parked as
// exhausted after its first transient failure instead of getting a fresh budget.
func TestRunResetsRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	attrs := map[string]string{order.AttrOrderID: "R1", order.AttrSource: "s3://in/uploads/r.jsonl", order.AttrSourceVersion: "null", order.AttrLine: "4"}
	send := sqsAttrs(attrs)
	send[order.AttrRetries] = sqstypes.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String("6")}
	if _, err := e.client.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: aws.String(e.cfg.DLQURL), MessageBody: aws.String(`{"id":"R1"}`), MessageAttributes: send,
	}); err != nil {
		t.Fatalf("send: %v", err)
	}
	res, err := newRedriver(t, e.cfg, e.client, redrive.Options{}).Run(context.Background(), redrive.Request{Class: redrive.Classes{order.ClassUnknown}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Moved != 1 {
		t.Fatalf("got %d moved, want 1", res.Moved)
	}
	got := receiveAll(t, e.client, e.cfg.QueueURL)
	want := typedAttrs(attrs)
	want[order.AttrRedrives] = "Number:1"
	if diff := cmp.Diff(want, plainAttrs(got["R1"])); diff != "" {
		t.Errorf("attributes of the moved order (-want +got):\n%s", diff)
	}
}

// TestRunCapsRedrives: each move raises the order's Redrives attribute; with MaxRedrives, an
// order redriven that many times stays parked (a scheduled redrive leaves it to a person), and
// the others move with their count one higher.
func TestRunCapsRedrives(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for id, redrives := range map[string]string{"N0": "", "N1": "1", "N2": "2", "N5": "5"} {
		attrs := sqsAttrs(map[string]string{order.AttrOrderID: id, order.AttrFailureClass: order.ClassExhausted})
		if redrives != "" {
			attrs[order.AttrRedrives] = sqstypes.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(redrives)}
		}
		if _, err := e.client.SendMessage(context.Background(), &sqs.SendMessageInput{
			QueueUrl: aws.String(e.cfg.DLQURL), MessageBody: aws.String(`{"id":"` + id + `"}`), MessageAttributes: attrs,
		}); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	res, err := newRedriver(t, e.cfg, e.client, redrive.Options{}).Run(context.Background(),
		redrive.Request{Class: redrive.Classes{order.ClassExhausted}, MaxRedrives: 2})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Moved != 2 || res.Skipped != 2 {
		t.Errorf("moved %d, skipped %d; want 2 (N0, N1) and 2 (N2, N5)", res.Moved, res.Skipped)
	}
	moved := map[string]string{}
	for id, m := range receiveAll(t, e.client, e.cfg.QueueURL) {
		moved[id] = plainAttrs(m)[order.AttrRedrives]
	}
	if diff := cmp.Diff(map[string]string{"N0": "Number:1", "N1": "Number:2"}, moved); diff != "" {
		t.Errorf("Redrives of the moved orders (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"N2", "N5"}, keys(receiveAll(t, e.client, e.cfg.DLQURL))); diff != "" {
		t.Errorf("orders left parked (-want +got):\n%s", diff)
	}
}

func TestRunCountsByClass(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	park(t, e.client, e.cfg.DLQURL, loadParked(t))
	got, err := newRedriver(t, e.cfg, e.client, redrive.Options{}).Run(context.Background(), redrive.Request{Class: redrive.Classes{order.ClassExhausted, order.ClassUnknown}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := map[string]redrive.ClassCount{
		order.ClassPermanent:   {Scanned: 2},
		order.ClassExhausted:   {Scanned: 2, Selected: 2, Moved: 2},
		order.ClassUndecodable: {Scanned: 1},
		order.ClassUnknown:     {Scanned: 1, Selected: 1, Moved: 1},
	}
	if diff := cmp.Diff(want, got.ByClass); diff != "" {
		t.Errorf("by class (-want +got):\n%s", diff)
	}
}

func TestRunDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fixture := loadParked(t)
	park(t, e.client, e.cfg.DLQURL, fixture)

	req := redrive.Request{Class: redrive.Classes{order.ClassPermanent, order.ClassUnknown}, DryRun: true}
	got, err := newRedriver(t, e.cfg, e.client, redrive.Options{}).Run(context.Background(), req)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := redrive.Result{
		Mode: redrive.ModeSelective, DryRun: true, Stop: redrive.StopEmpty,
		Scanned: 6, Selected: 3, Skipped: 3, Released: 6,
		Listing: []redrive.Entry{
			{OrderID: "A1", Class: "permanent", Detail: "HTTP 422: unknown currency", Source: "s3://in/uploads/2026/a.csv", SourceVersion: "null", Line: 2, Attempts: 1, ParkedAt: "2026-11-24T10:00:00Z"},
			{OrderID: "A2", Class: "permanent", Detail: "HTTP 409: conflict", Source: "s3://in/uploads/2026/a.csv", SourceVersion: "null", Line: 3, Attempts: 1, ParkedAt: "2026-11-24T10:00:01Z"},
			{OrderID: "A6", Class: "unknown", Source: "s3://in/uploads/2026/b.jsonl", SourceVersion: "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", Line: 3},
		},
	}
	for _, l := range got.Listing {
		if l.MessageID == "" {
			t.Errorf("listing entry %s has no message id", l.OrderID)
		}
	}
	sortListing := cmp.Transformer("sort", func(in []redrive.Entry) []redrive.Entry {
		out := slices.Clone(in)
		slices.SortFunc(out, func(a, b redrive.Entry) int { return strings.Compare(a.OrderID, b.OrderID) })
		return out
	})
	ignoreID := cmp.FilterPath(func(p cmp.Path) bool { return strings.HasSuffix(p.String(), "MessageID") }, cmp.Ignore())
	if diff := cmp.Diff(want, got, ignoreByClass(), sortListing, ignoreID); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	checkMoved(t, e, nil)
	checkParked(t, e, allOrders)
}

// failingSQS passes every call to the real client except those it is told to fail.
type failingSQS struct {
	redrive.SQS
	sendFails    func(orderID string) bool // nil: no send fails
	deleteFails  bool
	releaseFails bool
}

func (f failingSQS) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	if f.releaseFails {
		return nil, errInjected
	}
	return f.SQS.ChangeMessageVisibilityBatch(ctx, in, opts...)
}

var errInjected = errors.New("injected failure")

func (f failingSQS) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if f.sendFails != nil && f.sendFails(aws.ToString(in.MessageAttributes[order.AttrOrderID].StringValue)) {
		return nil, errInjected
	}
	return f.SQS.SendMessage(ctx, in, opts...)
}

func (f failingSQS) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	if f.deleteFails {
		return nil, errInjected
	}
	return f.SQS.DeleteMessage(ctx, in, opts...)
}

// TestRunWithFailures injects failures into the real client: nothing is lost, and every
// message not moved is still in the DLQ.
func TestRunWithFailures(t *testing.T) {
	tests := []struct {
		name        string
		fail        failingSQS
		req         redrive.Request
		wantErr     error
		want        redrive.Result // the counts compared: Moved, Failed, DeleteFailed, Released
		wantMoved   []string       // on the orders queue
		wantVisible []string       // visible in the DLQ right after the run
		wantHidden  string         // DLQ messages in flight once wantVisible were received
	}{
		{
			name:        "send fails for two orders: they stay in the DLQ",
			fail:        failingSQS{sendFails: func(id string) bool { return id == "A2" || id == "A4" }},
			want:        redrive.Result{Moved: 4, Failed: 2, Released: 2},
			wantMoved:   []string{"A1", "A3", "A5", "A6"},
			wantVisible: []string{"A2", "A4"},
			wantHidden:  "2",
		},
		{
			name:        "three sends fail in a row: the run stops",
			fail:        failingSQS{sendFails: func(string) bool { return true }},
			wantErr:     errInjected,
			want:        redrive.Result{Failed: 3, Released: 6},
			wantVisible: allOrders,
			wantHidden:  "6",
		},
		{
			name:        "delete fails after the send: counted, the copy stays hidden in the DLQ",
			fail:        failingSQS{deleteFails: true},
			req:         redrive.Request{Class: redrive.Classes{order.ClassUnknown}},
			want:        redrive.Result{Moved: 1, DeleteFailed: 1, Released: 5},
			wantMoved:   []string{"A6"},
			wantVisible: without(allOrders, "A6"),
			wantHidden:  "6",
		},
		{
			name:       "release fails: not an error, the skipped reappear later",
			fail:       failingSQS{releaseFails: true},
			req:        redrive.Request{Class: redrive.Classes{order.ClassPermanent}},
			want:       redrive.Result{Moved: 2},
			wantMoved:  []string{"A1", "A2"},
			wantHidden: "4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			park(t, e.client, e.cfg.DLQURL, loadParked(t))
			c := tt.fail
			c.SQS = e.client

			res, err := newRedriver(t, e.cfg, c, redrive.Options{}).Run(context.Background(), tt.req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			got := redrive.Result{Moved: res.Moved, Failed: res.Failed, DeleteFailed: res.DeleteFailed, Released: res.Released}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			checkMoved(t, e, tt.wantMoved)
			checkParked(t, e, tt.wantVisible)
			if n := inFlight(t, e); n != tt.wantHidden {
				t.Errorf("got %s messages in flight in the DLQ, want %s", n, tt.wantHidden)
			}
		})
	}
}

// inFlight is the DLQ's ApproximateNumberOfMessagesNotVisible.
func inFlight(t *testing.T, e env) string {
	t.Helper()
	out, err := e.client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(e.cfg.DLQURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
	})
	if err != nil {
		t.Fatalf("get DLQ attributes: %v", err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)]
}

// countingLimiter allows allow waits, then fails.
type countingLimiter struct {
	waits, allow int
}

var errLimiter = errors.New("limiter closed")

func (l *countingLimiter) Wait(ctx context.Context) error {
	if l.waits >= l.allow {
		return errLimiter
	}
	l.waits++
	return nil
}

func TestRunWaitsForTheLimiter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		allow     int
		wantMoved int
		wantErr   error
	}{
		{"one wait per message", 100, 3, nil},
		{"limiter error stops the move", 1, 1, errLimiter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			park(t, e.client, e.cfg.DLQURL, loadParked(t))
			lim := &countingLimiter{allow: tt.allow}
			r := newRedriver(t, e.cfg, e.client, redrive.Options{Limiter: lim})

			got, err := r.Run(context.Background(), redrive.Request{Source: "s3://in/uploads/2026/b.jsonl"})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if lim.waits != tt.wantMoved || got.Moved != tt.wantMoved {
				t.Errorf("got %d waits and %d moved, want %d", lim.waits, got.Moved, tt.wantMoved)
			}
			if n := len(receiveAll(t, e.client, e.cfg.QueueURL)); n != tt.wantMoved {
				t.Errorf("got %d on the orders queue, want %d", n, tt.wantMoved)
			}
			if n := len(receiveAll(t, e.client, e.cfg.DLQURL)); n != 6-tt.wantMoved {
				t.Errorf("got %d visible in the DLQ, want %d", n, 6-tt.wantMoved)
			}
		})
	}
}

func TestRunStopsBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	park(t, e.client, e.cfg.DLQURL, loadParked(t))
	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	r := newRedriver(t, e.cfg, e.client, redrive.Options{Now: func() time.Time { return deadline.Add(-redrive.DefaultStopMargin / 2) }})

	got, err := r.Run(ctx, redrive.Request{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got.Stop != redrive.StopDeadline || got.Scanned != 0 || got.Moved != 0 {
		t.Errorf("got stop %q scanned %d moved %d, want %q 0 0", got.Stop, got.Scanned, got.Moved, redrive.StopDeadline)
	}
	checkParked(t, e, allOrders)
}

// replayingSQS answers every ReceiveMessage after the first with the first answer, as if the
// messages had become visible again during the scan.
type replayingSQS struct {
	redrive.SQS
	first *sqs.ReceiveMessageOutput
}

func (r *replayingSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if r.first != nil {
		return r.first, nil
	}
	out, err := r.SQS.ReceiveMessage(ctx, in, opts...)
	r.first = out
	return out, err
}

func TestRunEndsWhenMessagesReappear(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	park(t, e.client, e.cfg.DLQURL, loadParked(t))
	got, err := newRedriver(t, e.cfg, &replayingSQS{SQS: e.client}, redrive.Options{}).Run(context.Background(), redrive.Request{DryRun: true})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got.Stop != redrive.StopSeen || got.Scanned != 6 || got.Selected != 6 || got.Released != 6 {
		t.Errorf("got stop %q scanned %d selected %d released %d, want %q 6 6 6", got.Stop, got.Scanned, got.Selected, got.Released, redrive.StopSeen)
	}
	checkParked(t, e, allOrders)
}

// endlessSQS is a DLQ that reports 5 messages and returns ten new ones on every receive.
type endlessSQS struct {
	redrive.SQS
	n int
}

func (f *endlessSQS) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{"ApproximateNumberOfMessages": "5"}}, nil
}

func (f *endlessSQS) ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	var out sqs.ReceiveMessageOutput
	for range 10 {
		f.n++
		id := fmt.Sprintf("m-%d", f.n)
		out.Messages = append(out.Messages, sqstypes.Message{MessageId: aws.String(id), ReceiptHandle: aws.String("h" + id), Body: aws.String("{}")})
	}
	return &out, nil
}

func (f *endlessSQS) ChangeMessageVisibilityBatch(_ context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	var out sqs.ChangeMessageVisibilityBatchOutput
	for _, e := range in.Entries {
		out.Successful = append(out.Successful, sqstypes.ChangeMessageVisibilityBatchResultEntry{Id: e.Id})
	}
	return &out, nil
}

func TestRunEndsAtTheScanBound(t *testing.T) {
	// 5 messages announced: the bound is 5 + 100 = 105, reached after the 11th receive.
	got, err := newRedriver(t, redrive.Config{QueueURL: "q", DLQURL: "d"}, &endlessSQS{}, redrive.Options{}).Run(context.Background(), redrive.Request{DryRun: true})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got.Stop != redrive.StopBound || got.Scanned != 110 || got.Released != 110 {
		t.Errorf("got stop %q scanned %d released %d, want %q 110 110", got.Stop, got.Scanned, got.Released, redrive.StopBound)
	}
}

func TestRunWritesAnAuditLinePerMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	park(t, e.client, e.cfg.DLQURL, loadParked(t))
	var buf bytes.Buffer
	r := redrive.New(e.cfg, e.client, redrive.Options{Journal: newJournal(t), Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if _, err := r.Run(context.Background(), redrive.Request{Class: redrive.Classes{order.ClassPermanent}}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	type line struct {
		Msg, Action, MessageID, OrderID, Class, Source string
		Line                                           int
		DryRun                                         bool
	}
	got := map[string]line{}
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var v line
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if v.Msg == "redrive" {
			if v.MessageID == "" {
				t.Errorf("audit line %s has no messageID", l)
			}
			v.MessageID = ""
			if prev, ok := got[v.OrderID]; ok {
				v.Action = prev.Action + "," + v.Action
			}
			got[v.OrderID] = v
		}
	}
	want := map[string]line{
		"A1": {Msg: "redrive", Action: "moving,move", OrderID: "A1", Class: "permanent", Source: "s3://in/uploads/2026/a.csv", Line: 2},
		"A2": {Msg: "redrive", Action: "moving,move", OrderID: "A2", Class: "permanent", Source: "s3://in/uploads/2026/a.csv", Line: 3},
		"A3": {Msg: "redrive", Action: "skip", OrderID: "A3", Class: "exhausted", Source: "s3://in/uploads/2026/b.jsonl", Line: 1},
		"A4": {Msg: "redrive", Action: "skip", OrderID: "A4", Class: "exhausted", Source: "s3://in/uploads/2027/c.jsonl", Line: 7},
		"A5": {Msg: "redrive", Action: "skip", OrderID: "A5", Class: "undecodable", Source: "s3://in/uploads/2026/b.jsonl", Line: 2},
		"A6": {Msg: "redrive", Action: "skip", OrderID: "A6", Class: "unknown", Source: "s3://in/uploads/2026/b.jsonl", Line: 3},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit lines by order (-want +got):\n%s", diff)
	}
}

func TestHandleRefusesBadRequests(t *testing.T) {
	r := newRedriver(t, redrive.Config{QueueURL: "q", DLQURL: "d"}, &endlessSQS{}, redrive.Options{})
	_, err := r.Handle(context.Background(), redrive.Request{Class: redrive.Classes{"nope"}})
	if !errors.Is(err, redrive.ErrBadRequest) {
		t.Errorf("got %v, want ErrBadRequest", err)
	}
	r = newRedriver(t, redrive.Config{QueueURL: "q", DLQURL: "d", Rate: -1}, &endlessSQS{}, redrive.Options{})
	if res, err := r.Handle(context.Background(), redrive.Request{}); err == nil || res.Scanned != 0 {
		t.Errorf("invalid config: got scanned %d, error %v; want 0 and an error", res.Scanned, err)
	}
}

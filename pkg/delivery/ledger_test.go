package delivery_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/delivery"
	"github.com/orderpipe/orderpipe/pkg/delivery/deliverytest"
)

// manual is a clock the test moves.
type manual struct {
	mu sync.Mutex
	t  time.Time
}

func (m *manual) now() time.Time      { m.mu.Lock(); defer m.mu.Unlock(); return m.t }
func (m *manual) add(d time.Duration) { m.mu.Lock(); m.t = m.t.Add(d); m.mu.Unlock() }

// newLedger creates a table on the stand-in and a Ledger on it with a manual clock.
func newLedger(t *testing.T) (*delivery.Ledger, *dynamodb.Client, string, *manual) {
	t.Helper()
	db, table := deliverytest.NewTable(t)
	clk := &manual{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	return delivery.New(db, table, clk.now), db, table, clk
}

func TestClaimDeliverRefuse(t *testing.T) {
	l, db, table, clk := newLedger(t)
	ctx := context.Background()
	lease := clk.now().Add(40 * time.Second)
	c, err := l.Claim(ctx, "A-1~k", "A-1", lease)
	if err != nil || c.Repeat || c.Token == "" {
		t.Fatalf("first claim: %+v, %v; want a claim, no repeat", c, err)
	}
	var held *delivery.HeldError
	if _, err := l.Claim(ctx, "A-1~k", "A-1", lease.Add(time.Minute)); !errors.As(err, &held) || !held.Until.Equal(lease) {
		t.Fatalf("second claim while the lease lives: got %v, want HeldError until %v", err, lease)
	}
	if err := l.Delivered(ctx, c); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour) // long past the lease: delivered stays delivered
	if _, err := l.Claim(ctx, "A-1~k", "A-1", clk.now().Add(time.Minute)); !errors.Is(err, delivery.ErrDelivered) {
		t.Fatalf("claim after delivery: got %v, want ErrDelivered", err)
	}
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table),
		Key: map[string]types.AttributeValue{delivery.KeyAttribute: &types.AttributeValueMemberS{Value: "A-1~k"}}})
	if err != nil {
		t.Fatal(err)
	}
	exp, ok := out.Item[delivery.ExpiresAttribute].(*types.AttributeValueMemberN)
	if want := clk.now().Add(-time.Hour).Add(delivery.RecordTTL).Unix(); !ok || exp.Value != itoa(want) {
		t.Errorf("expiresAt %v, want %d (the mark plus RecordTTL)", out.Item[delivery.ExpiresAttribute], want)
	}
	ttl, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != delivery.ExpiresAttribute || d.TimeToLiveStatus != types.TimeToLiveStatusEnabled {
		t.Errorf("TTL %+v: want enabled on %s", d, delivery.ExpiresAttribute)
	}
}

func TestReleaseLetsTheNextCopyClaim(t *testing.T) {
	l, _, _, clk := newLedger(t)
	ctx := context.Background()
	c, err := l.Claim(ctx, "B-1~k", "B-1", clk.now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	c2, err := l.Claim(ctx, "B-1~k", "B-1", clk.now().Add(time.Minute))
	if err != nil || c2.Repeat {
		t.Fatalf("claim after release: %+v, %v; want a claim that is no repeat", c2, err)
	}
	// A stale release (c's token) leaves c2's claim alone.
	if err := l.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	var held *delivery.HeldError
	if _, err := l.Claim(ctx, "B-1~k", "B-1", clk.now().Add(time.Minute)); !errors.As(err, &held) {
		t.Fatalf("claim after a stale release: got %v, want HeldError", err)
	}
}

// TestCrashAfterClaim: a sender that claimed and never marked (killed mid-PUT) holds the key
// until its lease ends; then the next copy may send, flagged as a possible repeat.
func TestCrashAfterClaim(t *testing.T) {
	l, _, _, clk := newLedger(t)
	ctx := context.Background()
	if _, err := l.Claim(ctx, "C-1~k", "C-1", clk.now().Add(40*time.Second)); err != nil {
		t.Fatal(err)
	}
	clk.add(39 * time.Second)
	var held *delivery.HeldError
	if _, err := l.Claim(ctx, "C-1~k", "C-1", clk.now().Add(40*time.Second)); !errors.As(err, &held) {
		t.Fatalf("before the lease ends: got %v, want HeldError", err)
	}
	clk.add(2 * time.Second)
	c, err := l.Claim(ctx, "C-1~k", "C-1", clk.now().Add(40*time.Second))
	if err != nil || !c.Repeat || c.Claims != 2 {
		t.Fatalf("after the lease: %+v, %v; want a repeat claim, 2 claims", c, err)
	}
}

func TestAbandonEndsTheLease(t *testing.T) {
	l, _, _, clk := newLedger(t)
	ctx := context.Background()
	c, err := l.Claim(ctx, "D-1~k", "D-1", clk.now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Abandon(ctx, c); err != nil {
		t.Fatal(err)
	}
	c2, err := l.Claim(ctx, "D-1~k", "D-1", clk.now().Add(time.Minute))
	if err != nil || !c2.Repeat {
		t.Fatalf("claim after abandon: %+v, %v; want a repeat claim at once", c2, err)
	}
}

// TestConcurrentClaims: of many copies claiming one key at once, exactly one gets it.
func TestConcurrentClaims(t *testing.T) {
	l, _, _, clk := newLedger(t)
	var won, held atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Claim(context.Background(), "E-1~k", "E-1", clk.now().Add(time.Minute))
			var h *delivery.HeldError
			switch {
			case err == nil:
				won.Add(1)
			case errors.As(err, &h):
				held.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 || held.Load() != 15 {
		t.Errorf("claims won %d, held %d; want 1, 15", won.Load(), held.Load())
	}
}

// TestStoreUnreachable: a store that cannot be reached is neither delivered nor held.
func TestStoreUnreachable(t *testing.T) {
	cfg := awstest.Config(t)
	cfg.BaseEndpoint = aws.String("http://127.0.0.1:1")
	cfg.RetryMaxAttempts = 1
	l := delivery.New(dynamodb.NewFromConfig(cfg), "nowhere", nil)
	_, err := l.Claim(context.Background(), "F-1~k", "F-1", time.Now().Add(time.Minute))
	var held *delivery.HeldError
	if err == nil || errors.Is(err, delivery.ErrDelivered) || errors.As(err, &held) {
		t.Fatalf("got %v, want a store error", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

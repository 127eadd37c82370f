package delivery_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/pkg/delivery"
	"github.com/orderpipe/orderpipe/pkg/delivery/deliverytest"
)

// BenchmarkClaimDelivered is the record's work for one delivered order (claim, then mark)
// against the stand-in; it reports the DynamoDB requests per order, which is what is billed.
func BenchmarkClaimDelivered(b *testing.B) {
	l := deliverytest.NewLedger(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		key := "B-" + strconv.Itoa(i) + "~k"
		c, err := l.Claim(ctx, key, "B", time.Now().Add(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Delivered(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2, "writes/order")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/order")
}

// BenchmarkDuplicateCopy is the record's work for a copy of a delivered order: one claim, refused.
func BenchmarkDuplicateCopy(b *testing.B) {
	l := deliverytest.NewLedger(b)
	ctx := context.Background()
	c, err := l.Claim(ctx, "D~k", "D", time.Now().Add(time.Minute))
	if err == nil {
		err = l.Delivered(ctx, c)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := l.Claim(ctx, "D~k", "D", time.Now().Add(time.Minute)); err != delivery.ErrDelivered {
			b.Fatalf("got %v, want ErrDelivered", err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/copy")
}

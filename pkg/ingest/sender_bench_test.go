package ingest_test

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/order"
)

// acceptAll is a BatchSender that accepts every entry and allocates nothing: its answers are
// made once, one per batch length, and only read by the Sender.
type acceptAll [ingest.MaxBatchEntries + 1]*sqs.SendMessageBatchOutput

func newAcceptAll() *acceptAll {
	var a acceptAll
	for n := range a {
		a[n] = &sqs.SendMessageBatchOutput{Successful: make([]sqstypes.SendMessageBatchResultEntry, n)}
	}
	return &a
}

func (a *acceptAll) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return a[len(in.Entries)], nil
}

// BenchmarkSenderBuild is the cost per order of building SendMessageBatch requests, as the
// sending pass does: one op is one ~100-byte order added to a Sender whose queue accepts
// everything at once (SEND_CONCURRENCY 4). allocs/op and B/op are per order; allocs/order is
// allocs/op not rounded down.
func BenchmarkSenderBuild(b *testing.B) {
	const n = 1024
	ids, bodies := make([]string, n), make([][]byte, n)
	for i := range n {
		l := strings.TrimSuffix(benchLine(i), "\n")
		bodies[i], ids[i] = []byte(l), l[7:18]
	}
	src := "s3://bucket/uploads/big.jsonl"
	s := ingest.NewSender(context.Background(), newAcceptAll(), "http://queue", ingest.SenderOptions{})
	defer s.Close()
	e := &ingest.Entry{Source: src, Version: order.NullVersion} // reused, as the sending pass does
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.ID, e.Body, e.Line = ids[i%n], bodies[i%n], int64(i+1)
		if err := s.Add(e); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	if got := s.Sent(); got != int64(b.N) {
		b.Errorf("sent %d, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N), "allocs/order") // allocs/op, unrounded
}

package ingest_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// benchLine is the i-th order line of a generated file (about 100 bytes).
func benchLine(i int) string {
	return fmt.Sprintf(`{"id":"o-%09d","amount":"%d.%02d","currency":"EUR","customer":"c-%06d","sku":"SKU-%05d"}`+"\n",
		i, i%9973, i%100, i%999983, i%99991)
}

// benchOrders is the orders per iteration of the moto benchmarks. Each iteration sends to a
// fresh queue: moto's SendMessage costs grow with the number of messages already in the
// queue (it recounts them for every message), which would swamp what is measured here.
const benchOrders = 300

// freshQueue points e at a new orders queue, outside the timer, and deletes the old one.
func freshQueue(b *testing.B, e *env) {
	b.StopTimer()
	defer b.StartTimer()
	deleteQueue(b, e)
	e.ordersURL, _ = awstest.NewQueue(b, awstest.Config(b), nil)
	e.cfg.OrdersQueueURL = e.ordersURL
	e.svc = ingest.New(e.cfg, e.s3, e.sqs, ingest.Options{})
}

// BenchmarkIngestToMoto is the ingest rate through Service.Ingest: read the object from moto's
// S3, parse, send to moto's SQS. Compare with BenchmarkSendMessageBatchToMoto. It also reports
// the S3 requests and SendMessageBatch calls per file, counted at the client interfaces.
func BenchmarkIngestToMoto(b *testing.B) {
	e := newEnv(b)
	var file strings.Builder
	for i := range benchOrders {
		file.WriteString(benchLine(i))
	}
	ctx := context.Background()
	store := newSpyStore(e.s3)
	var entries, calls int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		freshQueue(b, e)
		b.StopTimer()
		svc := ingest.New(e.cfg, store, countingQueue(e.sqs, &entries, &calls), ingest.Options{})
		key := "uploads/bench-" + strconv.Itoa(i%10) + ".jsonl"
		if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("state/" + key + "@null.json")}); err != nil {
			b.Fatal(err)
		}
		e.put(b, key, []byte(file.String()))
		b.StartTimer()
		out, err := svc.Ingest(ctx, s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, "")
		if err != nil || out != ingest.Done {
			b.Fatalf("Ingest = %v, %v", out, err)
		}
	}
	b.StopTimer()
	if entries != benchOrders*b.N {
		b.Errorf("sent %d orders, want %d", entries, benchOrders*b.N)
	}
	b.ReportMetric(float64(benchOrders*b.N)/b.Elapsed().Seconds(), "orders/s")
	b.ReportMetric(float64(store.calls)/float64(b.N), "s3-calls/file")
	b.ReportMetric(float64(calls)/float64(b.N), "batch-calls/file")
	deleteQueue(b, e)
}

// BenchmarkSendMessageBatchToMoto sends the same bodies and attributes as
// BenchmarkIngestToMoto straight with SendMessageBatch, 10 a call, SEND_CONCURRENCY calls in
// flight: the floor that ingest's overhead is measured against.
func BenchmarkSendMessageBatchToMoto(b *testing.B) {
	e := newEnv(b)
	var batches [][]sqstypes.SendMessageBatchRequestEntry
	for i := 0; i < benchOrders; i += 10 {
		var batch []sqstypes.SendMessageBatchRequestEntry
		for j := i; j < i+10; j++ {
			str := func(v string) sqstypes.MessageAttributeValue {
				return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
			}
			batch = append(batch, sqstypes.SendMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(j - i)), MessageBody: aws.String(strings.TrimSuffix(benchLine(j), "\n")),
				MessageAttributes: map[string]sqstypes.MessageAttributeValue{
					order.AttrOrderID: str(fmt.Sprintf("o-%09d", j)), order.AttrSource: str("s3://" + e.bucket + "/uploads/bench-0.jsonl"),
					order.AttrSourceVersion: str(order.NullVersion),
					order.AttrLine:          {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(j + 1))},
				},
			})
		}
		batches = append(batches, batch)
	}
	ctx := context.Background()
	var calls atomic.Int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		freshQueue(b, e)
		work := make(chan []sqstypes.SendMessageBatchRequestEntry)
		var wg sync.WaitGroup
		for range e.cfg.SendConcurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for batch := range work {
					calls.Add(1)
					if _, err := e.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &e.ordersURL, Entries: batch}); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for _, batch := range batches {
			work <- batch
		}
		close(work)
		wg.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(benchOrders*b.N)/b.Elapsed().Seconds(), "orders/s")
	b.ReportMetric(float64(calls.Load())/float64(b.N), "batch-calls/file")
	deleteQueue(b, e)
}

func deleteQueue(b *testing.B, e *env) {
	if _, err := e.sqs.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: &e.ordersURL}); err != nil {
		b.Logf("delete queue: %v", err)
	}
}

// discard is a Queue that accepts everything and keeps nothing.
type discard struct{}

func (discard) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	out := &sqs.SendMessageBatchOutput{Successful: make([]sqstypes.SendMessageBatchResultEntry, len(in.Entries))}
	for i, e := range in.Entries {
		out.Successful[i].Id = e.Id
	}
	return out, nil
}

func (discard) ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func (discard) SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return &sqs.SendMessageOutput{}, nil
}

// GetQueueAttributes answers an empty queue: the room is never short.
func (discard) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return &sqs.GetQueueAttributesOutput{}, nil
}

// BenchmarkIngestPeakRSS ingests a generated file of 100 MB (1 GB with ORDERPIPE_BENCH_1GB=1)
// streamed from moto's S3 and reports the process's peak resident set (VmHWM) during the
// ingest, with the memory limit the function's main sets (ingest.ApplyMemoryLimit:
// GOMEMLIMIT=off runs without one). Orders go to a discard sink: pushing millions of messages
// into moto would take hours.
func BenchmarkIngestPeakRSS(b *testing.B) {
	defer debug.SetMemoryLimit(ingest.ApplyMemoryLimit(os.Getenv)) // as the function's main does
	size := benchFileSize()
	if os.Getenv("ORDERPIPE_BENCH_1GB") == "1" {
		size = 1 << 30
	}
	e := newEnv(b)
	const key = "uploads/big.jsonl"
	lines := uploadGenerated(b, e, key, size)
	e.cfg.APIRate = 1e6 // a room for the whole file: the discard sink drains at once
	svc := ingest.New(e.cfg, e.s3, discard{}, ingest.Options{})
	ctx := context.Background()
	resetPeakRSS(b)
	before := vmHWM(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ingestAgain(ctx, b, e, svc, key)
	}
	b.StopTimer()
	var rep ingest.Report
	e.get(b, "reports/"+key+".json", &rep)
	if rep.Enqueued != lines {
		b.Errorf("enqueued %d, want %d", rep.Enqueued, lines)
	}
	b.ReportMetric(float64(vmHWM(b))/(1<<20), "peak-RSS-MB")
	b.ReportMetric(float64(before)/(1<<20), "RSS-before-MB")
	b.ReportMetric(memoryLimitMB(), "mem-limit-MB")
	b.ReportMetric(float64(size*int64(b.N))/(1<<20)/b.Elapsed().Seconds(), "MB/s")
	b.ReportMetric(float64(lines*int64(b.N))/b.Elapsed().Seconds(), "orders/s")
	b.Logf("%d MB, %d orders, duplicate check %s", size>>20, lines, rep.DuplicateCheck)
	if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String(key)}); err != nil {
		b.Logf("delete %s: %v", key, err)
	}
}

// uploadGenerated streams a generated orders file of about size bytes to key with a multipart
// upload (8 MiB parts) and returns its number of lines. A key ending in .gz gets the file
// gzip-compressed (size is then the uncompressed size).
func uploadGenerated(b *testing.B, e *env, key string, size int64) int64 {
	b.Helper()
	ctx := context.Background()
	mp, err := e.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &e.bucket, Key: aws.String(key)})
	if err != nil {
		b.Fatal(err)
	}
	pr, pw := io.Pipe()
	var lines int64
	go func() {
		var out io.Writer = pw
		var zw *gzip.Writer
		if strings.HasSuffix(key, ".gz") {
			zw = gzip.NewWriter(pw)
			out = zw
		}
		w := bufio.NewWriterSize(out, 1<<16)
		for n := int64(0); n < size; lines++ {
			l := benchLine(int(lines))
			w.WriteString(l)
			n += int64(len(l))
		}
		w.Flush()
		if zw != nil {
			zw.Close()
		}
		pw.Close()
	}()
	var parts []s3types.CompletedPart
	buf := make([]byte, 8<<20)
	for num := int32(1); ; num++ {
		n, err := io.ReadFull(pr, buf)
		if n > 0 {
			out, err := e.s3.UploadPart(ctx, &s3.UploadPartInput{
				Bucket: &e.bucket, Key: aws.String(key), UploadId: mp.UploadId, PartNumber: aws.Int32(num), Body: bytes.NewReader(buf[:n]),
			})
			if err != nil {
				b.Fatalf("upload part %d: %v", num, err)
			}
			parts = append(parts, s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &e.bucket, Key: aws.String(key), UploadId: mp.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		b.Fatal(err)
	}
	return lines
}

// benchFileSize is the size of the generated files of the RSS and verify benchmarks: 100 MB, or
// ORDERPIPE_BENCH_MB.
func benchFileSize() int64 {
	if v := os.Getenv("ORDERPIPE_BENCH_MB"); v != "" {
		mb, _ := strconv.Atoi(v)
		return int64(mb) << 20
	}
	return 100 << 20
}

// resetPeakRSS collects garbage, returns it to the OS and resets the process's VmHWM.
func resetPeakRSS(b *testing.B) {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset the peak RSS: %v", err)
	}
}

// ingestAgain forgets key's state (timer stopped) and ingests it whole once more.
func ingestAgain(ctx context.Context, b *testing.B, e *env, svc *ingest.Service, key string) {
	b.Helper()
	b.StopTimer()
	if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("state/" + key + "@null.json")}); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	if out, err := svc.Ingest(ctx, s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, ""); err != nil || out != ingest.Done {
		b.Fatalf("Ingest = %v, %v", out, err)
	}
}

// vmHWM is the process's peak resident set size in bytes.
func vmHWM(b *testing.B) int64 {
	b.Helper()
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// BenchmarkIngestVerify ingests a generated file of 100 MB (ORDERPIPE_BENCH_MB to change it),
// JSON Lines and the same lines gzip-compressed, streamed from moto's S3 to a discard sink, with
// and without the verifying pass side by side: each iteration ingests the file once without and
// once with it, alternating which goes first, so that the other work on the machine weighs on
// both alike. verify-share-% is the part of the ingest time the verifying pass costs (1 -
// without/with, from the summed wall times), verify-cpu-share-% the same from this process's
// CPU time (user + system: what ingest itself spends, moto's serving of the second GET aside).
// peak-RSS-MB is the process's peak resident set during the ingests with the pass (reset before
// each ingest), peak-RSS-without-MB without it; the process runs with the memory limit the
// function's main sets (ingest.ApplyMemoryLimit: GOMEMLIMIT=off runs without one). The sink
// sends nothing: against a real orders queue the sending pass takes far longer and the share is
// smaller still.
func BenchmarkIngestVerify(b *testing.B) {
	defer debug.SetMemoryLimit(ingest.ApplyMemoryLimit(os.Getenv)) // as the function's main does
	size := benchFileSize()
	e := newEnv(b)
	e.cfg.APIRate = 1e6 // a room for the whole file: the discard sink drains at once
	ctx := context.Background()
	for _, key := range []string{"uploads/verify.jsonl", "uploads/verify.jsonl.gz"} {
		lines := uploadGenerated(b, e, key, size)
		b.Run(strings.TrimPrefix(key, "uploads/verify."), func(b *testing.B) {
			var wall, cpu, peak, heap [2]float64 // [0]: without the pass, [1]: with it
			for i := 0; i < b.N; i++ {
				for j := range 2 {
					verify := (i+j)%2 == 1 // without first on even iterations
					v := 0
					if verify {
						v = 1
					}
					svc := ingest.New(e.cfg, e.s3, discard{}, ingest.Options{})
					ingest.SetVerify(svc, verify)
					b.StopTimer()
					resetPeakRSS(b)
					stopHeap := samplePeakHeap()
					cpu0, start := cpuTime(b), time.Now()
					b.StartTimer()
					ingestAgain(ctx, b, e, svc, key)
					wall[v] += time.Since(start).Seconds()
					cpu[v] += cpuTime(b) - cpu0
					heap[v] = max(heap[v], stopHeap())
					peak[v] = max(peak[v], float64(vmHWM(b))/(1<<20))
					var rep ingest.Report
					if e.get(b, "reports/"+key+".json", &rep); rep.Enqueued != lines {
						b.Errorf("verify=%v: enqueued %d, want %d", verify, rep.Enqueued, lines)
					}
				}
			}
			n := float64(b.N)
			b.ReportMetric(wall[0]/n, "s-without")
			b.ReportMetric(wall[1]/n, "s-with")
			b.ReportMetric(100*(1-wall[0]/wall[1]), "verify-share-%")
			b.ReportMetric(100*(1-cpu[0]/cpu[1]), "verify-cpu-share-%")
			b.ReportMetric(peak[1], "peak-RSS-MB")
			b.ReportMetric(peak[0], "peak-RSS-without-MB")
			b.ReportMetric(heap[1], "peak-heap-MB")
			b.ReportMetric(heap[0], "peak-heap-without-MB")
			b.ReportMetric(float64(size)/(1<<20)/(wall[1]/n), "MB/s")
			b.ReportMetric(memoryLimitMB(), "mem-limit-MB")
		})
	}
}

// samplePeakHeap samples the Go heap (objects, live or not yet swept) every millisecond until
// the function it returns is called, which returns the largest sample in MB.
func samplePeakHeap() func() float64 {
	done := make(chan struct{})
	peak := make(chan float64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var most uint64
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			most = max(most, s[0].Value.Uint64())
			select {
			case <-done:
				peak <- float64(most) / (1 << 20)
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		return <-peak
	}
}

// memoryLimitMB is the process's soft memory limit in MB, 0 for none.
func memoryLimitMB() float64 {
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		return float64(l) / (1 << 20)
	}
	return 0
}

// cpuTime is the user + system CPU time this process has used, in seconds.
func cpuTime(b *testing.B) float64 {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkSendPassClock is the sending pass's cost per line: a generated file of 16 MiB
// (ORDERPIPE_BENCH_MB to change it) streamed from moto's S3 to the discard sink without the
// verifying pass. ns/line is the wall time, cpu-ns/line this process's CPU time (user + system:
// moto's serving aside), clock-looks/line the Now calls through the injected Clock.
func BenchmarkSendPassClock(b *testing.B) {
	size := int64(16 << 20)
	if os.Getenv("ORDERPIPE_BENCH_MB") != "" {
		size = benchFileSize()
	}
	e := newEnv(b)
	e.cfg.APIRate = 1e6 // a room for the whole file: the discard sink drains at once
	const key = "uploads/clock.jsonl"
	lines := uploadGenerated(b, e, key, size)
	clk := &countingClock{}
	svc := ingest.New(e.cfg, e.s3, discard{}, ingest.Options{Clock: clk})
	ingest.SetVerify(svc, false)
	var cpu float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cpu0 := cpuTime(b)
		b.StartTimer()
		ingestAgain(context.Background(), b, e, svc, key)
		cpu += cpuTime(b) - cpu0
	}
	b.StopTimer()
	n := float64(lines) * float64(b.N)
	b.ReportMetric(b.Elapsed().Seconds()*1e9/n, "ns/line")
	b.ReportMetric(cpu*1e9/n, "cpu-ns/line")
	b.ReportMetric(float64(clk.looks.Load())/n, "clock-looks/line")
}

package local

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/syncbuf"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// cpuCgroupRoot is the cgroup v1 CPU controller; the benchmark makes one group per dispatch
// process under it and removes it afterwards.
const cpuCgroupRoot = "/sys/fs/cgroup/cpu"

// lambdaFullVCPUMB is the memory at which Lambda gives a function one full vCPU: below it the
// CPU share is proportional to the memory (128 MB: 7.2 %).
const lambdaFullVCPUMB = 1769

// BenchmarkDispatchCPUShare runs the compiled dispatch bootstrap as deployed (pkg/local
// Processes behind the orders poller, the governor and the delivery record in the stand-in's
// DynamoDB, 2 instances at API_RATE 1) against the strict stand-in (a token bucket of one
// request at 1/s), each dispatch process in a cgroup v1 CPU group limited to the share of a vCPU
// Lambda gives the memory (cpu.cfs_quota_us = memory/1769 of cpu.cfs_period_us = 100 ms). One op
// is the whole run (-benchtime 1x). It needs root and a writable /sys/fs/cgroup/cpu, so it runs
// only with ORDERPIPE_BENCH_CPU_SHARE set: a comma-separated list of memory sizes in MB (for
// example 128,192,256; 0 runs without a group). ORDERPIPE_BENCH_ORDERS sets the orders per run
// (default 60), ORDERPIPE_BENCH_RATE the API's limit and API_RATE (default 1),
// ORDERPIPE_BENCH_INSTANCES the dispatch instances (default 2).
//
// It reports util% (accepted / (1 + 1/s x first-to-last arrival)), 429%, closer-than-1/rate
// (pairs of arrivals closer than 1 s at the stand-in), shortest-gap-ms, dupPUTs, throttled-periods and
// throttled-ms (the groups' cpu.stat), billed-s/order (wall time of the invocations per order
// delivered: what Lambda bills), invocations/order, written-late (requests written after their
// slot's end, from the orders' log lines), written-closer and written-shortest-gap-ms (as
// closer-than-1/rate and shortest-gap-ms for the times the requests were written: the senders'
// spacing, apart from the delay between a write and the stand-in's handler), given-back-late/order (orders given back
// because their sender woke, or could write, only after its slot's end three times), margin-ms-median and margin-ms-max (the GovernorMargin metric of the invocations),
// peak-rss-MB (VmHWM of the dispatch processes, the largest), restarts, load1 (the host's load average
// at the end: the figures depend on it), stall-ms-max (the longest this process, where the
// stand-in runs, was held up beyond a 10 ms sleep) and steal% (the host's vCPU time taken by
// the hypervisor during the run, /proc/stat).
func BenchmarkDispatchCPUShare(b *testing.B) {
	list := os.Getenv("ORDERPIPE_BENCH_CPU_SHARE")
	if list == "" {
		b.Skip("set ORDERPIPE_BENCH_CPU_SHARE=128,192 (memory sizes in MB; needs root and " + cpuCgroupRoot + ")")
	}
	orders := 60
	if v, err := strconv.Atoi(os.Getenv("ORDERPIPE_BENCH_ORDERS")); err == nil && v > 0 {
		orders = v
	}
	for _, f := range strings.Split(list, ",") {
		mb, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || mb < 0 {
			b.Fatalf("ORDERPIPE_BENCH_CPU_SHARE: %q is not a memory size in MB", f)
		}
		b.Run(fmt.Sprintf("memory=%dMB", mb), func(b *testing.B) {
			for b.Loop() {
				runCPUShare(b, mb, orders)
			}
		})
	}
}

func runCPUShare(b *testing.B, memoryMB, orders int) {
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "dispatch"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "ingest"), 0o755); err != nil {
		b.Fatal(err)
	}
	for _, fn := range []string{"ingest", "dispatch"} {
		if err := os.Symlink(buildFunction(b, "../../functions/"+fn), filepath.Join(dir, fn, "bootstrap")); err != nil {
			b.Fatal(err)
		}
	}
	rate, instances := 1.0, 2
	if v, err := strconv.ParseFloat(os.Getenv("ORDERPIPE_BENCH_RATE"), 64); err == nil && v > 0 {
		rate = v
	}
	if v, err := strconv.Atoi(os.Getenv("ORDERPIPE_BENCH_INSTANCES")); err == nil && v > 0 {
		instances = v
	}
	iv := time.Duration(float64(time.Second) / rate)
	api, err := apiserver.New(apiserver.Config{RPS: rate, Burst: 1, Latency: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := apiserver.Listen("127.0.0.1:0") // arrivals timed by the kernel: see apiserver.StampListener
	if err != nil {
		b.Fatal(err)
	}
	ts := &httptest.Server{Listener: ln, Config: api.HTTPServer()}
	ts.Start()
	defer ts.Close()
	s := pipeline.Defaults() // API_RATE 1, 2 instances, a 30 s dispatch timeout: as deployed
	s.APIRate, s.Instances, s.ReservedConcurrency = rate, instances, max(s.ReservedConcurrency, instances)
	var out syncbuf.Buffer
	p, err := NewPipeline(context.Background(), Options{
		AWS: awstest.Config(b), Names: NamesFor(awstest.Name(b, "cpushare")), Settings: s, APIBaseURL: ts.URL,
		Bootstraps: dir, BootstrapOutput: &out, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatalf("NewPipeline: %v", err)
	}
	var dispatchProcs []*Process
	for _, proc := range p.procs {
		if proc.FunctionName == "dispatch" {
			dispatchProcs = append(dispatchProcs, proc)
		}
	}
	for _, proc := range dispatchProcs {
		for deadline := time.Now().Add(time.Minute); proc.Pid() == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("the dispatch bootstrap did not start within a minute")
			}
		}
	}
	var groups []string
	defer func() {
		for _, g := range groups {
			removeCgroup(b, g)
		}
	}()
	if memoryMB > 0 {
		quota := int(math.Round(float64(memoryMB) / lambdaFullVCPUMB * 100000))
		for i, proc := range dispatchProcs {
			g, err := cpuCgroup(fmt.Sprintf("orderpipe-bench-%d-%d", os.Getpid(), i), quota, proc.Pid())
			if g != "" {
				groups = append(groups, g)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	var billedNs atomic.Int64
	handler := p.Orders.Handler
	p.Orders.Handler = func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		start := time.Now()
		defer func() { billedNs.Add(int64(time.Since(start))) }()
		return handler(ctx, ev)
	}
	sendOrders(b, p.DispatchSQS, p.Resources.OrdersQueueURL, orders)
	ctx := context.Background()
	stalls := watchStalls()
	steal0, total0 := cpuSteal()
	p.Start(ctx)
	// The deadline only ends a stuck run: 3/rate an order is a third of the rate.
	wait := time.Duration(orders)*3*iv + time.Minute
	for deadline := time.Now().Add(wait); api.Stats().Accepted < orders; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Errorf("after %v: %d of %d orders accepted", wait, api.Stats().Accepted, orders)
			break
		}
	}
	var rss int64
	for _, proc := range dispatchProcs {
		rss = max(rss, vmHWM(proc.Pid()))
	}
	var throttled, throttledNs int64
	for _, g := range groups {
		st := cgroupStat(b, g)
		throttled += st["nr_throttled"]
		throttledNs += st["throttled_time"]
	}
	restarts := int64(0)
	for _, proc := range dispatchProcs {
		restarts += proc.Stats().Starts - 1
	}
	if err := p.Stop(); err != nil {
		b.Errorf("Stop: %v", err)
	}
	load := loadAverage()
	stall := stalls()
	steal1, total1 := cpuSteal()

	st := api.Stats()
	arrivals := api.Arrivals()
	if len(arrivals) < 2 {
		b.Fatalf("%d requests reached the stand-in", len(arrivals))
	}
	shortest, closer := apiserver.MinGap(arrivals, iv)
	if f := os.Getenv("ORDERPIPE_BENCH_LOG_DIR"); f != "" {
		_ = os.WriteFile(filepath.Join(f, fmt.Sprintf("cpushare-%dMB-%d.log", memoryMB, time.Now().Unix())), []byte(out.String()), 0o644)
	}
	for i := 1; i < len(arrivals); i++ {
		if d := arrivals[i].At.Sub(arrivals[i-1].At); d < iv {
			b.Logf("closer: %s (status %d) at %d µs, then %s (status %d) at %d µs, %v later", arrivals[i-1].ID, arrivals[i-1].Status, arrivals[i-1].At.UnixMicro(),
				arrivals[i].ID, arrivals[i].Status, arrivals[i].At.UnixMicro(), d)
			for l := range strings.Lines(out.String()) {
				if strings.Contains(l, "orderID="+arrivals[i-1].ID+" ") || strings.Contains(l, "orderID="+arrivals[i].ID+" ") {
					b.Logf("  %s", strings.TrimSpace(l))
				}
			}
		}
	}
	first, last := arrivals[0].At, arrivals[len(arrivals)-1].At
	margins := emfValues(out.String(), "GovernorMargin")
	slices.Sort(margins)
	b.ReportMetric(100*float64(st.Accepted)/(1+last.Sub(first).Seconds()*rate), "util%")
	b.ReportMetric(100*float64(st.Throttled)/float64(max(st.Requests, 1)), "429%")
	b.ReportMetric(float64(closer), "closer-than-1/rate")
	b.ReportMetric(float64(shortest)/1e6, "shortest-gap-ms")
	b.ReportMetric(float64(st.Duplicates), "dupPUTs")
	b.ReportMetric(float64(throttled), "throttled-periods")
	b.ReportMetric(float64(throttledNs)/1e6, "throttled-ms")
	b.ReportMetric(float64(billedNs.Load())/1e9/float64(max(st.Accepted, 1)), "billed-s/order")
	givenBackLate := strings.Count(out.String(), "woke too late") + strings.Count(out.String(), "not written by the end of its slot")
	b.ReportMetric(float64(givenBackLate)/float64(orders), "given-back-late/order")
	late, wroteShortest, wroteCloser := written(out.String(), iv)
	b.ReportMetric(float64(late), "written-late")
	b.ReportMetric(float64(wroteCloser), "written-closer")
	b.ReportMetric(float64(wroteShortest)/1e6, "written-shortest-gap-ms")
	b.ReportMetric(float64(strings.Count(out.String(), "\"_aws\""))/float64(orders), "invocations/order")
	if len(margins) > 0 {
		b.ReportMetric(margins[len(margins)/2], "margin-ms-median")
		b.ReportMetric(margins[len(margins)-1], "margin-ms-max")
	}
	b.ReportMetric(float64(rss)/1e6, "peak-rss-MB")
	b.ReportMetric(float64(restarts), "restarts")
	b.ReportMetric(load, "load1")
	b.ReportMetric(float64(stall)/1e6, "stall-ms-max")
	b.ReportMetric(100*float64(steal1-steal0)/float64(max(total1-total0, 1)), "steal%")
	if st.Duplicates > 0 {
		b.Errorf("%d duplicate PUTs", st.Duplicates)
	}
}

// sendOrders puts n orders on the orders queue as ingest would (body and OrderId attribute).
func sendOrders(b *testing.B, c *sqs.Client, url string, n int) {
	b.Helper()
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			id := fmt.Sprintf("cpu-%04d", j)
			entries = append(entries, types.SendMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(`{"id":"` + id + `","amount":"1.00"}`),
				MessageAttributes: map[string]types.MessageAttributeValue{
					order.AttrOrderID: {DataType: aws.String("String"), StringValue: aws.String(id)},
				},
			})
		}
		out, err := c.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			b.Fatalf("send orders: %v %+v", err, out)
		}
	}
}

// cpuCgroup makes the cgroup v1 CPU group name limited to quota µs of CPU per 100 ms and moves
// pid into it. It returns the group's directory once made (remove it with removeCgroup).
func cpuCgroup(name string, quota, pid int) (string, error) {
	if pid == 0 {
		return "", fmt.Errorf("cgroup %s: the process is not running", name)
	}
	dir := filepath.Join(cpuCgroupRoot, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("cgroup: %w (needs root and cgroup v1 at %s)", err, cpuCgroupRoot)
	}
	for _, w := range []struct{ file, value string }{
		{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", strconv.Itoa(quota)}, {"cgroup.procs", strconv.Itoa(pid)},
	} {
		if err := os.WriteFile(filepath.Join(dir, w.file), []byte(w.value), 0o644); err != nil {
			return dir, fmt.Errorf("cgroup %s: %w", name, err)
		}
	}
	return dir, nil
}

// removeCgroup moves the group's remaining processes back to the root group and removes it.
func removeCgroup(b *testing.B, dir string) {
	if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
		for _, pid := range strings.Fields(string(procs)) {
			_ = os.WriteFile(filepath.Join(cpuCgroupRoot, "cgroup.procs"), []byte(pid), 0o644)
		}
	}
	if err := os.Remove(dir); err != nil {
		b.Errorf("remove cgroup %s: %v", dir, err)
	}
}

// cgroupStat reads a group's cpu.stat (nr_periods, nr_throttled, throttled_time in ns).
func cgroupStat(b *testing.B, dir string) map[string]int64 {
	data, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		b.Fatal(err)
	}
	st := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			st[k], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return st
}

// vmHWM is a process's peak resident set in bytes (0 when it cannot be read).
func vmHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// loadAverage is the host's one-minute load average.
func loadAverage() float64 {
	data, _ := os.ReadFile("/proc/loadavg")
	f, _ := strconv.ParseFloat(strings.Fields(string(data) + " 0")[0], 64)
	return f
}

// watchStalls times 10 ms sleeps in this process (the stand-in's and the pollers') until the
// returned function is called, which stops it and returns the largest overshoot: how long the
// host or this process stalled at worst during the run. A stall between a request's write and
// the stand-in's handler makes it arrive late, and the next request closer than 1/rate.
func watchStalls() func() time.Duration {
	stop := make(chan struct{})
	done := make(chan time.Duration)
	go func() {
		var worst time.Duration
		for {
			start := time.Now()
			select {
			case <-stop:
				done <- worst
				return
			case <-time.After(10 * time.Millisecond):
				worst = max(worst, time.Since(start)-10*time.Millisecond)
			}
		}
	}()
	return func() time.Duration {
		close(stop)
		return <-done
	}
}

// cpuSteal returns the host's steal time and all CPU time so far, in ticks (/proc/stat): the
// time a hypervisor ran something else while this host's vCPUs wanted to run, which the load
// average does not show.
func cpuSteal() (steal, total int64) {
	data, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(data), "\n")
	for i, f := range strings.Fields(line) {
		if i == 0 {
			continue // "cpu"
		}
		v, _ := strconv.ParseInt(f, 10, 64)
		if i <= 8 { // user .. steal; guest time is counted in user already
			total += v
		}
		if i == 8 {
			steal = v
		}
	}
	return steal, total
}

// written reads the orders' log lines (slotLate and wrote, Unix µs, of every request sent) and
// returns how many requests were written after their slot's end (a stall between the sender's
// check of its wake-up and the write, which no margin covers), and the shortest time between two
// writes and how many pairs were written closer than min: the senders' spacing, on the host's
// clock, apart from what happens between a write and the stand-in's handler.
func written(out string, min time.Duration) (late int, shortest time.Duration, closer int) {
	re := regexp.MustCompile(`slotLate=(\d+) wrote=(\d+)`)
	var wrote []int64
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		end, _ := strconv.ParseInt(m[1], 10, 64)
		w, _ := strconv.ParseInt(m[2], 10, 64)
		if w > end {
			late++
		}
		wrote = append(wrote, w)
	}
	slices.Sort(wrote)
	for i := 1; i < len(wrote); i++ {
		d := time.Duration(wrote[i]-wrote[i-1]) * time.Microsecond
		if i == 1 || d < shortest {
			shortest = d
		}
		if d < min {
			closer++
		}
	}
	return late, shortest, closer
}

// emfValues returns the values of metric name in the EMF lines of out.
func emfValues(out, name string) []float64 {
	re := regexp.MustCompile(`"` + regexp.QuoteMeta(name) + `":([0-9.eE+-]+)`)
	var vs []float64
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		if v, err := strconv.ParseFloat(m[1], 64); err == nil {
			vs = append(vs, v)
		}
	}
	return vs
}

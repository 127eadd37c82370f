package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/syncbuf"
	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/ingest"
)

// pipelineQueues creates the four queues; the orders queue holds backlog messages and the
// orders DLQ the parked fixtures. Both orders queues keep messages for retention.
func pipelineQueues(t *testing.T, backlog int, retention time.Duration) []string {
	t.Helper()
	cfg := awstest.Config(t)
	client := awstest.SQS(cfg)
	keep := map[string]string{"MessageRetentionPeriod": fmt.Sprint(int(retention.Seconds()))}
	files, _ := awstest.NewQueue(t, cfg, nil)
	filesDLQ, _ := awstest.NewQueue(t, cfg, nil)
	orders, _ := awstest.NewQueue(t, cfg, keep)
	ordersDLQ, _ := awstest.NewQueue(t, cfg, keep)
	for i := 0; i < backlog; i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, backlog); j++ {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(fmt.Sprintf(`{"id":"o-%d"}`, j))})
		}
		if _, err := client.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &orders, Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
	seedParked(t, client, ordersDLQ)
	return []string{"--files-queue", files, "--files-dlq", filesDLQ, "--orders-queue", orders, "--orders-dlq", ordersDLQ}
}

// warningsAbout says, for each prefix in order, whether a warning starts with it.
func warningsAbout(r statusReport, prefixes ...string) []bool {
	var got []bool
	for _, p := range prefixes {
		found := false
		for _, w := range r.Warnings {
			found = found || strings.HasPrefix(w, p)
		}
		got = append(got, found)
	}
	return got
}

func TestStatus(t *testing.T) {
	t.Parallel()
	short := pipelineQueues(t, 20, time.Minute)
	long := pipelineQueues(t, 5, 14*24*time.Hour)
	for _, tc := range []struct {
		name       string
		queues     []string
		args       []string
		wantBack   int64
		wantETA    int64
		wantWarn   []bool // orders, orders-dlq
		ordersPeek bool   // always false: a source queue is never peeked
	}{
		{"backlog outlives a short retention", short, []string{"--rate", "0.1"}, 20, 200, []bool{true, true}, false},
		{"a faster API drains it in time", short, []string{"--rate", "1"}, 20, 20, []bool{false, true}, false},
		{"long retention", long, []string{"--age-source", "peek"}, 5, 5, []bool{false, false}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got statusReport
			mustJSON(t, standIn(t, append(append([]string{"status", "--json"}, tc.queues...), tc.args...)...), &got)
			if got.Backlog != tc.wantBack || got.ETASeconds != tc.wantETA {
				t.Errorf("got backlog %d ETA %ds, want %d and %ds", got.Backlog, got.ETASeconds, tc.wantBack, tc.wantETA)
			}
			wantClasses := map[string]int{"permanent": 2, "exhausted": 1, "undecodable": 1, "unknown": 1}
			if diff := cmp.Diff(wantClasses, got.ParkedByClass); diff != "" || got.ParkedPeeked != 5 {
				t.Errorf("parked by class (-want +got):\n%s peeked %d, want 5", diff, got.ParkedPeeked)
			}
			if diff := cmp.Diff(tc.wantWarn, warningsAbout(got, "orders:", "orders-dlq:")); diff != "" {
				t.Errorf("warnings %q (-want +got):\n%s", got.Warnings, diff)
			}
			if len(got.Queues) != 4 {
				t.Fatalf("got %d queues, want 4", len(got.Queues))
			}
			orders, dlq := got.Queues[2], got.Queues[3]
			if dlq.Queue != "orders-dlq" || dlq.Visible != 5 || dlq.AgeSource != agePeek || dlq.OldestAgeSeconds == nil {
				t.Errorf("got orders-dlq %+v, want 5 visible and an age from peeking", dlq)
			}
			if gotPeek := orders.AgeSource == agePeek; gotPeek != tc.ordersPeek {
				t.Errorf("got orders age source %q; peeked %v, want %v", orders.AgeSource, gotPeek, tc.ordersPeek)
			}
		})
	}
	t.Run("text", func(t *testing.T) {
		r := standIn(t, append([]string{"status", "--rate", "0.1"}, short...)...)
		for _, want := range []string{"QUEUE", "orders-dlq", "parked by class (5 peeked): permanent 2, exhausted 1, undecodable 1, unknown 1",
			"orders backlog: 20 orders, ETA 3m20s (nominal: backlog at the API rate)", "API rate: 0.1 orders/s (--rate); drain: not measured",
			"WARNING: orders: a backlog of 20 orders needs 3m20s at 0.1 orders/s, more than half the retention (30s)"} {
			if r.code != exitOK || !strings.Contains(r.stdout, want) {
				t.Errorf("got exit %d, stdout\n%s\nwant it to contain %q", r.code, r.stdout, want)
			}
		}
	})
}

// fakeMetrics serves GetMetricStatistics from a function (moto does not speak CloudWatch's
// current protocol, so this part is tested at the consumer-side interface).
type fakeMetrics func(*cloudwatch.GetMetricStatisticsInput) (*cloudwatch.GetMetricStatisticsOutput, error)

// GetMetricData answers with no data; throttleMetrics answers it.
func (f fakeMetrics) GetMetricData(context.Context, *cloudwatch.GetMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	return &cloudwatch.GetMetricDataOutput{}, nil
}

func (f fakeMetrics) GetMetricStatistics(_ context.Context, in *cloudwatch.GetMetricStatisticsInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricStatisticsOutput, error) {
	return f(in)
}

func TestCloudWatchAge(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	point := func(minAgo int, age float64) cwtypes.Datapoint {
		return cwtypes.Datapoint{Timestamp: aws.Time(now.Add(-time.Duration(minAgo) * time.Minute)), Maximum: aws.Float64(age)}
	}
	for _, tc := range []struct {
		name    string
		points  []cwtypes.Datapoint
		wantAge *int64
	}{
		{"latest of several", []cwtypes.Datapoint{point(3, 100), point(1, 160), point(2, 130)}, aws.Int64(160)},
		{"no datapoints: unknown", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked *cloudwatch.GetMetricStatisticsInput
			st := statusRun{now: now, metrics: fakeMetrics(func(in *cloudwatch.GetMetricStatisticsInput) (*cloudwatch.GetMetricStatisticsOutput, error) {
				asked = in
				return &cloudwatch.GetMetricStatisticsOutput{Datapoints: tc.points}, nil
			})}
			q := queueStatus{Queue: "orders", URL: "https://sqs.eu-west-1.amazonaws.com/123456789012/orderpipe-orders"}
			if err := st.cloudWatchAge(context.Background(), &q); err != nil {
				t.Fatal(err)
			}
			if got, want := aws.ToString(asked.Dimensions[0].Value), "orderpipe-orders"; got != want || aws.ToString(asked.Namespace) != "AWS/SQS" || aws.ToString(asked.MetricName) != "ApproximateAgeOfOldestMessage" {
				t.Errorf("asked for %s %s QueueName=%s, want AWS/SQS ApproximateAgeOfOldestMessage QueueName=%s", aws.ToString(asked.Namespace), aws.ToString(asked.MetricName), got, want)
			}
			if diff := cmp.Diff(tc.wantAge, q.OldestAgeSeconds); diff != "" {
				t.Errorf("age (-want +got):\n%s", diff)
			}
			if got, want := q.AgeSource != "", tc.wantAge != nil; got != want {
				t.Errorf("got age source %q, want one: %v", q.AgeSource, want)
			}
		})
	}
}

func TestPeekPlan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		source  string
		queue   string
		classes bool
		age     bool
	}{
		{agePeek, "orders-dlq", true, true},
		{agePeek, "files-dlq", false, true},
		{agePeek, "orders", false, false},
		{agePeek, "files", false, false},
		{ageCloudWatch, "orders-dlq", true, false},
		{ageCloudWatch, "orders", false, false},
	} {
		t.Run(tc.source+" "+tc.queue, func(t *testing.T) {
			classes, age := statusRun{ageSource: tc.source}.peekPlan(tc.queue)
			if classes != tc.classes || age != tc.age {
				t.Errorf("got classes %v age %v, want %v %v", classes, age, tc.classes, tc.age)
			}
		})
	}
}

// TestStatusParksNothing runs status 20 times on a backlog whose queue parks a message after a
// single receive: not one order may reach its dead-letter queue, and each message's first
// receive after the runs must be its first ever. Its scans of the dead-letter queues short-poll
// (the stand-in answers a short poll with every message it holds).
func TestStatusParksNothing(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	client := awstest.SQS(cfg)
	const backlog = 30
	dead, deadARN := awstest.NewQueue(t, cfg, nil)
	orders, _ := awstest.NewQueue(t, cfg, map[string]string{
		"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"1"}`, deadARN),
	})
	for i := range backlog {
		sendMessage(t, client, orders, fixtureMessage{Body: fmt.Sprintf(`{"id":"o-%d"}`, i)})
	}
	files, _ := awstest.NewQueue(t, cfg, nil)
	sendMessage(t, client, files, fixtureMessage{Body: `{"Records":[]}`})
	_, dlq := parkedQueue(t)
	for i := range 20 {
		args := []string{"status", "--json", "--orders-queue", orders, "--files-queue", files, "--orders-dlq", dlq, "--files-dlq", dead, "--peek", "1000"}
		if i%2 == 1 {
			args = append(args, "--age-source", "peek")
		}
		shortPolls := &cli{getenv: func(string) string { return "" }, peekWait: time.Millisecond}
		var got statusReport
		mustJSON(t, runWith(shortPolls, append(args, "--endpoint", awstest.Endpoint())...), &got)
	}
	wantVisible(t, client, dead, "0", "dead-letter queue of the backlog after 20 status runs")
	wantVisible(t, client, orders, fmt.Sprint(backlog), "backlog after 20 status runs")
	for _, q := range []string{orders, files} {
		out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: &q, MaxNumberOfMessages: 10, VisibilityTimeout: 60,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			if got := m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]; got != "1" {
				t.Errorf("%s: message %s received %s times, want 1 (this receive only)", queueName(q), aws.ToString(m.MessageId), got)
			}
		}
	}
}

func TestStatusRate(t *testing.T) {
	t.Parallel()
	queues := pipelineQueues(t, 10, 14*24*time.Hour)
	for _, tc := range []struct {
		name       string
		env        map[string]string
		args       []string
		wantRate   float64
		wantSource string
		wantETA    int64
	}{
		{"the local pipeline's", map[string]string{envAPIRate: "0.5"}, nil, 0.5, rateEnv, 20},
		{"the flag first", map[string]string{envAPIRate: "0.5"}, []string{"--rate", "2"}, 2, rateFlag, 5},
		{"the default, said so", nil, nil, 1, rateDefault, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got statusReport
			args := append(append([]string{"status", "--json", "--endpoint", awstest.Endpoint()}, queues...), tc.args...)
			mustJSON(t, runCLI(t, tc.env, args...), &got)
			if got.Rate != tc.wantRate || got.RateSource != tc.wantSource || got.ETASeconds != tc.wantETA {
				t.Errorf("got rate %g from %q, ETA %ds; want %g from %q, %ds", got.Rate, got.RateSource, got.ETASeconds, tc.wantRate, tc.wantSource, tc.wantETA)
			}
		})
	}
	wantCode(t, runCLI(t, map[string]string{envAPIRate: "fast"}, append([]string{"status", "--endpoint", awstest.Endpoint()}, queues...)...), exitUsage, `API rate "fast" from $ORDERPIPE_API_RATE`)
}

func TestMeasureDrain(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	sums := func(v ...float64) fakeMetrics {
		return func(in *cloudwatch.GetMetricStatisticsInput) (*cloudwatch.GetMetricStatisticsOutput, error) {
			if aws.ToString(in.MetricName) != "NumberOfMessagesDeleted" {
				t.Errorf("asked for %s, want NumberOfMessagesDeleted", aws.ToString(in.MetricName))
			}
			var out cloudwatch.GetMetricStatisticsOutput
			for _, s := range v {
				out.Datapoints = append(out.Datapoints, cwtypes.Datapoint{Sum: aws.Float64(s)})
			}
			return &out, nil
		}
	}
	for _, tc := range []struct {
		name      string
		st        statusRun
		backlog   int64
		wantRate  float64
		wantETA   int64
		wantETAOf string
	}{
		{"CloudWatch: 90 deleted a minute", statusRun{ageSource: ageCloudWatch, metrics: sums(60, 120)}, 300, 1.5, 200, "measured drain rate"},
		{"CloudWatch without datapoints: nominal", statusRun{ageSource: ageCloudWatch, metrics: sums()}, 300, 0, 150, "nominal: backlog at the API rate"},
		{"samples: 10 fewer in 5s", statusRun{ageSource: agePeek, prev: &drainSample{at: now.Add(-5 * time.Second), backlog: 310}}, 300, 2, 150, "measured drain rate"},
		{"samples: growing, not draining", statusRun{ageSource: agePeek, prev: &drainSample{at: now.Add(-5 * time.Second), backlog: 290}}, 300, 0, 0, "measured drain rate: none, the backlog is not draining"},
		{"one sample: nominal", statusRun{ageSource: agePeek}, 300, 0, 150, "nominal: backlog at the API rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.st.now = now
			r := statusReport{Backlog: tc.backlog, Rate: 2}
			if err := tc.st.measureDrain(context.Background(), &r, "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"); err != nil {
				t.Fatal(err)
			}
			if r.DrainRate != tc.wantRate || r.ETASeconds != tc.wantETA || r.ETASource != tc.wantETAOf {
				t.Errorf("got drain %g, ETA %ds (%s); want %g, %ds (%s)", r.DrainRate, r.ETASeconds, r.ETASource, tc.wantRate, tc.wantETA, tc.wantETAOf)
			}
		})
	}
}

func TestRetentionRisk(t *testing.T) {
	t.Parallel()
	age := func(d time.Duration) *int64 { s := int64(d / time.Second); return &s }
	const day = 24 * time.Hour
	fourteen := int64(14 * day / time.Second)
	for _, tc := range []struct {
		name string
		q    queueStatus
		r    statusReport
		want []string // prefixes, in order
	}{
		{"orders young and small", queueStatus{Queue: "orders", Visible: 100, RetentionSeconds: fourteen, OldestAgeSeconds: age(day)}, statusReport{Rate: 1}, nil},
		{"orders past half the retention", queueStatus{Queue: "orders", Visible: 100, RetentionSeconds: fourteen, OldestAgeSeconds: age(8 * day)}, statusReport{Rate: 1},
			[]string{"orders: the oldest order has waited 8d, past half the retention (7d)"}},
		{"orders backlog over half the retention at the API rate", queueStatus{Queue: "orders", Visible: 700_000, RetentionSeconds: fourteen}, statusReport{Rate: 1},
			[]string{"orders: a backlog of 700000 orders needs 8d2h27m at 1 orders/s, more than half the retention (7d)"}},
		{"orders that will expire", queueStatus{Queue: "orders", Visible: 1_300_000, RetentionSeconds: fourteen}, statusReport{Rate: 1},
			[]string{"orders: a backlog of 1300000 orders needs 15d1h7m at 1 orders/s, more than half", "orders: a backlog of 1300000 orders needs 15d1h7m at 1 orders/s but retention is 14d"}},
		{"orders draining slower than the API rate", queueStatus{Queue: "orders", Visible: 100_000, RetentionSeconds: fourteen, OldestAgeSeconds: age(13 * day)},
			statusReport{Rate: 1, DrainSource: "samples", DrainRate: 0.5, ETASeconds: 200_000},
			[]string{"orders: the oldest order has waited 13d", "orders: a backlog of 100000 orders needs 2d7h33m at the measured 0.5 orders/s"}},
		{"a file message older than an invocation", queueStatus{Queue: "files", InFlight: 1, RetentionSeconds: fourteen, VisibilitySeconds: 240, OldestAgeSeconds: age(10 * time.Minute)}, statusReport{},
			[]string{"files: the oldest file message is 10m0s old, older than the ingest timeout plus the visibility timeout 8m0s"}},
		{"a file message being ingested", queueStatus{Queue: "files", InFlight: 1, RetentionSeconds: fourteen, VisibilitySeconds: 240, OldestAgeSeconds: age(6 * time.Minute)}, statusReport{}, nil},
		{"a parked order about to expire", queueStatus{Queue: "orders-dlq", Visible: 1, RetentionSeconds: fourteen, OldestAgeSeconds: age(13 * day)}, statusReport{},
			[]string{"orders-dlq: 1 messages; the oldest (13d old) expires in 1d (retention 14d)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := statusRun{}.retentionRisk(tc.q, tc.r)
			if len(got) != len(tc.want) {
				t.Fatalf("got warnings %q, want %d starting %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("warning %d: got %q, want it to start %q", i, got[i], w)
				}
			}
		})
	}
}

// putState writes an ingest state object as ingest does.
func putState(t *testing.T, client *s3.Client, bucket string, s ingest.State) {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	key := "state/" + s.Key + "@" + s.Version + ".json"
	if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
}

func TestStatusFiles(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	client := awstest.S3(cfg)
	bucket := awstest.NewBucket(t, cfg)
	now := time.Now().UTC()
	putState(t, client, bucket, ingest.State{Status: ingest.StatusDone, Bucket: "in", Key: "uploads/a.jsonl", Version: "v1", Size: 1000, Offset: 1000,
		Lines: 50, Enqueued: 48, Rejected: 2, StartedAt: now.Add(-time.Hour)})
	putState(t, client, bucket, ingest.State{Status: ingest.StatusRunning, Bucket: "in", Key: "uploads/b.csv", Version: "v1", Size: 1000, Offset: 250,
		Lines: 20, Enqueued: 20, StartedAt: now.Add(-10 * time.Minute), LeaseUntil: now.Add(10 * time.Minute)})
	putState(t, client, bucket, ingest.State{Status: ingest.StatusRunning, Bucket: "in", Key: "uploads/c.jsonl", Version: "v1", Size: 1000, Offset: 500,
		Lines: 40, Enqueued: 39, Rejected: 1, StartedAt: now.Add(-time.Hour), LeaseUntil: now.Add(-5 * time.Minute)})
	queues := append(pipelineQueues(t, 0, 14*24*time.Hour), "--bucket", bucket)

	var got statusReport
	mustJSON(t, standIn(t, append([]string{"status", "--json"}, queues...)...), &got)
	byKey := map[string]fileProgress{}
	for _, f := range got.Files {
		byKey[f.Key] = f
	}
	if len(got.Files) != 3 {
		t.Fatalf("got %d files, want 3: %+v", len(got.Files), got.Files)
	}
	for _, tc := range []struct {
		key         string
		status      string
		stalled     bool
		offset      int64
		parked      int
		delivered   int64
		deliveredIs string
	}{
		// Every parked message was peeked and the orders queue is empty: a done file's
		// delivered orders are its enqueued ones less its parked ones.
		{"uploads/a.jsonl", "done", false, 1000, 2, 46, "exact"},
		{"uploads/b.csv", "running", false, 250, 1, 19, "atLeast"},
		{"uploads/c.jsonl", "running", true, 500, 1, 38, "atLeast"},
	} {
		f := byKey[tc.key]
		if f.Status != tc.status || f.Stalled != tc.stalled || f.Offset != tc.offset || f.Parked != tc.parked || f.Size != 1000 ||
			f.Delivered != tc.delivered || f.DeliveredIs != tc.deliveredIs {
			t.Errorf("%s: got %+v; want status %s, stalled %v, offset %d of 1000, parked %d, delivered %d (%s)",
				tc.key, f, tc.status, tc.stalled, tc.offset, tc.parked, tc.delivered, tc.deliveredIs)
		}
	}
	if diff := cmp.Diff([]bool{true}, warningsAbout(got, "files: s3://in/uploads/c.jsonl stalled at line 40")); diff != "" {
		t.Errorf("warnings %q (-want +got):\n%s", got.Warnings, diff)
	}

	text := standIn(t, append([]string{"status", "--files", "2"}, queues...)...)
	for _, want := range []string{"[#####---------------]  25% s3://in/uploads/b.csv: read 20 lines (enqueued 20, rejected 0), delivered >= 19, parked 1; in flight since",
		"[##########----------]  50% s3://in/uploads/c.jsonl: read 40 lines (enqueued 39, rejected 1), delivered >= 38, parked 1; STALLED: lease expired"} {
		if text.code != exitOK || !strings.Contains(text.stdout, want) {
			t.Errorf("got exit %d, stdout\n%s\nwant it to contain %q", text.code, text.stdout, want)
		}
	}
	if strings.Contains(text.stdout, "uploads/a.jsonl") {
		t.Errorf("--files 2 showed the oldest of three files:\n%s", text.stdout)
	}
}

// cancelAfter cancels once the text it is written has contained "\"at\"" n times: a --watch
// then stops after its n-th report.
type cancelAfter struct {
	syncbuf.Buffer
	n      int
	cancel context.CancelFunc
}

func (w *cancelAfter) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if strings.Count(w.String(), `"etaSource"`) >= w.n {
		w.cancel()
	}
	return n, err
}

func TestStatusWatch(t *testing.T) {
	t.Parallel()
	queues := pipelineQueues(t, 10, 14*24*time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelAfter{n: 2, cancel: cancel}
	var errb bytes.Buffer
	c := &cli{stdout: out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := c.main(ctx, append([]string{"status", "--json", "--watch", "1s", "--endpoint", awstest.Endpoint()}, queues...)); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	dec := json.NewDecoder(strings.NewReader(out.String()))
	var reports []statusReport
	for dec.More() {
		var r statusReport
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		reports = append(reports, r)
	}
	if len(reports) != 2 {
		t.Fatalf("got %d reports, want 2", len(reports))
	}
	if reports[0].DrainSource != "" || reports[1].DrainSource == "" || reports[1].ETASource != "measured drain rate: none, the backlog is not draining" {
		t.Errorf("got drain sources %q then %q (ETA %q); want none, then measured between the samples, not draining",
			reports[0].DrainSource, reports[1].DrainSource, reports[1].ETASource)
	}
}

// throttleMetrics answers GetMetricData with values and records the query.
type throttleMetrics struct {
	fakeMetrics
	values []float64
	asked  *cloudwatch.GetMetricDataInput
}

func (m *throttleMetrics) GetMetricData(_ context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	m.asked = in
	return &cloudwatch.GetMetricDataOutput{MetricDataResults: []cwtypes.MetricDataResult{{Values: m.values}}}, nil
}

func TestThrottleWarning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		values []float64
		want   []string
	}{
		{nil, []string{}},
		{[]float64{0, 0}, []string{}},
		{[]float64{3, 4}, []string{"orders: the order API throttled 7 requests in the last 15m0s; an order throttled for MAX_THROTTLED in all (dispatch's setting, default 1d) is parked as throttled"}},
	} {
		m := &throttleMetrics{values: tc.values}
		r := statusReport{Warnings: []string{}}
		if err := (statusRun{metrics: m, now: time.Now()}).throttleWarning(context.Background(), &r); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, r.Warnings); diff != "" {
			t.Errorf("values %v: warnings (-want +got):\n%s", tc.values, diff)
		}
		if got := aws.ToString(m.asked.MetricDataQueries[0].Expression); got != `SUM(SEARCH('{orderpipe,Function} MetricName="Throttled"', 'Sum', 60))` {
			t.Errorf("got expression %s", got)
		}
	}
}

func TestStatusShowsTheGovernor(t *testing.T) {
	t.Parallel()
	queues := pipelineQueues(t, 0, time.Hour)
	cfg := awstest.Config(t)
	db := dynamodb.NewFromConfig(cfg)
	table := awstest.Name(t, "gov")
	if err := governor.CreateTable(context.Background(), db, table); err != nil {
		t.Fatal(err)
	}
	opened := time.Now().Add(-20 * time.Minute).Truncate(time.Second)
	last := opened.Add(-time.Minute)
	rec := governor.State{Version: 1, Last: last, Late: last.Add(12500 * time.Microsecond), Rate: 0.5, Failures: 7, OpenedAt: opened, ProbeAt: opened.Add(21 * time.Minute)}
	if err := governor.NewDynamoStore(db, table, "").Save(context.Background(), rec, 0); err != nil {
		t.Fatal(err)
	}
	var got statusReport
	mustJSON(t, standIn(t, append([]string{"status", "--json", "--governor-table", table}, queues...)...), &got)
	g := got.Governor
	if g == nil || g.Rate != 0.5 || g.Breaker != "open" || g.Failures != 7 || g.OpenSince == nil || !g.OpenSince.Equal(opened) || g.LastMarginMs != 12.5 {
		t.Fatalf("governor %+v, want rate 0.5, breaker open since %v, 7 failures, last margin 12.5 ms", g, opened)
	}
	if diff := cmp.Diff([]bool{true}, warningsAbout(got, "governor: circuit breaker open")); diff != "" {
		t.Errorf("warnings %q (-want +got):\n%s", got.Warnings, diff)
	}
	if got.Rate != 0.5 || !strings.HasPrefix(got.RateSource, "the governor's current rate") {
		t.Errorf("got rate %g from %q, want the governor's 0.5", got.Rate, got.RateSource)
	}
	r := standIn(t, append([]string{"status", "--governor-table", table}, queues...)...)
	if want := "governor: rate 0.5 rps; breaker open since"; r.code != exitOK || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "last slot's margin 12.5 ms") {
		t.Errorf("got exit %d, stdout\n%s\nwant it to contain %q", r.code, r.stdout, want)
	}
}

// A refused file shows its unread lines and why; a file waiting in S3 for room in the orders
// queue shows since when, and is not stalled though its lease ran out (its continuation is
// delayed).
func TestStatusRefusedAndWaitingFiles(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	client := awstest.S3(cfg)
	bucket := awstest.NewBucket(t, cfg)
	now := time.Now().UTC()
	putState(t, client, bucket, ingest.State{Status: ingest.StatusDone, Bucket: "in", Key: "uploads/cut.jsonl.gz", Version: "v1", Size: 1000,
		Unread: 3, Refused: "gzip stream truncated after 3 lines", StartedAt: now.Add(-time.Hour)})
	putState(t, client, bucket, ingest.State{Status: ingest.StatusRunning, Bucket: "in", Key: "uploads/big.jsonl", Version: "v1", Size: 1000, Offset: 400,
		Lines: 40, Enqueued: 40, StartedAt: now.Add(-time.Hour), LeaseUntil: now.Add(-time.Minute), WaitingSince: now.Add(-30 * time.Minute)})
	queues := append(pipelineQueues(t, 0, 14*24*time.Hour), "--bucket", bucket)
	var got statusReport
	mustJSON(t, standIn(t, append([]string{"status", "--json"}, queues...)...), &got)
	for _, f := range got.Files {
		if f.Key == "uploads/big.jsonl" && (f.Stalled || f.WaitingSince.IsZero()) {
			t.Errorf("waiting file %+v: want waiting, not stalled", f)
		}
	}
	text := standIn(t, append([]string{"status"}, queues...)...)
	for _, want := range []string{"s3://in/uploads/cut.jsonl.gz: read 0 lines (enqueued 0, rejected 0), delivered 0, parked 0; NOT READ WHOLE: 3 lines unread: gzip stream truncated",
		"s3://in/uploads/big.jsonl: read 40 lines (enqueued 40, rejected 0), delivered >= 40, parked 0; WAITING in S3 since"} {
		if text.code != exitOK || !strings.Contains(text.stdout, want) {
			t.Errorf("got exit %d, stdout\n%s\nwant it to contain %q", text.code, text.stdout, want)
		}
	}
}

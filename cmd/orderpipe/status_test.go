package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
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
			"orders backlog: 20, ETA 3m20s at 0.1 rps", "WARNING: orders: backlog of 20 needs 3m20s"} {
			if r.code != exitOK || !strings.Contains(r.stdout, want) {
				t.Errorf("got exit %d, stdout\n%s\nwant it to contain %q", r.code, r.stdout, want)
			}
		}
	})
}

// fakeMetrics serves GetMetricStatistics from a function (moto does not speak CloudWatch's
// current protocol, so this part is tested at the consumer-side interface).
type fakeMetrics func(*cloudwatch.GetMetricStatisticsInput) (*cloudwatch.GetMetricStatisticsOutput, error)

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
// receive after the runs must be its first ever.
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
		var got statusReport
		mustJSON(t, standIn(t, args...), &got)
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

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// expiryWarning is how close to its retention a parked message may get before status warns.
const expiryWarning = 48 * time.Hour

// Age sources for the oldest message of a queue.
const (
	ageAuto       = "auto"       // cloudwatch on AWS, peek with an endpoint
	ageCloudWatch = "cloudwatch" // AWS/SQS ApproximateAgeOfOldestMessage, the last 5 minutes
	// agePeek is the oldest SentTimestamp among peeked messages of a dead-letter queue: an
	// estimate. Source queues are never peeked (see peekPlan).
	agePeek = "peek"
)

// queueStatus is the state of one queue.
type queueStatus struct {
	Queue            string `json:"queue"` // files, files-dlq, orders, orders-dlq
	URL              string `json:"url"`
	Visible          int64  `json:"visible"`
	InFlight         int64  `json:"inFlight"`
	Delayed          int64  `json:"delayed"`
	RetentionSeconds int64  `json:"retentionSeconds"`
	// OldestAgeSeconds is the age of the oldest message, when known; AgeSource says how it was
	// found ("cloudwatch" or "peek", an estimate from the peeked messages' SentTimestamp).
	OldestAgeSeconds *int64 `json:"oldestAgeSeconds,omitempty"`
	AgeSource        string `json:"ageSource,omitempty"`
}

func (q queueStatus) depth() int64 { return q.Visible + q.InFlight + q.Delayed }

// statusReport is what status prints.
type statusReport struct {
	Queues        []queueStatus  `json:"queues"`
	ParkedByClass map[string]int `json:"parkedByClass"`
	ParkedPeeked  int            `json:"parkedPeeked"` // how many parked messages were looked at
	Backlog       int64          `json:"backlog"`      // orders queue: visible + in flight + delayed
	Rate          float64        `json:"rate"`         // API rate the ETA assumes, requests/s
	ETASeconds    int64          `json:"etaSeconds"`   // time to drain Backlog at Rate
	Warnings      []string       `json:"warnings"`
}

func runStatus(ctx context.Context, c *cli, args []string) error {
	fs, o := c.newFlags("status", "[--rate 1] [--age-source auto|cloudwatch|peek] [--peek 1000]")
	rate := fs.Float64("rate", 1, "the order API's total rate, requests/s, for the ETA")
	ageSource := fs.String("age-source", ageAuto, "how to find the oldest message's age: cloudwatch (AWS), peek (stand-in), auto")
	peekMax := fs.Int("peek", 1000, "at most this many parked messages are peeked to count classes (dead-letter queues only)")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *rate <= 0 {
		return usageErrorf("status: --rate %v: must be > 0", *rate)
	}
	if !slices.Contains([]string{ageAuto, ageCloudWatch, agePeek}, *ageSource) {
		return usageErrorf("status: --age-source %q: one of auto, cloudwatch, peek", *ageSource)
	}
	if *peekMax < 1 {
		return usageErrorf("status: --peek %d: must be >= 1", *peekMax)
	}
	s, err := c.connect(ctx, o)
	if err != nil {
		return err
	}
	if *ageSource == ageAuto {
		*ageSource = ageCloudWatch
		if s.endpoint != "" {
			*ageSource = agePeek
		}
	}
	st := statusRun{s: s, metrics: cloudwatch.NewFromConfig(s.cfg), now: c.now(), ageSource: *ageSource, peekMax: *peekMax}
	r, err := st.report(ctx, *rate)
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(c.stdout, r)
	}
	return r.print(c.stdout)
}

// metricsAPI is the part of CloudWatch that status uses.
type metricsAPI interface {
	GetMetricStatistics(ctx context.Context, in *cloudwatch.GetMetricStatisticsInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricStatisticsOutput, error)
}

// statusRun gathers one status report.
type statusRun struct {
	s         *session
	metrics   metricsAPI
	now       time.Time
	ageSource string
	peekMax   int
}

func (st statusRun) report(ctx context.Context, rate float64) (statusReport, error) {
	r := statusReport{ParkedByClass: map[string]int{}, Rate: rate, Warnings: []string{}}
	for _, q := range []struct {
		name string
		kind resourceKind
	}{
		{"files", resFilesQueue}, {"files-dlq", resFilesDLQ}, {"orders", resOrdersQueue}, {"orders-dlq", resOrdersDLQ},
	} {
		if spec := resourceSpecs[q.kind]; *spec.field(&st.s.names) == "" {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s queue not configured (--%s)", q.name, spec.flag))
			continue
		}
		url, err := st.s.queueURL(ctx, q.kind)
		if err != nil {
			return r, err
		}
		qs, err := st.queue(ctx, q.name, url)
		if err != nil {
			return r, err
		}
		if st.ageSource == ageCloudWatch {
			if err := st.cloudWatchAge(ctx, &qs); err != nil {
				return r, err
			}
		}
		classes, age := st.peekPlan(q.name)
		if (classes || age) && qs.depth() > 0 {
			var oldest time.Time
			n, err := scanner{sqs: st.s.sqs, queueURL: url, max: st.peekMax}.scan(ctx, func(m sqstypes.Message) verdict {
				if t := sentAt(m); !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
					oldest = t
				}
				if classes {
					r.ParkedByClass[parkedFrom(m).Class]++
				}
				return verdict{}
			})
			if err != nil {
				return r, err
			}
			if classes {
				r.ParkedPeeked = n
			}
			if age && !oldest.IsZero() {
				a := int64(st.now.Sub(oldest) / time.Second)
				qs.OldestAgeSeconds, qs.AgeSource = &a, agePeek
			}
		}
		r.Queues = append(r.Queues, qs)
		r.Warnings = append(r.Warnings, st.retentionRisk(qs, rate)...)
		if q.name == "orders" {
			r.Backlog = qs.depth()
			r.ETASeconds = int64(pipeline.Settings{APIRate: rate}.DrainTime(r.Backlog) / time.Second)
		}
	}
	if len(r.Queues) == 0 {
		return r, usageErrorf("status: no queue configured: set --orders-queue etc., the ORDERPIPE_* variables or --stack")
	}
	return r, nil
}

// peekPlan says whether status peeks the named queue to count parked orders by class (the
// orders DLQ, always) and to estimate the oldest message's age (with peek ages, the DLQs).
// A source queue is never peeked: there a receive counts toward maxReceiveCount, and enough
// of them park an order as unknown without a delivery attempt. The dead-letter queues have no
// redrive policy, so receiving from them changes nothing but ApproximateReceiveCount.
func (st statusRun) peekPlan(queue string) (classes, age bool) {
	isDLQ := strings.HasSuffix(queue, "-dlq")
	return queue == "orders-dlq", st.ageSource == agePeek && isDLQ
}

// queue reads one queue's depths and retention.
func (st statusRun) queue(ctx context.Context, name, url string) (queueStatus, error) {
	out, err := st.s.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
			sqstypes.QueueAttributeNameMessageRetentionPeriod,
		},
	})
	if err != nil {
		return queueStatus{}, fmt.Errorf("get attributes of %s queue: %w", name, err)
	}
	num := func(a sqstypes.QueueAttributeName) int64 {
		n, _ := strconv.ParseInt(out.Attributes[string(a)], 10, 64)
		return n
	}
	return queueStatus{
		Queue:            name,
		URL:              url,
		Visible:          num(sqstypes.QueueAttributeNameApproximateNumberOfMessages),
		InFlight:         num(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:          num(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed),
		RetentionSeconds: num(sqstypes.QueueAttributeNameMessageRetentionPeriod),
	}, nil
}

// cloudWatchAge sets the queue's oldest age from the latest AWS/SQS ApproximateAgeOfOldestMessage
// datapoint of the last five minutes, if there is one.
func (st statusRun) cloudWatchAge(ctx context.Context, q *queueStatus) error {
	name := queueName(q.URL)
	out, err := st.metrics.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{
		Namespace:  aws.String("AWS/SQS"),
		MetricName: aws.String("ApproximateAgeOfOldestMessage"),
		Dimensions: []cwtypes.Dimension{{Name: aws.String("QueueName"), Value: &name}},
		StartTime:  aws.Time(st.now.Add(-5 * time.Minute)),
		EndTime:    aws.Time(st.now),
		Period:     aws.Int32(60),
		Statistics: []cwtypes.Statistic{cwtypes.StatisticMaximum},
	})
	if err != nil {
		return fmt.Errorf("get age of oldest message of %s queue: %w", q.Queue, err)
	}
	var latest cwtypes.Datapoint
	for _, d := range out.Datapoints {
		if latest.Timestamp == nil || aws.ToTime(d.Timestamp).After(aws.ToTime(latest.Timestamp)) {
			latest = d
		}
	}
	if latest.Maximum != nil {
		age := int64(*latest.Maximum)
		q.OldestAgeSeconds, q.AgeSource = &age, ageCloudWatch
	}
	return nil
}

// retentionRisk warns when a queue's messages will expire: on a source queue when the backlog
// cannot drain at rate before the oldest message reaches the retention period, on a dead-letter
// queue when the oldest parked message expires within expiryWarning.
func (st statusRun) retentionRisk(q queueStatus, rate float64) []string {
	if q.depth() == 0 || q.RetentionSeconds == 0 {
		return nil
	}
	retention := time.Duration(q.RetentionSeconds) * time.Second
	var age time.Duration
	if q.OldestAgeSeconds != nil {
		age = time.Duration(*q.OldestAgeSeconds) * time.Second
	}
	if strings.HasSuffix(q.Queue, "-dlq") {
		if q.OldestAgeSeconds != nil && retention-age < expiryWarning {
			return []string{fmt.Sprintf("%s: %d messages; the oldest (%s old) expires in %s (retention %s): redrive or save them now",
				q.Queue, q.depth(), fmtDuration(age), fmtDuration(max(retention-age, 0)), fmtDuration(retention))}
		}
		return nil
	}
	if q.Queue != "orders" {
		return nil
	}
	drain := pipeline.Settings{APIRate: rate}.DrainTime(q.depth())
	if age+drain <= retention {
		return nil
	}
	known := "age of the oldest unknown, counted as 0"
	if q.OldestAgeSeconds != nil {
		known = "oldest " + fmtDuration(age) + " old"
	}
	return []string{fmt.Sprintf("orders: backlog of %d needs %s at %g rps but retention is %s (%s): orders will expire before delivery",
		q.depth(), fmtDuration(drain), rate, fmtDuration(retention), known)}
}

func (r statusReport) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tVISIBLE\tIN FLIGHT\tDELAYED\tRETENTION\tOLDEST")
	for _, q := range r.Queues {
		oldest := "-"
		if q.OldestAgeSeconds != nil {
			oldest = fmtDuration(time.Duration(*q.OldestAgeSeconds)*time.Second) + " (" + q.AgeSource + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", q.Queue, q.Visible, q.InFlight, q.Delayed,
			fmtDuration(time.Duration(q.RetentionSeconds)*time.Second), oldest)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	var byClass []string
	for _, c := range order.Classes {
		if n := r.ParkedByClass[c]; n > 0 {
			byClass = append(byClass, fmt.Sprintf("%s %d", c, n))
		}
	}
	if len(byClass) == 0 {
		byClass = []string{"none"}
	}
	fmt.Fprintf(w, "parked by class (%d peeked): %s\n", r.ParkedPeeked, strings.Join(byClass, ", "))
	fmt.Fprintf(w, "orders backlog: %d, ETA %s at %g rps\n", r.Backlog, fmtDuration(time.Duration(r.ETASeconds)*time.Second), r.Rate)
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
	return nil
}

// fmtDuration prints whole days as "14d", anything else rounded to the second.
func fmtDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.Round(time.Second).String()
}

// queueName is the last path element of a queue URL.
func queueName(url string) string { return url[strings.LastIndex(url, "/")+1:] }

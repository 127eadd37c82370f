package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// envAPIRate is the variable `orderpipe local` exports with the rate its dispatchers pace at.
const envAPIRate = "ORDERPIPE_API_RATE"

// Where status's API rate comes from (statusReport.RateSource).
const (
	rateFlag    = "--rate"
	rateEnv     = "$" + envAPIRate
	rateStack   = "stack output " + pipeline.OutputAPIRate
	rateDefault = "default: not read from the deployment"
)

// deployedRate is the order API rate status assumes: --rate when given, else the local
// pipeline's (ORDERPIPE_API_RATE), else the stack's output, else pipeline.Defaults. It returns
// where the rate came from.
func (c *cli) deployedRate(s *session, flagRate float64) (float64, string, error) {
	if flagRate > 0 {
		return flagRate, rateFlag, nil
	}
	for _, src := range []struct{ value, name string }{{c.getenv(envAPIRate), rateEnv}, {s.outputs[pipeline.OutputAPIRate], rateStack}} {
		if src.value == "" {
			continue
		}
		r, err := strconv.ParseFloat(src.value, 64)
		if err != nil || r <= 0 {
			return 0, "", usageErrorf("status: API rate %q from %s: want a number > 0", src.value, src.name)
		}
		return r, src.name, nil
	}
	return pipeline.Defaults().APIRate, rateDefault, nil
}

// drainWindow is how far back status measures the orders queue's drain rate on AWS.
const drainWindow = 15 * time.Minute

// drainSample is one observation of the orders backlog, for a drain rate measured between
// successive samples (status --watch against a stand-in, which has no CloudWatch).
type drainSample struct {
	at      time.Time
	backlog int64
}

// cloudWatchDrain is the orders queue's recent drain rate, orders/s: the AWS/SQS
// NumberOfMessagesDeleted sum of the last drainWindow over the minutes that have a datapoint.
// ok is false when there is no datapoint.
func (st statusRun) cloudWatchDrain(ctx context.Context, url string) (rate float64, ok bool, err error) {
	name := queueName(url)
	out, err := st.metrics.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{
		Namespace:  aws.String("AWS/SQS"),
		MetricName: aws.String("NumberOfMessagesDeleted"),
		Dimensions: []cwtypes.Dimension{{Name: aws.String("QueueName"), Value: &name}},
		StartTime:  aws.Time(st.now.Add(-drainWindow)),
		EndTime:    aws.Time(st.now),
		Period:     aws.Int32(60),
		Statistics: []cwtypes.Statistic{cwtypes.StatisticSum},
	})
	if err != nil {
		return 0, false, fmt.Errorf("get messages deleted from the orders queue: %w", err)
	}
	if len(out.Datapoints) == 0 {
		return 0, false, nil
	}
	var sum float64
	for _, d := range out.Datapoints {
		sum += aws.ToFloat64(d.Sum)
	}
	return sum / (float64(len(out.Datapoints)) * 60), true, nil
}

// measureDrain sets r's drain rate and ETA: measured (CloudWatch on AWS, successive samples
// under --watch) when known, else the backlog at the deployed rate.
func (st statusRun) measureDrain(ctx context.Context, r *statusReport, ordersURL string) error {
	switch {
	case st.ageSource == ageCloudWatch && ordersURL != "":
		rate, ok, err := st.cloudWatchDrain(ctx, ordersURL)
		if err != nil {
			return err
		}
		if ok {
			r.DrainRate, r.DrainSource = rate, fmt.Sprintf("CloudWatch NumberOfMessagesDeleted, last %s", fmtDuration(drainWindow))
		}
	case st.prev != nil && st.now.After(st.prev.at):
		dt := st.now.Sub(st.prev.at)
		r.DrainRate = max(float64(st.prev.backlog-r.Backlog)/dt.Seconds(), 0)
		r.DrainSource = fmt.Sprintf("backlog change over the last %s", fmtDuration(dt))
	}
	r.ETASource = "nominal: backlog at the API rate"
	eta := pipeline.Settings{APIRate: r.Rate}.DrainTime(r.Backlog)
	if r.DrainSource != "" {
		r.ETASource = "measured drain rate"
		eta = pipeline.Settings{APIRate: r.DrainRate}.DrainTime(r.Backlog)
		if r.DrainRate == 0 && r.Backlog > 0 {
			r.ETASource = "measured drain rate: none, the backlog is not draining"
			eta = 0
		}
	}
	r.ETASeconds = int64(eta / time.Second)
	return nil
}

// throttleWarning warns when dispatch saw throttles in the last drainWindow (the Throttled
// metric summed over every dispatch function): an order throttled for MAX_THROTTLED in all is
// parked as throttled.
func (st statusRun) throttleWarning(ctx context.Context, r *statusReport) error {
	expr := fmt.Sprintf(`SUM(SEARCH('{%s,%s} MetricName="%s"', 'Sum', 60))`, dispatch.MetricsNamespace, dispatch.MetricDimension, dispatch.MetricThrottled)
	out, err := st.metrics.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime:         aws.Time(st.now.Add(-drainWindow)),
		EndTime:           aws.Time(st.now),
		MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("throttled"), Expression: aws.String(expr), ReturnData: aws.Bool(true)}},
	})
	if err != nil {
		return fmt.Errorf("get dispatch's throttles: %w", err)
	}
	var n float64
	for _, res := range out.MetricDataResults {
		for _, v := range res.Values {
			n += v
		}
	}
	if n > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("orders: the order API throttled %.0f requests in the last %s; an order throttled for %s in all (dispatch's setting, default %s) is parked as %s",
			n, fmtDuration(drainWindow), dispatch.EnvMaxThrottled, fmtDuration(dispatch.DefaultMaxThrottled), order.ClassThrottled))
	}
	return nil
}

// fileProgress is one order file as its ingest state object tells it (docs/CONTRACTS.md, S3
// layout).
type fileProgress struct {
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	Version  string `json:"version"`
	Status   string `json:"status"` // running or done
	Stalled  bool   `json:"stalled,omitempty"`
	Size     int64  `json:"size"`   // bytes
	Offset   int64  `json:"offset"` // bytes read up to the last checkpoint
	Lines    int64  `json:"lines"`  // read: enqueued + rejected
	Enqueued int64  `json:"enqueued"`
	Rejected int64  `json:"rejected"`
	// FileLines is the file's lines (N) once ingest's verifying pass has counted them; 0 before.
	FileLines int64 `json:"fileLines,omitempty"`
	// Parked counts the orders of this file among the parked messages status peeked.
	Parked int `json:"parked"`
	// Delivered is how many of the file's enqueued orders have left the orders queue without
	// being parked: exactly (DeliveredIs "exact") when the file is done, the orders queue empty
	// and every parked message peeked, else at least that many ("atLeast": enqueued - parked -
	// the parked messages not peeked - the whole orders backlog); "" when the orders queue or
	// the DLQ is not configured.
	Delivered   int64  `json:"delivered"`
	DeliveredIs string `json:"deliveredIs,omitempty"`
	// Silent: a running file whose state has not been written for silentAfter: an invocation
	// sending its orders checkpoints every minute, so it has probably died (Stalled follows
	// when the claim's lease ends); one verifying a large file (FileLines still 0) writes
	// nothing until the pass ends.
	Silent       bool      `json:"silent,omitempty"`
	StartedAt    time.Time `json:"startedAt"`
	CheckpointAt time.Time `json:"checkpointAt"` // when the state object was last written
	LeaseUntil   time.Time `json:"leaseUntil,omitzero"`
	// Unread lines were never read as orders: the file was refused (Refused says why) or
	// stopped. WaitingSince: the file waits in S3 for room in the orders queue.
	Unread       int64     `json:"unread,omitempty"`
	Refused      string    `json:"refused,omitempty"`
	WaitingSince time.Time `json:"waitingSince,omitzero"`
}

// silentAfter is how long a running file's state may go unwritten before status calls it
// silent: ingest's periodic checkpoint (ingest.DefaultCheckpointEvery) plus 20 s for a slow
// flush.
const silentAfter = ingest.DefaultCheckpointEvery + 20*time.Second

// setDelivered sets each file's Delivered from the orders backlog and the parked messages:
// dlqDepth parked in all, of which peeked were looked at (their files' counts are in Parked).
func setDelivered(files []fileProgress, backlog, dlqDepth int64, peeked int) {
	unpeeked := max(dlqDepth-int64(peeked), 0)
	for i := range files {
		f := &files[i]
		f.Delivered = max(f.Enqueued-int64(f.Parked)-unpeeked-backlog, 0)
		f.DeliveredIs = "atLeast"
		if f.Status == ingest.StatusDone && backlog == 0 && unpeeked == 0 {
			f.DeliveredIs = "exact"
		}
	}
}

// fileWindow is how recent a state object must be for status to show its file.
const fileWindow = 24 * time.Hour

// maxStateReads bounds the state objects status reads: the newest ones.
const maxStateReads = 100

// files reads the state objects written in the last fileWindow (the newest maxStateReads) and
// returns at most max files: the ones being ingested first (running; stalled when the claim's
// lease has expired, the invocation having died), then the ones finished, newest first.
func (st statusRun) files(ctx context.Context, bucket string, max int) ([]fileProgress, error) {
	var objs []s3types.Object
	p := s3.NewListObjectsV2Paginator(st.s.s3, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("state/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list ingest state in s3://%s/state/: %w", bucket, err)
		}
		for _, o := range page.Contents {
			if strings.HasSuffix(aws.ToString(o.Key), ".json") && st.now.Sub(aws.ToTime(o.LastModified)) <= fileWindow {
				objs = append(objs, o)
			}
		}
	}
	slices.SortFunc(objs, func(a, b s3types.Object) int { return aws.ToTime(b.LastModified).Compare(aws.ToTime(a.LastModified)) })
	var out []fileProgress
	for _, o := range objs[:min(len(objs), maxStateReads)] {
		got, err := st.s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: o.Key})
		if err != nil {
			return nil, fmt.Errorf("read ingest state s3://%s/%s: %w", bucket, aws.ToString(o.Key), err)
		}
		b, err := io.ReadAll(got.Body)
		got.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read ingest state s3://%s/%s: %w", bucket, aws.ToString(o.Key), err)
		}
		var s ingest.State
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("decode ingest state s3://%s/%s: %w", bucket, aws.ToString(o.Key), err)
		}
		f := fileProgress{Bucket: s.Bucket, Key: s.Key, Version: s.Version, Status: s.Status, Size: s.Size, Offset: s.Offset,
			Lines: s.Lines, Enqueued: s.Enqueued, Rejected: s.Rejected, StartedAt: s.StartedAt, CheckpointAt: aws.ToTime(o.LastModified),
			Unread: s.Unread, Refused: s.Refused, WaitingSince: s.WaitingSince}
		if s.VerifiedETag != "" {
			f.FileLines = s.FileLines
		}
		if s.Status == ingest.StatusRunning {
			f.LeaseUntil = s.LeaseUntil
			f.Stalled = !s.LeaseUntil.IsZero() && st.now.After(s.LeaseUntil) && s.WaitingSince.IsZero()
			f.Silent = !f.Stalled && s.WaitingSince.IsZero() && st.now.Sub(f.CheckpointAt) > silentAfter
		} else {
			f.Offset = f.Size
		}
		out = append(out, f)
	}
	slices.SortStableFunc(out, func(a, b fileProgress) int {
		if ra, rb := a.Status == ingest.StatusRunning, b.Status == ingest.StatusRunning; ra != rb {
			if ra {
				return -1
			}
			return 1
		}
		return b.CheckpointAt.Compare(a.CheckpointAt)
	})
	return out[:min(len(out), max)], nil
}

// printFiles writes one line per file with a progress bar of the bytes read.
func printFiles(w io.Writer, files []fileProgress, now time.Time) {
	if len(files) == 0 {
		return
	}
	fmt.Fprintf(w, "files (ingest state of the last %s):\n", fmtDuration(fileWindow))
	for _, f := range files {
		state := "done"
		switch {
		case f.Status != ingest.StatusRunning && f.Refused != "":
			state = fmt.Sprintf("NOT READ WHOLE: %d lines unread: %s", f.Unread, f.Refused)
		case f.Status == ingest.StatusRunning && !f.WaitingSince.IsZero():
			state = fmt.Sprintf("WAITING in S3 since %s (%s): the orders queue has no room", f.WaitingSince.Format(time.RFC3339), fmtDuration(now.Sub(f.WaitingSince)))
		case f.Stalled:
			state = fmt.Sprintf("STALLED: lease expired %s ago, resumes when the file message reappears", fmtDuration(now.Sub(f.LeaseUntil)))
		case f.Silent:
			state = fmt.Sprintf("SILENT: in flight since %s, no checkpoint for %s: %s",
				f.StartedAt.Format(time.RFC3339), fmtDuration(now.Sub(f.CheckpointAt)), f.silence())
		case f.Status == ingest.StatusRunning:
			state = fmt.Sprintf("in flight since %s (%s), checkpoint %s ago", f.StartedAt.Format(time.RFC3339), fmtDuration(now.Sub(f.StartedAt)), fmtDuration(now.Sub(f.CheckpointAt)))
		}
		of := ""
		if f.FileLines > 0 {
			of = fmt.Sprintf(" of %d", f.FileLines)
		}
		delivered := ""
		switch f.DeliveredIs {
		case "exact":
			delivered = fmt.Sprintf(", delivered %d", f.Delivered)
		case "atLeast":
			delivered = fmt.Sprintf(", delivered >= %d", f.Delivered)
		}
		fmt.Fprintf(w, "  %s %s s3://%s/%s: read %d%s lines (enqueued %d, rejected %d)%s, parked %d; %s\n",
			bar(f.Offset, f.Size, 20), percent(f.Offset, f.Size), f.Bucket, f.Key, f.Lines, of, f.Enqueued, f.Rejected, delivered, f.Parked, state)
	}
}

// silence says what a Silent file's missing checkpoints mean.
func (f fileProgress) silence() string {
	why := fmt.Sprintf("its ingest invocation probably died (a live one checkpoints every %s)", fmtDuration(ingest.DefaultCheckpointEvery))
	if f.FileLines == 0 {
		why += " unless it is still verifying a large file"
	}
	return why
}

// bar is a progress bar of width cells for done of total.
func bar(done, total int64, width int) string {
	n := width
	if total > 0 {
		n = int(min(done, total) * int64(width) / total)
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]"
}

func percent(done, total int64) string {
	if total <= 0 {
		return "100%"
	}
	return fmt.Sprintf("%3d%%", min(done, total)*100/total)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/local"
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
	Queue             string `json:"queue"` // files, files-dlq, orders, orders-dlq
	URL               string `json:"url"`
	Visible           int64  `json:"visible"`
	InFlight          int64  `json:"inFlight"`
	Delayed           int64  `json:"delayed"`
	RetentionSeconds  int64  `json:"retentionSeconds"`
	VisibilitySeconds int64  `json:"visibilitySeconds"`
	// OldestAgeSeconds is the age of the oldest message, when known; AgeSource says how it was
	// found ("cloudwatch" or "peek", an estimate from the peeked messages' SentTimestamp).
	OldestAgeSeconds *int64 `json:"oldestAgeSeconds,omitempty"`
	AgeSource        string `json:"ageSource,omitempty"`
}

func (q queueStatus) depth() int64 { return q.Visible + q.InFlight + q.Delayed }

// statusReport is what status prints.
type statusReport struct {
	At            time.Time      `json:"at"` // when the report was taken
	Queues        []queueStatus  `json:"queues"`
	ParkedByClass map[string]int `json:"parkedByClass"`
	ParkedPeeked  int            `json:"parkedPeeked"` // how many parked messages were looked at
	Backlog       int64          `json:"backlog"`      // orders queue: visible + in flight + delayed
	Rate          float64        `json:"rate"`         // the order API's rate as deployed, requests/s
	RateSource    string         `json:"rateSource"`   // where Rate was read
	// DrainRate is the orders queue's measured recent drain rate, orders/s, when DrainSource
	// says how it was measured; empty DrainSource: not measured.
	DrainRate   float64 `json:"drainRate"`
	DrainSource string  `json:"drainSource,omitempty"`
	ETASeconds  int64   `json:"etaSeconds"` // time to drain Backlog (ETASource says at which rate)
	ETASource   string  `json:"etaSource"`
	// Files are the order files ingest is reading or finished recently.
	Files []fileProgress `json:"files"`
	// Governor is the shared flow control of the order API, when its table is configured.
	Governor *governorStatus `json:"governor,omitempty"`
	Warnings []string        `json:"warnings"`
}

// governorStatus is the governor's shared record as status shows it.
type governorStatus struct {
	Table string `json:"table"`
	// Rate is the adaptive rate in force (0: not lowered, the ceiling API_RATE applies);
	// PolicyRate the API's advertised RateLimit-Policy rate (0: none seen).
	Rate        float64    `json:"rate"`
	PolicyRate  float64    `json:"policyRate"`
	Breaker     string     `json:"breaker"` // closed or open
	OpenSince   *time.Time `json:"openSince,omitempty"`
	NextProbe   *time.Time `json:"nextProbe,omitempty"`
	Failures    int        `json:"failures"` // failures in a row across instances
	PausedUntil *time.Time `json:"pausedUntil,omitempty"`
	LastSlot    *time.Time `json:"lastSlot,omitempty"`
	// LastMarginMs is the last slot's margin, ms: how late its sender could wake and still
	// send (the margin adapts to each instance's wake-ups); 0: not recorded.
	LastMarginMs   float64    `json:"lastMarginMs,omitempty"`
	LastCut        *time.Time `json:"lastCut,omitempty"`
	RecordReadable bool       `json:"recordReadable"`
}

func runStatus(ctx context.Context, c *cli, args []string) error {
	fs, o := c.newFlags("status", "[--watch 5s] [--rate R] [--files 10] [--age-source auto|cloudwatch|peek] [--peek 1000]")
	rate := fs.Float64("rate", 0, "the order API's total rate, requests/s (default: the deployment's: $"+envAPIRate+", the stack output "+pipeline.OutputAPIRate+")")
	watch := fs.Duration("watch", 0, "refresh in place at this interval until Ctrl-C (0: once)")
	maxFiles := fs.Int("files", 10, "show at most this many files (ingest state of the last 24h, newest first)")
	ageSource := fs.String("age-source", ageAuto, "how to find the oldest message's age: cloudwatch (AWS), peek (stand-in), auto")
	peekMax := fs.Int("peek", 1000, "at most this many parked messages are peeked to count classes (dead-letter queues only)")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *rate < 0 || (flagSet(fs, "rate") && *rate == 0) {
		return usageErrorf("status: --rate %v: must be > 0", *rate)
	}
	if *watch < 0 || (*watch > 0 && *watch < time.Second) {
		return usageErrorf("status: --watch %v: at least 1s", *watch)
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
	deployed, source, err := c.deployedRate(s, *rate)
	if err != nil {
		return err
	}
	st := statusRun{s: s, metrics: cloudwatch.NewFromConfig(s.cfg), ageSource: *ageSource, peekMax: *peekMax, rateSource: source, maxFiles: *maxFiles}
	for {
		st.now = c.now()
		r, err := st.report(ctx, deployed)
		if err != nil {
			return err
		}
		if *watch > 0 && !o.json {
			fmt.Fprint(c.stdout, "\033[H\033[2J") // home and clear: the report replaces the last one
			fmt.Fprintf(c.stdout, "orderpipe status at %s, every %s (Ctrl-C stops)\n", st.now.Format(time.RFC3339), *watch)
		}
		if o.json {
			err = writeJSON(c.stdout, r)
		} else {
			err = r.print(c.stdout)
		}
		if err != nil || *watch == 0 {
			return err
		}
		st.prev = &drainSample{at: st.now, backlog: r.Backlog}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*watch):
		}
	}
}

// metricsAPI is the part of CloudWatch that status uses.
type metricsAPI interface {
	GetMetricStatistics(ctx context.Context, in *cloudwatch.GetMetricStatisticsInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricStatisticsOutput, error)
	GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

// statusRun gathers one status report.
type statusRun struct {
	s         *session
	metrics   metricsAPI
	now       time.Time
	ageSource string
	peekMax   int
	// rateSource says where the rate given to report was read; maxFiles bounds the files shown.
	rateSource string
	maxFiles   int
	// prev is the previous sample of a --watch, for a drain rate measured between samples.
	prev *drainSample
}

func (st statusRun) report(ctx context.Context, rate float64) (statusReport, error) {
	r := statusReport{At: st.now, ParkedByClass: map[string]int{}, Rate: rate, RateSource: st.rateSource, Files: []fileProgress{}, Warnings: []string{}}
	parkedBySource := map[string]int{}
	var ordersURL string
	var inflight *local.InFlightSnapshot
	if st.ageSource == agePeek && st.s.names.Bucket != "" {
		var err error
		if inflight, err = st.localInFlight(ctx, st.s.names.Bucket); err != nil {
			return r, err
		}
	}
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
		if inflight != nil {
			inFlightAge(&qs, *inflight, st.now)
		}
		classes, age := st.peekPlan(q.name)
		if (classes || age) && qs.depth() > 0 {
			var oldest time.Time
			n, err := st.s.scanner(url, st.peekMax).scan(ctx, func(m sqstypes.Message) verdict {
				if t := sentAt(m); !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
					oldest = t
				}
				if classes {
					p := parkedFrom(m)
					r.ParkedByClass[p.Class]++
					parkedBySource[p.Source]++
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
		if q.name == "orders" {
			r.Backlog, ordersURL = qs.depth(), url
		}
	}
	if len(r.Queues) == 0 {
		return r, usageErrorf("status: no queue configured: set --orders-queue etc., the ORDERPIPE_* variables or --stack")
	}
	if table := st.s.names.GovernorTable; table != "" {
		g, err := st.governor(ctx, table)
		if err != nil {
			return r, err
		}
		r.Governor = &g
		if g.Rate > 0 && st.rateSource != rateFlag {
			// The governor has lowered the rate below the deployment's ceiling: dispatch paces at it.
			r.Rate, r.RateSource = g.Rate, fmt.Sprintf("the governor's current rate; deployed %g from %s", r.Rate, r.RateSource)
		}
		if g.Breaker == "open" {
			r.Warnings = append(r.Warnings, fmt.Sprintf("governor: circuit breaker open since %s: the order API keeps failing; orders wait (not parked)",
				g.OpenSince.Format(time.RFC3339)))
		}
	}
	if err := st.measureDrain(ctx, &r, ordersURL); err != nil {
		return r, err
	}
	if st.ageSource == ageCloudWatch {
		if err := st.throttleWarning(ctx, &r); err != nil {
			return r, err
		}
	}
	for _, qs := range r.Queues {
		r.Warnings = append(r.Warnings, st.retentionRisk(qs, r)...)
	}
	if st.s.names.Bucket == "" {
		r.Warnings = append(r.Warnings, "bucket not configured (--bucket): no per-file progress")
	} else if st.maxFiles > 0 {
		files, err := st.files(ctx, st.s.names.Bucket, st.maxFiles)
		if err != nil {
			return r, err
		}
		for i := range files {
			files[i].Parked = parkedBySource["s3://"+files[i].Bucket+"/"+files[i].Key]
			switch {
			case files[i].Stalled:
				r.Warnings = append(r.Warnings, fmt.Sprintf("files: s3://%s/%s stalled at line %d: its ingest invocation died (lease expired %s ago); it resumes when the files queue shows its message again",
					files[i].Bucket, files[i].Key, files[i].Lines, fmtDuration(st.now.Sub(files[i].LeaseUntil))))
			case files[i].Silent:
				r.Warnings = append(r.Warnings, fmt.Sprintf("files: s3://%s/%s has had no checkpoint for %s (the last after %d lines): %s; if so it resumes when its message reappears on the files queue (within the files visibility) or its claim's lease ends (%s)",
					files[i].Bucket, files[i].Key, fmtDuration(st.now.Sub(files[i].CheckpointAt)), files[i].Lines, files[i].silence(), files[i].LeaseUntil.Format(time.RFC3339)))
			}
		}
		if ordersDLQ, ok := queueNamed(r.Queues, "orders-dlq"); ok && ordersURL != "" {
			setDelivered(files, r.Backlog, ordersDLQ.depth(), r.ParkedPeeked)
		}
		r.Files = files
	}
	return r, nil
}

// ageLocalRunner is the age source of a source queue's in-flight messages as the local runner
// publishes them (local.InFlightKey): a lower bound of the queue's oldest message.
const ageLocalRunner = "local runner: in flight"

// localInFlight reads the snapshot a running `orderpipe local` publishes of its pollers'
// in-flight messages; nil when there is none or it is stale (older than three of its
// intervals: the runner is gone).
func (st statusRun) localInFlight(ctx context.Context, bucket string) (*local.InFlightSnapshot, error) {
	out, err := st.s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(local.InFlightKey)})
	if errors.As(err, new(*s3types.NoSuchKey)) || errors.As(err, new(*s3types.NoSuchBucket)) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the local runner's in-flight messages s3://%s/%s: %w", bucket, local.InFlightKey, err)
	}
	defer out.Body.Close()
	var snap local.InFlightSnapshot
	if err := json.NewDecoder(out.Body).Decode(&snap); err != nil {
		return nil, fmt.Errorf("decode the local runner's in-flight messages s3://%s/%s: %w", bucket, local.InFlightKey, err)
	}
	if st.now.Sub(snap.At) > 3*max(snap.Every, time.Second) {
		return nil, nil
	}
	return &snap, nil
}

// inFlightAge sets q's oldest age from the snapshot's oldest in-flight message of q, when q
// has no age yet.
func inFlightAge(q *queueStatus, snap local.InFlightSnapshot, now time.Time) {
	var oldest time.Time
	for url, msgs := range snap.Queues {
		if queueName(url) != queueName(q.URL) {
			continue
		}
		for _, m := range msgs {
			if !m.SentAt.IsZero() && (oldest.IsZero() || m.SentAt.Before(oldest)) {
				oldest = m.SentAt
			}
		}
	}
	if q.OldestAgeSeconds == nil && !oldest.IsZero() {
		age := int64(max(now.Sub(oldest), 0) / time.Second)
		q.OldestAgeSeconds, q.AgeSource = &age, ageLocalRunner
	}
}

// queueNamed returns the queue of qs named name.
func queueNamed(qs []queueStatus, name string) (queueStatus, bool) {
	for _, q := range qs {
		if q.Queue == name {
			return q, true
		}
	}
	return queueStatus{}, false
}

// governor reads the governor's shared record.
func (st statusRun) governor(ctx context.Context, table string) (governorStatus, error) {
	rec, err := governor.NewDynamoStore(dynamodb.NewFromConfig(st.s.cfg), table, "").Load(ctx)
	g := governorStatus{Table: table, Breaker: "closed", RecordReadable: err == nil}
	if err != nil && !errors.Is(err, governor.ErrCorrupt) {
		return g, fmt.Errorf("read governor: %w", err)
	}
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	g.Rate, g.PolicyRate, g.Failures = rec.Rate, rec.Policy, rec.Failures
	g.LastSlot, g.LastCut = at(rec.Last), at(rec.CutAt)
	if !rec.Last.IsZero() && rec.Late.After(rec.Last) {
		g.LastMarginMs = float64(rec.Late.Sub(rec.Last).Microseconds()) / 1000
	}
	if rec.PausedUntil.After(st.now) {
		g.PausedUntil = at(rec.PausedUntil)
	}
	if rec.Open() {
		g.Breaker, g.OpenSince, g.NextProbe = "open", at(rec.OpenedAt), at(rec.ProbeAt)
	}
	return g, nil
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
			sqstypes.QueueAttributeNameVisibilityTimeout,
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
		Queue:             name,
		URL:               url,
		Visible:           num(sqstypes.QueueAttributeNameApproximateNumberOfMessages),
		InFlight:          num(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:           num(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed),
		RetentionSeconds:  num(sqstypes.QueueAttributeNameMessageRetentionPeriod),
		VisibilitySeconds: num(sqstypes.QueueAttributeNameVisibilityTimeout),
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

// retentionRisk warns as the stack's alarms do: on the orders queue when the oldest order has
// waited half the retention (OrdersOldestNearRetention) or the backlog needs more than half the
// retention at the API rate (OrdersBacklogDrainTime), and when it will not drain before the
// retention deletes it; on the files queue when a file message is older than the ingest timeout
// plus the queue's visibility timeout (FilesOldest: ingest's heartbeat keeps a message hidden
// for as long as its invocation runs); on a dead-letter queue when the oldest parked message
// expires within expiryWarning.
func (st statusRun) retentionRisk(q queueStatus, r statusReport) []string {
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
	if q.Queue == "files" {
		visibility := time.Duration(q.VisibilitySeconds) * time.Second
		if limit := pipeline.Defaults().IngestTimeout + visibility; q.OldestAgeSeconds != nil && visibility > 0 && age > limit {
			return []string{fmt.Sprintf("files: the oldest file message is %s old, older than the ingest timeout plus the visibility timeout %s: ingest keeps failing on it or its invocation died",
				fmtDuration(age), fmtDuration(limit))}
		}
		return nil
	}
	if q.Queue != "orders" {
		return nil
	}
	var out []string
	half := retention / 2
	if age >= half {
		out = append(out, fmt.Sprintf("orders: the oldest order has waited %s, past half the retention (%s): it expires in %s",
			fmtDuration(age), fmtDuration(half), fmtDuration(max(retention-age, 0))))
	}
	nominal := pipeline.Settings{APIRate: r.Rate}.DrainTime(q.depth())
	if nominal > half {
		out = append(out, fmt.Sprintf("orders: a backlog of %d orders needs %s at %g orders/s, more than half the retention (%s)",
			q.depth(), fmtDuration(nominal), r.Rate, fmtDuration(half)))
	}
	drain, at := nominal, fmt.Sprintf("%g orders/s", r.Rate)
	if r.DrainSource != "" && r.DrainRate > 0 {
		drain, at = time.Duration(r.ETASeconds)*time.Second, fmt.Sprintf("the measured %.3g orders/s", r.DrainRate)
	}
	if age+drain > retention {
		known := "age of the oldest unknown, counted as 0"
		if q.OldestAgeSeconds != nil {
			known = "oldest " + fmtDuration(age) + " old"
		}
		out = append(out, fmt.Sprintf("orders: a backlog of %d orders needs %s at %s but retention is %s (%s): orders will expire before delivery",
			q.depth(), fmtDuration(drain), at, fmtDuration(retention), known))
	}
	return out
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
	fmt.Fprintf(w, "orders backlog: %d orders, ETA %s (%s)\n", r.Backlog, fmtDuration(time.Duration(r.ETASeconds)*time.Second), r.ETASource)
	drain := "not measured"
	if r.DrainSource != "" {
		drain = fmt.Sprintf("%.3g orders/s (%s)", r.DrainRate, r.DrainSource)
	}
	fmt.Fprintf(w, "API rate: %g orders/s (%s); drain: %s\n", r.Rate, r.RateSource, drain)
	printFiles(w, r.Files, r.At)
	if g := r.Governor; g != nil {
		rate := "ceiling (API_RATE)"
		if g.Rate > 0 {
			rate = strconv.FormatFloat(g.Rate, 'g', 4, 64) + " rps"
		}
		if g.PolicyRate > 0 {
			rate += fmt.Sprintf(", API policy %g rps", g.PolicyRate)
		}
		breaker := g.Breaker
		if g.OpenSince != nil {
			breaker += fmt.Sprintf(" since %s, next probe %s", g.OpenSince.Format(time.RFC3339), g.NextProbe.Format(time.RFC3339))
		}
		fmt.Fprintf(w, "governor: rate %s; breaker %s; failures in a row %d", rate, breaker, g.Failures)
		if g.LastMarginMs > 0 {
			fmt.Fprintf(w, "; last slot's margin %g ms", g.LastMarginMs)
		}
		if g.PausedUntil != nil {
			fmt.Fprintf(w, "; paused until %s", g.PausedUntil.Format(time.RFC3339))
		}
		if !g.RecordReadable {
			fmt.Fprint(w, "; record unreadable (the next dispatch replaces it)")
		}
		fmt.Fprintln(w)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
	return nil
}

// fmtDuration prints whole days as "14d", longer than a day as days plus the rest to the
// minute ("8d2h27m"), anything else rounded to the second.
func fmtDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= day && d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	case d >= day:
		rest := strings.TrimSuffix((d % day).Round(time.Minute).String(), "0s")
		return fmt.Sprintf("%dd%s", d/day, rest)
	}
	return d.Round(time.Second).String()
}

// queueName is the last path element of a queue URL.
func queueName(url string) string { return url[strings.LastIndex(url, "/")+1:] }

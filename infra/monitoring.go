package main

import (
	"fmt"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// MonitoringProps says what to watch.
type MonitoringProps struct {
	Settings   pipeline.Settings
	AlarmEmail string // empty: no subscription
	Uploads    *Uploads
	Orders     *OrderQueue
	Ingest     *Ingest
	Dispatch   *Dispatch
	Redrive    *Redrive
}

// Monitoring is the alarm topic (KMS-encrypted, TLS-only, optional email subscription), the
// alarms, each notifying the topic on ALARM and OK, and the dashboard.
//
// Alarms, for every way a file or an order can be stuck or lost: any message on either DLQ, and
// each time new ones arrive (orders: sent by dispatch, NumberOfMessagesSent, or moved by the
// queue's redrive policy, a growing depth; files: a growing depth); a parked order older than
// half the DLQ retention (it expires at the full one); orders older than half the queue
// retention, or a backlog that takes more than half the retention to drain at the API rate; a
// file message older than the files visibility timeout (ingest keeps failing); S3 events SNS
// failed to deliver to the files queue, and any on the subscription's DLQ; files ingest refused
// or stopped (its warn lines, ingest.LogFileRefused and LogFileStopped, counted by log metric
// filters), the lines of such files never read and files waiting in S3 for room on the orders
// queue (ingest's EMF metrics LinesUnread and FilesWaiting); and for each function, any ERROR log line (both consumers report partial batch
// failures, which the Errors metric does not count), any error, any throttle, and p99 duration
// above 80% of its timeout (ingest: see durationAlarm).
type Monitoring struct {
	constructs.Construct
	Key       awskms.Key
	Topic     awssns.Topic
	Alarms    []awscloudwatch.Alarm
	Dashboard awscloudwatch.Dashboard
}

const alarmPeriod = 5 * time.Minute

// Log metrics (metric filters on the functions' log groups) in LogMetricsNamespace/<stack name>:
// <Function>ErrorLines counts each function's ERROR lines (errorLevel, as the functions' text
// log format writes it); the ingest ones count its warn lines about files it did not read to
// the end.
const (
	LogMetricsNamespace = "orderpipe-logs"
	MetricErrorLines    = "ErrorLines"
	MetricFilesRefused  = "IngestFilesRefused"
	MetricFilesStopped  = "IngestFilesStopped"
	errorLevel          = "level=ERROR"
)

// NewMonitoring creates the topic, alarms and dashboard.
func NewMonitoring(scope constructs.Construct, id string, props MonitoringProps) *Monitoring {
	c := constructs.NewConstruct(scope, jsii.String(id))
	m := &Monitoring{Construct: c}
	s := props.Settings

	// CloudWatch publishes to an encrypted topic only with a customer managed key whose policy
	// lets cloudwatch.amazonaws.com use it.
	m.Key = awskms.NewKey(c, jsii.String("TopicKey"), &awskms.KeyProps{
		Description:       jsii.String("orderpipe alarm topic"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	m.Key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchPublishesAlarms"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:GenerateDataKey", "kms:Decrypt"),
		Resources:  jsii.Strings("*"), // in a key policy, "*" is this key
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Stack_Of(c).Account()}},
	}), nil)
	m.Topic = awssns.NewTopic(c, jsii.String("Topic"), &awssns.TopicProps{
		DisplayName: jsii.String("orderpipe alarms"),
		MasterKey:   m.Key,
		EnforceSSL:  jsii.Bool(true),
	})
	// The topic policy (TLS-only) replaces SNS's default one, so CloudWatch needs its own grant.
	m.Topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{m.Topic.TopicArn()},
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Stack_Of(c).Account()}},
	}))
	if props.AlarmEmail != "" {
		m.Topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(props.AlarmEmail), nil))
	}

	u, o := props.Uploads, props.Orders
	for _, d := range []struct {
		id  string
		dlq awssqs.Queue
	}{{"FilesDLQNotEmpty", u.FilesDLQ}, {"OrdersDLQNotEmpty", o.DLQ}} {
		m.alarm(d.id, d.dlq.MetricApproximateNumberOfMessagesVisible(stat("Maximum")), 0,
			"Messages are parked on the DLQ: inspect with `orderpipe dlq ls`, fix, then `orderpipe dlq redrive`.")
	}
	// NumberOfMessagesSent counts dispatch's parks but not the redrive policy's moves; a depth
	// that grew over the period counts those.
	m.alarm("OrdersParked", math("MAX([sent, DIFF(depth)])", "new parked orders", map[string]awscloudwatch.IMetric{
		"sent": o.DLQ.MetricNumberOfMessagesSent(stat("Sum")), "depth": o.DLQ.MetricApproximateNumberOfMessagesVisible(stat("Maximum")),
	}), 0, "New orders were parked on the orders DLQ in the last period (each new batch alarms again): `orderpipe dlq ls`.")
	m.alarm("FilesParked", math("DIFF(depth)", "new parked files", map[string]awscloudwatch.IMetric{
		"depth": u.FilesDLQ.MetricApproximateNumberOfMessagesVisible(stat("Maximum")),
	}), 0, "New file messages were parked on the files DLQ in the last period: ingest failed them maxReceiveCount times.")
	dlqHalf := s.DLQRetention / 2
	m.alarm("OrdersDLQOldestNearRetention", o.DLQ.MetricApproximateAgeOfOldestMessage(stat("Maximum")), dlqHalf.Seconds(),
		fmt.Sprintf("A parked order has waited more than half the orders DLQ retention (%v): SQS deletes it at %v. Redrive or record it now.", dlqHalf, s.DLQRetention))
	m.alarm("UploadsNotificationsFailed", u.Topic.MetricNumberOfNotificationsFailed(stat("Sum")), 0,
		"SNS failed to deliver S3 events to the files queue: see the subscription DLQ (those files are not ingested).")
	m.alarm("SubscriptionDLQNotEmpty", u.SubscriptionDLQ.MetricApproximateNumberOfMessagesVisible(stat("Maximum")), 0,
		"S3 events SNS could not deliver to the files queue are parked on the subscription DLQ: their files were never ingested.")
	half := s.QueueRetention / 2
	m.alarm("OrdersOldestNearRetention", o.Queue.MetricApproximateAgeOfOldestMessage(stat("Maximum")), half.Seconds(),
		fmt.Sprintf("The oldest order has waited more than half the orders queue retention (%v): it expires at %v.", half, s.QueueRetention))
	backlog := float64(s.MaxBacklog()) / 2
	m.alarm("OrdersBacklogDrainTime", o.Queue.MetricApproximateNumberOfMessagesVisible(stat("Maximum")), backlog,
		fmt.Sprintf("More than %.0f orders queued: at %v req/s they need more than half the retention (%v) to drain.", backlog, s.APIRate, half))
	// A file message lives one invocation (a continuation or a busy file's re-send is a new
	// message) plus the visibility its heartbeat keeps ahead.
	filesAge := s.IngestTimeout + s.FilesVisibility
	m.alarm("FilesOldest", u.FilesQueue.MetricApproximateAgeOfOldestMessage(stat("Maximum")), filesAge.Seconds(),
		fmt.Sprintf("A file message is older than the ingest timeout plus the files visibility (%v): ingest is failing or retrying it.", filesAge))

	for _, f := range []struct {
		name    string
		fn      awslambda.Function
		timeout time.Duration
	}{
		{"Ingest", props.Ingest.Function, s.IngestTimeout},
		{"Dispatch", props.Dispatch.Function, s.DispatchTimeout},
		{"Redrive", props.Redrive.Function, s.RedriveTimeout},
	} {
		m.alarm(f.name+"Errors", f.fn.MetricErrors(stat("Sum")), 0, "The "+f.name+" function failed invocations.")
		m.alarm(f.name+"Throttles", f.fn.MetricThrottles(stat("Sum")), 0, "The "+f.name+" function was throttled.")
		limit := durationAlarm(f.name, f.timeout)
		m.alarm(f.name+"DurationP99", f.fn.MetricDuration(stat("p99")), float64(limit.Milliseconds()),
			fmt.Sprintf("The %s function's p99 duration is above %v (timeout %v).", f.name, limit, f.timeout))
	}

	// The governor (pkg/governor), from dispatch's EMF metrics (dimension Function = its name).
	fn := props.Dispatch.Function.FunctionName()
	governorMetric := func(name, statistic string, period time.Duration) awscloudwatch.IMetric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(dispatch.MetricsNamespace), MetricName: jsii.String(name),
			DimensionsMap: &map[string]*string{dispatch.MetricDimension: fn}, Statistic: jsii.String(statistic), Period: seconds(period),
		})
	}
	open := awscloudwatch.NewAlarm(c, jsii.String("BreakerOpen"), &awscloudwatch.AlarmProps{
		Metric:             governorMetric(dispatch.MetricBreakerOpen, "Maximum", time.Minute),
		Threshold:          jsii.Number(0),
		EvaluationPeriods:  jsii.Number(breakerAlarmMinutes),
		DatapointsToAlarm:  jsii.Number(breakerAlarmMinutes),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		AlarmDescription: jsii.String(fmt.Sprintf("The order API's circuit breaker has been open %d minutes: the API keeps failing; orders wait on the queue (not parked). `orderpipe status` shows the breaker.",
			breakerAlarmMinutes)),
	})
	m.notify(open)
	m.alarm("GovernorErrors", governorMetric(dispatch.MetricGovernorErrors, "Sum", alarmPeriod), 0,
		"Dispatch cannot reach the governor table: orders are given back unsent. Check DynamoDB and the dispatch role.")

	// Ingest's own EMF metrics (dimension Function = its name): lines of refused or stopped
	// files that were never read, and files held back in S3 for want of room on the orders queue.
	ingestFn := props.Ingest.Function
	m.alarm("IngestLinesUnread", emfOf(ingestFn, ingest.MetricsNamespace, ingest.MetricDimension, ingest.MetricLinesUnread, "Sum"), 0,
		"Lines of a file ingest refused or stopped were not read as orders (LinesUnread): find the file by its `file refused` / `file stopped` warn line; its report's `unread` counts them.")
	m.alarm("IngestFilesWaiting", emfOf(ingestFn, ingest.MetricsNamespace, ingest.MetricDimension, ingest.MetricFilesWaiting, "Sum"), 0,
		"A file waits in S3 because the orders queue has no room left within its retention (FilesWaiting): its report says since when; it continues by itself once dispatch drains the backlog. `orderpipe status`.")

	logs := m.logMetrics(props)
	for _, l := range logs {
		m.alarm(l.id, l.metric, 0, l.description)
	}

	m.Dashboard = newDashboard(c, props, logs)
	return m
}

// logMetric is a count of the log lines of one function that match a filter pattern.
type logMetric struct {
	id          string // alarm id and metric name
	metric      awscloudwatch.IMetric
	description string
}

// logMetrics adds the log metric filters: ERROR lines of each function, and the files ingest
// refused or stopped. Their metrics are in the namespace LogMetricsNamespace/<stack name>, so
// two stacks in one account do not add up.
func (m *Monitoring) logMetrics(props MonitoringProps) []logMetric {
	namespace := LogMetricsNamespace + "/" + *awscdk.Stack_Of(m.Construct).StackName()
	var out []logMetric
	add := func(id string, group awslogs.ILogGroup, pattern awslogs.IFilterPattern, description string) {
		f := awslogs.NewMetricFilter(m.Construct, jsii.String(id+"Filter"), &awslogs.MetricFilterProps{
			LogGroup:        group,
			FilterPattern:   pattern,
			MetricNamespace: jsii.String(namespace),
			MetricName:      jsii.String(id),
			MetricValue:     jsii.String("1"),
		})
		out = append(out, logMetric{id: id, metric: f.Metric(stat("Sum")), description: description})
	}
	for _, f := range []struct {
		name  string
		group awslogs.ILogGroup
	}{{"Ingest", props.Ingest.LogGroup}, {"Dispatch", props.Dispatch.LogGroup}, {"Redrive", props.Redrive.LogGroup}} {
		add(f.name+MetricErrorLines, f.group, awslogs.FilterPattern_AllTerms(jsii.String(errorLevel)),
			fmt.Sprintf("The %s function logged ERROR lines (failed messages it reports back to the queue, which the Errors metric misses): search its log group for %q.", f.name, errorLevel))
	}
	add(MetricFilesRefused, props.Ingest.LogGroup, awslogs.FilterPattern_AllTerms(jsii.String(ingest.LogFileRefused)),
		"Ingest refused a file whole (unknown file name, failed verification, larger than MAX_FILE_BYTES or than MAX_DECOMPRESSED_BYTES decompressed): none of its lines were sent. See its report.")
	add(MetricFilesStopped, props.Ingest.LogGroup, awslogs.FilterPattern_AllTerms(jsii.String(ingest.LogFileStopped)),
		"Ingest stopped reading a file half-way (bad CSV header, corrupt gzip): the lines after that point were not read. See its report.")
	return out
}

// math is a metric math expression over metrics (by id), with the alarm period.
func math(expression, label string, metrics map[string]awscloudwatch.IMetric) awscloudwatch.IMetric {
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String(expression),
		UsingMetrics: &metrics,
		Label:        jsii.String(label),
		Period:       seconds(alarmPeriod),
	})
}

// breakerAlarmMinutes is how long the breaker stays open before its alarm fires.
const breakerAlarmMinutes = 15

// alarm creates an alarm on metric > threshold over one period, notifying the topic on ALARM and
// OK; missing data (an idle pipeline) is not breaching.
func (m *Monitoring) alarm(id string, metric awscloudwatch.IMetric, threshold float64, description string) {
	a := awscloudwatch.NewAlarm(m.Construct, jsii.String(id), &awscloudwatch.AlarmProps{
		Metric:             metric,
		Threshold:          jsii.Number(threshold),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		AlarmDescription:   jsii.String(description),
	})
	m.notify(a)
}

// notify sends a's ALARM and OK to the topic and records it in Alarms.
func (m *Monitoring) notify(a awscloudwatch.Alarm) {
	action := awscloudwatchactions.NewSnsAction(m.Topic)
	a.AddAlarmAction(action)
	a.AddOkAction(action)
	m.Alarms = append(m.Alarms, a)
}

// durationAlarm is the p99 duration that alarms: 80% of the timeout; for ingest, which by
// design works on a large file until CheckpointMargin before its deadline and then continues in a
// new invocation, half the margin before the timeout (it missed its checkpoint).
func durationAlarm(name string, timeout time.Duration) time.Duration {
	limit := timeout * 8 / 10
	if name == "Ingest" {
		limit = max(limit, timeout-CheckpointMargin/2)
	}
	return limit
}

func stat(statistic string) *awscloudwatch.MetricOptions {
	return &awscloudwatch.MetricOptions{Statistic: jsii.String(statistic), Period: seconds(alarmPeriod)}
}

// emf is one of dispatch's embedded metric format (EMF) metrics of fn, this stack's dispatch
// function (dimension dispatch.MetricDimension = its name).
func emf(fn awslambda.Function, name, statistic string) awscloudwatch.IMetric {
	return emfOf(fn, dispatch.MetricsNamespace, dispatch.MetricDimension, name, statistic)
}

// emfOf is the EMF metric name in namespace that fn emits with the one dimension dimension =
// its function name: this stack's metrics, not another deployment's in the same account.
func emfOf(fn awslambda.Function, namespace, dimension, name, statistic string) awscloudwatch.IMetric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(namespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{dimension: fn.FunctionName()},
		Statistic:     jsii.String(statistic),
		Label:         jsii.String(name + " " + statistic),
		Period:        seconds(alarmPeriod),
	})
}

func newDashboard(scope constructs.Construct, props MonitoringProps, logs []logMetric) awscloudwatch.Dashboard {
	u, o := props.Uploads, props.Orders
	graph := func(title string, metrics ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Left: &metrics, Width: jsii.Number(8), Height: jsii.Number(6),
		})
	}
	fnGraph := func(name string, fn awslambda.Function) awscloudwatch.IWidget {
		return graph(name+" function",
			fn.MetricInvocations(stat("Sum")), fn.MetricErrors(stat("Sum")), fn.MetricThrottles(stat("Sum")),
			fn.MetricDuration(stat("p99")))
	}
	outcomes := make([]awscloudwatch.IMetric, 0, 5)
	fn := props.Dispatch.Function
	for _, n := range dispatch.OutcomeMetrics() {
		outcomes = append(outcomes, emf(fn, n, "Sum"))
	}
	logCounts := make([]awscloudwatch.IMetric, 0, len(logs))
	for _, l := range logs {
		logCounts = append(logCounts, l.metric)
	}
	max := stat("Maximum")
	d := awscloudwatch.NewDashboard(scope, jsii.String("Dashboard"), nil)
	d.AddWidgets(
		graph("Queue depth (visible / in flight)",
			u.FilesQueue.MetricApproximateNumberOfMessagesVisible(max), u.FilesQueue.MetricApproximateNumberOfMessagesNotVisible(max),
			o.Queue.MetricApproximateNumberOfMessagesVisible(max), o.Queue.MetricApproximateNumberOfMessagesNotVisible(max)),
		graph("DLQ depth", u.FilesDLQ.MetricApproximateNumberOfMessagesVisible(max), o.DLQ.MetricApproximateNumberOfMessagesVisible(max)),
		graph("Age of oldest message (s)",
			u.FilesQueue.MetricApproximateAgeOfOldestMessage(max), o.Queue.MetricApproximateAgeOfOldestMessage(max),
			o.DLQ.MetricApproximateAgeOfOldestMessage(max)),
	)
	d.AddWidgets(
		fnGraph("Ingest", props.Ingest.Function),
		fnGraph("Dispatch", props.Dispatch.Function),
		fnGraph("Redrive", props.Redrive.Function),
	)
	d.AddWidgets(
		graph("Dispatch outcomes (orderpipe EMF)", outcomes...),
		graph("Order API latency and pacing wait (ms)",
			emf(fn, dispatch.MetricApiLatency, "p50"), emf(fn, dispatch.MetricApiLatency, "p99"), emf(fn, dispatch.MetricPacingWait, "p99")),
		graph("ERROR lines, refused and stopped files", logCounts...),
	)
	in := props.Ingest.Function
	d.AddWidgets(
		graph("Ingest: lines not read, files waiting for room (orderpipe EMF)",
			emfOf(in, ingest.MetricsNamespace, ingest.MetricDimension, ingest.MetricLinesUnread, "Sum"),
			emfOf(in, ingest.MetricsNamespace, ingest.MetricDimension, ingest.MetricFilesWaiting, "Sum")),
	)
	d.AddWidgets(
		graph("Governor: shared rate (req/s), breaker open, held orders, store errors",
			emf(fn, dispatch.MetricApiRate, "Minimum"), emf(fn, dispatch.MetricBreakerOpen, "Maximum"),
			emf(fn, dispatch.MetricHeld, "Sum"), emf(fn, dispatch.MetricGovernorErrors, "Sum")),
	)
	d.AddWidgets(
		graph("Lost on the way in: SNS delivery failures, subscription DLQ",
			u.Topic.MetricNumberOfNotificationsFailed(stat("Sum")), u.SubscriptionDLQ.MetricApproximateNumberOfMessagesVisible(max)),
		graph("Parked orders sent (dispatch) and oldest parked (s)",
			o.DLQ.MetricNumberOfMessagesSent(stat("Sum")), o.DLQ.MetricApproximateAgeOfOldestMessage(max)),
	)
	return d
}

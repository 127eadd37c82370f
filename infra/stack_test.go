package main

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

func TestBucket(t *testing.T) {
	s := full(t)
	u := s.pipe.Uploads
	bucket := props(s.resource(t, u.Bucket))
	logs := s.id(u.AccessLogs)

	t.Run("private, encrypted, versioned, logged", func(t *testing.T) {
		s.has(t, "AWS::S3::Bucket", map[string]any{
			"PublicAccessBlockConfiguration": map[string]any{
				"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
			},
			"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{
				map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}},
			}},
			"VersioningConfiguration": map[string]any{"Status": "Enabled"},
			"LoggingConfiguration":    map[string]any{"DestinationBucketName": map[string]any{"Ref": logs}},
		})
		if got := jsonString(bucket["VersioningConfiguration"]); got != `{"Status":"Enabled"}` {
			t.Errorf("uploads bucket versioning: got %s, want Enabled", got)
		}
	})

	t.Run("lifecycle", func(t *testing.T) {
		rules := map[string]map[string]any{}
		for _, r := range list(jsonPath(bucket, "LifecycleConfiguration", "Rules")) {
			m := r.(map[string]any)
			rules[flat(m["Prefix"])] = m
		}
		for _, prefix := range []string{PrefixRejects, PrefixReports, PrefixState} {
			if got := rules[prefix]["ExpirationInDays"]; got != float64(90) {
				t.Errorf("%s expiration: got %v, want 90 days", prefix, got)
			}
		}
		if _, ok := rules[PrefixUploads]; ok {
			t.Errorf("uploads/ has an expiration rule; order files must stay until someone decides otherwise")
		}
		all := rules[`null`]
		if got := all["NoncurrentVersionExpiration"]; jsonString(got) != `{"NoncurrentDays":30}` {
			t.Errorf("noncurrent version expiration: got %s, want 30 days", jsonString(got))
		}
	})

	t.Run("notification on uploads/ to the topic", func(t *testing.T) {
		s.has(t, "Custom::S3BucketNotifications", map[string]any{
			"NotificationConfiguration": map[string]any{"TopicConfigurations": []any{map[string]any{
				"Events":   []any{"s3:ObjectCreated:*"},
				"TopicArn": map[string]any{"Ref": s.id(u.Topic)},
				"Filter": map[string]any{"Key": map[string]any{"FilterRules": []any{
					map[string]any{"Name": "prefix", "Value": "uploads/"},
				}}},
			}}},
		})
		// S3 checks that it may publish when the notification is set: the topic policy must exist first.
		for id, n := range s.ofType("Custom::S3BucketNotifications") {
			if deps := jsonString(n["DependsOn"]); !strings.Contains(deps, "UploadsTopicPolicy") {
				t.Errorf("%s DependsOn %s: want the uploads topic policy", id, deps)
			}
		}
	})
}

// jsonPath walks nested objects by key.
func jsonPath(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

func TestTLSOnly(t *testing.T) {
	s := full(t)
	for _, typ := range []string{"AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"} {
		t.Run(typ, func(t *testing.T) {
			policies := s.ofType(typ)
			want := map[string]int{"AWS::S3::BucketPolicy": 2, "AWS::SQS::QueuePolicy": 5, "AWS::SNS::TopicPolicy": 2}[typ]
			if len(policies) != want {
				t.Errorf("%s count: got %d, want %d", typ, len(policies), want)
			}
			for id, p := range policies {
				if !deniesInsecureTransport(statements(p)) {
					t.Errorf("%s %s: no Deny on aws:SecureTransport=false: %s", typ, id, jsonString(statements(p)))
				}
			}
		})
	}
	t.Run("S3 minimum TLS 1.2", func(t *testing.T) {
		for id, p := range s.ofType("AWS::S3::BucketPolicy") {
			if !strings.Contains(jsonString(p), `"s3:TlsVersion":1.2`) {
				t.Errorf("%s: no s3:TlsVersion 1.2 condition", id)
			}
		}
	})
}

func deniesInsecureTransport(sts []map[string]any) bool {
	for _, st := range sts {
		if st["Effect"] == "Deny" && jsonString(jsonPath(st, "Condition", "Bool")) == `{"aws:SecureTransport":"false"}` {
			return true
		}
	}
	return false
}

func TestTopicPolicyOnlyThisBucket(t *testing.T) {
	s := full(t)
	u := s.pipe.Uploads
	var topicPolicy map[string]any
	for _, p := range s.ofType("AWS::SNS::TopicPolicy") {
		if jsonString(props(p)["Topics"]) == jsonString([]any{map[string]any{"Ref": s.id(u.Topic)}}) {
			topicPolicy = p
		}
	}
	if topicPolicy == nil {
		t.Fatal("no topic policy for the uploads topic")
	}
	var allows []map[string]any
	for _, st := range statements(topicPolicy) {
		if st["Effect"] == "Allow" {
			allows = append(allows, st)
		}
	}
	if len(allows) != 1 {
		t.Fatalf("uploads topic Allow statements: got %d, want 1: %s", len(allows), jsonString(allows))
	}
	got := allows[0]
	want := map[string]any{
		"Action":    "sns:Publish",
		"Effect":    "Allow",
		"Principal": map[string]any{"Service": "s3.amazonaws.com"},
		"Resource":  map[string]any{"Ref": s.id(u.Topic)},
		"Sid":       "OnlyTheUploadsBucketPublishes",
		"Condition": map[string]any{
			"ArnLike":      map[string]any{"aws:SourceArn": map[string]any{"Fn::GetAtt": []any{s.id(u.Bucket), "Arn"}}},
			"StringEquals": map[string]any{"aws:SourceAccount": map[string]any{"Ref": "AWS::AccountId"}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("uploads topic Allow statement (-want +got):\n%s", diff)
	}
}

func TestEncryption(t *testing.T) {
	s := full(t)
	u, m := s.pipe.Uploads, s.pipe.Monitoring
	t.Run("topics use their customer managed keys", func(t *testing.T) {
		for _, c := range []struct{ topic, key string }{{s.id(u.Topic), s.id(u.Key)}, {s.id(m.Topic), s.id(m.Key)}} {
			got := jsonString(props(s.resources[c.topic])["KmsMasterKeyId"])
			if want := jsonString(map[string]any{"Fn::GetAtt": []any{c.key, "Arn"}}); got != want {
				t.Errorf("topic %s key: got %s, want %s", c.topic, got, want)
			}
		}
	})
	t.Run("keys rotate", func(t *testing.T) {
		for id, k := range s.ofType("AWS::KMS::Key") {
			if props(k)["EnableKeyRotation"] != true {
				t.Errorf("key %s: rotation off", id)
			}
		}
	})
	t.Run("publishing services may use the keys, scoped", func(t *testing.T) {
		for _, c := range []struct {
			key, service, condition string
		}{
			{s.id(u.Key), "s3.amazonaws.com", `"aws:SourceArn":{"Fn::GetAtt":["` + s.id(u.Bucket) + `","Arn"]}`},
			{s.id(m.Key), "cloudwatch.amazonaws.com", `"aws:SourceAccount":{"Ref":"AWS::AccountId"}`},
		} {
			found := false
			for _, st := range statements(s.resources[c.key]) {
				if jsonString(st["Principal"]) == `{"Service":"`+c.service+`"}` {
					found = true
					if got := jsonString(st["Action"]); got != `["kms:Decrypt","kms:GenerateDataKey"]` {
						t.Errorf("%s key actions for %s: got %s", c.key, c.service, got)
					}
					if !strings.Contains(jsonString(st["Condition"]), c.condition) {
						t.Errorf("%s key statement for %s: condition %s lacks %s", c.key, c.service, jsonString(st["Condition"]), c.condition)
					}
				}
			}
			if !found {
				t.Errorf("key %s: no statement for %s", c.key, c.service)
			}
		}
	})
	t.Run("queues SSE-SQS", func(t *testing.T) {
		qs := s.ofType("AWS::SQS::Queue")
		if len(qs) != 5 {
			t.Errorf("queues: got %d, want 5", len(qs))
		}
		for id, q := range qs {
			if props(q)["SqsManagedSseEnabled"] != true {
				t.Errorf("queue %s: SqsManagedSseEnabled not true", id)
			}
		}
	})
}

func TestQueues(t *testing.T) {
	s := full(t)
	st := pipeline.Defaults()
	u, o := s.pipe.Uploads, s.pipe.Orders
	for _, c := range []struct {
		name       string
		queue, dlq string
		visibility float64
	}{
		{"files", s.id(u.FilesQueue), s.id(u.FilesDLQ), st.FilesVisibility.Seconds()},
		{"orders", s.id(o.Queue), s.id(o.DLQ), st.OrdersVisibility.Seconds()},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, dlq := props(s.resources[c.queue]), props(s.resources[c.dlq])
			if got, want := q["MessageRetentionPeriod"], st.QueueRetention.Seconds(); got != want {
				t.Errorf("retention: got %v, want %v", got, want)
			}
			if got, want := dlq["MessageRetentionPeriod"], st.DLQRetention.Seconds(); got != want {
				t.Errorf("DLQ retention: got %v, want %v", got, want)
			}
			if got := q["VisibilityTimeout"]; got != c.visibility {
				t.Errorf("visibility: got %v, want %v", got, c.visibility)
			}
			want := map[string]any{
				"deadLetterTargetArn": map[string]any{"Fn::GetAtt": []any{c.dlq, "Arn"}},
				"maxReceiveCount":     float64(st.MaxReceiveCount),
			}
			if diff := cmp.Diff(want, q["RedrivePolicy"]); diff != "" {
				t.Errorf("redrive policy (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("files queue subscribed with raw delivery", func(t *testing.T) {
		s.has(t, "AWS::SNS::Subscription", map[string]any{
			"Protocol":           "sqs",
			"RawMessageDelivery": true,
			"TopicArn":           map[string]any{"Ref": s.id(u.Topic)},
			"Endpoint":           map[string]any{"Fn::GetAtt": []any{s.id(u.FilesQueue), "Arn"}},
		})
	})
}

func TestFunctions(t *testing.T) {
	s := full(t)
	p := s.pipe
	st := pipeline.Defaults()
	for _, c := range []struct {
		name    string
		id      string
		timeout float64
		env     []string
	}{
		{"ingest", s.id(p.Ingest.Function), st.IngestTimeout.Seconds(), slices.Collect(maps.Keys(ingest.DefaultConfig().Environ()))},
		{"dispatch", s.id(p.Dispatch.Function), st.DispatchTimeout.Seconds(), append(slices.Collect(maps.Keys(dispatch.DefaultConfig().Environ())), dispatch.EnvAPISecretARN, dispatch.EnvGovernorTable, dispatch.EnvDeliveryTable)},
		{"redrive", s.id(p.Redrive.Function), st.RedriveTimeout.Seconds(), slices.Collect(maps.Keys(redrive.Config{}.Environ()))},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := props(s.resources[c.id])
			for k, want := range map[string]any{
				"Runtime":       "provided.al2023",
				"Architectures": []any{"arm64"},
				"Handler":       "bootstrap",
				"Timeout":       c.timeout,
				"TracingConfig": map[string]any{"Mode": "Active"},
			} {
				if diff := cmp.Diff(want, f[k]); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
			vars, _ := jsonPath(f, "Environment", "Variables").(map[string]any)
			var got []string
			for k := range vars {
				got = append(got, k)
			}
			sort.Strings(got)
			want := append([]string(nil), c.env...)
			sort.Strings(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("environment variables (-want +got):\n%s", diff)
			}
			if jsonPath(f, "LoggingConfig", "LogGroup") == nil {
				t.Errorf("no own log group")
			}
		})
	}
	t.Run("dispatch environment values", func(t *testing.T) {
		vars := jsonPath(props(s.resources[s.id(p.Dispatch.Function)]), "Environment", "Variables").(map[string]any)
		for k, want := range map[string]string{
			"ORDER_API_BASE_URL":   "https://orders.example.com/v1",
			"ORDER_API_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orderpipe/api-AbCdEf",
			"API_RATE":             "1",
			"API_INSTANCES":        "2",
			"MAX_ATTEMPTS":         "8",
			"ORDER_API_TIMEOUT":    "10s",
			"BACKOFF_BASE":         "2s",
			"BACKOFF_MAX":          "15m0s",
			"LOG_LEVEL":            "INFO",
		} {
			if got := vars[k]; got != want {
				t.Errorf("%s: got %v, want %q", k, got, want)
			}
		}
	})
	// The queue URLs go through Config.Environ as CDK tokens: the template must resolve them to
	// the queues, not carry the tokens' text.
	t.Run("queue URLs resolve", func(t *testing.T) {
		for _, c := range []struct {
			fn       constructs.IConstruct
			variable string
			queue    constructs.IConstruct
		}{
			{p.Ingest.Function, "ORDERS_QUEUE_URL", p.Orders.Queue},
			{p.Ingest.Function, "FILES_QUEUE_URL", p.Uploads.FilesQueue},
			{p.Dispatch.Function, "ORDERS_QUEUE_URL", p.Orders.Queue},
			{p.Dispatch.Function, "ORDERS_DLQ_URL", p.Orders.DLQ},
			{p.Redrive.Function, "ORDERS_QUEUE_URL", p.Orders.Queue},
			{p.Redrive.Function, "ORDERS_DLQ_URL", p.Orders.DLQ},
		} {
			vars := jsonPath(props(s.resources[s.id(c.fn)]), "Environment", "Variables").(map[string]any)
			if diff := cmp.Diff(map[string]any{"Ref": s.id(c.queue)}, vars[c.variable]); diff != "" {
				t.Errorf("%s of %s (-want +got):\n%s", c.variable, s.id(c.fn), diff)
			}
		}
	})
	t.Run("log retention", func(t *testing.T) {
		groups := s.ofType("AWS::Logs::LogGroup")
		if len(groups) != 3 {
			t.Errorf("log groups: got %d, want 3", len(groups))
		}
		for id, g := range groups {
			if got := props(g)["RetentionInDays"]; got != float64(90) {
				t.Errorf("log group %s retention: got %v, want 90", id, got)
			}
		}
	})
	t.Run("dispatch reserved concurrency", func(t *testing.T) {
		if got := props(s.resources[s.id(p.Dispatch.Function)])["ReservedConcurrentExecutions"]; got != float64(st.ReservedConcurrency) {
			t.Errorf("reserved concurrency: got %v, want %d", got, st.ReservedConcurrency)
		}
	})
}

func TestEventSources(t *testing.T) {
	s := full(t)
	p := s.pipe
	s.has(t, "AWS::Lambda::EventSourceMapping", map[string]any{
		"FunctionName":          map[string]any{"Ref": s.id(p.Dispatch.Function)},
		"EventSourceArn":        map[string]any{"Fn::GetAtt": []any{s.id(p.Orders.Queue), "Arn"}},
		"BatchSize":             1,
		"ScalingConfig":         map[string]any{"MaximumConcurrency": 2},
		"FunctionResponseTypes": []any{"ReportBatchItemFailures"},
	})
	s.has(t, "AWS::Lambda::EventSourceMapping", map[string]any{
		"FunctionName":          map[string]any{"Ref": s.id(p.Ingest.Function)},
		"EventSourceArn":        map[string]any{"Fn::GetAtt": []any{s.id(p.Uploads.FilesQueue), "Arn"}},
		"BatchSize":             1,
		"ScalingConfig":         assertions.Match_Absent(),
		"FunctionResponseTypes": []any{"ReportBatchItemFailures"},
	})
	if got := len(s.ofType("AWS::Lambda::EventSourceMapping")); got != 2 {
		t.Errorf("event source mappings: got %d, want 2 (redrive is invoked, not fed)", got)
	}
	t.Run("redrive schedule", func(t *testing.T) {
		s.has(t, "AWS::Events::Rule", map[string]any{
			"ScheduleExpression": "rate(1 hour)",
			"Targets": []any{map[string]any{
				"Arn":   map[string]any{"Fn::GetAtt": []any{s.id(p.Redrive.Function), "Arn"}},
				"Input": `{"class":["exhausted"],"maxRedrives":3}`,
			}},
		})
	})
}

// grants returns, for the role roleID, every allowed action with the resources it applies to.
func (s *synthesized) grants(t *testing.T, roleID string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, pol := range s.ofType("AWS::IAM::Policy") {
		if jsonString(props(pol)["Roles"]) != jsonString([]any{map[string]any{"Ref": roleID}}) {
			continue
		}
		for _, st := range statements(pol) {
			if st["Effect"] != "Allow" {
				t.Errorf("role %s: unexpected %v statement", roleID, st["Effect"])
			}
			for _, a := range list(st["Action"]) {
				for _, r := range list(st["Resource"]) {
					out[a.(string)] = append(out[a.(string)], flat(r))
				}
			}
		}
	}
	for a := range out {
		sort.Strings(out[a])
	}
	return out
}

func TestLeastPrivilege(t *testing.T) {
	s := full(t)
	p := s.pipe
	att := func(id string) string { return "<" + id + ".Arn>" }
	bucket := att(s.id(p.Uploads.Bucket))
	files, orders, dlq := att(s.id(p.Uploads.FilesQueue)), att(s.id(p.Orders.Queue)), att(s.id(p.Orders.DLQ))
	deliveries := att(s.id(p.Deliveries.Table))
	consume := func(queue string) map[string][]string {
		out := map[string][]string{}
		for _, a := range []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"} {
			out[a] = []string{queue}
		}
		return out
	}
	common := func(logs string, extra ...map[string][]string) map[string][]string {
		out := map[string][]string{
			"logs:CreateLogStream":     {att(logs)},
			"logs:PutLogEvents":        {att(logs)},
			"xray:PutTraceSegments":    {"*"},
			"xray:PutTelemetryRecords": {"*"},
		}
		for _, e := range extra {
			for a, rs := range e {
				out[a] = append(out[a], rs...)
				sort.Strings(out[a])
			}
		}
		return out
	}
	for _, c := range []struct {
		name string
		role string
		want map[string][]string
	}{
		{"ingest", s.id(p.Ingest.Role), common(s.id(p.Ingest.LogGroup), consume(files), map[string][]string{
			"s3:GetObject":           {bucket + "/reports/*", bucket + "/state/*", bucket + "/uploads/*"}, // reports: adoptReport
			"s3:GetObjectVersion":    {bucket + "/uploads/*"},
			"s3:PutObject":           {bucket + "/rejects/*", bucket + "/reports/*", bucket + "/state/*"},
			"s3:DeleteObject":        {bucket + "/rejects/*", bucket + "/state/*"}, // stale rejects, checkpoint sidecars
			"s3:ListBucket":          {bucket},
			"sqs:SendMessage":        {orders, files},
			"sqs:GetQueueAttributes": {orders}, // the backlog before a file enqueues (files: consume)
		})},
		{"dispatch", s.id(p.Dispatch.Role), common(s.id(p.Dispatch.LogGroup), consume(orders), map[string][]string{
			"sqs:SendMessage":               {dlq, orders}, // park, and re-send throttled orders (pkg/dispatch requeue)
			"secretsmanager:GetSecretValue": {"arn:aws:secretsmanager:eu-west-1:123456789012:secret:orderpipe/api-AbCdEf"},
			// The governor's one item (pkg/governor): read, and conditional write; the delivery
			// records (pkg/delivery): claim, mark, release, read.
			"dynamodb:GetItem":    {deliveries, "<" + s.id(p.Governor.Table) + ".Arn>"},
			"dynamodb:UpdateItem": {deliveries, "<" + s.id(p.Governor.Table) + ".Arn>"},
			"dynamodb:DeleteItem": {deliveries},
		})},
		{"redrive", s.id(p.Redrive.Role), common(s.id(p.Redrive.LogGroup), map[string][]string{
			"sqs:ReceiveMessage":          {dlq},
			"sqs:DeleteMessage":           {dlq},
			"sqs:ChangeMessageVisibility": {dlq},
			"sqs:GetQueueAttributes":      {dlq, orders},
			"sqs:StartMessageMoveTask":    {dlq},
			"sqs:ListMessageMoveTasks":    {dlq},
			"sqs:SendMessage":             {orders},
			"s3:GetObject":                {bucket + "/audit/redrive/*"}, // move records: written before each send, read back after a crash
			"s3:PutObject":                {bucket + "/audit/redrive/*"},
			"s3:ListBucket":               {bucket},
		})},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := s.grants(t, c.role)
			for a := range got {
				if strings.Contains(a, "*") {
					t.Errorf("wildcard action %q", a)
				}
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("grants, action -> resources (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("function roles have no managed policies", func(t *testing.T) {
		for _, role := range []string{s.id(p.Ingest.Role), s.id(p.Dispatch.Role), s.id(p.Redrive.Role)} {
			if mp := props(s.resources[role])["ManagedPolicyArns"]; mp != nil {
				t.Errorf("role %s: managed policies %s", role, jsonString(mp))
			}
		}
	})
}

func TestAlarms(t *testing.T) {
	s := full(t)
	p := s.pipe
	alarms := s.ofType("AWS::CloudWatch::Alarm")
	if got, want := len(alarms), 2+2+1+3+2+3+2+3*3+2+2; got != want { // +2: BreakerOpen, GovernorErrors; +2: ingest's EMF
		t.Errorf("alarms: got %d, want %d", got, want)
	}
	topic := jsonString([]any{map[string]any{"Ref": s.id(p.Monitoring.Topic)}})
	// described renders an alarm as what it watches: "Namespace MetricName dimensions" for one
	// metric, "math expression: each metric's namespace, name and dimensions" for metric math
	// (and a metric with a label).
	var described []map[string]any
	for id, a := range alarms {
		ap := props(a)
		if jsonString(ap["AlarmActions"]) != topic || jsonString(ap["OKActions"]) != topic {
			t.Errorf("alarm %s: actions %s / %s, want the alarm topic", id, jsonString(ap["AlarmActions"]), jsonString(ap["OKActions"]))
		}
		if ap["ComparisonOperator"] != "GreaterThanThreshold" {
			t.Errorf("alarm %s comparison: got %v", id, ap["ComparisonOperator"])
		}
		d := fmt.Sprintf("%v %v %s", ap["Namespace"], ap["MetricName"], jsonString(ap["Dimensions"]))
		if ap["MetricName"] == nil {
			d = "math"
			for _, m := range list(ap["Metrics"]) {
				mm := m.(map[string]any)
				if e, ok := mm["Expression"].(string); ok {
					d += " " + e + ":"
				}
				d += fmt.Sprintf(" %v %v %s", jsonPath(mm, "MetricStat", "Metric", "Namespace"), jsonPath(mm, "MetricStat", "Metric", "MetricName"),
					jsonString(jsonPath(mm, "MetricStat", "Metric", "Dimensions")))
			}
		}
		described = append(described, map[string]any{"what": d, "threshold": ap["Threshold"]})
	}
	st := pipeline.Defaults()
	logs := func(metric string) string { return metric + " null" } // a log metric has no dimension
	ingestEMF := func(metric string) string {
		return ingest.MetricsNamespace + " " + metric + " " +
			jsonString([]any{map[string]any{"Name": ingest.MetricDimension, "Value": map[string]any{"Ref": s.id(p.Ingest.Function)}}})
	}
	for _, c := range []struct {
		name      string
		watches   []string // fragments of the alarm's description
		threshold float64
	}{
		{"files DLQ not empty", []string{"ApproximateNumberOfMessagesVisible", s.id(p.Uploads.FilesDLQ)}, 0},
		{"orders DLQ not empty", []string{"ApproximateNumberOfMessagesVisible", s.id(p.Orders.DLQ)}, 0},
		{"new parked orders", []string{"math MAX([sent, DIFF(depth)]):", "NumberOfMessagesSent", s.id(p.Orders.DLQ)}, 0},
		{"new parked files", []string{"math DIFF(depth):", "ApproximateNumberOfMessagesVisible", s.id(p.Uploads.FilesDLQ)}, 0},
		{"parked order near DLQ retention", []string{"ApproximateAgeOfOldestMessage", s.id(p.Orders.DLQ)}, st.DLQRetention.Seconds() / 2},
		{"SNS delivery failures", []string{"NumberOfNotificationsFailed", s.id(p.Uploads.Topic)}, 0},
		{"subscription DLQ not empty", []string{"ApproximateNumberOfMessagesVisible", s.id(p.Uploads.SubscriptionDLQ)}, 0},
		{"orders near retention", []string{"ApproximateAgeOfOldestMessage", s.id(p.Orders.Queue)}, st.QueueRetention.Seconds() / 2},
		{"orders backlog", []string{"ApproximateNumberOfMessagesVisible", s.id(p.Orders.Queue)}, float64(st.MaxBacklog()) / 2},
		{"files age", []string{"ApproximateAgeOfOldestMessage", s.id(p.Uploads.FilesQueue)}, (st.IngestTimeout + st.FilesVisibility).Seconds()},
		{"dispatch errors", []string{"Errors", s.id(p.Dispatch.Function)}, 0},
		{"ingest throttles", []string{"Throttles", s.id(p.Ingest.Function)}, 0},
		{"ingest ERROR lines", []string{logs("Ingest" + MetricErrorLines)}, 0},
		{"dispatch ERROR lines", []string{logs("Dispatch" + MetricErrorLines)}, 0},
		{"redrive ERROR lines", []string{logs("Redrive" + MetricErrorLines)}, 0},
		{"files refused", []string{logs(MetricFilesRefused)}, 0},
		{"files stopped", []string{logs(MetricFilesStopped)}, 0},
		// ingest's EMF metrics, this stack's ingest function's only
		{"lines unread", []string{ingestEMF(ingest.MetricLinesUnread)}, 0},
		{"files waiting", []string{ingestEMF(ingest.MetricFilesWaiting)}, 0},
		{"dispatch p99", []string{"Duration", s.id(p.Dispatch.Function)}, 0.8 * float64(st.DispatchTimeout.Milliseconds())},
		{"redrive p99", []string{"Duration", s.id(p.Redrive.Function)}, 0.8 * float64(st.RedriveTimeout.Milliseconds())},
		// ingest checkpoints CheckpointMargin before its deadline by design: alarm past that.
		{"ingest p99", []string{"Duration", s.id(p.Ingest.Function)}, float64((st.IngestTimeout - CheckpointMargin/2).Milliseconds())},
	} {
		t.Run(c.name, func(t *testing.T) {
		alarms:
			for _, a := range described {
				for _, w := range c.watches {
					if !strings.Contains(a["what"].(string), w) {
						continue alarms
					}
				}
				if a["threshold"] == c.threshold {
					return
				}
			}
			t.Errorf("no alarm on %q with threshold %v", c.watches, c.threshold)
		})
	}
	t.Run("log metric filters", func(t *testing.T) {
		for _, c := range []struct {
			group   string
			pattern string
			metric  string
		}{
			{s.id(p.Ingest.LogGroup), `"level=ERROR"`, "Ingest" + MetricErrorLines},
			{s.id(p.Dispatch.LogGroup), `"level=ERROR"`, "Dispatch" + MetricErrorLines},
			{s.id(p.Redrive.LogGroup), `"level=ERROR"`, "Redrive" + MetricErrorLines},
			{s.id(p.Ingest.LogGroup), `"` + ingest.LogFileRefused + `"`, MetricFilesRefused},
			{s.id(p.Ingest.LogGroup), `"` + ingest.LogFileStopped + `"`, MetricFilesStopped},
		} {
			s.has(t, "AWS::Logs::MetricFilter", map[string]any{
				"LogGroupName":  map[string]any{"Ref": c.group},
				"FilterPattern": c.pattern,
				"MetricTransformations": []any{map[string]any{
					"MetricNamespace": LogMetricsNamespace + "/" + StackName, "MetricName": c.metric, "MetricValue": "1",
				}},
			})
		}
	})
	t.Run("subscription DLQ", func(t *testing.T) {
		s.has(t, "AWS::SNS::Subscription", map[string]any{
			"Endpoint":      map[string]any{"Fn::GetAtt": []any{s.id(p.Uploads.FilesQueue), "Arn"}},
			"RedrivePolicy": map[string]any{"deadLetterTargetArn": map[string]any{"Fn::GetAtt": []any{s.id(p.Uploads.SubscriptionDLQ), "Arn"}}},
		})
	})
	t.Run("email subscription", func(t *testing.T) {
		s.has(t, "AWS::SNS::Subscription", map[string]any{
			"Protocol": "email", "Endpoint": "oncall@example.com", "TopicArn": map[string]any{"Ref": s.id(p.Monitoring.Topic)},
		})
	})
	t.Run("dashboard", func(t *testing.T) {
		dash := jsonString(s.resource(t, p.Monitoring.Dashboard))
		for _, want := range append([]string{dispatch.MetricApiLatency, dispatch.MetricPacingWait, "ApproximateAgeOfOldestMessage",
			"ApproximateNumberOfMessagesNotVisible", "NumberOfNotificationsFailed", MetricFilesRefused,
			ingest.MetricLinesUnread, ingest.MetricFilesWaiting}, dispatch.OutcomeMetrics()...) {
			if !strings.Contains(dash, want) {
				t.Errorf("dashboard lacks %s", want)
			}
		}
		// The EMF metrics are this stack's dispatch function's, not a search of the namespace.
		if strings.Contains(dash, "SEARCH(") || !strings.Contains(dash, `\"`+dispatch.MetricDimension+`\",\"",{"Ref":"`+s.id(p.Dispatch.Function)+`"}`) {
			t.Errorf("dashboard EMF metrics not scoped to the dispatch function %s: %.600s", s.id(p.Dispatch.Function), dash)
		}
	})
}

func TestGovernor(t *testing.T) {
	s := full(t)
	p := s.pipe
	table, ok := s.ofType("AWS::DynamoDB::Table")[s.id(p.Governor.Table)]
	if !ok {
		t.Fatalf("no governor table")
	}
	tp := props(table)
	for k, want := range map[string]any{
		"BillingMode":      "PAY_PER_REQUEST",
		"KeySchema":        []any{map[string]any{"AttributeName": governor.KeyAttribute, "KeyType": "HASH"}},
		"SSESpecification": map[string]any{"SSEEnabled": true},
	} {
		if diff := cmp.Diff(want, tp[k]); diff != "" {
			t.Errorf("governor table %s (-want +got):\n%s", k, diff)
		}
	}
	// Only dispatch may touch it.
	for _, role := range []string{s.id(p.Ingest.Role), s.id(p.Redrive.Role)} {
		for action := range s.grants(t, role) {
			if strings.HasPrefix(action, "dynamodb:") {
				t.Errorf("role %s is granted %s", role, action)
			}
		}
	}
	// The breaker alarm: open (BreakerOpen > 0) in each of 15 one-minute periods.
	var found bool
	for _, a := range s.ofType("AWS::CloudWatch::Alarm") {
		ap := props(a)
		if ap["MetricName"] == dispatch.MetricBreakerOpen {
			found = true
			if ap["Period"] != 60.0 || ap["EvaluationPeriods"] != 15.0 || ap["DatapointsToAlarm"] != 15.0 || ap["Threshold"] != 0.0 ||
				ap["ComparisonOperator"] != "GreaterThanThreshold" || ap["Namespace"] != dispatch.MetricsNamespace {
				t.Errorf("breaker alarm %s: want BreakerOpen > 0 in 15 of 15 one-minute periods", jsonString(ap))
			}
		}
	}
	if !found {
		t.Errorf("no alarm on %s", dispatch.MetricBreakerOpen)
	}
}

func TestNagClean(t *testing.T) {
	s := full(t)
	if got := messages(t, s.stack); len(got) != 0 {
		t.Errorf("unsuppressed cdk-nag findings or other warnings: got %d, want none:\n%s", len(got), strings.Join(got, "\n"))
	}
}

func TestOutputs(t *testing.T) {
	s := full(t)
	outputs := s.template.FindOutputs(jsii.String("*"), map[string]any{})
	var got []string
	for k := range *outputs {
		got = append(got, k)
	}
	sort.Strings(got)
	want := []string{"AlarmTopicArn", "ApiRate", "BucketName", "DeliveryTable", "FilesDlqUrl", "FilesQueueUrl", "GovernorTableName", "OrdersDlqUrl", "OrdersQueueUrl", "RedriveFunctionName"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
}

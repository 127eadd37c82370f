package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// FunctionProps is what every orderpipe function shares.
type FunctionProps struct {
	// AssetDir holds <name>/bootstrap (linux/arm64), as `make build` leaves it in build/.
	AssetDir string
	// Tracing turns on X-Ray active tracing.
	Tracing bool
	// LogRetention of the function's log group (default three months).
	LogRetention awslogs.RetentionDays
}

// AppFunction is one Go Lambda function with its own role and log group: provided.al2023 on
// arm64, handler "bootstrap", code from AssetDir/<name>. Ingest, Dispatch and Redrive embed it.
type AppFunction struct {
	Function awslambda.Function
	Role     awsiam.Role
	LogGroup awslogs.LogGroup
}

type functionSpec struct {
	FunctionProps
	name        string
	description string
	timeout     time.Duration
	memoryMB    int
	reserved    int               // 0: unreserved
	env         map[string]string // the function's Config.Environ(); values may hold CDK tokens
}

func newAppFunction(scope constructs.Construct, spec functionSpec) AppFunction {
	retention := spec.LogRetention
	if retention == "" {
		retention = awslogs.RetentionDays_THREE_MONTHS
	}
	logs := awslogs.NewLogGroup(scope, jsii.String("Logs"), &awslogs.LogGroupProps{
		Retention:     retention,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	// An own role instead of the default one: the default attaches the AWS managed
	// AWSLambdaBasicExecutionRole (logs on every log group); this one writes only its log group.
	role := awsiam.NewRole(scope, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("orderpipe " + spec.name + " function"),
	})
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("WriteOwnLogs"),
		Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
		Resources: &[]*string{logs.LogGroupArn()},
	}))
	tracing := awslambda.Tracing_DISABLED
	if spec.Tracing {
		tracing = awslambda.Tracing_ACTIVE
	}
	props := &awslambda.FunctionProps{
		Description:  jsii.String(spec.description),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(filepath.Join(spec.AssetDir, spec.name)), nil),
		Timeout:      seconds(spec.timeout),
		MemorySize:   jsii.Number(float64(spec.memoryMB)),
		Role:         role,
		LogGroup:     logs,
		Tracing:      tracing,
		Environment:  jsiiMap(spec.env),
	}
	if spec.reserved > 0 {
		props.ReservedConcurrentExecutions = jsii.Number(float64(spec.reserved))
	}
	fn := awslambda.NewFunction(scope, jsii.String("Function"), props)
	if spec.Tracing {
		suppress(role, true, nag("AwsSolutions-IAM5",
			"X-Ray PutTraceSegments/PutTelemetryRecords do not support resource-level permissions.",
			"Resource::*"))
	}
	return AppFunction{Function: fn, Role: role, LogGroup: logs}
}

// sqsSource connects fn to queue with an event source mapping reporting partial batch failures
// and lets fn consume the queue.
func sqsSource(scope constructs.Construct, fn awslambda.Function, queue awssqs.IQueue, batchSize, maxConcurrency int) awslambda.EventSourceMapping {
	props := &awslambda.EventSourceMappingProps{
		Target:                  fn,
		EventSourceArn:          queue.QueueArn(),
		BatchSize:               jsii.Number(float64(batchSize)),
		ReportBatchItemFailures: jsii.Bool(true),
	}
	if maxConcurrency > 0 {
		props.MaxConcurrency = jsii.Number(float64(maxConcurrency))
	}
	esm := awslambda.NewEventSourceMapping(scope, jsii.String("EventSource"), props)
	queue.GrantConsumeMessages(fn)
	return esm
}

// IngestProps configures Ingest.
type IngestProps struct {
	FunctionProps
	Settings  pipeline.Settings // IngestTimeout; APIRate and QueueRetention bound the orders queue's room
	BatchSize int               // files queue event source batch size, 1..10
	Uploads   *Uploads
	Orders    *OrderQueue
}

// Ingest is the function that turns an uploaded file into order messages: it consumes the files
// queue, reads uploads/ objects (any version), reads and writes its checkpoints under state/,
// writes rejects/ and reports/, and sends to the orders queue and (continuations) the files queue.
type Ingest struct {
	constructs.Construct
	AppFunction
	EventSource awslambda.EventSourceMapping
}

// NewIngest creates the ingest function, its event source and its grants.
func NewIngest(scope constructs.Construct, id string, props IngestProps) *Ingest {
	c := constructs.NewConstruct(scope, jsii.String(id))
	u, o := props.Uploads, props.Orders
	f := newAppFunction(c, functionSpec{
		FunctionProps: props.FunctionProps,
		name:          "ingest",
		description:   "orderpipe: uploaded order file -> orders queue",
		timeout:       props.Settings.IngestTimeout,
		memoryMB:      512,
		env:           ingestConfig(*o.Queue.QueueUrl(), *u.FilesQueue.QueueUrl(), props.Settings.FilesVisibility).WithSettings(props.Settings).Environ(),
	})
	objects := func(prefixes ...string) *[]*string {
		arns := make([]*string, len(prefixes))
		for i, p := range prefixes {
			arns[i] = u.Bucket.ArnForObjects(jsii.String(p + "*"))
		}
		return &arns
	}
	allow(f.Role, "ReadUploads", objects(PrefixUploads), "s3:GetObject", "s3:GetObjectVersion")
	// state/: checkpoints, id sets and reject parts; reports/: a retry adopts the report an
	// abandoned run wrote (pkg/ingest adoptReport) instead of sending the file again.
	allow(f.Role, "ReadCheckpointsAndReports", objects(PrefixState, PrefixReports), "s3:GetObject")
	allow(f.Role, "WriteOutputs", objects(PrefixRejects, PrefixReports, PrefixState), "s3:PutObject")
	// A finished checkpoint's sidecar objects (id set, reject parts) are deleted, and so is the
	// rejects object an earlier version of the key left when the new one has no rejects.
	allow(f.Role, "CleanCheckpointsAndStaleRejects", objects(PrefixState, PrefixRejects), "s3:DeleteObject")
	// Without s3:ListBucket a missing object (no checkpoint yet) reads as 403, not 404.
	allow(f.Role, "MissingObjectsRead404", &[]*string{u.Bucket.BucketArn()}, "s3:ListBucket")
	allow(f.Role, "SendOrdersAndContinuations", &[]*string{o.Queue.QueueArn(), u.FilesQueue.QueueArn()}, "sqs:SendMessage")
	// Before a file enqueues, ingest reads the orders queue's backlog: a file that does not fit
	// in what the API drains within the retention waits in S3 (pkg/ingest Config.Room).
	allow(f.Role, "ReadOrdersBacklog", &[]*string{o.Queue.QueueArn()}, "sqs:GetQueueAttributes")
	suppress(f.Role, true, nag("AwsSolutions-IAM5",
		"Object ARNs are scoped to the key prefixes ingest owns (uploads/ read, state/ and reports/ read-write, rejects/ write and delete); keys are only known at run time.",
		regexpAppliesTo(`Resource::<.*Bucket.*\.Arn>/(uploads|state|rejects|reports)/\*`)...))

	esm := sqsSource(c, f.Function, u.FilesQueue, props.BatchSize, 0)
	addConsumerRules(c, "ingest", f.Function, u.FilesQueue, u.FilesDLQ, esm, ingest.EnvFilesVisibility)
	return &Ingest{Construct: c, AppFunction: f, EventSource: esm}
}

// DispatchProps configures Dispatch.
type DispatchProps struct {
	FunctionProps
	Settings     pipeline.Settings // DispatchTimeout, ReservedConcurrency, Instances, APIRate, MaxAttempts
	APIBaseURL   string
	APISecretARN string // empty: no Authorization header
	Orders       *OrderQueue
	Deliveries   *Deliveries // the delivery records: DELIVERY_TABLE, GetItem, UpdateItem, DeleteItem
	Governor     *Governor   // the shared schedule: GOVERNOR_TABLE, GetItem and UpdateItem only
}

// Dispatch is the function that PUTs each order to the API: it consumes the orders queue with
// batch size 1 and MaximumConcurrency = Settings.Instances, under reserved concurrency
// Settings.ReservedConcurrency, changes visibility to back off, parks orders on the DLQ and reads
// the API secret.
type Dispatch struct {
	constructs.Construct
	AppFunction
	EventSource awslambda.EventSourceMapping
}

// NewDispatch creates the dispatch function, its event source and its grants.
func NewDispatch(scope constructs.Construct, id string, props DispatchProps) *Dispatch {
	c := constructs.NewConstruct(scope, jsii.String(id))
	s, o := props.Settings, props.Orders
	cfg := dispatch.DefaultConfig().WithSettings(s)
	cfg.OrdersQueueURL, cfg.DLQURL = *o.Queue.QueueUrl(), *o.DLQ.QueueUrl()
	cfg.APIBaseURL, cfg.APISecretARN = props.APIBaseURL, props.APISecretARN
	cfg.DeliveryTable = *props.Deliveries.Table.TableName()
	cfg.GovernorTable = *props.Governor.Table.TableName()
	f := newAppFunction(c, functionSpec{
		FunctionProps: props.FunctionProps,
		name:          "dispatch",
		description:   "orderpipe: orders queue -> PUT /orders/{id}",
		timeout:       s.DispatchTimeout,
		// 192 MB: dispatch peaks at 17 MB, and its bill is the pacing wait (API_INSTANCES /
		// rate seconds an order), so memory is the price; 128 MB's share of a vCPU (7.2 %)
		// was throttled enough to bring a request early (docs/DECISIONS.md).
		memoryMB: 192,
		reserved: s.ReservedConcurrency,
		env:      cfg.Environ(),
	})
	allow(f.Role, "ParkOrders", &[]*string{o.DLQ.QueueArn()}, "sqs:SendMessage")
	// Throttled and given-back orders are re-sent as a fresh, delayed copy to the orders queue
	// (pkg/dispatch requeue); without this grant every re-send is denied and falls back to a
	// visibility change that spends the transient budget.
	allow(f.Role, "ResendOrders", &[]*string{o.Queue.QueueArn()}, "sqs:SendMessage")
	// The delivery records: claim and mark (UpdateItem), release (DeleteItem), read after a failed
	// claim (GetItem). No scan, no query, no other function (pkg/delivery).
	allow(f.Role, "DeliveryRecords", &[]*string{props.Deliveries.Table.TableArn()}, "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
	// The governor's one item: read it, and write it conditionally (pkg/governor). Nothing else
	// of DynamoDB, and no other function.
	allow(f.Role, "GovernorSchedule", &[]*string{props.Governor.Table.TableArn()}, "dynamodb:GetItem", "dynamodb:UpdateItem")
	if props.APISecretARN != "" {
		allow(f.Role, "ReadAPISecret", jsii.Strings(secretResource(props.APISecretARN)), "secretsmanager:GetSecretValue")
	}
	esm := sqsSource(c, f.Function, o.Queue, 1, s.Instances)
	addConsumerRules(c, "dispatch", f.Function, o.Queue, o.DLQ, esm, "")
	return &Dispatch{Construct: c, AppFunction: f, EventSource: esm}
}

// completeSecretARN matches a secret ARN that ends with the random 6-character suffix.
var completeSecretARN = regexp.MustCompile(`:secret:.+-[A-Za-z0-9]{6}$`)

// secretResource is the IAM resource for a secret ARN: as given when complete, otherwise with
// the "-??????" pattern Secrets Manager's suffix needs (as the CDK does for partial ARNs).
func secretResource(arn string) string {
	if completeSecretARN.MatchString(arn) {
		return arn
	}
	return arn + "-??????"
}

// RedriveProps configures Redrive.
type RedriveProps struct {
	FunctionProps
	Settings pipeline.Settings // RedriveTimeout
	// Schedule, when set (rate(...) or cron(...)), invokes redrive from EventBridge with
	// ScheduledRequest.
	Schedule string
	Orders   *OrderQueue
	// Uploads' bucket keeps the move records under PrefixAudit.
	Uploads *Uploads
}

// Redrive is the function the CLI invokes to move parked orders back: it reads and deletes from
// the orders DLQ, sends to the orders queue, and may use SQS's native message move task.
type Redrive struct {
	constructs.Construct
	AppFunction
	Rule awsevents.Rule // nil unless Schedule is set
}

// NewRedrive creates the redrive function, its grants and the optional schedule.
func NewRedrive(scope constructs.Construct, id string, props RedriveProps) *Redrive {
	c := constructs.NewConstruct(scope, jsii.String(id))
	o := props.Orders
	f := newAppFunction(c, functionSpec{
		FunctionProps: props.FunctionProps,
		name:          "redrive",
		description:   "orderpipe: orders DLQ -> orders queue",
		timeout:       props.Settings.RedriveTimeout,
		memoryMB:      256,
		env:           redrive.Config{QueueURL: *o.Queue.QueueUrl(), DLQURL: *o.DLQ.QueueUrl(), AuditBucket: *props.Uploads.Bucket.BucketName()}.Environ(),
	})
	// Each move is recorded before it happens and read back when a crashed run's message comes
	// round again. Without s3:ListBucket a missing record (the usual case) reads as 403.
	allow(f.Role, "RecordMoves", &[]*string{props.Uploads.Bucket.ArnForObjects(jsii.String(PrefixAudit + "*"))}, "s3:GetObject", "s3:PutObject")
	allow(f.Role, "MissingRecordsRead404", &[]*string{props.Uploads.Bucket.BucketArn()}, "s3:ListBucket")
	suppress(f.Role, true, nag("AwsSolutions-IAM5",
		"Object ARNs are scoped to the prefix of redrive's move records (audit/redrive/); keys are DLQ message ids, only known at run time.",
		regexpAppliesTo(`Resource::<.*Bucket.*\.Arn>/audit/redrive/\*`)...))
	allow(f.Role, "ReadParked", &[]*string{o.DLQ.QueueArn()},
		"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
		"sqs:StartMessageMoveTask", "sqs:ListMessageMoveTasks")
	// GetQueueAttributes: the native move task names its destination by ARN, which redrive
	// looks up from the orders queue URL.
	allow(f.Role, "RequeueOrders", &[]*string{o.Queue.QueueArn()}, "sqs:SendMessage", "sqs:GetQueueAttributes")
	r := &Redrive{Construct: c, AppFunction: f}
	if props.Schedule != "" {
		r.Rule = awsevents.NewRule(c, jsii.String("Schedule"), &awsevents.RuleProps{
			Description: jsii.String("orderpipe: scheduled redrive of the orders DLQ"),
			Schedule:    awsevents.Schedule_Expression(jsii.String(props.Schedule)),
			Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(f.Function, &awseventstargets.LambdaFunctionProps{
				Event: awsevents.RuleTargetInput_FromObject(jsonObject(ScheduledRequest)),
			})},
		})
	}
	return r
}

// ScheduledMaxRedrives is how many times a scheduled redrive moves one order back: after that it
// stays parked for a person (redrive.Request.MaxRedrives, counted in the order's Redrives
// attribute).
const ScheduledMaxRedrives = 3

// ScheduledRequest is the redrive.Request a scheduled redrive sends: only orders whose transient
// failures ran past the budget (exhausted), which may succeed on a later try, and each at most
// ScheduledMaxRedrives times. Permanent and undecodable orders need a person, and so do unknown
// ones (parked by the queue's redrive policy after the function crashed or timed out on them
// maxReceiveCount times: on a timer they would crash it again).
var ScheduledRequest = redrive.Request{Class: redrive.Classes{order.ClassExhausted}, MaxRedrives: ScheduledMaxRedrives}

// ingestConfig is the ingest function's configuration in a deployment: the defaults with the
// two queues.
func ingestConfig(ordersQueueURL, filesQueueURL string, filesVisibility time.Duration) ingest.Config {
	c := ingest.DefaultConfig()
	c.OrdersQueueURL, c.FilesQueueURL, c.FilesVisibility = ordersQueueURL, filesQueueURL, filesVisibility
	return c
}

// jsiiMap converts an environment for the CDK.
func jsiiMap(env map[string]string) *map[string]*string {
	out := make(map[string]*string, len(env))
	for k, v := range env {
		out[k] = jsii.String(v)
	}
	return &out
}

// jsonObject is r as the CDK takes a JSON object: its encoding/json form decoded into a map, so
// the rule sends exactly what redrive decodes. A Request (strings, numbers, booleans) always
// encodes to an object.
func jsonObject(r redrive.Request) map[string]any {
	b, _ := json.Marshal(r)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// allow adds one statement to role's policy; sid names it in the template.
func allow(role awsiam.Role, sid string, resources *[]*string, actions ...string) {
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(sid),
		Actions:   jsii.Strings(actions...),
		Resources: resources,
	}))
}

// regexpAppliesTo anchors patterns as "/^...$/", which nagRule turns into cdk-nag's regex
// appliesTo form.
func regexpAppliesTo(patterns ...string) []string {
	out := make([]string, len(patterns))
	for i, p := range patterns {
		out[i] = "/^" + p + "$/"
	}
	return out
}

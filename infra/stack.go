package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// OrderPipe is the whole pipeline in one stack, one construct per concern.
type OrderPipe struct {
	awscdk.Stack
	Uploads    *Uploads
	Orders     *OrderQueue
	Ingest     *Ingest
	Dispatch   *Dispatch
	Deliveries *Deliveries
	Governor   *Governor
	Redrive    *Redrive
	Monitoring *Monitoring
}

// NewOrderPipe validates cfg and, only if it is valid, creates the stack. props may be nil.
func NewOrderPipe(scope constructs.Construct, id string, props *awscdk.StackProps, cfg Config) (*OrderPipe, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("orderpipe stack %s: %w", id, err)
	}
	if err := checkAssets(cfg.AssetDir); err != nil {
		return nil, fmt.Errorf("orderpipe stack %s: %w", id, err)
	}
	sp := awscdk.StackProps{}
	if props != nil {
		sp = *props
	}
	if sp.Description == nil {
		sp.Description = jsii.String("orderpipe: S3 order files -> SQS -> throttled order API")
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &sp)
	s := cfg.Settings
	fp := FunctionProps{AssetDir: cfg.AssetDir, Tracing: cfg.Tracing}

	p := &OrderPipe{Stack: stack}
	p.Uploads = NewUploads(stack, "Uploads", UploadsProps{Settings: s})
	p.Orders = NewOrderQueue(stack, "OrderQueue", OrderQueueProps{Settings: s})
	p.Ingest = NewIngest(stack, "Ingest", IngestProps{
		FunctionProps: fp, Settings: s, BatchSize: cfg.IngestBatchSize, Uploads: p.Uploads, Orders: p.Orders,
	})
	p.Deliveries = NewDeliveries(stack, "Deliveries")
	p.Governor = NewGovernor(stack, "Governor", GovernorProps{PointInTimeRecovery: cfg.GovernorPITR})
	p.Dispatch = NewDispatch(stack, "Dispatch", DispatchProps{
		FunctionProps: fp, Settings: s, APIBaseURL: cfg.APIBaseURL, APISecretARN: cfg.APISecretARN, Orders: p.Orders,
		Governor: p.Governor, Deliveries: p.Deliveries,
	})
	p.Redrive = NewRedrive(stack, "Redrive", RedriveProps{
		FunctionProps: fp, Settings: s, Schedule: cfg.RedriveSchedule, Orders: p.Orders, Uploads: p.Uploads,
	})
	p.Monitoring = NewMonitoring(stack, "Monitoring", MonitoringProps{
		Settings: s, AlarmEmail: cfg.AlarmEmail,
		Uploads: p.Uploads, Orders: p.Orders, Ingest: p.Ingest, Dispatch: p.Dispatch, Redrive: p.Redrive,
	})

	// The S3 notifications handler is a stack-wide singleton the CDK creates for
	// Bucket.AddEventNotification; its role is not ours to shape.
	suppressPath(stack, "/"+*stack.Node().Path()+"/BucketNotificationsHandler050a0587b7544547bf325f094a3db834",
		nag("AwsSolutions-IAM4", "CDK's S3 notifications handler (a deploy-time custom resource) uses AWSLambdaBasicExecutionRole for its own logs.",
			"Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"))

	// Output keys are the ones `orderpipe --stack` reads (docs/CONTRACTS.md).
	outputs := map[string]*string{
		pipeline.OutputBucket:          p.Uploads.Bucket.BucketName(),
		pipeline.OutputFilesQueue:      p.Uploads.FilesQueue.QueueUrl(),
		pipeline.OutputFilesDLQ:        p.Uploads.FilesDLQ.QueueUrl(),
		pipeline.OutputOrdersQueue:     p.Orders.Queue.QueueUrl(),
		pipeline.OutputOrdersDLQ:       p.Orders.DLQ.QueueUrl(),
		pipeline.OutputRedriveFunction: p.Redrive.Function.FunctionName(),
		pipeline.OutputAlarmTopic:      p.Monitoring.Topic.TopicArn(),
		pipeline.OutputDeliveryTable:   p.Deliveries.Table.TableName(),
		pipeline.OutputGovernorTable:   p.Governor.Table.TableName(),
		pipeline.OutputAPIRate:         jsii.String(strconv.FormatFloat(s.APIRate, 'g', -1, 64)),
	}
	for name, v := range outputs {
		awscdk.NewCfnOutput(stack, jsii.String(name), &awscdk.CfnOutputProps{Value: v})
	}
	return p, nil
}

// FunctionNames are the functions built to <AssetDir>/<name>/bootstrap.
var FunctionNames = []string{"ingest", "dispatch", "redrive"}

// checkAssets reports every function whose bootstrap is missing from dir, saying how to build it.
func checkAssets(dir string) error {
	var errs []error
	for _, fn := range FunctionNames {
		p := filepath.Join(dir, fn, "bootstrap")
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			errs = append(errs, fmt.Errorf("function asset %s missing: run `make build` (or set context %s)", p, CtxAssetDir))
		}
	}
	return errors.Join(errs...)
}

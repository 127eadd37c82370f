package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

// StackName is the id of the orderpipe stack (and of the pipeline's deployed stage stack).
const StackName = "OrderPipe"

// featureFlags are the CDK feature flags the constructs rely on, set here (not in cdk.json) so
// that tests and `cdk synth` build the same template.
var featureFlags = map[string]any{
	// Server access logs are delivered under a bucket policy, not an ACL (the log bucket
	// enforces bucket-owner object ownership, so ACLs are off).
	"@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": true,
	// Merge policy statements that differ only in actions or resources.
	"@aws-cdk/aws-iam:minimizePolicies": true,
	// Partition literals instead of AWS::Partition references where the region is known.
	"@aws-cdk/core:enablePartitionLiterals": true,
}

// NewApp returns a CDK app with featureFlags set under extra context (cdk.json and -c still
// override it).
func NewApp(context map[string]any) awscdk.App {
	ctx := map[string]any{}
	for k, v := range featureFlags {
		ctx[k] = v
	}
	for k, v := range context {
		ctx[k] = v
	}
	return awscdk.NewApp(&awscdk.AppProps{Context: &ctx})
}

// Build reads the Config from app's context and adds the stacks: the orderpipe stack, or the
// pipeline stack that deploys it when context pipeline=true. It creates nothing when the config
// is invalid. The AwsSolutions cdk-nag pack is applied to the whole app.
func Build(app awscdk.App) error {
	cfg, err := ParseContext(func(k string) any { return app.Node().TryGetContext(jsii.String(k)) })
	if err != nil {
		return fmt.Errorf("read context: %w", err)
	}
	// The CLI sets these when it has credentials; without them the stack is environment-agnostic.
	var env *awscdk.Environment
	if a, r := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); a != "" && r != "" {
		env = &awscdk.Environment{Account: jsii.String(a), Region: jsii.String(r)}
	}
	if cfg.Pipeline {
		if _, err := NewPipelineStack(app, StackName+"Pipeline", &awscdk.StackProps{Env: env}, cfg); err != nil {
			return err
		}
	} else if _, err := NewOrderPipe(app, StackName, &awscdk.StackProps{Env: env}, cfg); err != nil {
		return err
	}
	ApplyNag(app)
	return nil
}

func main() {
	app := NewApp(nil)
	if err := Build(app); err != nil {
		fmt.Fprintln(os.Stderr, "orderpipe infra:", err)
		os.Exit(1)
	}
	app.Synth(&awscdk.StageSynthesisOptions{})
}

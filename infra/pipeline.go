package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscodebuild"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscodecommit"
	"github.com/aws/aws-cdk-go/awscdk/v2/pipelines"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// PipelineProps configures Pipeline.
type PipelineProps struct {
	Source PipelineSource
	// SynthCommands run in the synth step after InstallCommands; the cloud assembly is cdk.out.
	InstallCommands []string
	SynthCommands   []string
	// Env is the synth step's environment (CDK_ARGS carries the context to `make synth`).
	Env map[string]string
}

// Pipeline is the CI/CD pipeline (CDK Pipelines): source, a synth step that runs the tests and
// `make synth`, self-mutation, then the stages added with AddStage.
type Pipeline struct {
	constructs.Construct
	Pipeline pipelines.CodePipeline
}

// NewPipeline creates the pipeline; add deployment stages with Pipeline.Pipeline.AddStage.
func NewPipeline(scope constructs.Construct, id string, props PipelineProps) *Pipeline {
	c := constructs.NewConstruct(scope, jsii.String(id))
	var source pipelines.IFileSetProducer
	src := props.Source
	if src.CodeCommitRepo != "" {
		repo := awscodecommit.Repository_FromRepositoryName(c, jsii.String("Repository"), jsii.String(src.CodeCommitRepo))
		source = pipelines.CodePipelineSource_CodeCommit(repo, jsii.String(src.Branch), nil)
	} else {
		source = pipelines.CodePipelineSource_Connection(jsii.String(src.Repository), jsii.String(src.Branch),
			&pipelines.ConnectionSourceOptions{ConnectionArn: jsii.String(src.ConnectionARN)})
	}
	env := map[string]*string{}
	for k, v := range props.Env {
		env[k] = jsii.String(v)
	}
	synth := pipelines.NewShellStep(jsii.String("Synth"), &pipelines.ShellStepProps{
		Input:                  source,
		InstallCommands:        jsii.Strings(props.InstallCommands...),
		Commands:               jsii.Strings(props.SynthCommands...),
		Env:                    &env,
		PrimaryOutputDirectory: jsii.String("cdk.out"),
	})
	p := pipelines.NewCodePipeline(c, jsii.String("Pipeline"), &pipelines.CodePipelineProps{
		Synth:             synth,
		CrossAccountKeys:  jsii.Bool(true), // a KMS key for the artifact bucket
		EnableKeyRotation: jsii.Bool(true),
		SynthCodeBuildDefaults: &pipelines.CodeBuildOptions{
			BuildEnvironment: &awscodebuild.BuildEnvironment{
				BuildImage:  awscodebuild.LinuxBuildImage_STANDARD_7_0(),
				ComputeType: awscodebuild.ComputeType_MEDIUM,
			},
		},
	})
	return &Pipeline{Construct: c, Pipeline: p}
}

// orderPipeStage deploys the orderpipe stack from the pipeline.
type orderPipeStage struct {
	awscdk.Stage
	OrderPipe *OrderPipe
}

// NewPipelineStack creates a stack holding the Pipeline, with one stage "Deploy" that deploys the
// orderpipe stack built from cfg. The synth step runs `make test` then `make synth` with the same
// context (CDK_ARGS), so the pipeline keeps synthesizing itself.
func NewPipelineStack(scope constructs.Construct, id string, props *awscdk.StackProps, cfg Config) (awscdk.Stack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline stack %s: %w", id, err)
	}
	stack := awscdk.NewStack(scope, jsii.String(id), props)
	p := NewPipeline(stack, "CICD", PipelineProps{
		Source: cfg.Source,
		InstallCommands: []string{
			"pip3 install 'moto[server]==5.2.1'",
			"make tools",
		},
		SynthCommands: []string{"make test", "make synth"},
		Env:           map[string]string{"CDK_ARGS": cdkArgs(cfg), "GOTOOLCHAIN": "auto"},
	})
	stageProps := &awscdk.StageProps{}
	if props != nil {
		stageProps.Env = props.Env
	}
	stage := &orderPipeStage{Stage: awscdk.NewStage(stack, jsii.String("Deploy"), stageProps)}
	op, err := NewOrderPipe(stage, StackName, nil, cfg)
	if err != nil {
		return nil, err
	}
	stage.OrderPipe = op
	ApplyNag(stage) // stages are not visited by an aspect on the app
	p.Pipeline.AddStage(stage.Stage, nil)
	return stack, nil
}

// cdkArgs renders cfg as `cdk synth` context arguments, each shell-quoted, such that
// ParseContext reads back the same Config.
func cdkArgs(cfg Config) string {
	s := cfg.Settings
	ctx := map[string]string{
		CtxPipeline:            "true",
		CtxAPIBaseURL:          cfg.APIBaseURL,
		CtxAPIRate:             strconv.FormatFloat(s.APIRate, 'f', -1, 64),
		CtxInstances:           strconv.Itoa(s.Instances),
		CtxReservedConcurrency: strconv.Itoa(s.ReservedConcurrency),
		CtxIngestBatchSize:     strconv.Itoa(cfg.IngestBatchSize),
		CtxTracing:             strconv.FormatBool(cfg.Tracing),
		CtxAssetDir:            cfg.AssetDir,
		CtxBranch:              cfg.Source.Branch,
	}
	optional := map[string]string{
		CtxAPISecretARN:    cfg.APISecretARN,
		CtxAlarmEmail:      cfg.AlarmEmail,
		CtxRedriveSchedule: cfg.RedriveSchedule,
		CtxConnectionARN:   cfg.Source.ConnectionARN,
		CtxRepository:      cfg.Source.Repository,
		CtxCodeCommitRepo:  cfg.Source.CodeCommitRepo,
	}
	for k, v := range optional {
		if v != "" {
			ctx[k] = v
		}
	}
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]string, 0, len(keys))
	for _, k := range keys {
		args = append(args, "-c "+shellQuote(k+"="+ctx[k]))
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscodebuild"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscodecommit"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscodepipeline"
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
	// RuntimeVersions pins the CodeBuild image's runtimes (buildspec phases.install
	// runtime-versions), e.g. {"nodejs": "20"}; nil: the image's defaults.
	RuntimeVersions map[string]string
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
		PipelineType:      awscodepipeline.PipelineType_V2,
		EnableKeyRotation: jsii.Bool(true),
		SynthCodeBuildDefaults: &pipelines.CodeBuildOptions{
			BuildEnvironment: &awscodebuild.BuildEnvironment{
				BuildImage:  awscodebuild.LinuxBuildImage_STANDARD_7_0(),
				ComputeType: awscodebuild.ComputeType_MEDIUM,
			},
			PartialBuildSpec: runtimeVersions(props.RuntimeVersions),
		},
	})
	return &Pipeline{Construct: c, Pipeline: p}
}

// subRoleArns rewrites each action's Configuration.RoleArn that CDK Pipelines builds with
// Fn::Join and an empty delimiter (the deploy actions' CDK bootstrap role) as the equal Fn::Sub:
// cfn-lint's pipeline action check (E3703) refuses the Join there.
func subRoleArns(cfn awscodepipeline.CfnPipeline) {
	stages, _ := awscdk.Stack_Of(cfn).Resolve(cfn.Stages()).([]any)
	for i, st := range stages {
		actions, _ := jsonField(st, "actions").([]any) // the L1 properties, before rendering
		for j, a := range actions {
			join, _ := jsonField(jsonField(jsonField(a, "configuration"), "RoleArn"), "Fn::Join").([]any)
			if len(join) != 2 || join[0] != "" {
				continue
			}
			var b strings.Builder
			for _, part := range join[1].([]any) {
				switch x := part.(type) {
				case string:
					b.WriteString(strings.ReplaceAll(x, "${", "${!"))
				case map[string]any:
					if ref, ok := x["Ref"].(string); ok {
						b.WriteString("${" + ref + "}")
						continue
					}
					if g, ok := x["Fn::GetAtt"].([]any); ok && len(g) == 2 {
						b.WriteString(fmt.Sprintf("${%v.%v}", g[0], g[1]))
						continue
					}
					return // something else: leave the Join
				}
			}
			cfn.AddPropertyOverride(jsii.String(fmt.Sprintf("Stages.%d.Actions.%d.Configuration.RoleArn", i, j)),
				map[string]any{"Fn::Sub": b.String()})
		}
	}
}

// jsonField is v[key] when v is a JSON object, else nil.
func jsonField(v any, key string) any {
	m, _ := v.(map[string]any)
	return m[key]
}

// runtimeVersions is the partial buildspec pinning the runtimes; nil when there are none.
func runtimeVersions(v map[string]string) awscodebuild.BuildSpec {
	if len(v) == 0 {
		return nil
	}
	return awscodebuild.BuildSpec_FromObject(&map[string]any{
		"phases": map[string]any{"install": map[string]any{"runtime-versions": v}},
	})
}

// Build builds the pipeline (CDK Pipelines does it lazily at synth otherwise) after the last
// AddStage, and records why cdk-nag's findings on what CDK Pipelines generates are accepted.
func (p *Pipeline) Build() {
	p.Pipeline.BuildPipeline()
	subRoleArns(p.Pipeline.Pipeline().Node().DefaultChild().(awscodepipeline.CfnPipeline))
	suppress(p.Pipeline, true,
		nag("AwsSolutions-IAM5", "Roles generated by CDK Pipelines: object wildcards on its own artifact bucket (keys differ per execution), "+
			"the KMS grant helpers' GenerateDataKey*/ReEncrypt* on its own artifact key, CodeBuild log and report groups named after each project, "+
			"and self-mutation/asset roles that must assume the CDK bootstrap roles and read stacks."),
		nag("AwsSolutions-S1", "The artifact bucket holds transient, KMS-encrypted pipeline artifacts written only by the pipeline's roles; "+
			"access is recorded by CloudTrail and the pipeline execution history."))
}

// Versions of what the synth step installs for `make test`; the tests check the local cfn-lint
// against CfnLintVersion.
const (
	MotoVersion    = "5.2.1"
	CfnLintVersion = "1.51.0"
)

// SynthRuntimes pins the synth step's runtimes on the standard 7.0 image: Node 20 for the CDK
// CLI and the Node tools, Python 3.12 for moto and cfn-lint, Go 1.23 to start go.mod's toolchain.
var SynthRuntimes = map[string]string{"nodejs": "20", "python": "3.12", "golang": "1.23"}

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
			fmt.Sprintf("pip3 install 'moto[server]==%s' 'cfn-lint==%s'", MotoVersion, CfnLintVersion),
			"make tools",
		},
		SynthCommands: []string{"make test", "make synth"},
		// Go: the image's, then GOTOOLCHAIN=auto fetches go.mod's toolchain.
		Env:             map[string]string{"CDK_ARGS": cdkArgs(cfg), "GOTOOLCHAIN": "auto"},
		RuntimeVersions: SynthRuntimes,
	})
	stageProps := &awscdk.StageProps{}
	if props != nil {
		stageProps.Env = props.Env
	}
	stage := awscdk.NewStage(stack, jsii.String("Deploy"), stageProps)
	if _, err := NewOrderPipe(stage, StackName, nil, cfg); err != nil {
		return nil, err
	}
	ApplyNag(stage) // a stage is synthesized on its own: the app's aspect does not reach it
	p.Pipeline.AddStage(stage, nil)
	p.Build()
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

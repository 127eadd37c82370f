package main

import (
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/google/go-cmp/cmp"
)

var (
	pipelineOnce sync.Once
	pipelineApp  awscdk.App
	pipelineErr  error
)

// pipelineStacks builds testdata/pipeline.context.json with Build (as `cdk synth` does) once and
// returns the pipeline stack and the orderpipe stack of its Deploy stage, synthesized.
func pipelineStacks(t *testing.T) (pipe, deployed *synthesized) {
	t.Helper()
	pipelineOnce.Do(func() {
		pipelineApp = NewApp(loadContext(t, "pipeline"))
		pipelineErr = Build(pipelineApp)
	})
	if pipelineErr != nil {
		t.Fatalf("Build: %v", pipelineErr)
	}
	stack := awscdk.Stack_Of(pipelineApp.Node().FindChild(jsii.String(StackName + "Pipeline")))
	stage := stack.Node().FindChild(jsii.String("Deploy"))
	inner := awscdk.Stack_Of(stage.Node().FindChild(jsii.String(StackName)))
	return synthStack(&synthesized{app: pipelineApp, stack: stack}), synthStack(&synthesized{app: pipelineApp, stack: inner})
}

func TestPipelineStack(t *testing.T) {
	p, deployed := pipelineStacks(t)
	t.Run("source from the connection", func(t *testing.T) {
		got := jsonString(p.ofType("AWS::CodePipeline::Pipeline"))
		for _, want := range []string{
			`"Provider":"CodeStarSourceConnection"`,
			`"ConnectionArn":"arn:aws:codestar-connections:eu-west-1:123456789012:connection/0a1b2c3d-4e5f-6789-abcd-ef0123456789"`,
			`"FullRepositoryId":"orderpipe/orderpipe"`,
			`"BranchName":"main"`,
		} {
			if !strings.Contains(got, want) {
				t.Errorf("pipeline lacks %s", want)
			}
		}
	})
	t.Run("synth step runs the tests and make synth with the same context", func(t *testing.T) {
		var synth map[string]any
		for _, proj := range p.ofType("AWS::CodeBuild::Project") {
			if strings.Contains(jsonString(proj), "make synth") {
				synth = proj
			}
		}
		if synth == nil {
			t.Fatal("no CodeBuild project runs make synth")
		}
		spec := jsonString(jsonPath(props(synth), "Source", "BuildSpec"))
		for _, want := range []string{`runtime-versions`, `\"nodejs\": \"20\"`, `\"golang\": \"1.23\"`,
			`moto[server]==` + MotoVersion, `cfn-lint==` + CfnLintVersion, `make tools`} {
			if !strings.Contains(spec, want) {
				t.Errorf("buildspec lacks %s: %s", want, spec)
			}
		}
		test, build := strings.Index(spec, "make test"), strings.Index(spec, "make synth")
		if test < 0 || build < test {
			t.Errorf("buildspec: want make test then make synth, got %s", spec)
		}
		env := jsonString(jsonPath(props(synth), "Environment", "EnvironmentVariables"))
		for _, want := range []string{`"Name":"CDK_ARGS"`, `-c 'pipeline=true'`, `-c 'apiRate=2.5'`} {
			if !strings.Contains(env, want) {
				t.Errorf("synth environment lacks %s: %s", want, env)
			}
		}
	})
	t.Run("deploys the orderpipe stack", func(t *testing.T) {
		if got := len(deployed.ofType("AWS::Lambda::Function")); got < 3 {
			t.Errorf("functions in the deployed stack: got %d, want the 3 of orderpipe", got)
		}
		deployed.has(t, "AWS::Lambda::EventSourceMapping", map[string]any{"ScalingConfig": map[string]any{"MaximumConcurrency": 3}})
		deployed.has(t, "AWS::Lambda::Function", map[string]any{"ReservedConcurrentExecutions": 4})
		deployed.has(t, "AWS::Events::Rule", map[string]any{"ScheduleExpression": "cron(0 6 * * ? *)"})
	})
	t.Run("partial secret ARN gets the suffix pattern", func(t *testing.T) {
		if got := jsonString(deployed.ofType("AWS::IAM::Policy")); !strings.Contains(got, `secret:orderpipe/api-??????"`) {
			t.Errorf("dispatch secret grant: want the -?????? suffix pattern for a partial ARN")
		}
	})
	t.Run("cdk-nag clean", func(t *testing.T) {
		for _, s := range []*synthesized{p, deployed} {
			if got := messages(t, s.stack); len(got) != 0 {
				t.Errorf("%s: unsuppressed findings: got %d, want none:\n%s", *s.stack.StackName(), len(got), strings.Join(got, "\n"))
			}
		}
	})
}

func TestPipelineCodeCommitSource(t *testing.T) {
	app := NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("CodeCommitPipeline"), nil)
	p := NewPipeline(stack, "CICD", PipelineProps{
		Source:        PipelineSource{CodeCommitRepo: "orderpipe", Branch: "release"},
		SynthCommands: []string{"make synth"},
	})
	p.Build()
	s := synthStack(&synthesized{app: app, stack: stack})
	got := jsonString(s.ofType("AWS::CodePipeline::Pipeline"))
	for _, want := range []string{`"Provider":"CodeCommit"`, `"RepositoryName":"orderpipe"`, `"BranchName":"release"`} {
		if !strings.Contains(got, want) {
			t.Errorf("pipeline source lacks %s", want)
		}
	}
}

func TestCdkArgsRoundTrip(t *testing.T) {
	ctx := loadContext(t, "pipeline")
	ctx[CtxRedriveSchedule] = "cron(0 6 * * ? *)"
	ctx[CtxAlarmEmail] = "o'neil@example.com"
	want, err := ParseContext(func(k string) any { return ctx[k] })
	if err != nil {
		t.Fatalf("parse fixture: %v", err)
	}
	args, err := shellWords(cdkArgs(want))
	if err != nil {
		t.Fatalf("split %q: %v", cdkArgs(want), err)
	}
	back := map[string]any{}
	for i := 0; i < len(args); i += 2 {
		if args[i] != "-c" || i+1 >= len(args) {
			t.Fatalf("args: want -c key=value pairs, got %q", args)
		}
		k, v, _ := strings.Cut(args[i+1], "=")
		back[k] = v
	}
	got, err := ParseContext(func(k string) any { return back[k] })
	if err != nil {
		t.Fatalf("parse rendered args: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config after cdkArgs and back (-want +got):\n%s", diff)
	}
}

// shellWords splits s as a POSIX shell does for words made of plain and single-quoted parts.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '\'':
			quoted, in = true, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == ' ':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quoted {
		return nil, errUnterminated
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

var errUnterminated = errorString("unterminated quote")

type errorString string

func (e errorString) Error() string { return string(e) }

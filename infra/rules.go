package main

import (
	"fmt"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// consumerWiring is what the AWS rules need to know about one queue consumer, in seconds and
// counts as synthesized; 0 means "not set".
type consumerWiring struct {
	Timeout         float64 // function timeout
	Reserved        float64 // function reserved concurrency
	Visibility      float64 // source queue visibility timeout
	Retention       float64 // source queue retention
	MaxReceiveCount float64 // source queue redrive policy
	DLQRetention    float64 // dead-letter queue retention
	MaxConcurrency  float64 // event source mapping MaximumConcurrency
	// Heartbeat is the visibility the function keeps its messages hidden for while it works
	// (ingest's FILES_VISIBILITY); 0: no heartbeat.
	Heartbeat float64
}

// problems lists every AWS rule the wiring breaks (the rules pipeline.Settings.Validate checks),
// each saying what to change; name says which consumer.
func (w consumerWiring) problems(name string) []string {
	var out []string
	bad := func(format string, a ...any) { out = append(out, name+": "+fmt.Sprintf(format, a...)) }
	switch {
	case w.Timeout <= 0:
		bad("function timeout is not set")
	case w.Visibility < w.Timeout:
		// AWS's hard rule: CreateEventSourceMapping fails ("Queue visibility timeout ... is less
		// than Function timeout"), so the deploy would.
		bad("queue visibility timeout %vs < function timeout %vs: Lambda refuses the event source; lower the timeout or raise the visibility", w.Visibility, w.Timeout)
	case w.Heartbeat != 0:
		// The function extends the visibility while it works: the queue's need only cover the
		// timeout once, not 6 times, but the function must extend by the queue's own
		// (docs/DECISIONS.md).
		if w.Heartbeat != w.Visibility {
			bad("heartbeat visibility %vs differs from the queue visibility timeout %vs: set them equal", w.Heartbeat, w.Visibility)
		}
		if w.Visibility < pipeline.MinFilesVisibility.Seconds() {
			bad("queue visibility timeout %vs < %vs: the heartbeat runs every third of it", w.Visibility, pipeline.MinFilesVisibility.Seconds())
		}
	case w.Visibility < 6*w.Timeout:
		bad("queue visibility timeout %vs < 6 x function timeout %vs: raise the visibility timeout", w.Visibility, w.Timeout)
	}
	if w.MaxReceiveCount < 5 {
		bad("queue maxReceiveCount %v < 5 (or no redrive policy): Lambda's poller can receive without invoking", w.MaxReceiveCount)
	}
	if w.DLQRetention < w.Retention {
		bad("DLQ retention %vs < queue retention %vs: a DLQ keeps the original enqueue time", w.DLQRetention, w.Retention)
	}
	if w.MaxConcurrency != 0 {
		if w.MaxConcurrency < 2 {
			bad("event source MaximumConcurrency %v < 2", w.MaxConcurrency)
		}
		if w.Reserved == 0 || w.MaxConcurrency > w.Reserved {
			bad("event source MaximumConcurrency %v > reserved concurrency %v: the mapping would be throttled", w.MaxConcurrency, w.Reserved)
		}
	}
	return out
}

// consumerRules is the CDK validation (constructs.IValidation) registered by Ingest and Dispatch:
// at synth time it reads the L1 resources back, so it sees every later change to them.
type consumerRules struct {
	name  string
	fn    awslambda.CfnFunction
	queue awssqs.CfnQueue
	dlq   awssqs.CfnQueue
	esm   awslambda.CfnEventSourceMapping
	// heartbeatEnv names the function's variable holding its heartbeat visibility; "" for none.
	heartbeatEnv string
}

// addConsumerRules registers the validation on scope.
func addConsumerRules(scope constructs.Construct, name string, fn awslambda.Function, queue, dlq awssqs.Queue, esm awslambda.EventSourceMapping, heartbeatEnv string) {
	r := &consumerRules{
		name:         name,
		heartbeatEnv: heartbeatEnv,
		fn:           fn.Node().DefaultChild().(awslambda.CfnFunction),
		queue:        queue.Node().DefaultChild().(awssqs.CfnQueue),
		dlq:          dlq.Node().DefaultChild().(awssqs.CfnQueue),
		esm:          esm.Node().DefaultChild().(awslambda.CfnEventSourceMapping),
	}
	scope.Node().AddValidation(r)
}

// Validate implements constructs.IValidation: it returns the broken rules, empty when none.
func (r *consumerRules) Validate() *[]*string {
	stack := awscdk.Stack_Of(r.fn)
	w := consumerWiring{
		Timeout:         number(r.fn.Timeout()),
		Reserved:        number(r.fn.ReservedConcurrentExecutions()),
		Visibility:      number(r.queue.VisibilityTimeout()),
		Retention:       number(r.queue.MessageRetentionPeriod()),
		MaxReceiveCount: field(resolve(stack, r.queue.RedrivePolicy()), "maxReceiveCount"),
		DLQRetention:    number(r.dlq.MessageRetentionPeriod()),
		MaxConcurrency:  field(resolve(stack, r.esm.ScalingConfig()), "maximumConcurrency"),
	}
	if w.Retention == 0 {
		w.Retention = 4 * 24 * 3600 // the SQS default
	}
	if r.heartbeatEnv != "" {
		w.Heartbeat = -1 // set but unreadable: differs from any visibility
		env, _ := resolve(stack, r.fn.Environment()).(map[string]any)
		vars, _ := env["variables"].(map[string]any)
		if vars == nil {
			vars, _ = env["Variables"].(map[string]any)
		}
		if s, ok := vars[r.heartbeatEnv].(string); ok {
			if d, err := time.ParseDuration(s); err == nil {
				w.Heartbeat = d.Seconds()
			}
		}
	}
	if w.DLQRetention == 0 {
		w.DLQRetention = 4 * 24 * 3600
	}
	return jsii.Strings(w.problems(r.name)...)
}

// resolve resolves v in stack; nil (an unset property) stays nil.
func resolve(stack awscdk.Stack, v any) any {
	if v == nil {
		return nil
	}
	return stack.Resolve(v)
}

func number(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// field reads a number from a resolved L1 property object (a JSON-like map), trying the
// property's camelCase and CloudFormation (PascalCase) spellings.
func field(v any, name string) float64 {
	m, ok := v.(map[string]any)
	if !ok {
		return 0
	}
	for _, k := range []string{name, string(name[0]-'a'+'A') + name[1:]} {
		switch n := m[k].(type) {
		case float64:
			return n
		case *float64:
			return number(n)
		}
	}
	return 0
}

package main

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"
	"github.com/google/go-cmp/cmp"
)

func TestConsumerWiringProblems(t *testing.T) {
	good := consumerWiring{Timeout: 30, Reserved: 2, Visibility: 180, Retention: 1209600, MaxReceiveCount: 10, DLQRetention: 1209600, MaxConcurrency: 2}
	tests := []struct {
		name string
		edit func(*consumerWiring)
		want []string
	}{
		{"good", func(*consumerWiring) {}, nil},
		{"no max concurrency (ingest)", func(w *consumerWiring) { w.MaxConcurrency, w.Reserved = 0, 0 }, nil},
		{"visibility", func(w *consumerWiring) { w.Visibility = 179 },
			[]string{"x: queue visibility timeout 179s < 6 x function timeout 30s: raise the visibility timeout"}},
		{"no timeout", func(w *consumerWiring) { w.Timeout = 0 }, []string{"x: function timeout is not set"}},
		{"max receive", func(w *consumerWiring) { w.MaxReceiveCount = 4 },
			[]string{"x: queue maxReceiveCount 4 < 5 (or no redrive policy): Lambda's poller can receive without invoking"}},
		{"dlq retention", func(w *consumerWiring) { w.DLQRetention = 345600 },
			[]string{"x: DLQ retention 345600s < queue retention 1.2096e+06s: a DLQ keeps the original enqueue time"}},
		{"above reserved", func(w *consumerWiring) { w.MaxConcurrency = 3 },
			[]string{"x: event source MaximumConcurrency 3 > reserved concurrency 2: the mapping would be throttled"}},
		{"unreserved", func(w *consumerWiring) { w.Reserved = 0 },
			[]string{"x: event source MaximumConcurrency 2 > reserved concurrency 0: the mapping would be throttled"}},
		{"below 2", func(w *consumerWiring) { w.MaxConcurrency = 1 }, []string{"x: event source MaximumConcurrency 1 < 2"}},
		{"heartbeat: visibility = the timeout", func(w *consumerWiring) { w.Timeout, w.Visibility, w.Heartbeat = 240, 240, 240 }, nil},
		{"heartbeat: visibility below the timeout", func(w *consumerWiring) { w.Timeout, w.Visibility, w.Heartbeat = 900, 180, 180 },
			[]string{"x: queue visibility timeout 180s < function timeout 900s: Lambda refuses the event source; lower the timeout or raise the visibility"}},
		{"visibility below the timeout", func(w *consumerWiring) { w.Timeout, w.Visibility = 181, 180 },
			[]string{"x: queue visibility timeout 180s < function timeout 181s: Lambda refuses the event source; lower the timeout or raise the visibility"}},
		{"heartbeat differs from the visibility", func(w *consumerWiring) { w.Visibility, w.Heartbeat = 180, 120 },
			[]string{"x: heartbeat visibility 120s differs from the queue visibility timeout 180s: set them equal"}},
		{"heartbeat unreadable", func(w *consumerWiring) { w.Heartbeat = -1 },
			[]string{"x: heartbeat visibility -1s differs from the queue visibility timeout 180s: set them equal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := good
			tt.edit(&w)
			if diff := cmp.Diff(tt.want, w.problems("x")); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConsumerRulesCatchLaterChange: the validations registered on Ingest and Dispatch read the
// resources back, so an edit made after construction (here through the L1 escape hatch) that
// breaks a rule is reported, where Config.Validate could not see it.
func TestConsumerRulesCatchLaterChange(t *testing.T) {
	_, p := newFromFixture(t, "full")
	validate := func() []string {
		var out []string
		for _, errs := range []*[]*string{p.Ingest.Node().Validate(), p.Dispatch.Node().Validate()} {
			for _, e := range *errs {
				out = append(out, *e)
			}
		}
		return out
	}
	if got := validate(); len(got) != 0 {
		t.Fatalf("valid stack: got %q, want no problems", got)
	}
	p.Orders.Queue.Node().DefaultChild().(awssqs.CfnQueue).SetVisibilityTimeout(jsii.Number(60))
	p.Dispatch.Function.Node().DefaultChild().(awslambda.CfnFunction).SetReservedConcurrentExecutions(jsii.Number(1))
	p.Uploads.FilesDLQ.Node().DefaultChild().(awssqs.CfnQueue).SetMessageRetentionPeriod(jsii.Number(3600))
	p.Uploads.FilesQueue.Node().DefaultChild().(awssqs.CfnQueue).SetVisibilityTimeout(jsii.Number(600))
	p.Ingest.Function.Node().DefaultChild().(awslambda.CfnFunction).SetTimeout(jsii.Number(900))
	want := []string{
		"ingest: queue visibility timeout 600s < function timeout 900s: Lambda refuses the event source",
		"ingest: DLQ retention 3600s < queue retention 1.2096e+06s",
		"dispatch: queue visibility timeout 60s < 6 x function timeout 30s",
		"dispatch: event source MaximumConcurrency 2 > reserved concurrency 1",
	}
	got := strings.Join(validate(), "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("validation after the change: got\n%s\nwant a line containing %q", got, w)
		}
	}
}

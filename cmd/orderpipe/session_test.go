package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
)

// TestResourcesFromStack finds the orders DLQ through a stack's outputs, and checks that flags
// beat the environment, which beats the stack.
func TestResourcesFromStack(t *testing.T) {
	t.Parallel()
	cfg := awstest.Config(t)
	ctx := context.Background()
	fromStack, _ := awstest.NewQueue(t, cfg, nil)
	fromEnv, _ := awstest.NewQueue(t, cfg, nil)
	fromFlag, _ := awstest.NewQueue(t, cfg, nil)
	client := awstest.SQS(cfg)
	for url, body := range map[string]string{fromStack: "stack", fromEnv: "env", fromFlag: "flag"} {
		sendMessage(t, client, url, fixtureMessage{Body: body, Attributes: map[string]string{"OrderId": body}})
	}
	template, err := json.Marshal(map[string]any{
		"Resources": map[string]any{"Placeholder": map[string]any{"Type": "AWS::SQS::Queue"}},
		"Outputs":   map[string]any{"OrdersDlqUrl": map[string]any{"Value": fromStack}, "BucketName": map[string]any{"Value": "the-bucket"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	stack := awstest.Name(t, "stack")
	if _, err := cloudformation.NewFromConfig(cfg).CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName: &stack, TemplateBody: new(string(template)),
	}); err != nil {
		t.Fatalf("create stack: %v", err)
	}
	endpoint := awstest.Endpoint()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"stack flag", nil, []string{"--stack", stack}, "stack"},
		{"stack from the environment", map[string]string{"ORDERPIPE_STACK": stack}, nil, "stack"},
		{"environment beats stack", map[string]string{"ORDERPIPE_STACK": stack, "ORDERPIPE_ORDERS_DLQ": fromEnv}, nil, "env"},
		{"flag beats environment", map[string]string{"ORDERPIPE_ORDERS_DLQ": fromEnv}, []string{"--orders-dlq", fromFlag}, "flag"},
		{"endpoint from the environment", map[string]string{"AWS_ENDPOINT_URL": endpoint, "ORDERPIPE_ORDERS_DLQ": fromEnv}, nil, "env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"dlq", "ls", "--json"}, tc.args...)
			if tc.env["AWS_ENDPOINT_URL"] == "" {
				args = append(args, "--endpoint", endpoint)
			}
			var got []parked
			mustJSON(t, runCLI(t, tc.env, args...), &got)
			if diff := cmp.Diff([]string{tc.want}, orderIDs(got)); diff != "" {
				t.Errorf("listed (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("missing stack", func(t *testing.T) {
		wantCode(t, standIn(t, "dlq", "ls", "--stack", stack+"-gone"), exitFailure, "describe stack "+stack+"-gone")
	})
	t.Run("queue by name", func(t *testing.T) {
		var got []parked
		mustJSON(t, standIn(t, "dlq", "ls", "--json", "--orders-dlq", queueName(fromFlag)), &got)
		if diff := cmp.Diff([]string{"flag"}, orderIDs(got)); diff != "" {
			t.Errorf("listed (-want +got):\n%s", diff)
		}
	})
}

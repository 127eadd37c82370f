package local

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFunctionPolicies(t *testing.T) {
	tpl, err := ReadTemplate("testdata/template.json")
	if err != nil {
		t.Fatal(err)
	}
	q := func(name string) (string, string) {
		return "http://127.0.0.1:1/123456789012/" + name, "arn:aws:sqs:eu-west-1:123456789012:" + name
	}
	r := Resources{Region: "eu-west-1", Bucket: "b"}
	r.FilesQueueURL, r.FilesQueueARN = q("files")
	r.FilesDLQURL, r.FilesDLQARN = q("files-dlq")
	r.OrdersQueueURL, r.OrdersQueueARN = q("orders")
	r.OrdersDLQURL, r.OrdersDLQARN = q("orders-dlq")
	b, err := tpl.Bind(r)
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	docs, err := tpl.FunctionPolicies("/Ingest/Function/Resource", b)
	if err != nil {
		t.Fatalf("FunctionPolicies: %v", err)
	}
	if len(docs) != 1 {
		t.Fatalf("policies: got %d, want 1 (the other role's is not the function's)", len(docs))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(docs[0]), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"Version": "2012-10-17", "Statement": []any{
		map[string]any{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/uploads/*"},
		map[string]any{"Effect": "Allow", "Action": []any{"sqs:SendMessage", "sqs:GetQueueUrl"}, "Resource": []any{r.OrdersQueueARN}},
		map[string]any{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "arn:aws:unbound:::Logs.Arn"},
		map[string]any{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-??????"},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolved policy (-want +got):\n%s", diff)
	}

	t.Run("unknown function", func(t *testing.T) {
		_, err := tpl.FunctionPolicies("/Dispatch/Function/Resource", b)
		if err == nil || !strings.Contains(err.Error(), "OrderPipe/Ingest/Function/Resource") {
			t.Errorf("got %v, want an error listing the function paths", err)
		}
	})
	t.Run("missing output", func(t *testing.T) {
		delete(tpl.Outputs, "OrdersDlqUrl")
		if _, err := tpl.Bind(r); err == nil || !strings.Contains(err.Error(), "OrdersDlqUrl") {
			t.Errorf("Bind without the OrdersDlqUrl output: got %v, want an error naming it", err)
		}
	})
}

func TestMotoPolicy(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"single action gains its batch action",
			`{"Statement":{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"q"}}`,
			`{"Statement":[{"Action":["sqs:SendMessage","sqs:SendMessageBatch"],"Effect":"Allow","Resource":"q"}]}`},
		{"list, both already there, others untouched",
			`{"Statement":[{"Effect":"Allow","Action":["sqs:DeleteMessage","sqs:DeleteMessageBatch","sqs:ChangeMessageVisibility","s3:GetObject"],"Resource":"q"}]}`,
			`{"Statement":[{"Action":["sqs:DeleteMessage","sqs:DeleteMessageBatch","sqs:ChangeMessageVisibility","s3:GetObject","sqs:ChangeMessageVisibilityBatch"],"Effect":"Allow","Resource":"q"}]}`},
		{"other services' actions on any resource, apart",
			`{"Statement":[{"Sid":"X","Effect":"Allow","Action":["sqs:ReceiveMessage","dynamodb:GetItem","secretsmanager:GetSecretValue"],"Resource":["q","t"]}]}`,
			`{"Statement":[{"Action":["dynamodb:GetItem","secretsmanager:GetSecretValue"],"Effect":"Allow","Resource":"*"},{"Action":["sqs:ReceiveMessage"],"Effect":"Allow","Resource":["q","t"],"Sid":"X"}]}`},
		{"batch action alone stays alone",
			`{"Statement":[{"Effect":"Allow","Action":"sqs:SendMessageBatch","Resource":"q"}]}`,
			`{"Statement":[{"Action":["sqs:SendMessageBatch"],"Effect":"Allow","Resource":"q"}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := MotoPolicy(c.in)
			if err != nil {
				t.Fatalf("MotoPolicy: %v", err)
			}
			if got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
	if _, err := MotoPolicy("not json"); err == nil {
		t.Errorf("MotoPolicy(not json): got no error")
	}
}

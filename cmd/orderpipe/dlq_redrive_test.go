package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// drain receives every message of a queue and returns the order ids and whether any still
// carried a parking attribute.
func drain(t *testing.T, client *sqs.Client, url string) (ids []string, parkingLeft bool) {
	t.Helper()
	for {
		out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: &url, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}, VisibilityTimeout: 60,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			slices.Sort(ids)
			return ids, parkingLeft
		}
		for _, m := range out.Messages {
			ids = append(ids, aws.ToString(m.MessageAttributes[order.AttrOrderID].StringValue))
			_, parked := m.MessageAttributes[order.AttrFailureClass]
			parkingLeft = parkingLeft || parked
		}
	}
}

func TestDLQRedrive(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		args      []string
		wantMoved [][]string // order ids now on the orders queue: one of these lists
		wantLeft  int        // still parked
		fallback  bool
	}{
		{"one class", []string{"--class", "permanent"}, [][]string{{"A1", "B1"}}, 3, false},
		{"by source prefix, at most one", []string{"--source", "s3://in/uploads/a*", "--max", "1"}, [][]string{{"A1"}, {"A2"}}, 4, false},
		{"native falls back where not implemented", []string{"--native"}, [][]string{{"", "A1", "A2", "B1", "C1"}}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, dlq := parkedQueue(t)
			cfg := awstest.Config(t)
			orders, _ := awstest.NewQueue(t, cfg, nil)
			bucket := awstest.NewBucket(t, cfg)
			var got redrive.Result
			mustJSON(t, standIn(t, append([]string{"dlq", "redrive", "--json", "--rate", "200", "--orders-queue", orders, "--orders-dlq", dlq, "--bucket", bucket, "--operator", "carol"}, tc.args...)...), &got)
			wantMoveRecords(t, cfg, bucket, "carol", got.Moved)
			if got.Fallback != tc.fallback {
				t.Errorf("got fallback %v, want %v", got.Fallback, tc.fallback)
			}
			ids, parkingLeft := drain(t, client, orders)
			if !slices.ContainsFunc(tc.wantMoved, func(want []string) bool { return cmp.Equal(want, ids) }) {
				t.Errorf("got %q moved to the orders queue, want one of %q", ids, tc.wantMoved)
			}
			if parkingLeft {
				t.Errorf("a redriven message still carries %s", order.AttrFailureClass)
			}
			if got.Moved != len(ids) {
				t.Errorf("got Moved %d, want %d", got.Moved, len(ids))
			}
			wantVisible(t, client, dlq, strconv.Itoa(tc.wantLeft), "after redrive")
		})
	}
	t.Run("dry run lists the selection and moves nothing", func(t *testing.T) {
		client, dlq := parkedQueue(t)
		orders, _ := awstest.NewQueue(t, awstest.Config(t), nil)
		r := standIn(t, "dlq", "redrive", "--dry-run", "--class", "permanent", "--orders-queue", orders, "--orders-dlq", dlq)
		for _, want := range []string{"would move 2 of 5 scanned", "would move/scanned by class: ", "permanent 2/2", "HTTP 409: conflict", "HTTP 422: amount must be positive"} {
			if r.code != exitOK || !strings.Contains(r.stdout, want) {
				t.Errorf("got exit %d, stdout\n%s\nwant it to contain %q (stderr %s)", r.code, r.stdout, want, r.stderr)
			}
		}
		wantVisible(t, client, dlq, "5", "after a dry run")
		wantVisible(t, client, orders, "0", "orders queue after a dry run")
	})
	t.Run("native cannot select", func(t *testing.T) {
		wantCode(t, standIn(t, "dlq", "redrive", "--native", "--class", "permanent", "--orders-queue", "q", "--orders-dlq", "d"), exitUsage, "native move cannot select")
	})
	for _, rate := range []string{"0", "1000"} {
		t.Run("rate "+rate, func(t *testing.T) {
			wantCode(t, standIn(t, "dlq", "redrive", "--rate", rate, "--orders-queue", "http://x/q", "--orders-dlq", "http://x/d"), exitUsage, rate+": must be > 0")
		})
	}
}

// wantMoveRecords checks that the bucket holds n move records, all sent, by operator.
func wantMoveRecords(t *testing.T, cfg aws.Config, bucket, operator string, n int) {
	t.Helper()
	journal := redrive.S3Journal{Client: awstest.S3(cfg), Bucket: bucket}
	out, err := journal.Client.(*s3.Client).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String(redrive.DefaultJournalPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != n {
		t.Errorf("got %d move records, want %d", len(out.Contents), n)
	}
	for _, o := range out.Contents {
		id := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(o.Key), redrive.DefaultJournalPrefix), ".json")
		m, ok, err := journal.Get(context.Background(), id)
		if err != nil || !ok || m.State != redrive.MoveSent || m.Operator != operator {
			t.Errorf("record %s: got %+v (found %v, error %v), want sent by %s", id, m, ok, err, operator)
		}
	}
}

func TestDLQRedriveNeedsTheBucket(t *testing.T) {
	t.Parallel()
	_, dlq := parkedQueue(t)
	orders, _ := awstest.NewQueue(t, awstest.Config(t), nil)
	wantCode(t, standIn(t, "dlq", "redrive", "--orders-queue", orders, "--orders-dlq", dlq), exitUsage, "every move is recorded in the bucket first")
}

// fakeInvoker serves Invoke from a function.
type fakeInvoker func(*lambda.InvokeInput) (*lambda.InvokeOutput, error)

func (f fakeInvoker) Invoke(_ context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	return f(in)
}

func TestInvokeRedrive(t *testing.T) {
	t.Parallel()
	req := redrive.Request{Class: redrive.Classes{"exhausted", "unknown"}, Max: 50}
	for _, tc := range []struct {
		name    string
		out     *lambda.InvokeOutput
		err     error
		want    redrive.Result
		wantErr string
	}{
		{"result", &lambda.InvokeOutput{StatusCode: 200, Payload: []byte(`{"mode":"selective","scanned":7,"selected":5,"moved":5,"skipped":2,"released":2,"stop":"empty"}`)},
			nil, redrive.Result{Mode: "selective", Scanned: 7, Selected: 5, Moved: 5, Skipped: 2, Released: 2, Stop: "empty"}, ""},
		{"function error", &lambda.InvokeOutput{StatusCode: 200, FunctionError: aws.String("Unhandled"), Payload: []byte(`{"errorMessage":"receive from the DLQ: access denied","errorType":"wrapError"}`)},
			nil, redrive.Result{}, "function error Unhandled: receive from the DLQ: access denied"},
		{"call error", nil, errors.New("AccessDeniedException"), redrive.Result{}, "invoke orderpipe-redrive: AccessDeniedException"},
		{"not a result", &lambda.InvokeOutput{StatusCode: 200, Payload: []byte(`"ok"`)}, nil, redrive.Result{}, "decode result"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent redrive.Request
			fn := fakeInvoker(func(in *lambda.InvokeInput) (*lambda.InvokeOutput, error) {
				if got, want := aws.ToString(in.FunctionName), "orderpipe-redrive"; got != want {
					t.Errorf("got function %q, want %q", got, want)
				}
				if err := json.Unmarshal(in.Payload, &sent); err != nil {
					t.Errorf("payload %s: %v", in.Payload, err)
				}
				return tc.out, tc.err
			})
			got, err := invokeRedrive(context.Background(), fn, "orderpipe-redrive", req)
			if diff := cmp.Diff(req, sent); diff != "" {
				t.Errorf("request sent (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if gotErr := fmt.Sprint(err); (tc.wantErr == "") != (err == nil) || !strings.Contains(gotErr, tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestDLQRedriveWhere(t *testing.T) {
	t.Parallel()
	t.Run("a stand-in runs it here even with a function configured", func(t *testing.T) {
		_, dlq := parkedQueue(t)
		cfg := awstest.Config(t)
		orders, _ := awstest.NewQueue(t, cfg, nil)
		var got redrive.Result
		mustJSON(t, standIn(t, "dlq", "redrive", "--json", "--class", "unknown", "--rate", "100", "--redrive-function", "orderpipe-redrive", "--orders-queue", orders, "--orders-dlq", dlq, "--bucket", awstest.NewBucket(t, cfg)), &got)
		if got.Moved != 1 {
			t.Errorf("got %d moved, want 1 (C1)", got.Moved)
		}
	})
	t.Run("a function error does not report zero moved", func(t *testing.T) {
		var out, errb bytes.Buffer
		c := &cli{stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
			lambda: func(aws.Config) invoker {
				return fakeInvoker(func(*lambda.InvokeInput) (*lambda.InvokeOutput, error) {
					return &lambda.InvokeOutput{StatusCode: 200, FunctionError: aws.String("Unhandled"),
						Payload: []byte(`{"errorMessage":"send message m1 (order o1) to the orders queue: 3 consecutive failures"}`)}, nil
				})
			}}
		code := c.main(context.Background(), []string{"dlq", "redrive", "--region", "eu-west-1", "--redrive-function", "orderpipe-redrive"})
		if code != exitFailure {
			t.Errorf("got exit %d, want %d", code, exitFailure)
		}
		if got := out.String() + errb.String(); strings.Contains(got, "moved 0") || !strings.Contains(got, "not known here") {
			t.Errorf("got output %q, want no zero count and a pointer to the function's log", got)
		}
	})
	t.Run("--rate belongs to a run here", func(t *testing.T) {
		r := runCLI(t, nil, "dlq", "redrive", "--region", "eu-west-1", "--redrive-function", "orderpipe-redrive", "--rate", "5")
		wantCode(t, r, exitUsage, "--rate applies to a redrive run here")
	})
}

package local_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/local"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// synthWith synthesizes the module's CDK app with the context ctx added to the required one.
func synthWith(t *testing.T, ctx map[string]any) *local.Template {
	t.Helper()
	sctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	tpl, err := local.SynthPlaceholders(sctx, filepath.Join("..", ".."), filepath.Join(os.TempDir(), "orderpipe-synth"), "OrderPipe", ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// TestPipelineFromTemplate: what the CDK app synthesizes is what runs locally. The CDK context
// (instances, ingestBatchSize) changes the pollers, the CDK code's queue attributes are what the
// stand-in's queues get, and an edit of the template's orders queue visibility reaches the
// queue provisioned from it.
func TestPipelineFromTemplate(t *testing.T) {
	tpl := synthWith(t, map[string]any{"instances": 3, "reservedConcurrency": 3, "ingestBatchSize": 4})
	w, err := tpl.Wiring()
	if err != nil {
		t.Fatal(err)
	}
	d := pipeline.Defaults()
	if w.Dispatch.MaxConcurrency != 3 || w.Dispatch.Reserved != 3 || w.Ingest.BatchSize != 4 || w.Dispatch.BatchSize != 1 {
		t.Errorf("wiring from context instances=3, ingestBatchSize=4: dispatch %+v, ingest %+v", w.Dispatch, w.Ingest)
	}
	if !w.Ingest.ReportBatchItemFailures || !w.Dispatch.ReportBatchItemFailures {
		t.Errorf("wiring: ReportBatchItemFailures ingest %v dispatch %v, want both", w.Ingest.ReportBatchItemFailures, w.Dispatch.ReportBatchItemFailures)
	}
	if got := w.Settings(d); got.FilesVisibility != d.FilesVisibility || got.IngestTimeout != d.IngestTimeout || got.MaxReceiveCount != d.MaxReceiveCount || got.Instances != 3 {
		t.Errorf("wiring settings %+v, want the defaults' queues and timeouts with Instances 3", got)
	}
	if got := w.Ingest.Env[ingest.EnvFilesVisibility]; got != d.FilesVisibility.String() {
		t.Errorf("ingest environment %s = %q, want %q", ingest.EnvFilesVisibility, got, d.FilesVisibility)
	}

	const visibility = 1234
	tpl.Resources[orderQueueID(t, tpl)].Properties["VisibilityTimeout"] = float64(visibility) // as JSON decodes it
	p, err := local.NewPipeline(context.Background(), local.Options{
		AWS: awstest.Config(t), Names: local.NamesFor(awstest.Name(t, "tpl")), Template: tpl, APIBaseURL: "http://127.0.0.1:1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Orders.MaxConcurrency != 3 || p.Files.BatchSize != 4 || p.Files.FunctionTimeout != d.IngestTimeout || p.Orders.FunctionTimeout != d.DispatchTimeout {
		t.Errorf("pollers: orders concurrency %d, files batch %d, timeouts %v / %v; want 3, 4, %v / %v",
			p.Orders.MaxConcurrency, p.Files.BatchSize, p.Files.FunctionTimeout, p.Orders.FunctionTimeout, d.IngestTimeout, d.DispatchTimeout)
	}
	if p.DispatchConfig.APIInstances != 3 || p.DispatchConfig.APIBaseURL != "http://127.0.0.1:1" {
		t.Errorf("dispatch config: API_INSTANCES %d, base URL %q; want the template's 3 and the local API", p.DispatchConfig.APIInstances, p.DispatchConfig.APIBaseURL)
	}
	for _, q := range []struct {
		url  string
		want map[string]string
	}{
		{p.Resources.OrdersQueueURL, map[string]string{"VisibilityTimeout": strconv.Itoa(visibility), "MessageRetentionPeriod": seconds(w.OrdersQueue.Retention)}},
		{p.Resources.FilesQueueURL, map[string]string{"VisibilityTimeout": seconds(w.FilesQueue.Visibility), "MessageRetentionPeriod": seconds(w.FilesQueue.Retention)}},
	} {
		out, err := p.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(q.url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
		})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range q.want {
			if out.Attributes[k] != v {
				t.Errorf("queue %s: %s = %q, want %q (the template's)", q.url, k, out.Attributes[k], v)
			}
		}
	}
}

// orderQueueID is the logical id of the template's orders queue.
func orderQueueID(t *testing.T, tpl *local.Template) string {
	t.Helper()
	ref, _ := tpl.Outputs[pipeline.OutputOrdersQueue].Value.(map[string]any)["Ref"].(string)
	if ref == "" {
		t.Fatalf("no %s output", pipeline.OutputOrdersQueue)
	}
	return ref
}

func seconds(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/local"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// The end-to-end tests run every function with the credentials of its own role, as deployed:
// the CDK app is synthesized (local.SynthTemplate, cached until its sources change), each
// function's role policies are read from the template with the resources bound to the
// pipeline's own (local.Template.FunctionPolicies), and an IAM user with exactly those policies
// is created on the stand-in, which enforces them (local.StartMotoIAM). Handlers and the pollers
// that play their event source mappings sign as that user, so a grant missing from the CDK code
// fails the test that needs it.

// e2eStack is the stack the template is read from, and e2eContext the CDK context it is
// synthesized with (no account: the deployed policies name the region and account through
// pseudo parameters, bound to the stand-in's).
const e2eStack = "OrderPipe"

var e2eTemplate struct {
	once sync.Once
	t    *local.Template
	err  error
}

// e2eStackTemplate synthesizes the CDK app once per test binary (seconds when the cached
// assembly is current; a first build of the app takes minutes), or waits for synthesizeE2E.
func e2eStackTemplate(t testing.TB) *local.Template {
	t.Helper()
	synthesizeE2E()
	if e2eTemplate.err != nil {
		t.Fatalf("synthesized template: %v", e2eTemplate.err)
	}
	return e2eTemplate.t
}

// synthesizeE2E synthesizes e2eTemplate, once; a later call waits for the first.
func synthesizeE2E() {
	e2eTemplate.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		e2eTemplate.t, e2eTemplate.err = local.SynthPlaceholders(ctx, "..", filepath.Join(os.TempDir(), "orderpipe-synth"), e2eStack, nil)
	})
}

// e2eFunctionAWS is local.Options.FunctionAWS for the end-to-end pipelines: the configuration
// of an IAM user with the role policies of the function in the synthesized template.
func e2eFunctionAWS(t testing.TB) func(context.Context, string, local.Resources) (aws.Config, error) {
	t.Helper()
	tpl := e2eStackTemplate(t)
	admin := e2eAdmin(t)
	return func(ctx context.Context, function string, res local.Resources) (aws.Config, error) {
		b, err := tpl.Bind(res)
		if err != nil {
			return aws.Config{}, err
		}
		construct := strings.ToUpper(function[:1]) + function[1:] // ingest -> the Ingest construct
		docs, err := tpl.FunctionPolicies("/"+construct+"/Function/Resource", b)
		if err != nil {
			return aws.Config{}, err
		}
		creds, err := local.CreatePrincipal(ctx, admin, awstest.Name(t, function), docs)
		if err != nil {
			return aws.Config{}, err
		}
		return local.ClientConfig(e2eEndpoint(t), creds), nil
	}
}

// e2eRedriveSQS is the SQS client of the redrive function of the pipeline provisioned as res.
func e2eRedriveSQS(t testing.TB, res local.Resources) *sqs.Client {
	t.Helper()
	cfg, err := e2eFunctionAWS(t)(context.Background(), "redrive", res)
	if err != nil {
		t.Fatalf("redrive credentials: %v", err)
	}
	return sqs.NewFromConfig(cfg)
}

// e2eRedriveJournal is the move journal of the redrive function of the pipeline provisioned as
// res, in its bucket, signed as that function.
func e2eRedriveJournal(t testing.TB, res local.Resources) redrive.Journal {
	t.Helper()
	cfg, err := e2eFunctionAWS(t)(context.Background(), "redrive", res)
	if err != nil {
		t.Fatalf("redrive credentials: %v", err)
	}
	return redrive.S3Journal{Client: s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }), Bucket: res.Bucket}
}

// TestE2EIngestAdoptsItsReport: ingest writes a file's report, then its write of the done state
// fails. The file's message comes back; the next invocation takes over the released claim,
// finds the report of that abandoned run (s3:GetObject on reports/*) and finishes from it
// without sending anything again. Without the grant on reports/* the look-up is refused and
// the file never finishes.
func TestE2EIngestAdoptsItsReport(t *testing.T) {
	t.Parallel()
	p := newE2E(t, e2eOptions{})
	var reported, failed atomic.Int32
	opts := p.IngestS3.Options()
	opts.APIOptions = append(opts.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("FailDoneState", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if put, ok := in.Parameters.(*s3.PutObjectInput); ok {
				key := aws.ToString(put.Key)
				switch {
				case strings.HasPrefix(key, "reports/"):
					reported.Store(1)
				case strings.HasPrefix(key, "state/") && strings.HasSuffix(key, ".json") && reported.Load() == 1 && failed.CompareAndSwap(0, 1):
					return middleware.InitializeOutput{}, middleware.Metadata{}, errors.New("injected: done state write failed")
				}
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
	})
	p.files.Handler = ingest.New(p.IngestConfig, s3.New(opts), p.IngestSQS, ingest.Options{}).Handle
	p.start(t)

	f := &e2eFile{key: "uploads/retry.jsonl", ids: numbered("r", 6)}
	for line := int64(1); line <= 6; line++ {
		f.body = fmt.Appendf(f.body, `{"id":%q,"amount":"%d.00"}`+"\n", f.ids[line], line)
	}
	f.version = p.upload(t, f.key, f.body)
	files := []*e2eFile{f}
	p.settle(t, 60*time.Second, files)
	p.checkLedger(t, files, nil)
	if failed.Load() != 1 {
		t.Errorf("done state write failures injected: got %d, want 1", failed.Load())
	}
	if st := p.files.Stats(); st.ItemFailures < 1 {
		t.Errorf("ingest item failures: got %d, want the injected one at least", st.ItemFailures)
	}
	if st := p.api.Stats(); st.Deliveries != len(f.ids) || st.Duplicates != 0 {
		t.Errorf("stand-in: %d deliveries, %d duplicates; want %d, 0", st.Deliveries, st.Duplicates, len(f.ids))
	}
}

package test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/local"
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
// assembly is current; a first build of the app takes minutes).
func e2eStackTemplate(t testing.TB) *local.Template {
	t.Helper()
	e2eTemplate.once.Do(func() {
		cache := filepath.Join(os.TempDir(), "orderpipe-synth")
		assets := filepath.Join(cache, "assets")
		for _, fn := range []string{"ingest", "dispatch", "redrive"} {
			if e2eTemplate.err = os.MkdirAll(filepath.Join(assets, fn), 0o755); e2eTemplate.err == nil {
				e2eTemplate.err = os.WriteFile(filepath.Join(assets, fn, "bootstrap"), []byte("#!/bin/sh\n"), 0o755)
			}
			if e2eTemplate.err != nil {
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		var path string
		path, e2eTemplate.err = local.SynthTemplate(ctx, "..", cache, e2eStack, map[string]any{
			"apiBaseUrl": "https://orders.invalid",
			"assetDir":   assets,
		})
		if e2eTemplate.err == nil {
			e2eTemplate.t, e2eTemplate.err = local.ReadTemplate(path)
		}
	})
	if e2eTemplate.err != nil {
		t.Fatalf("synthesized template: %v", e2eTemplate.err)
	}
	return e2eTemplate.t
}

// e2eRoles are the SDK clients of each function, signing as the IAM user made from its role.
type e2eRoles struct {
	ingestS3    *s3.Client
	ingestSQS   *sqs.Client
	dispatchSQS *sqs.Client
	redriveSQS  *sqs.Client
}

// newE2ERoles creates the functions' principals for the pipeline provisioned as res.
func newE2ERoles(t testing.TB, res local.Resources) e2eRoles {
	t.Helper()
	tpl := e2eStackTemplate(t)
	b, err := tpl.Bind(res)
	if err != nil {
		t.Fatalf("bind the template to the pipeline: %v", err)
	}
	admin := e2eAdmin(t)
	cfg := func(construct string) aws.Config {
		docs, err := tpl.FunctionPolicies("/"+construct+"/Function/Resource", b)
		if err != nil {
			t.Fatalf("%s role: %v", construct, err)
		}
		creds, err := local.CreatePrincipal(context.Background(), admin, awstest.Name(t, strings.ToLower(construct)), docs)
		if err != nil {
			t.Fatalf("%s principal: %v", construct, err)
		}
		return local.ClientConfig(e2eEndpoint(t), creds)
	}
	ingest, dispatch, redrive := cfg("Ingest"), cfg("Dispatch"), cfg("Redrive")
	return e2eRoles{
		ingestS3:    s3.NewFromConfig(ingest, local.S3Options),
		ingestSQS:   sqs.NewFromConfig(ingest),
		dispatchSQS: sqs.NewFromConfig(dispatch),
		redriveSQS:  sqs.NewFromConfig(redrive),
	}
}

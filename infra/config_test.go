package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/jsii-runtime-go"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

func TestParseContext(t *testing.T) {
	base := func(edit func(*Config)) Config {
		c := DefaultConfig()
		c.APIBaseURL = "https://api.example.com"
		if edit != nil {
			edit(&c)
		}
		return c
	}
	tests := []struct {
		name    string
		ctx     map[string]any
		want    Config
		wantErr []string // fragments, each must appear
	}{
		{
			name: "defaults",
			ctx:  map[string]any{CtxAPIBaseURL: "https://api.example.com"},
			want: base(nil),
		},
		{
			name: "cdk.json values",
			ctx: map[string]any{CtxAPIBaseURL: "https://api.example.com", CtxAPIRate: 2.0, CtxInstances: 4.0,
				CtxIngestBatchSize: 5.0, CtxTracing: true, CtxAlarmEmail: "ops@example.com"},
			want: base(func(c *Config) {
				c.Settings.APIRate, c.Settings.Instances, c.Settings.ReservedConcurrency = 2, 4, 4
				c.IngestBatchSize, c.Tracing, c.AlarmEmail = 5, true, "ops@example.com"
			}),
		},
		{
			name: "-c strings",
			ctx: map[string]any{CtxAPIBaseURL: " https://api.example.com ", CtxAPIRate: "0.5", CtxInstances: "3",
				CtxReservedConcurrency: "5", CtxTracing: "false", CtxRedriveSchedule: "rate(1 hour)",
				CtxAPISecretARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:api"},
			want: base(func(c *Config) {
				c.Settings.APIRate, c.Settings.Instances, c.Settings.ReservedConcurrency = 0.5, 3, 5
				c.RedriveSchedule = "rate(1 hour)"
				c.APISecretARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:api"
			}),
		},
		{name: "missing url", ctx: map[string]any{}, wantErr: []string{"apiBaseUrl is required"}},
		{name: "http url", ctx: map[string]any{CtxAPIBaseURL: "http://api.example.com"}, wantErr: []string{"must be an absolute https:// URL"}},
		{name: "credentials in url", ctx: map[string]any{CtxAPIBaseURL: "https://u:p@api.example.com"}, wantErr: []string{"no credentials"}},
		{name: "not a number", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxAPIRate: "fast"}, wantErr: []string{`apiRate: "fast" is not a number`}},
		{name: "fractional instances", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxInstances: 2.5}, wantErr: []string{"not a whole number"}},
		{name: "not a bool", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxTracing: "yes"}, wantErr: []string{"not true or false"}},
		{name: "wrong type", ctx: map[string]any{CtxAPIBaseURL: 42.0}, wantErr: []string{"want a string"}},
		{name: "bad secret arn", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxAPISecretARN: "my-secret"}, wantErr: []string{"not a Secrets Manager secret ARN"}},
		{name: "bad email", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxAlarmEmail: "Ops <ops@example.com>"}, wantErr: []string{"not a plain email address"}},
		{name: "bad schedule", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxRedriveSchedule: "hourly"}, wantErr: []string{"want rate(...) or cron(...)"}},
		{name: "batch size", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxIngestBatchSize: 11.0}, wantErr: []string{"must be 1..10"}},
		{name: "one instance", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxInstances: 1.0}, wantErr: []string{"SQS event sources need at least 2"}},
		{name: "reserved below instances", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxInstances: 4.0, CtxReservedConcurrency: 3.0},
			wantErr: []string{"Instances (ESM MaximumConcurrency) 4 > ReservedConcurrency 3"}},
		{name: "too few instances for the rate", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxAPIRate: 20.0, CtxInstances: 2.0},
			wantErr: []string{"raise instances to 4"}},
		{name: "too many instances", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxInstances: 1001.0}, wantErr: []string{"at most 1000"}},
		{name: "pipeline without source", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxPipeline: true}, wantErr: []string{"pipeline=true needs a source"}},
		{name: "pipeline bad repository", ctx: map[string]any{CtxAPIBaseURL: "https://a.example", CtxPipeline: "true",
			CtxConnectionARN: "arn:aws:codestar-connections:us-east-1:123456789012:connection/abc-123", CtxRepository: "orderpipe"},
			wantErr: []string{"want owner/name"}},
		{name: "every error reported", ctx: map[string]any{CtxAPIBaseURL: "ftp://x", CtxIngestBatchSize: 0.0, CtxAPIRate: 0.0},
			wantErr: []string{"https://", "1..10", "APIRate 0: must be > 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseContext(func(k string) any { return tt.ctx[k] })
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("ParseContext: got no error, want one containing %q", tt.wantErr)
				}
				for _, frag := range tt.wantErr {
					if !strings.Contains(err.Error(), frag) {
						t.Errorf("error: got %q, want it to contain %q", err, frag)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseContext: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSynthGuards: a config breaking an AWS rule fails before any resource exists, with a
// message saying what to change.
func TestSynthGuards(t *testing.T) {
	tests := []struct {
		name string
		edit func(*pipeline.Settings)
		want string
	}{
		{"visibility below 6 x timeout", func(s *pipeline.Settings) { s.OrdersVisibility = 2 * time.Minute },
			"orders queue visibility 2m0s < 6 x function timeout 30s"},
		{"files visibility below the heartbeat's minimum", func(s *pipeline.Settings) { s.FilesVisibility = 2 * time.Second },
			"files queue visibility 2s < 3s"},
		{"maxReceiveCount below 5", func(s *pipeline.Settings) { s.MaxReceiveCount, s.MaxAttempts = 4, 3 }, "maxReceiveCount 4 < 5"},
		{"max concurrency above reserved", func(s *pipeline.Settings) { s.Instances = 3 }, "Instances (ESM MaximumConcurrency) 3 > ReservedConcurrency 2"},
		{"DLQ retention below source", func(s *pipeline.Settings) { s.DLQRetention = 4 * 24 * time.Hour }, "DLQ retention 96h0m0s < source queue retention 336h0m0s"},
		{"dispatch timeout not above API timeout", func(s *pipeline.Settings) { s.DispatchTimeout = 10 * time.Second },
			"must exceed ORDER_API_TIMEOUT"},
		{"ingest timeout above Lambda's", func(s *pipeline.Settings) { s.IngestTimeout, s.FilesVisibility = 20*time.Minute, 2*time.Hour },
			"ingest timeout 20m0s: must be > 0 and <= Lambda's 15m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.APIBaseURL = "https://api.example.com"
			cfg.AssetDir = assetDir
			tt.edit(&cfg.Settings)
			app := NewApp(nil)
			p, err := NewOrderPipe(app, StackName, nil, cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewOrderPipe error: got %v, want one containing %q", err, tt.want)
			}
			if p != nil {
				t.Errorf("NewOrderPipe returned a stack with the error")
			}
			if n := len(*app.Node().Children()); n != 0 {
				t.Errorf("app children after the error: got %d, want 0 (fail before creating resources)", n)
			}
		})
	}
	t.Run("missing function assets", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.APIBaseURL = "https://api.example.com"
		cfg.AssetDir = t.TempDir()
		app := NewApp(nil)
		_, err := NewOrderPipe(app, StackName, nil, cfg)
		if err == nil || !strings.Contains(err.Error(), "dispatch/bootstrap missing: run `make build`") {
			t.Fatalf("NewOrderPipe error: got %v, want the missing dispatch asset", err)
		}
		if n := len(*app.Node().Children()); n != 0 {
			t.Errorf("app children after the error: got %d, want 0", n)
		}
	})
	t.Run("Build reports the context error", func(t *testing.T) {
		app := NewApp(map[string]any{CtxAPIBaseURL: "http://insecure.example", CtxAssetDir: assetDir})
		err := Build(app)
		if err == nil || !strings.Contains(err.Error(), "read context: ") || !strings.Contains(err.Error(), "https://") {
			t.Fatalf("Build: got %v, want the context error", err)
		}
		if app.Node().TryFindChild(jsii.String(StackName)) != nil {
			t.Errorf("Build created the stack despite the error")
		}
	})
}

// TestCDKJSONNamesNoAPI: cdk.json ships no order API, so a deploy that does not give one fails at
// synth, saying which context key is missing.
func TestCDKJSONNamesNoAPI(t *testing.T) {
	b, err := os.ReadFile("../cdk.json")
	if err != nil {
		t.Fatalf("read cdk.json: %v", err)
	}
	var file struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatalf("decode cdk.json: %v", err)
	}
	if v, ok := file.Context[CtxAPIBaseURL]; ok {
		t.Errorf("cdk.json context %s = %v: a deploy must name its order API", CtxAPIBaseURL, v)
	}
	_, err = ParseContext(func(k string) any { return file.Context[k] })
	if err == nil || !strings.Contains(err.Error(), "context apiBaseUrl is required") {
		t.Errorf("ParseContext(cdk.json): got %v, want the error saying apiBaseUrl is required", err)
	}
}

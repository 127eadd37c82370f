package ingest_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/ingest"
)

func TestLoadConfig(t *testing.T) {
	base := map[string]string{"ORDERS_QUEUE_URL": "http://q/orders", "FILES_QUEUE_URL": "http://q/files"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	defaults := ingest.Config{
		OrdersQueueURL: "http://q/orders", FilesQueueURL: "http://q/files", IDField: "id",
		MaxLineBytes: 262144, MaxFileBytes: 10737418240, MaxDecompressedBytes: 107374182400, SendConcurrency: 4,
		CheckpointMargin: 60 * time.Second, CheckpointEvery: time.Minute, FilesVisibility: ingest.DefaultFilesVisibility, LogLevel: slog.LevelInfo,
		APIRate: 1, OrdersRetention: 14 * 24 * time.Hour, WaitDelay: 15 * time.Minute, LeaseSlack: time.Minute,
		FunctionName: "ingest",
	}
	custom := defaults
	custom.IDField, custom.MaxLineBytes, custom.MaxFileBytes, custom.SendConcurrency = "orderId", 1000, 5000, 8
	custom.MaxDecompressedBytes = 50000
	custom.CheckpointMargin, custom.LogLevel, custom.FilesVisibility = 90*time.Second, slog.LevelDebug, 5*time.Minute
	custom.APIRate, custom.OrdersRetention, custom.FunctionName = 2.5, 96*time.Hour, "orderpipe-IngestFn"
	tests := []struct {
		name    string
		env     map[string]string
		want    ingest.Config
		wantErr []string // substrings of the error
	}{
		{"defaults", base, defaults, nil},
		{"all set", with("ID_FIELD", "orderId", "MAX_LINE_BYTES", "1000", "MAX_FILE_BYTES", "5000", "MAX_DECOMPRESSED_BYTES", "50000",
			"SEND_CONCURRENCY", "8", "CHECKPOINT_MARGIN", "90s", "LOG_LEVEL", "debug", "FILES_VISIBILITY", "5m", "API_RATE", "2.5", "ORDERS_RETENTION", "96h",
			"AWS_LAMBDA_FUNCTION_NAME", "orderpipe-IngestFn"), custom, nil},
		{"required missing", map[string]string{}, ingest.Config{}, []string{"ORDERS_QUEUE_URL is required", "FILES_QUEUE_URL is required"}},
		{"not numbers", with("MAX_LINE_BYTES", "big", "SEND_CONCURRENCY", "4.5"), ingest.Config{}, []string{"MAX_LINE_BYTES", "SEND_CONCURRENCY"}},
		{"out of range", with("MAX_LINE_BYTES", "0", "MAX_FILE_BYTES", "-1", "MAX_DECOMPRESSED_BYTES", "0", "SEND_CONCURRENCY", "65", "CHECKPOINT_MARGIN", "-1s", "FILES_VISIBILITY", "2s"), ingest.Config{},
			[]string{"MAX_LINE_BYTES 0", "MAX_FILE_BYTES -1", "MAX_DECOMPRESSED_BYTES 0", "SEND_CONCURRENCY 65", "CHECKPOINT_MARGIN -1s", "FILES_VISIBILITY 2s"}},
		{"bad duration and level", with("CHECKPOINT_MARGIN", "60", "LOG_LEVEL", "loud"), ingest.Config{}, []string{"CHECKPOINT_MARGIN", "LOG_LEVEL"}},
		{"bad room", with("API_RATE", "0", "ORDERS_RETENTION", "30s"), ingest.Config{}, []string{"API_RATE 0", "ORDERS_RETENTION 30s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ingest.LoadConfig(func(k string) string { return tt.env[k] })
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadConfig: %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("LoadConfig mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadConfig = %+v, want an error", got)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestEnviron: what Environ writes, LoadConfig reads back unchanged, and DefaultConfig is what
// LoadConfig gives for the required variables alone.
func TestEnviron(t *testing.T) {
	required := ingest.DefaultConfig()
	required.OrdersQueueURL, required.FilesQueueURL = "http://q/orders", "http://q/files"
	everything := required
	everything.IDField, everything.MaxLineBytes, everything.MaxFileBytes, everything.SendConcurrency = "orderId", 1000, 5000, 8
	everything.MaxDecompressedBytes = 50000
	everything.CheckpointMargin, everything.LogLevel = 1500*time.Millisecond, slog.LevelWarn
	everything.APIRate, everything.OrdersRetention = 0.25, time.Hour
	for _, tc := range []struct {
		name string
		cfg  ingest.Config
	}{{"defaults", required}, {"everything set", everything}} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.cfg.Environ()
			got, err := ingest.LoadConfig(func(k string) string { return env[k] })
			if err != nil {
				t.Fatalf("LoadConfig(Environ): %v", err)
			}
			if diff := cmp.Diff(tc.cfg, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestValidateOutsideTheEnvironment: the settings LoadConfig does not read are checked too.
func TestValidateOutsideTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		set     func(*ingest.Config)
		wantErr string
	}{
		{"no checkpoint interval", func(c *ingest.Config) { c.CheckpointEvery = 0 }, "CheckpointEvery 0s"},
		{"no wait delay", func(c *ingest.Config) { c.WaitDelay = 0 }, "WaitDelay 0s"},
		{"wait delay above SQS's", func(c *ingest.Config) { c.WaitDelay = 16 * time.Minute }, "WaitDelay 16m0s"},
		{"no lease slack", func(c *ingest.Config) { c.LeaseSlack = 0 }, "LeaseSlack 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ingest.DefaultConfig()
			c.OrdersQueueURL, c.FilesQueueURL = "http://q/orders", "http://q/files"
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate of the defaults: %v", err)
			}
			tc.set(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate = %v, want an error mentioning %q", err, tc.wantErr)
			}
		})
	}
}

package redrive_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/pkg/redrive"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantRate float64
		wantErr  []string // substrings of the error; nil for success
	}{
		{"defaults", map[string]string{"ORDERS_QUEUE_URL": "q", "ORDERS_DLQ_URL": "d"}, 10, nil},
		{"rate", map[string]string{"ORDERS_QUEUE_URL": "q", "ORDERS_DLQ_URL": "d", "REDRIVE_RATE": "2.5"}, 2.5, nil},
		{"missing urls", map[string]string{}, 0, []string{"ORDERS_QUEUE_URL is required", "ORDERS_DLQ_URL is required"}},
		{"same queue", map[string]string{"ORDERS_QUEUE_URL": "q", "ORDERS_DLQ_URL": "q"}, 0, []string{"same queue"}},
		{"rate not a number", map[string]string{"ORDERS_QUEUE_URL": "q", "ORDERS_DLQ_URL": "d", "REDRIVE_RATE": "fast"}, 0, []string{`REDRIVE_RATE "fast": not a number`}},
		{"rate negative", map[string]string{"ORDERS_QUEUE_URL": "q", "ORDERS_DLQ_URL": "d", "REDRIVE_RATE": "-1"}, 0, []string{"REDRIVE_RATE -1: must be > 0"}},
		{"log level", map[string]string{"ORDERS_QUEUE_URL": "q", "ORDERS_DLQ_URL": "d", "LOG_LEVEL": "debug"}, 10, nil},
		{"bad log level", map[string]string{"ORDERS_QUEUE_URL": "q", "ORDERS_DLQ_URL": "d", "LOG_LEVEL": "loud"}, 0, []string{`LOG_LEVEL "loud"`}},
		{"rate too high", map[string]string{"ORDERS_QUEUE_URL": "q", "ORDERS_DLQ_URL": "d", "REDRIVE_RATE": "501"}, 0, []string{"<= 500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := redrive.LoadConfig(func(k string) string { return tt.env[k] })
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadConfig: %v", err)
				}
				if got.Rate != tt.wantRate || got.QueueURL != "q" || got.DLQURL != "d" {
					t.Errorf("got %+v, want rate %v and the two URLs", got, tt.wantRate)
				}
				if got.ScanVisibility != redrive.DefaultScanVisibility || got.ReceiveWait != redrive.DefaultReceiveWait || got.StopMargin != redrive.DefaultStopMargin {
					t.Errorf("got %+v, want the default durations", got)
				}
				return
			}
			if err == nil {
				t.Fatalf("got config %+v, want an error", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestEnviron: what Environ writes, LoadConfig reads back unchanged.
func TestEnviron(t *testing.T) {
	for _, c := range []redrive.Config{
		{QueueURL: "q", DLQURL: "d"},
		{QueueURL: "q", DLQURL: "d", Rate: 2.5, LogLevel: slog.LevelDebug},
	} {
		env := c.Environ()
		got, err := redrive.LoadConfig(func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("LoadConfig(%v): %v", env, err)
		}
		want := c
		if want.Rate == 0 {
			want.Rate = redrive.DefaultRate
		}
		want.ScanVisibility, want.ReceiveWait, want.StopMargin = redrive.DefaultScanVisibility, redrive.DefaultReceiveWait, redrive.DefaultStopMargin
		if got != want {
			t.Errorf("LoadConfig(Environ) = %+v, want %+v", got, want)
		}
	}
}

package pipeline

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultsValid(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatalf("Defaults().Validate() = %v, want nil", err)
	}
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Settings)
		want   string
	}{
		{"visibility below 6x timeout", func(s *Settings) { s.OrdersVisibility = 5 * s.DispatchTimeout }, "orders queue visibility"},
		{"files visibility below the heartbeat's minimum", func(s *Settings) { s.FilesVisibility = 2 * time.Second }, "files queue visibility 2s < 3s"},
		{"files visibility below the ingest timeout", func(s *Settings) { s.IngestTimeout, s.FilesVisibility = 15*time.Minute, 3*time.Minute },
			"files queue visibility 3m0s < ingest timeout 15m0s: Lambda refuses"},
		{"maxReceiveCount below 5", func(s *Settings) { s.MaxReceiveCount = 4; s.MaxAttempts = 3 }, "maxReceiveCount 4 < 5"},
		{"concurrency above reserved", func(s *Settings) { s.Instances = 3 }, "> ReservedConcurrency"},
		{"one instance", func(s *Settings) { s.Instances = 1; s.ReservedConcurrency = 1 }, "at least 2"},
		{"DLQ retention shorter", func(s *Settings) { s.DLQRetention = 4 * 24 * time.Hour }, "DLQ retention"},
		{"budget not below maxReceiveCount", func(s *Settings) { s.MaxAttempts = s.MaxReceiveCount }, "MaxAttempts"},
		{"zero rate", func(s *Settings) { s.APIRate = 0 }, "APIRate"},
		{"breaker never opens", func(s *Settings) { s.BreakerThreshold = 0 }, "BreakerThreshold"},
		{"probe interval beyond the delay limit", func(s *Settings) { s.ProbeInterval = 10 * time.Minute }, "ProbeInterval"},
		{"probe interval too short", func(s *Settings) { s.ProbeInterval = 100 * time.Millisecond }, "ProbeInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Defaults()
			tt.change(&s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDrainArithmetic(t *testing.T) {
	s := Defaults()
	if got, want := s.MaxBacklog(), int64(1209600); got != want {
		t.Errorf("MaxBacklog() = %d, want %d (14 days at 1 rps)", got, want)
	}
	if got, want := s.DrainTime(3600), time.Hour; got != want {
		t.Errorf("DrainTime(3600) = %v, want %v", got, want)
	}
}

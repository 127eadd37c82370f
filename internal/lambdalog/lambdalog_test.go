package lambdalog

import (
	"context"
	"log/slog"
	"testing"
)

func TestLevel(t *testing.T) {
	tests := []struct {
		level slog.Level
		at    slog.Level
		want  bool
	}{
		{slog.LevelInfo, slog.LevelDebug, false},
		{slog.LevelInfo, slog.LevelInfo, true},
		{slog.LevelWarn, slog.LevelInfo, false},
		{slog.LevelWarn, slog.LevelError, true},
	}
	for _, tt := range tests {
		t.Run(tt.level.String()+"/"+tt.at.String(), func(t *testing.T) {
			l := New(tt.level).With("k", "v").WithGroup("g")
			if got := l.Enabled(context.Background(), tt.at); got != tt.want {
				t.Errorf("Enabled(%v) at LOG_LEVEL %v = %v, want %v", tt.at, tt.level, got, tt.want)
			}
		})
	}
}

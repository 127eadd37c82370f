// Package lambdalog builds the functions' logger: Lambda's structured handler (request id on
// every line, AWS_LAMBDA_LOG_FORMAT and AWS_LAMBDA_LOG_LEVEL honoured) that also drops records
// below the function's own LOG_LEVEL.
package lambdalog

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// New returns the logger for a function configured at level. It is safe for concurrent use.
func New(level slog.Level) *slog.Logger {
	return slog.New(minLevel{Handler: lambdacontext.NewLogHandler(), level: level})
}

// minLevel drops records below level on top of the wrapped handler's own level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(attrs), level: h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), level: h.level}
}

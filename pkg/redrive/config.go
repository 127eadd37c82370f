package redrive

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// Environment variable names read by LoadConfig (docs/CONTRACTS.md).
const (
	EnvQueueURL = "ORDERS_QUEUE_URL"
	EnvDLQURL   = "ORDERS_DLQ_URL"
	EnvRate     = "REDRIVE_RATE"
	// EnvAuditBucket names the bucket of the move records (S3Journal, DefaultJournalPrefix).
	EnvAuditBucket = "REDRIVE_AUDIT_BUCKET"
	EnvLogLevel    = "LOG_LEVEL"
)

// Defaults applied by LoadConfig and New to zero fields.
const (
	DefaultRate           = 10.0
	DefaultScanVisibility = 2 * time.Minute
	DefaultReceiveWait    = time.Second
	DefaultStopMargin     = 10 * time.Second
)

// MaxRate is the highest REDRIVE_RATE accepted: SQS caps a message move task at 500 messages/s.
const MaxRate = 500.0

// Config configures a Redriver. Build it with LoadConfig; a zero duration or rate means the
// default.
type Config struct {
	QueueURL string  // ORDERS_QUEUE_URL: where messages go back to (required)
	DLQURL   string  // ORDERS_DLQ_URL: where they are parked (required)
	Rate     float64 // REDRIVE_RATE: messages moved per second, in (0, MaxRate]
	// AuditBucket is REDRIVE_AUDIT_BUCKET: where the function's main keeps the move records
	// (an S3Journal, Options.Journal). The Redriver does not read it; without it a deployed
	// function refuses moves (ErrNoJournal).
	AuditBucket string
	// LogLevel is LOG_LEVEL (debug, info, warn, error; default info). The Redriver does not read
	// it: the function's main builds its logger with it.
	LogLevel slog.Level

	// ScanVisibility is the visibility timeout of messages received by a scan (plus the time to
	// send ten at Rate): how long a message stays hidden if the scan dies before releasing it.
	// Not read from the environment.
	ScanVisibility time.Duration
	// ReceiveWait is the long-poll wait of each ReceiveMessage (whole seconds, at most 20).
	ReceiveWait time.Duration
	// StopMargin: a scan stops receiving this long before the context deadline, leaving time to
	// release the messages it holds.
	StopMargin time.Duration
}

// LoadConfig reads the redrive configuration through getenv (os.Getenv in Lambda), applies the
// defaults and validates it. The error lists every problem.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		QueueURL:    getenv(EnvQueueURL),
		DLQURL:      getenv(EnvDLQURL),
		AuditBucket: getenv(EnvAuditBucket),
	}
	var errs []error
	if v := getenv(EnvRate); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: not a number", EnvRate, v))
		}
		c.Rate = r
	}
	if v := getenv(EnvLogLevel); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want debug, info, warn or error", EnvLogLevel, v))
		}
	}
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("load redrive config: %w", err)
	}
	return c, nil
}

// Environ returns the environment LoadConfig reads c back from: every variable of the contract,
// with zero fields at their defaults. The fields not read from the environment are left out.
func (c Config) Environ() map[string]string {
	c = c.withDefaults()
	return map[string]string{
		EnvQueueURL:    c.QueueURL,
		EnvDLQURL:      c.DLQURL,
		EnvRate:        strconv.FormatFloat(c.Rate, 'g', -1, 64),
		EnvAuditBucket: c.AuditBucket,
		EnvLogLevel:    c.LogLevel.String(),
	}
}

func (c Config) withDefaults() Config {
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.ScanVisibility == 0 {
		c.ScanVisibility = DefaultScanVisibility
	}
	if c.ReceiveWait == 0 {
		c.ReceiveWait = DefaultReceiveWait
	}
	if c.StopMargin == 0 {
		c.StopMargin = DefaultStopMargin
	}
	return c
}

// Validate reports every invalid field, joined; zero fields count as their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.QueueURL == "" {
		errs = append(errs, fmt.Errorf("%s is required", EnvQueueURL))
	}
	if c.DLQURL == "" {
		errs = append(errs, fmt.Errorf("%s is required", EnvDLQURL))
	}
	if c.QueueURL != "" && c.QueueURL == c.DLQURL {
		errs = append(errs, fmt.Errorf("%s and %s are the same queue", EnvQueueURL, EnvDLQURL))
	}
	if !(c.Rate > 0 && c.Rate <= MaxRate) {
		errs = append(errs, fmt.Errorf("%s %v: must be > 0 and <= %v", EnvRate, c.Rate, MaxRate))
	}
	if c.ScanVisibility < time.Second || c.ScanVisibility > 12*time.Hour {
		errs = append(errs, fmt.Errorf("scan visibility %v: must be between 1s and 12h", c.ScanVisibility))
	}
	if c.ReceiveWait < 0 || c.ReceiveWait > 20*time.Second {
		errs = append(errs, fmt.Errorf("receive wait %v: must be between 0 and 20s", c.ReceiveWait))
	}
	if c.StopMargin < 0 {
		errs = append(errs, fmt.Errorf("stop margin %v: must be >= 0", c.StopMargin))
	}
	return errors.Join(errs...)
}

package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Config is the ingest function's configuration (docs/CONTRACTS.md, "Environment"). Build it
// with LoadConfig; a hand-built Config must pass Validate.
type Config struct {
	OrdersQueueURL   string        // ORDERS_QUEUE_URL: where orders are sent
	FilesQueueURL    string        // FILES_QUEUE_URL: where continuations are sent
	IDField          string        // ID_FIELD: name of the order id field
	MaxLineBytes     int           // MAX_LINE_BYTES: longer lines are rejected
	MaxFileBytes     int64         // MAX_FILE_BYTES: larger objects are refused whole
	SendConcurrency  int           // SEND_CONCURRENCY: SendMessageBatch calls in flight
	CheckpointMargin time.Duration // CHECKPOINT_MARGIN: stop this long before the deadline
	// CheckpointEvery is how often a long run saves its progress without stopping, so that a
	// crash re-sends at most this much work. Not read from the environment.
	CheckpointEvery time.Duration
	LogLevel        slog.Level // LOG_LEVEL
}

// Defaults of the optional settings.
const (
	DefaultIDField          = "id"
	DefaultMaxLineBytes     = 256 << 10
	DefaultMaxFileBytes     = 10 << 30
	DefaultSendConcurrency  = 4
	DefaultCheckpointMargin = 60 * time.Second
	DefaultCheckpointEvery  = time.Minute
)

// LoadConfig reads the configuration through getenv (os.Getenv in main), applies the defaults
// and validates it. The error lists every bad or missing variable.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		OrdersQueueURL:   getenv("ORDERS_QUEUE_URL"),
		FilesQueueURL:    getenv("FILES_QUEUE_URL"),
		IDField:          DefaultIDField,
		MaxLineBytes:     DefaultMaxLineBytes,
		MaxFileBytes:     DefaultMaxFileBytes,
		SendConcurrency:  DefaultSendConcurrency,
		CheckpointMargin: DefaultCheckpointMargin,
		CheckpointEvery:  DefaultCheckpointEvery,
		LogLevel:         slog.LevelInfo,
	}
	var errs []error
	if v := getenv("ID_FIELD"); v != "" {
		c.IDField = v
	}
	intVar := func(name string, dst *int64) {
		if v := getenv(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not an integer", name, v))
				return
			}
			*dst = n
		}
	}
	maxLine, conc := int64(c.MaxLineBytes), int64(c.SendConcurrency)
	intVar("MAX_LINE_BYTES", &maxLine)
	intVar("MAX_FILE_BYTES", &c.MaxFileBytes)
	intVar("SEND_CONCURRENCY", &conc)
	c.MaxLineBytes, c.SendConcurrency = int(maxLine), int(conc)
	if v := getenv("CHECKPOINT_MARGIN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("CHECKPOINT_MARGIN=%q: not a duration like 60s", v))
		}
		c.CheckpointMargin = d
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(strings.ToUpper(v))); err != nil {
			errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("load ingest config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("load ingest config: %w", err)
	}
	return c, nil
}

// Validate reports every setting out of range.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.OrdersQueueURL == "" {
		bad("ORDERS_QUEUE_URL is required")
	}
	if c.FilesQueueURL == "" {
		bad("FILES_QUEUE_URL is required")
	}
	if c.IDField == "" {
		bad("ID_FIELD is empty")
	}
	if c.MaxLineBytes < 1 || c.MaxLineBytes > MaxMessageBytes {
		bad("MAX_LINE_BYTES %d: want 1..%d", c.MaxLineBytes, MaxMessageBytes)
	}
	if c.MaxFileBytes < 1 {
		bad("MAX_FILE_BYTES %d: want > 0", c.MaxFileBytes)
	}
	if c.SendConcurrency < 1 || c.SendConcurrency > 64 {
		bad("SEND_CONCURRENCY %d: want 1..64", c.SendConcurrency)
	}
	if c.CheckpointMargin < 0 {
		bad("CHECKPOINT_MARGIN %v: want >= 0", c.CheckpointMargin)
	}
	if c.CheckpointEvery <= 0 {
		bad("CheckpointEvery %v: want > 0", c.CheckpointEvery)
	}
	return errors.Join(errs...)
}

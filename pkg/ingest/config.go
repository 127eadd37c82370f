package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Environment variable names LoadConfig reads (docs/CONTRACTS.md, "Environment").
const (
	EnvOrdersQueueURL   = "ORDERS_QUEUE_URL"
	EnvFilesQueueURL    = "FILES_QUEUE_URL"
	EnvIDField          = "ID_FIELD"
	EnvMaxLineBytes     = "MAX_LINE_BYTES"
	EnvMaxFileBytes     = "MAX_FILE_BYTES"
	EnvSendConcurrency  = "SEND_CONCURRENCY"
	EnvCheckpointMargin = "CHECKPOINT_MARGIN"
	EnvFilesVisibility  = "FILES_VISIBILITY"
	EnvLogLevel         = "LOG_LEVEL"
)

// Config is the ingest function's configuration (docs/CONTRACTS.md, "Environment"). Build it
// with LoadConfig, or from DefaultConfig with the queue URLs set; a hand-built Config must pass
// Validate.
type Config struct {
	OrdersQueueURL   string        // ORDERS_QUEUE_URL: where orders are sent
	FilesQueueURL    string        // FILES_QUEUE_URL: where continuations are sent
	IDField          string        // ID_FIELD: name of the order id field
	MaxLineBytes     int           // MAX_LINE_BYTES: longer lines are rejected
	MaxFileBytes     int64         // MAX_FILE_BYTES: larger objects are refused whole
	SendConcurrency  int           // SEND_CONCURRENCY: SendMessageBatch calls in flight
	CheckpointMargin time.Duration // CHECKPOINT_MARGIN: stop this long before the deadline
	// FilesVisibility (FILES_VISIBILITY) is the files queue's visibility timeout: the handler
	// sets each message of its batch invisible for this long again every third of it while it
	// works (the heartbeat), so a crashed invocation's message is back within it.
	FilesVisibility time.Duration
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
	DefaultFilesVisibility  = 3 * time.Minute // pipeline.Defaults().FilesVisibility
	// MinFilesVisibility keeps the heartbeat (a third of it) at a second or more
	// (pipeline.MinFilesVisibility).
	MinFilesVisibility = 3 * time.Second
)

// DefaultConfig returns the configuration LoadConfig starts from: every optional setting at its
// default, the queue URLs empty (they are required).
func DefaultConfig() Config {
	return Config{
		IDField:          DefaultIDField,
		MaxLineBytes:     DefaultMaxLineBytes,
		MaxFileBytes:     DefaultMaxFileBytes,
		SendConcurrency:  DefaultSendConcurrency,
		CheckpointMargin: DefaultCheckpointMargin,
		CheckpointEvery:  DefaultCheckpointEvery,
		FilesVisibility:  DefaultFilesVisibility,
		LogLevel:         slog.LevelInfo,
	}
}

// Environ returns the environment LoadConfig reads c back from: every variable of the contract.
// CheckpointEvery is not part of the environment. For a valid c whose CheckpointEvery is the
// default, LoadConfig(Environ) returns c.
func (c Config) Environ() map[string]string {
	return map[string]string{
		EnvOrdersQueueURL:   c.OrdersQueueURL,
		EnvFilesQueueURL:    c.FilesQueueURL,
		EnvIDField:          c.IDField,
		EnvMaxLineBytes:     strconv.Itoa(c.MaxLineBytes),
		EnvMaxFileBytes:     strconv.FormatInt(c.MaxFileBytes, 10),
		EnvSendConcurrency:  strconv.Itoa(c.SendConcurrency),
		EnvCheckpointMargin: c.CheckpointMargin.String(),
		EnvFilesVisibility:  c.FilesVisibility.String(),
		EnvLogLevel:         c.LogLevel.String(),
	}
}

// LoadConfig reads the configuration through getenv (os.Getenv in main), applies the defaults
// and validates it. The error lists every bad or missing variable.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	c.OrdersQueueURL, c.FilesQueueURL = getenv(EnvOrdersQueueURL), getenv(EnvFilesQueueURL)
	var errs []error
	if v := getenv(EnvIDField); v != "" {
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
	intVar(EnvMaxLineBytes, &maxLine)
	intVar(EnvMaxFileBytes, &c.MaxFileBytes)
	intVar(EnvSendConcurrency, &conc)
	c.MaxLineBytes, c.SendConcurrency = int(maxLine), int(conc)
	if v := getenv(EnvCheckpointMargin); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: not a duration like 60s", EnvCheckpointMargin, v))
		}
		c.CheckpointMargin = d
	}
	if v := getenv(EnvFilesVisibility); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: not a duration like 3m", EnvFilesVisibility, v))
		}
		c.FilesVisibility = d
	}
	if v := getenv(EnvLogLevel); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(strings.ToUpper(v))); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want debug, info, warn or error", EnvLogLevel, v))
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
		bad("%s is required", EnvOrdersQueueURL)
	}
	if c.FilesQueueURL == "" {
		bad("%s is required", EnvFilesQueueURL)
	}
	if c.IDField == "" {
		bad("%s is empty", EnvIDField)
	}
	if c.MaxLineBytes < 1 || c.MaxLineBytes > MaxMessageBytes {
		bad("%s %d: want 1..%d", EnvMaxLineBytes, c.MaxLineBytes, MaxMessageBytes)
	}
	if c.MaxFileBytes < 1 {
		bad("%s %d: want > 0", EnvMaxFileBytes, c.MaxFileBytes)
	}
	if c.SendConcurrency < 1 || c.SendConcurrency > 64 {
		bad("%s %d: want 1..64", EnvSendConcurrency, c.SendConcurrency)
	}
	if c.CheckpointMargin < 0 {
		bad("%s %v: want >= 0", EnvCheckpointMargin, c.CheckpointMargin)
	}
	if c.FilesVisibility < MinFilesVisibility || c.FilesVisibility > 12*time.Hour {
		bad("%s %v: want %v..12h", EnvFilesVisibility, c.FilesVisibility, MinFilesVisibility)
	}
	if c.CheckpointEvery <= 0 {
		bad("CheckpointEvery %v: want > 0", c.CheckpointEvery)
	}
	return errors.Join(errs...)
}

package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// Environment variable names LoadConfig reads (docs/CONTRACTS.md, "Environment").
const (
	EnvOrdersQueueURL       = "ORDERS_QUEUE_URL"
	EnvFilesQueueURL        = "FILES_QUEUE_URL"
	EnvIDField              = "ID_FIELD"
	EnvMaxLineBytes         = "MAX_LINE_BYTES"
	EnvMaxFileBytes         = "MAX_FILE_BYTES"
	EnvMaxDecompressedBytes = "MAX_DECOMPRESSED_BYTES"
	EnvSendConcurrency      = "SEND_CONCURRENCY"
	EnvCheckpointMargin     = "CHECKPOINT_MARGIN"
	EnvFilesVisibility      = "FILES_VISIBILITY"
	EnvLogLevel             = "LOG_LEVEL"
	EnvAPIRate              = "API_RATE"         // the same as dispatch's: what drains the orders queue
	EnvOrdersRetention      = "ORDERS_RETENTION" // the orders queue's message retention
	// EnvFunctionName is set by Lambda, never by a deployment.
	EnvFunctionName = "AWS_LAMBDA_FUNCTION_NAME"
)

// Config is the ingest function's configuration (docs/CONTRACTS.md, "Environment"). Build it
// with LoadConfig, or from DefaultConfig with the queue URLs set; a hand-built Config must pass
// Validate.
type Config struct {
	OrdersQueueURL string // ORDERS_QUEUE_URL: where orders are sent
	FilesQueueURL  string // FILES_QUEUE_URL: where continuations are sent
	IDField        string // ID_FIELD: name of the order id field
	MaxLineBytes   int    // MAX_LINE_BYTES: longer lines are rejected
	MaxFileBytes   int64  // MAX_FILE_BYTES: larger objects are refused whole
	// MaxDecompressedBytes (MAX_DECOMPRESSED_BYTES): a file whose content (a gzip object's
	// decompressed stream) is longer is refused whole by the verifying pass.
	MaxDecompressedBytes int64
	SendConcurrency      int           // SEND_CONCURRENCY: SendMessageBatch calls in flight
	CheckpointMargin     time.Duration // CHECKPOINT_MARGIN: stop this long before the deadline
	// FilesVisibility (FILES_VISIBILITY) is the files queue's visibility timeout: the handler
	// sets each message of its batch invisible for this long again every third of it while it
	// works (the heartbeat), so a crashed invocation's message is back within it.
	FilesVisibility time.Duration
	// CheckpointEvery is how often a long run saves its progress without stopping, so that a
	// crash re-sends at most this much work. Not read from the environment.
	CheckpointEvery time.Duration
	LogLevel        slog.Level // LOG_LEVEL
	// APIRate (API_RATE, orders/s) and OrdersRetention (ORDERS_RETENTION) bound the orders
	// queue's room: what the API drains within the retention less RetentionMargin. A file does
	// not enqueue past it: it waits in S3 (see Room).
	APIRate         float64
	OrdersRetention time.Duration
	// WaitDelay is how long a file that found no room waits before it looks again (the
	// continuation's DelaySeconds, at most 15 minutes). Not read from the environment.
	WaitDelay time.Duration
	// LeaseSlack is how long a claim outlives its invocation's deadline, for clock skew
	// between invocations (see Ingest). Not read from the environment.
	LeaseSlack time.Duration
	// FunctionName (AWS_LAMBDA_FUNCTION_NAME, default "ingest") is the value of the metrics'
	// Function dimension, so that each deployment's alarms count only its own files.
	FunctionName string
}

// Defaults of the optional settings.
const (
	DefaultIDField      = "id"
	DefaultMaxLineBytes = 256 << 10
	DefaultMaxFileBytes = 10 << 30
	// DefaultMaxDecompressedBytes is ten times DefaultMaxFileBytes: order files gzip about 5-10
	// to 1, so an honest gzip within MAX_FILE_BYTES fits, and a gzip bomb stops after ~3 minutes
	// of decompression (~600 MB/s) instead of days.
	DefaultMaxDecompressedBytes = 10 * DefaultMaxFileBytes
	DefaultSendConcurrency      = 4
	DefaultCheckpointMargin     = 60 * time.Second
	DefaultCheckpointEvery      = time.Minute
	DefaultWaitDelay            = 15 * time.Minute // SQS's longest DelaySeconds
	DefaultLeaseSlack           = time.Minute
	DefaultFilesVisibility      = 4 * time.Minute // pipeline.Defaults().FilesVisibility
	// MinFilesVisibility keeps the heartbeat (a third of it) at a second or more
	// (pipeline.MinFilesVisibility).
	MinFilesVisibility  = 3 * time.Second
	DefaultFunctionName = "ingest"
)

// MemoryLimit is the soft memory limit of the ingest process (runtime/debug.SetMemoryLimit),
// which the function's main sets with ApplyMemoryLimit. One file's live heap is 15-35 MB (the
// duplicate-id set's table of at most 8 MiB, the reader's buffer, the batches in flight); when
// the process is short of CPU the collector can fall behind the sending pass and let the heap
// grow past that. The limit makes it collect sooner instead.
const MemoryLimit = 48 << 20

// ApplyMemoryLimit sets the process's soft memory limit to MemoryLimit unless the Go runtime's
// GOMEMLIMIT is set in getenv (GOMEMLIMIT=off runs without a limit), and returns the limit in
// force before, for debug.SetMemoryLimit to restore.
func ApplyMemoryLimit(getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1) // reads it
	}
	return debug.SetMemoryLimit(MemoryLimit)
}

// RetentionMargin is the part of the orders queue's retention the room keeps free: an order
// enqueued when the room is full still drains with a quarter of its retention left.
const RetentionMargin = 4 // the margin is OrdersRetention / RetentionMargin

// DefaultConfig returns the configuration LoadConfig starts from: every optional setting at its
// default, the queue URLs empty (they are required).
func DefaultConfig() Config {
	return Config{
		IDField:              DefaultIDField,
		MaxLineBytes:         DefaultMaxLineBytes,
		MaxFileBytes:         DefaultMaxFileBytes,
		MaxDecompressedBytes: DefaultMaxDecompressedBytes,
		SendConcurrency:      DefaultSendConcurrency,
		CheckpointMargin:     DefaultCheckpointMargin,
		CheckpointEvery:      DefaultCheckpointEvery,
		FilesVisibility:      DefaultFilesVisibility,
		LogLevel:             slog.LevelInfo,
		APIRate:              pipeline.Defaults().APIRate,
		OrdersRetention:      pipeline.Defaults().QueueRetention,
		WaitDelay:            DefaultWaitDelay,
		LeaseSlack:           DefaultLeaseSlack,
		FunctionName:         DefaultFunctionName,
	}
}

// WithSettings returns c with what a deployment's settings decide: the API's rate and the
// orders queue's retention, which bound the room.
func (c Config) WithSettings(s pipeline.Settings) Config {
	c.APIRate, c.OrdersRetention = s.APIRate, s.QueueRetention
	return c
}

// Room is how many orders the orders queue may hold: what the API drains at APIRate within
// OrdersRetention less its RetentionMargin part.
func (c Config) Room() int64 {
	return int64(c.APIRate * (c.OrdersRetention - c.OrdersRetention/RetentionMargin).Seconds())
}

// Environ returns the environment LoadConfig reads c back from: every variable of the contract
// except AWS_LAMBDA_FUNCTION_NAME (Lambda sets it). CheckpointEvery, WaitDelay and LeaseSlack
// are not part of the environment. For a valid c whose CheckpointEvery, WaitDelay, LeaseSlack
// and FunctionName are the defaults, LoadConfig(Environ) returns c.
func (c Config) Environ() map[string]string {
	return map[string]string{
		EnvOrdersQueueURL:       c.OrdersQueueURL,
		EnvFilesQueueURL:        c.FilesQueueURL,
		EnvIDField:              c.IDField,
		EnvMaxLineBytes:         strconv.Itoa(c.MaxLineBytes),
		EnvMaxFileBytes:         strconv.FormatInt(c.MaxFileBytes, 10),
		EnvMaxDecompressedBytes: strconv.FormatInt(c.MaxDecompressedBytes, 10),
		EnvSendConcurrency:      strconv.Itoa(c.SendConcurrency),
		EnvCheckpointMargin:     c.CheckpointMargin.String(),
		EnvFilesVisibility:      c.FilesVisibility.String(),
		EnvLogLevel:             c.LogLevel.String(),
		EnvAPIRate:              strconv.FormatFloat(c.APIRate, 'g', -1, 64),
		EnvOrdersRetention:      c.OrdersRetention.String(),
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
	if v := getenv(EnvFunctionName); v != "" {
		c.FunctionName = v
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
	intVar(EnvMaxDecompressedBytes, &c.MaxDecompressedBytes)
	intVar(EnvSendConcurrency, &conc)
	c.MaxLineBytes, c.SendConcurrency = int(maxLine), int(conc)
	durVar := func(name, example string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a duration like %s", name, v, example))
			}
			*dst = d
		}
	}
	durVar(EnvCheckpointMargin, "60s", &c.CheckpointMargin)
	durVar(EnvOrdersRetention, "336h", &c.OrdersRetention)
	durVar(EnvFilesVisibility, "3m", &c.FilesVisibility)
	if v := getenv(EnvAPIRate); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: not a number", EnvAPIRate, v))
		}
		c.APIRate = f
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
	if c.FunctionName == "" {
		bad("FunctionName is empty")
	}
	if c.MaxLineBytes < 1 || c.MaxLineBytes > MaxMessageBytes {
		bad("%s %d: want 1..%d", EnvMaxLineBytes, c.MaxLineBytes, MaxMessageBytes)
	}
	if c.MaxFileBytes < 1 {
		bad("%s %d: want > 0", EnvMaxFileBytes, c.MaxFileBytes)
	}
	if c.MaxDecompressedBytes < 1 {
		bad("%s %d: want > 0", EnvMaxDecompressedBytes, c.MaxDecompressedBytes)
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
	if !(c.APIRate > 0) || math.IsInf(c.APIRate, 0) {
		bad("%s %v: want a finite number > 0", EnvAPIRate, c.APIRate)
	}
	if c.OrdersRetention < time.Minute {
		bad("%s %v: want at least 1m", EnvOrdersRetention, c.OrdersRetention)
	}
	if c.WaitDelay <= 0 || c.WaitDelay > DefaultWaitDelay {
		bad("WaitDelay %v: want 0 < delay <= %v", c.WaitDelay, DefaultWaitDelay)
	}
	if c.LeaseSlack <= 0 {
		bad("LeaseSlack %v: want > 0", c.LeaseSlack)
	}
	return errors.Join(errs...)
}

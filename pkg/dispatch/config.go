package dispatch

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// Environment variable names LoadConfig reads (docs/CONTRACTS.md "Environment").
const (
	EnvOrdersQueueURL = "ORDERS_QUEUE_URL"
	EnvDLQURL         = "ORDERS_DLQ_URL"
	EnvAPIBaseURL     = "ORDER_API_BASE_URL"
	EnvAPISecretARN   = "ORDER_API_SECRET_ARN"
	EnvAPITimeout     = "ORDER_API_TIMEOUT"
	EnvAPIRate        = "API_RATE"
	EnvAPIInstances   = "API_INSTANCES"
	EnvMaxAttempts    = "MAX_ATTEMPTS"
	EnvBackoffBase    = "BACKOFF_BASE"
	EnvBackoffMax     = "BACKOFF_MAX"
	EnvMaxThrottled   = "MAX_THROTTLED"
	EnvLogLevel       = "LOG_LEVEL"
	EnvDeliveryTable  = "DELIVERY_TABLE"
	EnvIDField        = "ID_FIELD" // the same as ingest's: the body's order id field
	// The governor (pkg/governor): its table, margins and breaker.
	EnvGovernorTable    = "GOVERNOR_TABLE"
	EnvClockSkew        = "GOVERNOR_CLOCK_SKEW"
	EnvMargin           = "GOVERNOR_MARGIN"
	EnvHold             = "GOVERNOR_HOLD"
	EnvThrottleWindow   = "GOVERNOR_THROTTLE_WINDOW"
	EnvBreakerThreshold = "BREAKER_THRESHOLD"
	EnvProbeInterval    = "BREAKER_PROBE_INTERVAL"
	// EnvFunctionName is set by Lambda, never by a deployment.
	EnvFunctionName = "AWS_LAMBDA_FUNCTION_NAME"
)

// Defaults of the optional settings not shared with pipeline.Settings (API_RATE, API_INSTANCES
// and MAX_ATTEMPTS default to pipeline.Defaults; ORDER_API_TIMEOUT to orderapi.DefaultTimeout).
const (
	DefaultBackoffBase  = 2 * time.Second
	DefaultBackoffMax   = 15 * time.Minute
	DefaultMaxThrottled = 24 * time.Hour
	DefaultFunctionName = "dispatch"
	DefaultMinRequest   = time.Second
)

// Config is the dispatch function's configuration (docs/CONTRACTS.md "Environment"). Build it
// with LoadConfig, or from DefaultConfig with the required fields set; a hand-built Config must
// pass Validate.
type Config struct {
	OrdersQueueURL string // ORDERS_QUEUE_URL: throttled orders at the end of their budget are re-sent here
	DLQURL         string // ORDERS_DLQ_URL: parked orders

	APIBaseURL   string        // ORDER_API_BASE_URL
	APISecretARN string        // ORDER_API_SECRET_ARN; empty: no Authorization header
	APITimeout   time.Duration // ORDER_API_TIMEOUT, default 10s; capped by the deadline minus margin

	APIRate      float64 // API_RATE, default 1: the API's total rate (the governor's ceiling), requests/s
	APIInstances int     // API_INSTANCES, default 2: without GovernorTable each instance paces at APIRate/APIInstances

	// GovernorTable is GOVERNOR_TABLE: the DynamoDB table of the schedule all instances share.
	// Empty: each instance paces alone at PerInstanceRate (the local tests' default).
	GovernorTable string
	ClockSkew     time.Duration // GOVERNOR_CLOCK_SKEW, default 0: most clock difference between instances
	// Margin is GOVERNOR_MARGIN: added between slots and how late a sender may still use its
	// slot; default (0) governor.Config's: 2 % of 1/rate within [1ms, 20ms].
	Margin time.Duration
	// Hold is GOVERNOR_HOLD, default 1m: no raise of the shared rate for this long after a cut.
	Hold time.Duration
	// ThrottleWindow is GOVERNOR_THROTTLE_WINDOW, default 10s: a 429 this soon after the
	// previous one (and within governor.RepeatSlots slots) is a repeat and cuts the rate.
	ThrottleWindow time.Duration
	// BreakerThreshold is BREAKER_THRESHOLD, default 5: failures in a row that open the breaker.
	BreakerThreshold int
	// ProbeInterval is BREAKER_PROBE_INTERVAL, default 30s: one probe per interval while open.
	// Zero in a hand-built Config means the default, for the governor and for the orders held by
	// the open breaker alike.
	ProbeInterval time.Duration

	MaxAttempts int           // MAX_ATTEMPTS, default 8: transient budget, by receive count
	BackoffBase time.Duration // BACKOFF_BASE, default 2s
	BackoffMax  time.Duration // BACKOFF_MAX, default 15m
	// MaxThrottled is MAX_THROTTLED, default 24h: an order the API has throttled for this long
	// in all (since the first throttle of its current budget) is parked as throttled. Zero in a
	// hand-built Config means the default.
	MaxThrottled time.Duration

	// DeliveryTable (DELIVERY_TABLE) is the DynamoDB table of the delivery records
	// (pkg/delivery); empty: no record is kept and every copy of an order is sent. The stack
	// always sets it.
	DeliveryTable string

	LogLevel slog.Level // LOG_LEVEL, default info
	// IDField is ID_FIELD, default "id" (also when empty): the body's top-level order id field,
	// which must hold the OrderId attribute's id.
	IDField      string
	FunctionName string // AWS_LAMBDA_FUNCTION_NAME, default "dispatch": the EMF Function dimension

	// MinRequest is the least time a request must have once pacing is done; with less left
	// before the deadline the message is given back instead. Not from the environment; default 1s
	// (capped by APITimeout).
	MinRequest time.Duration
}

// DefaultConfig returns the configuration LoadConfig starts from: every optional setting at its
// default, the queue URLs and the API base URL empty (they are required).
func DefaultConfig() Config {
	d := pipeline.Defaults()
	return Config{
		APITimeout:   orderapi.DefaultTimeout,
		APIRate:      d.APIRate,
		APIInstances: d.Instances,
		MaxAttempts:  d.MaxAttempts,
		BackoffBase:  DefaultBackoffBase,
		BackoffMax:   DefaultBackoffMax,
		MaxThrottled: DefaultMaxThrottled,
		LogLevel:     slog.LevelInfo,
		FunctionName: DefaultFunctionName,
		MinRequest:   DefaultMinRequest,
		IDField:      order.DefaultIDField,

		BreakerThreshold: governor.DefaultFailureThreshold,
		ProbeInterval:    governor.DefaultProbeInterval,
		Hold:             governor.DefaultHold,
		ThrottleWindow:   governor.DefaultThrottleWindow,
	}
}

// WithSettings returns c with the values a deployment's settings decide: the API's total rate,
// the number of instances sharing it, the transient budget and the breaker.
func (c Config) WithSettings(s pipeline.Settings) Config {
	c.APIRate, c.APIInstances, c.MaxAttempts = s.APIRate, s.Instances, s.MaxAttempts
	c.BreakerThreshold, c.ProbeInterval = s.BreakerThreshold, s.ProbeInterval
	return c
}

// Environ returns the environment LoadConfig reads c back from: every variable of the contract
// except AWS_LAMBDA_FUNCTION_NAME (Lambda sets it), with ORDER_API_SECRET_ARN and DELIVERY_TABLE
// only when set.
// MinRequest is not part of the environment. For a valid c whose FunctionName and MinRequest are
// the defaults, LoadConfig(Environ) returns c.
func (c Config) Environ() map[string]string {
	env := map[string]string{
		EnvOrdersQueueURL: c.OrdersQueueURL,
		EnvDLQURL:         c.DLQURL,
		EnvAPIBaseURL:     c.APIBaseURL,
		EnvAPITimeout:     c.APITimeout.String(),
		EnvAPIRate:        strconv.FormatFloat(c.APIRate, 'g', -1, 64),
		EnvAPIInstances:   strconv.Itoa(c.APIInstances),
		EnvMaxAttempts:    strconv.Itoa(c.MaxAttempts),
		EnvBackoffBase:    c.BackoffBase.String(),
		EnvBackoffMax:     c.BackoffMax.String(),
		EnvMaxThrottled:   c.MaxThrottled.String(),
		EnvLogLevel:       c.LogLevel.String(),
		EnvIDField:        c.IDField,

		EnvClockSkew:        c.ClockSkew.String(),
		EnvMargin:           c.Margin.String(),
		EnvHold:             c.Hold.String(),
		EnvThrottleWindow:   c.ThrottleWindow.String(),
		EnvBreakerThreshold: strconv.Itoa(c.BreakerThreshold),
		EnvProbeInterval:    c.ProbeInterval.String(),
	}
	if c.APISecretARN != "" {
		env[EnvAPISecretARN] = c.APISecretARN
	}
	if c.GovernorTable != "" {
		env[EnvGovernorTable] = c.GovernorTable
	}
	if c.DeliveryTable != "" {
		env[EnvDeliveryTable] = c.DeliveryTable
	}
	return env
}

// PerInstanceRate is the rate this instance paces at, requests/s.
func (c Config) PerInstanceRate() float64 { return c.APIRate / float64(c.APIInstances) }

// Governor is the governor configuration derived from c, at ceiling rate.
func (c Config) Governor(rate float64) governor.Config {
	return governor.Config{Rate: rate, Skew: c.ClockSkew, Margin: c.Margin, FailureThreshold: c.BreakerThreshold, ProbeInterval: c.probeInterval(),
		Hold: c.Hold, ThrottleWindow: c.ThrottleWindow}
}

// probeInterval is the breaker's probe interval: ProbeInterval, governor.DefaultProbeInterval
// when it is not positive (as governor.Config takes it).
func (c Config) probeInterval() time.Duration {
	if c.ProbeInterval <= 0 {
		return governor.DefaultProbeInterval
	}
	return c.ProbeInterval
}

// openHold is how long an order waits (given back) when it meets the open breaker, for u
// uniform in [0, 1): one to three probe intervals (two on average; the interval the governor
// probes at, taken as at least a second), so that a backlog comes back spread over the probe
// interval, not in waves: when a probe closes the breaker, orders are already arriving at
// backlog / (2 x interval) a second.
func (c Config) openHold(u float64) time.Duration {
	pi := max(c.probeInterval(), time.Second)
	return pi + time.Duration(2*u*float64(pi))
}

// storeRetry is how long an order waits (given back) when the governor's store failed.
const storeRetry = 10 * time.Second

func (c Config) storeRetry() time.Duration { return storeRetry }

// OrderAPI is the orderapi configuration derived from c.
func (c Config) OrderAPI() orderapi.Config {
	return orderapi.Config{BaseURL: c.APIBaseURL, Timeout: c.APITimeout, SecretARN: c.APISecretARN}
}

// LoadConfig reads the configuration through getenv (os.Getenv in the function, a map in the
// local runner), applies defaults and returns every invalid or missing value in one error.
func LoadConfig(getenv func(string) string) (Config, error) {
	var errs []error
	str := func(name, def string, required bool) string {
		v := strings.TrimSpace(getenv(name))
		if v == "" && required {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
		if v == "" {
			return def
		}
		return v
	}
	dur := func(name string, def time.Duration) time.Duration {
		v := str(name, "", false)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive duration such as 10s", name, v))
		}
		return d
	}
	num := func(name string, def float64) float64 {
		v := str(name, "", false)
		if v == "" {
			return def
		}
		f, err := strconv.ParseFloat(v, 64)
		// ParseFloat accepts "Inf" and "NaN": an infinite API_RATE would turn pacing off.
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive number", name, v))
		}
		return f
	}
	count := func(name string, def int) int {
		v := str(name, "", false)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive whole number", name, v))
		}
		return n
	}
	nonNegative := func(name string) time.Duration {
		v := str(name, "", false)
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration >= 0 such as 100ms", name, v))
		}
		return d
	}
	d := DefaultConfig()
	c := Config{
		OrdersQueueURL: str(EnvOrdersQueueURL, "", true),
		DLQURL:         str(EnvDLQURL, "", true),
		APIBaseURL:     str(EnvAPIBaseURL, "", true),
		APISecretARN:   str(EnvAPISecretARN, "", false),
		APITimeout:     dur(EnvAPITimeout, d.APITimeout),
		APIRate:        num(EnvAPIRate, d.APIRate),
		APIInstances:   count(EnvAPIInstances, d.APIInstances),
		MaxAttempts:    count(EnvMaxAttempts, d.MaxAttempts),
		BackoffBase:    dur(EnvBackoffBase, d.BackoffBase),
		BackoffMax:     dur(EnvBackoffMax, d.BackoffMax),
		MaxThrottled:   dur(EnvMaxThrottled, d.MaxThrottled),
		DeliveryTable:  str(EnvDeliveryTable, "", false),
		FunctionName:   str(EnvFunctionName, d.FunctionName, false),
		MinRequest:     d.MinRequest,
		IDField:        str(EnvIDField, d.IDField, false),

		GovernorTable:    str(EnvGovernorTable, "", false),
		ClockSkew:        nonNegative(EnvClockSkew),
		Margin:           nonNegative(EnvMargin),
		BreakerThreshold: count(EnvBreakerThreshold, d.BreakerThreshold),
		ProbeInterval:    dur(EnvProbeInterval, d.ProbeInterval),
		Hold:             dur(EnvHold, d.Hold),
		ThrottleWindow:   dur(EnvThrottleWindow, d.ThrottleWindow),
	}
	if v := str(EnvLogLevel, d.LogLevel.String(), false); c.LogLevel.UnmarshalText([]byte(v)) != nil {
		errs = append(errs, fmt.Errorf("%s=%q: want debug, info, warn or error", EnvLogLevel, v))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("dispatch config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks the relations between values and returns every violation.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.OrdersQueueURL == "" || c.DLQURL == "" {
		bad("%s and %s are required", EnvOrdersQueueURL, EnvDLQURL)
	}
	if err := orderapi.CheckBaseURL(c.APIBaseURL); err != nil {
		bad("%s: %v", EnvAPIBaseURL, err)
	}
	if !(c.APIRate > 0) || math.IsInf(c.APIRate, 0) || c.APIInstances < 1 {
		bad("%s %v and %s %d must be finite and > 0", EnvAPIRate, c.APIRate, EnvAPIInstances, c.APIInstances)
	}
	if c.MaxAttempts < 2 {
		bad("%s %d: want at least 2", EnvMaxAttempts, c.MaxAttempts)
	}
	if c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase || c.BackoffMax > pipeline.MaxVisibility {
		bad("%s %v, %s %v: want 0 < base <= max <= %v", EnvBackoffBase, c.BackoffBase, EnvBackoffMax, c.BackoffMax, pipeline.MaxVisibility)
	}
	if c.MaxThrottled < 0 {
		bad("%s %v: want > 0", EnvMaxThrottled, c.MaxThrottled)
	}
	if c.APITimeout <= 0 || c.MinRequest < 0 {
		bad("%s %v must be > 0", EnvAPITimeout, c.APITimeout)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dispatch config: %w", err)
	}
	return nil
}

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
	"github.com/orderpipe/orderpipe/pkg/orderapi"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// Config is the dispatch function's configuration (docs/CONTRACTS.md "Environment").
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
	// BreakerThreshold is BREAKER_THRESHOLD, default 5: failures in a row that open the breaker.
	BreakerThreshold int
	ProbeInterval    time.Duration // BREAKER_PROBE_INTERVAL, default 30s: one probe per interval while open

	MaxAttempts int           // MAX_ATTEMPTS, default 8: transient budget, by receive count
	BackoffBase time.Duration // BACKOFF_BASE, default 2s
	BackoffMax  time.Duration // BACKOFF_MAX, default 15m

	LogLevel     slog.Level // LOG_LEVEL, default info
	FunctionName string     // AWS_LAMBDA_FUNCTION_NAME, default "dispatch": the EMF Function dimension

	// MinRequest is the least time a request must have once pacing is done; with less left
	// before the deadline the message is given back instead. Not from the environment; default 1s
	// (capped by APITimeout).
	MinRequest time.Duration
}

// PerInstanceRate is the rate this instance paces at, requests/s.
func (c Config) PerInstanceRate() float64 { return c.APIRate / float64(c.APIInstances) }

// Governor is the governor configuration derived from c, at ceiling rate.
func (c Config) Governor(rate float64) governor.Config {
	return governor.Config{Rate: rate, Skew: c.ClockSkew, Margin: c.Margin, FailureThreshold: c.BreakerThreshold, ProbeInterval: c.ProbeInterval}
}

// openHold is how long an order waits (given back) when it meets the open breaker: two probe
// intervals, so a backlog comes back spread out and not all at each probe.
func (c Config) openHold() time.Duration { return 2 * max(c.ProbeInterval, time.Second) }

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
	c := Config{
		OrdersQueueURL: str("ORDERS_QUEUE_URL", "", true),
		DLQURL:         str("ORDERS_DLQ_URL", "", true),
		APIBaseURL:     str("ORDER_API_BASE_URL", "", true),
		APISecretARN:   str("ORDER_API_SECRET_ARN", "", false),
		APITimeout:     dur("ORDER_API_TIMEOUT", orderapi.DefaultTimeout),
		APIRate:        num("API_RATE", 1),
		APIInstances:   count("API_INSTANCES", 2),
		MaxAttempts:    count("MAX_ATTEMPTS", 8),
		BackoffBase:    dur("BACKOFF_BASE", 2*time.Second),
		BackoffMax:     dur("BACKOFF_MAX", 15*time.Minute),
		FunctionName:   str("AWS_LAMBDA_FUNCTION_NAME", "dispatch", false),

		GovernorTable:    str("GOVERNOR_TABLE", "", false),
		ClockSkew:        nonNegative("GOVERNOR_CLOCK_SKEW"),
		Margin:           nonNegative("GOVERNOR_MARGIN"),
		BreakerThreshold: count("BREAKER_THRESHOLD", governor.DefaultFailureThreshold),
		ProbeInterval:    dur("BREAKER_PROBE_INTERVAL", governor.DefaultProbeInterval),
		MinRequest:       time.Second,
	}
	if v := str("LOG_LEVEL", "info", false); c.LogLevel.UnmarshalText([]byte(v)) != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", v))
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
		bad("ORDERS_QUEUE_URL and ORDERS_DLQ_URL are required")
	}
	if err := orderapi.CheckBaseURL(c.APIBaseURL); err != nil {
		bad("ORDER_API_BASE_URL: %v", err)
	}
	if !(c.APIRate > 0) || math.IsInf(c.APIRate, 0) || c.APIInstances < 1 {
		bad("API_RATE %v and API_INSTANCES %d must be finite and > 0", c.APIRate, c.APIInstances)
	}
	if c.MaxAttempts < 2 {
		bad("MAX_ATTEMPTS %d: want at least 2", c.MaxAttempts)
	}
	if c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase || c.BackoffMax > pipeline.MaxVisibility {
		bad("BACKOFF_BASE %v, BACKOFF_MAX %v: want 0 < base <= max <= %v", c.BackoffBase, c.BackoffMax, pipeline.MaxVisibility)
	}
	if c.APITimeout <= 0 || c.MinRequest < 0 {
		bad("ORDER_API_TIMEOUT %v must be > 0", c.APITimeout)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dispatch config: %w", err)
	}
	return nil
}

package apiserver

import (
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RegisterFlags binds every option of c to a flag of fs, named -api-*, with c's current values as
// the defaults. Id lists are comma-separated. Call it on a DefaultConfig before fs.Parse.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.RPS, "api-rps", c.RPS, "stand-in order API: rate limit, requests/s (<= 0: none)")
	fs.IntVar(&c.Burst, "api-burst", c.Burst, "stand-in order API: token bucket size")
	fs.DurationVar(&c.Latency, "api-latency", c.Latency, "stand-in order API: fixed latency")
	fs.DurationVar(&c.Jitter, "api-jitter", c.Jitter, "stand-in order API: extra uniform latency in [0, jitter)")
	fs.Int64Var(&c.Seed, "api-seed", c.Seed, "stand-in order API: seed for fractions and jitter")
	fs.StringVar(&c.Authorization, "api-authorization", c.Authorization, "stand-in order API: required Authorization value (empty: none)")
	fs.Func("api-reject-ids", "stand-in order API: ids always refused with -api-reject-status", idList(&c.RejectIDs))
	fs.Float64Var(&c.RejectFraction, "api-reject-fraction", c.RejectFraction, "stand-in order API: fraction of ids always refused")
	fs.IntVar(&c.RejectStatus, "api-reject-status", c.RejectStatus, "stand-in order API: status of refusals (4xx)")
	fs.Func("api-fail-ids", "stand-in order API: ids answered -api-fail-status the first -api-fail-times times", idList(&c.FailIDs))
	fs.Float64Var(&c.FailFraction, "api-fail-fraction", c.FailFraction, "stand-in order API: fraction of ids that fail first")
	fs.IntVar(&c.FailStatus, "api-fail-status", c.FailStatus, "stand-in order API: status of failures (5xx)")
	fs.Func("api-broken-ids", "stand-in order API: ids answered -api-fail-status on every attempt", idList(&c.BrokenIDs))
	fs.Func("api-reset-ids", "stand-in order API: ids whose connection is reset the first -api-fail-times times", idList(&c.ResetIDs))
	fs.Float64Var(&c.ResetFraction, "api-reset-fraction", c.ResetFraction, "stand-in order API: fraction of ids reset first")
	fs.Func("api-hang-ids", "stand-in order API: ids left without answer for -api-hang-for the first -api-fail-times times", idList(&c.HangIDs))
	fs.Float64Var(&c.HangFraction, "api-hang-fraction", c.HangFraction, "stand-in order API: fraction of ids that hang first")
	fs.DurationVar(&c.HangFor, "api-hang-for", c.HangFor, "stand-in order API: how long a hang lasts")
	fs.BoolVar(&c.CommitBeforeHang, "api-commit-before-hang", c.CommitBeforeHang, "stand-in order API: record a hanging order first (retries become duplicates)")
	fs.IntVar(&c.FailTimes, "api-fail-times", c.FailTimes, "stand-in order API: attempts of a chosen id that fail, reset or hang")
	fs.Func("api-outage", "stand-in order API: scripted outage FROM-TO[:STATUS[:RETRY_AFTER]] after its start, e.g. 10s-40s:503 (STATUS 0: no answer); repeatable", outageFlag(&c.Outages))
	fs.BoolVar(&c.RateLimitHeaders, "api-ratelimit-headers", c.RateLimitHeaders, "stand-in order API: send the IETF RateLimit and RateLimit-Policy fields")
}

// outageFlag parses FROM-TO[:STATUS[:RETRY_AFTER]] (status default 503).
func outageFlag(dst *[]Outage) func(string) error {
	return func(v string) error {
		parts := strings.Split(v, ":")
		from, to, ok := strings.Cut(parts[0], "-")
		o := Outage{Status: http.StatusServiceUnavailable}
		var err1, err2 error
		o.From, err1 = time.ParseDuration(strings.TrimSpace(from))
		o.To, err2 = time.ParseDuration(strings.TrimSpace(to))
		if !ok || err1 != nil || err2 != nil || len(parts) > 3 {
			return fmt.Errorf("outage %q: want FROM-TO[:STATUS[:RETRY_AFTER]], e.g. 10s-40s:503", v)
		}
		if len(parts) > 1 {
			n, err := strconv.Atoi(parts[1])
			if err != nil {
				return fmt.Errorf("outage %q: status %q is not a number", v, parts[1])
			}
			o.Status = n
		}
		if len(parts) > 2 {
			d, err := time.ParseDuration(parts[2])
			if err != nil {
				return fmt.Errorf("outage %q: retry-after %q: %v", v, parts[2], err)
			}
			o.RetryAfter = d
		}
		*dst = append(*dst, o)
		return nil
	}
}

func idList(dst *[]string) func(string) error {
	return func(v string) error {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				*dst = append(*dst, id)
			}
		}
		return nil
	}
}

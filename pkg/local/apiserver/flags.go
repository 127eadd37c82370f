package apiserver

import (
	"flag"
	"strings"
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

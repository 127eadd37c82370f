package orderapi

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimit is what an answer's IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers)
// say: `RateLimit-Policy: "name";q=QUOTA;w=WINDOW_SECONDS` and
// `RateLimit: "name";r=REMAINING;t=RESET_SECONDS`, each possibly a list of policies.
type RateLimit struct {
	// PolicyRate is the strictest policy's quota/window, requests/s; 0 when none was usable.
	PolicyRate float64
	// Remaining and Reset are the r and t of the policy with the fewest requests remaining,
	// valid when HasRemaining.
	Remaining    int
	Reset        time.Duration
	HasRemaining bool
}

// ParseRateLimit reads the RateLimit-Policy and RateLimit fields of h; malformed items are
// ignored.
func ParseRateLimit(h http.Header) RateLimit {
	var rl RateLimit
	for _, item := range listItems(h.Values("RateLimit-Policy")) {
		q, okQ := item["q"]
		w, okW := item["w"]
		if !okQ || !okW || !(q >= 0) || !(w > 0) {
			continue
		}
		if r := q / w; rl.PolicyRate == 0 || r < rl.PolicyRate {
			rl.PolicyRate = r
		}
	}
	for _, item := range listItems(h.Values("RateLimit")) {
		r, okR := item["r"]
		if !okR || !(r >= 0) || r > math.MaxInt32 {
			continue
		}
		if !rl.HasRemaining || int(r) < rl.Remaining {
			t := item["t"]
			rl.Remaining, rl.HasRemaining = int(r), true
			rl.Reset = time.Duration(math.Min(math.Max(t, 0), 86400) * float64(time.Second))
		}
	}
	return rl
}

// listItems splits structured-field list members into their numeric parameters.
func listItems(values []string) []map[string]float64 {
	var items []map[string]float64
	for _, v := range values {
		for member := range strings.SplitSeq(v, ",") {
			params := map[string]float64{}
			parts := strings.Split(member, ";")
			for _, p := range parts[1:] {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if !ok {
					continue
				}
				if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil && !math.IsInf(f, 0) {
					params[strings.TrimSpace(k)] = f
				}
			}
			if len(params) > 0 {
				items = append(items, params)
			}
		}
	}
	return items
}

package orderapi

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		name   string
		policy []string
		limit  []string
		want   RateLimit
	}{
		{"none", nil, nil, RateLimit{}},
		{"one policy", []string{`"default";q=60;w=60`}, []string{`"default";r=0;t=2`}, RateLimit{PolicyRate: 1, Remaining: 0, Reset: 2 * time.Second, HasRemaining: true}},
		{"strictest of a list", []string{`"burst";q=10;w=1, "day";q=86400;w=86400`}, []string{`"burst";r=5;t=1, "day";r=3;t=100`}, RateLimit{PolicyRate: 1, Remaining: 3, Reset: 100 * time.Second, HasRemaining: true}},
		{"malformed ignored", []string{`"x";q=abc;w=1`, `"y";q=5`, `"z";q=5;w=0`}, []string{`"x";t=1`, `garbage`}, RateLimit{}},
		{"negative remaining ignored", nil, []string{`"x";r=-1;t=5`}, RateLimit{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.policy {
				h.Add("RateLimit-Policy", v)
			}
			for _, v := range tt.limit {
				h.Add("RateLimit", v)
			}
			if got := ParseRateLimit(h); got != tt.want {
				t.Errorf("ParseRateLimit = %+v, want %+v", got, tt.want)
			}
		})
	}
}

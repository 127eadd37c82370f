package main

import (
	"context"
	"strings"
	"testing"
)

func TestWire(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"missing configuration", map[string]string{}, "ORDERS_QUEUE_URL is required"},
		{"bad base URL", map[string]string{"ORDERS_QUEUE_URL": "http://q/o", "ORDERS_DLQ_URL": "http://q/d", "ORDER_API_BASE_URL": "nope"}, "ORDER_API_BASE_URL"},
		{"complete", map[string]string{"ORDERS_QUEUE_URL": "http://q/o", "ORDERS_DLQ_URL": "http://q/d", "ORDER_API_BASE_URL": "https://api.example.com",
			"ORDER_API_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x", "AWS_REGION": "us-east-1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"ORDERS_QUEUE_URL", "ORDERS_DLQ_URL", "ORDER_API_BASE_URL", "ORDER_API_SECRET_ARN"} {
				t.Setenv(k, tc.env[k])
			}
			if r, ok := tc.env["AWS_REGION"]; ok {
				t.Setenv("AWS_REGION", r)
			}
			d, err := wire(context.Background())
			if tc.wantErr == "" {
				if err != nil || d == nil {
					t.Errorf("wire = %v, %v; want a dispatcher", d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("wire error = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

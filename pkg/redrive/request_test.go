package redrive_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/redrive"
)

func TestRequestJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    redrive.Request
		wantErr bool
	}{
		{"empty", `{}`, redrive.Request{}, false},
		{"class array", `{"class":["permanent","unknown"],"max":3}`, redrive.Request{Class: redrive.Classes{"permanent", "unknown"}, Max: 3}, false},
		{"class string", `{"class":"permanent, exhausted","dryRun":true}`, redrive.Request{Class: redrive.Classes{"permanent", "exhausted"}, DryRun: true}, false},
		{"class null", `{"class":null,"native":true}`, redrive.Request{Native: true}, false},
		{"source", `{"source":"s3://in/uploads/*"}`, redrive.Request{Source: "s3://in/uploads/*"}, false},
		{"class number", `{"class":5}`, redrive.Request{}, true},
		{"not json", `class=permanent`, redrive.Request{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got redrive.Request
			err := json.Unmarshal([]byte(tt.in), &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("request (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestRequestValidate(t *testing.T) {
	tests := []struct {
		name    string
		req     redrive.Request
		wantErr bool
	}{
		{"zero", redrive.Request{}, false},
		{"every class", redrive.Request{Class: redrive.Classes{"permanent", "exhausted", "undecodable", "unknown"}}, false},
		{"native alone", redrive.Request{Native: true}, false},
		{"unknown class", redrive.Request{Class: redrive.Classes{"transient"}}, true},
		{"negative max", redrive.Request{Max: -1}, true},
		{"native with class", redrive.Request{Native: true, Class: redrive.Classes{"permanent"}}, true},
		{"native with source", redrive.Request{Native: true, Source: "s3://in/a.csv"}, true},
		{"native with max", redrive.Request{Native: true, Max: 1}, true},
		{"native dry run", redrive.Request{Native: true, DryRun: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, redrive.ErrBadRequest) {
				t.Errorf("got %v, want it to wrap ErrBadRequest", err)
			}
		})
	}
}

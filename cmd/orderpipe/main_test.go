package main

import "testing"

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		errPart string
	}{
		{"no command", nil, exitUsage, "missing command"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"dlq without subcommand", []string{"dlq"}, exitUsage, "dlq: missing command"},
		{"unknown flag", []string{"dlq", "ls", "--bogus"}, exitUsage, "flag provided but not defined: -bogus"},
		{"upload without files", []string{"upload", "--bucket", "b"}, exitUsage, "no files"},
		{"upload without bucket", []string{"upload", "testdata/orders.jsonl", "--endpoint", "http://127.0.0.1:1"}, exitUsage, "no bucket"},
		{"purge without yes", []string{"dlq", "purge", "--orders-dlq", "q"}, exitUsage, "add --yes"},
		{"unknown class", []string{"dlq", "ls", "--class", "weird"}, exitUsage, `unknown class "weird"`},
		{"unknown class among several", []string{"dlq", "purge", "--yes", "--class", "permanent,weird"}, exitUsage, `unknown class "weird"`},
		{"bad rate", []string{"status", "--rate", "0"}, exitUsage, "--rate 0"},
		{"show without id", []string{"dlq", "show"}, exitUsage, "want one MESSAGE-ID"},
		{"stray argument", []string{"status", "extra"}, exitUsage, "unexpected arguments extra"},
		{"no queue for ls", []string{"dlq", "ls", "--endpoint", "http://127.0.0.1:1"}, exitUsage, "no orders dead-letter queue"},
		{"help", []string{"--help"}, exitOK, ""},
		{"command help", []string{"status", "-h"}, exitOK, "usage: orderpipe status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			wantCode(t, r, tc.code, tc.errPart)
		})
	}
}

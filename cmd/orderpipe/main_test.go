package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/orderpipe/orderpipe/internal/awstest"
)

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
		{"unknown flag", []string{"dlq", "ls", "--bogus"}, exitUsage, "flag provided but not defined: -bogus\nusage: orderpipe dlq ls [--class C]"},
		{"upload without files", []string{"upload", "--bucket", "b"}, exitUsage, "no files"},
		{"upload without bucket", []string{"upload", "testdata/orders.jsonl", "--endpoint", "http://127.0.0.1:1"}, exitUsage, "no bucket"},
		{"purge without yes", []string{"dlq", "purge", "--orders-dlq", "q"}, exitUsage, "add --yes"},
		{"unknown class", []string{"dlq", "ls", "--class", "weird"}, exitUsage, `unknown class "weird"`},
		{"unknown class among several", []string{"dlq", "purge", "--yes", "--class", "permanent,weird"}, exitUsage, `unknown class "weird"`},
		// An empty filter from an unset shell variable must not widen a purge to the whole DLQ.
		{"purge with an empty class", []string{"dlq", "purge", "--yes", "--class", "", "--orders-dlq", "q"}, exitUsage, "empty class list"},
		{"purge with a blank class list", []string{"dlq", "purge", "--yes", "--class", " , ", "--orders-dlq", "q"}, exitUsage, "empty class list"},
		{"purge with an empty source", []string{"dlq", "purge", "--yes", "--source", "", "--orders-dlq", "q"}, exitUsage, "empty source"},
		{"redrive with an empty class", []string{"dlq", "redrive", "--class", "", "--orders-dlq", "q"}, exitUsage, "empty class list"},
		{"bad rate", []string{"status", "--rate", "0"}, exitUsage, "--rate 0"},
		{"show without id", []string{"dlq", "show"}, exitUsage, "want one MESSAGE-ID or ORDER-ID"},
		{"stray argument", []string{"status", "extra"}, exitUsage, "unexpected arguments extra"},
		{"no queue for ls", []string{"dlq", "ls", "--endpoint", "http://127.0.0.1:1"}, exitUsage, "no orders dead-letter queue"},
		{"one dispatch instance", []string{"local", "--instances", "1"}, exitUsage, "SQS event sources need at least 2"},
		{"no bootstraps", []string{"local", "--bootstraps", "/nonexistent"}, exitUsage, "--bootstraps /nonexistent: no ingest bootstrap (run make build)"},
		{"unreadable template", []string{"local", "--template", "/nonexistent.json"}, exitUsage, "--template: read template"},
		{"demo too small", []string{"demo", "--orders", "3"}, exitUsage, "want at least 4"},
		{"demo with an external API", []string{"demo", "--api", "https://api.example.com"}, exitUsage, "runs its own stand-in order API"},
		{"help", []string{"--help"}, exitOK, ""},
		{"command help", []string{"status", "-h"}, exitOK, "usage: orderpipe status"},
		{"help for a command", []string{"help", "dlq", "ls"}, exitOK, "-scan int"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			wantCode(t, r, tc.code, tc.errPart)
		})
	}
}

// TestBadFlag checks that a bad flag prints the error, the usage line and where the help is:
// three lines, not the whole flag list.
func TestBadFlag(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, "dlq", "purge", "--yse")
	want := "orderpipe: dlq purge: flag provided but not defined: -yse\n" +
		"usage: orderpipe dlq purge [--class C] [--source S] [--scan N] --yes\n" +
		"run 'orderpipe help dlq purge' for every flag\n"
	if r.code != exitUsage || r.stderr != want {
		t.Errorf("got exit %d, stderr\n%s\nwant exit %d, stderr\n%s", r.code, r.stderr, exitUsage, want)
	}
}

// TestRun goes through run, the entry point main uses, with the process environment.
func TestRun(t *testing.T) {
	t.Parallel()
	_, dlq := parkedQueue(t)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"dlq", "ls", "--json", "--class", "exhausted", "--orders-dlq", dlq, "--endpoint", awstest.Endpoint()}, &out, &errb)
	var got []parked
	if err := json.Unmarshal(out.Bytes(), &got); code != exitOK || err != nil || len(got) != 1 || got[0].OrderID != "A2" {
		t.Errorf("got exit %d, %d listed (%v); want 0 and A2; stderr %s", code, len(got), err, errb.String())
	}
}

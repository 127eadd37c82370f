package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// orderIDs returns the sorted order ids of a listing ("" for a message without one).
func orderIDs(list []parked) []string {
	var ids []string
	for _, p := range list {
		ids = append(ids, p.OrderID)
	}
	slices.Sort(ids)
	return ids
}

func TestDLQList(t *testing.T) {
	t.Parallel()
	client, dlq := parkedQueue(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"one class", []string{"--class", "permanent"}, []string{"A1", "B1"}},
		{"two classes: unknown is parked by the redrive policy", []string{"--class", "permanent,unknown"}, []string{"A1", "B1", "C1"}},
		{"source prefix", []string{"--source", "s3://in/uploads/a*"}, []string{"A1", "A2"}},
		{"exact source", []string{"--source", "s3://in/uploads/a", "--class", "permanent"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []parked
			mustJSON(t, standIn(t, append([]string{"dlq", "ls", "--json", "--orders-dlq", dlq}, tc.args...)...), &got)
			if diff := cmp.Diff(tc.want, orderIDs(got)); diff != "" {
				t.Errorf("order ids (-want +got):\n%s", diff)
			}
			wantVisible(t, client, dlq, "5", "after ls")
		})
	}
	t.Run("max", func(t *testing.T) {
		var got []parked
		mustJSON(t, standIn(t, "dlq", "ls", "--json", "--orders-dlq", dlq, "--max", "2"), &got)
		if len(got) != 2 {
			t.Errorf("got %d listed, want 2", len(got))
		}
	})
	t.Run("all, every field", func(t *testing.T) {
		var all []parked
		mustJSON(t, standIn(t, "dlq", "ls", "--json", "--orders-dlq", dlq), &all)
		if diff := cmp.Diff([]string{"", "A1", "A2", "B1", "C1"}, orderIDs(all)); diff != "" {
			t.Fatalf("order ids (-want +got):\n%s", diff)
		}
		i := slices.IndexFunc(all, func(p parked) bool { return p.OrderID == "A2" })
		p := all[i]
		if p.SentAt.IsZero() || p.MessageID == "" {
			t.Errorf("got SentAt %v, message id %q; want both", p.SentAt, p.MessageID)
		}
		p.MessageID, p.SentAt = "", time.Time{}
		want := parked{Entry: redrive.Entry{OrderID: "A2", Class: "exhausted", Detail: "HTTP 503 after 8 attempts", Attempts: 8,
			Source: "s3://in/uploads/a.jsonl", SourceVersion: "null", Line: 5, ParkedAt: "2026-11-20T11:00:00Z"}}
		if diff := cmp.Diff(want, p); diff != "" {
			t.Errorf("parked (-want +got):\n%s", diff)
		}
	})
	t.Run("how many more", func(t *testing.T) {
		r := standIn(t, "dlq", "ls", "--orders-dlq", dlq, "--max", "2")
		if want := "2 listed of 2 scanned; about 5 parked in all (ApproximateNumberOfMessages), 3 more not listed"; r.code != exitOK || !strings.Contains(r.stderr, want) {
			t.Errorf("got exit %d, stderr %q; want it to contain %q", r.code, r.stderr, want)
		}
	})
	t.Run("text", func(t *testing.T) {
		r := standIn(t, "dlq", "ls", "--orders-dlq", dlq, "--class", "permanent")
		if r.code != exitOK {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "MESSAGE ID") || !strings.Contains(r.stdout, "HTTP 422: amount must be positive") {
			t.Errorf("got stdout\n%s\nwant a header and the 2 permanent orders", r.stdout)
		}
	})
	wantVisible(t, client, dlq, "5", "at the end")
}

func TestDLQShow(t *testing.T) {
	t.Parallel()
	client, dlq := parkedQueue(t)
	var list []parked
	mustJSON(t, standIn(t, "dlq", "ls", "--json", "--orders-dlq", dlq, "--class", "permanent", "--source", "s3://in/uploads/b.csv"), &list)
	if len(list) != 1 {
		t.Fatalf("got %d listed, want 1", len(list))
	}
	id := list[0].MessageID

	var got shownMessage
	mustJSON(t, standIn(t, "dlq", "show", id, "--json", "--orders-dlq", dlq), &got)
	if got.MessageID != id || got.Body != `{"id":"B1","amount":"3.00"}` {
		t.Errorf("got message %s body %q; want %s with B1's body", got.MessageID, got.Body, id)
	}
	if got, want := got.Attributes["FailureDetail"], "HTTP 409: conflict"; got != want {
		t.Errorf("got FailureDetail %q, want %q", got, want)
	}
	if got.System["SentTimestamp"] == "" {
		t.Errorf("got no SentTimestamp among system attributes %v", got.System)
	}

	text := standIn(t, "dlq", "show", id, "--orders-dlq", dlq)
	if text.code != exitOK || !strings.Contains(text.stdout, "  OrderId: B1\n") || !strings.HasSuffix(text.stdout, "body:\n{\"id\":\"B1\",\"amount\":\"3.00\"}\n") {
		t.Errorf("got exit %d, stdout\n%s\nwant the attributes and the body", text.code, text.stdout)
	}
	var byOrder shownMessage
	mustJSON(t, standIn(t, "dlq", "show", "B1", "--json", "--orders-dlq", dlq), &byOrder)
	if byOrder.MessageID != id {
		t.Errorf("dlq show B1: got message %s, want %s (order B1)", byOrder.MessageID, id)
	}
	wantCode(t, standIn(t, "dlq", "show", "no-such-id", "--orders-dlq", dlq), exitFailure, "no such message id or order id among the first 1000")
	wantVisible(t, client, dlq, "5", "after show")
}

func TestDLQPurge(t *testing.T) {
	t.Parallel()
	client, dlq := parkedQueue(t)

	var got purgeResult
	mustJSON(t, standIn(t, "dlq", "purge", "--class", "permanent", "--yes", "--json", "--orders-dlq", dlq), &got)
	if got.Deleted != 2 || got.Scanned != 5 || got.Whole {
		t.Errorf("got %+v, want 2 deleted of 5 scanned, not whole", got)
	}
	var left []parked
	mustJSON(t, standIn(t, "dlq", "ls", "--json", "--orders-dlq", dlq), &left)
	if diff := cmp.Diff([]string{"", "A2", "C1"}, orderIDs(left)); diff != "" {
		t.Errorf("left after purging permanent (-want +got):\n%s", diff)
	}

	got = purgeResult{}
	mustJSON(t, standIn(t, "dlq", "purge", "--yes", "--json", "--orders-dlq", dlq), &got)
	if !got.Whole || got.Deleted != 3 {
		t.Errorf("got %+v, want the whole queue of 3 purged", got)
	}
	wantVisible(t, client, dlq, "0", "after purge")
}

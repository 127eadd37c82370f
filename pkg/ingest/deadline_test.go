package ingest_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/clock"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// steppingClock moves a minute forward at every look: an invocation of 10 minutes with the
// default margin of 60s reaches its checkpoint time after nine looks at the clock, whatever the
// speed of the machine.
type steppingClock struct {
	start time.Time
	looks atomic.Int64
}

func (c *steppingClock) Now() time.Time {
	return c.start.Add(time.Duration(c.looks.Add(1)) * time.Minute)
}

func (c *steppingClock) Sleep(ctx context.Context, d time.Duration) error {
	return clock.Sleep(ctx, d)
}

// Files where nothing is returned for a long stretch, gzip-compressed, read with invocations
// whose checkpoint time comes after nine looks at the clock: 32 MiB of newlines between two
// orders, 32 MiB of blank lines before a CSV header, and a line of 32 MiB (too long) between two
// orders, the passes looking at the clock every MiB. The readers yield inside the stretch, so
// that each invocation checkpoints inside it and hands over (the verifying pass and the sending
// pass alike), and the file ends with both orders sent once and the ledger balanced.
func TestIngestAtShortDeadline(t *testing.T) {
	// The passes look at the clock every chunk: 32 of them.
	const stretch, chunk = 32 << 20, 1 << 20
	for _, tt := range []struct {
		name, key           string
		before, body, after string
		wantLines, rejected int64
		wantInLine          bool   // checkpoints inside the stretch say they are inside a line
		refused             string // the file is refused (by the verifying pass alone) for this
	}{
		{"newline bomb", "uploads/bomb.jsonl.gz", `{"id":"a"}` + "\n", strings.Repeat("\n", stretch), `{"id":"b"}` + "\n", 2, 0, false, ""},
		{"blank lines before a csv header", "uploads/blank-head.csv.gz", "", strings.Repeat("\r\n", stretch/2), "id,n\na,1\nb,2\n", 2, 0, false, ""},
		{"huge line", "uploads/huge-line.jsonl.gz", `{"id":"a"}` + "\n", `{"id":"x","pad":"` + strings.Repeat("x", stretch) + `"}` + "\n", `{"id":"b"}` + "\n", 3, 1, true, ""},
		// The reason found by the first invocation, not what the resumed count knows.
		{"huge csv header", "uploads/huge-head.csv.gz", "", "id," + strings.Repeat("h", stretch) + "\n", "a,1\nb,2\n", 2, 0, true, "line longer than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			body := tt.before + tt.body + tt.after
			e.put(t, tt.key, gzipped(t, body, gzip.BestCompression))
			inside := func(o int64) bool { return o > int64(len(tt.before)) && o < int64(len(body)-len(tt.after)) }
			var sendInside, verifyInside int // checkpoints inside the stretch, by pass
			invoke := func(token string) ingest.Outcome {
				t.Helper()
				c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				svc := ingest.New(e.cfg, e.s3, e.sqs, ingest.Options{Clock: &steppingClock{start: time.Now()}})
				ingest.SetChunks(svc, chunk, chunk)
				out, err := svc.Ingest(c, s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: tt.key}, token)
				if err != nil {
					t.Fatalf("Ingest = %v", err)
				}
				return out
			}
			out := invoke("")
			for i := 0; out == ingest.Continued; i++ {
				if i > 30 {
					t.Fatalf("still continuing after %d invocations", i)
				}
				var st ingest.State
				e.get(t, "state/"+tt.key+"@null.json", &st)
				switch {
				case st.VerifiedETag == "" && inside(st.VerifyOffset) && st.VerifyInLine == tt.wantInLine:
					verifyInside++
				case st.VerifiedETag != "" && inside(st.Offset) && st.InLine == tt.wantInLine:
					sendInside++
				}
				out = invoke(takeContinuation(t, e))
			}
			if tt.refused != "" {
				var rep ingest.Report
				if !e.get(t, "reports/"+tt.key+".json", &rep) || !strings.Contains(rep.Refused, tt.refused) || rep.Lines != tt.wantLines || rep.Unread != tt.wantLines || rep.Enqueued != 0 {
					t.Errorf("report refused %q lines %d unread %d enqueued %d; want refused for %q, %d lines unread, none enqueued",
						rep.Refused, rep.Lines, rep.Unread, rep.Enqueued, tt.refused, tt.wantLines)
				}
				if verifyInside < 2 {
					t.Errorf("%d checkpoints of the verifying pass inside the header line, want at least two", verifyInside)
				}
				return
			}
			if verifyInside < 2 || sendInside < 2 {
				t.Errorf("checkpoints inside the stretch (inLine %v): %d of the verifying pass, %d of the sending pass; want at least two each",
					tt.wantInLine, verifyInside, sendInside)
			}
			if got := receiveAllDup(t, e.sqs, e.ordersURL); len(got) != 2 {
				t.Errorf("orders sent %q, want a and b once", got)
			}
			var rep ingest.Report
			if !e.get(t, "reports/"+tt.key+".json", &rep) || rep.Lines != tt.wantLines || rep.Enqueued != 2 || rep.Unread != 0 || rep.Rejected != tt.rejected {
				t.Errorf("report lines %d enqueued %d rejected %d unread %d; want %d, 2, %d, 0", rep.Lines, rep.Enqueued, rep.Rejected, rep.Unread, tt.wantLines, tt.rejected)
			}
		})
	}
}

// takeContinuation receives the one continuation on e's files queue, deletes it and returns its
// token.
func takeContinuation(t *testing.T, e *env) string {
	t.Helper()
	m, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.filesURL, MaxNumberOfMessages: 1, WaitTimeSeconds: 1})
	if err != nil || len(m.Messages) != 1 {
		t.Fatalf("continuation: %d messages, %v; want 1", len(m.Messages), err)
	}
	msg, err := s3event.Decode(aws.ToString(m.Messages[0].Body))
	if err != nil || msg.Continuation == nil {
		t.Fatalf("decode continuation: %v, %+v", err, msg)
	}
	e.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &e.filesURL, ReceiptHandle: m.Messages[0].ReceiptHandle})
	return msg.Continuation.Token
}

// countingClock is the system clock counting its Now calls.
type countingClock struct {
	clock.System
	looks atomic.Int64
}

func (c *countingClock) Now() time.Time {
	c.looks.Add(1)
	return c.System.Now()
}

// The sending pass looks at the clock once per batch it hands to the sender and once per
// ClockLines other lines, not once per line: a file of 3,000 rejected lines and 100 orders
// (ten batches) costs a few dozen looks, the file's own bookkeeping (claim, checkpoint timing,
// report) included, and ends whole.
func TestSendPassLooksAtTheClockPerBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const key, orders, bad = "uploads/clock.jsonl", 100, 3000
	var body strings.Builder
	for i := range orders {
		fmt.Fprintf(&body, `{"id":"o-%d"}`+"\n", i)
		for range bad / orders {
			body.WriteString("not json\n")
		}
	}
	e.put(t, key, []byte(body.String()))
	clk := &countingClock{}
	svc := ingest.New(e.cfg, e.s3, e.sqs, ingest.Options{Clock: clk})
	out, err := svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, "")
	if err != nil || out != ingest.Done {
		t.Fatalf("Ingest = %v, %v; want done", out, err)
	}
	const lines = orders + bad
	// Every batch, every ClockLines lines and at most 16 looks for the file's bookkeeping.
	if most := int64(orders/ingest.MaxBatchEntries + lines/ingest.ClockLines + 16); clk.looks.Load() > most {
		t.Errorf("%d looks at the clock for %d lines (%d batches); want at most %d", clk.looks.Load(), lines, orders/ingest.MaxBatchEntries, most)
	}
	var rep ingest.Report
	if !e.get(t, ingest.ReportKey(key), &rep) || rep.Lines != lines || rep.Enqueued != orders || rep.Rejected != bad {
		t.Errorf("report: lines %d, enqueued %d, rejected %d; want %d, %d, %d", rep.Lines, rep.Enqueued, rep.Rejected, lines, orders, bad)
	}
}

// Many tiny lines with nothing to send between two orders, read by invocations whose checkpoint
// time comes after nine looks at the clock (steppingClock): each invocation checkpoints within
// ten times ClockLines lines, inside the run, and the file ends with both orders sent once and
// every tiny line rejected.
func TestTinyLinesCheckpointInTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const key, bad = "uploads/tiny.jsonl", 5000
	e.put(t, key, []byte(`{"id":"a"}`+"\n"+strings.Repeat("x\n", bad)+`{"id":"b"}`+"\n"))
	invoke := func(token string) ingest.Outcome {
		t.Helper()
		c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		svc := ingest.New(e.cfg, e.s3, e.sqs, ingest.Options{Clock: &steppingClock{start: time.Now()}})
		out, err := svc.Ingest(c, s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, token)
		if err != nil {
			t.Fatalf("Ingest = %v", err)
		}
		return out
	}
	var line int64 // the last checkpoint's line
	checkpoints := 0
	for out := invoke(""); out == ingest.Continued; checkpoints++ {
		if checkpoints > 30 {
			t.Fatalf("still continuing after %d invocations", checkpoints)
		}
		var st ingest.State
		e.get(t, "state/"+key+"@null.json", &st)
		if st.Line <= line || st.Line-line > 10*ingest.ClockLines || st.Line > bad+1 {
			t.Fatalf("checkpoint at line %d after one at line %d; want at most %d lines further, inside the run", st.Line, line, 10*ingest.ClockLines)
		}
		line = st.Line
		out = invoke(takeContinuation(t, e))
	}
	if checkpoints < 2 {
		t.Errorf("%d checkpoints inside the run, want at least two", checkpoints)
	}
	if got := receiveAllDup(t, e.sqs, e.ordersURL); len(got) != 2 {
		t.Errorf("orders sent %q, want a and b once", got)
	}
	var rep ingest.Report
	if !e.get(t, ingest.ReportKey(key), &rep) || rep.Lines != bad+2 || rep.Enqueued != 2 || rep.Rejected != bad || rep.Unread != 0 {
		t.Errorf("report lines %d enqueued %d rejected %d unread %d; want %d, 2, %d, 0", rep.Lines, rep.Enqueued, rep.Rejected, rep.Unread, bad+2, bad)
	}
}

package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// An unversioned object overwritten between its event and the GET: the event's bytes are gone.
// Reading the new bytes under the old event's state would send them twice (once more for their
// own event) and the continuation of that run would land on the new bytes' state.
func TestIngestOverwrittenBeforeRead(t *testing.T) {
	e := newEnv(t)
	const key = "uploads/overwritten-early.jsonl"
	etag := func(body string) string {
		out, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String(key), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Trim(aws.ToString(out.ETag), `"`) // events carry it without quotes
	}
	first := etag(threeOrders)
	second := etag(`{"id":"new-1"}` + "\n" + `{"id":"new-2"}` + "\n")
	rec := func(etag string) s3event.Record {
		return s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key, ETag: etag}
	}
	if got, err := e.svc.Ingest(ctx(t), rec(first), ""); err == nil {
		t.Errorf("Ingest of the overwritten bytes = %v, nil; want an error (the bytes it names are gone)", got)
	}
	if got, err := e.svc.Ingest(ctx(t), rec(second), ""); err != nil || got != ingest.Done {
		t.Fatalf("Ingest of the new bytes = %v, %v; want done", got, err)
	}
	if diff := cmp.Diff([]string{`{"id":"new-1"}`, `{"id":"new-2"}`}, receiveAllDup(t, e.sqs, e.ordersURL)); diff != "" {
		t.Errorf("orders sent, with repeats (-want +got):\n%s", diff)
	}
}

// receiveAllDup is receiveAll keeping repeated bodies.
func receiveAllDup(t *testing.T, c *sqs.Client, url string) []string {
	t.Helper()
	var got []string
	for _, m := range receiveMessages(t, c, url) {
		got = append(got, aws.ToString(m.Body))
	}
	return got
}

// receiveMessages receives and deletes every message of a queue, attributes included.
func receiveMessages(t *testing.T, c *sqs.Client, url string) []sqstypes.Message {
	t.Helper()
	var got []sqstypes.Message
	for empty := 0; empty < 2; {
		out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 600, MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 0 {
			empty++
		}
		var entries []sqstypes.DeleteMessageBatchRequestEntry
		for _, m := range out.Messages {
			got = append(got, m)
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: m.MessageId, ReceiptHandle: m.ReceiptHandle})
		}
		if len(entries) == 0 {
			continue
		}
		del, err := c.DeleteMessageBatch(context.Background(), &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil || len(del.Failed) > 0 {
			t.Fatalf("delete: %v %+v", err, del)
		}
	}
	return got
}

// A continuation must name the state its run checkpointed: for an event without an ETag that
// is `@null`, not `@null-{the GET's ETag}` (a fresh claim that would read from byte 0 again).
func TestIngestContinuationKeepsState(t *testing.T) {
	e := newEnv(t)
	const key = "uploads/continued.jsonl"
	e.put(t, key, []byte(threeOrders))
	cfg := e.cfg
	cfg.CheckpointMargin = time.Hour // past the checkpoint time from the first line on
	svc := ingest.New(cfg, e.s3, e.sqs, ingest.Options{})
	short, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}
	if got, err := svc.Ingest(short, rec, ""); err != nil || got != ingest.Continued {
		t.Fatalf("Ingest = %v, %v; want continued", got, err)
	}
	out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.filesURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("continuations: %d, %v; want 1", len(out.Messages), err)
	}
	resp, err := e.svc.Handle(ctx(t), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "c1", Body: aws.ToString(out.Messages[0].Body)}}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle(continuation) = %v, %v", resp, err)
	}
	if diff := cmp.Diff([]string{`{"id":"a"}`, `{"id":"b"}`, `{"id":"c"}`}, receiveAllDup(t, e.sqs, e.ordersURL), sortStrings); diff != "" {
		t.Errorf("orders sent, with repeats (-want +got):\n%s", diff)
	}
	var st ingest.State
	if !e.get(t, "state/"+key+"@null.json", &st) || st.Status != ingest.StatusDone || st.Enqueued != 3 || st.Continuations != 1 {
		t.Errorf("state @null: status %q enqueued %d continuations %d; want done, 3, 1", st.Status, st.Enqueued, st.Continuations)
	}
}

var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })

// A checkpoint whose state write fails must leave the id set of the saved checkpoint: the retry
// re-reads the lines after it, and an id set ahead of the checkpoint would reject them as
// duplicates of themselves (delivered, yet listed as rejected duplicate ids).
func TestIngestFailedCheckpointKeepsIDSet(t *testing.T) {
	e := newEnv(t)
	const key = "uploads/idset.jsonl"
	e.put(t, key, []byte(threeOrders))
	store := newSpyStore(e.s3)
	var mu sync.Mutex
	states := 0
	store.failPut = func(k string) bool {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(k, "state/") && strings.HasSuffix(k, ".json") {
			states++
			return states == 3 // claim, checkpoint after line 1, then the one after line 2 fails
		}
		return false
	}
	cfg := e.cfg
	cfg.CheckpointEvery = time.Nanosecond // a checkpoint at every look at the clock
	svc := ingest.New(cfg, store, e.sqs, ingest.Options{})
	ingest.SetChunks(svc, 1<<20, 1) // a look after every line (a byte or more read)
	rec := s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}
	if _, err := svc.Ingest(ctx(t), rec, ""); err == nil {
		t.Fatal("first Ingest: no error, want the injected state write failure")
	}
	if got, err := e.svc.Ingest(ctx(t), rec, ""); err != nil || got != ingest.Done {
		t.Fatalf("retry: Ingest = %v, %v; want done", got, err)
	}
	var rep ingest.Report
	e.get(t, "reports/"+key+".json", &rep)
	if rep.Lines != 3 || rep.Enqueued != 3 || rep.Rejected != 0 || len(rep.DuplicateIDs) != 0 {
		t.Errorf("report: lines %d enqueued %d rejected %d duplicates %v; want 3, 3, 0, none", rep.Lines, rep.Enqueued, rep.Rejected, rep.DuplicateIDs)
	}
	if diff := cmp.Diff([]string{`{"id":"a"}`, `{"id":"b"}`, `{"id":"c"}`}, receiveAll(t, e.sqs, e.ordersURL)); diff != "" {
		t.Errorf("orders sent (-want +got):\n%s", diff)
	}
}

// An order whose message would exceed SQS's message size (a CSV row grows when it becomes a
// JSON object; MAX_LINE_BYTES may be up to 1 MiB) is a rejected line, not a batch the queue
// refuses whole: that would fail the file on every retry and never send the lines after it.
func TestIngestOversizeMessageRejected(t *testing.T) {
	e := newEnv(t)
	cfg := e.cfg
	cfg.MaxLineBytes = ingest.MaxMessageBytes
	svc := ingest.New(cfg, e.s3, e.sqs, ingest.Options{})
	const key = "uploads/oversize.jsonl"
	big, _ := json.Marshal(map[string]string{"id": "big", "pad": strings.Repeat("p", ingest.MaxMessageBytes-40)})
	e.put(t, key, []byte(`{"id":"a"}`+"\n"+string(big)+"\n"+`{"id":"c"}`+"\n"))
	if got, err := svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, ""); err != nil || got != ingest.Done {
		t.Fatalf("Ingest = %v, %v; want done", got, err)
	}
	if diff := cmp.Diff([]string{`{"id":"a"}`, `{"id":"c"}`}, receiveAll(t, e.sqs, e.ordersURL)); diff != "" {
		t.Errorf("orders sent (-want +got):\n%s", diff)
	}
	var rep ingest.Report
	e.get(t, "reports/"+key+".json", &rep)
	if rep.Lines != 3 || rep.Enqueued != 2 || rep.Rejected != 1 {
		t.Errorf("report: lines %d enqueued %d rejected %d; want 3, 2, 1", rep.Lines, rep.Enqueued, rep.Rejected)
	}
}

// Entries SQS flags SenderFault although the order is not at fault: a throttle (SQS's, or KMS's
// for an encrypted queue) is retried; a KMS error of the queue fails the send. Neither becomes
// a rejected line: that would drop a valid order.
func TestSenderFaultsNotOfTheEntry(t *testing.T) {
	tests := []struct {
		code        string
		wantErr     error
		wantCalls   int
		wantSent    int64
		wantRefused []string
	}{
		{"KmsThrottled", nil, 2, 3, nil},
		{"RequestThrottled", nil, 2, 3, nil},
		{"KmsAccessDenied", ingest.ErrSendFailed, 1, 2, nil},
		{"InvalidMessageContents", nil, 1, 2, []string{"InvalidMessageContents"}},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			// The first call fails entry "1" with tt.code, SenderFault true; the rest pass.
			f := batchFunc(func(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
				mu.Lock()
				defer mu.Unlock()
				calls++
				out := &sqs.SendMessageBatchOutput{}
				for _, e := range in.Entries {
					if calls == 1 && aws.ToString(e.Id) == "1" {
						out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String(tt.code), SenderFault: true})
						continue
					}
					out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id})
				}
				return out, nil
			})
			var refused []string
			s := ingest.NewSender(context.Background(), f, "http://queue", ingest.SenderOptions{
				Concurrency: 1, Backoff: time.Millisecond, Refused: func(r ingest.Refusal) { refused = append(refused, r.Code) },
			})
			defer s.Close()
			for i := range 3 {
				if err := s.Add(entry(i+1, 10)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Flush(); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Flush = %v, want %v", err, tt.wantErr)
			}
			if calls != tt.wantCalls || s.Sent() != tt.wantSent {
				t.Errorf("calls %d, Sent() %d; want %d, %d", calls, s.Sent(), tt.wantCalls, tt.wantSent)
			}
			if diff := cmp.Diff(tt.wantRefused, refused); diff != "" {
				t.Errorf("refused (-want +got):\n%s", diff)
			}
		})
	}
}

// An event with version id "null" (an object written while the bucket's versioning was
// suspended) names bytes that the next upload overwrites in place: each content is its own file,
// as for an event without a version id; the second upload must not be skipped as done.
func TestIngestSuspendedVersioningNullVersion(t *testing.T) {
	e := newEnv(t)
	const key = "uploads/suspended.jsonl"
	var sent []string
	for _, body := range []string{threeOrders, `{"id":"new-1"}` + "\n"} {
		out, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String(key), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		rec := s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key, VersionID: "null", ETag: strings.Trim(aws.ToString(out.ETag), `"`)}
		if got, err := e.svc.Ingest(ctx(t), rec, ""); err != nil || got != ingest.Done {
			t.Fatalf("Ingest = %v, %v; want done", got, err)
		}
		sent = append(sent, receiveAllDup(t, e.sqs, e.ordersURL)...)
	}
	if diff := cmp.Diff([]string{`{"id":"a"}`, `{"id":"b"}`, `{"id":"c"}`, `{"id":"new-1"}`}, sent, sortStrings); diff != "" {
		t.Errorf("orders sent (-want +got):\n%s", diff)
	}
}

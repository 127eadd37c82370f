package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/syncbuf"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// env is a bucket, an orders queue, a files queue and a Service on them.
type env struct {
	s3                  *s3.Client
	sqs                 *sqs.Client
	bucket              string
	ordersURL, filesURL string
	cfg                 ingest.Config
	svc                 *ingest.Service
}

func newEnv(t testing.TB) *env {
	t.Helper()
	cfg := awstest.Config(t)
	e := &env{sqs: awstest.SQS(cfg), s3: s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = true
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})}
	e.bucket = awstest.NewBucket(t, cfg)
	e.ordersURL, _ = awstest.NewQueue(t, cfg, nil)
	e.filesURL, _ = awstest.NewQueue(t, cfg, nil)
	var err error
	e.cfg, err = ingest.LoadConfig(func(k string) string {
		return map[string]string{"ORDERS_QUEUE_URL": e.ordersURL, "FILES_QUEUE_URL": e.filesURL}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = ingest.New(e.cfg, e.s3, e.sqs, ingest.Options{})
	return e
}

func (e *env) put(t testing.TB, key string, body []byte) string {
	t.Helper()
	out, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return aws.ToString(out.VersionId)
}

func (e *env) putState(t *testing.T, key, version string, st ingest.State) {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, "state/"+key+"@"+version+".json", b)
}

func (e *env) get(t testing.TB, key string, v any) bool {
	t.Helper()
	out, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &e.bucket, Key: &key})
	var nsk *s3types.NoSuchKey
	if errors.As(err, &nsk) {
		return false
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", key, err)
	}
	return true
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return c
}

const threeOrders = `{"id":"a"}` + "\n" + `{"id":"b"}` + "\n" + `{"id":"c"}` + "\n"

func TestIngestClaims(t *testing.T) {
	now := time.Now()
	// The checkpoint after line 2 of threeOrders.
	checkpoint := ingest.State{Status: ingest.StatusRunning, Offset: 22, Line: 2, Lines: 2, Enqueued: 2, Size: 33, StartedAt: now}
	withOwner := func(st ingest.State, owner string, lease time.Time) ingest.State {
		st.Owner, st.LeaseUntil = owner, lease
		return st
	}
	tests := []struct {
		name      string
		state     *ingest.State
		token     string
		want      ingest.Outcome
		wantErr   error
		wantSent  []string // bodies on the orders queue
		wantCount int64    // enqueued in the report
	}{
		{"fresh", nil, "", ingest.Done, nil, []string{`{"id":"a"}`, `{"id":"b"}`, `{"id":"c"}`}, 3},
		{"done", &ingest.State{Status: ingest.StatusDone}, "", ingest.Skipped, nil, nil, 0},
		{"live lease of another", ptr(withOwner(checkpoint, "other", now.Add(time.Hour))), "", 0, ingest.ErrBusy, nil, 0},
		{"live lease handed to this continuation", ptr(withOwner(checkpoint, "tok", now.Add(time.Hour))), "tok", ingest.Done, nil, []string{`{"id":"c"}`}, 3},
		{"live lease, wrong token", ptr(withOwner(checkpoint, "tok", now.Add(time.Hour))), "other", 0, ingest.ErrBusy, nil, 0},
		{"lease run out", ptr(withOwner(checkpoint, "crashed", now.Add(-time.Second))), "", ingest.Done, nil, []string{`{"id":"c"}`}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			const key = "uploads/claims.jsonl"
			e.putWithState(t, key, threeOrders, tt.state)
			got, err := e.svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, tt.token)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Ingest = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantSent, receiveAll(t, e.sqs, e.ordersURL)); diff != "" {
				t.Errorf("orders sent (-want +got):\n%s", diff)
			}
			var rep ingest.Report
			if ok := e.get(t, "reports/"+key+".json", &rep); ok != (tt.want == ingest.Done) {
				t.Fatalf("report written = %v, want %v", ok, tt.want == ingest.Done)
			}
			if tt.want == ingest.Done && (rep.Enqueued != tt.wantCount || rep.Lines != tt.wantCount) {
				t.Errorf("report: enqueued %d lines %d, want %d", rep.Enqueued, rep.Lines, tt.wantCount)
			}
			var st ingest.State
			e.get(t, "state/"+key+"@null.json", &st)
			if tt.want == ingest.Done && st.Status != ingest.StatusDone {
				t.Errorf("state status %q, want done", st.Status)
			}
			if tt.wantErr != nil && (st.Owner != tt.state.Owner || !st.LeaseUntil.Equal(tt.state.LeaseUntil)) {
				t.Errorf("a busy claim was changed: owner %q lease %v", st.Owner, st.LeaseUntil)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// gzipped returns body gzip-compressed at level (gzip.NoCompression stores the bytes as they are).
func gzipped(t testing.TB, body string, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write([]byte(body))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// manyOrders returns n JSON Lines orders.
func manyOrders(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id":"o-%d","amount":"1.00"}`+"\n", i)
	}
	return b.String()
}

// A file that cannot be read whole is refused at once, before any order is sent: its report
// says why and counts the lines it holds (as far as they could be counted) as unread, and it
// is logged at WARN with a metric.
func TestIngestRefusesAndStops(t *testing.T) {
	orders := manyOrders(200)
	gz := gzipped(t, orders, gzip.DefaultCompression)
	badCRC := gzipped(t, orders, gzip.NoCompression)
	at := bytes.LastIndex(badCRC, []byte(`"1.00"`))
	badCRC[at+1] = '9'                                                     // the stored order now says 9.00: the member's CRC-32 no longer matches
	bomb := gzipped(t, strings.Repeat("\n", 16<<20), gzip.BestCompression) // 16 MiB of blank lines in ~16 KiB
	tests := []struct {
		name        string
		key         string
		body        []byte
		crc32       string // a CRC-32 for S3 to hold for the object
		maxFile     int64
		wantRefused string
		wantUnread  int64
		maxContent  int64 // MAX_DECOMPRESSED_BYTES
	}{
		{"too large", "uploads/big.jsonl", []byte(threeOrders), "", 10, "object is 33 bytes, above MAX_FILE_BYTES 10", 0, 0},
		{"unknown extension", "uploads/orders.txt", []byte(threeOrders), "", 0, "unsupported file name", 0, 0},
		{"csv without id column", "uploads/noid.csv", []byte("name,amount\nx,1\n"), "", 0, `bad csv header: no "id" column`, 1, 0},
		{"csv header ID", "uploads/upper.csv", []byte("ID,amount\nA1,1\n\nA2,2\n"), "", 0, `no "id" column`, 2, 0},
		{"csv header space id", "uploads/space.csv", []byte(" id,amount\nA1,1\nA2,2\nA3,3\n"), "", 0, `no "id" column`, 3, 0},
		{"csv two id columns", "uploads/twice.csv", []byte("id,amount,id\nA1,1,A1\n"), "", 0, `duplicate column "id"`, 1, 0},
		{"corrupt gzip", "uploads/bad.jsonl.gz", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xffgarbage"), "", 0, "corrupt gzip stream after 0 lines", 0, 0},
		{"not gzip at all", "uploads/plain.jsonl.gz", []byte(threeOrders), "", 0, "gzip: invalid header", 0, 0},
		{"truncated gzip", "uploads/cut.jsonl.gz", gz[:len(gz)*6/10], "", 0, "gzip stream truncated after", -1, 0},
		{"bad gzip crc", "uploads/crc.jsonl.gz", badCRC, "", 0, "gzip: invalid checksum", 200, 0},
		{"garbage after a gzip member", "uploads/tail.jsonl.gz", append(slices.Clone(gz), "junk that is no gzip member"...), "", 0, "gzip: invalid header", 200, 0},
		{"s3 checksum mismatch", "uploads/s3crc.jsonl", []byte(threeOrders), "AAAAAA==", 0, "does not match its S3 checksum", 3, 0},
		{"gzip bomb", "uploads/bomb.jsonl.gz", bomb, "", 0, "decompressed beyond MAX_DECOMPRESSED_BYTES 100000", 0, 100000},
		{"gzip beyond the limit", "uploads/long.jsonl.gz", gz, "", 0, fmt.Sprintf("decompressed beyond MAX_DECOMPRESSED_BYTES %d", len(orders)-1), 200, int64(len(orders) - 1)},
		{"plain beyond the limit", "uploads/long.jsonl", []byte(threeOrders), "", 0, "decompressed beyond MAX_DECOMPRESSED_BYTES 20", 2, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tt.maxFile > 0 {
				e.cfg.MaxFileBytes = tt.maxFile
			}
			if tt.maxContent > 0 {
				e.cfg.MaxDecompressedBytes = tt.maxContent
			}
			var logs, metrics syncbuf.Buffer
			e.svc = ingest.New(e.cfg, e.s3, e.sqs, ingest.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: &metrics})
			in := &s3.PutObjectInput{Bucket: &e.bucket, Key: &tt.key, Body: bytes.NewReader(tt.body)}
			if tt.crc32 != "" {
				in.ChecksumAlgorithm, in.ChecksumCRC32 = s3types.ChecksumAlgorithmCrc32, &tt.crc32
			}
			if _, err := e.s3.PutObject(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			got, err := e.svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: tt.key}, "")
			if err != nil || got != ingest.Done {
				t.Fatalf("Ingest = %v, %v; want done", got, err)
			}
			var rep ingest.Report
			if !e.get(t, "reports/"+tt.key+".json", &rep) {
				t.Fatalf("no report")
			}
			if !strings.Contains(rep.Refused, tt.wantRefused) || rep.Refused == "" || rep.Stopped != "" {
				t.Errorf("report refused %q stopped %q, want refused %q", rep.Refused, rep.Stopped, tt.wantRefused)
			}
			if n := len(receiveAll(t, e.sqs, e.ordersURL)); n != 0 || rep.Enqueued != 0 || rep.Rejected != 0 {
				t.Errorf("%d orders sent, report enqueued %d rejected %d; want none", n, rep.Enqueued, rep.Rejected)
			}
			if tt.wantUnread >= 0 && rep.Unread != tt.wantUnread {
				t.Errorf("report unread %d, want %d", rep.Unread, tt.wantUnread)
			}
			if tt.wantUnread < 0 && (rep.Unread <= 0 || rep.Unread >= 200) {
				t.Errorf("report unread %d, want the lines before the cut", rep.Unread)
			}
			if rep.Lines != rep.Enqueued+rep.Rejected+rep.Unread {
				t.Errorf("report lines %d != enqueued %d + rejected %d + unread %d", rep.Lines, rep.Enqueued, rep.Rejected, rep.Unread)
			}
			wantMetric := fmt.Sprintf(`"FilesRefused":1,"FilesStopped":0,"FilesWaiting":0,"Function":"ingest","LinesUnread":%d`, rep.Unread)
			if got := metrics.String(); !strings.Contains(got, wantMetric) || !strings.Contains(got, `"Dimensions":[["Function"]]`) {
				t.Errorf("metrics %q, want %s with the dimension Function", got, wantMetric)
			}
			// The stack's log metric filters count these lines (infra, Monitoring).
			want := fmt.Sprintf("level=WARN msg=%q", ingest.LogFileRefused)
			if got := logs.String(); !strings.Contains(got, want) || !strings.Contains(got, "key="+tt.key) {
				t.Errorf("logs %q: want a line with %s and key=%s", got, want, tt.key)
			}
		})
	}
}

// A gzip file whose content is exactly MAX_DECOMPRESSED_BYTES long is delivered whole, counted
// in chunks smaller than the file like a long file is.
func TestIngestWithinDecompressedLimit(t *testing.T) {
	e := newEnv(t)
	orders := manyOrders(200)
	e.cfg.MaxDecompressedBytes = int64(len(orders))
	e.svc = ingest.New(e.cfg, e.s3, e.sqs, ingest.Options{})
	ingest.SetChunks(e.svc, 1000, 1000)
	const key = "uploads/within.jsonl.gz"
	e.put(t, key, gzipped(t, orders, gzip.DefaultCompression))
	got, err := e.svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, "")
	if err != nil || got != ingest.Done {
		t.Fatalf("Ingest = %v, %v; want done", got, err)
	}
	var rep ingest.Report
	if !e.get(t, "reports/"+key+".json", &rep) {
		t.Fatal("no report")
	}
	if n := len(receiveAll(t, e.sqs, e.ordersURL)); n != 200 || rep.Enqueued != 200 || rep.Refused != "" || rep.Unread != 0 {
		t.Errorf("%d orders sent, report enqueued %d refused %q unread %d; want 200 sent, none refused", n, rep.Enqueued, rep.Refused, rep.Unread)
	}
}

func TestIngestMissingObject(t *testing.T) {
	e := newEnv(t)
	const key = "uploads/missing.jsonl"
	_, err := e.svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, "")
	if !errors.Is(err, ingest.ErrObjectMissing) {
		t.Fatalf("Ingest = %v, want an error wrapping ErrObjectMissing", err)
	}
	var st ingest.State
	if !e.get(t, "state/"+key+"@null.json", &st) {
		t.Fatal("no state object")
	}
	if st.Status != ingest.StatusRunning || !st.LeaseUntil.IsZero() {
		t.Errorf("state %+v: want running with the claim released (zero lease)", st)
	}
	// Once the object exists, the retry takes the released claim over at once.
	e.put(t, key, []byte(threeOrders))
	if got, err := e.svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, ""); err != nil || got != ingest.Done {
		t.Fatalf("retry: Ingest = %v, %v; want done", got, err)
	}
}

func TestIngestPinsVersion(t *testing.T) {
	e := newEnv(t)
	if _, err := e.s3.PutBucketVersioning(context.Background(), &s3.PutBucketVersioningInput{
		Bucket: &e.bucket, VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	}); err != nil {
		t.Fatal(err)
	}
	const key = "uploads/versioned.jsonl"
	v1 := e.put(t, key, []byte(threeOrders))
	v2 := e.put(t, key, []byte(`{"id":"z"}`+"\n"))
	if v1 == "" {
		t.Fatal("no version id")
	}
	ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: s3Event(e.bucket, key, v1)}}}
	resp, err := e.svc.Handle(ctx(t), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %v, %v", resp, err)
	}
	out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.ordersURL, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 3 {
		t.Fatalf("got %d orders, want the 3 of version %s", len(out.Messages), v1)
	}
	for _, m := range out.Messages {
		if got := aws.ToString(m.MessageAttributes["SourceVersion"].StringValue); got != v1 {
			t.Errorf("SourceVersion = %q, want %q", got, v1)
		}
	}
	var st ingest.State
	if !e.get(t, "state/"+key+"@"+v1+".json", &st) || st.Status != ingest.StatusDone {
		t.Errorf("state of version %s: %+v, want done", v1, st)
	}

	// The second version: the current key's report becomes its, each version keeps its own.
	ev = events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m2", Body: s3Event(e.bucket, key, v2)}}}
	if resp, err := e.svc.Handle(ctx(t), ev); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle version %s = %v, %v", v2, resp, err)
	}
	for _, tc := range []struct {
		report  string
		version string
		lines   int64
	}{
		{"reports/" + key + ".json", v2, 1},
		{"reports/" + key + ".json@" + v1, v1, 3},
		{"reports/" + key + ".json@" + v2, v2, 1},
	} {
		var rep ingest.Report
		if !e.get(t, tc.report, &rep) || rep.Version != tc.version || rep.Lines != tc.lines {
			t.Errorf("%s: got version %q, %d lines; want %q, %d", tc.report, rep.Version, rep.Lines, tc.version, tc.lines)
		}
	}
}

// s3Event is the body of a raw-delivered S3 notification of one object version.
func s3Event(bucket, key, version string) string {
	b, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
		"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": "2026-01-01T00:00:00.000",
		"s3": map[string]any{"bucket": map[string]any{"name": bucket}, "object": map[string]any{"key": strings.ReplaceAll(key, "/", "%2F"), "versionId": version}},
	}}})
	return string(b)
}

func TestIngestManyDuplicates(t *testing.T) {
	e := newEnv(t)
	const key = "uploads/dups.jsonl"
	const n = ingest.MaxListedDuplicates + 5
	e.put(t, key, bytes.Repeat([]byte(`{"id":"same"}`+"\n"), n+1))
	if got, err := e.svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, ""); err != nil || got != ingest.Done {
		t.Fatalf("Ingest = %v, %v; want done", got, err)
	}
	var rep ingest.Report
	if !e.get(t, "reports/"+key+".json", &rep) {
		t.Fatal("no report")
	}
	if rep.Enqueued != 1 || rep.Rejected != n || len(rep.DuplicateIDs) != ingest.MaxListedDuplicates || !rep.DuplicateIDsTruncated {
		t.Errorf("report: enqueued %d rejected %d, %d duplicate ids listed, truncated %v; want 1, %d, %d, true",
			rep.Enqueued, rep.Rejected, len(rep.DuplicateIDs), rep.DuplicateIDsTruncated, n, ingest.MaxListedDuplicates)
	}
	if got := receiveAll(t, e.sqs, e.ordersURL); len(got) != 1 {
		t.Errorf("got %d orders, want 1", len(got))
	}
}

// refusingQueue is the real SQS client with the entries failing() refuses taken out.
type refusingQueue struct {
	*sqs.Client
	batch batchFunc
}

func (q refusingQueue) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return q.batch(ctx, in, o...)
}

func TestIngestQueueRefusal(t *testing.T) {
	e := newEnv(t)
	calls := 0
	// The queue refuses the second entry of the first batch (line 2) for a fault of its own.
	q := refusingQueue{Client: e.sqs, batch: failing(e.sqs, nil, map[int][]string{0: {"1"}}, &calls)}
	svc := ingest.New(e.cfg, e.s3, q, ingest.Options{})
	const key = "uploads/refused.jsonl"
	e.put(t, key, []byte(threeOrders))
	if got, err := svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, ""); err != nil || got != ingest.Done {
		t.Fatalf("Ingest = %v, %v; want done", got, err)
	}
	if diff := cmp.Diff([]string{`{"id":"a"}`, `{"id":"c"}`}, receiveAll(t, e.sqs, e.ordersURL)); diff != "" {
		t.Errorf("orders sent (-want +got):\n%s", diff)
	}
	out, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &e.bucket, Key: aws.String("rejects/" + key + ".jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	var rej ingest.Reject
	if err := json.Unmarshal(b, &rej); err != nil {
		t.Fatalf("rejects %q: %v", b, err)
	}
	if want := (ingest.Reject{Line: 2, Reason: "refused by the queue: InvalidMessageContents", Raw: `{"id":"b"}`}); rej != want {
		t.Errorf("reject = %+v, want %+v", rej, want)
	}
	var rep ingest.Report
	e.get(t, "reports/"+key+".json", &rep)
	if rep.Lines != 3 || rep.Enqueued != 2 || rep.Rejected != 1 {
		t.Errorf("report: lines %d enqueued %d rejected %d, want 3, 2, 1", rep.Lines, rep.Enqueued, rep.Rejected)
	}
}

// A failed message is logged once, on the Logger of the Options, with the stable keys.
func TestHandleLogsFailureOnItsLogger(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	svc := ingest.New(e.cfg, e.s3, e.sqs, ingest.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	const key = "uploads/never-uploaded.jsonl"
	ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: s3Event(e.bucket, key, "")}}}
	if resp, err := svc.Handle(ctx(t), ev); err != nil || len(resp.BatchItemFailures) != 1 {
		t.Fatalf("Handle = %+v, %v; want m1 failed", resp, err)
	}
	var got []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == "ingest message failed" {
			got = append(got, rec)
		}
	}
	if len(got) != 1 {
		t.Fatalf("got %d failure records in %q, want 1", len(got), logs.String())
	}
	rec := got[0]
	if msg, _ := rec["error"].(string); rec["messageID"] != "m1" || rec["key"] != key || !strings.Contains(msg, "object not found") {
		t.Errorf("failure record %v: want messageID m1, key %s and the error under \"error\"", rec, key)
	}
}

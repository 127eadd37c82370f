package test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/clock"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/order"
)

// ingestEnv is one isolated pipeline front: bucket -> SNS topic -> files queue (raw delivery),
// an orders queue and an ingest Service wired to them.
type ingestEnv struct {
	s3        *s3.Client
	sqs       *sqs.Client
	bucket    string
	filesURL  string
	ordersURL string
	cfg       ingest.Config
	svc       *ingest.Service
}

func newIngestEnv(t *testing.T) *ingestEnv {
	t.Helper()
	ctx := context.Background()
	cfg := awstest.Config(t)
	e := &ingestEnv{sqs: awstest.SQS(cfg), s3: s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = true
		// moto sends no checksums: do not ask for them (and log that they are missing).
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})}
	e.bucket = awstest.NewBucket(t, cfg)
	var filesARN string
	e.filesURL, filesARN = awstest.NewQueue(t, cfg, map[string]string{"VisibilityTimeout": "60"})
	e.ordersURL, _ = awstest.NewQueue(t, cfg, nil)
	snsc := awstest.SNS(cfg)
	topic, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(awstest.Name(t, "t"))})
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	if _, err := snsc.Subscribe(ctx, &sns.SubscribeInput{
		TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: &filesARN,
		Attributes: map[string]string{"RawMessageDelivery": "true"},
	}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if _, err := e.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: &e.bucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{TopicConfigurations: []s3types.TopicConfiguration{{
			TopicArn: topic.TopicArn,
			Events:   []s3types.Event{"s3:ObjectCreated:*"},
			Filter:   prefixFilter("uploads/"),
		}}},
	}); err != nil {
		t.Fatalf("put bucket notification: %v", err)
	}
	e.cfg = ingest.DefaultConfig()
	e.cfg.OrdersQueueURL, e.cfg.FilesQueueURL = e.ordersURL, e.filesURL
	e.newService(ingest.Options{})
	return e
}

func (e *ingestEnv) newService(opts ingest.Options) {
	e.svc = ingest.New(e.cfg, e.s3, e.sqs, opts)
}

func (e *ingestEnv) upload(t *testing.T, key string, body []byte) {
	t.Helper()
	if _, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("upload %s: %v", key, err)
	}
}

// until is the deadline of a wait of d for the stand-in, stretched by how slow it answers now
// (awstest.Scale).
func (e *ingestEnv) until(t *testing.T, d time.Duration) time.Time {
	t.Helper()
	return time.Now().Add(awstest.Scale(t, e.sqs, d))
}

// receive returns the next messages on the files queue as the Lambda event source would pass
// them, waiting up to wait (scaled, see until) for the first.
func (e *ingestEnv) receive(t *testing.T, wait time.Duration) []events.SQSMessage {
	t.Helper()
	return e.receiveBy(t, e.until(t, wait))
}

// receiveBy is receive until deadline; it makes at least one receive call.
func (e *ingestEnv) receiveBy(t *testing.T, deadline time.Time) []events.SQSMessage {
	t.Helper()
	var msgs []events.SQSMessage
	for first := true; first || len(msgs) == 0 && time.Now().Before(deadline); first = false {
		out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: &e.filesURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			t.Fatalf("receive files queue: %v", err)
		}
		for _, m := range out.Messages {
			msgs = append(msgs, events.SQSMessage{
				MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
				Body: aws.ToString(m.Body), Md5OfBody: aws.ToString(m.MD5OfBody), Attributes: m.Attributes,
				EventSource: "aws:sqs", AWSRegion: awstest.Region,
			})
		}
	}
	return msgs
}

// handle calls the handler with msgs as one event and deletes the messages it did not report
// as failed, as the event source mapping does.
func (e *ingestEnv) handle(t *testing.T, ctx context.Context, msgs []events.SQSMessage) events.SQSEventResponse {
	t.Helper()
	resp, err := e.svc.Handle(ctx, events.SQSEvent{Records: msgs})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, m := range msgs {
		if !failed[m.MessageId] {
			if _, err := e.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &e.filesURL, ReceiptHandle: &m.ReceiptHandle}); err != nil {
				t.Fatalf("delete files message: %v", err)
			}
		}
	}
	return resp
}

// drain handles files-queue messages until none is left (continuations included) and returns
// the number of handler calls; every call must succeed. ctxFor gives each call's context.
// It waits for the first message (scaled); after a call, what the call put on the files queue
// (a continuation, sent without delay) is there when it returns: drain ends when the queue has
// nothing for drainIdle, not scaled, as it is a wait for nothing more.
func (e *ingestEnv) drain(t *testing.T, ctxFor func() (context.Context, context.CancelFunc)) int {
	t.Helper()
	calls := 0
	for msgs := e.receive(t, 10*time.Second); ; msgs = e.receiveBy(t, time.Now().Add(drainIdle)) {
		if len(msgs) == 0 {
			return calls
		}
		ctx, cancel := ctxFor()
		resp := e.handle(t, ctx, msgs)
		cancel()
		calls++
		if len(resp.BatchItemFailures) > 0 {
			t.Fatalf("Handle call %d: failures %v", calls, resp.BatchItemFailures)
		}
		if calls > 200 {
			t.Fatalf("files queue never drained")
		}
	}
}

// drainIdle is how long drain waits for the files queue's next message after a handler call.
const drainIdle = 2 * time.Second

func background() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Minute)
}

// orderMsg is an order message as received from the orders queue.
type orderMsg struct {
	ID, Source, Version string
	Line                int64
	Body                string
}

// orders receives and deletes every message on the orders queue, sorted by line.
func (e *ingestEnv) orders(t *testing.T) []orderMsg {
	t.Helper()
	ctx := context.Background()
	var got []orderMsg
	for empty := 0; empty < 2; {
		out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &e.ordersURL, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}, VisibilityTimeout: 600,
		})
		if err != nil {
			t.Fatalf("receive orders: %v", err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		var del []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range out.Messages {
			a := m.MessageAttributes
			line, err := strconv.ParseInt(aws.ToString(a[order.AttrLine].StringValue), 10, 64)
			if err != nil || aws.ToString(a[order.AttrLine].DataType) != "Number" {
				t.Errorf("message %s: Line attribute %+v", aws.ToString(m.MessageId), a[order.AttrLine])
			}
			got = append(got, orderMsg{
				ID: aws.ToString(a[order.AttrOrderID].StringValue), Source: aws.ToString(a[order.AttrSource].StringValue),
				Version: aws.ToString(a[order.AttrSourceVersion].StringValue), Line: line, Body: aws.ToString(m.Body),
			})
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if _, err := e.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &e.ordersURL, Entries: del}); err != nil {
			t.Fatalf("delete orders: %v", err)
		}
	}
	slices.SortFunc(got, func(a, b orderMsg) int { return int(a.Line - b.Line) })
	return got
}

func (e *ingestEnv) object(t *testing.T, key string) ([]byte, bool) {
	t.Helper()
	out, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &e.bucket, Key: &key})
	var nsk *s3types.NoSuchKey
	if errors.As(err, &nsk) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b, true
}

// claimed reports whether any version of key has a state object (a claim).
func (e *ingestEnv) claimed(t *testing.T, key string) bool {
	t.Helper()
	out, err := e.s3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &e.bucket, Prefix: aws.String("state/" + key + "@")})
	if err != nil {
		t.Fatalf("list state of %s: %v", key, err)
	}
	return len(out.Contents) > 0
}

func (e *ingestEnv) report(t *testing.T, key string) ingest.Report {
	t.Helper()
	b, ok := e.object(t, "reports/"+key+".json")
	if !ok {
		t.Fatalf("no report for %s", key)
	}
	var r ingest.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("decode report: %v", err)
	}
	return r
}

func (e *ingestEnv) rejects(t *testing.T, key string) []ingest.Reject {
	t.Helper()
	b, ok := e.object(t, "rejects/"+key+".jsonl")
	if !ok {
		return nil
	}
	var rs []ingest.Reject
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var r ingest.Reject
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("rejects line %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	return rs
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ingest", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// jsonl returns n orders id-1..id-n, one a line.
func jsonl(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "{\"id\":\"id-%d\",\"amount\":\"%d.00\"}\n", i, i)
	}
	return b.Bytes()
}

// want is the expected outcome of one file: the orders (by line: id and body) and rejects.
type want struct {
	orders  map[int64][2]string // line -> id, body
	rejects []ingest.Reject     // compared on line and reason; raw when set
	dups    []string
}

func check(t *testing.T, e *ingestEnv, key string, w want) {
	t.Helper()
	got := e.orders(t)
	if len(got) != len(w.orders) {
		t.Errorf("orders: got %d, want %d", len(got), len(w.orders))
	}
	for _, m := range got {
		wo, ok := w.orders[m.Line]
		if !ok {
			t.Errorf("unexpected order on line %d: %+v", m.Line, m)
			continue
		}
		if m.ID != wo[0] || m.Body != wo[1] {
			t.Errorf("line %d: got id %q body %s, want id %q body %s", m.Line, m.ID, m.Body, wo[0], wo[1])
		}
		if m.Source != "s3://"+e.bucket+"/"+key || m.Version != order.NullVersion {
			t.Errorf("line %d: got source %q version %q, want s3://%s/%s version null", m.Line, m.Source, m.Version, e.bucket, key)
		}
	}
	rejects := e.rejects(t, key)
	var gotR []ingest.Reject
	for i, r := range rejects {
		gotR = append(gotR, ingest.Reject{Line: r.Line, Reason: r.Reason})
		if i < len(w.rejects) && w.rejects[i].Raw != "" {
			gotR[i].Raw = r.Raw
		}
	}
	if diff := cmp.Diff(w.rejects, gotR); diff != "" {
		t.Errorf("rejects mismatch (-want +got):\n%s", diff)
	}
	rep := e.report(t, key)
	if rep.Enqueued != int64(len(w.orders)) || rep.Rejected != int64(len(w.rejects)) || rep.Lines != rep.Enqueued+rep.Rejected {
		t.Errorf("report counts: got lines %d enqueued %d rejected %d, want enqueued %d rejected %d", rep.Lines, rep.Enqueued, rep.Rejected, len(w.orders), len(w.rejects))
	}
	if w.dups == nil {
		w.dups = []string{}
	}
	if diff := cmp.Diff(w.dups, rep.DuplicateIDs); diff != "" {
		t.Errorf("report duplicateIds (-want +got):\n%s", diff)
	}
	if rep.Bucket != e.bucket || rep.Key != key || rep.Version != order.NullVersion || rep.DuplicateCheck != "complete" {
		t.Errorf("report = %+v, want bucket %s key %s version null, complete duplicate check", rep, e.bucket, key)
	}
}

func TestIngestFiles(t *testing.T) {
	long := append(append([]byte(`{"id":"big-1","pad":"`), bytes.Repeat([]byte("x"), 300<<10)...), "\"}\n"...)
	tests := []struct {
		name string
		key  string
		body []byte
		want want
	}{
		{"empty file", "uploads/empty.jsonl", nil, want{}},
		{"mixed jsonl", "uploads/mixed.jsonl", fixture(t, "mixed.jsonl"), want{
			orders: map[int64][2]string{
				1: {"a-1", `{"id":"a-1","amount":"10.00"}`},
				2: {"a-2", `{"id":"a-2","amount":12.50,"note":"café"}`},
				9: {"a-3", `{"id":"a-3","nested":{"id":"x"}}`},
			},
			rejects: []ingest.Reject{
				{Line: 4, Reason: order.ReasonInvalidJSON, Raw: "not json"},
				{Line: 5, Reason: order.ReasonMissingID},
				{Line: 6, Reason: ingest.ReasonDuplicateID, Raw: `{"id":"a-1","amount":"dup"}`},
				{Line: 7, Reason: order.ReasonInvalidID},
				{Line: 8, Reason: order.ReasonNotObject},
				{Line: 10, Reason: ingest.ReasonDuplicateID},
			},
			dups: []string{"a-1", "a-1"},
		}},
		{"bom and crlf", "uploads/bom-crlf.jsonl", fixture(t, "bom-crlf.jsonl"), want{orders: map[int64][2]string{
			1: {"c-1", `{"id":"c-1"}`}, 2: {"c-2", `{"id":"c-2"}`}, 4: {"c-3", `{"id":"c-3"}`},
		}}},
		{"non utf-8", "uploads/non-utf8.jsonl", fixture(t, "non-utf8.jsonl"), want{
			orders:  map[int64][2]string{1: {"u-1", `{"id":"u-1"}`}, 3: {"u-3", `{"id":"u-3"}`}},
			rejects: []ingest.Reject{{Line: 2, Reason: order.ReasonInvalidUTF8, Raw: "{\"id\":\"u-2\",\"name\":\"\ufffd\ufffd bad\"}"}},
		}},
		{"csv", "uploads/orders.csv", fixture(t, "orders.csv"), want{
			orders: map[int64][2]string{
				2: {"o-1", `{"id":"o-1","amount":"1.00","note":"plain"}`},
				3: {"o-2", `{"id":"o-2","amount":"2,50","note":"say \"hi\""}`},
				6: {"o-4", `{"id":"o-4","amount":"4.00","note":"été"}`},
			},
			rejects: []ingest.Reject{{Line: 4, Reason: order.ReasonFieldCount}, {Line: 5, Reason: order.ReasonMissingID}},
		}},
		{"gzip csv", "uploads/orders.csv.gz", gzipped(t, fixture(t, "orders.csv")), want{
			orders: map[int64][2]string{
				2: {"o-1", `{"id":"o-1","amount":"1.00","note":"plain"}`},
				3: {"o-2", `{"id":"o-2","amount":"2,50","note":"say \"hi\""}`},
				6: {"o-4", `{"id":"o-4","amount":"4.00","note":"été"}`},
			},
			rejects: []ingest.Reject{{Line: 4, Reason: order.ReasonFieldCount}, {Line: 5, Reason: order.ReasonMissingID}},
		}},
		{"300 KiB line", "uploads/long.jsonl", append(append([]byte(`{"id":"s-1"}`+"\n"), long...), `{"id":"s-3"}`+"\n"...), want{
			orders:  map[int64][2]string{1: {"s-1", `{"id":"s-1"}`}, 3: {"s-3", `{"id":"s-3"}`}},
			rejects: []ingest.Reject{{Line: 2, Reason: fmt.Sprintf("line longer than %d bytes", ingest.DefaultMaxLineBytes)}},
		}},
		{"key with spaces and unicode", "uploads/2026 Q1/ordres été 😀 a+b.jsonl", []byte(`{"id":"k-1"}` + "\n"), want{
			orders: map[int64][2]string{1: {"k-1", `{"id":"k-1"}`}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newIngestEnv(t)
			e.upload(t, tt.key, tt.body)
			e.drain(t, background)
			check(t, e, tt.key, tt.want)
		})
	}
}

// stepClock is a clock that moves step forward at every reading, so that the ingest loop (one
// reading a line) reaches its checkpoint time after a known number of lines, without sleeping.
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

// Sleep is the real sleep: only the send retries' backoff sleeps.
func (c *stepClock) Sleep(ctx context.Context, d time.Duration) error { return clock.Sleep(ctx, d) }

// generated returns a file of n lines in format ext ("jsonl" or "csv") where every 17th line
// is malformed and every 13th repeats the id of the line 10 before, with what ingest must make
// of it.
func generated(ext string, n int) ([]byte, want) {
	var b bytes.Buffer
	w := want{orders: map[int64][2]string{}}
	first := int64(1)
	if ext == "csv" {
		b.WriteString("id,amount\r\n")
		first = 2
	}
	ids := map[int]string{}
	for i := 1; i <= n; i++ {
		line := first + int64(i) - 1
		id := fmt.Sprintf("id-%d", i)
		switch {
		case i%17 == 0:
			if ext == "csv" {
				b.WriteString("only-one-field\r\n")
				w.rejects = append(w.rejects, ingest.Reject{Line: line, Reason: order.ReasonFieldCount})
			} else {
				b.WriteString("{not json\n")
				w.rejects = append(w.rejects, ingest.Reject{Line: line, Reason: order.ReasonInvalidJSON})
			}
			continue
		case i%13 == 0 && ids[i-10] != "":
			id = ids[i-10]
			w.rejects = append(w.rejects, ingest.Reject{Line: line, Reason: ingest.ReasonDuplicateID})
			w.dups = append(w.dups, id)
		default:
			ids[i] = id
		}
		amount := fmt.Sprintf("%d.%02d", i, i%100)
		var body string
		if ext == "csv" {
			fmt.Fprintf(&b, "%s,%s\r\n", id, amount)
			body = fmt.Sprintf(`{"id":%q,"amount":%q}`, id, amount)
		} else {
			body = fmt.Sprintf(`{"id":%q,"amount":%s}`, id, amount)
			b.WriteString(body + "\n")
		}
		if ids[i] != "" {
			w.orders[line] = [2]string{id, body}
		}
	}
	return b.Bytes(), w
}

func TestIngestCheckpoints(t *testing.T) {
	// The sending pass looks at the clock once per batch of 10 orders: 400 lines take several
	// invocations.
	csv, csvWant := generated("csv", 400)
	js, jsWant := generated("jsonl", 400)
	tests := []struct {
		name string
		key  string
		body []byte
		want want
	}{
		{"jsonl", "uploads/cp.jsonl", js, jsWant},
		{"csv", "uploads/cp.csv", csv, csvWant},
		{"gzip csv", "uploads/cp.csv.gz", gzipped(t, csv), csvWant},
		{"gzip jsonl", "uploads/cp.ndjson.gz", gzipped(t, js), jsWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newIngestEnv(t)
			// Each invocation gets a deadline 30 min ahead and must stop 30 min - 10 s before
			// it: after about 10 clock readings, so after a few batches. Periodic saves every 7.
			e.cfg.CheckpointMargin = 30*time.Minute - 10*time.Second
			e.cfg.CheckpointEvery = 7 * time.Second
			steps := &stepClock{t: time.Now(), step: time.Second}
			e.newService(ingest.Options{Clock: steps})
			e.upload(t, tt.key, tt.body)
			calls := e.drain(t, func() (context.Context, context.CancelFunc) {
				return context.WithDeadline(context.Background(), steps.Now().Add(30*time.Minute))
			})
			check(t, e, tt.key, tt.want)
			rep := e.report(t, tt.key)
			if rep.Continuations < 2 || calls < rep.Continuations+1 {
				t.Errorf("got %d continuations in %d handler calls, want at least 2 continuations", rep.Continuations, calls)
			}
			for _, k := range []string{"state/" + tt.key + "@null.ids", "state/" + tt.key + "@null.rejects-0.jsonl"} {
				if _, ok := e.object(t, k); ok {
					t.Errorf("checkpoint object %s left behind", k)
				}
			}
		})
	}
}

func TestIngestDuplicateEvent(t *testing.T) {
	e := newIngestEnv(t)
	const key = "uploads/dup-event.jsonl"
	e.upload(t, key, jsonl(25))
	var msgs []events.SQSMessage
	for _, m := range e.receive(t, 10*time.Second) {
		if !strings.Contains(m.Body, "TestEvent") {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) != 1 {
		t.Fatalf("got %d notifications, want 1", len(msgs))
	}
	// The same notification delivered twice in one batch, then once more in another.
	twice := []events.SQSMessage{msgs[0], msgs[0]}
	twice[1].MessageId += "-again"
	for i, batch := range [][]events.SQSMessage{twice, msgs} {
		ctx, cancel := background()
		resp, err := e.svc.Handle(ctx, events.SQSEvent{Records: batch})
		cancel()
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("Handle %d: %v, failures %v", i, err, resp.BatchItemFailures)
		}
	}
	w := want{orders: map[int64][2]string{}}
	for i := 1; i <= 25; i++ {
		w.orders[int64(i)] = [2]string{fmt.Sprintf("id-%d", i), fmt.Sprintf(`{"id":"id-%d","amount":"%d.00"}`, i, i)}
	}
	check(t, e, key, w)
}

// An unversioned object overwritten with other bytes is a new file (its events differ by ETag),
// while a repeated event for the same bytes is not.
func TestIngestOverwriteUnversioned(t *testing.T) {
	e := newIngestEnv(t)
	const key = "uploads/overwritten.jsonl"
	first := jsonl(3)
	second := []byte(`{"id":"new-1","amount":"1.00"}` + "\n" + `{"id":"new-2","amount":"2.00"}` + "\n")
	var events1 []events.SQSMessage
	for i, body := range [][]byte{first, second} {
		e.upload(t, key, body)
		var msgs []events.SQSMessage
		for deadline := e.until(t, 10*time.Second); len(msgs) == 0 && time.Now().Before(deadline); {
			for _, m := range e.receive(t, 2*time.Second) {
				if !strings.Contains(m.Body, "TestEvent") {
					msgs = append(msgs, m)
				}
			}
		}
		if len(msgs) != 1 {
			t.Fatalf("upload %d: got %d notifications, want 1", i, len(msgs))
		}
		if i == 0 {
			events1 = msgs
		}
		if resp := e.handle(t, context.Background(), msgs); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("upload %d: failures %v", i, resp.BatchItemFailures)
		}
	}
	// The first upload's event again: its bytes were ingested, nothing more is sent.
	e.handle(t, context.Background(), events1)
	got := map[string]int{}
	for _, m := range e.orders(t) {
		got[m.ID]++
	}
	want := map[string]int{"id-1": 1, "id-2": 1, "id-3": 1, "new-1": 1, "new-2": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("orders sent (-want +got):\n%s", diff)
	}
}

func TestIngestBadMessages(t *testing.T) {
	e := newIngestEnv(t)
	e.upload(t, "uploads/good.jsonl", jsonl(3))
	e.upload(t, "uploads/gone.jsonl", jsonl(3))
	var good, gone events.SQSMessage
	for deadline := e.until(t, 20*time.Second); (good.Body == "" || gone.Body == "") && time.Now().Before(deadline); {
		for _, m := range e.receive(t, 2*time.Second) {
			switch {
			case strings.Contains(m.Body, "good.jsonl"):
				good = m
			case strings.Contains(m.Body, "gone.jsonl"):
				gone = m
			}
		}
	}
	if good.Body == "" || gone.Body == "" {
		t.Fatalf("notifications did not arrive")
	}
	if _, err := e.s3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("uploads/gone.jsonl")}); err != nil {
		t.Fatal(err)
	}
	bad := events.SQSMessage{MessageId: "not-an-event", Body: "uploads/good.jsonl"}
	ctx, cancel := background()
	defer cancel()
	resp, err := e.svc.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{bad, good, gone}})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	if diff := cmp.Diff([]string{bad.MessageId, gone.MessageId}, failed); diff != "" {
		t.Errorf("BatchItemFailures (-want +got):\n%s", diff)
	}
	if got := e.orders(t); len(got) != 3 {
		t.Errorf("got %d orders, want the 3 of good.jsonl", len(got))
	}
	if _, ok := e.object(t, "reports/uploads/gone.jsonl.json"); ok {
		t.Errorf("a report was written for the missing object")
	}
}

func TestIngestConcurrentDuplicates(t *testing.T) {
	e := newIngestEnv(t)
	const key = "uploads/concurrent.jsonl"
	e.upload(t, key, jsonl(40))
	var msg events.SQSMessage
	for _, m := range e.receive(t, 10*time.Second) {
		if strings.Contains(m.Body, "concurrent.jsonl") {
			msg = m
		}
	}
	if msg.Body == "" {
		t.Fatal("no notification")
	}
	// Two invocations get the same notification at once: one ingests, the other finds the
	// claim busy (and is retried later) or, if it starts after the end, skips it.
	var wg sync.WaitGroup
	failures := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := background()
			defer cancel()
			resp, err := e.svc.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{msg}})
			if err != nil {
				t.Errorf("Handle: %v", err)
			}
			failures[i] = len(resp.BatchItemFailures)
		}()
	}
	wg.Wait()
	if failures[0]+failures[1] > 1 {
		t.Fatalf("both invocations failed: %v", failures)
	}
	// The retry of the busy one, after the visibility timeout, finds the version done.
	ctx, cancel := background()
	defer cancel()
	if resp, err := e.svc.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{msg}}); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("retry: %v, %v", resp, err)
	}
	w := want{orders: map[int64][2]string{}}
	for i := 1; i <= 40; i++ {
		w.orders[int64(i)] = [2]string{fmt.Sprintf("id-%d", i), fmt.Sprintf(`{"id":"id-%d","amount":"%d.00"}`, i, i)}
	}
	check(t, e, key, w)
}

func TestIngestRequeuesWhenOutOfTime(t *testing.T) {
	e := newIngestEnv(t)
	// Each invocation stops after about 10 clock readings; the sending pass looks once per batch
	// of 10 orders, so a file of n orders outlasts one invocation.
	const n = 200
	e.cfg.CheckpointMargin = 30*time.Minute - 10*time.Second
	e.cfg.CheckpointEvery = time.Hour
	steps := &stepClock{t: time.Now(), step: time.Second}
	e.newService(ingest.Options{Clock: steps})
	ctxFor := func() (context.Context, context.CancelFunc) {
		return context.WithDeadline(context.Background(), steps.Now().Add(30*time.Minute))
	}
	keys := []string{"uploads/first.jsonl", "uploads/second.jsonl"}
	for _, k := range keys {
		e.upload(t, k, jsonl(n))
	}
	// Both notifications in one batch: the first file stops at its checkpoint time, the second
	// is not started but put back on the files queue.
	var batch []events.SQSMessage
	for deadline := e.until(t, 20*time.Second); len(batch) < 2 && time.Now().Before(deadline); {
		for _, m := range e.receive(t, 2*time.Second) {
			if strings.Contains(m.Body, "TestEvent") {
				e.handle(t, context.Background(), []events.SQSMessage{m})
				continue
			}
			batch = append(batch, m)
		}
	}
	if len(batch) != 2 {
		t.Fatalf("got %d notifications, want 2", len(batch))
	}
	ctx, cancel := ctxFor()
	resp := e.handle(t, ctx, batch)
	cancel()
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v", resp.BatchItemFailures)
	}
	if e.claimed(t, keys[1]) {
		t.Errorf("the second file was claimed although the first used up the time")
	}
	e.drain(t, ctxFor)
	got := e.orders(t)
	seen := map[string]int{}
	for _, m := range got {
		seen[m.Source+"#"+m.ID]++
	}
	for _, k := range keys {
		for i := 1; i <= n; i++ {
			if sent := seen["s3://"+e.bucket+"/"+k+"#"+fmt.Sprintf("id-%d", i)]; sent != 1 {
				t.Errorf("%s id-%d sent %d times, want once", k, i, sent)
			}
		}
		if rep := e.report(t, k); rep.Enqueued != n {
			t.Errorf("%s: report enqueued %d, want %d", k, rep.Enqueued, n)
		}
	}
	if len(got) != 2*n {
		t.Errorf("got %d orders, want %d", len(got), 2*n)
	}
}

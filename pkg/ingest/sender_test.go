package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/order"
)

// batchFunc is a BatchSender made of a function: a spy or a failure injector in front of the
// real client.
type batchFunc func(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)

func (f batchFunc) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return f(ctx, in, optFns...)
}

// payload is the size of a batch as SQS counts it: bodies, attribute names, types and values.
func payload(entries []sqstypes.SendMessageBatchRequestEntry) int {
	n := 0
	for _, e := range entries {
		n += len(aws.ToString(e.MessageBody))
		for k, v := range e.MessageAttributes {
			n += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue))
		}
	}
	return n
}

const source = "s3://bucket/uploads/x.jsonl"

// overhead is what the attributes of an entry with this id and line add to its body.
func overhead(id string, line int64) int {
	return len(order.AttrOrderID+order.AttrSource+order.AttrSourceVersion+order.AttrLine) +
		3*len("String") + len("Number") + len(id) + len(source) + len(order.NullVersion) + len(strconv.FormatInt(line, 10))
}

func entry(i int, bodyLen int) *ingest.Entry {
	id := fmt.Sprintf("o-%04d", i)
	pre := `{"id":"` + id + `","pad":"`
	pad := max(0, bodyLen-len(pre)-2)
	return &ingest.Entry{ID: id, Body: []byte(pre + strings.Repeat("p", pad) + `"}`), Line: int64(i), Source: source, Version: order.NullVersion}
}

// receiveAll receives and deletes every message of a queue and returns the bodies, sorted,
// each once: a SendMessageBatch that the SDK retried after a lost response may have been stored
// twice by the stand-in, which is SQS's own at-least-once and not the code under test (the spies
// count the calls the code makes).
func receiveAll(t *testing.T, c *sqs.Client, url string) []string {
	t.Helper()
	got := receiveAllDup(t, c, url)
	slices.Sort(got)
	return slices.Compact(got)
}

func TestSenderBatchLimits(t *testing.T) {
	cfg := awstest.Config(t)
	client := awstest.SQS(cfg)
	// Two entries whose payload is exactly MaxBatchBytes, counting attributes.
	exact := func(i int) int { return ingest.MaxBatchBytes/2 - overhead(fmt.Sprintf("o-%04d", i), int64(i)) }
	tests := []struct {
		name  string
		sizes []int // body sizes, entry i has line i+1
		want  []int // entries per batch, in order
	}{
		{"by count", slices.Repeat([]int{100}, 25), []int{10, 10, 5}},
		{"by bytes", slices.Repeat([]int{60 << 10}, 10), []int{4, 4, 2}},
		{"exactly the limit", []int{exact(1), exact(2), 100}, []int{2, 1}},
		{"one byte over", []int{exact(1), exact(2) + 1, 100}, []int{1, 2}},
		{"large entry alone", []int{100, 300 << 10, 100}, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := awstest.NewQueue(t, cfg, nil)
			var mu sync.Mutex
			var got []int
			spy := batchFunc(func(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
				mu.Lock()
				got = append(got, len(in.Entries))
				mu.Unlock()
				if p := payload(in.Entries); len(in.Entries) > 1 && p > ingest.MaxBatchBytes {
					t.Errorf("batch of %d entries has %d bytes, above %d", len(in.Entries), p, ingest.MaxBatchBytes)
				}
				return client.SendMessageBatch(ctx, in, o...)
			})
			s := ingest.NewSender(context.Background(), spy, url, ingest.SenderOptions{Concurrency: 1})
			defer s.Close()
			var want []string
			for i, n := range tt.sizes {
				e := entry(i+1, n)
				want = append(want, string(e.Body))
				if err := s.Add(e); err != nil {
					t.Fatalf("Add: %v", err)
				}
			}
			if err := s.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries per batch (-want +got):\n%s", diff)
			}
			if got, want := s.Sent(), int64(len(tt.sizes)); got != want {
				t.Errorf("Sent() = %d, want %d", got, want)
			}
			slices.Sort(want)
			if diff := cmp.Diff(want, receiveAll(t, client, url)); diff != "" {
				t.Errorf("bodies on the queue (-want +got):\n%s", diff)
			}
		})
	}
}

// sentMessage is what SendMessageBatch carries of one entry, or what the queue gives back.
type sentMessage struct {
	Body  string
	Attrs map[string]string // name: data type + " " + value
}

func sentOf(body *string, attrs map[string]sqstypes.MessageAttributeValue) sentMessage {
	m := sentMessage{Body: aws.ToString(body), Attrs: map[string]string{}}
	for k, v := range attrs {
		m.Attrs[k] = aws.ToString(v.DataType) + " " + aws.ToString(v.StringValue)
	}
	return m
}

// The Sender copies each entry (the caller reuses one Entry and one body buffer, as the sending
// pass does) and reuses its batches and requests: every message must still carry its own body
// and attributes, in the calls as they are made (copied during the call) and on the queue.
func TestSenderSendsEachEntryAsGiven(t *testing.T) {
	cfg := awstest.Config(t)
	client := awstest.SQS(cfg)
	url, _ := awstest.NewQueue(t, cfg, nil)
	var mu sync.Mutex
	var calls []sentMessage
	spy := batchFunc(func(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
		mu.Lock()
		for _, e := range in.Entries {
			calls = append(calls, sentOf(e.MessageBody, e.MessageAttributes))
		}
		mu.Unlock()
		return client.SendMessageBatch(ctx, in, o...)
	})
	s := ingest.NewSender(context.Background(), spy, url, ingest.SenderOptions{Concurrency: 4})
	defer s.Close()
	const n = 95
	const version = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
	e := &ingest.Entry{Source: source, Version: version}
	var body []byte
	var want []sentMessage
	for i := range n {
		line := int64(i) * int64(i) * 104729 // 1 to 12 digits
		id := fmt.Sprintf("o-%d", i)
		body = fmt.Appendf(body[:0], `{"id":%q,"pad":"%s"}`, id, strings.Repeat("x", i*37%200))
		want = append(want, sentMessage{Body: string(body), Attrs: map[string]string{
			order.AttrOrderID: "String " + id, order.AttrSource: "String " + source,
			order.AttrSourceVersion: "String " + version, order.AttrLine: "Number " + strconv.FormatInt(line, 10),
		}})
		e.ID, e.Body, e.Line = id, body, line
		if err := s.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	byBody := cmpopts.SortSlices(func(a, b sentMessage) bool { return a.Body < b.Body })
	if diff := cmp.Diff(want, calls, byBody); diff != "" {
		t.Errorf("entries of the SendMessageBatch calls (-want +got):\n%s", diff)
	}
	var got []sentMessage
	for _, m := range receiveMessages(t, client, url) {
		got = append(got, sentOf(m.Body, m.MessageAttributes))
	}
	if diff := cmp.Diff(want, got, byBody); diff != "" {
		t.Errorf("messages on the queue (-want +got):\n%s", diff)
	}
}

// failing returns a BatchSender that fails the entries with the ids in fail[call] (SenderFault
// false) or refuse[call] (SenderFault true) on that call and sends the rest with next.
func failing(next ingest.BatchSender, fail, refuse map[int][]string, calls *int) batchFunc {
	var mu sync.Mutex
	return func(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
		mu.Lock()
		call := *calls
		*calls++
		mu.Unlock()
		out := &sqs.SendMessageBatchOutput{}
		var pass []sqstypes.SendMessageBatchRequestEntry
		for _, e := range in.Entries {
			switch id := aws.ToString(e.Id); {
			case slices.Contains(fail[call], id):
				out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), SenderFault: false})
			case slices.Contains(refuse[call], id):
				out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InvalidMessageContents"), SenderFault: true})
			default:
				pass = append(pass, e)
			}
		}
		if len(pass) == 0 || next == nil {
			return out, nil
		}
		res, err := next.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: in.QueueUrl, Entries: pass}, o...)
		if err != nil {
			return nil, err
		}
		out.Successful = res.Successful
		out.Failed = append(out.Failed, res.Failed...)
		return out, nil
	}
}

func TestSenderRetriesFailedEntries(t *testing.T) {
	cfg := awstest.Config(t)
	client := awstest.SQS(cfg)
	url, _ := awstest.NewQueue(t, cfg, nil)
	calls := 0
	// Call 0 fails entries 1 and 3 (retryable) and refuses 5; call 1 (the retry of 1 and 3)
	// fails 3 again; call 2 sends it.
	f := failing(client, map[int][]string{0: {"1", "3"}, 1: {"3"}}, map[int][]string{0: {"5"}}, &calls)
	// A Refusal's Entry is the Sender's, valid during the callback: keep copies.
	type refusal struct {
		line       int64
		body, code string
	}
	var refused []refusal
	s := ingest.NewSender(context.Background(), f, url, ingest.SenderOptions{
		Concurrency: 1, Backoff: time.Millisecond, Refused: func(r ingest.Refusal) {
			refused = append(refused, refusal{r.Entry.Line, string(r.Entry.Body), r.Code})
		},
	})
	defer s.Close()
	var want []string
	for i := range 10 {
		e := entry(i+1, 50)
		if i != 5 {
			want = append(want, string(e.Body))
		}
		if err := s.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if calls != 3 {
		t.Errorf("got %d SendMessageBatch calls, want 3", calls)
	}
	if diff := cmp.Diff([]refusal{{6, string(entry(6, 50).Body), "InvalidMessageContents"}}, refused, cmp.AllowUnexported(refusal{})); diff != "" {
		t.Errorf("refused (-want +got):\n%s", diff)
	}
	if got, want := s.Sent(), int64(9); got != want {
		t.Errorf("Sent() = %d, want %d", got, want)
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, receiveAll(t, client, url)); diff != "" {
		t.Errorf("bodies on the queue, each once (-want +got):\n%s", diff)
	}
}

func TestSenderGivesUp(t *testing.T) {
	tests := []struct {
		name      string
		fail      map[int][]string
		refuse    map[int][]string
		wantCalls int
	}{
		{"retryable failure past the attempts", map[int][]string{0: {"0"}, 1: {"0"}, 2: {"0"}}, nil, 3},
		{"refusal without a Refused callback", nil, map[int][]string{0: {"2"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			// No queue behind: the entries that pass count as sent.
			f := failing(nil, tt.fail, tt.refuse, &calls)
			s := ingest.NewSender(context.Background(), f, "http://queue", ingest.SenderOptions{Concurrency: 2, MaxAttempts: 3, Backoff: time.Millisecond})
			defer s.Close()
			for i := range 3 {
				if err := s.Add(entry(i+1, 10)); err != nil {
					t.Fatal(err)
				}
			}
			err := s.Flush()
			if !errors.Is(err, ingest.ErrSendFailed) {
				t.Fatalf("Flush = %v, want an error wrapping ErrSendFailed", err)
			}
			if calls != tt.wantCalls {
				t.Errorf("got %d calls, want %d", calls, tt.wantCalls)
			}
			if err := s.Add(entry(9, 10)); !errors.Is(err, ingest.ErrSendFailed) {
				t.Errorf("Add after the failure = %v, want the failure", err)
			}
		})
	}
}

// sleepRecorder is a Clock whose Sleep records the delay and returns at once.
type sleepRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (c *sleepRecorder) Now() time.Time { return time.Now() }

func (c *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delays = append(c.delays, d)
	return ctx.Err()
}

func TestSenderBacksOffOnItsClock(t *testing.T) {
	calls := 0
	f := failing(nil, map[int][]string{0: {"0"}, 1: {"0"}, 2: {"0"}}, nil, &calls)
	clk := &sleepRecorder{}
	const base = time.Second
	s := ingest.NewSender(context.Background(), f, "http://queue", ingest.SenderOptions{Concurrency: 1, MaxAttempts: 3, Backoff: base, Clock: clk})
	defer s.Close()
	if err := s.Add(entry(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); !errors.Is(err, ingest.ErrSendFailed) {
		t.Fatalf("Flush = %v, want an error wrapping ErrSendFailed", err)
	}
	if len(clk.delays) != 2 {
		t.Fatalf("got %d backoff sleeps %v, want 2 (between 3 attempts)", len(clk.delays), clk.delays)
	}
	for i, d := range clk.delays {
		if limit := base << i; d < 0 || d >= limit {
			t.Errorf("backoff %d: %v, want within [0, %v)", i+1, d, limit)
		}
	}
}

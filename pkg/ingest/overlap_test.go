package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/internal/clock"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// spyStore is the real S3 client that counts the GETs of each key, tracks whether their
// bodies were closed, and fails the PUTs that failPut (if set) picks.
type spyStore struct {
	ingest.ObjectStore
	mu      sync.Mutex
	calls   int // requests of any kind
	gets    map[string]int
	open    map[string]int // bodies not closed
	failPut func(key string) bool
}

func newSpyStore(s ingest.ObjectStore) *spyStore {
	return &spyStore{ObjectStore: s, gets: map[string]int{}, open: map[string]int{}}
}

func (s *spyStore) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	key := aws.ToString(in.Key)
	s.mu.Lock()
	s.gets[key]++
	s.calls++
	s.mu.Unlock()
	out, err := s.ObjectStore.GetObject(ctx, in, o...)
	if err == nil {
		s.mu.Lock()
		s.open[key]++
		s.mu.Unlock()
		out.Body = &closeSpy{ReadCloser: out.Body, closed: func() {
			s.mu.Lock()
			s.open[key]--
			s.mu.Unlock()
		}}
	}
	return out, err
}

func (s *spyStore) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	if s.failPut != nil && s.failPut(aws.ToString(in.Key)) {
		return nil, errors.New("injected failure")
	}
	return s.ObjectStore.PutObject(ctx, in, o...)
}

func (s *spyStore) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, o ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	return s.ObjectStore.DeleteObject(ctx, in, o...)
}

type closeSpy struct {
	io.ReadCloser
	once   sync.Once
	closed func()
}

func (c *closeSpy) Close() error {
	c.once.Do(c.closed)
	return c.ReadCloser.Close()
}

// putWithState uploads body to key and, unless st is nil, writes st as the state of its
// unversioned object.
func (e *env) putWithState(t *testing.T, key, body string, st *ingest.State) {
	t.Helper()
	e.put(t, key, []byte(body))
	if st != nil {
		e.putState(t, key, "null", *st)
	}
}

// countingQueue is the real SQS client counting the entries sent in batches and, if calls is
// not nil, the SendMessageBatch calls.
func countingQueue(c *sqs.Client, n *int, calls ...*int) refusingQueue {
	var mu sync.Mutex
	return refusingQueue{Client: c, batch: func(ctx context.Context, in *sqs.SendMessageBatchInput, o ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
		mu.Lock()
		*n += len(in.Entries)
		for _, c := range calls {
			*c++
		}
		mu.Unlock()
		return c.SendMessageBatch(ctx, in, o...)
	}}
}

// The GET of the object starts together with the claim: a claim that is lost sends nothing and
// leaves no body open; a claim that is won reads the object twice (the verifying pass, then the
// sending pass).
func TestIngestPrefetchAndClaim(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name     string
		state    *ingest.State
		want     ingest.Outcome
		wantErr  error
		wantSent int
	}{
		{"fresh: two GETs of the object", nil, ingest.Done, nil, 3},
		{"done: lost claim", &ingest.State{Status: ingest.StatusDone, StartedAt: now}, ingest.Skipped, nil, 0},
		{"busy: lost claim", &ingest.State{Status: ingest.StatusRunning, Owner: "other", LeaseUntil: now.Add(time.Hour), StartedAt: now}, 0, ingest.ErrBusy, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			const key = "uploads/prefetch.jsonl"
			e.putWithState(t, key, threeOrders, tt.state)
			store, sent := newSpyStore(e.s3), 0
			svc := ingest.New(e.cfg, store, countingQueue(e.sqs, &sent), ingest.Options{})
			got, err := svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, "")
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Ingest = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
			if sent != tt.wantSent {
				t.Errorf("sent %d orders, want %d", sent, tt.wantSent)
			}
			wantGets := 2 // verify, send
			if tt.wantSent == 0 {
				wantGets = 1 // the prefetch, discarded
			}
			if got := store.gets[key]; got != wantGets {
				t.Errorf("%d GETs of the object, want %d", got, wantGets)
			}
			for k, n := range store.open {
				if n != 0 {
					t.Errorf("%d bodies of %s left open", n, k)
				}
			}
			if tt.state != nil {
				var st ingest.State
				e.get(t, "state/"+key+"@null.json", &st)
				if st.Status != tt.state.Status || st.Owner != tt.state.Owner {
					t.Errorf("state after a lost claim: status %q owner %q, want %q %q", st.Status, st.Owner, tt.state.Status, tt.state.Owner)
				}
			}
		})
	}
}

// A run that wrote its report but not its done state (a crash, or a failed state write) is
// finished by the next delivery from the report: no order is sent again.
func TestIngestCrashAfterReport(t *testing.T) {
	const file = threeOrders + "not json\n"
	tests := []struct {
		name string
		// failStates: state writes that fail once the report is written (-1: all, a crash
		// that also loses the release of the claim).
		failStates int
		retryAfter time.Duration // clock of the next delivery
	}{
		{"crash after the report", -1, 2 * time.Hour},
		{"done state write failed, claim released", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			const key = "uploads/crash.jsonl"
			e.putWithState(t, key, file, nil)
			store, sent := newSpyStore(e.s3), 0
			var reported bool
			failed := 0
			store.failPut = func(k string) bool {
				store.mu.Lock()
				defer store.mu.Unlock()
				switch {
				case strings.HasPrefix(k, "reports/"):
					reported = true
				case reported && strings.HasPrefix(k, "state/") && (tt.failStates < 0 || failed < tt.failStates):
					failed++
					return true
				}
				return false
			}
			svc := ingest.New(e.cfg, store, countingQueue(e.sqs, &sent), ingest.Options{})
			rec := s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}
			if _, err := svc.Ingest(ctx(t), rec, ""); err == nil {
				t.Fatal("first Ingest: no error, want the injected state write failure")
			}
			var first ingest.Report
			if !e.get(t, "reports/"+key+".json", &first) {
				t.Fatal("no report after the first run")
			}
			firstSent := sent
			retry := ingest.New(e.cfg, e.s3, countingQueue(e.sqs, &sent), ingest.Options{Clock: shiftedClock(tt.retryAfter)})
			got, err := retry.Ingest(ctx(t), rec, "")
			if err != nil || got != ingest.Skipped {
				t.Fatalf("next delivery: Ingest = %v, %v; want skipped", got, err)
			}
			if firstSent != 3 || sent != firstSent {
				t.Errorf("orders sent: %d by the first run, %d by the next delivery; want 3 and 0", firstSent, sent-firstSent)
			}
			var st ingest.State
			e.get(t, "state/"+key+"@null.json", &st)
			if st.Status != ingest.StatusDone || st.Enqueued != 3 || st.Rejected != 1 || st.Lines != 4 {
				t.Errorf("state: status %q enqueued %d rejected %d lines %d; want done, 3, 1, 4", st.Status, st.Enqueued, st.Rejected, st.Lines)
			}
			var rep ingest.Report
			e.get(t, "reports/"+key+".json", &rep)
			if diff := cmp.Diff(first, rep); diff != "" {
				t.Errorf("report changed by the next delivery (-first +now):\n%s", diff)
			}
			out, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &e.bucket, Key: aws.String("rejects/" + key + ".jsonl")})
			if err != nil {
				t.Fatalf("rejects object: %v", err)
			}
			defer out.Body.Close()
			if b, _ := io.ReadAll(out.Body); bytes.Count(b, []byte("\n")) != 1 {
				t.Errorf("rejects object %q, want one line", b)
			}
		})
	}
}

// A report of another run of the same key (an earlier content) is not taken for this run's:
// the abandoned run resumes and sends its orders.
func TestIngestAbandonedRunIgnoresOtherReport(t *testing.T) {
	e := newEnv(t)
	const key = "uploads/other-report.jsonl"
	e.put(t, key, []byte(threeOrders))
	now := time.Now()
	e.putState(t, key, "null", ingest.State{Status: ingest.StatusRunning, Owner: "crashed", LeaseUntil: now.Add(-time.Second), StartedAt: now.Add(-time.Hour)})
	other := ingest.Report{Bucket: e.bucket, Key: key, Version: "null", Lines: 1, Enqueued: 1, StartedAt: now.Add(-2 * time.Hour)}
	b, _ := json.Marshal(other)
	e.put(t, "reports/"+key+".json", b)
	sent := 0
	svc := ingest.New(e.cfg, e.s3, countingQueue(e.sqs, &sent), ingest.Options{})
	got, err := svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, "")
	if err != nil || got != ingest.Done {
		t.Fatalf("Ingest = %v, %v; want done", got, err)
	}
	var rep ingest.Report
	e.get(t, "reports/"+key+".json", &rep)
	if sent != 3 || rep.Enqueued != 3 {
		t.Errorf("sent %d, report enqueued %d; want 3, 3", sent, rep.Enqueued)
	}
}

// shiftedClock is the system clock moved by a fixed duration.
type shiftedClock time.Duration

func (c shiftedClock) Now() time.Time { return time.Now().Add(time.Duration(c)) }

func (c shiftedClock) Sleep(ctx context.Context, d time.Duration) error { return clock.Sleep(ctx, d) }

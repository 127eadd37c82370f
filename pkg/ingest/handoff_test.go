package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// lossyStore is the real S3 client whose hand-over state write (the state PUT that records the
// first continuation) fails with context.DeadlineExceeded, after the write when landed is
// set (the reply came too late), before it otherwise (the request never arrived).
type lossyStore struct {
	ingest.ObjectStore
	landed bool
	failed int
}

func (s *lossyStore) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	key := aws.ToString(in.Key)
	if !strings.HasPrefix(key, "state/") || !strings.HasSuffix(key, ".json") || s.failed > 0 {
		return s.ObjectStore.PutObject(ctx, in, o...)
	}
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	in.Body = bytes.NewReader(b)
	if !bytes.Contains(b, []byte(`"status":"running"`)) || !bytes.Contains(b, []byte(`"continuations":1`)) {
		return s.ObjectStore.PutObject(ctx, in, o...)
	}
	s.failed++
	if s.landed {
		if _, err := s.ObjectStore.PutObject(ctx, in, o...); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("put %s: %w", key, context.DeadlineExceeded)
}

// A hand-over state write whose outcome is unknown (its reply cut off by the deadline) must not
// strand the claim: when the write landed, the claim is the new token's and the continuation
// goes out; when it did not, the claim is released so that the retried message resumes at once
// (not ErrBusy until the lease runs out). Either way the file ends with exact counts.
func TestIngestHandoffOutcomeUnknown(t *testing.T) {
	tests := []struct {
		name   string
		landed bool
		want   ingest.Outcome
		// wantContinuations is the continuation messages on the files queue after the first
		// invocation.
		wantContinuations int
	}{
		{"write landed, reply lost", true, ingest.Continued, 1},
		{"write lost", false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			const key = "uploads/handoff.jsonl"
			e.put(t, key, []byte(threeOrders))
			store := &lossyStore{ObjectStore: e.s3, landed: tt.landed}
			cfg := e.cfg
			cfg.CheckpointMargin = time.Hour // past the checkpoint time from the first line on
			svc := ingest.New(cfg, store, e.sqs, ingest.Options{})
			short, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rec := s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}
			got, err := svc.Ingest(short, rec, "")
			if got != tt.want || (err == nil) != (tt.want != 0) {
				t.Fatalf("Ingest = %v, %v; want %v", got, err, tt.want)
			}
			if store.failed != 1 {
				t.Fatalf("hand-over writes failed: %d, want 1", store.failed)
			}
			out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.filesURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
			if err != nil || len(out.Messages) != tt.wantContinuations {
				t.Fatalf("continuations: %d, %v; want %d", len(out.Messages), err, tt.wantContinuations)
			}
			if tt.wantContinuations > 0 {
				// The continuation resumes at once: the claim was handed to its token.
				resp, err := e.svc.Handle(ctx(t), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "c1", Body: aws.ToString(out.Messages[0].Body)}}})
				if err != nil || len(resp.BatchItemFailures) != 0 {
					t.Fatalf("Handle(continuation) = %v, %v; want no failures", resp, err)
				}
			} else if got, err := e.svc.Ingest(ctx(t), rec, ""); err != nil || got != ingest.Done {
				// The retried event resumes at once: the claim was released.
				t.Fatalf("retry: Ingest = %v, %v; want done", got, err)
			}
			sent := receiveAllDup(t, e.sqs, e.ordersURL)
			if tt.landed {
				if diff := cmp.Diff([]string{`{"id":"a"}`, `{"id":"b"}`, `{"id":"c"}`}, sent, sortStrings); diff != "" {
					t.Errorf("orders sent, with repeats (-want +got):\n%s", diff)
				}
			} else if diff := cmp.Diff([]string{`{"id":"a"}`, `{"id":"a"}`, `{"id":"b"}`, `{"id":"c"}`}, sent, sortStrings); diff != "" {
				// Order a, sent before the lost checkpoint, is sent again by the retry (as after
				// any crash: the API's Idempotency-Key absorbs it).
				t.Errorf("orders sent, with repeats (-want +got):\n%s", diff)
			}
			var rep ingest.Report
			if !e.get(t, "reports/"+key+".json", &rep) || rep.Lines != 3 || rep.Enqueued != 3 || rep.Rejected != 0 {
				t.Errorf("report: lines %d enqueued %d rejected %d; want 3, 3, 0", rep.Lines, rep.Enqueued, rep.Rejected)
			}
			var st ingest.State
			if !e.get(t, "state/"+key+"@null.json", &st) || st.Status != ingest.StatusDone {
				t.Errorf("state: status %q; want done", st.Status)
			}
		})
	}
}

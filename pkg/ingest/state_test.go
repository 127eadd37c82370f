package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// A state object written without a schema version (the layout of version 1 before the field
// existed) is read as version 1: a done one is skipped, an abandoned checkpoint resumed, and
// what ingest writes back says version 1.
func TestStateWithoutSchemaVersion(t *testing.T) {
	started := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	tests := []struct {
		name     string
		state    string // JSON as written without a schema version
		want     ingest.Outcome
		wantSent []string
	}{
		{"done", `{"status":"done","owner":"","leaseUntil":"0001-01-01T00:00:00Z","bucket":"%s","key":"%s","version":"null",` +
			`"size":33,"offset":33,"line":3,"lines":3,"enqueued":3,"rejected":0,"continuations":0,"startedAt":"` + started + `"}`,
			ingest.Skipped, nil},
		{"checkpoint of a crashed owner", `{"status":"running","owner":"crashed","leaseUntil":"2020-01-01T00:00:00Z","bucket":"%s","key":"%s","version":"null",` +
			`"size":33,"offset":22,"line":2,"lines":2,"enqueued":2,"rejected":0,"continuations":0,"startedAt":"` + started + `"}`,
			ingest.Done, []string{`{"id":"c"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			const key = "uploads/unversioned-state.jsonl"
			e.put(t, key, []byte(threeOrders))
			e.put(t, "state/"+key+"@null.json", []byte(fmt.Sprintf(tt.state, e.bucket, key)))
			got, err := e.svc.Ingest(ctx(t), s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}, "")
			if err != nil || got != tt.want {
				t.Fatalf("Ingest = %v, %v; want %v", got, err, tt.want)
			}
			if diff := cmp.Diff(tt.wantSent, receiveAll(t, e.sqs, e.ordersURL)); diff != "" {
				t.Errorf("orders sent (-want +got):\n%s", diff)
			}
			if tt.want != ingest.Done {
				return
			}
			var st ingest.State
			e.get(t, "state/"+key+"@null.json", &st)
			if st.SchemaVersion != ingest.StateSchemaVersion || st.Status != ingest.StatusDone || st.Enqueued != 3 {
				t.Errorf("state written back: schema version %d, status %q, enqueued %d; want %d, done, 3",
					st.SchemaVersion, st.Status, st.Enqueued, ingest.StateSchemaVersion)
			}
		})
	}
}

// A state object of a newer schema version is refused: the message fails with ErrStateSchema,
// nothing is sent and the state object is left as it was, whatever its status says.
func TestStateOfNewerSchemaVersion(t *testing.T) {
	for _, status := range []string{ingest.StatusRunning, ingest.StatusDone} {
		t.Run(status, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			const key = "uploads/newer-state.jsonl"
			stateKey := "state/" + key + "@null.json"
			e.put(t, key, []byte(threeOrders))
			state := fmt.Sprintf(`{"schemaVersion":%d,"status":%q,"owner":"future","leaseUntil":"2020-01-01T00:00:00Z",`+
				`"bucket":%q,"key":%q,"version":"null","offset":0,"somethingNew":{"x":1}}`, ingest.StateSchemaVersion+1, status, e.bucket, key)
			e.put(t, stateKey, []byte(state))

			rec := s3event.Record{EventName: "ObjectCreated:Put", Bucket: e.bucket, Key: key}
			if got, err := e.svc.Ingest(ctx(t), rec, ""); !errors.Is(err, ingest.ErrStateSchema) {
				t.Fatalf("Ingest = %v, %v; want an error wrapping ErrStateSchema", got, err)
			}
			ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: s3Event(e.bucket, key, "")}}}
			resp, err := e.svc.Handle(ctx(t), ev)
			if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "m1" {
				t.Errorf("Handle = %+v, %v; want m1 failed", resp, err)
			}
			if got := receiveAll(t, e.sqs, e.ordersURL); len(got) != 0 {
				t.Errorf("orders sent: %q, want none", got)
			}
			out, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &e.bucket, Key: aws.String(stateKey)})
			if err != nil {
				t.Fatal(err)
			}
			defer out.Body.Close()
			if b, _ := io.ReadAll(out.Body); string(b) != state {
				t.Errorf("state object changed to %s", b)
			}
			if e.get(t, "reports/"+key+".json", &ingest.Report{}) {
				t.Error("a report was written")
			}
		})
	}
}

package s3event_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/s3event"
)

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snsEnvelope returns aws-lambda-go's SNS sample notification carrying message, encoded as SNS
// delivers it to SQS without raw delivery.
func snsEnvelope(t *testing.T, message string) string {
	t.Helper()
	var ev events.SNSEvent
	if err := json.Unmarshal([]byte(readFile(t, "sns-event.json")), &ev); err != nil {
		t.Fatal(err)
	}
	n := ev.Records[0].SNS
	n.Message = message
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sqsBody returns the body of aws-lambda-go's SQS sample message with its body replaced, as a
// handler would see it.
func sqsBody(t *testing.T, body string) string {
	t.Helper()
	var ev events.SQSEvent
	if err := json.Unmarshal([]byte(readFile(t, "sqs-event.json")), &ev); err != nil {
		t.Fatal(err)
	}
	if body != "" {
		ev.Records[0].Body = body
	}
	return ev.Records[0].Body
}

func TestDecode(t *testing.T) {
	sample := s3event.Record{
		EventName: "ObjectCreated:Put", EventTime: "1970-01-01T00:00:00.123Z",
		Bucket: "sourcebucket", Key: "Happy Face.jpg", Size: 1024, VersionID: "version",
		ETag: "d41d8cd98f00b204e9800998ecf8427e", Sequencer: "Happy Sequencer",
	}
	moto := s3event.Record{
		EventName: "ObjectCreated:Put", EventTime: "2026-11-24T21:11:37.299524",
		Bucket: "b-12659-109015133-1", Key: "uploads/2026 Q1/ordres été 😀 a+b%.jsonl", Size: 12,
		ETag: "78083bba04fb8ecb5ba7ebf338d2045d",
	}
	motoDirect := moto
	motoDirect.EventTime = "2026-11-24T21:11:37.299104"
	cont := s3event.Continuation{Bucket: "b", Key: "uploads/a b.csv", VersionID: "v1", ETag: "e", Token: "tok"}
	contBody, err := cont.Body()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		body string
		want s3event.Message
	}{
		{"aws sample raw delivery", sqsBody(t, readFile(t, "s3-event.json")), s3event.Message{Records: []s3event.Record{sample}}},
		{"aws sample sns envelope", sqsBody(t, snsEnvelope(t, readFile(t, "s3-event.json"))), s3event.Message{Records: []s3event.Record{sample}, ViaSNS: true}},
		{"moto raw delivery", readFile(t, "moto-raw.json"), s3event.Message{Records: []s3event.Record{moto}}},
		{"moto sns envelope", readFile(t, "moto-envelope.json"), s3event.Message{Records: []s3event.Record{moto}, ViaSNS: true}},
		{"moto direct s3 to sqs", readFile(t, "moto-direct.json"), s3event.Message{Records: []s3event.Record{motoDirect}}},
		{"moto test event raw", readFile(t, "moto-raw-testevent.json"), s3event.Message{TestEvent: true}},
		{"moto test event envelope", readFile(t, "moto-envelope-testevent.json"), s3event.Message{TestEvent: true, ViaSNS: true}},
		{"moto test event direct", readFile(t, "moto-direct-testevent.json"), s3event.Message{TestEvent: true}},
		{"continuation", contBody, s3event.Message{Continuation: &cont}},
		{"no records", `{"Records":[]}`, s3event.Message{Records: []s3event.Record{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s3event.Decode(tt.body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeUndecodable(t *testing.T) {
	tests := []struct {
		name, body, shape string
	}{
		{"aws sqs sample body", sqsBody(t, ""), "json"},
		{"empty", "", "json"},
		{"not json", "uploads/a.csv", "json"},
		{"empty object", "{}", "json"},
		{"json array", `[{"Records":[]}]`, "json"},
		{"records not a list", `{"Records":"x"}`, "s3"},
		{"sns without message", `{"Type":"Notification","Message":""}`, "sns"},
		{"sns carrying text", snsEnvelope(t, "Hello from SNS!"), "json"},
		{"sns in sns", snsEnvelope(t, snsEnvelope(t, "{}")), "json"},
		{"continuation without key", `{"orderpipeContinuation":{"bucket":"b"}}`, "continuation"},
		{"bad key escape", `{"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"b"},"object":{"key":"a%zz"}}}]}`, "s3"},
		{"missing bucket", `{"Records":[{"eventSource":"aws:s3","s3":{"object":{"key":"a"}}}]}`, "s3"},
		{"other event source", `{"Records":[{"eventSource":"aws:sqs","s3":{"bucket":{"name":"b"},"object":{"key":"a"}}}]}`, "s3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s3event.Decode(tt.body)
			if !errors.Is(err, s3event.ErrUndecodable) {
				t.Fatalf("Decode(%q) = %+v, %v; want an error wrapping ErrUndecodable", tt.body, got, err)
			}
			var de *s3event.DecodeError
			if !errors.As(err, &de) || de.Shape != tt.shape {
				t.Errorf("error %v: shape %q, want a *DecodeError with shape %q", err, shapeOf(de), tt.shape)
			}
		})
	}
}

func shapeOf(e *s3event.DecodeError) string {
	if e == nil {
		return "<nil>"
	}
	return e.Shape
}

func TestRecordCreated(t *testing.T) {
	for _, tt := range []struct {
		event string
		want  bool
	}{{"ObjectCreated:Put", true}, {"ObjectCreated:CompleteMultipartUpload", true}, {"ObjectRemoved:Delete", false}, {"", false}} {
		if got := (s3event.Record{EventName: tt.event}).Created(); got != tt.want {
			t.Errorf("Record{EventName: %q}.Created() = %v, want %v", tt.event, got, tt.want)
		}
	}
}

package s3event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrUndecodable is wrapped by every error Decode returns.
var ErrUndecodable = errors.New("undecodable files-queue message")

// DecodeError says why a message body could not be decoded. It matches ErrUndecodable with
// errors.Is.
type DecodeError struct {
	Shape string // the shape the body was decoded as: "json", "sns", "s3", "continuation"
	Err   error  // the underlying cause
}

// Error returns "decode <shape> message: <cause>".
func (e *DecodeError) Error() string { return "decode " + e.Shape + " message: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is reports whether target is ErrUndecodable.
func (e *DecodeError) Is(target error) bool { return target == ErrUndecodable }

// Record is one S3 object notification.
type Record struct {
	EventName string // e.g. "ObjectCreated:Put"
	EventTime string // as sent: RFC 3339 on AWS, without a zone on moto
	Bucket    string
	Key       string // URL-decoded
	Size      int64
	VersionID string // "" for an unversioned bucket
	ETag      string // as sent, usually without quotes
	Sequencer string
}

// Created reports whether the record is an ObjectCreated event.
func (r Record) Created() bool { return strings.HasPrefix(r.EventName, "ObjectCreated:") }

// Continuation asks the ingest function to go on with an object version from the checkpoint in
// its state object. Token is the owner token the checkpoint was handed to ("" when no claim was
// made yet: the object is then claimed afresh).
type Continuation struct {
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	VersionID string `json:"versionId,omitempty"`
	ETag      string `json:"eTag,omitempty"`
	Token     string `json:"token,omitempty"`
}

// Record returns the continuation as an ObjectCreated record of the same object version.
func (c Continuation) Record() Record {
	return Record{EventName: "ObjectCreated:Continuation", Bucket: c.Bucket, Key: c.Key, VersionID: c.VersionID, ETag: c.ETag}
}

// Body returns the continuation as a files-queue message body that Decode reads back.
func (c Continuation) Body() (string, error) {
	b, err := json.Marshal(struct {
		C Continuation `json:"orderpipeContinuation"`
	}{c})
	if err != nil {
		return "", fmt.Errorf("encode continuation: %w", err)
	}
	return string(b), nil
}

// Message is the decoded body of one files-queue message. The zero value is an empty message.
type Message struct {
	Records      []Record      // S3 notifications, in the order sent
	Continuation *Continuation // set for a continuation; Records is then empty
	TestEvent    bool          // the s3:TestEvent sent when notifications are configured
	ViaSNS       bool          // the body was an SNS notification envelope
}

// envelope holds the top-level fields of every shape a body may have.
type envelope struct {
	// SNS notification
	Type    string `json:"Type"`
	Message string `json:"Message"`
	// S3 event
	Records json.RawMessage `json:"Records"`
	// s3:TestEvent
	Event string `json:"Event"`
	// our own continuation
	Continuation *Continuation `json:"orderpipeContinuation"`
}

// s3Record is the part of an S3 event record used here; eventTime stays a string.
type s3Record struct {
	EventSource string `json:"eventSource"`
	EventName   string `json:"eventName"`
	EventTime   string `json:"eventTime"`
	S3          struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key       string `json:"key"`
			Size      int64  `json:"size"`
			VersionID string `json:"versionId"`
			ETag      string `json:"eTag"`
			Sequencer string `json:"sequencer"`
		} `json:"object"`
	} `json:"s3"`
}

// Decode decodes a files-queue message body. The error wraps ErrUndecodable.
func Decode(body string) (Message, error) {
	return decode([]byte(body), false)
}

func decode(body []byte, inSNS bool) (Message, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Message{}, &DecodeError{Shape: "json", Err: err}
	}
	switch {
	case env.Type == "Notification" && !inSNS:
		if env.Message == "" {
			return Message{}, &DecodeError{Shape: "sns", Err: errors.New("empty Message")}
		}
		m, err := decode([]byte(env.Message), true)
		m.ViaSNS = true
		return m, err
	case env.Continuation != nil:
		c := *env.Continuation
		if c.Bucket == "" || c.Key == "" {
			return Message{}, &DecodeError{Shape: "continuation", Err: errors.New("bucket or key missing")}
		}
		return Message{Continuation: &c}, nil
	case env.Event == "s3:TestEvent":
		return Message{TestEvent: true}, nil
	case len(env.Records) > 0 && !bytes.Equal(env.Records, []byte("null")):
		return decodeRecords(env.Records)
	}
	return Message{}, &DecodeError{Shape: "json", Err: errors.New("neither an S3 event, an SNS notification nor a continuation")}
}

func decodeRecords(raw json.RawMessage) (Message, error) {
	var recs []s3Record
	if err := json.Unmarshal(raw, &recs); err != nil {
		return Message{}, &DecodeError{Shape: "s3", Err: err}
	}
	m := Message{Records: make([]Record, 0, len(recs))}
	for i, r := range recs {
		if r.EventSource != "" && r.EventSource != "aws:s3" {
			return Message{}, &DecodeError{Shape: "s3", Err: fmt.Errorf("record %d: event source %q", i, r.EventSource)}
		}
		o := r.S3.Object
		if r.S3.Bucket.Name == "" || o.Key == "" {
			return Message{}, &DecodeError{Shape: "s3", Err: fmt.Errorf("record %d: bucket or key missing", i)}
		}
		key, err := url.QueryUnescape(o.Key)
		if err != nil {
			return Message{}, &DecodeError{Shape: "s3", Err: fmt.Errorf("record %d: key %q: %w", i, o.Key, err)}
		}
		m.Records = append(m.Records, Record{
			EventName: r.EventName,
			EventTime: r.EventTime,
			Bucket:    r.S3.Bucket.Name,
			Key:       key,
			Size:      o.Size,
			VersionID: o.VersionID,
			ETag:      o.ETag,
			Sequencer: o.Sequencer,
		})
	}
	return m, nil
}

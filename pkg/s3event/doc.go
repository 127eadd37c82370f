// Package s3event unwraps the body of a files-queue SQS message into the S3 object
// notifications it carries, whatever route it took to the queue:
//
//   - SNS with raw message delivery: the body is the S3 event JSON ({"Records":[...]}).
//   - SNS without raw delivery: the body is an SNS notification envelope
//     ({"Type":"Notification","Message":"<S3 event JSON>",...}).
//   - S3 straight to SQS: the body is the S3 event JSON.
//   - A continuation that the ingest function sends itself when it checkpoints a file
//     ({"orderpipeContinuation":{...}}, see Continuation).
//
// The s3:TestEvent that S3 sends when a notification is configured decodes to a Message with
// TestEvent set and no records: callers skip it.
//
// Decoding is lenient where the stand-ins differ from AWS: eventTime is kept as the string sent
// (moto omits the time zone, so it is never parsed into a time.Time), object keys are
// URL-decoded with url.QueryUnescape ("+" is a space). A body that is not one of these shapes
// gives an error wrapping ErrUndecodable (a *DecodeError): the message is unusable and retrying
// it will not help.
//
// Everything here is pure computation and safe for concurrent use.
package s3event

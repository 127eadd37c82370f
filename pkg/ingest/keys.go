package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// MaxKeyBytes is S3's limit on the length of an object key, in bytes.
const MaxKeyBytes = 1024

// KeptKeyBytes is how much of an object key a derived key keeps when the whole key does not fit.
const KeptKeyBytes = 200

// stateSuffixBytes is the room kept after the state prefix for the longest suffix of a state
// object or sidecar (".json", ".ids-1", ".rejects-N.jsonl" with N up to 16 digits).
const stateSuffixBytes = 32

// RejectsKey is the key of the rejects object of the order file key: `rejects/{key}.jsonl`,
// with key shortened (keyPart) when that would be longer than MaxKeyBytes.
func RejectsKey(key string) string {
	return "rejects/" + keyPart(key, len("rejects/.jsonl")) + ".jsonl"
}

// ReportKey is the key of the report of the order file key: `reports/{key}.json`, with key
// shortened (keyPart) when that would be longer than MaxKeyBytes.
func ReportKey(key string) string {
	return "reports/" + keyPart(key, len("reports/.json")) + ".json"
}

// keyPart is the object key as it appears in a derived key (state, rejects, report) that adds
// fixed bytes to it: the key itself when the derived key fits in MaxKeyBytes, otherwise its
// first KeptKeyBytes (cut at a rune boundary), "~" and the hex SHA-256 of the whole key.
func keyPart(key string, fixed int) string {
	if len(key)+fixed <= MaxKeyBytes {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return string(truncate([]byte(key), KeptKeyBytes)) + "~" + hex.EncodeToString(sum[:])
}

// object names one object version.
type object struct {
	Bucket, Key, Version string // Version is order.NullVersion when unversioned
	// ETag names the content of an unversioned object (an event without a version id: an
	// unversioned bucket, or the local stand-in, whose events carry none), so that the same key
	// overwritten with other bytes is a new file while a repeated event for the same bytes is not.
	ETag string
}

// objectOf names the object version of rec.
func objectOf(rec s3event.Record) object {
	obj := object{Bucket: rec.Bucket, Key: rec.Key, Version: rec.VersionID}
	// "null" is the version id of an object written while versioning was suspended: overwritten
	// in place like an unversioned one, so its ETag names the content too.
	if obj.Version == "" || obj.Version == order.NullVersion {
		obj.Version = order.NullVersion
		obj.ETag = strings.Trim(rec.ETag, `"`)
	}
	return obj
}

// uri is s3://bucket/key.
func (o object) uri() string { return "s3://" + o.Bucket + "/" + o.Key }

// versionID is the version id for an S3 request: nil when unversioned.
func (o object) versionID() *string {
	if o.Version == order.NullVersion {
		return nil
	}
	return aws.String(o.Version)
}

// versionIDString is the version id for an S3 event record: "" when unversioned.
func (o object) versionIDString() string { return aws.ToString(o.versionID()) }

// firstReadIfMatch is the If-Match of the first read of an unversioned object: the ETag its
// event named, so that bytes written over it after the event are not read under its state.
func (o object) firstReadIfMatch() *string {
	if o.Version != order.NullVersion || o.ETag == "" {
		return nil
	}
	return aws.String(`"` + o.ETag + `"`)
}

// statePrefix is `state/{key}@{version}`, the name the state object and its sidecars share;
// an unversioned object's version is `null-{eTag}`.
func (o object) statePrefix() string {
	v := o.Version
	if o.Version == order.NullVersion && o.ETag != "" {
		v = order.NullVersion + "-" + o.ETag
	}
	return "state/" + keyPart(o.Key, len("state/@")+len(v)+stateSuffixBytes) + "@" + v
}

// stateKey is the state object: the claim and checkpoint.
func (o object) stateKey() string { return o.statePrefix() + ".json" }

// idsKey is the id set sidecar in slot 0 or 1: a checkpoint writes the slot its saved state
// does not name, so a failed state write leaves the saved one intact.
func (o object) idsKey(slot int) string {
	if slot == 0 {
		return o.statePrefix() + ".ids"
	}
	return o.statePrefix() + ".ids-1"
}

// rejectPartKey is the sidecar holding the rejects saved by the n-th checkpoint that had any.
func (o object) rejectPartKey(n int) string {
	return fmt.Sprintf("%s.rejects-%d.jsonl", o.statePrefix(), n)
}

func (o object) rejectsKey() string { return RejectsKey(o.Key) }
func (o object) reportKey() string  { return ReportKey(o.Key) }

// versionReportKey is the report of this object version, kept when a later version of the key
// replaces reportKey: `reports/{key}.json@{version}` (version as in the state key: the version
// id, or null-{eTag}), with key shortened (keyPart) to fit.
func (o object) versionReportKey() string {
	v := o.Version
	if o.Version == order.NullVersion && o.ETag != "" {
		v = order.NullVersion + "-" + o.ETag
	}
	return "reports/" + keyPart(o.Key, len("reports/.json@")+len(v)) + ".json@" + v
}

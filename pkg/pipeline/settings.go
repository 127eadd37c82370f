package pipeline

import (
	"errors"
	"fmt"
	"time"
)

// Settings is the shape of one deployment. The zero value is not valid; start from Defaults.
type Settings struct {
	// API pacing: the order API's total rate (requests/s) and the number of dispatch instances
	// (event source mapping MaximumConcurrency), so each instance paces at APIRate/Instances.
	APIRate   float64
	Instances int
	// ReservedConcurrency of the dispatch function; must be >= Instances.
	ReservedConcurrency int

	IngestTimeout   time.Duration // ingest function timeout
	DispatchTimeout time.Duration // dispatch function timeout
	RedriveTimeout  time.Duration // redrive function timeout

	// FilesVisibility is the files queue's visibility timeout, at least IngestTimeout (Lambda
	// refuses an SQS event source whose queue's visibility is below the function's timeout).
	// Ingest extends it every third of it while it works (heartbeat), so it need not be 6 x the
	// timeout: a crashed ingest's message is back within it, and the same message takes its
	// claim over at once.
	FilesVisibility  time.Duration
	OrdersVisibility time.Duration // orders queue visibility timeout

	MaxReceiveCount int // redrive policy of both source queues

	QueueRetention time.Duration // files and orders queues
	DLQRetention   time.Duration // both dead-letter queues: must be the longest

	MaxAttempts int // dispatch transient budget; must leave room below MaxReceiveCount

	// The governor's circuit breaker: failures in a row that open it, and one probe per
	// ProbeInterval while open. An order that meets the open breaker comes back after one to
	// three probe intervals as a delayed copy, so 3 x ProbeInterval must fit SendMessage's
	// 15-minute delay.
	BreakerThreshold int
	ProbeInterval    time.Duration
}

// Defaults returns the settings the project deploys unless told otherwise.
func Defaults() Settings {
	return Settings{
		APIRate:             1,
		Instances:           2,
		ReservedConcurrency: 2,
		IngestTimeout:       4 * time.Minute,
		DispatchTimeout:     30 * time.Second,
		RedriveTimeout:      5 * time.Minute,
		FilesVisibility:     4 * time.Minute,
		OrdersVisibility:    3 * time.Minute,
		MaxReceiveCount:     10,
		QueueRetention:      14 * 24 * time.Hour,
		DLQRetention:        14 * 24 * time.Hour,
		MaxAttempts:         8,
		BreakerThreshold:    5,
		ProbeInterval:       30 * time.Second,
	}
}

// Stack output keys: the CDK app exports the deployed resources under these names and the CLI's
// --stack reads them (docs/CONTRACTS.md, "Stack outputs").
const (
	OutputBucket          = "BucketName"
	OutputFilesQueue      = "FilesQueueUrl"
	OutputFilesDLQ        = "FilesDlqUrl"
	OutputOrdersQueue     = "OrdersQueueUrl"
	OutputOrdersDLQ       = "OrdersDlqUrl"
	OutputRedriveFunction = "RedriveFunctionName"
	OutputAlarmTopic      = "AlarmTopicArn"
	OutputDeliveryTable   = "DeliveryTable"
	OutputGovernorTable   = "GovernorTableName"
	// OutputAPIRate is Settings.APIRate as deployed (a decimal number), for status's ETA.
	OutputAPIRate = "ApiRate"
)

// UploadsPrefix is the key prefix of the order files: only objects created under it notify the
// files queue and are ingested (docs/CONTRACTS.md).
const UploadsPrefix = "uploads/"

// MinFilesVisibility is the shortest files queue visibility: ingest's heartbeat runs every third
// of it.
const MinFilesVisibility = 3 * time.Second

// SQS limits.
const (
	MaxRetention  = 14 * 24 * time.Hour
	MaxVisibility = 12 * time.Hour
	MaxDelay      = 15 * time.Minute // SendMessage DelaySeconds
)

// DrainTime is how long a backlog of n orders takes at the API rate.
func (s Settings) DrainTime(n int64) time.Duration {
	if s.APIRate <= 0 {
		return 0
	}
	return time.Duration(float64(n) / s.APIRate * float64(time.Second))
}

// MaxBacklog is the most orders that can drain at the API rate before QueueRetention deletes them.
func (s Settings) MaxBacklog() int64 { return int64(s.APIRate * s.QueueRetention.Seconds()) }

// Validate checks every rule and returns all violations joined, each saying what to change.
func (s Settings) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.APIRate <= 0 {
		bad("APIRate %v: must be > 0", s.APIRate)
	}
	if s.Instances < 2 {
		bad("Instances (ESM MaximumConcurrency) %d: SQS event sources need at least 2", s.Instances)
	}
	if s.Instances > s.ReservedConcurrency {
		bad("Instances (ESM MaximumConcurrency) %d > ReservedConcurrency %d: the mapping would be throttled; raise reserved concurrency or lower MaximumConcurrency", s.Instances, s.ReservedConcurrency)
	}
	if s.OrdersVisibility < 6*s.DispatchTimeout {
		bad("orders queue visibility %v < 6 x function timeout %v (= %v): raise the visibility timeout", s.OrdersVisibility, s.DispatchTimeout, 6*s.DispatchTimeout)
	}
	// AWS's hard rule for every SQS event source (CreateEventSourceMapping fails otherwise); the
	// orders queue's 6 x above covers dispatch.
	if s.FilesVisibility < s.IngestTimeout {
		bad("files queue visibility %v < ingest timeout %v: Lambda refuses an SQS event source whose queue's visibility is below the function timeout; lower the timeout (ingest continues in a new invocation) or raise the visibility", s.FilesVisibility, s.IngestTimeout)
	}
	if s.FilesVisibility < MinFilesVisibility {
		bad("files queue visibility %v < %v: ingest's heartbeat extends it every third of it, at least every second", s.FilesVisibility, MinFilesVisibility)
	}
	for _, q := range []struct {
		name       string
		visibility time.Duration
	}{{"files queue", s.FilesVisibility}, {"orders queue", s.OrdersVisibility}} {
		if q.visibility > MaxVisibility {
			bad("%s visibility %v > SQS maximum %v", q.name, q.visibility, MaxVisibility)
		}
	}
	if s.MaxReceiveCount < 5 {
		bad("maxReceiveCount %d < 5: Lambda's poller can receive a message without invoking; use at least 5", s.MaxReceiveCount)
	}
	if s.MaxAttempts < 1 || s.MaxAttempts >= s.MaxReceiveCount {
		bad("MaxAttempts %d must be >= 1 and < maxReceiveCount %d, so dispatch parks with a class before the queue's redrive policy does", s.MaxAttempts, s.MaxReceiveCount)
	}
	if s.QueueRetention > MaxRetention || s.DLQRetention > MaxRetention {
		bad("retention above the SQS maximum %v", MaxRetention)
	}
	if s.DLQRetention < s.QueueRetention {
		bad("DLQ retention %v < source queue retention %v: a DLQ keeps the original enqueue time, so it must keep messages longest", s.DLQRetention, s.QueueRetention)
	}
	if s.BreakerThreshold < 1 {
		bad("BreakerThreshold %d: want at least 1 failure in a row to open the breaker", s.BreakerThreshold)
	}
	if s.ProbeInterval < time.Second || 3*s.ProbeInterval > MaxDelay {
		bad("ProbeInterval %v: want 1s to %v (orders held by the open breaker come back after one to three intervals, a SendMessage delay of at most %v)", s.ProbeInterval, MaxDelay/3, MaxDelay)
	}
	return errors.Join(errs...)
}

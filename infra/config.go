package main

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// Context keys read by ParseContext (`cdk synth -c key=value`, or "context" in cdk.json).
const (
	CtxAPIBaseURL          = "apiBaseUrl"          // required: https://... of the order API
	CtxAPISecretARN        = "apiSecretArn"        // optional: Secrets Manager secret with the Authorization value
	CtxAPIRate             = "apiRate"             // the API's total rate, requests/s (default 1)
	CtxInstances           = "instances"           // dispatch ESM MaximumConcurrency (default 2, >= 2)
	CtxReservedConcurrency = "reservedConcurrency" // dispatch reserved concurrency (default = instances)
	CtxIngestBatchSize     = "ingestBatchSize"     // files queue ESM batch size 1..10 (default 1)
	CtxAlarmEmail          = "alarmEmail"          // optional: email subscribed to the alarm topic
	CtxTracing             = "tracing"             // X-Ray active tracing on the functions (default false)
	CtxGovernorPITR        = "governorPitr"        // point-in-time recovery of the governor table (default false)
	CtxRedriveSchedule     = "redriveSchedule"     // optional EventBridge schedule for redrive: rate(...) or cron(...)
	CtxAssetDir            = "assetDir"            // directory holding <function>/bootstrap (default build)
	CtxPipeline            = "pipeline"            // true: synthesize the CI/CD pipeline stack instead
	CtxConnectionARN       = "connectionArn"       // pipeline source: CodeStar connection ARN ...
	CtxRepository          = "repository"          // ... and "owner/name" of the repository
	CtxCodeCommitRepo      = "codeCommitRepo"      // or: name of a CodeCommit repository
	CtxBranch              = "branch"              // pipeline source branch (default main)
)

// Names and limits the infra relies on beyond pipeline.Settings.
const (
	// APITimeout is the ORDER_API_TIMEOUT given to dispatch (its default); the dispatch timeout
	// must exceed it.
	APITimeout = orderapi.DefaultTimeout
	// CheckpointMargin is the CHECKPOINT_MARGIN given to ingest (its default); the ingest
	// timeout must exceed it.
	CheckpointMargin = ingest.DefaultCheckpointMargin
	// MaxLambdaTimeout is Lambda's limit on a function timeout.
	MaxLambdaTimeout = 15 * time.Minute
	// MaxESMConcurrency is the largest MaximumConcurrency of an SQS event source mapping.
	MaxESMConcurrency = 1000
	// DispatchRound is a dispatch instance's time per order besides waiting for its request
	// slot, for planning: the PUT, the governor's and the delivery record's writes, the
	// deletion and the event source's next invoke. An instance holds one slot at a time, so
	// the instances keep the schedule full only if instances >= apiRate x DispatchRound (the
	// governor benchmarks at 20 requests/s: 2 instances 73 %, 4 instances 87 %).
	DispatchRound = 200 * time.Millisecond
	// DefaultAssetDir is where `make build` leaves build/<function>/bootstrap.
	DefaultAssetDir = "build"
)

// PipelineSource says where the CI/CD pipeline takes the code from: either a CodeStar
// connection (ConnectionARN and Repository "owner/name") or a CodeCommit repository.
type PipelineSource struct {
	ConnectionARN  string
	Repository     string
	CodeCommitRepo string
	Branch         string
}

// Config is one deployment of the app, read from CDK context. The zero value is not valid;
// ParseContext fills the defaults and Validate checks it.
type Config struct {
	APIBaseURL      string
	APISecretARN    string // empty: no Authorization header
	AlarmEmail      string // empty: no subscription (subscribe later)
	Tracing         bool
	GovernorPITR    bool
	RedriveSchedule string // empty: redrive runs only when invoked
	IngestBatchSize int
	AssetDir        string
	Settings        pipeline.Settings

	Pipeline bool
	Source   PipelineSource
}

// DefaultConfig returns the defaults ParseContext starts from; APIBaseURL stays empty.
func DefaultConfig() Config {
	return Config{
		IngestBatchSize: 1,
		AssetDir:        DefaultAssetDir,
		Settings:        pipeline.Defaults(),
		Source:          PipelineSource{Branch: "main"},
	}
}

// ParseContext reads the Config from get (node.TryGetContext): values may be JSON values from
// cdk.json or strings from `-c key=value`. It applies defaults and returns Validate's errors
// joined with any value that cannot be read.
func ParseContext(get func(key string) any) (Config, error) {
	c := DefaultConfig()
	var errs []error
	str := func(key string, dst *string) {
		switch v := get(key).(type) {
		case nil:
		case string:
			*dst = strings.TrimSpace(v)
		default:
			errs = append(errs, fmt.Errorf("context %s: want a string, got %T", key, v))
		}
	}
	num := func(key string, dst *float64) {
		switch v := get(key).(type) {
		case nil:
		case float64:
			*dst = v
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("context %s: %q is not a number", key, v))
				return
			}
			*dst = f
		default:
			errs = append(errs, fmt.Errorf("context %s: want a number, got %T", key, v))
		}
	}
	integer := func(key string, dst *int) {
		f := float64(*dst)
		num(key, &f)
		if f != float64(int(f)) {
			errs = append(errs, fmt.Errorf("context %s: %v is not a whole number", key, f))
			return
		}
		*dst = int(f)
	}
	boolean := func(key string, dst *bool) {
		switch v := get(key).(type) {
		case nil:
		case bool:
			*dst = v
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("context %s: %q is not true or false", key, v))
				return
			}
			*dst = b
		default:
			errs = append(errs, fmt.Errorf("context %s: want true or false, got %T", key, v))
		}
	}

	str(CtxAPIBaseURL, &c.APIBaseURL)
	str(CtxAPISecretARN, &c.APISecretARN)
	str(CtxAlarmEmail, &c.AlarmEmail)
	str(CtxRedriveSchedule, &c.RedriveSchedule)
	str(CtxAssetDir, &c.AssetDir)
	boolean(CtxTracing, &c.Tracing)
	boolean(CtxGovernorPITR, &c.GovernorPITR)
	integer(CtxIngestBatchSize, &c.IngestBatchSize)
	num(CtxAPIRate, &c.Settings.APIRate)
	integer(CtxInstances, &c.Settings.Instances)
	c.Settings.ReservedConcurrency = c.Settings.Instances
	integer(CtxReservedConcurrency, &c.Settings.ReservedConcurrency)
	boolean(CtxPipeline, &c.Pipeline)
	str(CtxConnectionARN, &c.Source.ConnectionARN)
	str(CtxRepository, &c.Source.Repository)
	str(CtxCodeCommitRepo, &c.Source.CodeCommitRepo)
	str(CtxBranch, &c.Source.Branch)
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, c.Validate()
}

var (
	secretARN     = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$`)
	connectionARN = regexp.MustCompile(`^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:[0-9]{12}:connection/[A-Za-z0-9-]+$`)
	repository    = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
	repoName      = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)
	schedule      = regexp.MustCompile(`^(rate|cron)\(.+\)$`)
)

// Validate checks the Settings rules (pipeline.Settings.Validate) and the ones they do not cover:
// the API URL, ARNs, Lambda and event source limits, the functions' own timeouts and the pipeline
// source. It returns every violation joined, each naming the context key to change.
func (c Config) Validate() error {
	var errs []error
	if err := c.Settings.Validate(); err != nil {
		errs = append(errs, err)
	}
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if c.APIBaseURL == "" {
		bad("context %s is required: the order API base URL, https://...", CtxAPIBaseURL)
	} else if u, err := url.Parse(c.APIBaseURL); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("context %s %q: must be an absolute https:// URL", CtxAPIBaseURL, c.APIBaseURL)
	} else if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		bad("context %s %q: no credentials, query or fragment (credentials belong in %s)", CtxAPIBaseURL, c.APIBaseURL, CtxAPISecretARN)
	}
	if c.APISecretARN != "" && !secretARN.MatchString(c.APISecretARN) {
		bad("context %s %q: not a Secrets Manager secret ARN", CtxAPISecretARN, c.APISecretARN)
	}
	if c.AlarmEmail != "" {
		if a, err := mail.ParseAddress(c.AlarmEmail); err != nil || a.Address != c.AlarmEmail {
			bad("context %s %q: not a plain email address", CtxAlarmEmail, c.AlarmEmail)
		}
	}
	if c.RedriveSchedule != "" && !schedule.MatchString(c.RedriveSchedule) {
		bad("context %s %q: want rate(...) or cron(...)", CtxRedriveSchedule, c.RedriveSchedule)
	}
	if c.IngestBatchSize < 1 || c.IngestBatchSize > 10 {
		bad("context %s %d: must be 1..10 (one file can take the whole ingest timeout)", CtxIngestBatchSize, c.IngestBatchSize)
	}
	if c.AssetDir == "" {
		bad("context %s: must not be empty", CtxAssetDir)
	}
	s := c.Settings
	if s.Instances > MaxESMConcurrency {
		bad("context %s %d: SQS event source MaximumConcurrency is at most %d", CtxInstances, s.Instances, MaxESMConcurrency)
	}
	need := int(s.APIRate * DispatchRound.Seconds())
	if float64(need) < s.APIRate*DispatchRound.Seconds() {
		need++ // the ceiling
	}
	if s.Instances < need {
		bad("context %s %d < %s %v x %v (an instance's round per order besides its wait): raise %s to %d (and %s with it), or the instances cannot keep the API's schedule full", CtxInstances, s.Instances, CtxAPIRate, s.APIRate, DispatchRound, CtxInstances, need, CtxReservedConcurrency)
	}
	for _, f := range []struct {
		name    string
		timeout time.Duration
	}{{"ingest", s.IngestTimeout}, {"dispatch", s.DispatchTimeout}, {"redrive", s.RedriveTimeout}} {
		if f.timeout <= 0 || f.timeout > MaxLambdaTimeout {
			bad("%s timeout %v: must be > 0 and <= Lambda's %v", f.name, f.timeout, MaxLambdaTimeout)
		}
	}
	if s.DispatchTimeout <= APITimeout {
		bad("dispatch timeout %v must exceed ORDER_API_TIMEOUT %v, so a slow API is recorded as a timeout", s.DispatchTimeout, APITimeout)
	}
	if s.IngestTimeout <= CheckpointMargin {
		bad("ingest timeout %v must exceed CHECKPOINT_MARGIN %v", s.IngestTimeout, CheckpointMargin)
	}
	if c.Pipeline {
		errs = append(errs, c.Source.validate()...)
	}
	return errors.Join(errs...)
}

func (p PipelineSource) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch {
	case p.ConnectionARN != "" && p.CodeCommitRepo != "":
		bad("pipeline source: give %s+%s or %s, not both", CtxConnectionARN, CtxRepository, CtxCodeCommitRepo)
	case p.ConnectionARN != "":
		if !connectionARN.MatchString(p.ConnectionARN) {
			bad("context %s %q: not a CodeStar connection ARN", CtxConnectionARN, p.ConnectionARN)
		}
		if !repository.MatchString(p.Repository) {
			bad("context %s %q: want owner/name", CtxRepository, p.Repository)
		}
	case p.CodeCommitRepo != "":
		if !repoName.MatchString(p.CodeCommitRepo) {
			bad("context %s %q: not a CodeCommit repository name", CtxCodeCommitRepo, p.CodeCommitRepo)
		}
	default:
		bad("context pipeline=true needs a source: %s and %s, or %s", CtxConnectionARN, CtxRepository, CtxCodeCommitRepo)
	}
	if p.Branch == "" || strings.ContainsAny(p.Branch, " '\"") {
		bad("context %s %q: not a branch name", CtxBranch, p.Branch)
	}
	return errs
}

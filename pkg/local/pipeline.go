package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/pkg/delivery"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/governor"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/orderapi"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
	"github.com/orderpipe/orderpipe/pkg/s3event"
)

// DefaultReceiveWait is the pollers' long poll when Options.ReceiveWait is zero.
const DefaultReceiveWait = time.Second

// Options shape a Pipeline. AWS, Names and APIBaseURL are required; the other zero values are
// the defaults noted.
type Options struct {
	// AWS configures the SDK clients; its endpoint (BaseEndpoint or AWS_ENDPOINT_URL) is the
	// stand-in. S3 is addressed path-style.
	AWS aws.Config
	// Names of the resources Provision creates or finds.
	Names Names
	// Settings of the deployment: the queues are provisioned with them and the handlers and
	// pollers get their timeouts, API rate, instances and transient budget. Zero: the defaults.
	Settings pipeline.Settings
	// APIBaseURL is the order API's base URL, for example the stand-in's (pkg/local/apiserver).
	APIBaseURL string
	// Template, when set, is the synthesized stack the pipeline runs as (Template.Wiring): the
	// queues are provisioned with its attributes (Settings is overridden by Wiring.Settings),
	// the handlers get its functions' literal environment variables on top of the local
	// resources' (the order API's URL and secret stay local), and the pollers its event source
	// mappings' batch size and MaximumConcurrency and its functions' timeouts.
	Template *Template
	// Retime, when set with Template, adjusts the settings taken from it before anything is
	// provisioned (the end-to-end tests shorten the timings to seconds); the handlers'
	// configurations then follow the adjusted settings.
	Retime func(*pipeline.Settings)

	// Ingest and Dispatch, when set, adjust the configurations the pipeline builds from the
	// resources and Settings (those of a deployment) before they are validated.
	Ingest   func(*ingest.Config)
	Dispatch func(*dispatch.Config)
	// DispatchOptions returns the dispatch.Options of instance i (0 <= i < Settings.Instances)
	// with cfg, the DispatchConfig; it is called once per instance by NewPipeline, and its error
	// fails NewPipeline. In what it returns, a nil Logger is Logger and a nil Metrics discards
	// the EMF lines, a nil Governor is one on the governor table (GovernorTable of the
	// DispatchConfig; the instances share one store) or, with no table, the Dispatcher's own, and
	// a nil Ledger is the one on the delivery table (DeliveryTable; all instances share it, none
	// without a table).
	DispatchOptions func(i int, cfg dispatch.Config) (dispatch.Options, error)

	// FunctionAWS, when set, returns the configuration function ("ingest" or "dispatch") signs
	// with, given the provisioned resources: its handler and the poller feeding it use it, as
	// Lambda polls a queue with the function's own role (see StartMotoIAM and CreatePrincipal).
	// Nil: AWS for both.
	FunctionAWS func(ctx context.Context, function string, res Resources) (aws.Config, error)

	// Bootstraps, when set, is a directory of compiled functions (<dir>/ingest/bootstrap and
	// <dir>/dispatch/bootstrap, as `make build` writes them): the pollers invoke them as
	// Processes through the Runtime API (one per poller slot) with the configurations'
	// environment, instead of the handlers in this process. DispatchOptions is not used then.
	// The dispatch bootstraps reach the stand-in through a proxy that passes one DynamoDB
	// request at a time (the stand-in's conditional writes are not atomic between processes).
	Bootstraps string
	// BootstrapOutput receives the bootstraps' stdout and stderr; nil: os.Stderr.
	BootstrapOutput io.Writer

	// InFlightEvery, when set, makes the running Pipeline publish its pollers' in-flight
	// messages to InFlightKey in the bucket at this interval (and remove it when it stops).
	InFlightEvery time.Duration

	// ReceiveWait is the pollers' long poll, 1 s to 20 s; zero: DefaultReceiveWait.
	ReceiveWait time.Duration
	// Logger receives the pollers' logs and, unless DispatchOptions says otherwise, dispatch's.
	// The ingest handler logs through slog.Default, as in Lambda. Nil: slog.Default().
	Logger *slog.Logger
}

// Pipeline is the whole pipeline on this machine: the resources Provision made, the ingest
// handler behind a Poller of the files queue (batch size 1, two instances), and
// Settings.Instances dispatch instances behind a Poller of the orders queue (batch size 1,
// MaximumConcurrency Settings.Instances), each invocation taking a dispatch.Dispatcher of its
// own as Lambda runs concurrent invocations in separate instances.
//
// Build it with NewPipeline, then Start it once and Stop it once (or Run it). The exported
// fields may be read at any time; Files and Orders (their Handler, FunctionTimeout, ...) may be
// changed between NewPipeline and Start, not after. Start, Stop and Pending are safe for
// concurrent use.
type Pipeline struct {
	Resources Resources
	Settings  pipeline.Settings
	// IngestConfig and DispatchConfig are the configurations the handlers run with.
	IngestConfig   ingest.Config
	DispatchConfig dispatch.Config
	// Files feeds the files queue to ingest; Orders feeds the orders queue to dispatch.
	Files, Orders *Poller
	// S3 and SQS are clients with Options.AWS, to observe the pipeline with.
	S3  *s3.Client
	SQS *sqs.Client
	// IngestS3, IngestSQS and DispatchSQS are the clients the functions and their pollers use:
	// with Options.FunctionAWS's configurations, or S3 and SQS.
	IngestS3               *s3.Client
	IngestSQS, DispatchSQS *sqs.Client

	procs []*Process   // the bootstraps' execution environments, closed by Stop
	turns *dynamoTurns // the dispatch bootstraps' way to the stand-in's DynamoDB, closed by Stop

	inflightEvery time.Duration // Options.InFlightEvery
	log           *slog.Logger

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
}

// NewPipeline provisions the resources (see Provision) and builds the handlers and pollers
// without starting them. Errors name what is missing or invalid, or the step that failed.
func NewPipeline(ctx context.Context, o Options) (*Pipeline, error) {
	if o.APIBaseURL == "" {
		return nil, errors.New("local pipeline: APIBaseURL is required")
	}
	if o.Settings == (pipeline.Settings{}) {
		o.Settings = pipeline.Defaults()
	}
	var wiring *Wiring
	if o.Template != nil {
		w, err := o.Template.Wiring()
		if err != nil {
			return nil, fmt.Errorf("local pipeline: %w", err)
		}
		for _, f := range []FunctionWiring{w.Ingest, w.Dispatch} {
			if !f.ReportBatchItemFailures {
				return nil, errors.New("local pipeline: an event source mapping of the template does not report batch item failures, which the local poller always honours")
			}
		}
		o.Settings, wiring = w.Settings(o.Settings), &w
		if o.Retime != nil {
			o.Retime(&o.Settings)
		}
	}
	if o.ReceiveWait == 0 {
		o.ReceiveWait = DefaultReceiveWait
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	res, err := Provision(ctx, o.AWS, o.Settings, o.Names)
	if err != nil {
		return nil, fmt.Errorf("local pipeline: %w", err)
	}
	p := &Pipeline{
		Resources: res,
		Settings:  o.Settings,
		S3:        s3.NewFromConfig(o.AWS, S3Options),
		SQS:       sqs.NewFromConfig(o.AWS),

		inflightEvery: o.InFlightEvery,
		log:           o.Logger,
	}
	p.IngestS3, p.IngestSQS, p.DispatchSQS = p.S3, p.SQS, p.SQS
	dispatchAWS := o.AWS
	if o.FunctionAWS != nil {
		ic, err := o.FunctionAWS(ctx, "ingest", res)
		if err != nil {
			return nil, fmt.Errorf("local pipeline: ingest credentials: %w", err)
		}
		dc, err := o.FunctionAWS(ctx, "dispatch", res)
		if err != nil {
			return nil, fmt.Errorf("local pipeline: dispatch credentials: %w", err)
		}
		p.IngestS3, p.IngestSQS, p.DispatchSQS = s3.NewFromConfig(ic, S3Options), sqs.NewFromConfig(ic), sqs.NewFromConfig(dc)
		dispatchAWS = dc
	}
	p.IngestConfig = res.IngestConfig().WithSettings(o.Settings)
	p.IngestConfig.FilesVisibility = o.Settings.FilesVisibility
	p.DispatchConfig = res.DispatchConfig(o.Settings, o.APIBaseURL)
	filesBatch, filesConcurrency, ordersBatch := 1, 2, 1
	if wiring != nil {
		if p.IngestConfig, err = ingest.LoadConfig(overlay(p.IngestConfig.Environ(), wiring.Ingest.Env)); err != nil {
			return nil, fmt.Errorf("local pipeline: the template's ingest environment: %w", err)
		}
		if p.DispatchConfig, err = dispatch.LoadConfig(overlay(p.DispatchConfig.Environ(), wiring.Dispatch.Env, dispatch.EnvAPIBaseURL, dispatch.EnvAPISecretARN)); err != nil {
			return nil, fmt.Errorf("local pipeline: the template's dispatch environment: %w", err)
		}
		// What Settings decides wins over the template's literal values (equal unless Retime
		// or the caller's API rate changed them).
		p.IngestConfig, p.DispatchConfig = p.IngestConfig.WithSettings(o.Settings), p.DispatchConfig.WithSettings(o.Settings)
		p.IngestConfig.FilesVisibility = o.Settings.FilesVisibility
		filesBatch, ordersBatch = wiring.Ingest.BatchSize, wiring.Dispatch.BatchSize
		if wiring.Ingest.MaxConcurrency > 0 {
			filesConcurrency = wiring.Ingest.MaxConcurrency
		}
	}
	if o.Ingest != nil {
		o.Ingest(&p.IngestConfig)
	}
	if err := p.IngestConfig.Validate(); err != nil {
		return nil, fmt.Errorf("local pipeline: ingest config: %w", err)
	}
	if o.Dispatch != nil {
		o.Dispatch(&p.DispatchConfig)
	}
	if err := p.DispatchConfig.Validate(); err != nil {
		return nil, fmt.Errorf("local pipeline: %w", err)
	}
	// One Ledger for all instances: this process's writes go one at a time (pkg/delivery).
	var ledger *delivery.Ledger
	if t := p.DispatchConfig.DeliveryTable; t != "" {
		ledger = delivery.New(dynamodb.NewFromConfig(dispatchAWS), t, nil)
	}
	// One store for all instances: this process's writes go one at a time (governor.DynamoStore).
	var store governor.Store
	if t := p.DispatchConfig.GovernorTable; t != "" {
		store = governor.NewDynamoStore(dynamodb.NewFromConfig(o.AWS), t, "")
	}
	instance := func(i int) (dispatch.Options, error) {
		var do dispatch.Options
		if o.DispatchOptions != nil {
			var err error
			if do, err = o.DispatchOptions(i, p.DispatchConfig); err != nil {
				return do, fmt.Errorf("dispatch instance %d: %w", i, err)
			}
		}
		if do.Logger == nil {
			do.Logger = o.Logger
		}
		if do.Metrics == nil {
			do.Metrics = io.Discard
		}
		if do.Ledger == nil && ledger != nil {
			do.Ledger = ledger
		}
		if do.Governor == nil && store != nil {
			gc := p.DispatchConfig.Governor(p.DispatchConfig.APIRate)
			gc.Instance = fmt.Sprintf("local-%d", i)
			g, err := governor.New(gc, store, nil)
			if err != nil {
				return do, fmt.Errorf("dispatch instance %d: %w", i, err)
			}
			do.Governor = g
		}
		return do, nil
	}
	dispatchH, err := dispatchPool(p.DispatchConfig, p.DispatchSQS, o.Settings.Instances, instance)
	if err != nil {
		return nil, fmt.Errorf("local pipeline: %w", err)
	}
	p.Files = &Poller{
		Client: p.IngestSQS, QueueURL: res.FilesQueueURL, QueueARN: res.FilesQueueARN, BatchSize: filesBatch, MaxConcurrency: filesConcurrency,
		FunctionTimeout: o.Settings.IngestTimeout, WaitTime: o.ReceiveWait, FunctionName: "ingest",
		Handler: ingest.New(p.IngestConfig, p.IngestS3, p.IngestSQS, ingest.Options{}).Handle, Logger: o.Logger,
	}
	p.Orders = &Poller{
		Client: p.DispatchSQS, QueueURL: res.OrdersQueueURL, QueueARN: res.OrdersQueueARN, BatchSize: ordersBatch, MaxConcurrency: o.Settings.Instances,
		FunctionTimeout: o.Settings.DispatchTimeout, WaitTime: o.ReceiveWait, FunctionName: "dispatch",
		Handler: dispatchH, Logger: o.Logger,
	}
	if o.Bootstraps != "" {
		if err := p.useBootstraps(ctx, o, dispatchAWS, filesConcurrency); err != nil {
			p.closeProcs()
			return nil, fmt.Errorf("local pipeline: %w", err)
		}
	}
	return p, nil
}

// useBootstraps points the pollers at Processes running the compiled ingest and dispatch
// functions of o.Bootstraps, signing with the credentials the in-process handlers would use.
func (p *Pipeline) useBootstraps(ctx context.Context, o Options, dispatchAWS aws.Config, filesConcurrency int) error {
	ingestAWS := o.AWS
	if o.FunctionAWS != nil {
		var err error
		if ingestAWS, err = o.FunctionAWS(ctx, "ingest", p.Resources); err != nil {
			return fmt.Errorf("ingest credentials: %w", err)
		}
	}
	for _, f := range []struct {
		name   string
		cfg    aws.Config
		env    map[string]string
		n      int
		poller *Poller
	}{
		{"ingest", ingestAWS, p.IngestConfig.Environ(), filesConcurrency, p.Files},
		{"dispatch", dispatchAWS, p.DispatchConfig.Environ(), o.Settings.Instances, p.Orders},
	} {
		creds, err := f.cfg.Credentials.Retrieve(ctx)
		if err != nil {
			return fmt.Errorf("%s credentials: %w", f.name, err)
		}
		endpoint := aws.ToString(f.cfg.BaseEndpoint)
		if endpoint == "" {
			endpoint = os.Getenv("AWS_ENDPOINT_URL")
		}
		if f.name == "dispatch" {
			// The instances share the governor's record and the delivery records: their
			// conditional writes must reach the stand-in one at a time (dynamoTurns).
			if p.turns, err = startDynamoTurns(endpoint); err != nil {
				return fmt.Errorf("dispatch bootstrap: %w", err)
			}
			endpoint = p.turns.url()
		}
		f.env["AWS_ENDPOINT_URL"], f.env["AWS_ACCESS_KEY_ID"], f.env["AWS_SECRET_ACCESS_KEY"] = endpoint, creds.AccessKeyID, creds.SecretAccessKey
		if creds.SessionToken != "" {
			f.env["AWS_SESSION_TOKEN"] = creds.SessionToken
		}
		var procs []*Process
		for range f.n {
			proc := &Process{
				Path: filepath.Join(o.Bootstraps, f.name, "bootstrap"), Env: f.env, FunctionName: f.name,
				Region: f.cfg.Region, Timeout: f.poller.FunctionTimeout, Output: o.BootstrapOutput,
			}
			if err := proc.Start(); err != nil {
				return fmt.Errorf("%s bootstrap: %w", f.name, err)
			}
			p.procs = append(p.procs, proc)
			procs = append(procs, proc)
		}
		f.poller.Handler = SQSHandler(Pool(procs...))
	}
	return nil
}

// closeProcs closes the bootstraps' Processes.
func (p *Pipeline) closeProcs() error {
	var errs []error
	for _, proc := range p.procs {
		errs = append(errs, proc.Close())
	}
	if p.turns != nil {
		errs = append(errs, p.turns.close())
	}
	return errors.Join(errs...)
}

// dispatchPool is the dispatch function with n warm instances: each invocation takes a
// Dispatcher from the pool and gives it back when done.
func dispatchPool(cfg dispatch.Config, client *sqs.Client, n int, options func(int) (dispatch.Options, error)) (Handler, error) {
	pool := make(chan *dispatch.Dispatcher, n)
	for i := range n {
		api, err := orderapi.New(cfg.OrderAPI(), orderapi.Options{})
		if err != nil {
			return nil, fmt.Errorf("order API client: %w", err)
		}
		o, err := options(i)
		if err != nil {
			return nil, err
		}
		pool <- dispatch.New(cfg, client, api, o)
	}
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var d *dispatch.Dispatcher
		select {
		case d = <-pool:
		case <-ctx.Done():
			return events.SQSEventResponse{}, fmt.Errorf("wait for a dispatch instance: %w", ctx.Err())
		}
		defer func() { pool <- d }()
		return d.Handle(ctx, ev)
	}, nil
}

// Start runs both pollers in the background until Stop is called or ctx is done. Calls after
// the first do nothing.
func (p *Pipeline) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return
	}
	p.started = true
	ctx, p.cancel = context.WithCancel(ctx)
	// The ingest invocations in flight checkpoint at once when the pipeline stops (only those
	// running in this process: a bootstrap goes on to its own checkpoint time).
	files, stop := p.Files.Handler, ctx.Done()
	p.Files.Handler = func(ictx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		return files(ingest.WithStop(ictx, stop), ev)
	}
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, pl := range []*Poller{p.Files, p.Orders} {
			wg.Go(func() { errs[i] = pl.Run(ctx) })
		}
		if p.inflightEvery > 0 {
			// Stops with the pollers' context: the last invocations are not in it.
			wg.Go(func() { p.publishInFlight(ctx, p.inflightEvery) })
		}
		wg.Wait()
		p.err = errors.Join(errs...)
	}()
}

// Stop stops both pollers and waits until the receives and invocations in flight have
// finished (see Poller.Run; an ingest invocation in this process checkpoints at its next line,
// ingest.WithStop, and hands the rest of its file to a continuation on the files queue, which a
// later pipeline on the same resources resumes), then closes the bootstraps' Processes. It returns the pollers'
// errors (a field out of range) and the Processes'; before Start it only closes the Processes.
func (p *Pipeline) Stop() error {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if !started {
		return p.closeProcs()
	}
	p.cancel()
	<-p.done
	return errors.Join(p.err, p.closeProcs())
}

// Run starts the pipeline, runs it until ctx is done and stops it; it returns Stop's error.
func (p *Pipeline) Run(ctx context.Context) error {
	p.Start(ctx)
	<-ctx.Done()
	return p.Stop()
}

// Busy is what the pipeline's invocations in flight work on.
type Busy struct {
	Files  []string // the files ingest reads, s3://bucket/key
	Orders []string // the ids of the orders dispatch sends
}

// Busy returns what the invocations in flight work on now. Safe for concurrent use.
func (p *Pipeline) Busy() Busy {
	var b Busy
	for _, inv := range p.Files.InFlight() {
		for _, m := range inv.Records {
			msg, err := s3event.Decode(m.Body)
			if err != nil {
				continue
			}
			recs := msg.Records
			if c := msg.Continuation; c != nil {
				recs = []s3event.Record{c.Record()}
			}
			for _, r := range recs {
				if r.Created() {
					b.Files = append(b.Files, "s3://"+r.Bucket+"/"+r.Key)
				}
			}
		}
	}
	for _, inv := range p.Orders.InFlight() {
		for _, m := range inv.Records {
			if a, ok := m.MessageAttributes[order.AttrOrderID]; ok && a.StringValue != nil {
				b.Orders = append(b.Orders, *a.StringValue)
			}
		}
	}
	return b
}

// Pending is how many messages the files and the orders queue hold: visible, in flight or
// delayed, as the queues approximate them. The pipeline is quiescent while both stay 0 (an
// order given back with a delay counts while it waits).
func (p *Pipeline) Pending(ctx context.Context) (files, orders int, err error) {
	if files, err = QueueDepth(ctx, p.SQS, p.Resources.FilesQueueURL); err != nil {
		return 0, 0, err
	}
	orders, err = QueueDepth(ctx, p.SQS, p.Resources.OrdersQueueURL)
	return files, orders, err
}

// QueueDepth is how many messages the queue at url holds: visible, in flight or delayed, as the
// queue approximates them.
func QueueDepth(ctx context.Context, client *sqs.Client, url string) (int, error) {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
	}})
	if err != nil {
		return 0, fmt.Errorf("depth of %s: %w", url, err)
	}
	total := 0
	for _, v := range out.Attributes {
		n, _ := strconv.Atoi(v)
		total += n
	}
	return total, nil
}

// overlay is a getenv of local's variables with the template's on top, except the keep ones.
func overlay(local, template map[string]string, keep ...string) func(string) string {
	env := maps.Clone(local)
	for k, v := range template {
		if !slices.Contains(keep, k) {
			env[k] = v
		}
	}
	return func(k string) string { return env[k] }
}

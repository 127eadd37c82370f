package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"

	"github.com/orderpipe/orderpipe/pkg/dispatch"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/local"
	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// pipelineOptions shape a pipeline run on this machine.
type pipelineOptions struct {
	prefix      string           // resources are local.NamesFor(prefix)
	apiURL      string           // the order API's base URL; empty: start the stand-in
	standin     apiserver.Config // the stand-in's shape, when started
	standinAddr string           // where the stand-in listens
	rate        float64          // API_RATE; 0: the stand-in's RPS (or 1 with --api)
	instances   int              // API_INSTANCES, the dispatch poller's MaxConcurrency
	logLevel    slog.Level
	// template is a synthesized stack template (`cdk synth`'s cdk.out/OrderPipe.template.json):
	// the queues, the functions' timeouts and environment and the event source mappings are
	// taken from it (local.Options.Template); empty: pkg/local's defaults.
	template string
	// bootstraps is a directory of compiled functions (`make build`'s build/): ingest and
	// dispatch run as those binaries through pkg/local's Runtime API; empty: in this process.
	bootstraps string
}

// registerPipelineFlags binds the flags of local and demo to fs.
func registerPipelineFlags(fs *flag.FlagSet, po *pipelineOptions, defaultPrefix string, defaultRPS float64, defaultLevel slog.Level) {
	fs.StringVar(&po.prefix, "name-prefix", defaultPrefix, "resource names: PREFIX-uploads, PREFIX-files, PREFIX-orders, PREFIX-orders-dlq, ...")
	fs.StringVar(&po.apiURL, "api", "", "the order API's base URL; empty: start the stand-in order API here")
	fs.StringVar(&po.standinAddr, "standin-addr", "127.0.0.1:0", "where the stand-in order API listens")
	fs.Float64Var(&po.rate, "rate", 0, "API_RATE the dispatchers pace at, requests/s (default: the stand-in's rate, or 1 with --api)")
	fs.IntVar(&po.instances, "instances", 2, "API_INSTANCES: concurrent dispatch instances (ESM MaximumConcurrency, at least 2)")
	fs.TextVar(&po.logLevel, "log-level", defaultLevel, "log level of the handlers and pollers on stderr")
	fs.StringVar(&po.bootstraps, "bootstraps", "", "run the compiled functions DIR/ingest/bootstrap and DIR/dispatch/bootstrap (`make build`'s build/; arm64 ones under qemu-aarch64-static on another machine) instead of the handlers in this process")
	fs.StringVar(&po.template, "template", "", "run as this synthesized stack template (cdk.out/OrderPipe.template.json): its queues, function timeouts and environment, event source mappings (--instances is then the template's)")
	// The real API's shape: a token bucket of 1 request. The dispatch instances share one
	// governor, so they never send two requests closer than 1/rate.
	po.standin = apiserver.DefaultConfig()
	po.standin.RPS = defaultRPS
	po.standin.RegisterFlags(fs)
	fs.Float64Var(&po.standin.RPS, "standin-rps", defaultRPS, "the stand-in order API's rate limit (same as -api-rps)")
}

// localPipeline is the pipeline running in this process: moto (unless given an endpoint), the
// stand-in order API (unless given --api), and the local.Pipeline on them.
type localPipeline struct {
	session  *session
	pipe     *local.Pipeline
	res      local.Resources
	settings pipeline.Settings
	apiURL   string
	api      *apiserver.Server // nil with an external API
	closers  []func()
	standIn  bool // moto was started here
}

// pipelineInfo is what local prints: enough to point upload and status at the pipeline.
type pipelineInfo struct {
	Endpoint   string        `json:"endpoint"`
	MotoHere   bool          `json:"motoStartedHere"`
	Resources  resourceNames `json:"resources"`
	APIBaseURL string        `json:"apiBaseUrl"`
	StandInAPI bool          `json:"standInApi"`
	APIRate    float64       `json:"apiRate"`
	Instances  int           `json:"instances"`
}

// startPipeline brings everything up; on error it tears down what it started. Call close when
// done, after run returned.
func (c *cli) startPipeline(ctx context.Context, o *options, po pipelineOptions) (_ *localPipeline, err error) {
	p := &localPipeline{}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if po.rate == 0 && po.apiURL == "" {
		po.rate = po.standin.RPS
	}
	if po.rate <= 0 {
		po.rate = 1
	}
	p.settings = pipeline.Defaults()
	p.settings.APIRate = po.rate
	p.settings.Instances = po.instances
	p.settings.ReservedConcurrency = max(p.settings.ReservedConcurrency, po.instances)
	if err := p.settings.Validate(); err != nil {
		return nil, usageErrorf("%v", err)
	}
	for _, fn := range []string{"ingest", "dispatch"} {
		if po.bootstraps == "" {
			break
		}
		if _, err := os.Stat(filepath.Join(po.bootstraps, fn, "bootstrap")); err != nil {
			return nil, usageErrorf("--bootstraps %s: no %s bootstrap (run make build): %v", po.bootstraps, fn, err)
		}
	}
	var tpl *local.Template
	if po.template != "" {
		if tpl, err = local.ReadTemplate(po.template); err != nil {
			return nil, usageErrorf("--template: %v", err)
		}
		if _, err := tpl.Wiring(); err != nil {
			return nil, usageErrorf("--template %s: %v", po.template, err)
		}
	}
	// Every flag is checked before anything is created: the API first, then moto and resources.
	if po.apiURL == "" {
		if err := p.startAPI(po); err != nil {
			return nil, err
		}
	} else {
		if err := checkAPIURL(po.apiURL); err != nil {
			return nil, err
		}
		p.apiURL = po.apiURL
	}
	if o.endpoint == "" && c.getenv("AWS_ENDPOINT_URL") == "" {
		endpoint, stop, err := local.StartMoto(ctx)
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, stop)
		o.endpoint, p.standIn = endpoint, true
	}
	if p.session, err = c.connect(ctx, o); err != nil {
		return nil, err
	}
	p.session.cfg.Logger = logging.Nop{} // the SDK's notes on the stand-in's missing checksums
	p.session.s3 = s3.NewFromConfig(p.session.cfg, func(so *s3.Options) { so.UsePathStyle = true })
	p.session.sqs = sqs.NewFromConfig(p.session.cfg)
	// The handlers log through slog.Default (as in Lambda): send it to stderr at the chosen level
	// while the pipeline runs.
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: po.logLevel}))
	prev := slog.Default()
	slog.SetDefault(log)
	p.closers = append(p.closers, func() { slog.SetDefault(prev) })
	p.pipe, err = local.NewPipeline(ctx, local.Options{
		AWS: p.session.cfg, Names: local.NamesFor(po.prefix), Settings: p.settings, APIBaseURL: p.apiURL, Template: tpl,
		Bootstraps: po.bootstraps, BootstrapOutput: c.stderr,
		Ingest:      func(c *ingest.Config) { c.LogLevel = po.logLevel },
		Dispatch:    func(c *dispatch.Config) { c.LogLevel = po.logLevel },
		ReceiveWait: 2 * time.Second, Logger: log, InFlightEvery: inflightEvery,
	})
	if err != nil {
		return nil, err
	}
	p.res, p.settings = p.pipe.Resources, p.pipe.Settings
	p.session.names = resourceNames{
		Bucket: p.res.Bucket, FilesQueue: p.res.FilesQueueURL, FilesDLQ: p.res.FilesDLQURL,
		OrdersQueue: p.res.OrdersQueueURL, OrdersDLQ: p.res.OrdersDLQURL, GovernorTable: p.res.GovernorTable,
	}
	return p, nil
}

// inflightEvery is how often local and demo publish their pollers' in-flight messages for
// status (local.InFlightKey).
const inflightEvery = 2 * time.Second

// checkAPIURL is a usage error unless u is an absolute http(s) URL with a host.
func checkAPIURL(u string) error {
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return usageErrorf("--api %q: want the order API's base URL, http(s)://host[:port][/path]", u)
	}
	return nil
}

// startAPI serves the stand-in order API on po.standinAddr.
func (p *localPipeline) startAPI(po pipelineOptions) error {
	srv, err := apiserver.New(po.standin)
	if err != nil {
		return usageErrorf("stand-in API: %v", err)
	}
	ln, err := apiserver.Listen(po.standinAddr)
	if err != nil {
		return fmt.Errorf("stand-in API: listen on %s: %w", po.standinAddr, err)
	}
	hs := srv.HTTPServer()
	go func() { _ = hs.Serve(ln) }()
	p.closers = append(p.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	})
	p.api, p.apiURL = srv, "http://"+ln.Addr().String()
	return nil
}

// run runs the pipeline until ctx is done, then stops it: the ingest invocations in flight
// checkpoint at their next line and hand the rest of their file to a continuation, the dispatch
// invocations finish their request. Before it waits it writes to w what it waits for, and after
// it where each file it waited for stopped (nothing when nothing was in flight).
func (p *localPipeline) run(ctx context.Context, w io.Writer) error {
	p.pipe.Start(ctx)
	<-ctx.Done()
	busy := p.pipe.Busy()
	if len(busy.Files)+len(busy.Orders) > 0 {
		fmt.Fprintf(w, "stopping: %s (a second Ctrl-C kills)\n", stopping(busy))
	}
	err := p.pipe.Stop()
	if len(busy.Files) > 0 {
		p.printCheckpoints(w, busy.Files)
	}
	return err
}

// stopping says what the pipeline waits for: "ingest of s3://b/k checkpointing; dispatch
// finishing 1 request (order o-1)".
func stopping(b local.Busy) string {
	var parts []string
	for _, f := range b.Files {
		parts = append(parts, "ingest of "+f+" checkpointing")
	}
	if n := len(b.Orders); n > 0 {
		parts = append(parts, fmt.Sprintf("dispatch finishing %d request%s (order %s)", n, plural(n), strings.Join(b.Orders, ", ")))
	}
	return strings.Join(parts, "; ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// printCheckpoints writes where ingest left each of files (s3://bucket/key), from its state.
func (p *localPipeline) printCheckpoints(w io.Writer, files []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := statusRun{s: p.session, now: time.Now()}
	progress, err := st.files(ctx, p.res.Bucket, maxStateReads)
	if err != nil {
		fmt.Fprintf(w, "ingest: where the files stopped is unknown: %v\n", err)
		return
	}
	for _, uri := range files {
		for _, f := range progress {
			if "s3://"+f.Bucket+"/"+f.Key != uri {
				continue
			}
			if f.Status == ingest.StatusRunning {
				fmt.Fprintf(w, "ingest of %s checkpointed after %d lines (%d enqueued, %d rejected; %s of the bytes): the next orderpipe local on these resources resumes there\n",
					uri, f.Lines, f.Enqueued, f.Rejected, strings.TrimSpace(percent(f.Offset, f.Size)))
			} else {
				fmt.Fprintf(w, "ingest of %s finished: %d lines (%d enqueued, %d rejected)\n", uri, f.Lines, f.Enqueued, f.Rejected)
			}
			break
		}
	}
}

// close stops the stand-in API and moto if they were started here.
func (p *localPipeline) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

func (p *localPipeline) info() pipelineInfo {
	return pipelineInfo{
		Endpoint: p.session.endpoint, MotoHere: p.standIn, Resources: p.session.names,
		APIBaseURL: p.apiURL, StandInAPI: p.api != nil, APIRate: p.settings.APIRate, Instances: p.settings.Instances,
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/pkg/ingest"
)

// demoRPS is the stand-in API's rate in the demo: far above the real API's 1 request/s, so that
// the demo ends in seconds.
const demoRPS = 20

// sample is a generated orders file and what must become of it.
type sample struct {
	body       []byte
	ids        []string // the valid orders' ids, each once
	badLines   int      // lines ingest must reject
	rejectedID string   // the API refuses it (422): parked as permanent
	flakyID    string   // the API fails it once (500): delivered on a retry
}

// newSample writes n orders as JSON Lines with, among them, a malformed JSON line, a line
// without an id, a duplicate id and a blank line.
func newSample(n int) sample {
	s := sample{badLines: 3}
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("ord-%04d", i)
		s.ids = append(s.ids, id)
		fmt.Fprintf(&b, `{"id":%q,"amount":"%d.%02d","currency":"EUR"}`+"\n", id, 10+i, i%100)
		switch i {
		case 1:
			b.WriteString(`{"id":"ord-broken","amount":` + "\n") // malformed JSON
		case 2:
			b.WriteString(`{"amount":"5.00","currency":"EUR"}` + "\n") // no id
		case 3:
			fmt.Fprintf(&b, `{"id":"ord-0001","amount":"99.99","currency":"EUR"}`+"\n") // duplicate id
		case 4:
			b.WriteString("\n") // blank: skipped, not a line of the ledger
		}
	}
	s.body = b.Bytes()
	s.rejectedID, s.flakyID = s.ids[(n-1)/2], s.ids[n-1]
	return s
}

// ledger is the account of one demo file.
type ledger struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`

	IngestDone bool  `json:"ingestDone"`
	Lines      int64 `json:"lines"`    // lines read, blank ones aside (from the report)
	Enqueued   int64 `json:"enqueued"` // sent to the orders queue
	Rejected   int64 `json:"rejected"` // malformed, no id, duplicate id
	Unread     int64 `json:"unread"`   // never read as orders: the file was refused or stopped

	Delivered     int            `json:"delivered"` // distinct ids the API accepted
	Parked        int            `json:"parked"`    // on the orders DLQ
	ParkedByClass map[string]int `json:"parkedByClass"`
	InFlight      int64          `json:"inFlight"`    // still on the orders queue
	FilesParked   int64          `json:"filesParked"` // on the files DLQ: the file itself failed

	APIRequests     int `json:"apiRequests"`
	APIThrottled    int `json:"apiThrottled"`
	APIServerErrors int `json:"apiServerErrors"`
	APIDuplicates   int `json:"apiDuplicates"` // replays the Idempotency-Key absorbed

	Lost           []string `json:"lost"` // valid ids neither delivered nor parked
	Balanced       bool     `json:"balanced"`
	ElapsedSeconds float64  `json:"elapsedSeconds"`
}

// settled reports whether everything that will happen has happened.
func (l ledger) settled() bool {
	return l.FilesParked > 0 || (l.IngestDone && l.InFlight == 0 && int64(l.Delivered+l.Parked) >= l.Enqueued)
}

func runDemo(ctx context.Context, c *cli, args []string) error {
	fs, o := c.newFlags("demo", "[--orders 60] [--standin-rps 20] [--timeout 3m]")
	n := fs.Int("orders", 60, "valid orders in the sample file (at least 4), besides its bad lines")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up (exit 1) when the ledger has not settled by then")
	var po pipelineOptions
	registerPipelineFlags(fs, &po, "", demoRPS, slog.LevelError)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *n < 4 {
		return usageErrorf("demo: --orders %d: want at least 4", *n)
	}
	if po.apiURL != "" {
		return usageErrorf("demo: runs its own stand-in order API; use local with --api")
	}
	if po.prefix == "" {
		po.prefix = "demo-" + randomHex(4)
	}
	smp := newSample(*n)
	po.standin.RejectIDs = append(po.standin.RejectIDs, smp.rejectedID)
	po.standin.FailIDs = append(po.standin.FailIDs, smp.flakyID)

	p, err := c.startPipeline(ctx, o, po)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer p.close()
	progress := c.stdout
	if o.json {
		progress = c.stderr
	}
	fmt.Fprintf(progress, "demo: %d orders + %d bad lines + 1 blank line; stand-in API at %g rps (the real one allows ~1 rps), %s refused (422), %s failing once (500)\n",
		*n, smp.badLines, po.standin.RPS, smp.rejectedID, smp.flakyID)

	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- p.run(runCtx, c.stderr) }()
	l, err := p.demo(ctx, c, progress, smp, *timeout)
	stopRun()
	if rerr := <-ran; err == nil {
		err = rerr
	}
	if ctx.Err() != nil {
		if p.api != nil {
			printAPIStats(c, p.api.Stats())
		}
		return errors.New("demo: interrupted before the ledger settled")
	}
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if o.json {
		if err := writeJSON(c.stdout, l); err != nil {
			return err
		}
	} else {
		printLedger(c.stdout, l)
	}
	if !l.Balanced || len(l.Lost) > 0 {
		return fmt.Errorf("demo: the ledger does not balance: lines %d != delivered %d + rejected %d + parked %d, lost %q",
			l.Lines, l.Delivered, l.Rejected, l.Parked, l.Lost)
	}
	return nil
}

// demo uploads the sample and prints progress every second until the ledger settles, ctx is
// done or timeout passes.
func (p *localPipeline) demo(ctx context.Context, c *cli, w io.Writer, smp sample, timeout time.Duration) (ledger, error) {
	dir, err := os.MkdirTemp("", "orderpipe-demo-")
	if err != nil {
		return ledger{}, fmt.Errorf("sample file: %w", err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "demo-orders.jsonl")
	if err := os.WriteFile(file, smp.body, 0o600); err != nil {
		return ledger{}, fmt.Errorf("sample file: %w", err)
	}
	up, err := p.session.upload(ctx, p.res.Bucket, "uploads/demo-orders.jsonl", file)
	if err != nil {
		return ledger{}, err
	}
	fmt.Fprintf(w, "uploaded s3://%s/%s (version %s)\n", up.Bucket, up.Key, up.Version)
	start := c.now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ledger{}, ctx.Err()
		case <-tick.C:
		}
		l, err := p.ledger(ctx, up.Key, nil)
		if err != nil {
			return l, err
		}
		elapsed := c.now().Sub(start)
		read := ""
		if l.IngestDone {
			read = "  (file read)"
		}
		fmt.Fprintf(w, "%5.0fs  delivered %d  rejected %d  parked %d  in flight %d%s\n",
			elapsed.Seconds(), l.Delivered, l.Rejected, l.Parked, l.InFlight, read)
		if l.settled() {
			l, err = p.ledger(ctx, up.Key, smp.ids)
			l.ElapsedSeconds = elapsed.Seconds()
			return l, err
		}
		if c.now().Sub(start) > timeout {
			return l, fmt.Errorf("not settled after %v: %d delivered, %d parked, %d in flight of %d enqueued", timeout, l.Delivered, l.Parked, l.InFlight, l.Enqueued)
		}
	}
}

// ledger takes the account from the ingest report, the stand-in API's ledger and the queue
// depths. With ids it also peeks the orders DLQ to name the parked orders and find the lost ones.
func (p *localPipeline) ledger(ctx context.Context, key string, ids []string) (ledger, error) {
	l := ledger{Bucket: p.res.Bucket, Key: key, ParkedByClass: map[string]int{}, Lost: []string{}}
	rep, err := p.report(ctx, key)
	if err != nil {
		return l, err
	}
	if rep != nil && rep.Waiting == "" { // a waiting report is written before the end
		l.IngestDone, l.Lines, l.Enqueued, l.Rejected, l.Unread = true, rep.Lines, rep.Enqueued, rep.Rejected, rep.Unread
	}
	st := statusRun{s: p.session}
	var parked int64
	for _, q := range []struct {
		name, url string
		n         *int64
	}{{"orders", p.res.OrdersQueueURL, &l.InFlight}, {"orders-dlq", p.res.OrdersDLQURL, &parked}, {"files-dlq", p.res.FilesDLQURL, &l.FilesParked}} {
		qs, err := st.queue(ctx, q.name, q.url)
		if err != nil {
			return l, err
		}
		*q.n = qs.depth()
	}
	l.Parked = int(parked)
	delivered := p.api.Orders()
	stats := p.api.Stats()
	l.Delivered = len(delivered)
	l.APIRequests, l.APIThrottled, l.APIServerErrors, l.APIDuplicates = stats.Requests, stats.Throttled, stats.ServerErrors, stats.Duplicates
	l.Balanced = l.IngestDone && l.Lines == int64(l.Delivered)+l.Rejected+int64(l.Parked)+l.Unread
	if ids == nil {
		return l, nil
	}
	parkedIDs := map[string]bool{}
	_, err = p.session.scanner(p.res.OrdersDLQURL, len(ids)+10).scan(ctx, func(m sqstypes.Message) verdict {
		pk := parkedFrom(m)
		parkedIDs[pk.OrderID] = true
		l.ParkedByClass[pk.Class]++
		return verdict{}
	})
	if err != nil {
		return l, err
	}
	for _, id := range ids {
		if _, ok := delivered[id]; !ok && !parkedIDs[id] {
			l.Lost = append(l.Lost, id)
		}
	}
	slices.Sort(l.Lost)
	return l, nil
}

// report reads reports/{key}.json, or returns nil while ingest has not written it.
func (p *localPipeline) report(ctx context.Context, key string) (*ingest.Report, error) {
	out, err := p.session.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(p.res.Bucket), Key: aws.String(ingest.ReportKey(key))})
	var missing *s3types.NoSuchKey
	if errors.As(err, &missing) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read report of %s: %w", key, err)
	}
	defer out.Body.Close()
	var rep ingest.Report
	if err := json.NewDecoder(out.Body).Decode(&rep); err != nil {
		return nil, fmt.Errorf("decode report of %s: %w", key, err)
	}
	return &rep, nil
}

func printLedger(w io.Writer, l ledger) {
	verdict := "balanced, nothing lost"
	if !l.Balanced || len(l.Lost) > 0 {
		verdict = "DOES NOT BALANCE"
	}
	fmt.Fprintf(w, "\nledger of s3://%s/%s after %.0fs:\n", l.Bucket, l.Key, l.ElapsedSeconds)
	fmt.Fprintf(w, "  lines      %4d  (blank lines aside)\n", l.Lines)
	fmt.Fprintf(w, "  delivered  %4d\n", l.Delivered)
	fmt.Fprintf(w, "  rejected   %4d  (%s)\n", l.Rejected, ingest.RejectsKey(l.Key))
	classes := make([]string, 0, len(l.ParkedByClass))
	for _, c := range slices.Sorted(maps.Keys(l.ParkedByClass)) {
		classes = append(classes, fmt.Sprintf("%s %d", c, l.ParkedByClass[c]))
	}
	fmt.Fprintf(w, "  parked     %4d  (%s; orderpipe dlq ls)\n", l.Parked, strings.Join(classes, ", "))
	if l.Unread > 0 {
		fmt.Fprintf(w, "  unread     %4d  (the file was not read whole: %s)\n", l.Unread, ingest.ReportKey(l.Key))
		fmt.Fprintf(w, "  lines = delivered + rejected + parked + unread: %d = %d + %d + %d + %d: %s\n", l.Lines, l.Delivered, l.Rejected, l.Parked, l.Unread, verdict)
	} else {
		fmt.Fprintf(w, "  lines = delivered + rejected + parked: %d = %d + %d + %d: %s\n", l.Lines, l.Delivered, l.Rejected, l.Parked, verdict)
	}
	fmt.Fprintf(w, "  API: %d requests, %d throttled (429), %d server errors, %d idempotent replays\n",
		l.APIRequests, l.APIThrottled, l.APIServerErrors, l.APIDuplicates)
	if len(l.Lost) > 0 {
		fmt.Fprintf(w, "  LOST: %v\n", l.Lost)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// runDLQRedrive moves parked orders back to the orders queue with pkg/redrive, run here with the
// operator's credentials (the same core the redrive Lambda runs). Its audit lines go to stderr.
func runDLQRedrive(ctx context.Context, c *cli, args []string) error {
	fs, o := c.newFlags("dlq redrive", "[--class C] [--source S] [--max N] [--dry-run] [--rate R] [--native]")
	var f filter
	addFilter(fs, &f)
	maxMove := fs.Int("max", 0, "move at most this many (0: no limit)")
	dryRun := fs.Bool("dry-run", false, "list what would move; move nothing (each message scanned still counts a receive)")
	rate := fs.Float64("rate", redrive.DefaultRate, "messages moved per second")
	native := fs.Bool("native", false, "SQS's own message move task: no selection, keeps the parking attributes; falls back to the selective move where the service lacks it")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *rate <= 0 {
		return usageErrorf("dlq redrive: --rate %v: must be > 0", *rate)
	}
	req := redrive.Request{Class: redrive.Classes(f.classes), Source: f.source, Max: *maxMove, DryRun: *dryRun, Native: *native}
	if err := req.Validate(); err != nil {
		return usageErrorf("dlq redrive: %v", err)
	}
	s, err := c.connect(ctx, o)
	if err != nil {
		return err
	}
	queue, err := s.queueURL(ctx, resOrdersQueue)
	if err != nil {
		return err
	}
	dlq, err := s.queueURL(ctx, resOrdersDLQ)
	if err != nil {
		return err
	}
	env := map[string]string{
		redrive.EnvQueueURL: queue,
		redrive.EnvDLQURL:   dlq,
		redrive.EnvRate:     strconv.FormatFloat(*rate, 'g', -1, 64),
	}
	cfg, err := redrive.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		return usageErrorf("dlq redrive: %v", err)
	}
	r := redrive.New(cfg, s.sqs)
	r.Logger = slog.New(slog.NewTextHandler(c.stderr, nil))
	res, runErr := r.Run(ctx, req)
	if o.json {
		if err := writeJSON(c.stdout, res); err != nil {
			return err
		}
	} else if err := printRedrive(c, res); err != nil {
		return err
	}
	switch {
	case runErr != nil:
		return fmt.Errorf("dlq redrive: %w (moved %d before the error; the rest stay parked)", runErr, res.Moved)
	case res.Failed+res.DeleteFailed > 0:
		return fmt.Errorf("dlq redrive: %d not sent and %d sent but not deleted: they stay parked (see the log above)", res.Failed, res.DeleteFailed)
	}
	return nil
}

func printRedrive(c *cli, res redrive.Result) error {
	w := c.stdout
	if res.Task != nil {
		t := res.Task
		fmt.Fprintf(w, "native move task %s: %d of %d moved from %s (rate %d/s); follow it with status\n", t.Status, t.Moved, t.ToMove, t.SourceARN, t.Rate)
		return nil
	}
	if res.Fallback {
		fmt.Fprintln(w, "native move not implemented by this service: used the selective move")
	}
	verb, n := "moved", res.Moved
	if res.DryRun {
		verb, n = "would move", res.Selected
	}
	fmt.Fprintf(w, "%s %d of %d scanned: selected %d, skipped %d, failed %d, released %d (stopped: %s)\n",
		verb, n, res.Scanned, res.Selected, res.Skipped, res.Failed, res.Released, res.Stop)
	var byClass []string
	for _, cl := range slices.Sorted(maps.Keys(res.ByClass)) {
		n := res.ByClass[cl]
		byClass = append(byClass, fmt.Sprintf("%s %d/%d", cl, n.Moved, n.Scanned))
	}
	if len(byClass) > 0 {
		fmt.Fprintf(w, "moved/scanned by class: %s\n", strings.Join(byClass, ", "))
	}
	if !res.DryRun {
		return nil
	}
	list := make([]parked, len(res.Listing))
	for i, e := range res.Listing {
		list[i] = parked{MessageID: e.MessageID, OrderID: e.OrderID, Class: e.Class, Detail: e.Detail, Attempts: e.Attempts,
			Source: e.Source, SourceVersion: e.SourceVersion, Line: e.Line, ParkedAt: e.ParkedAt}
	}
	if res.ListingTruncated {
		fmt.Fprintf(w, "(listing truncated to %d)\n", len(list))
	}
	return printParked(w, list)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// runDLQRedrive moves parked orders back to the orders queue with pkg/redrive: by invoking the
// redrive function when one is configured (--redrive-function, its variable or the stack
// output) on AWS, else here, with the operator's credentials (the same core; its audit lines go
// to stderr).
func runDLQRedrive(ctx context.Context, c *cli, args []string) error {
	fs, o := c.newFlags("dlq redrive", "[--class C] [--source S] [--max N] [--dry-run] [--rate R] [--native] [--here]")
	var f filter
	addFilter(fs, &f)
	maxMove := fs.Int("max", 0, "move at most this many (0: no limit)")
	dryRun := fs.Bool("dry-run", false, "list what would move; move nothing (each message scanned still counts a receive)")
	rate := fs.Float64("rate", redrive.DefaultRate, "messages moved per second, when the redrive runs here")
	native := fs.Bool("native", false, "SQS's own message move task: no selection, keeps the parking attributes; falls back to the selective move where the service lacks it")
	here := fs.Bool("here", false, "run the redrive in this process even when a redrive function is configured")
	operator := fs.String("operator", c.getenv("USER"), "who asks for the move, in every move record (default $USER)")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *rate <= 0 {
		return usageErrorf("dlq redrive: --rate %v: must be > 0", *rate)
	}
	req := redrive.Request{Class: redrive.Classes(f.classes), Source: f.source, Max: *maxMove, DryRun: *dryRun, Native: *native, Operator: *operator}
	if err := req.Validate(); err != nil {
		return usageErrorf("dlq redrive: %v", err)
	}
	s, err := c.connect(ctx, o)
	if err != nil {
		return err
	}
	var res redrive.Result
	var runErr error
	if fn := s.names.RedriveFunction; fn != "" && !*here && s.endpoint == "" {
		if flagSet(fs, "rate") {
			return usageErrorf("dlq redrive: --rate applies to a redrive run here (--here); the function moves at its REDRIVE_RATE")
		}
		fmt.Fprintf(c.stderr, "invoking the redrive function %s (its log is in CloudWatch Logs)\n", fn)
		var client invoker = lambda.NewFromConfig(s.cfg)
		if c.lambda != nil {
			client = c.lambda(s.cfg)
		}
		res, runErr = invokeRedrive(ctx, client, fn, req)
		if runErr != nil {
			// A function error carries no Result: the function may have moved orders before it
			// failed, and printing zero counts would tell the operator nothing moved.
			return fmt.Errorf("dlq redrive: %w (what moved before the error is not known here: see the function's audit log, action=move; the rest stay parked)", runErr)
		}
	} else {
		res, runErr = s.redriveHere(ctx, c, req, *rate)
	}
	if errors.As(runErr, new(usageError)) {
		return runErr
	}
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
		return fmt.Errorf("dlq redrive: %d not sent and %d sent but not deleted: they stay parked (see the audit log)", res.Failed, res.DeleteFailed)
	}
	return nil
}

// flagSet reports whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// redriveHere runs req with pkg/redrive in this process, recording the moves in the bucket as
// the redrive function does.
func (s *session) redriveHere(ctx context.Context, c *cli, req redrive.Request, rate float64) (redrive.Result, error) {
	queue, err := s.queueURL(ctx, resOrdersQueue)
	if err != nil {
		return redrive.Result{}, err
	}
	dlq, err := s.queueURL(ctx, resOrdersDLQ)
	if err != nil {
		return redrive.Result{}, err
	}
	cfg := redrive.Config{QueueURL: queue, DLQURL: dlq, Rate: rate}
	if err := cfg.Validate(); err != nil {
		return redrive.Result{}, usageErrorf("dlq redrive: %v", err)
	}
	o := redrive.Options{Logger: slog.New(slog.NewTextHandler(c.stderr, nil))}
	if !req.DryRun {
		bucket, err := s.bucket()
		if err != nil {
			return redrive.Result{}, usageErrorf("dlq redrive: every move is recorded in the bucket first: %v", err)
		}
		o.Journal = redrive.S3Journal{Client: s.s3, Bucket: bucket}
	}
	r := redrive.New(cfg, s.sqs, o)
	return r.Run(ctx, req)
}

// invoker is the part of the Lambda client dlq redrive uses.
type invoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// invokeRedrive runs req in the redrive function, synchronously, and returns its Result. A
// function error (the handler's error, a timeout) comes back as an error with its message.
func invokeRedrive(ctx context.Context, fn invoker, name string, req redrive.Request) (redrive.Result, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return redrive.Result{}, fmt.Errorf("invoke %s: encode request: %w", name, err)
	}
	out, err := fn.Invoke(ctx, &lambda.InvokeInput{FunctionName: &name, Payload: payload})
	if err != nil {
		return redrive.Result{}, fmt.Errorf("invoke %s: %w", name, err)
	}
	if out.FunctionError != nil {
		var fe struct {
			Message string `json:"errorMessage"`
		}
		_ = json.Unmarshal(out.Payload, &fe) // a payload that is not the usual shape leaves the message empty
		return redrive.Result{}, fmt.Errorf("invoke %s: function error %s: %s", name, *out.FunctionError, fe.Message)
	}
	var res redrive.Result
	if err := json.Unmarshal(out.Payload, &res); err != nil {
		return redrive.Result{}, fmt.Errorf("invoke %s: decode result: %w", name, err)
	}
	return res, nil
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
	if res.AlreadyMoved > 0 {
		fmt.Fprintf(w, "deleted %d copies an earlier run had already moved (their move records say sent)\n", res.AlreadyMoved)
	}
	if res.Resent > 0 {
		fmt.Fprintf(w, "sent %d again: an earlier run recorded them as sending and ended before it recorded them sent (their move records count the resends; dispatch's delivery records keep a delivered order from a second PUT)\n", res.Resent)
	}
	var byClass []string
	for _, cl := range slices.Sorted(maps.Keys(res.ByClass)) {
		n := res.ByClass[cl]
		moved := n.Moved
		if res.DryRun {
			moved = n.Selected
		}
		byClass = append(byClass, fmt.Sprintf("%s %d/%d", cl, moved, n.Scanned))
	}
	if len(byClass) > 0 {
		fmt.Fprintf(w, "%s/scanned by class: %s\n", verb, strings.Join(byClass, ", "))
	}
	if !res.DryRun {
		return nil
	}
	list := make([]parked, len(res.Listing))
	for i, e := range res.Listing {
		list[i] = parked{Entry: e}
	}
	if res.ListingTruncated {
		fmt.Fprintf(w, "(listing truncated to %d)\n", len(list))
	}
	return printParked(w, list)
}

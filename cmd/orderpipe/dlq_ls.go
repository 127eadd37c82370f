package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func runDLQList(ctx context.Context, c *cli, args []string) error {
	fs, o := c.newFlags("dlq ls", "[--class C] [--source S] [--max N] [--scan N]")
	var f filter
	addFilter(fs, &f)
	maxList := fs.Int("max", 100, "list at most this many")
	maxScan := fs.Int("scan", 1000, "look at most at this many parked messages")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *maxList < 1 || *maxScan < 1 {
		return usageErrorf("dlq ls: --max and --scan must be >= 1")
	}
	s, sc, err := c.openDLQ(ctx, o, *maxScan)
	if err != nil {
		return err
	}
	// The depth before the scan: the scan itself hides what it looks at.
	depth, err := statusRun{s: s}.queue(ctx, "orders-dlq", sc.queueURL)
	if err != nil {
		return fmt.Errorf("dlq ls: %w", err)
	}
	list := []parked{}
	scanned, err := sc.scan(ctx, func(m sqstypes.Message) verdict {
		if p := parkedFrom(m); f.match(p) {
			list = append(list, p)
		}
		return verdict{stop: len(list) >= *maxList}
	})
	if err != nil {
		return fmt.Errorf("dlq ls: %w", err)
	}
	if o.json {
		if err := writeJSON(c.stdout, list); err != nil {
			return err
		}
	} else if err := printParked(c.stdout, list); err != nil {
		return fmt.Errorf("dlq ls: %w", err)
	}
	fmt.Fprintln(c.stderr, listedLine(len(list), scanned, depth.depth(), f.empty()))
	return nil
}

// listedLine says how many were listed and how many parked orders the listing leaves out:
// depth is the DLQ's approximate depth before the scan.
func listedLine(listed, scanned int, depth int64, unfiltered bool) string {
	more := depth - int64(listed)
	if !unfiltered {
		more = depth - int64(scanned)
	}
	line := fmt.Sprintf("%d listed of %d scanned; about %d parked in all (ApproximateNumberOfMessages)", listed, scanned, depth)
	if more > 0 {
		what := "more not listed: raise --max or --scan"
		if !unfiltered {
			what = "more not scanned: raise --scan"
		}
		line += fmt.Sprintf(", %d %s", more, what)
	}
	return line
}

// printParked writes parked orders as a table.
func printParked(w io.Writer, list []parked) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MESSAGE ID\tORDER ID\tCLASS\tDETAIL\tATTEMPTS\tSOURCE\tLINE\tPARKED AT")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.MessageID, dash(p.OrderID), p.Class, dash(p.Detail),
			dashInt(p.Attempts), dash(p.Source), dashInt(p.Line), dash(p.ParkedAt))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dashInt(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

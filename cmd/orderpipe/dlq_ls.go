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
	_, sc, err := c.openDLQ(ctx, o, *maxScan)
	if err != nil {
		return err
	}
	list := []parked{}
	_, err = sc.scan(ctx, func(m sqstypes.Message) verdict {
		if p := parkedFrom(m); f.match(p) {
			list = append(list, p)
		}
		return verdict{stop: len(list) >= *maxList}
	})
	if err != nil {
		return fmt.Errorf("dlq ls: %w", err)
	}
	if o.json {
		return writeJSON(c.stdout, list)
	}
	if err := printParked(c.stdout, list); err != nil {
		return fmt.Errorf("dlq ls: %w", err)
	}
	fmt.Fprintf(c.stderr, "%d listed\n", len(list))
	return nil
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

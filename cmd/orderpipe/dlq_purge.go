package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// purgeResult is what dlq purge did.
type purgeResult struct {
	Queue string `json:"queue"`
	// Whole is true when the whole queue was purged (PurgeQueue); Deleted is then the queue's
	// approximate depth just before.
	Whole   bool `json:"whole"`
	Deleted int  `json:"deleted"`
	Scanned int  `json:"scanned,omitempty"`
}

func runDLQPurge(ctx context.Context, c *cli, args []string) error {
	fs, o := c.newFlags("dlq purge", "[--class C] [--source S] [--scan N] --yes")
	var f filter
	addFilter(fs, &f)
	yes := fs.Bool("yes", false, "really delete: parked orders deleted here are gone for good")
	maxScan := fs.Int("scan", 100000, "with --class or --source: look at most at this many parked messages")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if !*yes {
		return usageErrorf("dlq purge: deletes parked orders for good; add --yes to confirm (see them first with dlq ls)")
	}
	s, sc, err := c.openDLQ(ctx, o, *maxScan)
	if err != nil {
		return err
	}
	url := sc.queueURL
	res := purgeResult{Queue: url}
	if f.empty() {
		st, err := statusRun{s: s}.queue(ctx, "orders-dlq", url)
		if err != nil {
			return fmt.Errorf("dlq purge: %w", err)
		}
		if _, err := s.sqs.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &url}); err != nil {
			return fmt.Errorf("dlq purge: purge %s: %w", url, err)
		}
		res.Whole, res.Deleted = true, int(st.depth())
	} else {
		res.Scanned, err = sc.scan(ctx, func(m sqstypes.Message) verdict {
			if !f.match(parkedFrom(m)) {
				return verdict{}
			}
			res.Deleted++
			return verdict{remove: true}
		})
		if err != nil {
			return fmt.Errorf("dlq purge: %w", err)
		}
	}
	if o.json {
		return writeJSON(c.stdout, res)
	}
	if res.Whole {
		fmt.Fprintf(c.stdout, "purged %s (about %d messages; SQS takes up to 60 s to finish)\n", url, res.Deleted)
	} else {
		fmt.Fprintf(c.stdout, "deleted %d of %d parked messages looked at\n", res.Deleted, res.Scanned)
	}
	return nil
}

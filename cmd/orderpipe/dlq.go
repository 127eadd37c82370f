package main

import (
	"context"
	"errors"
	"flag"
	"strings"

	"github.com/orderpipe/orderpipe/pkg/order"
)

// dlqCommands are the subcommands of dlq; each works on the orders dead-letter queue.
func dlqCommands() []command {
	return []command{
		{"ls", "list parked orders without removing them", runDLQList},
		{"show", "print one parked message: body and attributes", runDLQShow},
		{"redrive", "move parked orders back to the orders queue", runDLQRedrive},
		{"purge", "delete parked orders (all, or one class) after --yes", runDLQPurge},
	}
}

func runDLQ(ctx context.Context, c *cli, args []string) error {
	return runCommand(ctx, c, "orderpipe dlq", dlqCommands(), args)
}

// addFilter registers --class and --source on fs.
func addFilter(fs *flag.FlagSet, f *filter) {
	fs.Var((*classList)(&f.classes), "class", "only these failure classes, comma-separated: "+strings.Join(order.Classes, ", "))
	fs.Func("source", `only orders from this source: s3://bucket/key, or a prefix ending in "*"`, func(v string) error {
		// An empty value would select every source (with dlq purge: delete everything).
		if strings.TrimSpace(v) == "" {
			return errors.New(`empty source: give s3://bucket/key or a prefix ending in "*", or leave out --source`)
		}
		f.source = v
		return nil
	})
}

// openDLQ connects and returns a scanner over the orders dead-letter queue looking at up to max
// messages.
func (c *cli) openDLQ(ctx context.Context, o *options, max int) (*session, scanner, error) {
	s, err := c.connect(ctx, o)
	if err != nil {
		return nil, scanner{}, err
	}
	url, err := s.queueURL(ctx, resOrdersDLQ)
	if err != nil {
		return nil, scanner{}, err
	}
	return s, s.scanner(url, max), nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// command is one verb of the CLI. run returns a usageError for bad invocations.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

// commands lists the top-level commands; dlq has its own table (dlq.go).
func commands() []command {
	return []command{
		{"upload", "upload order files to the bucket", runUpload},
		{"status", "queue depths, parked orders by class, backlog ETA, retention risk", runStatus},
		{"dlq", "parked orders: ls, show, redrive, purge", runDLQ},
		{"local", "run the pipeline on this machine until Ctrl-C", runLocal},
		{"demo", "run the pipeline here on a sample file and print the ledger", runDemo},
	}
}

// cli carries what every command writes to and reads from; tests build one with their own
// getenv.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	clock          func() time.Time // nil: time.Now
	// lambda builds the client dlq redrive invokes the redrive function with; nil: the SDK's.
	lambda func(aws.Config) invoker
	// peekWait is how long a scan's receive long-polls for more messages; 0: peekWait. Under a
	// second, its receives are short polls.
	peekWait time.Duration
}

func (c *cli) now() time.Time {
	if c.clock != nil {
		return c.clock()
	}
	return time.Now()
}

// run is main without the process: it runs one command and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, getenv: os.Getenv}
	return c.main(ctx, args)
}

func (c *cli) main(ctx context.Context, args []string) int {
	err := runCommand(ctx, c, "orderpipe", commands(), args)
	return c.exit(err)
}

// exit reports err on stderr and maps it to an exit code.
func (c *cli) exit(err error) int {
	var u usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &u):
		fmt.Fprintf(c.stderr, "orderpipe: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(c.stderr, "orderpipe: %v\n", err)
		return exitFailure
	}
}

// runCommand runs the command named by args[0] among cmds.
func runCommand(ctx context.Context, c *cli, prefix string, cmds []command, args []string) error {
	if len(args) == 0 {
		printCommands(c.stderr, prefix, cmds)
		return usageErrorf("%smissing command", sub(prefix))
	}
	if args[0] == "help" && len(args) > 1 {
		// "orderpipe help dlq ls" is "orderpipe dlq ls -h".
		return runCommand(ctx, c, prefix, cmds, append(slices.Clone(args[1:]), "-h"))
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printCommands(c.stdout, prefix, cmds)
		return nil
	}
	for _, cmd := range cmds {
		if cmd.name == args[0] {
			return cmd.run(ctx, c, args[1:])
		}
	}
	printCommands(c.stderr, prefix, cmds)
	return usageErrorf("%sunknown command %q", sub(prefix), args[0])
}

// sub is the prefix of errors about a command group: "" at the top, "dlq: " below.
func sub(prefix string) string {
	if s := strings.TrimSpace(strings.TrimPrefix(prefix, "orderpipe")); s != "" {
		return s + ": "
	}
	return ""
}

func printCommands(w io.Writer, prefix string, cmds []command) {
	fmt.Fprintf(w, "usage: %s COMMAND [flags]; %s COMMAND -h (or orderpipe help %s) for its flags\n", prefix, prefix, strings.TrimSpace(strings.TrimPrefix(prefix, "orderpipe")+" COMMAND"))
	for _, cmd := range cmds {
		fmt.Fprintf(w, "  %-8s %s\n", cmd.name, cmd.summary)
	}
}

// usageError is a bad invocation: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return usageError{fmt.Sprintf(format, a...)}
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/orderpipe/orderpipe/pkg/pipeline"
)

// options are the flags every command takes.
type options struct {
	json     bool
	endpoint string
	region   string
	stack    string
	names    resourceNames // as given by flags; empty when not given
}

// resourceNames are the pipeline's resources. Queues are URLs once a session resolved them.
type resourceNames struct {
	Bucket          string `json:"bucket"`
	FilesQueue      string `json:"filesQueue"`
	FilesDLQ        string `json:"filesDlq"`
	OrdersQueue     string `json:"ordersQueue"`
	OrdersDLQ       string `json:"ordersDlq"`
	AlarmTopic      string `json:"alarmTopic,omitempty"`
	RedriveFunction string `json:"redriveFunction,omitempty"`
	GovernorTable   string `json:"governorTable,omitempty"`
}

// resourceSpec ties one resource to its flag, environment variable and stack output
// (docs/CONTRACTS.md, "Stack outputs").
type resourceSpec struct {
	flag, env, output, help string
	field                   func(*resourceNames) *string
}

// resourceKind indexes resourceSpecs.
type resourceKind int

const (
	resBucket resourceKind = iota
	resFilesQueue
	resFilesDLQ
	resOrdersQueue
	resOrdersDLQ
	resAlarmTopic
	resRedriveFunction
	resGovernorTable
)

var resourceSpecs = [...]resourceSpec{
	resBucket:          {"bucket", "ORDERPIPE_BUCKET", pipeline.OutputBucket, "orders bucket", func(r *resourceNames) *string { return &r.Bucket }},
	resFilesQueue:      {"files-queue", "ORDERPIPE_FILES_QUEUE", pipeline.OutputFilesQueue, "files queue URL or name", func(r *resourceNames) *string { return &r.FilesQueue }},
	resFilesDLQ:        {"files-dlq", "ORDERPIPE_FILES_DLQ", pipeline.OutputFilesDLQ, "files dead-letter queue URL or name", func(r *resourceNames) *string { return &r.FilesDLQ }},
	resOrdersQueue:     {"orders-queue", "ORDERPIPE_ORDERS_QUEUE", pipeline.OutputOrdersQueue, "orders queue URL or name", func(r *resourceNames) *string { return &r.OrdersQueue }},
	resOrdersDLQ:       {"orders-dlq", "ORDERPIPE_ORDERS_DLQ", pipeline.OutputOrdersDLQ, "orders dead-letter queue URL or name", func(r *resourceNames) *string { return &r.OrdersDLQ }},
	resAlarmTopic:      {"alarm-topic", "ORDERPIPE_ALARM_TOPIC", pipeline.OutputAlarmTopic, "alarm topic ARN", func(r *resourceNames) *string { return &r.AlarmTopic }},
	resRedriveFunction: {"redrive-function", "ORDERPIPE_REDRIVE_FUNCTION", pipeline.OutputRedriveFunction, "redrive Lambda function name", func(r *resourceNames) *string { return &r.RedriveFunction }},
	resGovernorTable:   {"governor-table", "ORDERPIPE_GOVERNOR_TABLE", pipeline.OutputGovernorTable, "governor DynamoDB table name", func(r *resourceNames) *string { return &r.GovernorTable }},
}

// newFlags returns a flag set for command name (usage line "orderpipe name synopsis") with the
// common flags registered.
func (c *cli) newFlags(name, synopsis string) (*flag.FlagSet, *options) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: orderpipe %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	o := &options{}
	fs.BoolVar(&o.json, "json", false, "print JSON on stdout")
	fs.StringVar(&o.endpoint, "endpoint", "", "AWS endpoint of a stand-in (default $AWS_ENDPOINT_URL); S3 is then path-style")
	fs.StringVar(&o.region, "region", "", "AWS region (default from the AWS configuration; us-east-1 with an endpoint)")
	fs.StringVar(&o.stack, "stack", "", "CloudFormation stack whose outputs name the resources (default $ORDERPIPE_STACK)")
	for _, r := range resourceSpecs {
		fs.StringVar(r.field(&o.names), r.flag, "", fmt.Sprintf("%s (default $%s or the stack output %s)", r.help, r.env, r.output))
	}
	return fs, o
}

// parseArgs parses flags placed anywhere among the positional arguments and returns the
// positional ones. -h prints the command's full help. A bad flag is a usage error carrying the
// command's usage line and a pointer to its help, not the whole flag list.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	out := fs.Output()
	fs.SetOutput(io.Discard) // the flag package prints the error and the whole help itself
	defer fs.SetOutput(out)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(out)
				fs.Usage()
				return nil, err
			}
			return nil, usageErrorf("%s: %v\n%s\nrun 'orderpipe help %s' for every flag", fs.Name(), err, usageLine(fs), fs.Name())
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// usageLine is the first line fs.Usage prints: "usage: orderpipe NAME SYNOPSIS".
func usageLine(fs *flag.FlagSet) string {
	out := fs.Output()
	defer fs.SetOutput(out)
	var b strings.Builder
	fs.SetOutput(&b)
	fs.Usage()
	line, _, _ := strings.Cut(b.String(), "\n")
	return line
}

// noArgs parses args for a command without positional arguments.
func noArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("%s: unexpected arguments %s", fs.Name(), strings.Join(pos, " "))
	}
	return nil
}

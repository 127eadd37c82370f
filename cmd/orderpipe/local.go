package main

import (
	"context"
	"fmt"
	"log/slog"
	"text/tabwriter"

	"github.com/orderpipe/orderpipe/pkg/local/apiserver"
)

// runLocal runs the pipeline on this machine until ctx is done (Ctrl-C): moto unless an
// endpoint is given, the resources, the stand-in order API unless --api is given, and the ingest
// and dispatch handlers fed by local pollers.
func runLocal(ctx context.Context, c *cli, args []string) error {
	fs, o := c.newFlags("local", "[--api URL | --standin-rps R] [--name-prefix orderpipe] [--rate R] [--instances 2]")
	var po pipelineOptions
	registerPipelineFlags(fs, &po, "orderpipe", 1, slog.LevelInfo)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	p, err := c.startPipeline(ctx, o, po)
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	defer p.close()
	if o.json {
		if err := writeJSON(c.stdout, p.info()); err != nil {
			return err
		}
	} else if err := printPipeline(c, p.info()); err != nil {
		return err
	}
	runErr := p.run(ctx, c.stderr)
	if p.api != nil {
		printAPIStats(c, p.api.Stats())
	}
	if runErr != nil {
		return fmt.Errorf("local: %w", runErr)
	}
	fmt.Fprintln(c.stderr, "local: stopped")
	return nil
}

// printAPIStats prints what the stand-in order API answered while local ran.
func printAPIStats(c *cli, st apiserver.Stats) {
	fmt.Fprintf(c.stderr, "stand-in order API: %d requests: %d orders accepted (%d deliveries, %d duplicates), %d throttled (429), %d server errors, %d rejected, %d resets, %d hangs\n",
		st.Requests, st.Accepted, st.Deliveries, st.Duplicates, st.Throttled, st.ServerErrors, st.Rejected, st.Resets, st.Hangs)
}

// printPipeline prints the resources and the environment that points upload, status and dlq
// at them.
func printPipeline(c *cli, in pipelineInfo) error {
	w := c.stdout
	api := "external"
	if in.StandInAPI {
		api = "stand-in"
	}
	fmt.Fprintf(w, "orderpipe local: running; Ctrl-C stops it (ingest checkpoints at once, dispatch finishes the requests in flight; a second Ctrl-C kills)\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"endpoint", in.Endpoint},
		{"bucket", in.Resources.Bucket},
		{"files queue", in.Resources.FilesQueue},
		{"files DLQ", in.Resources.FilesDLQ},
		{"orders queue", in.Resources.OrdersQueue},
		{"orders DLQ", in.Resources.OrdersDLQ},
		{"order API", fmt.Sprintf("%s (%s), paced at %g rps by %d instances", in.APIBaseURL, api, in.APIRate, in.Instances)},
	} {
		fmt.Fprintf(tw, "  %s\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	fmt.Fprintf(w, "point the CLI at it:\n  export AWS_ENDPOINT_URL=%s ORDERPIPE_BUCKET=%s ORDERPIPE_FILES_QUEUE=%s ORDERPIPE_FILES_DLQ=%s ORDERPIPE_ORDERS_QUEUE=%s ORDERPIPE_ORDERS_DLQ=%s %s=%g\n",
		in.Endpoint, in.Resources.Bucket, in.Resources.FilesQueue, in.Resources.FilesDLQ, in.Resources.OrdersQueue, in.Resources.OrdersDLQ, envAPIRate, in.APIRate)
	return nil
}

package main

import (
	"context"
	"errors"
)

func runDemo(ctx context.Context, c *cli, args []string) error {
	return errors.New("demo: not built yet (waits for pkg/local, pkg/ingest, pkg/dispatch)")
}

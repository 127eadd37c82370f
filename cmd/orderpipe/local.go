package main

import (
	"context"
	"errors"
)

func runLocal(ctx context.Context, c *cli, args []string) error {
	return errors.New("local: not built yet (waits for pkg/local, pkg/ingest, pkg/dispatch)")
}

package main

import (
	"context"
	"errors"
)

func runDLQRedrive(ctx context.Context, c *cli, args []string) error {
	return errors.New("dlq redrive: not built yet (waits for pkg/redrive)")
}

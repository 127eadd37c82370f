package governor

import (
	"context"

	"github.com/orderpipe/orderpipe/internal/ddbtable"
)

// TableAPI is the part of the DynamoDB client CreateTable uses (provisioning, not dispatch).
type TableAPI = ddbtable.API

// CreateTable creates the governor table as the CDK app deploys it (partition key KeyAttribute,
// a string; on-demand billing; server-side encryption) and waits until it is active. A table
// that exists already is accepted as it is.
func CreateTable(ctx context.Context, c TableAPI, name string) error {
	_, err := ddbtable.Create(ctx, c, name, KeyAttribute, "governor table")
	return err
}

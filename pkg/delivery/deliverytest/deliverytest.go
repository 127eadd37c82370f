// Package deliverytest creates delivery record tables on the local AWS stand-in for tests.
package deliverytest

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/pkg/delivery"
)

// NewTable creates a delivery table with a unique name on the stand-in (delivery.CreateTable)
// and returns a client and the table's name.
func NewTable(t testing.TB) (*dynamodb.Client, string) {
	t.Helper()
	db := dynamodb.NewFromConfig(awstest.Config(t))
	table := awstest.Name(t, "deliveries")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := delivery.CreateTable(ctx, db, table); err != nil {
		t.Fatal(err)
	}
	return db, table
}

// NewLedger is a Ledger on a new table, on the system clock.
func NewLedger(t testing.TB) *delivery.Ledger {
	t.Helper()
	db, table := NewTable(t)
	return delivery.New(db, table, nil)
}

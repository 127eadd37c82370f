package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/delivery"
	"github.com/orderpipe/orderpipe/pkg/dispatch"
)

// TestDeliveryTable: the delivery records' table as pkg/delivery needs it, kept with the stack,
// and the dispatch function pointed at it.
func TestDeliveryTable(t *testing.T) {
	s := full(t)
	p := s.pipe
	r := s.resource(t, p.Deliveries.Table)
	want := map[string]any{
		"Type":           "AWS::DynamoDB::Table",
		"DeletionPolicy": "Retain",
		"Properties": map[string]any{
			"KeySchema":                        []any{map[string]any{"AttributeName": delivery.KeyAttribute, "KeyType": "HASH"}},
			"AttributeDefinitions":             []any{map[string]any{"AttributeName": delivery.KeyAttribute, "AttributeType": "S"}},
			"BillingMode":                      "PAY_PER_REQUEST",
			"SSESpecification":                 map[string]any{"SSEEnabled": true},
			"TimeToLiveSpecification":          map[string]any{"AttributeName": delivery.ExpiresAttribute, "Enabled": true},
			"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
		},
	}
	got := map[string]any{"Type": r["Type"], "DeletionPolicy": r["DeletionPolicy"], "Properties": props(r)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delivery table (-want +got):\n%s", diff)
	}
	env := jsonPath(props(s.resources[s.id(p.Dispatch.Function)]), "Environment", "Variables", dispatch.EnvDeliveryTable)
	if diff := cmp.Diff(map[string]any{"Ref": s.id(p.Deliveries.Table)}, env); diff != "" {
		t.Errorf("dispatch %s (-want +got):\n%s", dispatch.EnvDeliveryTable, diff)
	}
}

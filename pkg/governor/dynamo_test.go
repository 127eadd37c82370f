package governor

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/clock"
)

// newTable creates a fresh governor table in the stand-in and returns a client and its name.
func newTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	c := dynamodb.NewFromConfig(awstest.Config(t))
	name := awstest.Name(t, "gov")
	if err := CreateTable(context.Background(), c, name); err != nil {
		t.Fatal(err)
	}
	return c, name
}

func TestDynamoStoreSharesTheSchedule(t *testing.T) {
	c, table := newTable(t)
	clk := clock.NewManual(t0)
	var gs []*Governor
	store := NewDynamoStore(c, table, "") // one per process: see DynamoStore
	for _, name := range []string{"a", "b"} {
		g, err := New(Config{Rate: 10, Instance: name, Conflicts: 100}, store, clk)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	slots := reserveConcurrently(t, gs, 10)
	if len(slots) != 20 {
		t.Fatalf("%d slots, want 20", len(slots))
	}
	checkSpacing(t, slots, 100*time.Millisecond)
	st, err := NewDynamoStore(c, table, "").Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != 20 {
		t.Errorf("version %d after 20 reservations, want 20", st.Version)
	}
}

func TestDynamoStoreRoundTrip(t *testing.T) {
	c, table := newTable(t)
	s := NewDynamoStore(c, table, "k")
	ctx := context.Background()
	want := State{Version: 1, Last: t0, By: "x", Rate: 0.75, Good: 0.5, CutAt: t0.Add(-time.Minute),
		RaisedAt: t0.Add(-time.Second), PausedUntil: t0.Add(time.Second), Policy: 2, Failures: 3,
		OpenedAt: t0.Add(-time.Hour), ProbeAt: t0.Add(30 * time.Second)}
	if err := s.Save(ctx, want, 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(got, want) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
	if err := s.Save(ctx, want, 0); !errors.Is(err, ErrConflict) {
		t.Errorf("second create = %v, want ErrConflict", err)
	}
	if err := s.Save(ctx, State{Version: 3}, 2); !errors.Is(err, ErrConflict) {
		t.Errorf("save on a stale version = %v, want ErrConflict", err)
	}
}

func TestCorruptRecordIsReplaced(t *testing.T) {
	tests := []struct {
		name string
		item map[string]types.AttributeValue
	}{
		{"version a string", map[string]types.AttributeValue{attrVersion: &types.AttributeValueMemberS{Value: "seven"}, attrLast: &types.AttributeValueMemberN{Value: "5"}}},
		{"no version", map[string]types.AttributeValue{attrRate: &types.AttributeValueMemberN{Value: "1"}}},
		{"bad time", map[string]types.AttributeValue{attrVersion: &types.AttributeValueMemberN{Value: "4"}, attrLast: &types.AttributeValueMemberS{Value: "yesterday"}}},
		{"negative rate", map[string]types.AttributeValue{attrVersion: &types.AttributeValueMemberN{Value: "9"}, attrRate: &types.AttributeValueMemberN{Value: "-3"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, table := newTable(t)
			item := map[string]types.AttributeValue{KeyAttribute: &types.AttributeValueMemberS{Value: DefaultKey}}
			for k, v := range tt.item {
				item[k] = v
			}
			if _, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
				t.Fatal(err)
			}
			clk := clock.NewManual(t0)
			g, err := New(Config{Rate: 1, Instance: "a"}, NewDynamoStore(c, table, ""), clk)
			if err != nil {
				t.Fatal(err)
			}
			s, err := g.Reserve(context.Background(), always)
			if err != nil {
				t.Fatalf("Reserve on a corrupt record: %v", err)
			}
			if s.At.Before(t0.Add(time.Second)) {
				t.Errorf("first slot after a repair %v, want at least one interval after now %v", s.At, t0)
			}
			st, err := NewDynamoStore(c, table, "").Load(context.Background())
			if err != nil {
				t.Fatalf("record after the repair still unreadable: %v", err)
			}
			if st.By != "a" || !st.Last.Equal(s.At) || st.Rate != 1 {
				t.Errorf("repaired record %+v, want last %v by a at rate 1", st, s.At)
			}
		})
	}
}

func TestMissingTableIsAStoreError(t *testing.T) {
	c := dynamodb.NewFromConfig(awstest.Config(t))
	g, err := New(Config{Rate: 1}, NewDynamoStore(c, awstest.Name(t, "absent"), ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	var se *StoreError
	if _, err := g.Reserve(context.Background(), always); !errors.As(err, &se) {
		t.Errorf("Reserve on a missing table = %v, want a StoreError", err)
	}
}

func TestAdvanceSameOnBothStores(t *testing.T) {
	// The last slot's margin was 10 ms; the new one's is 5 ms.
	gap, margin := time.Second, 5*time.Millisecond
	end := t0.Add(10 * time.Millisecond)
	base := State{Version: 4, Last: t0, Late: end, By: "b", Rate: 1, Policy: 2, Run: 3}
	busy := Advance{Rate: 1, Policy: 2, Gap: gap, Margin: margin, Now: t0.Add(time.Second), Latest: t0.Add(time.Minute), By: "a", Busy: true}
	tests := []struct {
		name     string
		st       State
		a        Advance
		wantLast time.Time // zero: ErrConflict, nothing written
	}{
		{"busy", base, busy, end.Add(gap)},
		{"busy, tried idle first", base, func() Advance { a := busy; a.Busy = false; return a }(), end.Add(gap)},
		{"idle", base, func() Advance { a := busy; a.Now = t0.Add(time.Hour); a.Latest = t0.Add(2 * time.Hour); return a }(), t0.Add(time.Hour)},
		{"busy beyond the latest start", base, func() Advance { a := busy; a.Latest = t0.Add(time.Second); return a }(), time.Time{}},
		{"idle after the latest start", base, func() Advance { a := busy; a.Now = t0.Add(time.Hour); a.Latest = t0; return a }(), time.Time{}},
		{"paused beyond the last slot", func() State { s := base; s.PausedUntil = t0.Add(time.Millisecond); return s }(), busy, time.Time{}},
		{"pause over", func() State { s := base; s.PausedUntil = t0.Add(-time.Second); return s }(), busy, end.Add(gap)},
		{"breaker open", func() State { s := base; s.OpenedAt = t0.Add(-time.Minute); return s }(), busy, time.Time{}},
		{"rate changed", func() State { s := base; s.Rate = 0.5; return s }(), busy, time.Time{}},
		{"policy changed", func() State { s := base; s.Policy = 1; return s }(), busy, time.Time{}},
		{"no record", State{}, busy, time.Time{}},
		{"a record without the last slot's end", func() State { s := base; s.Late = time.Time{}; return s }(), busy, time.Time{}},
		{"the end before the last slot (written without it)", func() State { s := base; s.Late = t0.Add(-time.Second); return s }(), busy, time.Time{}},
	}
	c, table := newTable(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			mem := &MemoryStore{st: tt.st}
			ddb := NewDynamoStore(c, table, "k"+strconv.Itoa(i))
			if tt.st.Version > 0 {
				if err := ddb.Save(ctx, tt.st, 0); err != nil {
					t.Fatal(err)
				}
			}
			for name, s := range map[string]interface {
				Store
				Advancer
			}{"memory": mem, "dynamodb": ddb} {
				got, err := s.Advance(ctx, tt.a)
				after, lerr := s.Load(ctx)
				if lerr != nil {
					t.Fatal(lerr)
				}
				if tt.wantLast.IsZero() {
					if !errors.Is(err, ErrConflict) || !equal(after, tt.st) {
						t.Errorf("%s: Advance = %+v, %v; record %+v; want ErrConflict and the record unchanged", name, got, err, after)
					}
					continue
				}
				want := tt.st
				want.Last, want.Late, want.By, want.Version = tt.wantLast, tt.wantLast.Add(margin), "a", tt.st.Version+1
				if err != nil || !equal(got, want) || !equal(after, want) {
					t.Errorf("%s: Advance = %+v, %v; record %+v; want %+v", name, got, err, after, want)
				}
			}
		})
	}
}

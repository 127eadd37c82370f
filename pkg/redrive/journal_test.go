package redrive_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/orderpipe/orderpipe/pkg/order"
	"github.com/orderpipe/orderpipe/pkg/redrive"
)

// TestRunResumesACrashedMove injects a fault between every send and its delete, as a run killed
// there would leave it: each order is on the orders queue and still in the DLQ. The next run
// finds their MoveSent records and deletes them without a second send: no order lost, none
// sent twice, every move recorded.
func TestRunResumesACrashedMove(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cfg.ScanVisibility = time.Second // the undeleted copies reappear a second after the crash
	park(t, e.client, e.cfg.DLQURL, loadParked(t))
	journal := newJournal(t)

	first, err := newRedriver(t, e.cfg, failingSQS{SQS: e.client, deleteFails: true}, redrive.Options{Journal: journal}).
		Run(context.Background(), redrive.Request{Operator: "alice"})
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	if first.Moved != 6 || first.DeleteFailed != 6 {
		t.Fatalf("first run: got %d moved, %d not deleted; want 6 and 6", first.Moved, first.DeleteFailed)
	}
	waitVisible(t, e.client, e.cfg.DLQURL, 6)

	second, err := newRedriver(t, e.cfg, e.client, redrive.Options{Journal: journal}).Run(context.Background(), redrive.Request{Operator: "bob"})
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if second.Moved != 0 || second.AlreadyMoved != 6 || second.DeleteFailed != 0 {
		t.Errorf("second run: got %d moved, %d already moved, %d not deleted; want 0, 6, 0", second.Moved, second.AlreadyMoved, second.DeleteFailed)
	}
	checkMoved(t, e, allOrders) // each exactly once: receiveAll fails on a second copy
	checkParked(t, e, nil)

	list, err := journal.Client.(*s3.Client).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &journal.Bucket, Prefix: aws.String(redrive.DefaultJournalPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	byOrder := map[string]string{}
	for _, o := range list.Contents {
		id := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(o.Key), redrive.DefaultJournalPrefix), ".json")
		m, ok, err := journal.Get(context.Background(), id)
		if err != nil || !ok {
			t.Fatalf("record of %s: ok %v, error %v", id, ok, err)
		}
		if m.State != redrive.MoveSent || m.SentMessageID == "" || m.At.IsZero() || m.SentAt.Before(m.At) {
			t.Errorf("record of %s: got %+v, want sent, with the sent message id, recorded before it was sent", id, m)
		}
		byOrder[m.OrderID] = m.Operator
	}
	want := map[string]string{"A1": "alice", "A2": "alice", "A3": "alice", "A4": "alice", "A5": "alice", "A6": "alice"}
	if diff := cmp.Diff(want, byOrder); diff != "" {
		t.Errorf("operator by order (-want +got):\n%s", diff)
	}
}

// failingJournal fails every Put.
type failingJournal struct{ redrive.Journal }

func (failingJournal) Put(context.Context, redrive.Move) error { return errInjected }

// TestRunRecordsBeforeItSends checks that a move whose record cannot be written is not made.
func TestRunRecordsBeforeItSends(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	park(t, e.client, e.cfg.DLQURL, loadParked(t))
	res, err := newRedriver(t, e.cfg, e.client, redrive.Options{Journal: failingJournal{newJournal(t)}}).Run(context.Background(), redrive.Request{})
	if !errors.Is(err, errInjected) || res.Moved != 0 || res.Failed != 3 {
		t.Errorf("got error %v, %d moved, %d failed; want the injected error, 0 moved, 3 failed", err, res.Moved, res.Failed)
	}
	checkMoved(t, e, nil)
	checkParked(t, e, allOrders)
}

func TestRunRefusesAMoveWithoutAJournal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := redrive.New(e.cfg, e.client, redrive.Options{})
	if _, err := r.Run(context.Background(), redrive.Request{}); !errors.Is(err, redrive.ErrNoJournal) {
		t.Errorf("got error %v, want ErrNoJournal", err)
	}
	if _, err := r.Run(context.Background(), redrive.Request{DryRun: true}); err != nil {
		t.Errorf("dry run without a journal: %v", err)
	}
}

// waitVisible waits until the queue shows n visible messages (a visibility timeout ending); the
// wait is bounded generously for a loaded machine.
func waitVisible(t *testing.T, c *sqs.Client, url string, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(url),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
		})
		if err != nil {
			t.Fatal(err)
		}
		if out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)] == strconv.Itoa(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s: %d messages never became visible", url, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// crashingSQS plays a redrive killed right after one send: its crashAt-th DeleteMessage fails and
// ends the run's context, as a kill between that send and its delete would.
type crashingSQS struct {
	redrive.SQS
	crashAt int
	deletes int
	cancel  context.CancelFunc
}

func (c *crashingSQS) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	c.deletes++
	if c.deletes == c.crashAt {
		c.cancel()
		return nil, errInjected
	}
	return c.SQS.DeleteMessage(ctx, in, opts...)
}

// TestRunKilledMidway kills a 200-order redrive between its 120th send and delete and runs it
// again: every order is on the orders queue exactly once, none is left parked, and every move
// has its record.
func TestRunKilledMidway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cfg.ScanVisibility = time.Second
	const n = 200
	var ps []parked
	for i := range n {
		id := fmt.Sprintf("K%03d", i)
		ps = append(ps, parked{Body: `{"id":"` + id + `"}`, Attributes: map[string]string{order.AttrOrderID: id, order.AttrFailureClass: order.ClassExhausted}})
	}
	for chunk := range slices.Chunk(ps, 10) {
		park(t, e.client, e.cfg.DLQURL, chunk)
	}
	journal := newJournal(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := newRedriver(t, e.cfg, &crashingSQS{SQS: e.client, crashAt: 120, cancel: cancel}, redrive.Options{Journal: journal}).
		Run(ctx, redrive.Request{Operator: "alice"})
	if err == nil || first.Moved < 120 || first.Moved >= n {
		t.Fatalf("killed run: got %d moved, error %v; want 120 to %d moved and an error", first.Moved, err, n-1)
	}
	waitVisible(t, e.client, e.cfg.DLQURL, n-first.Moved+1)

	second, err := newRedriver(t, e.cfg, e.client, redrive.Options{Journal: journal}).Run(context.Background(), redrive.Request{Operator: "alice"})
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if second.AlreadyMoved != 1 || first.Moved+second.Moved != n {
		t.Errorf("second run: got %d already moved, %d moved (first %d); want 1 and %d in all", second.AlreadyMoved, second.Moved, first.Moved, n)
	}
	if got := receiveAll(t, e.client, e.cfg.QueueURL); len(got) != n { // receiveAll fails on a second copy
		t.Errorf("got %d orders on the orders queue, want %d", len(got), n)
	}
	checkParked(t, e, nil)
	list, err := journal.Client.(*s3.Client).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &journal.Bucket, Prefix: aws.String(redrive.DefaultJournalPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != n {
		t.Errorf("got %d move records, want %d", len(list.Contents), n)
	}
}

// sendingOnlyJournal loses every MoveSent record, as a run killed between its send and that
// record leaves the journal.
type sendingOnlyJournal struct{ redrive.S3Journal }

func (j sendingOnlyJournal) Put(ctx context.Context, m redrive.Move) error {
	if m.State == redrive.MoveSent {
		return errInjected
	}
	return j.S3Journal.Put(ctx, m)
}

// TestRunMarksAResend: a run killed between each send and its MoveSent record (the record lost,
// the DLQ message not deleted) leaves records that say sending. The next run cannot know
// whether the order went out, sends it again and records the repeat: one record per parked
// message, state sent, Resends 1, FirstAt the first run's time, and Result.Resent counts them.
func TestRunMarksAResend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cfg.ScanVisibility = time.Second
	park(t, e.client, e.cfg.DLQURL, loadParked(t))
	journal := newJournal(t)

	first, err := newRedriver(t, e.cfg, failingSQS{SQS: e.client, deleteFails: true}, redrive.Options{Journal: sendingOnlyJournal{journal}}).
		Run(context.Background(), redrive.Request{Operator: "alice"})
	if err != nil || first.Moved != 6 || first.Resent != 0 {
		t.Fatalf("first run: %v, %d moved, %d resent; want 6 moved, 0 resent", err, first.Moved, first.Resent)
	}
	waitVisible(t, e.client, e.cfg.DLQURL, 6)
	second, err := newRedriver(t, e.cfg, e.client, redrive.Options{Journal: journal}).Run(context.Background(), redrive.Request{Operator: "bob"})
	if err != nil || second.Moved != 6 || second.Resent != 6 || second.AlreadyMoved != 0 {
		t.Fatalf("second run: %v, %d moved, %d resent, %d already moved; want 6, 6, 0", err, second.Moved, second.Resent, second.AlreadyMoved)
	}
	checkParked(t, e, nil)
	list, err := journal.Client.(*s3.Client).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &journal.Bucket, Prefix: aws.String(redrive.DefaultJournalPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 6 {
		t.Errorf("got %d move records, want one per parked message (6)", len(list.Contents))
	}
	for _, o := range list.Contents {
		id := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(o.Key), redrive.DefaultJournalPrefix), ".json")
		m, ok, err := journal.Get(context.Background(), id)
		if err != nil || !ok {
			t.Fatalf("record of %s: ok %v, error %v", id, ok, err)
		}
		if m.State != redrive.MoveSent || m.Resends != 1 || m.FirstAt.IsZero() || !m.FirstAt.Before(m.At) || m.Operator != "bob" {
			t.Errorf("record of %s: got %+v; want sent by bob, 1 resend, first recorded before this move", id, m)
		}
	}
}

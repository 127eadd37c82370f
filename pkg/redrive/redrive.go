package redrive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/time/rate"

	"github.com/orderpipe/orderpipe/pkg/order"
)

// SQS is the part of *sqs.Client a Redriver uses, with the SDK's own signatures.
type SQS interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	StartMessageMoveTask(ctx context.Context, in *sqs.StartMessageMoveTaskInput, optFns ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error)
	ListMessageMoveTasks(ctx context.Context, in *sqs.ListMessageMoveTasksInput, optFns ...func(*sqs.Options)) (*sqs.ListMessageMoveTasksOutput, error)
}

// Limiter paces the selective move: Wait blocks until one more message may be sent, or returns
// the context's error. *rate.Limiter implements it.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Options are a Redriver's dependencies; zero fields take the defaults noted.
type Options struct {
	Limiter Limiter          // paces sends; default rate.NewLimiter(Config.Rate, 1)
	Logger  *slog.Logger     // receives the audit lines; default slog.Default()
	Now     func() time.Time // the clock that stops a scan before the context deadline; default time.Now
	// Journal records every selective move before it happens; without one only dry runs and
	// native moves run (ErrNoJournal).
	Journal Journal
}

// ErrNoJournal is returned by a selective move without a Journal: a move must be recorded
// before it happens.
var ErrNoJournal = errors.New("redrive: no journal to record moves in (REDRIVE_AUDIT_BUCKET)")

// Redriver moves parked messages back. Build it with New. A Redriver may run several Runs at
// once; they share the Limiter.
type Redriver struct {
	cfg     Config
	client  SQS
	limiter Limiter
	log     *slog.Logger
	now     func() time.Time
	journal Journal
}

// New returns a Redriver for cfg (zero fields take their defaults) using client. An invalid cfg
// makes every Run fail; LoadConfig reports it earlier.
func New(cfg Config, client SQS, o Options) *Redriver {
	cfg = cfg.withDefaults()
	r := &Redriver{cfg: cfg, client: client, limiter: o.Limiter, log: o.Logger, now: o.Now, journal: o.Journal}
	if r.limiter == nil {
		r.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Handle is the Lambda handler: Run, logging the error once.
func (r *Redriver) Handle(ctx context.Context, req Request) (Result, error) {
	res, err := r.Run(ctx, req)
	if err != nil {
		r.log.ErrorContext(ctx, "redrive failed", "error", err, "scanned", res.Scanned, "moved", res.Moved)
	}
	return res, err
}

// Run executes req and reports what it did. The Result is meaningful even with an error: it
// counts what was done before the error. Errors wrap ErrBadRequest for an invalid request;
// otherwise they name the queue operation that failed. Messages not moved stay in the DLQ.
func (r *Redriver) Run(ctx context.Context, req Request) (Result, error) {
	if err := r.cfg.Validate(); err != nil {
		return Result{Mode: ModeSelective, Stop: StopError}, fmt.Errorf("redrive config: %w", err)
	}
	if err := req.Validate(); err != nil {
		return Result{Mode: ModeSelective, Stop: StopError}, err
	}
	if req.Native {
		res, err := r.native(ctx)
		if !errors.Is(err, errNativeUnsupported) {
			return res, err
		}
		r.log.WarnContext(ctx, "native message move not implemented by the service: falling back to the selective move", "error", err)
		res, err = r.selective(ctx, req)
		res.Fallback = true
		return res, err
	}
	return r.selective(ctx, req)
}

// EntryOf reads a parked message's attributes.
func EntryOf(m sqstypes.Message) Entry {
	str := func(name string) string {
		if v, ok := m.MessageAttributes[name]; ok {
			return aws.ToString(v.StringValue)
		}
		return ""
	}
	num := func(name string) int {
		n, _ := strconv.Atoi(str(name)) // absent or malformed: 0, the zero value of the field
		return n
	}
	e := Entry{
		MessageID:     aws.ToString(m.MessageId),
		OrderID:       str(order.AttrOrderID),
		Class:         str(order.AttrFailureClass),
		Detail:        str(order.AttrFailureDetail),
		Source:        str(order.AttrSource),
		SourceVersion: str(order.AttrSourceVersion),
		Line:          num(order.AttrLine),
		Attempts:      num(order.AttrAttempts),
		ParkedAt:      str(order.AttrParkedAt),
		Redrives:      num(order.AttrRedrives),
	}
	if e.Class == "" {
		e.Class = order.ClassUnknown
	}
	return e
}

// requeueInput builds the SendMessage of a parked message back to the orders queue: the same
// body, every attribute but the parking ones and Retries (order.StripParking), and Redrives one
// higher (order.AttrRedrives; Request.MaxRedrives caps it). Retries goes: a message the queue's
// redrive policy parked (class unknown) still carries the transient attempts of its earlier
// copies, and a redriven order starts a fresh budget, as one parked by dispatch does (dispatch
// never parks Retries).
func (r *Redriver) requeueInput(m sqstypes.Message) *sqs.SendMessageInput {
	attrs := order.StripParking(m.MessageAttributes)
	if attrs == nil {
		attrs = map[string]sqstypes.MessageAttributeValue{}
	}
	attrs[order.AttrRedrives] = sqstypes.MessageAttributeValue{
		DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(EntryOf(m).Redrives + 1)),
	}
	return &sqs.SendMessageInput{
		QueueUrl:          aws.String(r.cfg.QueueURL),
		MessageBody:       m.Body,
		MessageAttributes: attrs,
	}
}

// audit writes the audit line of one message; extra adds key-value pairs (an error).
func (r *Redriver) audit(ctx context.Context, level slog.Level, action string, e Entry, dryRun bool, extra ...any) {
	args := append([]any{
		"action", action, "messageID", e.MessageID, "orderID", e.OrderID, "class", e.Class,
		"source", e.Source, "line", e.Line, "dryRun", dryRun,
	}, extra...)
	r.log.Log(ctx, level, "redrive", args...)
}

// queueAttr reads one queue attribute.
func (r *Redriver) queueAttr(ctx context.Context, url string, name sqstypes.QueueAttributeName) (string, error) {
	out, err := r.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{name},
	})
	if err != nil {
		return "", fmt.Errorf("get %s of %s: %w", name, url, err)
	}
	v, ok := out.Attributes[string(name)]
	if !ok {
		return "", fmt.Errorf("get %s of %s: not returned", name, url)
	}
	return v, nil
}

package redrive

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// errNativeUnsupported marks a service that does not implement message move tasks.
var errNativeUnsupported = errors.New("message move task not implemented by the service")

// native starts a message move task from the DLQ to the orders queue.
func (r *Redriver) native(ctx context.Context) (Result, error) {
	res := Result{Mode: ModeNative}
	src, err := r.queueAttr(ctx, r.cfg.DLQURL, sqstypes.QueueAttributeNameQueueArn)
	if err != nil {
		return res, fmt.Errorf("start native move: %w", err)
	}
	dst, err := r.queueAttr(ctx, r.cfg.QueueURL, sqstypes.QueueAttributeNameQueueArn)
	if err != nil {
		return res, fmt.Errorf("start native move: %w", err)
	}
	perSecond := int32(max(1, math.Round(r.cfg.Rate)))
	out, err := r.client.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{
		SourceArn:                    aws.String(src),
		DestinationArn:               aws.String(dst),
		MaxNumberOfMessagesPerSecond: aws.Int32(perSecond),
	})
	if err != nil {
		if notImplemented(err) {
			return res, fmt.Errorf("start message move task %s -> %s: %w: %w", src, dst, errNativeUnsupported, err)
		}
		return res, fmt.Errorf("start message move task %s -> %s: %w", src, dst, err)
	}
	res.Task = &Task{
		Handle:         aws.ToString(out.TaskHandle),
		Status:         "RUNNING",
		SourceARN:      src,
		DestinationARN: dst,
		Rate:           perSecond,
	}
	// Best effort: the task runs whatever the listing says.
	if tasks, err := r.tasks(ctx, src); err == nil {
		for _, t := range tasks {
			if t.Handle == res.Task.Handle {
				res.Task = &t
				break
			}
		}
	} else {
		r.log.WarnContext(ctx, "redrive: list message move tasks after start", "error", err)
	}
	r.log.InfoContext(ctx, "redrive", "action", "native-move-started", "taskHandle", res.Task.Handle,
		"toMove", res.Task.ToMove, "rate", perSecond)
	return res, nil
}

// Tasks lists the most recent message move tasks of the DLQ (at most 10, in the service's
// order) with their progress.
func (r *Redriver) Tasks(ctx context.Context) ([]Task, error) {
	src, err := r.queueAttr(ctx, r.cfg.DLQURL, sqstypes.QueueAttributeNameQueueArn)
	if err != nil {
		return nil, fmt.Errorf("list message move tasks: %w", err)
	}
	return r.tasks(ctx, src)
}

func (r *Redriver) tasks(ctx context.Context, src string) ([]Task, error) {
	out, err := r.client.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{
		SourceArn:  aws.String(src),
		MaxResults: aws.Int32(10),
	})
	if err != nil {
		return nil, fmt.Errorf("list message move tasks of %s: %w", src, err)
	}
	tasks := make([]Task, 0, len(out.Results))
	for _, e := range out.Results {
		t := Task{
			Handle:         aws.ToString(e.TaskHandle),
			Status:         aws.ToString(e.Status),
			SourceARN:      aws.ToString(e.SourceArn),
			DestinationARN: aws.ToString(e.DestinationArn),
			Rate:           aws.ToInt32(e.MaxNumberOfMessagesPerSecond),
			ToMove:         aws.ToInt64(e.ApproximateNumberOfMessagesToMove),
			Moved:          e.ApproximateNumberOfMessagesMoved,
			FailureReason:  aws.ToString(e.FailureReason),
		}
		if e.StartedTimestamp > 0 {
			t.StartedAt = time.UnixMilli(e.StartedTimestamp).UTC()
		}
		tasks = append(tasks, t)
	}
	return tasks, nil
}

// notImplemented reports whether err says the service lacks the operation: an unknown-operation
// error code, or an HTTP 500 or 501 whose body is not an AWS error at all (moto answers an HTML
// page). A modeled error (UnsupportedOperation for a queue that is not a DLQ or already has a
// task, InternalError, AccessDenied, ...) comes from a service that knows the operation: it is
// returned, not a reason to fall back.
func notImplemented(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidAction", "UnknownOperationException", "NotImplemented":
			return true
		}
		return false
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusInternalServerError, http.StatusNotImplemented:
			return true
		}
	}
	return false
}

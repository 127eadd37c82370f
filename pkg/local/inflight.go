package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// InFlightKey is the object of the pipeline's bucket where a running Pipeline with
// Options.InFlightEvery publishes what its pollers have in flight (an InFlightSnapshot): the
// side channel `orderpipe status` reads the age of a source queue's in-flight messages from
// locally, where there is no CloudWatch, instead of receiving from the queue (a receive counts
// toward maxReceiveCount).
const InFlightKey = "local/inflight.json"

// InFlightSnapshot is what the pollers have in flight at At.
type InFlightSnapshot struct {
	At time.Time `json:"at"`
	// Every is how often the snapshot is written: one older than a few of these is stale (the
	// pipeline stopped without removing it, or died).
	Every time.Duration `json:"every"`
	// Queues maps a source queue's URL to its messages in invocations in flight.
	Queues map[string][]InFlightMessage `json:"queues"`
}

// InFlightMessage is one message of an invocation in flight.
type InFlightMessage struct {
	MessageID    string    `json:"messageId"`
	SentAt       time.Time `json:"sentAt"`       // SentTimestamp: what retention counts from
	ReceiveCount int       `json:"receiveCount"` // ApproximateReceiveCount
	InvokedAt    time.Time `json:"invokedAt"`    // when its invocation started
}

// snapshot is what both pollers have in flight now.
func (p *Pipeline) snapshot(every time.Duration) InFlightSnapshot {
	s := InFlightSnapshot{At: time.Now().UTC(), Every: every, Queues: map[string][]InFlightMessage{}}
	for _, pl := range []*Poller{p.Files, p.Orders} {
		msgs := []InFlightMessage{}
		for _, inv := range pl.InFlight() {
			for _, m := range inv.Records {
				ms, _ := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64)
				n, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
				msgs = append(msgs, InFlightMessage{MessageID: m.MessageId, SentAt: time.UnixMilli(ms).UTC(), ReceiveCount: n, InvokedAt: inv.Started.UTC()})
			}
		}
		s.Queues[pl.QueueURL] = msgs
	}
	return s
}

// publishInFlight writes the snapshot every interval until ctx is done, then removes it.
func (p *Pipeline) publishInFlight(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := p.putSnapshot(ctx, p.snapshot(every)); err != nil && ctx.Err() == nil {
			p.log.WarnContext(ctx, "publish the pollers' in-flight messages", "error", err)
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, _ = p.S3.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: aws.String(p.Resources.Bucket), Key: aws.String(InFlightKey)})
			return
		case <-tick.C:
		}
	}
}

func (p *Pipeline) putSnapshot(ctx context.Context, s InFlightSnapshot) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode in-flight snapshot: %w", err)
	}
	_, err = p.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(p.Resources.Bucket), Key: aws.String(InFlightKey),
		Body: bytes.NewReader(b), ContentType: aws.String("application/json")})
	if err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", p.Resources.Bucket, InFlightKey, err)
	}
	return nil
}

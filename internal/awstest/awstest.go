// Package awstest gives tests real AWS SDK clients pointed at the local stand-in (moto_server),
// and unique resource names so that packages testing in parallel never share state.
//
// The endpoint is AWS_ENDPOINT_URL, or http://127.0.0.1:4566 when unset; `make test` starts
// moto_server there. A test that needs it and cannot reach it fails with a message saying how to
// start it: it is never skipped. Never call moto's /moto-api/reset from a test: other packages'
// tests share the server.
package awstest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Region is the region every test client uses.
const Region = "us-east-1"

// Endpoint returns the stand-in's URL: AWS_ENDPOINT_URL or http://127.0.0.1:4566.
func Endpoint() string {
	if e := os.Getenv("AWS_ENDPOINT_URL"); e != "" {
		return e
	}
	return "http://127.0.0.1:4566"
}

// Config returns an aws.Config for the stand-in at Endpoint with static test credentials.
// It fails the test if the stand-in does not answer.
func Config(t testing.TB) aws.Config {
	t.Helper()
	return ConfigAt(t, Endpoint())
}

// ConfigAt is Config for an explicit endpoint (for example a second stand-in).
func ConfigAt(t testing.TB, endpoint string) aws.Config {
	t.Helper()
	if err := reachable(endpoint); err != nil {
		t.Fatalf("AWS stand-in not reachable at %s (%v): run the tests with `make test`, or start it with `make moto-start`", endpoint, err)
	}
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(Region),
		config.WithBaseEndpoint(endpoint),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		t.Fatalf("load AWS config: %v", err)
	}
	return cfg
}

// unreachable remembers endpoints that did not answer, so that the other tests of the process fail
// at once instead of each waiting for them.
var unreachable sync.Map // endpoint -> error

// reachable reports whether endpoint answers an HTTP GET. A busy stand-in (every package's tests
// share it) can be slow to answer, so it tries a few times.
func reachable(endpoint string) error {
	if err, ok := unreachable.Load(endpoint); ok {
		return err.(error)
	}
	c := http.Client{Timeout: 10 * time.Second}
	var err error
	for try := 0; try < 3; try++ {
		if try > 0 {
			time.Sleep(time.Second)
		}
		var resp *http.Response
		if resp, err = c.Get(endpoint); err == nil {
			resp.Body.Close()
			return nil
		}
	}
	unreachable.Store(endpoint, err)
	return err
}

// S3 returns an S3 client using path-style addressing, as the stand-in needs.
func S3(cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

// SQS returns an SQS client for cfg.
func SQS(cfg aws.Config) *sqs.Client { return sqs.NewFromConfig(cfg) }

// SNS returns an SNS client for cfg.
func SNS(cfg aws.Config) *sns.Client { return sns.NewFromConfig(cfg) }

var seq atomic.Int64

// Name returns a name unique to this test process and call, valid as an S3 bucket and an SQS
// queue name: lower case, at most 63 characters, starting with prefix.
func Name(t testing.TB, prefix string) string {
	t.Helper()
	n := fmt.Sprintf("%s-%d-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9, seq.Add(1))
	n = strings.ToLower(n)
	if len(n) > 63 {
		n = n[len(n)-63:]
		n = strings.TrimLeft(n, "-")
	}
	return n
}

// NewBucket creates a bucket with a unique name and returns the name.
func NewBucket(t testing.TB, cfg aws.Config) string {
	t.Helper()
	name := Name(t, "b")
	if _, err := S3(cfg).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// NewQueue creates a queue with a unique name and the given attributes and returns its URL
// and ARN.
func NewQueue(t testing.TB, cfg aws.Config, attrs map[string]string) (url, arn string) {
	t.Helper()
	ctx := context.Background()
	c := SQS(cfg)
	name := Name(t, "q")
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		t.Fatalf("create queue %s: %v", name, err)
	}
	a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       out.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("get queue arn %s: %v", name, err)
	}
	return *out.QueueUrl, a.Attributes["QueueArn"]
}

// IdleRoundTrip is about what RoundTrip measures of moto_server on an idle two-core machine: the
// stand-in latency the tests' waits and deadlines are written for.
const IdleRoundTrip = 2 * time.Millisecond

// MaxScale bounds Scale, so that a test that waits for something that never happens still ends
// within the test binary's timeout.
const MaxScale = 6

// RoundTrip returns the median of five round trips of a small SQS call (ListQueues of a prefix
// no queue has) through c to the stand-in: how slow it answers now. It fails the test when the
// stand-in answers with an error.
func RoundTrip(t testing.TB, c *sqs.Client) time.Duration {
	t.Helper()
	prefix := "roundtrip-none"
	var rtt [5]time.Duration
	for i := range rtt {
		start := time.Now()
		if _, err := c.ListQueues(context.Background(), &sqs.ListQueuesInput{QueueNamePrefix: &prefix}); err != nil {
			t.Fatalf("measure the stand-in's round trip: %v", err)
		}
		rtt[i] = time.Since(start)
	}
	slices.Sort(rtt[:])
	return rtt[len(rtt)/2]
}

// Scale returns d stretched by how much slower than IdleRoundTrip the stand-in behind c answers
// now (RoundTrip): never less than d and at most MaxScale times d. Tests use it for every wait
// on the pipeline's progress (a deadline to settle, to receive a message), so that a machine
// busy with other work makes them slower, not failed; a wait for something that must not happen
// stays as written.
// A measurement of c is reused for a few seconds, so that a loop of short waits does not add
// load of its own.
func Scale(t testing.TB, c *sqs.Client, d time.Duration) time.Duration {
	t.Helper()
	var f float64
	if m, ok := scales.Load(c); ok && time.Since(m.(scale).at) < 5*time.Second {
		f = m.(scale).f
	} else {
		rtt := RoundTrip(t, c)
		f = min(max(float64(rtt)/float64(IdleRoundTrip), 1), MaxScale)
		scales.Store(c, scale{time.Now(), f})
		if f > 1 {
			t.Logf("stand-in round trip %v (idle about %v): waits scaled by %.1f", rtt.Round(time.Microsecond), IdleRoundTrip, f)
		}
	}
	return time.Duration(f * float64(d))
}

// scale is a factor Scale measured at a time.
type scale struct {
	at time.Time
	f  float64
}

var scales sync.Map // *sqs.Client -> scale

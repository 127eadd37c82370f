package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/orderpipe/orderpipe/internal/awstest"
	"github.com/orderpipe/orderpipe/internal/syncbuf"
	"github.com/orderpipe/orderpipe/pkg/ingest"
	"github.com/orderpipe/orderpipe/pkg/local"
)

// TestLocalCtrlCCheckpoints: Ctrl-C of local while ingest reads a large file says what it waits
// for and where the file stopped, exits 0 with the stand-in's counts, and a second local on the
// same resources resumes the file and finishes its report: every line read once.
func TestLocalCtrlCCheckpoints(t *testing.T) {
	t.Parallel()
	s3c := s3.NewFromConfig(awstest.Config(t), local.S3Options)
	prefix := awstest.Name(t, "ctrlc")
	const n, key = 1000, "uploads/big.jsonl"
	var body bytes.Buffer
	for i := range n {
		fmt.Fprintf(&body, `{"id":"o-%05d","amount":"%d.00"}`+"\n", i, i)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	info, done, errb := startLocal(ctx, t, "--name-prefix", prefix, "--standin-rps", "50")
	bucket := info.Resources.Bucket
	if _, err := s3c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: bytes.NewReader(body.Bytes())}); err != nil {
		t.Fatalf("upload: %v", err)
	}
	// Ctrl-C once ingest has claimed the file (its state object exists): reading 1,000 orders
	// takes far longer than the stop.
	deadline := time.Now().Add(time.Minute * awstest.MaxScale)
	for !hasState(t, s3c, bucket, key) {
		if time.Now().After(deadline) {
			t.Fatalf("ingest did not claim %s: %s", key, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("local exited %d after Ctrl-C, want 0: %s", code, errb.String())
	}
	out := errb.String()
	uri := "s3://" + bucket + "/" + key
	for _, want := range []string{"stopping: ingest of " + uri + " checkpointing", "ingest of " + uri + " checkpointed after ", "stand-in order API: "} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr after Ctrl-C lacks %q:\n%s", want, out)
		}
	}
	if _, err := s3c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String(ingest.ReportKey(key))}); err == nil {
		t.Fatalf("the file was read to its end before the stop; want it stopped part way")
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	_, done2, errb2 := startLocal(ctx2, t, "--name-prefix", prefix, "--standin-rps", "50")
	var rep ingest.Report
	for !readReport(t, s3c, bucket, key, &rep) || rep.Waiting != "" {
		if time.Now().After(deadline) {
			t.Fatalf("the second local did not finish %s: %s", key, errb2.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel2()
	<-done2
	if rep.Lines != n || rep.Enqueued != n || rep.Continuations < 1 {
		t.Errorf("report: lines %d, enqueued %d, continuations %d; want %d, %d, >= 1", rep.Lines, rep.Enqueued, rep.Continuations, n, n)
	}
}

// hasState reports whether ingest wrote a state object of key.
func hasState(t *testing.T, c *s3.Client, bucket, key string) bool {
	t.Helper()
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("state/" + key + "@")})
	if err != nil {
		t.Fatalf("list state: %v", err)
	}
	return len(out.Contents) > 0
}

// readReport reads key's report into rep; false while there is none.
func readReport(t *testing.T, c *s3.Client, bucket, key string, rep *ingest.Report) bool {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(ingest.ReportKey(key))})
	var missing *s3types.NoSuchKey
	if errors.As(err, &missing) {
		return false
	}
	if err != nil {
		t.Fatalf("read report: %v", err)
	}
	defer out.Body.Close()
	if err := json.NewDecoder(out.Body).Decode(rep); err != nil {
		t.Fatalf("decode report: %v", err)
	}
	return true
}

// TestStatusInFlightAgeFromLocalRunner: against `local`, status shows the age of the orders
// queue's in-flight message from the runner's side channel (local.InFlightKey), with no receive
// on the queue: an order API that never answers keeps one dispatch invocation in flight.
func TestStatusInFlightAgeFromLocalRunner(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(api.Close)
	ctx, cancel := context.WithCancel(context.Background())
	info, done, errb := startLocal(ctx, t, "--name-prefix", awstest.Name(t, "age"), "--api", api.URL)
	t.Cleanup(func() { cancel(); <-done })
	t.Cleanup(func() { close(hang) }) // first: the request in flight ends, local stops at once
	res := info.Resources
	s3c := s3.NewFromConfig(awstest.Config(t), local.S3Options)
	if _, err := s3c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &res.Bucket, Key: aws.String("uploads/one.jsonl"), Body: strings.NewReader(`{"id":"o-1"}` + "\n")}); err != nil {
		t.Fatalf("upload: %v", err)
	}
	args := []string{"status", "--json", "--files", "0", "--bucket", res.Bucket, "--files-queue", res.FilesQueue, "--files-dlq", res.FilesDLQ,
		"--orders-queue", res.OrdersQueue, "--orders-dlq", res.OrdersDLQ}
	deadline := time.Now().Add(time.Minute * awstest.MaxScale)
	for {
		var r statusReport
		mustJSON(t, standIn(t, args...), &r)
		if q, ok := queueNamed(r.Queues, "orders"); ok && q.AgeSource == ageLocalRunner && q.OldestAgeSeconds != nil && q.InFlight > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the orders queue's in-flight age from the local runner: %+v\n%s", r.Queues, errb.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestDemoCtrlC: Ctrl-C of demo once it has uploaded its file stops it, says it was interrupted
// and prints the stand-in API's counts.
func TestDemoCtrlC(t *testing.T) {
	t.Parallel()
	var out, errb syncbuf.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- c.main(ctx, []string{"demo", "--orders", "400", "--endpoint", awstest.Endpoint(), "--log-level", "error"})
	}()
	for !strings.Contains(out.String(), "uploaded s3://") {
		select {
		case code := <-done:
			t.Fatalf("demo exited %d before uploading: %s", code, errb.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != exitFailure {
		t.Errorf("demo exited %d after Ctrl-C, want %d", code, exitFailure)
	}
	for _, want := range []string{"stand-in order API: ", "demo: interrupted before the ledger settled"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr after Ctrl-C lacks %q:\n%s", want, errb.String())
		}
	}
}

package local

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/orderpipe/orderpipe/internal/awstest"
)

// TestStartMoto starts a private stand-in, uses it with the real SDK, and stops it.
func TestStartMoto(t *testing.T) {
	t.Parallel()
	endpoint, stop, err := StartMoto(context.Background())
	if err != nil {
		t.Fatalf("StartMoto: %v", err)
	}
	defer stop()
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") || endpoint == awstest.Endpoint() {
		t.Errorf("endpoint: got %s, want a private http://127.0.0.1 port", endpoint)
	}
	c := awstest.SQS(awstest.ConfigAt(t, endpoint))
	name := awstest.Name(t, "moto")
	if _, err := c.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: &name}); err != nil {
		t.Errorf("CreateQueue on the started stand-in: %v", err)
	}
	stop()
	stop() // safe twice
	if resp, err := http.Get(endpoint + "/moto-api/"); err == nil {
		resp.Body.Close()
		t.Errorf("GET %s after stop: got %s, want a refused connection", endpoint, resp.Status)
	}
}

func TestStartMotoNotOnPath(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, _, err := StartMoto(context.Background())
	if err == nil || !strings.Contains(err.Error(), "moto_server not found on PATH") || !strings.Contains(err.Error(), "pip install") {
		t.Errorf("StartMoto: got %v, want an error saying moto_server is missing and how to install it", err)
	}
}

// Command echofn is a Lambda function for the tests of package local, built by them with
// aws-lambda-go and run through the local Runtime API.
//
// An SQS event is handled record by record: body "fail" is reported in BatchItemFailures,
// "error" fails the batch, "panic" panics, "exit" exits the process; any other body succeeds.
// Any other payload {"action": ...} is answered with what the function saw (request id,
// function ARN, deadline, environment, payload), unless action is "error", "panic", "exit" or
// "hang" (ignores its deadline). With ECHO_INIT=fail the function reports an init error and exits.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

func main() {
	if os.Getenv("ECHO_INIT") == "fail" {
		url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/init/error"
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"errorType":"InitFailed","errorMessage":"asked to fail init"}`))
		if err == nil {
			resp.Body.Close()
		}
		os.Exit(1)
	}
	lambda.Start(handle)
}

func handle(ctx context.Context, payload json.RawMessage) (any, error) {
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err == nil && len(ev.Records) > 0 {
		return handleSQS(ev)
	}
	var req struct{ Action string }
	_ = json.Unmarshal(payload, &req)
	act(req.Action)
	switch req.Action {
	case "error":
		return nil, errors.New("asked to fail")
	case "hang":
		select {}
	}
	lc, _ := lambdacontext.FromContext(ctx)
	deadline, _ := ctx.Deadline()
	return map[string]any{
		"requestId":    lc.AwsRequestID,
		"functionArn":  lc.InvokedFunctionArn,
		"deadlineMs":   deadline.UnixMilli(),
		"functionName": lambdacontext.FunctionName,
		"echoEnv":      os.Getenv("ECHO_ENV"),
		"pid":          os.Getpid(),
		"payload":      payload,
	}, nil
}

func handleSQS(ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, r := range ev.Records {
		act(r.Body)
		switch r.Body {
		case "fail":
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		case "error":
			return resp, errors.New("batch unusable")
		}
	}
	return resp, nil
}

// act crashes as asked.
func act(what string) {
	switch what {
	case "panic":
		panic("asked to panic")
	case "exit":
		os.Exit(3)
	}
}

// Package local runs the pipeline on one machine, without an AWS account: it starts the AWS
// stand-in, provisions the resources the CDK app deploys, and plays the part of Lambda, which no
// emulator here provides.
//
// # Stand-in and resources
//
// StartMoto starts moto_server on a free port, for when no AWS_ENDPOINT_URL is given. Provision
// creates (or finds, and sets again) the versioned bucket, the SNS topic its ObjectCreated events
// under uploads/ go to, the files queue subscribed to the topic with raw message delivery and a
// policy letting the topic send, the orders queue, and a dead-letter queue for each, with the
// visibility timeouts, retention and maxReceiveCount of a validated pipeline.Settings: the same
// values the CDK app deploys. Setting the notification makes the stand-in send an s3:TestEvent
// to the files queue; the Poller delivers it like any message and the ingest handler skips it.
//
// # Pipeline
//
// Pipeline wires the whole pipeline on these parts, once for `orderpipe local`, `orderpipe demo`
// and the end-to-end tests: NewPipeline provisions the resources, builds the ingest and
// dispatch configurations a deployment would get (from the resources and Settings, adjustable
// through Options) and their handlers (one dispatch.Dispatcher per dispatch instance), and a
// Poller for each source queue; Start and Stop run and stop both pollers, Pending says how
// many messages the two queues still hold, Busy what the invocations in flight work on, and with
// Options.InFlightEvery the running Pipeline publishes its in-flight messages to InFlightKey
// (the side channel `orderpipe status` reads their ages from). The order API is the caller's (APIBaseURL), usually
// the stand-in of pkg/local/apiserver.
//
// # The deployed roles, enforced
//
// StartMotoIAM starts a stand-in that enforces IAM: its first three requests, unauthenticated,
// create an administrator (AdminUser) whose credentials it returns; every later request must be
// signed by an IAM user of the stand-in and is allowed only by that user's policies.
// SynthTemplate synthesizes the CDK app (`go run ./infra`, cached by a hash of the sources) and
// ReadTemplate reads a stack's template; Template.Bind maps its bucket and queues (found through
// the stack outputs) to provisioned Resources, and Template.FunctionPolicies returns a function's
// role policies with every reference resolved to them. CreatePrincipal makes an IAM user with
// those policies (through MotoPolicy, which adds the SQS batch actions moto checks by their own
// names) and returns its credentials; ClientConfig and S3Options build clients that sign as it.
// Template.Wiring reads the queues' attributes, the ingest and dispatch functions (timeout,
// reserved concurrency, literal environment) and their event source mappings; a Pipeline built
// with Options.Template provisions and runs from them.
// What the stand-in does and does not check is in docs/DECISIONS.md.
//
// # Event source mapping
//
// Poller mirrors a Lambda SQS event source mapping with ReportBatchItemFailures:
//   - MaxConcurrency workers each long-poll ReceiveMessage (WaitTime, at most BatchSize
//     messages, all system and message attributes) and invoke the Handler with what they got,
//     so at most MaxConcurrency invocations are ever in flight (the mapping's
//     MaximumConcurrency);
//   - records are converted as Lambda does (SQSMessage): messageId, receiptHandle, body,
//     attributes (ApproximateReceiveCount, SentTimestamp, SenderId,
//     ApproximateFirstReceiveTimestamp), messageAttributes with stringValue/binaryValue and
//     dataType, md5OfBody, md5OfMessageAttributes, eventSource "aws:sqs", eventSourceARN and
//     awsRegion;
//   - each invocation's context has a deadline FunctionTimeout away and a lambdacontext with a
//     fresh request id and the function's ARN;
//   - a successful invocation deletes every message but its BatchItemFailures; an error, a
//     panic (recovered: a crashed invocation, and the poller goes on), a missed deadline, or a
//     partial batch response naming a message not in the batch (or an empty id) deletes
//     nothing, so the messages come back after the visibility timeout with a higher
//     ApproximateReceiveCount, until the queue's redrive policy moves them to its DLQ;
//   - cancelling Run's context stops it: receives in flight finish (within WaitTime) and what
//     they got is made visible again at once (a cancelled long poll would have left it
//     invisible for the visibility timeout); invocations in flight finish and their deletes are
//     made before Run returns.
//
// It does not: scale pollers with the backlog (the worker count is fixed at MaxConcurrency,
// and a worker waits for its invocation before receiving again), wait for a batching window
// or build batches larger than one receive (BatchSize is at most 10), keep FIFO ordering per
// message group, filter events, back off after failed invocations, or kill an in-process
// handler that ignores its deadline (its result is discarded and it counts as a timeout; the
// goroutine runs on). Like Lambda, it does not change a failed message's visibility: that is the
// handler's business (dispatch does it with ChangeMessageVisibility).
//
// # Lambda Runtime API
//
// Process runs a real compiled bootstrap (a custom runtime, as built by `make build`) as one
// Lambda execution environment: it serves the Lambda Runtime API on 127.0.0.1
// (GET /2018-06-01/runtime/invocation/next with the request id, deadline and function ARN
// headers; POST .../invocation/{id}/response and .../error; POST .../init/error) and runs the
// binary with AWS_LAMBDA_RUNTIME_API pointing at it, the variables Lambda sets
// (AWS_LAMBDA_FUNCTION_NAME, AWS_REGION, ...) and the function's own Env. Process.Invoke sends
// one payload and returns the response, one invocation at a time per Process; Pool spreads
// concurrent invocations over several Processes, one per MaxConcurrency; SQSHandler turns
// either into a Handler for the Poller. A binary that exits is started again; an exit during an
// invocation fails it with ErrCrashed, and a missed deadline (ErrTimedOut) kills and restarts
// the binary, as Lambda resets the environment. A binary built for another architecture runs
// through qemu-aarch64-static or qemu-x86_64-static (Debian package qemu-user-static) when that
// is on PATH; Start says what to install otherwise.
//
// It does not implement the Extensions or Telemetry APIs, response streaming, the SIGTERM
// shutdown phase, X-Ray, memory limits or freezing the process between invocations.
package local

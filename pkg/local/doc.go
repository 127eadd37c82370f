// Package local runs the pipeline on one machine, without an AWS account: it starts the AWS
// stand-in, provisions the resources the CDK app deploys, and plays the part of Lambda, which no
// emulator here provides.
//
// # Stand-in and resources
//
// StartMoto starts moto_server on a free port when no AWS_ENDPOINT_URL is given. Provision
// creates (or finds) the versioned bucket, the SNS topic its uploads/ ObjectCreated events go to,
// the files queue subscribed to the topic with raw delivery, the orders queue and both
// dead-letter queues, with the visibility timeouts, retention and maxReceiveCount of a validated
// pipeline.Settings, the same the CDK app uses.
//
// # Event source mapping
//
// Poller mirrors a Lambda SQS event source mapping with ReportBatchItemFailures:
//   - MaxConcurrency workers each long-poll ReceiveMessage (WaitTime, at most BatchSize
//     messages, all system and message attributes) and invoke the Handler with the batch, so at
//     most MaxConcurrency invocations are ever in flight (the mapping's MaximumConcurrency);
//   - records are converted as Lambda does (SQSMessage): messageId, receiptHandle, body,
//     attributes (ApproximateReceiveCount, SentTimestamp, ...), messageAttributes with
//     stringValue and dataType, md5OfBody, eventSource "aws:sqs", eventSourceARN, awsRegion;
//   - each invocation's context has a deadline FunctionTimeout away and a lambdacontext with a
//     fresh request id and the function's ARN;
//   - a successful invocation deletes every message except its BatchItemFailures; an error, a
//     panic (recovered: a crashed invocation), a missed deadline, or a partial batch response
//     naming a message that is not in the batch (or an empty id) deletes nothing, so the
//     messages come back after the visibility timeout, with a higher ApproximateReceiveCount,
//     until the queue's redrive policy moves them to the dead-letter queue;
//   - cancelling Run's context stops receiving; invocations in flight finish and their deletes
//     are made before Run returns.
//
// It does not: scale pollers with the backlog (the worker count is fixed at MaxConcurrency),
// wait for a batching window or build batches larger than one receive (BatchSize is at most
// 10), handle FIFO queues (ordering per message group), filter events, back off after failed
// invocations, or kill a handler that ignores its deadline (its result is discarded and it
// counts as a timeout; the goroutine runs on). A function timeout does not change the
// messages' visibility: they come back when the queue's visibility timeout passes.
//
// # Lambda Runtime API
//
// To run a real compiled bootstrap instead of a Go function, Process serves the Lambda Runtime
// API on 127.0.0.1 and runs the binary with AWS_LAMBDA_RUNTIME_API pointing at it, restarting
// it when it exits. Process.Invoke sends one payload and returns the response; SQSHandler turns
// it into a Handler for the Poller. arm64 binaries run through qemu-aarch64-static when the host
// is not arm64.
package local

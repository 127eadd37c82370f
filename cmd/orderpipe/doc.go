// Command orderpipe is the operator's tool for the order pipeline: it uploads order files, shows
// the state of the queues, lists, shows, redrives and purges parked orders, and runs the whole
// pipeline on this machine (local, demo).
//
// Usage:
//
//	orderpipe upload FILE... [--key-prefix uploads/]
//	orderpipe status [--watch 5s] [--rate R] [--files 10] [--age-source auto|cloudwatch|peek] [--peek 1000]
//	orderpipe dlq ls [--class C] [--source S] [--max 100] [--scan 1000]
//	orderpipe dlq show MESSAGE-ID|ORDER-ID [--scan 1000]
//	orderpipe dlq redrive [--class C] [--source S] [--max N] [--dry-run] [--rate 10] [--native] [--here]
//	orderpipe dlq purge [--class C] [--source S] --yes
//	orderpipe local [--api URL | --standin-rps 1 ...] [--name-prefix orderpipe] [--rate R] [--instances 2] [--template FILE] [--bootstraps build]
//	orderpipe demo [--orders 60] [--standin-rps 20] [--timeout 3m] [--template FILE] [--bootstraps build]
//
// # Resources
//
// Every command takes --json (machine-readable output on stdout), --endpoint (an AWS stand-in;
// AWS_ENDPOINT_URL does the same; S3 is then addressed path-style, the region defaults to
// us-east-1 and, without configured credentials, static test ones are used) and --region, and
// finds its resources from, in this order: flags (--bucket, --files-queue, --files-dlq,
// --orders-queue, --orders-dlq, --alarm-topic, --redrive-function), environment variables
// (ORDERPIPE_BUCKET, ORDERPIPE_FILES_QUEUE, ORDERPIPE_FILES_DLQ, ORDERPIPE_ORDERS_QUEUE,
// ORDERPIPE_ORDERS_DLQ, ...), and the outputs of a CloudFormation stack named by --stack or
// ORDERPIPE_STACK (docs/CONTRACTS.md, "Stack outputs" and "CLI environment"). A queue is given
// by URL or by name.
//
// Exit codes: 0 success, 1 failure (the error is on stderr), 2 usage (bad flags or arguments,
// or a resource the command needs is not configured). A bad flag prints the error, the
// command's usage line and "run 'orderpipe help COMMAND' for every flag"; -h or
// `orderpipe help COMMAND` prints every flag.
//
// # Parked orders
//
// --class takes one or more classes, comma-separated (permanent, exhausted, undecodable,
// unknown: parked by the queue's own redrive policy); --source an exact s3://bucket/key or a
// prefix ending in "*", as pkg/redrive selects. dlq ls says on stderr how many it listed, how
// many it scanned and how many are parked in all (ApproximateNumberOfMessages). dlq show takes
// a message id or an order id (the first parked copy of that order).
//
// Reading a dead-letter queue is a peek: messages are received with a 30 s visibility timeout
// and made visible again as soon as the scan ends, never deleted (except by purge and redrive).
// Each peek counts as a receive (ApproximateReceiveCount). The dead-letter queues have no
// redrive policy, so that is harmless there. No command receives from a source queue (files,
// orders): there every receive counts toward maxReceiveCount, and enough of them park an order
// as unknown without a delivery attempt.
//
// dlq redrive invokes the redrive function (synchronously, the Request as its payload) when one
// is configured (--redrive-function, ORDERPIPE_REDRIVE_FUNCTION or the stack output
// RedriveFunctionName) and no endpoint is given; otherwise, or with --here, it runs pkg/redrive
// in this process with the operator's credentials (the same core), at --rate, its audit log on
// stderr. It exits 1 when any selected order could not be moved (it stays parked).
//
// # Status
//
// status prints, for each queue, the messages visible, in flight and delayed, the retention and
// the age of the oldest message; the parked orders by class (peeking up to --peek of them); the
// orders backlog, the API rate as deployed (--rate, else the governor's current rate when it
// has lowered it, else ORDERPIPE_API_RATE, which local exports, else the stack output ApiRate,
// else pipeline.Defaults; it says which), the drain
// rate measured (CloudWatch's AWS/SQS NumberOfMessagesDeleted of the last 15 minutes on AWS;
// the backlog's change between refreshes under --watch) and the ETA at the measured rate, or
// at the API rate when none was measured; per file, from ingest's state objects of the last
// 24 h (at most --files, in-flight ones first), a progress bar of the bytes read, the lines
// read of the file's lines (once verified), enqueued, rejected, delivered (enqueued - parked:
// exact once the file is done, the orders queue empty and every parked message peeked, else a
// lower bound less the unpeeked parked messages and the whole backlog) and parked, since when
// it is in flight and whether its invocation has probably died (silent: no checkpoint for
// silentAfter; stalled: the claim's lease expired); and warnings at the stack's alarm
// thresholds: the oldest order past half the retention, a backlog needing more than half the
// retention at the API rate, a backlog that will not drain before the retention, a file
// message older than the files visibility timeout, a silent or stalled file, a parked message
// expiring within 48 h.
// --watch refreshes the report in place at its interval until Ctrl-C (with --json, one
// document per refresh).
//
// SQS has no API for a queue's oldest message. On AWS (--age-source cloudwatch, the default
// without an endpoint) the age is CloudWatch's AWS/SQS ApproximateAgeOfOldestMessage, the latest
// datapoint of the last five minutes. Against a stand-in (--age-source peek, the default with
// an endpoint) a dead-letter queue's age is estimated from the SentTimestamp of the peeked
// messages: the oldest among them, so a lower bound when not every message was peeked; a source
// queue's age is that of its oldest message in an invocation in flight, from the snapshot a
// running local publishes (local.InFlightKey, "local runner: in flight"; a lower bound too),
// and unknown without one. SentTimestamp is what retention
// counts from; a message moved by a redrive policy keeps its original one.
//
// # Local and demo
//
// local runs the pipeline in this process until Ctrl-C: moto_server (started here unless an
// endpoint is given), the bucket, topic and queues made by pkg/local.Provision from
// pipeline.Defaults (or, with --template cdk.out/OrderPipe.template.json, with the synthesized
// stack's queue attributes, function timeouts and environment and event source mappings;
// --instances is then the template's; with --bootstraps build, the functions run as the compiled
// binaries `make build` writes, through pkg/local's Lambda Runtime API), the stand-in order API (pkg/local/apiserver, --api-* / --standin-rps flags)
// unless --api names a real one, and two pkg/local pollers emulating Lambda's event source
// mappings: files queue -> ingest handler, orders queue -> dispatch handler with --instances
// concurrent instances, each a Dispatcher of its own (its own pacing at API_RATE/instances), as
// Lambda instances are. The handlers are built from their LoadConfig with the environment a
// deployment gives them. local prints the resources and the export line that points upload,
// status and dlq at them. Ctrl-C stops it in seconds: it says what it waits for ("stopping:
// ingest of s3://b/k checkpointing; dispatch finishing 1 request (order o-1)"), an ingest
// invocation checkpoints at its next line and hands the rest of its file to a continuation on
// the files queue (ingest.WithStop; a bootstrap goes on to its own checkpoint time), dispatch
// finishes the requests in flight, and it prints where each file stopped ("checkpointed after N
// lines"): the next local (or demo) on the same resources resumes there, nothing sent twice or
// lost. A second Ctrl-C kills (the crash case: the file resumes after the files visibility). It
// checks its flags (--api must be an http(s) URL) before it starts or creates anything, and on
// stop prints the stand-in API's counts (requests, accepted, duplicates, 429s, errors).
//
// demo is local with a generated file: N orders plus a malformed JSON line, a line without an
// id, a duplicate id and a blank line, uploaded to uploads/demo-orders.jsonl, against the
// stand-in API at 20 requests/s (the real API allows about 1: the demo would otherwise take
// minutes) with two faults injected: one order the API refuses (422, parked as permanent) and
// one that fails once (500, delivered on a retry). It prints progress every second, then the
// ledger: lines (blank ones aside, from ingest's report) = delivered (distinct ids the API
// accepted) + rejected (report) + parked (orders DLQ). It exits 0 only when the ledger balances
// and every valid order id was delivered or parked; 1 otherwise, or when it has not settled by
// --timeout (or on Ctrl-C: it says so and prints the stand-in API's counts). Each demo uses fresh
// resources (demo-<random>-...).
package main

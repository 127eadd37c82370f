// Command orderpipe is the operator's tool for the order pipeline: it uploads order files, shows
// the state of the queues, lists, shows, redrives and purges parked orders, and runs the whole
// pipeline on this machine (local, demo).
//
// Usage:
//
//	orderpipe upload FILE... [--key-prefix uploads/]
//	orderpipe status [--rate 1] [--age-source auto|cloudwatch|peek]
//	orderpipe dlq ls [--class C] [--source S] [--max N]
//	orderpipe dlq show MESSAGE-ID
//	orderpipe dlq redrive [--class C] [--source S] [--max N] [--dry-run] [--rate R] [--native]
//	orderpipe dlq purge [--class C] [--source S] --yes
//	orderpipe local [--api URL | --standin-rps R]
//	orderpipe demo [--orders N] [--standin-rps R]
//
// Every command takes --json (machine-readable output on stdout), --endpoint (an AWS stand-in;
// AWS_ENDPOINT_URL does the same, and S3 is then addressed path-style), --region, and finds its
// resources from, in this order: flags (--bucket, --files-queue, --files-dlq, --orders-queue,
// --orders-dlq, --redrive-function), environment variables (ORDERPIPE_BUCKET,
// ORDERPIPE_FILES_QUEUE, ORDERPIPE_FILES_DLQ, ORDERPIPE_ORDERS_QUEUE, ORDERPIPE_ORDERS_DLQ,
// ORDERPIPE_REDRIVE_FUNCTION), and the outputs of a CloudFormation stack named by --stack or
// ORDERPIPE_STACK (docs/CONTRACTS.md, "Stack outputs"). A queue is given by URL or by name.
//
// Exit codes: 0 success, 1 failure (the error is on stderr), 2 usage (bad flags or arguments,
// or a resource the command needs is not configured).
//
// --class takes one or more classes, comma-separated; --source an exact s3://bucket/key or a
// prefix ending in "*", as pkg/redrive selects.
//
// Reading a dead-letter queue is a peek: messages are received with a short visibility timeout
// and made visible again at once, never deleted (except by purge). Each peek counts as a receive
// (ApproximateReceiveCount); the dead-letter queues have no redrive policy, so that is harmless
// there, and status never peeks the orders queue unless asked (--peek-orders), because there a
// receive counts against maxReceiveCount.
package main

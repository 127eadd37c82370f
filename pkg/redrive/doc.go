// Package redrive moves parked orders from the orders dead-letter queue back to the orders
// queue, so that dispatch delivers them again.
//
// Two mechanisms, chosen per Request:
//
//   - Selective move (the default): receive from the DLQ ten at a time, select by failure class
//     (order.Class*; a message without a FailureClass attribute is order.ClassUnknown), by source
//     (exact s3://bucket/key, or a prefix ending in "*") and up to a maximum, then for each
//     selected message SendMessage to the orders queue with the original body and attributes
//     minus the four parking attributes (FailureClass, FailureDetail, Attempts, ParkedAt) and
//     Retries (a redriven order starts a fresh transient budget), and DeleteMessage from the DLQ
//     only after that send succeeded. Sends are paced by a Limiter (REDRIVE_RATE
//     messages/second). Every move is recorded in a Journal (S3Journal: one object per DLQ
//     message under audit/redrive/ in REDRIVE_AUDIT_BUCKET) before it happens: state "sending"
//     before the send, "sent" (with the new message id) before the delete. A run that ended
//     between a send and its delete (killed, timed out, a failed delete) leaves the order in both
//     queues; when a later run meets that DLQ message again, its "sent" record says so and it is
//     deleted without a second send (Result.AlreadyMoved). Only a run that ends between the send
//     and the "sent" record can cause a second send (logged as action=resend, counted in
//     Result.Resent and in the record's Resends, FirstAt keeping the first attempt's time;
//     dispatch's delivery record and the order API's Idempotency-Key absorb it). A failed send or a failed record leaves the message in the
//     DLQ. Without a Journal a selective move is refused (ErrNoJournal).
//     Messages received but not moved (not selected, failed, or a dry run) are made visible again
//     (ChangeMessageVisibility 0) when the scan ends. The scan ends at Max, at an empty receive,
//     when a receive brings back only messages already seen, after ApproximateNumberOfMessages
//     plus a margin (10%, at least 100), or shortly before the context deadline.
//
//   - Native move (Request.Native, only without any selection): StartMessageMoveTask from the
//     DLQ to the orders queue at REDRIVE_RATE; Redriver.Tasks reports progress through
//     ListMessageMoveTasks. The move is asynchronous and keeps every attribute, the parking ones
//     included: SQS offers no way to strip them. When the service does not implement it (moto
//     answers HTTP 500), the Redriver logs that and falls back to the selective move.
//
// A dry run moves and deletes nothing. It still receives the messages it scans, so they are
// invisible for the scan's duration (at most Config.ScanVisibility, normally until the scan
// ends) and their ApproximateReceiveCount grows by one; nothing else changes.
//
// Every message scanned gets an audit log line (slog, message "redrive", keys action,
// messageID, orderID, class, source, line, dryRun, and error when one occurred). Actions:
// moving (before the send, with operator), then move or already-moved; would-move (dry run);
// send-failed, record-failed, record-sent-failed, resend and moved-not-deleted (warn); skip
// (debug). A native move task is not recorded per message: SQS moves them itself.
//
// The core is usable outside Lambda: redrive.New(cfg, sqsClient, redrive.Options{}).Run(ctx,
// req). Handle is the Lambda handler shape (docs/CONTRACTS.md).
package redrive

// Package ingest turns order files into order messages: for each object version named by a
// files-queue message it streams the object from S3, reads it with pkg/order, sends every valid
// order to the orders queue and writes, in the same bucket (docs/CONTRACTS.md):
//
//   - rejects/{key}.jsonl: one {"line","reason","raw"} line per rejected line, written when there
//     is at least one and deleted otherwise (so that an earlier version's rejects never stand
//     beside a later version's report);
//   - reports/{key}.json: the Report (lines, enqueued, rejected, duplicate ids, ...) of the
//     latest version of the key, and reports/{key}.json@{version} (version as in the state
//     key) the report of each version, written first and kept when a later version replaces
//     the current one;
//   - state/{key}@{version}.json: the claim and checkpoint (State), with two sidecars while the
//     file is in progress, state/{key}@{version}.ids (the id set) and
//     state/{key}@{version}.rejects-N.jsonl (rejects of earlier invocations), deleted at the end.
//
// S3 keys are at most MaxKeyBytes (1024) bytes. When a derived key with the whole object key
// would be longer (for the state, counting 32 bytes for the longest sidecar suffix), {key} in it
// is the key's first KeptKeyBytes (200, cut at a rune boundary), "~" and the hex SHA-256 of the
// whole key; RejectsKey and ReportKey give the names. The report and the state still record the
// whole key.
//
// # Sending
//
// Orders go out with SendMessageBatch: at most 10 entries and 256 KiB (bodies plus attributes,
// counted as SQS counts them) per batch; an entry alone above 256 KiB goes alone (SQS takes up
// to 1 MiB a message). An order whose message would exceed 1 MiB (a CSV row grows when it
// becomes a JSON object) is a rejected line: the queue would refuse its whole batch.
// SEND_CONCURRENCY batches are in flight. Entries that come back in Failed with
// SenderFault=false are retried with exponential backoff and full jitter, at most
// 5 sends, then the file's message fails; an entry refused for a fault of its own
// (SenderFault=true, e.g. characters SQS does not accept) becomes a rejected line, "refused by
// the queue: CODE", except throttles (retried like the others) and KMS errors of an encrypted
// queue (the file's message fails): SQS flags those SenderFault too, yet the order is valid.
// Whole-call errors are retried by the SDK's retryer only.
//
// # Exactly one owner per object version
//
// S3 and SQS deliver at least once, so the same object version may be named by several
// messages, at the same time. The state object is the claim: the first invocation creates it
// with a conditional write (If-None-Match: *; moto 5.2.1 supports it, and If-Match, on
// PutObject, as S3 does since 2024). Every later write of the state is a compare-and-swap on
// the ETag the owner last wrote (If-Match), so a stale owner can never overwrite a newer one.
// A message for a version whose state is
//
//   - done: is skipped (logged) and succeeds; nothing is sent again;
//   - running, lease live, not handed to this message and not held under it: ErrBusy. It is not
//     dropped: Handle re-sends it to the files queue as a fresh copy delayed by
//     FILES_VISIBILITY (so waiting spends none of its receives) and deletes it; if the re-send
//     fails, the message fails and comes back after the visibility timeout. By then the owner
//     has finished (skip), or died (its own message is back and has taken over). Dropping it
//     would also be safe while the owner's own message exists, but re-sending relies on nothing;
//   - running with a lease run out, handed to this continuation's token, or held under this very
//     message (State.Holder: the files-queue message id the claim was taken under) and not
//     written for two thirds of FILES_VISIBILITY (at least CheckpointEvery): is taken over
//     (compare-and-swap) and resumed from the checkpoint. A live invocation keeps its message
//     hidden and writes its claim every CheckpointEvery; a dead one's message comes back no
//     sooner than two thirds of FILES_VISIBILITY after its last heartbeat, and so after its last
//     write. The same message delivered twice at once (SQS may) finds a fresh claim: busy.
//
// # Heartbeat: a crashed ingest resumes within FILES_VISIBILITY
//
// The files queue's visibility timeout is short (FILES_VISIBILITY, 4 min by default, equal to
// the function timeout, the least Lambda's event source accepts), not 6 x the timeout: while
// Handle works on a batch it sets every message of the batch not yet finished invisible for
// FILES_VISIBILITY again every third of it
// (ChangeMessageVisibility with the record's receipt handle). An invocation that dies (killed,
// timed out, out of memory) stops heartbeating, its message is back within FILES_VISIBILITY,
// takes its own claim over at once (Holder) and resumes from the last checkpoint (at most
// CheckpointEvery of orders are sent again; dispatch's delivery record deletes those copies
// unsent). A heartbeat that fails is logged; if it keeps failing the message comes back while
// its invocation still works: the new one finds the claim busy (another message) or takes it
// over (the same message), and the old one's next state write fails its compare-and-swap and it
// stops; orders both sent are absorbed the same way.
//
// The lease of a claim ends Config.LeaseSlack (a minute by default) after the invocation's
// deadline (DefaultLease from now without one). On an error the claim is released at once
// (lease in the past) so that the retried message resumes without waiting.
//
// A state write whose outcome is unknown (an error other than 412, e.g. its reply cut off by the
// deadline) is read back: when the state holds the bytes written, the write landed and counts
// as done (the hand-over's continuation is sent, the next compare-and-swap uses the ETag read);
// otherwise the claim is still at the ETag it had and is released with it. The hand-over's
// writes run detached from the invocation's cancel and end up to a second before the deadline
// (a quarter of CHECKPOINT_MARGIN if that is less), so that the read-back and the continuation
// or release fit in before it (they end BookkeepingReserve before it).
//
// # State schema
//
// The state object carries "schemaVersion" (StateSchemaVersion, 3). A state object without it
// has the same layout and is read as version 1; every write puts the current version. A state
// object of a newer version (written by a newer ingest during a rollback, say) is refused:
// the message fails with ErrStateSchema and the object is left as it is, never taken over or
// overwritten, whatever its status says; the message is retried and, past maxReceiveCount,
// parked on the files DLQ. A change of layout that an older ingest cannot read safely raises
// StateSchemaVersion and teaches decodeState to read the versions before it.
//
// # Requests per file, and the order of the last ones
//
// A fresh file costs five S3 requests: the claim (conditional PUT), the GET, the rejects object
// (its PUT, or a DELETE without rejects), the report and the done state. For an S3 event the GET from the
// first byte starts together with the claim: nothing is read from it, so nothing is sent,
// until the claim is held at offset 0; a lost claim (done, busy) or a claim that resumes a
// checkpoint closes it unread. A continuation, and a file refused on its name or size, make no
// such GET. The first delivery reads no state object: the conditional create is the claim.
//
// Full batches go to the sending goroutines as soon as they have MaxBatchEntries entries. The
// end-of-file writes wait for every batch in flight (the report's counts and the rejects from
// refused entries come from the queue's answers, and the done state must follow the last
// accepted order), then go in this order:
//
//  1. the rejects object: the report is the sign that nothing is left to do, so what it counts
//     must already be stored;
//  2. the report;
//  3. the done state (compare-and-swap), then the sidecars are deleted.
//
// A crash (or a failed write) before 2 leaves the claim running at the last checkpoint: the next
// delivery resumes there, re-sending at most what followed it, as after any crash. A crash after
// 2 but before 3 must not send the file again: a delivery that takes over an abandoned claim
// (lease run out or released) first looks for the report of the same run (same version, same
// StartedAt as the state); when it is there, the delivery writes the done state from it, sends
// nothing and returns Skipped. A delivery handed the claim by a continuation skips that GET:
// its predecessor stopped before the end.
//
// # Checkpoints and continuations
//
// CHECKPOINT_MARGIN before the deadline, after the line in hand, the invocation flushes every
// batch, saves the checkpoint (byte offset of the decompressed object through the last line
// read, that line's number, the CSV header, the counts, the id set, the rejects so far), hands
// the claim to a fresh token, sends a continuation carrying the token to FILES_QUEUE_URL and
// finishes the message successfully. The continuation resumes with a ranged GET
// (Range: bytes=offset-) and order.NewReader with the header and start line. A gzip object has
// no byte ranges: it is read from the start again and the first offset decompressed bytes are
// discarded. Reads are pinned to the version id, or for an unversioned bucket to the ETag of
// the first read (If-Match), and that first read to the ETag of the event: an object
// overwritten meanwhile fails loudly instead of mixing two files (or reading the new bytes
// under the old event's state: they would be sent again for their own event). An event
// without a version id (an unversioned bucket, or the local stand-in, whose events carry none),
// or with version id "null" (written while versioning was suspended), names its state
// `@null-{eTag}`: the same key overwritten with other bytes is a new file, a repeated event for
// the same bytes is skipped. The deployed bucket is
// versioned, so there the version id decides.
// The invocation also saves a checkpoint every Config.CheckpointEvery without stopping, so a
// crash re-sends at most that much; the order API's Idempotency-Key absorbs such re-sends.
// The id set is written to the one of its two sidecars (.ids, .ids-1) that the saved state
// does not name, so a checkpoint whose state write fails leaves the saved one whole.
// When several files-queue messages arrive in one batch and the checkpoint time has come, the
// later ones are put back on the files queue as continuations without a token.
// A context from WithStop brings the checkpoint time forward to the moment its channel closes
// (the local runner's Ctrl-C): the invocation hands over the same way at its next line (or
// verifying chunk) and returns, and a later run resumes at that line.
//
// # Duplicate ids inside a file
//
// The second and later lines with an id already seen in the file are rejected with reason
// "duplicate id" and listed in the report (the first MaxListedDuplicates). The ids seen are
// kept as 64-bit FNV-1a hashes in an open-addressing table, at most MaxTrackedIDs (786,432) of
// them (8 MiB); beyond that new ids are still checked but not remembered and the report says
// "duplicateCheck": "partial". The table is saved with each checkpoint. A hash collision would
// reject a distinct order as a duplicate (about 2e-8 at the cap): it is listed in the
// rejects and can be resubmitted. The API's Idempotency-Key is the backstop for what the check
// misses.
//
// # Failures
//
// Verify, then send: no order of a file is sent before a verifying pass (verify.go) has read the
// whole object once (GetObject with checksum mode: S3's checksum is validated where the object
// has one), decompressed a gzip file to its end (every member's CRC-32 and length checked),
// checked a CSV header (the id column present exactly once, names exact) and counted the lines.
// The state records the ETag verified and the count, so continuations do not verify again; the
// pass hands over at the checkpoint time like the sending pass. Memory stays flat: it counts, it
// keeps nothing.
//
// A file that cannot be read whole (unknown extension, larger than MAX_FILE_BYTES, not gzip, a
// corrupt or truncated gzip stream, content longer than MAX_DECOMPRESSED_BYTES, an unusable CSV
// header, a body that does not match its S3 checksum twice) is refused at once: report with "refused", no orders, the lines counted so
// far in "unread". A file whose reading stops after verification (it should not happen: the
// bytes are pinned) reports "stopped" and the lines not read in "unread". Both are done:
// retrying cannot help. Either is logged at WARN ("file refused", "file stopped") and counted in
// the EMF metrics FilesRefused, FilesStopped and LinesUnread (namespace orderpipe, dimension
// Function = Config.FunctionName), which infra alarms on. A report's lines = enqueued + rejected + unread.
//
// Backpressure (room.go): before sending, ingest reads the orders queue's backlog and enqueues
// no more than Config.Room (what the API drains at API_RATE within ORDERS_RETENTION less a
// quarter) minus that backlog. A file that does not fit sends what fits, then waits in S3: a
// checkpoint, a waiting report (waiting, waitingSince), a WARN "file waiting" and a
// continuation delayed by Config.WaitDelay, which looks again.
//
// Both passes look at the clock every few MiB of input whatever it holds: inside long runs of
// blank lines, blank lines before a CSV header, and a huge line being skipped
// (order.Options.YieldBytes, Reader.Count's budget), so a checkpoint is taken in time. The
// sending pass also looks after its first line, after every batch it hands to the sender
// (handing one over may wait for the queue) and every 256 lines, not after every line: a look
// per line would cost about a tenth of its CPU. A
// checkpoint inside a huge line (already rejected, or counted) says so (State.InLine,
// VerifyInLine) and the next invocation skips the rest of it first.
//
// A missing object (ErrObjectMissing), a queue that keeps failing (ErrSendFailed), a state of a
// newer schema (ErrStateSchema), S3 or SQS errors, and ErrBusy when its re-send fails, fail the
// message, which is retried and, past maxReceiveCount, parked on the files
// DLQ. Handle never returns an error: each failed message is logged once (key "error") and
// listed in BatchItemFailures.
//
// # Where things are
//
//   - ingest.go: Service, New and its Options (clock, logger, send retries), the S3 and SQS
//     interfaces it consumes;
//   - handler.go: Handle, the SQS adapter (decode, skip, requeue when out of time, log);
//   - run.go: Ingest, the orchestration of one object version (claim, prefetch, adopt a
//     report, release on error) and fileRun's read loop (open, refuse, send, reject);
//   - checkpoint.go: periodic checkpoints, the hand-over to a continuation, releasing a claim;
//   - finish.go: Report, the rejects object, the report and done state, adopting the report of
//     an abandoned run, deleting the sidecars;
//   - keys.go: the key layout (state, sidecars, rejects, report; long keys shortened);
//   - state.go: State and its schema version, the claim (conditional create, compare-and-swap,
//     read-back of a write of unknown outcome);
//   - verify.go: the verifying pass and the refusal of a file that fails it; room.go: the
//     orders queue's room and waiting for it; emf.go: the metrics of refused, stopped and
//     waiting files;
//   - objects.go: S3 helpers and error predicates; sender.go, rejects.go, idset.go,
//     prefetch.go: the batch sender, the rejects log, the id set, the GET started with the claim.
package ingest

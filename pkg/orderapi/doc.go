// Package orderapi is the HTTP client for the third-party order API: one call,
// `PUT {base}/orders/{id}`, with the order's JSON as the body, `Content-Type: application/json`,
// `Idempotency-Key: {id}~{first 32 hex digits of the SHA-256 of the body}` (order.IdempotencyKey:
// one key per order content, so a changed order is applied and a copy absorbed) and, when configured, an `Authorization` value read from AWS Secrets
// Manager and cached for a TTL.
//
// The client never retries: retries happen at one layer only, the orders queue (see
// pkg/dispatch). That includes net/http's own silent replay of a request carrying an
// Idempotency-Key after a broken keep-alive connection, which the client turns off: a stale
// connection shows up as a connection error. Connections are kept alive and bodies drained. Each call returns a [Result] that classifies the outcome (delivered, throttled,
// transient, permanent) and carries the HTTP status, the Retry-After delay and whether a failure
// was a timeout or a connection error, so the caller can decide what to do with the message.
//
// The per-request timeout is min(Config.Timeout, context deadline - Config.Margin), so that a slow
// API is recorded as a timeout rather than the invocation being killed mid-request.
//
// The Authorization value is a secret: it is never put in a Result, an error or a log.
package orderapi

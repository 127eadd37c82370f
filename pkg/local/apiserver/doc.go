// Package apiserver is a stand-in for the third-party order API, `PUT /orders/{id}`, for tests
// and the local demo. It is a real net/http handler: use it with httptest.NewServer(srv) in
// tests, or serve it with http.ListenAndServe(addr, srv) from the CLI.
//
// What it does, in order, for every request:
//
//  1. Rate limit: a token bucket (Config.RPS, Config.Burst). Beyond it: 429 with Retry-After in
//     whole seconds (at least 1). Every request spends a token, as a real API's limit does.
//  2. Checks: method PUT and path /orders/{id} (else 404/405), `Content-Type: application/json`
//     (else 415), `Idempotency-Key` of the form `{id}~{digest}` (else 400; the client sends
//     order.IdempotencyKey), the same key again only with the same body (else 422), and the Authorization value when
//     Config.Authorization is set (else 401). A body that is not a JSON object gives 400.
//  3. Latency: Config.Latency plus a uniform jitter in [0, Config.Jitter).
//  4. Faults, each by chosen ids or by a fraction of ids (decided per id from Config.Seed, so the
//     same ids fail on every run): Reject (4xx, every time), Reset (the connection is hijacked and
//     closed with a TCP reset, the first FailTimes times), Hang (no answer for Config.HangFor or
//     until the client goes away, the first FailTimes times; with CommitBeforeHang the order is
//     recorded first, which makes a client's retry an unavoidable duplicate), Fail (Config.FailStatus,
//     500 by default, the first FailTimes times), Broken (Config.FailStatus on every attempt).
//  5. Accept: 200, and the order is recorded (id -> count, last body). A key accepted before
//     returns 200 again (an idempotent replay, header Idempotent-Replayed) and counts as a
//     duplicate; a new key for an id accepted before is an update (new content) and counts in
//     Updates.
//
// Stats returns a snapshot: requests, accepted, duplicates, 429s, 5xx, resets, hangs, rejects and
// accepted orders per second since the server started. Orders returns the ledger.
//
// The server is safe for concurrent use and deterministic given Config.Seed (jitter draws depend
// on the id and its attempt number, not on arrival order). Time comes from Config.Now and
// Config.Sleep, so tests can run it on a fake clock.
//
// For the demo CLI, Config.RegisterFlags binds every option to a flag.FlagSet:
//
//	cfg := apiserver.DefaultConfig()
//	cfg.RegisterFlags(fs) // -api-rps 1 -api-burst 1 -api-latency 50ms -api-fail-fraction 0.05 ...
//	fs.Parse(args)
//	srv, err := apiserver.New(cfg)
//	...
//	http.ListenAndServe("127.0.0.1:8080", srv) // ORDER_API_BASE_URL=http://127.0.0.1:8080
package apiserver

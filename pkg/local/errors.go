package local

import "errors"

// Errors of an invocation, checked with errors.Is; the Poller counts them as crashes and timeouts.
var (
	// ErrCrashed: the function's process died (or its handler panicked) during the invocation.
	ErrCrashed = errors.New("function crashed")
	// ErrTimedOut: the invocation did not finish by its deadline.
	ErrTimedOut = errors.New("function timed out")
)

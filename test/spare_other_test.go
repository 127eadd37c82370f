//go:build !unix

package test

import "time"

// spareCPU cannot be measured here: 0 keeps go test's default parallelism.
func spareCPU(time.Duration) float64 { return 0 }

package ingest

// SetVerify turns the verifying pass on or off: the benchmarks measure ingest with and without
// it side by side.
func SetVerify(s *Service, on bool) { s.skipVerify = !on }

// SetChunks sets how many bytes the verifying pass counts, and the sending pass reads (without
// an order, or at most), between two looks at the clock: the deadline tests use small files; a
// yield of 1 makes the sending pass look after every line.
func SetChunks(s *Service, verify, yield int64) { s.chunks.verify, s.chunks.yield = verify, yield }

// ClockLines is how many lines the sending pass reads at most between two looks at the clock.
const ClockLines = clockLines

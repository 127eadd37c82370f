package ingest

// SetVerify turns the verifying pass on or off: the benchmarks measure ingest with and without
// it side by side.
func SetVerify(s *Service, on bool) { s.skipVerify = !on }

package ingest

import (
	"hash/fnv"
	"strconv"
	"strings"
	"testing"
)

func TestIDSet(t *testing.T) {
	var s idSet
	const n = 5000
	for i := range n {
		if !s.add(hashID(idName(i))) {
			t.Fatalf("add(%s) the first time = false, want true", idName(i))
		}
	}
	for i := range n {
		if s.add(hashID(idName(i))) {
			t.Fatalf("add(%s) the second time = true, want false", idName(i))
		}
	}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(b), 8*n; got != want {
		t.Fatalf("MarshalBinary: got %d bytes, want %d", got, want)
	}
	var r idSet
	if err := r.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got, want := r.n, n; got != want {
		t.Errorf("restored set has %d ids, want %d", got, want)
	}
	if r.add(hashID(idName(42))) || !r.add(hashID("new")) {
		t.Errorf("restored set does not remember the same ids")
	}
	for _, bad := range [][]byte{make([]byte, 7), make([]byte, 8)} {
		if err := new(idSet).UnmarshalBinary(bad); err == nil {
			t.Errorf("UnmarshalBinary(%d bytes %v) = nil, want an error", len(bad), bad)
		}
	}
}

func TestIDSetCap(t *testing.T) {
	var s idSet
	for i := range MaxTrackedIDs {
		s.add(uint64(i) + 1)
	}
	if s.partial {
		t.Fatalf("partial after %d ids, want complete", MaxTrackedIDs)
	}
	if got, want := len(s.slots), 1<<20; got != want {
		t.Errorf("table of %d slots at the cap, want %d (8 MiB)", got, want)
	}
	if !s.add(MaxTrackedIDs+1) || !s.partial {
		t.Errorf("an id past the cap: want add = true and partial set")
	}
	if s.add(7) {
		t.Errorf("an id seen before the cap is still a duplicate: add = true, want false")
	}
	if s.add(MaxTrackedIDs+1) != true {
		t.Errorf("an id past the cap is not remembered: add = false, want true")
	}
}

func TestHashIDStable(t *testing.T) {
	// Checkpoints store these hashes: the function must stay FNV-1a 64.
	for _, id := range []string{"a", "order-1", "ORD:2026-01-01.000042", strings.Repeat("x", 128)} {
		h := fnv.New64a()
		h.Write([]byte(id))
		if got, want := hashID(id), h.Sum64(); got != want {
			t.Errorf("hashID(%q) = %#x, want FNV-1a %#x", id, got, want)
		}
	}
}

func idName(i int) string { return "order-" + strconv.Itoa(i) }

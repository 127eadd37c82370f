package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxTrackedIDs is the most order ids of one file that the duplicate check remembers: a 64-bit
// hash each in a table of 2^20 slots (8 MiB) filled to 3/4 at the cap, which keeps the peak
// memory of an ingest flat and small whatever the file's size. Ids past the cap are still
// checked against the remembered ones but not remembered themselves; the report then says the
// check was partial.
const MaxTrackedIDs = 3 << 18 // 786,432

// idSet is a set of 64-bit hashes of order ids: open addressing, linear probing, 0 marks an
// empty slot. Two different ids with the same hash (probability about n²/2⁶⁵: 2e-8 at the
// cap) would make the second a false "duplicate id" reject, which the report lists.
type idSet struct {
	slots   []uint64
	n       int
	partial bool // an id was not remembered because the set was full
}

// hashID is FNV-1a over the id, never 0. It must stay the same across versions: checkpoints
// store the hashes.
func hashID(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	if h == 0 {
		h = 1
	}
	return h
}

// add adds h and reports whether it was new. When the set is full a new h is not remembered
// (partial is set) and add still reports true.
func (s *idSet) add(h uint64) bool {
	if len(s.slots) == 0 {
		s.slots = make([]uint64, 1024)
	}
	mask := uint64(len(s.slots) - 1)
	i := h & mask
	for s.slots[i] != 0 {
		if s.slots[i] == h {
			return false
		}
		i = (i + 1) & mask
	}
	if s.n >= MaxTrackedIDs {
		s.partial = true
		return true
	}
	s.slots[i] = h
	s.n++
	if s.n*4 >= len(s.slots)*3 && s.n < MaxTrackedIDs {
		s.grow()
	}
	return true
}

func (s *idSet) grow() {
	old := s.slots
	s.slots = make([]uint64, 2*len(old))
	mask := uint64(len(s.slots) - 1)
	for _, h := range old {
		if h == 0 {
			continue
		}
		i := h & mask
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = h
	}
}

// MarshalBinary returns the hashes, 8 bytes little-endian each, in table order.
func (s *idSet) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 8*s.n)
	for _, h := range s.slots {
		if h != 0 {
			b = binary.LittleEndian.AppendUint64(b, h)
		}
	}
	return b, nil
}

// UnmarshalBinary adds the hashes in b (from MarshalBinary) to the set.
func (s *idSet) UnmarshalBinary(b []byte) error {
	if len(b)%8 != 0 {
		return fmt.Errorf("decode id set: %w", errors.New("length not a multiple of 8"))
	}
	for ; len(b) > 0; b = b[8:] {
		h := binary.LittleEndian.Uint64(b)
		if h == 0 {
			return fmt.Errorf("decode id set: %w", errors.New("zero hash"))
		}
		s.add(h)
	}
	return nil
}

package ingest

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Every key ingest derives from an object key (state, its sidecars, rejects, report) is at most
// MaxKeyBytes long, valid UTF-8, and names the object key unchanged whenever it fits.
func TestDerivedKeysFit(t *testing.T) {
	long := func(n int, fill string) string {
		k := "uploads/" + strings.Repeat(fill, n)
		return k[:len(k)-len(".jsonl")] + ".jsonl"
	}
	tests := []struct {
		name string
		obj  object
		// The object key appears whole in the state keys, in the rejects and report keys.
		keptState, keptFiles bool
	}{
		{"short", object{Key: "uploads/a.jsonl", Version: "3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"}, true, true},
		{"short null version", object{Key: "uploads/a.jsonl", Version: "null", ETag: "d41d8cd98f00b204e9800998ecf8427e-12"}, true, true},
		{"1000 bytes", object{Key: long(992, "k"), Version: "3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"}, false, true},
		{"1000 bytes null version", object{Key: long(992, "k"), Version: "null", ETag: "d41d8cd98f00b204e9800998ecf8427e-12"}, false, true},
		{"1024 bytes multibyte", object{Key: long(1016/3, "é€"), Version: "null"}, false, false},
		{"1016 bytes", object{Key: long(1008, "k"), Version: "null"}, false, false},
		{"900 bytes", object{Key: long(892, "k"), Version: "null", ETag: "d41d8cd98f00b204e9800998ecf8427e"}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.obj
			keys := []string{o.stateKey(), o.idsKey(0), o.idsKey(1), o.rejectPartKey(0), o.rejectPartKey(1 << 40), o.rejectsKey(), o.reportKey()}
			for i, k := range keys {
				kept := tt.keptState
				if i >= 5 {
					kept = tt.keptFiles
				}
				if len(k) > MaxKeyBytes {
					t.Errorf("derived key of %d bytes > %d: %.60s...", len(k), MaxKeyBytes, k)
				}
				if !utf8.ValidString(k) {
					t.Errorf("derived key is not valid UTF-8: %q", k)
				}
				if got := strings.Contains(k, o.Key); got != kept {
					t.Errorf("derived key %.60s... contains the object key: %v, want %v", k, got, kept)
				}
			}
		})
	}
}

// Two long keys that share their first KeptKeyBytes have distinct derived keys.
func TestDerivedKeysDistinct(t *testing.T) {
	base := "uploads/" + strings.Repeat("k", 1000)
	a, b := object{Key: base + "a.csv", Version: "v"}, object{Key: base + "b.csv", Version: "v"}
	for _, pair := range [][2]string{
		{a.stateKey(), b.stateKey()}, {a.rejectsKey(), b.rejectsKey()}, {a.reportKey(), b.reportKey()},
	} {
		if pair[0] == pair[1] {
			t.Errorf("keys %q... and %q... share the derived key %q", a.Key[:20], b.Key[:20], pair[0])
		}
	}
}

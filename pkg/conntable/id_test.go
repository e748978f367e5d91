package conntable

import (
	"encoding/hex"
	"testing"
)

// Two million ids: all distinct and all 32 lower-case hex characters (128 random bits). A
// birthday collision among 2e6 random 128-bit values has probability ~6e-27, so any repeat
// means the source is not random, or ids are reused.
func TestNewIDDistinctAndWellFormed(t *testing.T) {
	n := 2_000_000
	if testing.Short() {
		n = 100_000
	}
	seen := make(map[[16]byte]struct{}, n)
	for i := 0; i < n; i++ {
		id := NewID()
		if !ValidID(id) {
			t.Fatalf("id %d %q is not 32 lower-case hex characters", i, id)
		}
		var k [16]byte
		if _, err := hex.Decode(k[:], []byte(id)); err != nil {
			t.Fatal(err)
		}
		if _, dup := seen[k]; dup {
			t.Fatalf("id %q repeated after %d ids", id, i)
		}
		seen[k] = struct{}{}
	}
}

func TestValidID(t *testing.T) {
	for _, s := range []string{"", "0123456789abcdef0123456789abcde", "0123456789abcdef0123456789abcdef0",
		"0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcdeg", "0123456789abcdef 123456789abcdef",
		"../../../../../../etc/passwd/xxxx"} {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
	if !ValidID("0123456789abcdef0123456789abcdef") {
		t.Error("a well-formed id is rejected")
	}
}

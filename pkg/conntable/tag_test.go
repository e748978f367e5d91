package conntable

import (
	"testing"
)

func TestTaggedIDKeepsShapeAndTag(t *testing.T) {
	for _, tag := range []uint32{0, 1, 0xdeadbeef, 0xffffffff} {
		seen := map[string]bool{}
		for range 1000 {
			id := NewTaggedID(tag)
			if !ValidID(id) {
				t.Fatalf("%q is not an id", id)
			}
			if got, ok := TagOf(id); !ok || got != tag {
				t.Fatalf("TagOf(%q) = %x, %v; want %x", id, got, ok, tag)
			}
			if id[IDLen-TagLen:] != FormatTag(tag) {
				t.Fatalf("%q does not end in %s", id, FormatTag(tag))
			}
			if seen[id] {
				t.Fatalf("%q repeated", id)
			}
			seen[id] = true
		}
	}
	if RandomBits < 96 {
		t.Fatalf("RandomBits = %d", RandomBits)
	}
	if _, ok := TagOf("not-an-id"); ok {
		t.Fatal("TagOf accepted a malformed id")
	}
}

// The random part is uniform where the table shards: every first byte value turns up.
func TestTaggedIDSpreadsOverShards(t *testing.T) {
	var hits [256]int
	for range 256 * 64 {
		id := NewTaggedID(7)
		hits[hexVal(id[0])<<4|hexVal(id[1])]++
	}
	for i, n := range hits {
		if n == 0 {
			t.Fatalf("shard %d never hit", i)
		}
	}
}

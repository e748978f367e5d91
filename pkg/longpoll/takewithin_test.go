package longpoll

import (
	"strings"
	"testing"
)

// TakeWithin bounds a batch by its encoded size as well: many empty messages cost their
// per-message overhead, and the first message is always taken.
func TestSessionTakeWithin(t *testing.T) {
	s := NewSession(&Config{MaxBatchBytes: 1 << 20, MaxOutboundBytes: 1 << 20})
	for range 10 {
		mustPush(t, s, true, "")
	}
	mustPush(t, s, false, strings.Repeat("L", 100))
	want := [][]uint64{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10}, {11}}
	for i, w := range want {
		s.Poll(0, false, nil)
		if b := s.TakeWithin(nil, 40, 10); !equalSeqs(seqs(b), w...) {
			t.Fatalf("batch %d: %v, want %v", i, seqs(b), w)
		}
	}
}

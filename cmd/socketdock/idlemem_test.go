package main

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

var sink [][]byte

func heapReleased() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// After a burst of allocation stops, the freed heap goes back to the OS within two periods,
// not at the runtime's next periodic GC two minutes later.
func TestReturnIdleMemory(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go returnIdleMemory(ctx, 300*time.Millisecond, 16<<20, zerolog.Nop())
	time.Sleep(50 * time.Millisecond)
	// The burst: 96 MiB in 64 KiB pieces, held, then dropped with no GC after.
	for i := 0; i < 96*16; i++ {
		sink = append(sink, make([]byte, 64<<10))
	}
	runtime.GC() // the last GC of the burst: everything still live
	sink = nil
	before := heapReleased()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if got := heapReleased(); got > before+64<<20 {
			t.Logf("released %d MiB → %d MiB", before>>20, got>>20)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("heap released %d MiB → %d MiB in 3 s; want the 96 MiB dropped returned", before>>20, heapReleased()>>20)
}

var pinned [][]byte

// Memory still referenced at the first return (as a closed connection is by the timer wheel
// until its slot comes round) goes back at the next quiet period.
func TestReturnIdleMemoryTriesAgain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go returnIdleMemory(ctx, 300*time.Millisecond, 16<<20, zerolog.Nop())
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < 48*16; i++ {
		sink = append(sink, make([]byte, 64<<10))
		pinned = append(pinned, make([]byte, 64<<10))
	}
	runtime.GC()
	sink = nil // garbage at once: 48 MiB
	before := heapReleased()
	unpinned := make(chan struct{})
	defer func() { <-unpinned }()
	go func() { // garbage only after the first return: 48 MiB more
		defer close(unpinned)
		time.Sleep(700 * time.Millisecond)
		pinned = nil
	}()
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if got := heapReleased(); got > before+80<<20 {
			t.Logf("released %d MiB → %d MiB", before>>20, got>>20)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("heap released %d MiB → %d MiB in 4 s; want both 48 MiB returned", before>>20, heapReleased()>>20)
}

package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/rs/zerolog"
)

// After a burst, the Go runtime keeps the freed heap until its periodic collection (two
// minutes) and releases the rest lazily: measured after a 60 s churn burst (docs/RELIABILITY.md),
// RSS stayed at 140 MiB for 2 minutes, then 81 MiB, and came back near rest (25 MiB) only after
// 4 minutes. With returnIdleMemory it is back within about 30 s of the burst.
const (
	idlePeriod    = 15 * time.Second // no GC for this long: the relay has gone quiet
	idleThreshold = 32 << 20         // held heap above the last floor worth a forced GC
)

// returnIdleMemory collects and hands the heap's free memory back to the OS once the relay
// has gone quiet after a burst: when no garbage collection ran for a whole period (allocation
// has all but stopped) and the heap the runtime holds (objects, unused and free spans, not yet
// released) is more than threshold above what it held after the last return. While a return
// leaves the heap more than a quarter of threshold above what it held at start, it is tried
// again 1, 2, 4 and 8 quiet periods later: memory still referenced at the first one (a closed connection
// waits in the timer wheel until its slot comes round) may be garbage by then. After that the
// runtime's own periodic collection takes over.
func returnIdleMemory(ctx context.Context, period time.Duration, threshold uint64, log zerolog.Logger) {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"}, {Name: "/memory/classes/heap/free:bytes"}}
	held := func() uint64 { return s[1].Value.Uint64() + s[2].Value.Uint64() + s[3].Value.Uint64() }
	metrics.Read(s)
	lastCycles, base := s[0].Value.Uint64(), held()
	floor := base
	step, next := 0, 0 // periods between retries (doubling; 0: none), periods until the next
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		metrics.Read(s)
		quiet, h := s[0].Value.Uint64() == lastCycles, held()
		if next > 0 {
			next--
		}
		if h > floor+threshold {
			step = 0 // grown again: a fresh start
		}
		if quiet && (h > floor+threshold || step > 0 && next == 0) {
			t0 := time.Now()
			runtime.GC() // what sync.Pools hold survives one collection; this one moves it aside
			debug.FreeOSMemory()
			metrics.Read(s)
			floor = held()
			switch {
			case floor <= base+threshold/4 || step == 8:
				step = 0
			case step == 0:
				step = 1
			default:
				step *= 2
			}
			next = step
			log.Info().Uint64("held_before", h).Uint64("held_after", floor).Dur("took", time.Since(t0)).Msg("returned idle heap memory to the OS")
		}
		lastCycles = s[0].Value.Uint64()
	}
}

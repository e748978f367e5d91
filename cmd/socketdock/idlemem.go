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
// RSS stayed at 143 MiB for 2 minutes, then 83 MiB, and came back near rest (26 MiB) only after
// 4.5 minutes. With returnIdleMemory it was back at 26 MiB 30 s after the burst.
const (
	idlePeriod    = 15 * time.Second // no GC for this long: the relay has gone quiet
	idleThreshold = 32 << 20         // held heap above the last floor worth a forced GC
)

// returnIdleMemory collects and hands the heap's free memory back to the OS once the relay
// has gone quiet after a burst: when no garbage collection ran for a whole period (allocation
// has all but stopped) and the heap the runtime holds (objects, unused and free spans, not yet
// released) is more than threshold above what it held after the last return. Without it the
// memory stays held until the runtime's own periodic collection, up to two minutes later.
func returnIdleMemory(ctx context.Context, period time.Duration, threshold uint64, log zerolog.Logger) {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"}, {Name: "/memory/classes/heap/free:bytes"}}
	held := func() uint64 { return s[1].Value.Uint64() + s[2].Value.Uint64() + s[3].Value.Uint64() }
	metrics.Read(s)
	lastCycles, floor := s[0].Value.Uint64(), held()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		metrics.Read(s)
		if h := held(); s[0].Value.Uint64() == lastCycles && h > floor+threshold {
			t0 := time.Now()
			runtime.GC() // what sync.Pools hold survives one collection; this one moves it aside
			debug.FreeOSMemory()
			metrics.Read(s)
			floor = held()
			log.Info().Uint64("held_before", h).Uint64("held_after", floor).Dur("took", time.Since(t0)).Msg("returned idle heap memory to the OS")
		}
		lastCycles = s[0].Value.Uint64()
	}
}

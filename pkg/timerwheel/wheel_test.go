package timerwheel

import "testing"

type item struct {
	Handle
	name  string
	fired []int64
}

func TestScheduleFiresOnceAtItsTick(t *testing.T) {
	var wh Wheel[*item]
	wh.Start(10)
	a, b := &item{name: "a"}, &item{name: "b"}
	wh.Schedule(a, 15)
	wh.Schedule(b, 12)
	wh.Schedule(b, 20) // replaces 12: the entry at 12 is stale
	var now int64
	fire := func(it *item) { it.fired = append(it.fired, now) }
	for now = 11; now <= 30; now++ {
		wh.Advance(now, fire)
	}
	if len(a.fired) != 1 || a.fired[0] != 15 {
		t.Fatalf("a fired at %v, want [15]", a.fired)
	}
	if len(b.fired) != 1 || b.fired[0] != 20 {
		t.Fatalf("b fired at %v, want [20]", b.fired)
	}
}

func TestCancelAndClamp(t *testing.T) {
	var wh Wheel[*item]
	a, b, c := &item{}, &item{}, &item{}
	wh.Schedule(a, 5)
	wh.Cancel(a)
	wh.Schedule(b, -3)           // in the past: next tick
	wh.Schedule(c, Slots*3+1000) // beyond the wheel: clamped to its far end
	var fired []*item
	wh.Advance(Slots, func(it *item) { fired = append(fired, it) })
	if len(fired) != 2 || fired[0] != b || fired[1] != c {
		t.Fatalf("fired %v, want b then c (a cancelled)", fired)
	}
	if c.At() != 0 {
		t.Fatalf("a fired item keeps no live tick, got %d", c.At())
	}
}

func TestStallLongerThanTheWheelFiresLate(t *testing.T) {
	var wh Wheel[*item]
	a := &item{}
	wh.Schedule(a, 100)
	n := 0
	wh.Advance(Slots*10, func(*item) { n++ })
	if n != 1 {
		t.Fatalf("an overdue timer fired %d times after a long stall, want 1", n)
	}
}

// More items in one slot than a chunk holds: all fire, in the order they were scheduled.
func TestManyInOneSlot(t *testing.T) {
	var wh Wheel[*item]
	items := make([]*item, 3*chunkLen+7)
	for i := range items {
		items[i] = &item{}
		wh.Schedule(items[i], 3)
	}
	var fired []*item
	wh.Advance(3, func(it *item) { fired = append(fired, it) })
	if len(fired) != len(items) {
		t.Fatalf("%d of %d fired", len(fired), len(items))
	}
	for i := range items {
		if fired[i] != items[i] {
			t.Fatalf("item %d fired out of order", i)
		}
	}
}

// ScheduleBy keeps a live timer due by its tick and adds no entry; a later or no timer is
// replaced.
func TestScheduleBy(t *testing.T) {
	var wh Wheel[*item]
	a, b, c := &item{}, &item{}, &item{}
	wh.Schedule(a, 5)
	wh.ScheduleBy(a, 9) // 5 is earlier: kept
	wh.Schedule(b, 9)
	wh.ScheduleBy(b, 4) // brought forward
	wh.ScheduleBy(c, 7) // none yet
	if a.At() != 5 || b.At() != 4 || c.At() != 7 {
		t.Fatalf("ticks %d %d %d, want 5 4 7", a.At(), b.At(), c.At())
	}
	if n := wh.slots[9].head; n != nil && n.n != 1 {
		t.Fatalf("slot 9 holds %d entries, want b's stale one", n.n)
	}
}

// Idle connections reschedule their ping check every interval. Once the wheel has carried a
// load, rescheduling it again costs no allocation: swept chunks are filled again (a slot
// slice regrew from nothing each round, leaving its old copies behind).
func TestRescheduleDoesNotAllocate(t *testing.T) {
	var wh Wheel[*item]
	items := make([]*item, 5000)
	for i := range items {
		items[i] = &item{}
		wh.Schedule(items[i], int64(1+i%4))
	}
	round := func() {
		now := wh.Now()
		wh.Advance(now+4, func(it *item) { wh.Schedule(it, wh.Now()+4) })
	}
	round()
	if allocs := testing.AllocsPerRun(10, round); allocs > 0 {
		t.Errorf("a round of 5,000 reschedules made %.0f allocations, want 0", allocs)
	}
}

func BenchmarkScheduleAdvance(b *testing.B) {
	var wh Wheel[*item]
	items := make([]*item, 1024)
	for i := range items {
		items[i] = &item{}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		it := items[i%len(items)]
		wh.Schedule(it, wh.Now()+int64(i%64)+1)
		if i%len(items) == 0 {
			wh.Advance(wh.Now()+1, func(*item) {})
		}
	}
}

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

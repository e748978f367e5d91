// Package timerwheel is a hashed timing wheel owned by one event loop: one pointer per timed
// item, no goroutine or time.Timer each. It is not safe for concurrent use; its owner (an
// event loop) is the only caller.
package timerwheel

// Slots bounds how far ahead a timer can be set; later deadlines are re-checked when their
// capped slot comes round.
const Slots = 4096

// Handle is embedded in every timed item: it holds the tick of the item's live timer.
type Handle struct{ at int64 }

// At is the tick of the item's live timer.
func (h *Handle) At() int64 { return h.at }

func (h *Handle) handle() *Handle { return h }

// Timed is what a Wheel can time: a pointer to a struct embedding Handle.
type Timed interface {
	comparable
	handle() *Handle
}

// chunkLen entries and two words make a chunk of pointers 256 bytes, a size class of its own.
const chunkLen = 30

// chunk holds a slot's entries. A slot's entries live in a list of fixed-size chunks rather
// than a growing slice: a swept slot's chunks go to the wheel's free list and are filled
// again by the slots scheduled next, so entries cost their pointer and no regrown copies.
type chunk[T Timed] struct {
	items [chunkLen]T
	n     int
	next  *chunk[T]
}

type slot[T Timed] struct{ head, tail *chunk[T] }

// Wheel times items of type T. An item has one live entry, the one whose tick is its
// Handle's; entries left behind by rescheduling point past now and are skipped.
type Wheel[T Timed] struct {
	slots [Slots]slot[T]
	now   int64 // the tick swept last

	free   *chunk[T] // emptied chunks, for the next slots to fill
	nFree  int
	nInUse int // chunks held by slots
}

// Now is the tick swept last.
func (wh *Wheel[T]) Now() int64 { return wh.now }

// Start sets the current tick of a new wheel.
func (wh *Wheel[T]) Start(now int64) { wh.now = now }

// Schedule makes item's timer fire at tick at (clamped into the wheel's range), replacing
// any earlier schedule.
func (wh *Wheel[T]) Schedule(item T, at int64) {
	at = min(max(at, wh.now+1), wh.now+Slots-1)
	item.handle().at = at
	s := &wh.slots[at%Slots]
	c := s.tail
	if c == nil || c.n == chunkLen {
		c = wh.newChunk()
		if s.tail == nil {
			s.head = c
		} else {
			s.tail.next = c
		}
		s.tail = c
	}
	c.items[c.n] = item
	c.n++
}

// ScheduleBy makes item's timer fire no later than tick at. A live timer due by then stays
// as it is and no entry is added: for an item whose fire function works out its next tick
// from its own state each time, an early firing only reschedules it.
func (wh *Wheel[T]) ScheduleBy(item T, at int64) {
	if h := item.handle(); h.at != 0 && h.at <= at {
		return
	}
	wh.Schedule(item, at)
}

// Cancel drops item's live timer; its entry is skipped when its slot comes round.
func (wh *Wheel[T]) Cancel(item T) { item.handle().at = 0 }

// Advance moves the wheel to tick now and calls fire for every item due; fire reschedules
// the item if it wants another timer. After a stall longer than the wheel, every slot is
// swept once and overdue timers fire late rather than never.
func (wh *Wheel[T]) Advance(now int64, fire func(T)) {
	wh.now = max(wh.now, now-Slots)
	for wh.now < now {
		wh.now++
		s := &wh.slots[wh.now%Slots]
		c := s.head
		*s = slot[T]{} // fire may schedule; never into this slot, which is now+Slots away
		var zero T
		for c != nil {
			for i, item := range c.items[:c.n] {
				c.items[i] = zero
				if h := item.handle(); h.at != 0 && h.at <= wh.now {
					h.at = 0
					fire(item)
				}
			}
			next := c.next
			wh.freeChunk(c)
			c = next
		}
	}
}

func (wh *Wheel[T]) newChunk() *chunk[T] {
	wh.nInUse++
	c := wh.free
	if c == nil {
		return &chunk[T]{}
	}
	wh.free, c.next = c.next, nil
	wh.nFree--
	return c
}

// freeChunk keeps an emptied chunk for reuse while the free list is under a quarter of the
// chunks in use (and a few): after a burst has gone, its chunks go back to the heap.
func (wh *Wheel[T]) freeChunk(c *chunk[T]) {
	wh.nInUse--
	if wh.nFree >= wh.nInUse/4+8 {
		return
	}
	c.n, c.next = 0, wh.free
	wh.free = c
	wh.nFree++
}

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

// Wheel times items of type T. An item has one live entry, the one whose tick is its
// Handle's; entries left behind by rescheduling point past now and are skipped.
type Wheel[T Timed] struct {
	slots [Slots][]T
	now   int64 // the tick swept last
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
	*s = append(*s, item)
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
		due := *s
		*s = nil
		var zero T
		for i, item := range due {
			due[i] = zero
			if h := item.handle(); h.at != 0 && h.at <= wh.now {
				h.at = 0
				fire(item)
			}
		}
	}
}

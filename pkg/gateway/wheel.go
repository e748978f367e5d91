package gateway

// wheelSlots bounds how far ahead a timer can be set; later deadlines are re-checked when
// their capped slot comes round.
const wheelSlots = 4096

// wheel is a hashed timing wheel owned by one event loop: one pointer per connection, no
// goroutine or time.Timer per connection. A connection has one live entry, the one whose
// tick is its wheelAt; entries left behind by rescheduling point past now and are skipped.
type wheel struct {
	slots [wheelSlots][]*wsConn
	now   int64 // the tick swept last
}

// schedule makes w's timer fire at tick at (clamped into the wheel's range).
func (wh *wheel) schedule(w *wsConn, at int64) {
	at = min(max(at, wh.now+1), wh.now+wheelSlots-1)
	w.wheelAt = at
	s := &wh.slots[at%wheelSlots]
	*s = append(*s, w)
}

// advance moves the wheel to tick now and calls fire for every connection due. fire must
// reschedule or close the connection. After a stall longer than the wheel, every slot is
// swept once and overdue timers fire late rather than never.
func (wh *wheel) advance(now int64, fire func(*wsConn)) {
	wh.now = max(wh.now, now-wheelSlots)
	for wh.now < now {
		wh.now++
		s := &wh.slots[wh.now%wheelSlots]
		due := *s
		*s = nil
		for i, w := range due {
			due[i] = nil
			if w.wheelAt <= wh.now && w.state != stateClosed {
				fire(w)
			}
		}
	}
}

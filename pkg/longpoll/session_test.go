package longpoll

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/socketdock/socketdock/pkg/conntable"
)

type waiter struct{ woken atomic.Int32 }

func (w *waiter) Wake() { w.woken.Add(1) }

func seqs(b Batch) []uint64 {
	var out []uint64
	for _, m := range b.Messages {
		out = append(out, m.Seq)
	}
	return out
}

func equalSeqs(a []uint64, b ...uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mustPush(t *testing.T, s *Session, text bool, data string) uint64 {
	t.Helper()
	seq, err := s.Push(text, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func TestSessionSeqAndCopy(t *testing.T) {
	s := NewSession(nil)
	buf := []byte("abc")
	if err := s.Send(conntable.Text, buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X' // the caller may reuse its buffer
	if err := s.Send(conntable.Binary, []byte{0, 1}); err != nil {
		t.Fatal(err)
	}
	if seq := mustPush(t, s, true, ""); seq != 3 {
		t.Fatalf("third seq %d", seq)
	}
	b := s.Take(nil)
	if !equalSeqs(seqs(b), 1, 2, 3) || string(b.Messages[0].Data) != "abc" || !b.Messages[0].Text ||
		b.Messages[1].Text || string(b.Messages[1].Data) != "\x00\x01" || b.Closed || b.Redelivered != 0 {
		t.Fatalf("batch %+v", b)
	}
}

func TestSessionAck(t *testing.T) {
	tests := []struct {
		name   string
		ack    uint64
		hasAck bool
		resent []uint64 // sent again in the next answer, before the new message 6
	}{
		{"no ack confirms all sent", 0, false, nil},
		{"ack all", 5, true, nil},
		{"ack beyond sent", 99, true, nil},
		{"ack some", 3, true, []uint64{4, 5}},
		{"ack none", 0, true, []uint64{1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSession(nil)
			for range 5 {
				mustPush(t, s, true, "m")
			}
			if b := s.Take(nil); len(b.Messages) != 5 {
				t.Fatalf("first batch %v", seqs(b))
			}
			mustPush(t, s, true, "six")
			ready, _ := s.Poll(tt.ack, tt.hasAck, nil)
			b := s.Take(nil)
			want := append(append([]uint64(nil), tt.resent...), 6)
			if !ready || !equalSeqs(seqs(b), want...) || b.Redelivered != len(tt.resent) {
				t.Fatalf("after ack %d/%v: %v (redelivered %d), want %v", tt.ack, tt.hasAck, seqs(b), b.Redelivered, want)
			}
			if got := s.Redelivered(); got != uint64(len(tt.resent)) {
				t.Fatalf("Redelivered() = %d", got)
			}
			if s.Buffered() != len(want)*1+2 { // "m" each, and "six"
				t.Fatalf("buffered %d", s.Buffered())
			}
		})
	}
}

// A lost answer loses nothing for an acking client: it polls again with its last ack.
func TestSessionLostAnswerRedelivered(t *testing.T) {
	s := NewSession(nil)
	mustPush(t, s, true, "a")
	mustPush(t, s, true, "b")
	s.Poll(0, true, nil)
	_ = s.Take(nil) // this answer is lost on the way
	mustPush(t, s, true, "c")
	s.Poll(0, true, nil) // the client saw nothing: still ack=0
	b := s.Take(nil)
	if !equalSeqs(seqs(b), 1, 2, 3) || b.Redelivered != 2 {
		t.Fatalf("got %v redelivered %d", seqs(b), b.Redelivered)
	}
	s.Poll(3, true, nil)
	if ready, _ := s.Poll(3, true, nil); ready || s.Buffered() != 0 {
		t.Fatalf("after ack 3: ready %v buffered %d", ready, s.Buffered())
	}
	// A stale ack (below what is confirmed) confirms nothing more and breaks nothing.
	mustPush(t, s, true, "d")
	_ = s.Take(nil)
	s.Poll(1, true, nil)
	if b := s.Take(nil); !equalSeqs(seqs(b), 4) {
		t.Fatalf("after a stale ack: %v", seqs(b))
	}
}

func TestSessionBatchBytes(t *testing.T) {
	s := NewSession(&Config{MaxBatchBytes: 10, MaxOutboundBytes: 1000})
	for _, m := range []string{"1234", "5678", "90", "x", strings.Repeat("L", 25), "y"} {
		mustPush(t, s, false, m)
	}
	want := [][]uint64{{1, 2, 3}, {4}, {5}, {6}} // 4+4+2 = 10 fits; 10+1 not; a large one alone
	for i, w := range want {
		s.Poll(0, false, nil)
		if b := s.Take(nil); !equalSeqs(seqs(b), w...) {
			t.Fatalf("batch %d: %v, want %v", i, seqs(b), w)
		}
	}
	s.Poll(0, false, nil)
	if b := s.Take(nil); len(b.Messages) != 0 || s.Ready() {
		t.Fatalf("left over %v", seqs(b))
	}
}

func TestSessionLimits(t *testing.T) {
	s := NewSession(&Config{MaxMessageBytes: 8, MaxOutboundBytes: 10})
	if _, err := s.Push(true, []byte("123456789")); !errors.Is(err, conntable.ErrTooBig) {
		t.Fatalf("over message size: %v", err)
	}
	mustPush(t, s, true, "12345678")
	if _, err := s.Push(true, []byte("123")); !errors.Is(err, conntable.ErrSlowConsumer) {
		t.Fatalf("over outbound: %v", err)
	}
	mustPush(t, s, true, "12")
	_ = s.Take(nil)
	// Sent but unconfirmed bytes still count.
	if _, err := s.Push(true, []byte("1")); !errors.Is(err, conntable.ErrSlowConsumer) {
		t.Fatalf("unconfirmed bytes not counted: %v", err)
	}
	s.Poll(1, true, nil) // confirms 8 bytes; 2 stay unconfirmed
	if s.Buffered() != 2 {
		t.Fatalf("buffered %d", s.Buffered())
	}
	mustPush(t, s, true, "12345678")
	// Defaults: one largest message always fits an empty session.
	d := NewSession(nil)
	if _, err := d.Push(false, make([]byte, DefaultMaxMessageBytes)); err != nil {
		t.Fatal(err)
	}
}

func TestSessionClose(t *testing.T) {
	s := NewSession(&Config{MaxBatchBytes: 4})
	mustPush(t, s, true, "1234")
	mustPush(t, s, true, "5678")
	w := &waiter{}
	if ready, _ := s.Poll(0, false, w); !ready {
		t.Fatal("not ready with messages queued")
	}
	if !s.Close(4000, "bye") || s.Close(1000, "again") || !s.Closed() {
		t.Fatal("Close reports wrongly")
	}
	if _, err := s.Push(true, []byte("late")); !errors.Is(err, conntable.ErrClosing) {
		t.Fatalf("send after close: %v", err)
	}
	b := s.Take(nil)
	if !equalSeqs(seqs(b), 1) || b.Closed {
		t.Fatalf("close record before the last message: %+v", b)
	}
	s.Poll(0, false, nil)
	b = s.Take(nil)
	if !equalSeqs(seqs(b), 2) || !b.Closed || b.Code != 4000 || b.Reason != "bye" {
		t.Fatalf("last batch %+v", b)
	}
	// Every later poll is answered at once with the close record.
	if ready, _ := s.Poll(0, false, w); !ready {
		t.Fatal("a closed session holds a poll")
	}
	if b = s.Take(nil); len(b.Messages) != 0 || !b.Closed {
		t.Fatalf("after: %+v", b)
	}
	if w.woken.Load() != 0 {
		t.Fatal("a poll that was never held was woken")
	}
}

// The answer with the close record may be lost like any other: until a poll confirms every
// message, the session is not finished and the next poll gets them and the record again.
func TestSessionFinished(t *testing.T) {
	s := NewSession(nil)
	mustPush(t, s, true, "1")
	mustPush(t, s, true, "2")
	s.Close(4000, "bye")
	s.Poll(0, true, nil)
	if b := s.Take(nil); !equalSeqs(seqs(b), 1, 2) || !b.Closed || s.Finished() {
		t.Fatalf("first answer %+v, finished %v", b, s.Finished())
	}
	s.Poll(1, true, nil) // that answer was lost after seq 1
	if s.Finished() {
		t.Fatal("finished with seq 2 unconfirmed")
	}
	if b := s.Take(nil); !equalSeqs(seqs(b), 2) || !b.Closed {
		t.Fatalf("again: %+v", b)
	}
	s.Poll(2, true, nil)
	if !s.Finished() {
		t.Fatal("not finished with everything confirmed after the close record")
	}
	// No close record out yet: not finished, whatever is confirmed.
	s2 := NewSession(nil)
	s2.Close(1000, "")
	s2.Poll(0, false, nil)
	if s2.Finished() {
		t.Fatal("finished before the close record went out")
	}
	s2.Take(nil)
	s2.Poll(0, false, nil)
	if !s2.Finished() {
		t.Fatal("an ack-less poll after the close record does not finish the session")
	}
}

func TestSessionWake(t *testing.T) {
	s := NewSession(nil)
	a, b := &waiter{}, &waiter{}
	if ready, displaced := s.Poll(0, false, a); ready || displaced != nil || s.Ready() {
		t.Fatal("empty session ready")
	}
	// A second poll displaces the first: the gateway answers it with "messages":[].
	if ready, displaced := s.Poll(0, false, b); ready || displaced != a {
		t.Fatalf("displaced %v", displaced)
	}
	// The same poll again displaces nothing.
	if _, displaced := s.Poll(0, false, b); displaced != nil {
		t.Fatal("a poll displaced itself")
	}
	mustPush(t, s, true, "x")
	mustPush(t, s, true, "y")
	if a.woken.Load() != 0 || b.woken.Load() != 1 || !s.Ready() {
		t.Fatalf("wakes a=%d b=%d", a.woken.Load(), b.woken.Load())
	}
	if s.Cancel(b) {
		t.Fatal("Cancel took back a poll that was woken")
	}
	if got := s.Take(nil); !equalSeqs(seqs(got), 1, 2) || s.Ready() {
		t.Fatalf("take %v", seqs(got))
	}
	// ttl runs out: Cancel hands the poll back for a heartbeat; a later Send wakes nobody.
	c := &waiter{}
	s.Poll(0, false, c)
	if !s.Cancel(c) || s.Cancel(c) {
		t.Fatal("Cancel of a held poll")
	}
	mustPush(t, s, true, "z")
	if c.woken.Load() != 0 {
		t.Fatal("a cancelled poll was woken")
	}
	// Close wakes a held poll.
	s.Poll(0, false, nil)
	_ = s.Take(nil)
	d := &waiter{}
	s.Poll(0, false, d)
	s.Close(1000, "")
	if d.woken.Load() != 1 {
		t.Fatal("Close did not wake the held poll")
	}
}

// A poll with unconfirmed messages to send again is answered at once.
func TestSessionRedeliveryIsReady(t *testing.T) {
	s := NewSession(nil)
	mustPush(t, s, true, "x")
	_ = s.Take(nil)
	w := &waiter{}
	if ready, _ := s.Poll(0, true, w); !ready {
		t.Fatal("a poll that must get a message again was held")
	}
}

// The queue's slice is compacted and released, so a long-lived session does not grow.
func TestSessionQueueReleased(t *testing.T) {
	s := NewSession(nil)
	for i := range 10000 {
		mustPush(t, s, false, "m")
		if i%3 == 0 {
			s.Poll(0, false, nil)
			_ = s.Take(nil)
		}
	}
	if cap(s.queue) > 2*len(s.queue[s.head:])+128 {
		t.Fatalf("queue cap %d for %d live messages", cap(s.queue), len(s.queue)-s.head)
	}
	for s.Ready() {
		s.Poll(0, false, nil)
		_ = s.Take(nil)
	}
	s.Poll(0, false, nil)
	if s.queue != nil || s.Buffered() != 0 {
		t.Fatalf("drained session keeps cap %d, %d bytes", cap(s.queue), s.Buffered())
	}
}

// Concurrent senders and a poller: every message arrives, in order, and the race detector
// sees the locking.
func TestSessionConcurrent(t *testing.T) {
	const senders, each = 4, 500
	s := NewSession(&Config{MaxOutboundBytes: 1 << 20, MaxBatchBytes: 64})
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				for {
					_, err := s.Push(false, []byte{byte(g), byte(i >> 8), byte(i)})
					if err == nil {
						break
					}
					if !errors.Is(err, conntable.ErrSlowConsumer) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); s.Close(1000, "done"); close(done) }()

	next := [senders]int{}
	var lastSeq, ack uint64
	var dst []Message
	wake := make(chan struct{}, 1)
	w := &chanWaiter{wake}
	for round := 0; ; round++ {
		if ready, _ := s.Poll(ack, true, w); !ready {
			<-wake
		}
		b := s.Take(dst)
		for _, m := range b.Messages {
			if m.Seq <= lastSeq {
				continue // a duplicate we already have: the client drops it by seq
			}
			if m.Seq != lastSeq+1 {
				t.Fatalf("gap: %d after %d", m.Seq, lastSeq)
			}
			lastSeq = m.Seq
			g, i := m.Data[0], int(m.Data[1])<<8|int(m.Data[2])
			if i != next[g] {
				t.Fatalf("sender %d: message %d, want %d", g, i, next[g])
			}
			next[g]++
		}
		if round%3 != 0 { // sometimes "lose" the answer: do not ack it
			ack = lastSeq
		}
		dst = b.Messages[:0]
		if b.Closed {
			break
		}
	}
	<-done
	if lastSeq != senders*each {
		t.Fatalf("got %d messages, want %d", lastSeq, senders*each)
	}
}

type chanWaiter struct{ c chan struct{} }

func (w *chanWaiter) Wake() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// Every held poll is answered exactly once: woken by a racing Send, taken back by a racing
// Cancel (ttl), or displaced by the next poll; never two of these, never none.
func TestSessionWaiterExactlyOnce(t *testing.T) {
	s := NewSession(&Config{MaxOutboundBytes: 1 << 30})
	var prev *waiter
	var prevCancelled bool
	for round := range 2000 {
		w := &waiter{}
		ready, displaced := s.Poll(0, false, w)
		if prev != nil {
			answered := int(prev.woken.Load())
			if prevCancelled {
				answered++
			}
			if displaced == Waiter(prev) {
				answered++
			} else if displaced != nil {
				t.Fatalf("round %d: displaced a poll from before the last", round)
			}
			if answered != 1 {
				t.Fatalf("round %d: poll answered %d times", round, answered)
			}
		}
		if ready {
			_ = s.Take(nil)
			prev, prevCancelled = nil, false
			continue
		}
		var wg sync.WaitGroup
		var cancelled atomic.Bool
		wg.Add(2)
		go func() {
			defer wg.Done()
			if round%3 != 0 {
				_, _ = s.Push(false, []byte{1})
			}
		}()
		go func() {
			defer wg.Done()
			if round%5 != 0 {
				cancelled.Store(s.Cancel(w))
			}
		}()
		wg.Wait()
		prev, prevCancelled = w, cancelled.Load()
		if prev.woken.Load() > 0 {
			_ = s.Take(nil) // the woken poll's answer
		}
	}
}

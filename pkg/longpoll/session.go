package longpoll

import (
	"sync"
	"sync/atomic"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// Message is one outbound message in a Batch. Data belongs to the session and must not be
// modified; it stays valid after the session lets go of it.
type Message struct {
	Seq  uint64
	Text bool
	Data []byte
}

// Batch is what one poll answer carries.
type Batch struct {
	Messages    []Message
	Closed      bool // the close record follows the messages: end the session after this answer
	Code        int
	Reason      string
	Redelivered int // messages in Messages that an earlier answer carried too (a metric)
}

// Waiter is a held poll. Wake is called at most once, by the goroutine that made the
// session ready (Send, Close), outside the session's lock; it must not block: hop onto the
// poll's event loop and call Take there. A Waiter is compared with ==, so use a pointer.
type Waiter interface {
	Wake()
}

// Session is the outbound side of one poll session: the messages waiting for the client
// and those sent but not yet confirmed, a close record, and the held poll. All methods are
// safe for concurrent use.
type Session struct {
	mu          sync.Mutex
	queue       []entry // queue[head:], in seq order: sent (unconfirmed) first, then unsent
	head        int
	first       uint64 // seq of queue[head]
	sent        int    // queue[head:head+sent] went out in an answer and await confirmation
	bytes       int    // message bytes in queue[head:]
	maxSent     uint64 // the highest seq an answer has carried
	redelivered uint64
	closed      bool
	closeSent   bool // an answer carried the close record
	code        int
	reason      string
	waiter      Waiter
	ready       atomic.Bool // an answer has something to say: unsent messages or the close record

	maxMessage, maxOutbound, maxBatch int
}

type entry struct {
	data []byte
	text bool
}

// NewSession returns an open session with cfg's limits (nil: the defaults).
func NewSession(cfg *Config) *Session {
	return &Session{
		first:       1,
		maxMessage:  cfg.maxMessage(),
		maxOutbound: cfg.maxOutbound(),
		maxBatch:    cfg.maxBatch(),
	}
}

// Send queues one message, with the signature of conntable.Transport.Send. The payload is copied. Errors: conntable.ErrTooBig over
// MaxMessageBytes, conntable.ErrClosing once closed, conntable.ErrSlowConsumer when queued
// plus unconfirmed bytes would pass MaxOutboundBytes. A held poll is woken.
func (s *Session) Send(t conntable.MessageType, payload []byte) error {
	_, err := s.Push(t == conntable.Text, payload)
	return err
}

// Push is Send that also returns the message's seq.
func (s *Session) Push(text bool, payload []byte) (uint64, error) {
	if len(payload) > s.maxMessage {
		return 0, conntable.ErrTooBig
	}
	data := make([]byte, len(payload)) // copied outside the lock
	copy(data, payload)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, conntable.ErrClosing
	}
	if s.bytes+len(data) > s.maxOutbound {
		s.mu.Unlock()
		return 0, conntable.ErrSlowConsumer
	}
	s.queue = append(s.queue, entry{data: data, text: text})
	s.bytes += len(data)
	seq := s.first + uint64(len(s.queue)-s.head) - 1
	w := s.waiter
	s.waiter = nil
	s.ready.Store(true)
	s.mu.Unlock()
	if w != nil {
		w.Wake()
	}
	return seq, nil
}

// Close ends the session with a close record {"type":"close","code":..,"reason":..} that
// follows every queued message. It reports whether this call closed it (later calls are
// ignored). A held poll is woken.
func (s *Session) Close(code int, reason string) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed, s.code, s.reason = true, code, reason
	w := s.waiter
	s.waiter = nil
	s.ready.Store(true)
	s.mu.Unlock()
	if w != nil {
		w.Wake()
	}
	return true
}

// Poll starts serving a poll: it applies the poll's ack, then either reports ready (answer
// now: Take) or holds w until Send or Close wakes it. Without ack, every message sent in an
// earlier answer is confirmed; with ack=n, those up to n are, and the other sent ones will be
// sent again. A poll that was held is handed back as displaced: answer it at once with an
// empty batch (one held poll per session). w may be nil to apply the ack without holding.
func (s *Session) Poll(ack uint64, hasAck bool, w Waiter) (ready bool, displaced Waiter) {
	s.mu.Lock()
	confirm := s.sent
	if hasAck {
		confirm = 0
		if ack >= s.first {
			confirm = int(min(ack-s.first+1, uint64(s.sent)))
		}
	}
	s.confirm(confirm)
	s.sent = 0 // whatever is still unconfirmed goes again
	displaced = s.waiter
	s.waiter = nil
	ready = s.readyLocked()
	if !ready && w != nil {
		s.waiter = w
	}
	s.ready.Store(ready)
	s.mu.Unlock()
	if displaced == w {
		displaced = nil // the same poll again: nothing else to answer
	}
	return ready, displaced
}

// Cancel takes a held poll back, when its ttl runs out or its connection goes: true means
// it was still held and is now the caller's to answer (AppendHeartbeat) or drop; false means
// a Wake is on its way or it was displaced, and that path answers it.
func (s *Session) Cancel(w Waiter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiter == nil || s.waiter != w {
		return false
	}
	s.waiter = nil
	return true
}

// Take returns the next batch for a poll answer: the unsent messages from the oldest, at
// most MaxBatchBytes of message data but at least one message, and the close record once
// the session is closed and no message is left behind. It appends to dst[:0], so a loop
// can reuse one slice. The messages count as sent: the next poll confirms them.
func (s *Session) Take(dst []Message) Batch { return s.TakeWithin(dst, 0, 0) }

// TakeWithin is Take for an answer that must fit a size: when maxSize > 0, the batch stops
// before the message that would bring its data plus perMessage bytes for each message past
// maxSize (the first message is always taken). A cluster uses it for an answer that travels
// over NATS, whose messages have a maximum size.
func (s *Session) TakeWithin(dst []Message, maxSize, perMessage int) Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := Batch{Messages: dst[:0]}
	start := s.head + s.sent
	i, total, size := start, 0, 0
	for ; i < len(s.queue); i++ {
		e := &s.queue[i]
		if i > start && (total+len(e.data) > s.maxBatch || maxSize > 0 && size+len(e.data)+perMessage > maxSize) {
			break
		}
		total += len(e.data)
		size += len(e.data) + perMessage
		seq := s.first + uint64(i-s.head)
		if seq <= s.maxSent {
			b.Redelivered++
		}
		b.Messages = append(b.Messages, Message{Seq: seq, Text: e.text, Data: e.data})
	}
	if n := len(b.Messages); n > 0 {
		s.sent += n
		s.maxSent = max(s.maxSent, b.Messages[n-1].Seq)
		s.redelivered += uint64(b.Redelivered)
	}
	if s.closed && i == len(s.queue) {
		b.Closed, b.Code, b.Reason = true, s.code, s.reason
		s.closeSent = true
	}
	s.ready.Store(s.readyLocked())
	return b
}

// Finished reports whether the client has had everything: an answer carried the close
// record, and a poll has since confirmed every message (ack, or none). Until then a poll
// gets the unconfirmed messages and the close record again; after, the session is gone.
func (s *Session) Finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeSent && s.head == len(s.queue)
}

// CloseSent reports whether an answer has carried the close record.
func (s *Session) CloseSent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeSent
}

// Ready reports, without taking the lock, whether a poll would be answered at once.
func (s *Session) Ready() bool { return s.ready.Load() }

// Closed reports whether Close was called.
func (s *Session) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Buffered is the message bytes queued or awaiting confirmation (what MaxOutboundBytes bounds).
func (s *Session) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Redelivered is the number of messages sent more than once, over the session's life.
func (s *Session) Redelivered() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.redelivered
}

func (s *Session) readyLocked() bool {
	return s.closed || len(s.queue)-s.head > s.sent
}

// confirm drops the k oldest messages, which must have been sent.
func (s *Session) confirm(k int) {
	if k <= 0 {
		return
	}
	for i := s.head; i < s.head+k; i++ {
		s.bytes -= len(s.queue[i].data)
		s.queue[i] = entry{} // let the payload go
	}
	s.head += k
	s.first += uint64(k)
	s.sent -= k
	const compactAt, keepIdle = 64, 16
	switch {
	case s.head == len(s.queue):
		if cap(s.queue) > keepIdle {
			s.queue = nil // an idle session does not keep a burst's slice
		} else {
			s.queue = s.queue[:0]
		}
		s.head = 0
	case s.head >= compactAt && 2*s.head >= len(s.queue):
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue = s.queue[:n]
		s.head = 0
	}
}

package gateway

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/hub"
	"github.com/socketdock/socketdock/pkg/longpoll"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// pollSession is one long-poll session: a connection for the hub, the backend and the
// control API (it is the conntable.Transport), reached by its secret id in /poll/ URLs.
type pollSession struct {
	id     string // the secret in the client's URLs; never the connection id
	srv    *Server
	conn   *conntable.Conn
	out    *longpoll.Session // outbound messages, seq/ack, the held poll
	ticket hub.Ticket

	// mu serialises the backend's calls for this connection (Message from any loop that
	// serves a /poll/s, Closed from whoever closes) and guards ended.
	mu    sync.Mutex
	ended bool

	lastSeen atomic.Int64 // Unix nanoseconds of the last request or answer: the expiry clock
	holding  atomic.Int32 // polls held for this session: it is alive while one is
}

func (s *Server) newPollSession(t hub.Ticket) *pollSession {
	return &pollSession{id: s.opts.NewSessionID(), srv: s, out: longpoll.NewSession(&s.pollCfg), ticket: t}
}

// Name implements conntable.Transport.
func (ps *pollSession) Name() string { return "poll" }

// Send implements conntable.Transport: the message waits in the session for a poll.
func (ps *pollSession) Send(t conntable.MessageType, payload []byte) error {
	return ps.out.Send(t, payload)
}

// Close implements conntable.Transport: the close record is queued behind every message for
// the next poll, and the connection ends for the hub and the backend now.
func (ps *pollSession) Close(code int, reason string) {
	if !ps.out.Close(code, reason) {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.ended {
		return
	}
	ps.ended = true
	ps.srv.opts.Hub.Closed(ps.conn, &ps.ticket, code, reason)
}

// message hands one client message to the backend, in order with the session's others, and
// queues an immediate reply. A full inbound queue is refused (503), not a close: the client
// retries (CONTRACT §8).
func (ps *pollSession) message(t *metrics.Traffic, typ conntable.MessageType, payload []byte) error {
	ps.mu.Lock()
	if ps.ended {
		ps.mu.Unlock()
		return longpoll.ErrUnknownSession
	}
	ps.conn.CountIn()
	if len(payload) == 0 { // as on a WebSocket: counted apart; the HTTP backend skips it, loopback echoes it
		t.EmptyMessages.Add(1)
	} else {
		countIn(t, typ, len(payload), true)
	}
	reply, replied, err := ps.srv.opts.Backend.Message(ps.conn, typ, payload)
	ps.mu.Unlock()
	switch {
	case errors.Is(err, backend.ErrInboundFull):
		return &longpoll.Error{Status: 503, Reason: "inbound queue full", Header: "Retry-After: 1\r\n"}
	case err != nil:
		return err
	case !replied:
		return nil
	}
	if err := ps.Send(reply.Type, reply.Payload); errors.Is(err, conntable.ErrSlowConsumer) {
		ps.Close(conntable.CloseTryAgainLater, "outbound buffer full")
	}
	return nil
}

// delivered counts the messages a poll answer carries for the first time.
func (ps *pollSession) delivered(t *metrics.Traffic, b *longpoll.Batch) {
	if b.Redelivered > 0 {
		t.PollRedeliveries.Add(uint64(b.Redelivered))
	}
	for _, m := range b.Messages[b.Redelivered:] {
		typ := conntable.Binary
		if m.Text {
			typ = conntable.Text
		}
		countOut(t, typ, len(m.Data), true)
		ps.conn.CountOut()
	}
}

func (ps *pollSession) touch() { ps.lastSeen.Store(time.Now().UnixNano()) }

// sessionTable maps session ids to sessions and expires the ones nobody polls.
type sessionTable struct {
	mu    sync.RWMutex
	m     map[string]*pollSession
	gauge prometheus.Gauge

	remoteOnce sync.Once
	remote     *metrics.Traffic // counts sessions' messages served for other instances (cluster.go)
}

func (t *sessionTable) add(ps *pollSession) {
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[string]*pollSession)
	}
	t.m[ps.id] = ps
	t.mu.Unlock()
	t.gauge.Inc()
}

func (t *sessionTable) get(id string) *pollSession {
	t.mu.RLock()
	ps := t.m[id]
	t.mu.RUnlock()
	return ps
}

func (t *sessionTable) remove(ps *pollSession) {
	t.mu.Lock()
	gone := t.m[ps.id] == ps
	if gone {
		delete(t.m, ps.id)
	}
	t.mu.Unlock()
	if gone {
		t.gauge.Dec()
	}
}

// closeRecordsPending counts the closed sessions whose close record no answer has carried.
func (t *sessionTable) closeRecordsPending() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := 0
	for _, ps := range t.m {
		if ps.out.Closed() && !ps.out.CloseSent() {
			n++
		}
	}
	return n
}

// CloseRecordsPending is the number of poll sessions closed (by a drain, say) whose clients
// have not yet polled for their close record.
func (s *Server) CloseRecordsPending() int { return s.sessions.closeRecordsPending() }

// expire ends the sessions that no poll has reached for timeout (CONTRACT §8: 1006, "poll
// session expired") and forgets closed ones whose close record nobody came for.
func (t *sessionTable) expire(now time.Time, timeout time.Duration) {
	cutoff := now.Add(-timeout).UnixNano()
	var stale []*pollSession
	t.mu.RLock()
	for _, ps := range t.m {
		if ps.holding.Load() == 0 && ps.lastSeen.Load() < cutoff {
			stale = append(stale, ps)
		}
	}
	t.mu.RUnlock()
	for _, ps := range stale {
		ps.Close(conntable.CloseAbnormal, "poll session expired")
		t.remove(ps)
	}
}

// sweepSessions runs expire until stop closes.
func (s *Server) sweepSessions(stop <-chan struct{}) {
	period := min(max(s.opts.PollSessionTimeout/8, 10*time.Millisecond), time.Second)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			s.sessions.expire(now, s.opts.PollSessionTimeout)
		}
	}
}

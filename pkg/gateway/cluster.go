package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/longpoll"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// Poll sessions held by other instances (CONTRACT §10). A /poll/s|j|c whose session id
// carries another instance's tag is handed to the PollForwarder (pkg/cluster), which serves
// it at the owner (ServeRemotePoll there) and brings back the outcome; this instance writes
// the answer with its own Reply (cb, CORS, keep-alive), exactly as it answers local sessions.
// While the call is out, the connection waits in statePollCreating: it reads nothing more,
// and its handshake timer is a backstop behind the forwarder's own timeout.

// PollForwarder reaches the poll sessions other instances hold.
type PollForwarder interface {
	// Remote reports whether session belongs to another instance.
	Remote(session string) bool
	// ForwardPoll serves call at the session's owner. done runs exactly once, on any
	// goroutine, within call.TTL (for RoutePoll) plus Timeout. call.Data is valid only
	// until ForwardPoll returns.
	ForwardPoll(call *PollCall, done func(PollResult))
	// Timeout is the time the owner has to answer, beyond a poll's hold.
	Timeout() time.Duration
}

// PollCall is a parsed /poll/s, /poll/j or /poll/c for a session.
type PollCall struct {
	Route   longpoll.Route
	Session string
	Text    bool   // RouteSend
	Data    []byte // RouteSend: the message
	TTL     time.Duration
	Ack     uint64
	HasAck  bool
}

// PollResult is the owner's outcome of a PollCall.
type PollResult struct {
	Err       error          // a refusal, answered with longpoll.AppendError
	Batch     longpoll.Batch // RoutePoll: the messages and close record (empty: displaced by a newer poll)
	Heartbeat bool           // RoutePoll: the ttl ran out with nothing to say
}

// forwardPoll hands a poll route for another instance's session to the forwarder; it
// reports false when the session is not remote (or there is no cluster). On the loop.
func (s *Server) forwardPoll(w *wsConn, p *longpoll.Params, reply longpoll.Reply) bool {
	f := s.opts.PollForwarder
	if f == nil || p.Route == longpoll.RouteCreate || !f.Remote(p.Session) {
		return false
	}
	call := PollCall{Route: p.Route, Session: p.Session, Text: p.Text, Data: p.Data, TTL: p.TTL, Ack: p.Ack, HasAck: p.HasAck}
	if p.Route != longpoll.RoutePoll {
		call.TTL = 0
	}
	w.state = statePollCreating
	w.deadline = w.loop.wheel.Now() + s.ticks(call.TTL+f.Timeout()+time.Second)
	w.loop.wheel.Schedule(w, w.deadline)
	reply = copyReply(reply)
	route := p.Route
	f.ForwardPoll(&call, func(r PollResult) {
		_ = w.gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			s.forwardAnswered(w, route, reply, &r)
			return nil
		}))
	})
	return true
}

// forwardAnswered writes the owner's outcome, if the client still waits for it. On the loop.
func (s *Server) forwardAnswered(w *wsConn, route longpoll.Route, reply longpoll.Reply, r *PollResult) {
	if w.state != statePollCreating {
		return // the client left, or the backstop answered
	}
	out := w.loop.pollOut[:0]
	switch {
	case r.Err != nil:
		s.pollFail(w, reply, r.Err)
	case route == longpoll.RouteSend:
		s.pollAnswer(w, reply, 201, longpoll.AppendOK(out, reply, 201))
	case route == longpoll.RouteClose:
		s.pollAnswer(w, reply, 200, longpoll.AppendOK(out, reply, 200))
	case r.Heartbeat:
		s.pollAnswer(w, reply, 200, longpoll.AppendHeartbeat(out, reply))
	default:
		s.pollAnswer(w, reply, 200, longpoll.AppendBatch(out, reply, &r.Batch))
	}
	_ = w.gc.Wake(nil) // a request pipelined behind this one waits in gnet's buffer
}

// ServeRemotePoll serves call for a session this instance holds, on another instance's
// behalf. done runs exactly once, at once or (a held poll) when a message, the close, the
// ttl or a newer poll comes; the Batch it gets stays valid. A poll answer's messages fit in
// maxSize bytes of data plus perMessage each (the first is always taken).
func (s *Server) ServeRemotePoll(call *PollCall, maxSize, perMessage int, done func(PollResult)) {
	ps := s.sessions.get(call.Session)
	if ps == nil {
		done(PollResult{Err: longpoll.ErrUnknownSession})
		return
	}
	ps.touch()
	switch call.Route {
	case longpoll.RouteSend:
		t := conntable.Binary
		if call.Text {
			t = conntable.Text
		}
		done(PollResult{Err: ps.message(s.remoteTraffic(), t, call.Data)})
	case longpoll.RouteClose:
		ps.Close(conntable.CloseNormal, "")
		s.sessions.remove(ps)
		done(PollResult{})
	case longpoll.RoutePoll:
		h := &remoteHeld{srv: s, ps: ps, done: done, maxSize: maxSize, perMessage: perMessage}
		ttl := min(call.TTL, s.pollCfg.MaxTTL)
		var wt longpoll.Waiter
		if ttl > 0 {
			ps.holding.Add(1)
			wt = h
		}
		ready, displaced := ps.out.Poll(call.Ack, call.HasAck, wt)
		if displaced != nil {
			displaced.(displacer).displace()
		}
		if ready || ttl <= 0 {
			if ttl > 0 {
				ps.holding.Add(-1)
			}
			h.deliver(false)
			return
		}
		h.mu.Lock()
		h.timer = time.AfterFunc(ttl, h.expired)
		h.mu.Unlock()
	default:
		done(PollResult{Err: longpoll.ErrNotFound})
	}
}

// displacer is a held poll a newer poll replaces: a local one (heldPoll) or one held for
// another instance (remoteHeld).
type displacer interface{ displace() }

// remoteHeld is a poll held here for another instance: exactly one of Wake, displace and
// expired (whichever takes it from the session) answers it.
type remoteHeld struct {
	srv                 *Server
	ps                  *pollSession
	done                func(PollResult)
	maxSize, perMessage int

	mu    sync.Mutex
	timer *time.Timer
}

// Wake implements longpoll.Waiter.
func (h *remoteHeld) Wake() { h.release(); h.deliver(false) }

func (h *remoteHeld) displace() { h.release(); h.deliver(true) }

func (h *remoteHeld) expired() {
	if !h.ps.out.Cancel(h) {
		return // a Wake or a displacement took it first and answers it
	}
	h.ps.holding.Add(-1)
	h.ps.touch()
	h.done(PollResult{Heartbeat: true})
}

// release ends the hold before the answer: the ttl timer stops, the session may expire again.
func (h *remoteHeld) release() {
	h.mu.Lock()
	if h.timer != nil {
		h.timer.Stop()
	}
	h.mu.Unlock()
	h.ps.holding.Add(-1)
}

func (h *remoteHeld) deliver(empty bool) {
	ps := h.ps
	var b longpoll.Batch
	if !empty {
		b = ps.out.TakeWithin(nil, h.maxSize, h.perMessage)
		ps.delivered(h.srv.remoteTraffic(), &b)
	}
	ps.touch()
	if b.Closed {
		h.srv.sessions.remove(ps)
	}
	h.done(PollResult{Batch: b})
}

// remoteTraffic counts the messages of sessions served for other instances.
func (s *Server) remoteTraffic() *metrics.Traffic {
	t := &s.sessions
	t.remoteOnce.Do(func() { t.remote = s.opts.Metrics.NewTraffic() })
	return t.remote
}

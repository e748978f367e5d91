package gateway

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/hub"
	"github.com/socketdock/socketdock/pkg/longpoll"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

// The long-poll transport (CONTRACT §8) on the public port. A TCP connection that sends a
// /poll/ request becomes an HTTP/1.1 keep-alive connection: requests are read one at a time
// from gnet's buffer (head in place, body by Content-Length), answered on the loop, and a
// poll with nothing to say is held: the connection keeps a pointer to it and a wheel timer
// for its ttl, no goroutine. Sessions (pollsession.go) outlive their TCP connections.

// heldPoll is one held poll: the longpoll.Waiter handed to its session. Exactly one of the
// ttl timer, Wake (a message or close arrived) or a newer poll answers it.
type heldPoll struct {
	w       *wsConn
	session *pollSession
	reply   longpoll.Reply // its strings are copies: the request's bytes are gone
}

// Wake implements longpoll.Waiter: the session has something to say. Not on the loop.
func (h *heldPoll) Wake() { h.answerOnLoop(false) }

// displace answers a poll that a newer one replaced, with an empty batch. Not on the loop.
func (h *heldPoll) displace() { h.answerOnLoop(true) }

func (h *heldPoll) answerOnLoop(empty bool) {
	w := h.w
	err := w.gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		w.loop.srv.answerHeld(w, h, empty)
		return nil
	}))
	if err != nil { // the loop is gone: nobody waits for this answer any more
		h.session.holding.Add(-1)
	}
}

// pollRequest serves one /poll/ request whose head (n bytes) starts buf. It returns the
// bytes the request took (head and body), or 0 while the body is incomplete or when the
// connection is closing. On the loop.
func (s *Server) pollRequest(w *wsConn, req *wsframe.Request, buf []byte, n int) int {
	cfg := &s.pollCfg
	l := w.loop
	// Every request's body is measured, refused ones too: on a keep-alive connection the
	// bytes after the head belong to this request, and must not be read as the next one.
	route, _, _ := longpoll.ParseRoute(req.Path)
	body, err := longpoll.BodyLength(req, cfg.BodyLimit(route, req.Get("content-type")))
	if err != nil {
		s.pollFail(w, longpoll.Reply{Close: true}, err)
		return 0
	}
	if len(buf) < n+body {
		return 0 // the body is on its way; the request deadline bounds the wait
	}
	reply := longpoll.Reply{Close: wantsClose(req)}
	if origin := req.Get("origin"); origin != "" {
		if !s.originAllowed(origin) {
			s.pollFail(w, reply, &longpoll.Error{Status: 403, Reason: "origin not allowed"})
			return n + body
		}
		reply.Origin, reply.Credentials = origin, s.credentialed()
	}
	p := &l.pollParams
	if err := p.Parse(req, buf[n:n+body], cfg); err != nil {
		reply.Callback = p.Callback
		s.pollFail(w, reply, err)
		return n + body
	}
	reply.Callback = p.Callback
	if p.Preflight {
		s.pollAnswer(w, reply, 204, longpoll.AppendPreflight(l.pollOut[:0], reply, req.Get("access-control-request-headers")))
		return n + body
	}
	if s.forwardPoll(w, p, reply) { // a session another instance holds (cluster.go)
		return n + body
	}
	switch p.Route {
	case longpoll.RouteCreate:
		s.pollCreate(w, req, p, reply)
	case longpoll.RouteSend:
		s.pollSend(w, p, reply)
	case longpoll.RoutePoll:
		s.pollPoll(w, p, reply)
	case longpoll.RouteClose:
		s.pollClose(w, p, reply)
	}
	return n + body
}

// wantsClose reports whether the client asked for the connection to close after the answer.
func wantsClose(req *wsframe.Request) bool {
	for _, h := range req.Headers {
		if h.Name == "connection" && wsframe.HasToken(h.Value, "close") {
			return true
		}
	}
	return false
}

// credentialed: pages may send cookies with poll requests only when the operator named the
// origins they come from.
func (s *Server) credentialed() bool {
	for _, o := range s.opts.AllowedOrigins {
		if o == "*" {
			return false
		}
	}
	return len(s.opts.AllowedOrigins) > 0
}

// pollAnswer writes a complete answer; the connection then reads the next request, or
// closes when the answer said so. On the loop.
func (s *Server) pollAnswer(w *wsConn, reply longpoll.Reply, status int, resp []byte) {
	// Counted by the status the answer stands for (a JSONP answer carries it inside).
	s.opts.Metrics.HTTPResponses.WithLabelValues(strconv.Itoa(status)).Inc()
	w.loop.pollOut = resp[:0] // keep a grown buffer for the next answer
	if cap(w.loop.pollOut) > 256<<10 {
		w.loop.pollOut = nil // but not a huge one
	}
	w.write(resp)
	if reply.Close {
		w.shut()
		return
	}
	w.state = stateKeepAlive
	w.deadline = w.loop.wheel.Now() + s.ticks(s.opts.HandshakeTimeout)
	w.loop.wheel.Schedule(w, w.deadline)
}

// pollFail answers err (see longpoll.StatusOf). On the loop.
func (s *Server) pollFail(w *wsConn, reply longpoll.Reply, err error) {
	status, _, _ := longpoll.StatusOf(err)
	s.pollAnswer(w, reply, status, longpoll.AppendError(w.loop.pollOut[:0], reply, err))
}

// pollCreate opens a session: admission, the optional target, then (in authorize mode) the
// backend's verdict before the answer. On the loop.
func (s *Server) pollCreate(w *wsConn, req *wsframe.Request, p *longpoll.Params, reply longpoll.Reply) {
	if p.Target != "" && (s.opts.Linker == nil || !s.opts.Linker.TargetAllowed(p.Target)) {
		// A target names a WebSocket upstream (CONTRACT §9): only --upstream-allow's prefixes.
		s.pollFail(w, reply, &longpoll.Error{Status: 403, Reason: "target not allowed"})
		return
	}
	ticket, err := s.opts.Hub.Admit(w.gc.RemoteAddr())
	if err != nil {
		he := &longpoll.Error{Status: 503, Reason: err.Error()}
		if !errors.Is(err, hub.ErrDraining) {
			he.Header = "Retry-After: 1\r\n"
		}
		s.pollFail(w, reply, he)
		return
	}
	ps := s.newPollSession(ticket)
	var headers [][2]string
	var path string
	if s.opts.KeepRequest {
		headers = cloneHeaders(req.Headers)
		path = string(longpoll.AppendMetaPath(nil, req.Target))
	}
	ps.conn = s.opts.Hub.NewConn(ps, w.gc.RemoteAddr(), headers, path)
	fqdn := s.opts.PollFQDN
	if fqdn == "" {
		fqdn = strings.Clone(req.Get("host"))
	}
	if s.opts.Linker != nil { // the session's upstream is dialled first (link.go)
		s.pollLink(w, ps, reply, fqdn, p.Target)
		return
	}
	if s.opts.Authorizer == nil {
		s.pollOpen(w, ps, reply, fqdn)
		return
	}
	// Authorize off the loop; the connection reads nothing more until the verdict.
	w.state = statePollCreating
	reply = copyReply(reply)
	deadline := time.Now().Add(s.opts.HandshakeTimeout)
	go func() {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		status, err := s.opts.Authorizer.Authorize(ctx, ps.conn)
		cancel()
		execErr := w.gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			s.pollAuthorized(w, ps, reply, fqdn, status, err)
			return nil
		}))
		if execErr != nil {
			s.pollAbandon(ps, status, err, "server shut down before the session opened")
		}
	}()
}

// pollAuthorized applies the backend's verdict on a create. On the loop.
func (s *Server) pollAuthorized(w *wsConn, ps *pollSession, reply longpoll.Reply, fqdn string, status int, err error) {
	if w.state != statePollCreating {
		s.pollAbandon(ps, status, err, "client left before the session opened")
		return
	}
	switch {
	case err == nil && status >= 200 && status < 300:
		s.pollOpen(w, ps, reply, fqdn)
		_ = w.gc.Wake(nil) // read whatever the client sent meanwhile
		return
	case err != nil:
		s.pollAbandon(ps, status, err, "authorization failed")
		if errors.Is(err, context.DeadlineExceeded) {
			s.pollFail(w, reply, &longpoll.Error{Status: 408, Reason: "authorization timed out"})
		} else {
			s.pollFail(w, reply, &longpoll.Error{Status: 503, Reason: "backend unavailable", Header: "Retry-After: 1\r\n"})
		}
	default:
		s.opts.Hub.Release(&ps.ticket)
		s.pollFail(w, reply, &longpoll.Error{Status: 403, Reason: "connection refused by the backend"})
	}
	_ = w.gc.Wake(nil)
}

// pollAbandon gives back a session that never opened, telling the backend when it may hold
// state for it (every connect it saw gets one disconnect).
func (s *Server) pollAbandon(ps *pollSession, status int, err error, reason string) {
	if backendMayHold(status, err) {
		s.opts.Hub.Abandoned(ps.conn, &ps.ticket, conntable.CloseAbnormal, reason)
		return
	}
	s.opts.Hub.Release(&ps.ticket)
}

// pollOpen registers the session and answers the create. On the loop.
func (s *Server) pollOpen(w *wsConn, ps *pollSession, reply longpoll.Reply, fqdn string) {
	ps.touch()
	s.sessions.add(ps)
	s.opts.Hub.Open(ps.conn)
	s.pollAnswer(w, reply, 200, longpoll.AppendCreated(w.loop.pollOut[:0], reply, ps.id, fqdn))
}

// pollSend hands one client message to the backend. On the loop.
func (s *Server) pollSend(w *wsConn, p *longpoll.Params, reply longpoll.Reply) {
	ps := s.sessions.get(p.Session)
	if ps == nil {
		s.pollFail(w, reply, longpoll.ErrUnknownSession)
		return
	}
	// No touch: only polls keep a session alive (CONTRACT §8), a client that sends and
	// never polls takes nothing of what waits for it.
	t := conntable.Binary
	if p.Text {
		t = conntable.Text
	}
	if err := ps.message(w.loop.traffic, t, p.Data); err != nil {
		s.pollFail(w, reply, err)
		return
	}
	s.pollAnswer(w, reply, 201, longpoll.AppendOK(w.loop.pollOut[:0], reply, 201))
}

// pollClose ends a session at the client's request. On the loop.
func (s *Server) pollClose(w *wsConn, p *longpoll.Params, reply longpoll.Reply) {
	ps := s.sessions.get(p.Session)
	if ps == nil {
		s.pollFail(w, reply, longpoll.ErrUnknownSession)
		return
	}
	ps.Close(conntable.CloseNormal, "")
	s.sessions.remove(ps) // the client said goodbye: it will not poll for the close record
	s.pollAnswer(w, reply, 200, longpoll.AppendOK(w.loop.pollOut[:0], reply, 200))
}

// pollPoll answers a poll at once when something waits (a heartbeat when nothing does and
// ttl is 0), else holds it. On the loop.
func (s *Server) pollPoll(w *wsConn, p *longpoll.Params, reply longpoll.Reply) {
	ps := s.sessions.get(p.Session)
	if ps == nil {
		s.pollFail(w, reply, longpoll.ErrUnknownSession)
		return
	}
	ps.touch()
	var h *heldPoll
	if p.TTL > 0 {
		h = &heldPoll{w: w, session: ps, reply: copyReply(reply)}
		ps.holding.Add(1)
	}
	ready, displaced := ps.out.Poll(p.Ack, p.HasAck, waiter(h))
	if displaced != nil {
		displaced.(displacer).displace()
	}
	if ps.out.Finished() { // the close record went out and this poll confirmed the rest
		if h != nil {
			ps.holding.Add(-1)
		}
		s.sessions.remove(ps)
		s.pollFail(w, reply, longpoll.ErrUnknownSession)
		return
	}
	if ready {
		if h != nil {
			ps.holding.Add(-1)
		}
		s.pollDeliver(w, ps, reply, false)
		return
	}
	if h == nil { // ttl 0 ran out at once: the heartbeat, like any poll whose ttl ran out
		ps.touch()
		s.pollAnswer(w, reply, 200, longpoll.AppendHeartbeat(w.loop.pollOut[:0], reply))
		return
	}
	w.state = statePollHeld
	w.held = h
	s.opts.Metrics.PollsHeld.Inc()
	w.loop.wheel.Schedule(w, w.loop.wheel.Now()+s.ticks(p.TTL))
}

// waiter turns a nil *heldPoll into a nil interface (a poll that will not be held).
func waiter(h *heldPoll) longpoll.Waiter {
	if h == nil {
		return nil
	}
	return h
}

// answerHeld answers w's held poll h, if it still holds it: with the session's next batch,
// or an empty one when a newer poll displaced it. On the loop.
func (s *Server) answerHeld(w *wsConn, h *heldPoll, empty bool) {
	h.session.holding.Add(-1)
	if w.state != statePollHeld || w.held != h {
		return // the connection went: the batch stays in the session for the next poll
	}
	s.unhold(w)
	s.pollDeliver(w, h.session, h.reply, empty)
	_ = w.gc.Wake(nil) // a request pipelined behind the poll waits in gnet's buffer
}

// heldExpired answers a held poll whose ttl ran out with a heartbeat, unless a Wake or a
// displacement is already on its way with the answer. On the loop.
func (s *Server) heldExpired(w *wsConn) {
	h := w.held
	if !h.session.out.Cancel(h) {
		w.loop.wheel.Schedule(w, w.loop.wheel.Now()+s.ticks(s.opts.HandshakeTimeout)) // the answer is on its way
		return
	}
	h.session.holding.Add(-1)
	s.unhold(w)
	h.session.touch()
	s.pollAnswer(w, h.reply, 200, longpoll.AppendHeartbeat(w.loop.pollOut[:0], h.reply))
	_ = w.gc.Wake(nil)
}

// unhold ends w's held state. On the loop.
func (s *Server) unhold(w *wsConn) {
	w.held = nil
	w.state = stateKeepAlive
	s.opts.Metrics.PollsHeld.Dec()
}

// pollConnClosed lets go of the poll a closing TCP connection held. On the loop.
func (s *Server) pollConnClosed(w *wsConn) {
	if w.held == nil {
		return
	}
	h := w.held
	w.held = nil
	s.opts.Metrics.PollsHeld.Dec()
	if h.session.out.Cancel(h) {
		h.session.holding.Add(-1)
	}
	h.session.touch()
}

// pollDeliver answers a poll with the session's next batch (or an empty one). On the loop.
func (s *Server) pollDeliver(w *wsConn, ps *pollSession, reply longpoll.Reply, empty bool) {
	l := w.loop
	var b longpoll.Batch
	if !empty {
		b = ps.out.Take(l.pollBatch[:0])
		l.pollBatch = b.Messages[:0]
		ps.delivered(l.traffic, &b)
	}
	ps.touch()
	resp := longpoll.AppendBatch(l.pollOut[:0], reply, &b)
	clear(l.pollBatch[:cap(l.pollBatch)]) // the loop keeps no payload alive
	// A closed session stays until a poll confirms its close record's answer (pollPoll), or
	// nobody polls for the session timeout (expire): that answer may be lost too.
	s.pollAnswer(w, reply, 200, resp)
}

// copyReply copies a reply's strings out of the request's bytes, for a deferred answer.
func copyReply(r longpoll.Reply) longpoll.Reply {
	r.Callback = strings.Clone(r.Callback)
	r.Origin = strings.Clone(r.Origin)
	return r
}

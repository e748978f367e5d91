package gateway

import (
	"context"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/hub"
	"github.com/socketdock/socketdock/pkg/longpoll"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

// A backend that links each connection to a peer of its own (backend.Linker: the WebSocket
// upstream, CONTRACT §9) is asked before the client's 101, off the loop, like --connect-mode
// authorize (security.go): the upgrade waits parked in stateAuthorizing, the client gets the
// upstream's refusal status, or its 101 with the upstream's subprotocol.

// Enrolled is a connection another package enrolled into a gateway event loop (its gnet
// context): the upstream of a linked client, served on its client's loop so that the two
// hops pass messages by plain calls. The server hands it its events.
type Enrolled interface {
	OnOpen(c gnet.Conn) ([]byte, gnet.Action)
	OnTraffic(c gnet.Conn) gnet.Action
	OnClose(c gnet.Conn, err error) gnet.Action
}

// EventLoop is the event loop that serves the client, for a backend that enrolls a
// connection of its own beside it.
func (w *wsConn) EventLoop() gnet.EventLoop { return w.loop.el }

// SendOnLoop is Send for a caller on w's own event loop: the frame is checked against the
// outbound bound and written at once (or joins the loop's output batch) instead of
// travelling through gnet's task queue.
func (w *wsConn) SendOnLoop(t conntable.MessageType, payload []byte) error {
	switch {
	case w.state != stateOpen:
		return conntable.ErrClosing
	case len(payload) > w.loop.srv.opts.MaxMessageSize:
		return conntable.ErrTooBig
	case !w.fits(wsframe.FrameSize(len(payload))):
		return conntable.ErrSlowConsumer
	}
	op := ws.OpCode(t)
	w.write(wsframe.AppendFrame(w.loop.scratch(), op, payload))
	w.noteOutbound(w.gc.OutboundBuffered())
	w.countOut(op, len(payload))
	return nil
}

// offeredProtocols copies the client's Sec-WebSocket-Protocol offer out of the request.
func offeredProtocols(req *wsframe.Request) []string {
	var offered []string
	for _, h := range req.Headers {
		if h.Name != "sec-websocket-protocol" {
			continue
		}
		for _, p := range strings.Split(h.Value, ",") {
			if p = strings.TrimSpace(p); p != "" {
				offered = append(offered, strings.Clone(p))
			}
		}
	}
	return offered
}

// linkDeadline gives the link's own timeout (its 504) room before the handshake timer's 408.
func (s *Server) linkDeadline(w *wsConn) int64 {
	return max(w.deadline, w.loop.wheel.Now()+s.ticks(s.opts.Linker.LinkTimeout()+time.Second))
}

// startLink parks w and links its connection off the loop. On the loop.
func (s *Server) startLink(w *wsConn, accept string, offered []string) {
	w.rareState().authz = &authorizing{conn: w.conn, accept: accept}
	w.conn = nil // not open: OnClose must not report it, Close and Send must not reach it
	w.state = stateAuthorizing
	w.deadline = s.linkDeadline(w)
	w.loop.wheel.Schedule(w, w.deadline)
	a := w.rare.authz
	go func() {
		res := s.opts.Linker.Link(a.conn, backend.LinkRequest{Protocols: offered})
		err := w.loop.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			s.linked(w, a, res)
			return nil
		}))
		if err != nil && res.Linked() { // the loop is gone (shutdown): release the link
			s.opts.Hub.Abandoned(a.conn, &hub.Ticket{}, conntable.CloseGoingAway, "server shut down before the upgrade completed")
		}
	}()
}

// linked applies the link's result: the 101 with the upstream's subprotocol, or its status.
// A link the client did not wait for is released. On the loop.
func (s *Server) linked(w *wsConn, a *authorizing, res backend.LinkResult) {
	if w.state != stateAuthorizing || w.authorizing() != a {
		if res.Linked() {
			s.opts.Hub.Abandoned(a.conn, &hub.Ticket{}, conntable.CloseAbnormal, "client left before the upgrade completed")
		}
		return
	}
	if !res.Linked() {
		s.refuse(w, &wsframe.HTTPError{Status: res.Status, Reason: res.Reason}, "upstream")
		return
	}
	w.rare.authz = nil
	w.conn = a.conn
	s.open(w, a.accept, res.Subprotocol)
	_ = w.gc.Wake(nil) // frames the client pipelined behind its request fire no OnTraffic of their own
}

// pollLink links a poll session off the loop; create is answered once the link is up, or
// with its status inside {"ok":false,...}. On the loop.
func (s *Server) pollLink(w *wsConn, ps *pollSession, reply longpoll.Reply, fqdn, target string) {
	w.state = statePollCreating
	w.deadline = s.linkDeadline(w)
	w.loop.wheel.Schedule(w, w.deadline)
	reply = copyReply(reply)
	target = strings.Clone(target)
	go func() {
		res := s.opts.Linker.Link(ps.conn, backend.LinkRequest{Target: target, Poll: true})
		err := w.gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			s.pollLinked(w, ps, reply, fqdn, res)
			return nil
		}))
		if err != nil && res.Linked() {
			s.opts.Hub.Abandoned(ps.conn, &ps.ticket, conntable.CloseGoingAway, "server shut down before the session opened")
		}
	}()
}

// pollLinked answers a create that waited for its link. On the loop.
func (s *Server) pollLinked(w *wsConn, ps *pollSession, reply longpoll.Reply, fqdn string, res backend.LinkResult) {
	switch {
	case w.state != statePollCreating:
		if res.Linked() {
			s.opts.Hub.Abandoned(ps.conn, &ps.ticket, conntable.CloseAbnormal, "client left before the session opened")
		} else {
			s.opts.Hub.Release(&ps.ticket)
		}
		return
	case res.Linked():
		s.pollOpen(w, ps, reply, fqdn)
	default:
		s.opts.Hub.Release(&ps.ticket)
		s.pollFail(w, reply, &longpoll.Error{Status: res.Status, Reason: res.Reason})
	}
	_ = w.gc.Wake(nil) // read whatever the client sent meanwhile
}

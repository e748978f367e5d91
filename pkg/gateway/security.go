package gateway

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/hub"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

// The upgrade-time checks of docs/SECURITY.md: Origin allow-list, subprotocol negotiation,
// and --connect-mode authorize, where the backend's answer decides on the 101.

// maxHeldWhileAuthorizing bounds the bytes a client may send before its 101: a client that
// pipelines frames behind its upgrade request may, but it cannot make the relay buffer an
// unbounded amount while the backend thinks.
const maxHeldWhileAuthorizing = 64 << 10

// originAllowed applies AllowedOrigins. A request without an Origin header is not from a
// browser (browsers always send it on WebSocket upgrades), and a non-browser client could
// forge any value, so it is let through; the allow-list protects browser users from
// cross-site WebSocket hijacking, it does not authenticate.
func (s *Server) originAllowed(origin string) bool {
	if len(s.opts.AllowedOrigins) == 0 || origin == "" {
		return true
	}
	origin = strings.TrimSuffix(origin, "/")
	for _, allowed := range s.opts.AllowedOrigins {
		if allowed == "*" || strings.EqualFold(strings.TrimSuffix(allowed, "/"), origin) {
			return true
		}
	}
	return false
}

// pickSubprotocol returns the first of the server's Subprotocols the client offered, or "".
func (s *Server) pickSubprotocol(req *wsframe.Request) string {
	if len(s.opts.Subprotocols) == 0 {
		return ""
	}
	var offered []string
	for _, h := range req.Headers {
		if h.Name != "sec-websocket-protocol" {
			continue
		}
		for _, p := range strings.Split(h.Value, ",") {
			offered = append(offered, strings.TrimSpace(p))
		}
	}
	for _, want := range s.opts.Subprotocols {
		for _, p := range offered {
			if p == want { // subprotocol names are case-sensitive (RFC 6455 §4.1)
				return want
			}
		}
	}
	return ""
}

// authorizing is a connection whose upgrade waits for the backend.
type authorizing struct {
	conn   *conntable.Conn
	accept string
	proto  string
}

// startAuthorize parks w (its frames stay in gnet's buffer) and asks the backend off the
// loop. The handshake deadline keeps running on the wheel. On the loop.
func (s *Server) startAuthorize(w *wsConn, accept, proto string) {
	w.rareState().authz = &authorizing{conn: w.conn, accept: accept, proto: proto}
	w.conn = nil // not open: OnClose must not report it, Close and Send must not reach it
	w.state = stateAuthorizing
	a := w.rare.authz
	deadline := time.Now().Add(time.Duration(w.deadline-w.loop.wheel.Now()) * s.tick)
	go func() {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		status, err := s.opts.Authorizer.Authorize(ctx, a.conn)
		cancel()
		s.deliverVerdict(w, a, status, err)
	}()
}

// deliverVerdict hands the backend's verdict to w's loop. When that loop no longer runs
// (shutdown), the verdict's backend bookkeeping happens here instead.
func (s *Server) deliverVerdict(w *wsConn, a *authorizing, status int, err error) {
	execErr := w.loop.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		s.authorized(w, a, status, err)
		return nil
	}))
	if execErr != nil && backendMayHold(status, err) {
		s.opts.Hub.Abandoned(a.conn, &hub.Ticket{}, conntable.CloseGoingAway, "server shut down before the upgrade completed")
	}
}

// backendMayHold reports whether the backend may have accepted the connect and so holds
// state for it: it said yes, or its answer was cut off by the deadline.
func backendMayHold(status int, err error) bool {
	if err != nil {
		return errors.Is(err, context.DeadlineExceeded)
	}
	return status >= 200 && status < 300
}

// authorized applies the backend's verdict. A verdict that finds the client gone, or that
// cannot open it, still owes the backend a disconnect when the backend may hold state for
// the connection: every connect it saw gets exactly one disconnect. On the loop.
func (s *Server) authorized(w *wsConn, a *authorizing, status int, err error) {
	if w.state != stateAuthorizing || w.authorizing() != a {
		if backendMayHold(status, err) {
			s.opts.Hub.Abandoned(a.conn, &hub.Ticket{}, conntable.CloseAbnormal, "client left before the upgrade completed")
		}
		return
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded): // the handshake deadline, reached first off the loop
		s.opts.Metrics.UpgradesRejected.WithLabelValues("handshake_timeout").Inc()
		s.opts.Hub.Abandoned(a.conn, &w.ticket, conntable.CloseAbnormal, "handshake timeout")
		s.respond(w, 408, "", "handshake timeout\n")
	case err != nil:
		s.log.Warn().Str("connection_id", a.conn.ID).Err(err).Msg("connect authorization failed")
		s.refuse(w, &wsframe.HTTPError{Status: 503, Reason: "backend unavailable", Header: "Retry-After: 1\r\n"}, "authorize_error")
	case status >= 200 && status < 300:
		// Even while draining: the backend said yes, so the connection opens and the hub
		// closes it with 1001 at once, and the backend gets its disconnect the usual way.
		w.rare.authz = nil
		w.conn = a.conn
		s.open(w, a.accept, a.proto)
		// Bytes the client pipelined behind its request fire no OnTraffic of their own.
		_ = w.gc.Wake(nil)
	case status >= 400 && status < 500:
		s.refuse(w, &wsframe.HTTPError{Status: status, Reason: "connection refused by the backend"}, "unauthorized")
	default:
		s.refuse(w, &wsframe.HTTPError{Status: 403, Reason: "connection refused by the backend"}, "unauthorized")
	}
}

// holdWhileAuthorizing leaves early bytes in gnet's buffer, up to a bound, while the
// connection waits for the backend's verdict or holds a poll. On the loop.
func (s *Server) holdWhileAuthorizing(w *wsConn, buffered int) {
	if buffered > maxHeldWhileAuthorizing {
		s.refuse(w, &wsframe.HTTPError{Status: 400, Reason: "too much data before the upgrade completed"}, "early_data")
	}
}

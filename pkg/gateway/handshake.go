package gateway

import (
	"errors"
	"strconv"
	"unsafe"

	"github.com/socketdock/socketdock/pkg/hub"
	"github.com/socketdock/socketdock/pkg/longpoll"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

// handshake serves the request at the start of buf: it upgrades /ws, answers /healthz and
// errors, or waits for more bytes. It returns the request's size once w is open.
func (s *Server) handshake(w *wsConn, buf []byte) int {
	// The request's strings alias buf: nothing from req may outlive this call uncopied.
	req, n, err := wsframe.ParseRequestInPlace(buf, s.opts.MaxHeaderBytes, s.opts.MaxHeaders, w.loop.headers)
	w.loop.headers = req.Headers[:0]
	if err == nil && n == 0 {
		return 0 // incomplete: the handshake timer bounds the wait
	}
	if err != nil {
		s.refuse(w, err, "bad_request")
		return 0
	}
	switch req.Path {
	case "/ws":
	case "/healthz":
		if req.Method != "GET" && req.Method != "HEAD" {
			s.respond(w, 405, "Allow: GET, HEAD\r\n", "method not allowed\n")
			return 0
		}
		s.respond(w, 200, "", "ok\n")
		return 0
	default:
		if s.opts.Poll && longpoll.IsPoll(req.Path) {
			return s.pollRequest(w, &req, buf, n)
		}
		s.respond(w, 404, "", "not found\n")
		return 0
	}
	accept, err := wsframe.CheckUpgradeAccept(&req)
	if err != nil {
		s.refuse(w, err, "bad_upgrade")
		return 0
	}
	if !s.originAllowed(req.Get("origin")) {
		s.refuse(w, &wsframe.HTTPError{Status: 403, Reason: "origin not allowed"}, "origin")
		return 0
	}
	if !s.admit(w) {
		return 0
	}

	var headers [][2]string
	var path string
	if s.opts.KeepRequest {
		headers = cloneHeaders(req.Headers)
		path = string(longpoll.AppendMetaPath(nil, req.Target)) // cb removed, as for a poll session
	}
	w.conn = s.opts.Hub.NewConn(w, w.gc.RemoteAddr(), headers, path) // gnet's address, already allocated
	// With a Linker the upstream answers the upgrade (link.go).
	if s.opts.Linker != nil {
		s.startLink(w, string(accept[:]), offeredProtocols(&req))
		return n
	}
	proto := s.pickSubprotocol(&req)
	if s.opts.Authorizer != nil {
		s.startAuthorize(w, string(accept[:]), proto)
		return n
	}
	s.open(w, string(accept[:]), proto) // open keeps no reference: the string stays on the stack
	return n
}

// open registers the connection with the hub (backend, then table), then writes the 101.
// In that order a failed write, whose OnClose may run inside Write, finds the connection
// registered and unregisters it: nothing closed stays in the table. On the loop.
func (s *Server) open(w *wsConn, accept, proto string) {
	w.state = stateOpen
	w.setPingSentAt(0) // deadline was the handshake's: an open connection has a ping at most
	// The handshake deadline's entry, when due first, serves as the first ping check (timer
	// works out the next from the connection's state): an idle connection keeps one entry.
	w.loop.wheel.ScheduleBy(w, w.loop.wheel.Now()+s.ticks(s.opts.PingInterval))
	s.opts.Hub.Open(w.conn)
	w.write(wsframe.AppendUpgradeResponse(w.loop.scratch(), accept, proto))
}

// admit takes a slot against the connection limits for w, or refuses the upgrade.
func (s *Server) admit(w *wsConn) bool {
	t, err := s.opts.Hub.Admit(w.gc.RemoteAddr())
	switch {
	case err == nil:
		w.ticket = t
		return true
	case errors.Is(err, hub.ErrDraining):
		s.refuse(w, &wsframe.HTTPError{Status: 503, Reason: err.Error()}, "draining")
	case errors.Is(err, hub.ErrMaxPerIP):
		s.refuse(w, &wsframe.HTTPError{Status: 503, Reason: "too many connections", Header: "Retry-After: 1\r\n"}, "max_connections_per_ip")
	default:
		s.refuse(w, &wsframe.HTTPError{Status: 503, Reason: "too many connections", Header: "Retry-After: 1\r\n"}, "max_connections")
	}
	return false
}

// refuse answers a request that will not be upgraded with its HTTP error, and counts it.
func (s *Server) refuse(w *wsConn, err error, reason string) {
	he, ok := err.(*wsframe.HTTPError)
	if !ok {
		he = &wsframe.HTTPError{Status: 400, Reason: err.Error()}
	}
	s.opts.Metrics.UpgradesRejected.WithLabelValues(reason).Inc()
	s.respond(w, he.Status, he.Header, he.Reason+"\n")
}

// respond writes a plain HTTP answer and closes the connection after it.
func (s *Server) respond(w *wsConn, status int, header, body string) {
	s.opts.Metrics.HTTPResponses.WithLabelValues(strconv.Itoa(status)).Inc()
	w.write(wsframe.AppendResponse(w.loop.scratch(), status, header, body))
	w.shut()
}

// cloneHeaders copies headers out of the read buffer: one allocation holds every name and
// value, one the slice.
func cloneHeaders(hs []wsframe.Header) [][2]string {
	size := 0
	for _, h := range hs {
		size += len(h.Name) + len(h.Value)
	}
	all := make([]byte, 0, size)
	for _, h := range hs {
		all = append(append(all, h.Name...), h.Value...)
	}
	text := unsafe.String(unsafe.SliceData(all), len(all))
	out := make([][2]string, len(hs))
	for i, h := range hs {
		out[i] = [2]string{text[:len(h.Name)], text[len(h.Name) : len(h.Name)+len(h.Value)]}
		text = text[len(h.Name)+len(h.Value):]
	}
	return out
}

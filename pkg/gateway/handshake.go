package gateway

import (
	"time"
	"unsafe"

	"github.com/socketdock/socketdock/pkg/conntable"
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
		s.respond(w, 404, "", "not found\n")
		return 0
	}
	accept, err := wsframe.CheckUpgrade(&req)
	if err != nil {
		s.refuse(w, err, "bad_upgrade")
		return 0
	}
	if s.draining.Load() {
		s.refuse(w, &wsframe.HTTPError{Status: 503, Reason: "server is shutting down"}, "draining")
		return 0
	}
	if !s.originAllowed(req.Get("origin")) {
		s.refuse(w, &wsframe.HTTPError{Status: 403, Reason: "origin not allowed"}, "origin")
		return 0
	}
	if s.opts.MaxConnectionsPerIP > 0 {
		w.remote = remoteIP(w.gc.RemoteAddr())
	}
	if reason := s.admit(w.remote); reason != "" {
		s.refuse(w, &wsframe.HTTPError{Status: 503, Reason: "too many connections", Header: "Retry-After: 1\r\n"}, reason)
		return 0
	}

	var headers [][2]string
	if s.opts.KeepHeaders {
		headers = cloneHeaders(req.Headers)
	}
	w.conn = &conntable.Conn{
		ID:          conntable.NewID(),
		ConnectedAt: time.Now().UnixNano(),
		RemoteAddr:  w.gc.RemoteAddr(), // gnet's own, already allocated
		Transport:   w,
		Headers:     headers,
	}
	proto := s.pickSubprotocol(&req)
	if s.opts.Authorizer != nil {
		s.startAuthorize(w, accept, proto)
		return n
	}
	s.open(w, accept, proto)
	return n
}

// open writes the 101 and announces the connection to the backend and the table. On the loop.
func (s *Server) open(w *wsConn, accept, proto string) {
	w.dec.MaxMessage = s.opts.MaxMessageSize
	w.state = stateOpen
	w.write(wsframe.AppendUpgradeResponse(w.loop.scratch(), accept, proto))
	w.loop.wheel.schedule(w, w.loop.wheel.now+s.ticks(s.opts.PingInterval))
	// The backend learns of the connection before the table can route a send to it.
	s.opts.Backend.Opened(w.conn)
	w.conn.Headers = nil // the backend has taken what it needs; idle connections keep no request
	s.opts.Table.Add(w.conn)
	s.log.Debug().Str("connection_id", w.conn.ID).Stringer("remote", w.conn.RemoteAddr).Msg("connected")
}

// admit counts an upgrade against the connection limits; it returns the reason for a refusal.
func (s *Server) admit(ip string) string {
	if n := s.upgraded.Add(1); s.opts.MaxConnections > 0 && n > int64(s.opts.MaxConnections) {
		s.upgraded.Add(-1)
		return "max_connections"
	}
	if max := s.opts.MaxConnectionsPerIP; max > 0 {
		s.perIPMu.Lock()
		defer s.perIPMu.Unlock()
		if s.perIP[ip] >= max {
			s.upgraded.Add(-1)
			return "max_connections_per_ip"
		}
		s.perIP[ip]++
	}
	return ""
}

func (s *Server) releaseIP(ip string) {
	if s.opts.MaxConnectionsPerIP <= 0 {
		return
	}
	s.perIPMu.Lock()
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.perIPMu.Unlock()
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
	s.opts.Metrics.HTTPResponses.WithLabelValues(statusLabel(status)).Inc()
	w.write(wsframe.AppendResponse(w.loop.scratch(), status, header, body))
	w.shut()
}

func statusLabel(status int) string {
	const digits = "0123456789"
	return string([]byte{digits[status/100%10], digits[status/10%10], digits[status%10]})
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

package upstream

import (
	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// With --connect-uri or --disconnect-uri beside --backend ws, an HTTP backend hears every
// connection's connect and disconnect (an audit trail) and nothing else. It gets a record of
// its own for each connection, so its per-connection state never meets the pair's, and a
// transport that cannot touch the client: a failed POST is logged by the HTTP backend and
// the proxying goes on (CONTRACT §9: notifications never block the proxying).

// auditConn is the record the audit backend sees for c: same id, address and request.
func auditConn(c *conntable.Conn, log zerolog.Logger) *conntable.Conn {
	return &conntable.Conn{
		ID:          c.ID,
		ConnectedAt: c.ConnectedAt,
		RemoteAddr:  c.RemoteAddr,
		Transport:   auditTransport{name: c.Transport.Name(), id: c.ID, log: log},
		Request:     c.Request,
	}
}

// auditTransport refuses sends and logs closes: the audit backend may not act on the client.
type auditTransport struct {
	name, id string
	log      zerolog.Logger
}

func (t auditTransport) Send(conntable.MessageType, []byte) error { return conntable.ErrClosing }

func (t auditTransport) Close(code int, reason string) {
	t.log.Warn().Str("connection_id", t.id).Int("code", code).Str("reason", reason).
		Msg("connect/disconnect notification failed; the proxied connection goes on")
}

func (t auditTransport) Name() string { return t.name }

package backend

import (
	"time"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// Linker is a Backend that links each connection to a peer of its own, opened before the
// client's upgrade completes: the WebSocket upstream (CONTRACT §9). The gateway calls Link off
// the event loop while the client waits for its 101 (or its poll create's answer); c is not
// yet in the connection table, and c.Headers() and c.Path() hold the client's request.
//
// After a Link that answered 101, the backend hears Opened and later Closed for c, or only
// Closed when the client left (or the server stopped) before the upgrade completed; either
// way Closed releases the link. A Link that answered anything else holds nothing.
type Linker interface {
	Link(c *conntable.Conn, req LinkRequest) LinkResult
	// LinkTimeout is the longest a Link call takes; the gateway's handshake timer waits for it.
	LinkTimeout() time.Duration
	// TargetAllowed reports whether a poll create may name target instead of the configured URL.
	TargetAllowed(target string) bool
}

// LinkRequest is what Link needs beyond the connection's request headers and path.
type LinkRequest struct {
	Protocols []string // the client's Sec-WebSocket-Protocol offer, in its order
	Target    string   // a poll create's allowed target; "" for the configured upstream
	Poll      bool     // a poll session: its request path is not the client's, only its query is passed on
}

// LinkResult is Link's answer.
type LinkResult struct {
	Status      int    // 101 linked; else the HTTP status the client gets (401, 403, 404, 502 or 504)
	Reason      string // a short text for the client's error response
	Subprotocol string // the upstream's choice among the client's offer, for the client's 101
}

// Linked reports whether the link is up.
func (r LinkResult) Linked() bool { return r.Status == 101 }

package config

// BackendKind names what the relay hands connections to (--backend).
type BackendKind string

// The backends: echo, HTTP POSTs (CONTRACT §3), a WebSocket upstream (§9).
const (
	BackendLoopback BackendKind = "loopback"
	BackendHTTP     BackendKind = "http"
	BackendWS       BackendKind = "ws"
)

// Backends lists every backend kind.
var Backends = []BackendKind{BackendLoopback, BackendHTTP, BackendWS}

func (k BackendKind) valid() bool {
	for _, b := range Backends {
		if k == b {
			return true
		}
	}
	return false
}

// ConnectMode says when the backend hears of a new connection (--connect-mode).
type ConnectMode string

// The connect modes: after the upgrade (compat), or before it, deciding on it.
const (
	ConnectNotify    ConnectMode = "notify"
	ConnectAuthorize ConnectMode = "authorize"
)

// Package limits holds the default limits several components share, so that each is set in
// one place: a component's zero option means the value here.
package limits

const (
	// MaxMessageSize is the largest message either way: the Python SocketDock's 4 MiB.
	MaxMessageSize = 4 << 20
	// MaxHeaderBytes bounds a request head on the public port.
	MaxHeaderBytes = 8 << 10
	// MaxInboundBytes is what one client may have queued or in flight to the backend.
	MaxInboundBytes = 8 << 20
	// MaxBatchBytes is the message data one long-poll answer carries.
	MaxBatchBytes = 1 << 20
	// outboundSlack is room beyond one largest message in a client's outbound bound: its
	// frame header, and a close frame behind it.
	outboundSlack = 1024
)

// MaxOutboundBytes is the default outbound bound of a client for a message limit: one
// largest message always fits.
func MaxOutboundBytes(maxMessage int) int { return maxMessage + outboundSlack }

// Package backend delivers client connections' events to whatever serves them: the loopback
// echo, or an HTTP backend reached with fasthttp. Later: a WebSocket upstream, NATS.
package backend

import (
	"context"
	"errors"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// ErrInboundFull means a client sends faster than the backend accepts and its bounded inbound
// queue is full; the gateway closes it with 1013.
var ErrInboundFull = errors.New("inbound queue full")

// Backend receives client connections' events, in the order they happen on each connection.
// Calls for one Conn never overlap (a transport serialises them); calls for different
// connections may run at once. None may block: they run on event loops.
type Backend interface {
	// Opened announces a connection that completed its upgrade.
	Opened(c *conntable.Conn)
	// Message hands over one complete client message, the empty one included (each backend
	// decides what an empty message means); payload is valid only during the call. A backend
	// that answers at once returns the reply (its payload may alias payload), and the
	// transport delivers it before reading on.
	Message(c *conntable.Conn, t conntable.MessageType, payload []byte) (reply Reply, replied bool, err error)
	// Closed announces that the connection ended, with the close code that ended it.
	Closed(c *conntable.Conn, code int, reason string)
	// Drain waits until every queued event has been delivered, or ctx ends.
	Drain(ctx context.Context) error
}

// Reply is a message for the client that a backend produced synchronously.
type Reply struct {
	Type    conntable.MessageType
	Payload []byte
}

// Loopback echoes every message to its sender with the same type and bytes, the empty one
// included (CONTRACT §5).
type Loopback struct{}

// Opened does nothing: loopback has no one to tell.
func (Loopback) Opened(*conntable.Conn) {}

// Message returns the message itself as the reply.
func (Loopback) Message(_ *conntable.Conn, t conntable.MessageType, payload []byte) (Reply, bool, error) {
	return Reply{Type: t, Payload: payload}, true, nil
}

// Closed does nothing.
func (Loopback) Closed(*conntable.Conn, int, string) {}

// Drain returns at once: loopback queues nothing.
func (Loopback) Drain(context.Context) error { return nil }

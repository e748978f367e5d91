// Package backend delivers client connections' events to whatever serves them: the loopback
// echo, or an HTTP backend reached with fasthttp. Later: a WebSocket upstream, NATS.
package backend

import (
	"context"
	"errors"

	"github.com/gobwas/ws"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// ErrInboundFull means a client sends faster than the backend accepts and its bounded inbound
// queue is full; the gateway closes it with 1013.
var ErrInboundFull = errors.New("inbound queue full")

// Backend receives client connections' events. The gateway calls every method on its event
// loop, in the order events happen on that connection: none may block.
type Backend interface {
	// Opened announces a connection that completed its upgrade.
	Opened(c *conntable.Conn)
	// Message hands over one complete, non-empty client message; payload is valid only
	// during the call. A backend that answers at once returns the reply (its payload may
	// alias payload), and the gateway writes it before reading on.
	Message(c *conntable.Conn, op ws.OpCode, payload []byte) (reply Reply, replied bool, err error)
	// Closed announces that the connection ended, with the close code that ended it.
	Closed(c *conntable.Conn, code int, reason string)
	// Drain waits until every queued event has been delivered, or ctx ends.
	Drain(ctx context.Context) error
}

// Reply is a message for the client that a backend produced synchronously.
type Reply struct {
	Op      ws.OpCode
	Payload []byte
}

// Loopback echoes every message to its sender with the same opcode and bytes.
type Loopback struct{}

// Opened does nothing: loopback has no one to tell.
func (Loopback) Opened(*conntable.Conn) {}

// Message returns the message itself as the reply.
func (Loopback) Message(_ *conntable.Conn, op ws.OpCode, payload []byte) (Reply, bool, error) {
	return Reply{Op: op, Payload: payload}, true, nil
}

// Closed does nothing.
func (Loopback) Closed(*conntable.Conn, int, string) {}

// Drain returns at once: loopback queues nothing.
func (Loopback) Drain(context.Context) error { return nil }

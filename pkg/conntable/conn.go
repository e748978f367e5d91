// Package conntable holds the relay's live client connections: a sharded id → connection map
// that the control API reads concurrently, and the Conn record every transport and backend
// shares. It does no I/O of its own.
package conntable

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"sync/atomic"

	"github.com/gobwas/ws"
)

// Errors a Transport's Send returns; the control API maps each to an HTTP status.
var (
	ErrClosing      = errors.New("connection is closing")       // 410
	ErrSlowConsumer = errors.New("client outbound buffer full") // 503
	ErrTooBig       = errors.New("message over the size limit") // 413
)

// Transport is the client side of a connection: a WebSocket on the gnet loop today, a
// long-poll session later. Both methods are safe from any goroutine and never block.
type Transport interface {
	// Send queues one message for the client; payload is copied, so the caller may reuse it
	// when Send returns. It returns nil once the message is written or accepted into the
	// bounded outbound buffer.
	Send(op ws.OpCode, payload []byte) error
	// Close starts closing the client with a close code and a short reason. Later calls are
	// ignored. The backend hears about it through Backend.Closed once the client is gone.
	Close(code int, reason string)
}

// Conn is one client connection as the rest of the relay sees it.
type Conn struct {
	ID          string
	ConnectedAt int64    // Unix nanoseconds: 8 bytes where a time.Time takes 24
	RemoteAddr  net.Addr // the client's ip:port; formatted only when asked for
	Transport   Transport

	// Headers of the upgrade request (names lower-cased), kept only until the backend has
	// used them for its connect notification; the backend clears them.
	Headers [][2]string

	// BackendState is the backend's per-connection state, set and read by the backend only
	// from the event loop's calls (Opened, Message, Closed).
	BackendState any

	messagesIn  atomic.Uint64
	messagesOut atomic.Uint64
}

// CountIn records a complete message received from the client.
func (c *Conn) CountIn() { c.messagesIn.Add(1) }

// CountOut records a complete message sent to the client.
func (c *Conn) CountOut() { c.messagesOut.Add(1) }

// MessagesIn is the number of complete messages received from the client.
func (c *Conn) MessagesIn() uint64 { return c.messagesIn.Load() }

// MessagesOut is the number of complete messages sent to the client.
func (c *Conn) MessagesOut() uint64 { return c.messagesOut.Load() }

// IDLen is the length of a connection id: 128 random bits as lower-case hex.
const IDLen = 32

// NewID returns a fresh connection id from crypto/rand.
func NewID() string {
	var b [IDLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+); it crashes the process instead
	var h [IDLen]byte
	hex.Encode(h[:], b[:])
	return string(h[:]) // the one allocation an id costs
}

// ValidID reports whether s has the shape of a connection id.
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if hexVal(s[i]) < 0 {
			return false
		}
	}
	return true
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

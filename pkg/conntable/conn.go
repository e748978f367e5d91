// Package conntable holds the relay's live client connections: a sharded id → connection map
// that the control API reads concurrently, the Conn record every transport and backend
// shares, and their common vocabulary (message types, close codes). It does no I/O.
package conntable

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"sync/atomic"
	"unsafe"
)

// Errors a Transport's Send returns; the control API maps each to an HTTP status.
var (
	ErrClosing      = errors.New("connection is closing")       // 410
	ErrSlowConsumer = errors.New("client outbound buffer full") // 503
	ErrTooBig       = errors.New("message over the size limit") // 413
)

// MessageType is a whole message's kind. The values are RFC 6455's opcodes, so the WebSocket
// transport converts without a table.
type MessageType uint8

const (
	Text   MessageType = 1 // UTF-8 text
	Binary MessageType = 2 // any bytes
)

func (t MessageType) String() string {
	if t == Text {
		return "text"
	}
	return "binary"
}

// TypeForContent picks a message type from a Content-Type: text/* (any parameters) is text,
// anything else, or none, binary (CONTRACT §4: DIDComm media types arrive as binary).
func TypeForContent(contentType []byte) MessageType {
	if len(contentType) >= 5 && asciiLower(contentType[0]) == 't' && asciiLower(contentType[1]) == 'e' &&
		asciiLower(contentType[2]) == 'x' && asciiLower(contentType[3]) == 't' && contentType[4] == '/' {
		return Text
	}
	return Binary
}

func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Close codes the relay sends or reports (CONTRACT §7), whatever the transport.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseNoStatus        = 1005 // never sent; reported when a close frame had no code
	CloseAbnormal        = 1006 // never sent; reported when the client just vanished
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseTooBig          = 1009
	CloseInternalError   = 1011
	CloseTryAgainLater   = 1013
	CloseBadGateway      = 1014
)

// Transport is the client side of one connection: a WebSocket on an event loop, or a
// long-poll session. Send and Close are safe from any goroutine; they may wait briefly for
// the transport's own lock or event loop, never for the client. A WebSocket's Send waits for
// its event loop to write, so code running on that loop (the upstream backend) must use the
// gateway's SendOnLoop instead: Send there would wait on itself until its one-second limit.
type Transport interface {
	// Send queues one message for the client; payload is copied, so the caller may reuse it
	// when Send returns. It returns nil once the message is written or accepted into the
	// bounded outbound buffer, else ErrClosing, ErrSlowConsumer or ErrTooBig.
	Send(t MessageType, payload []byte) error
	// Close starts closing the client with a close code and a short reason. Later calls are
	// ignored. The backend hears about it through Backend.Closed once the client is gone.
	Close(code int, reason string)
	// Name is the transport's name in meta.transport: "ws" or "poll".
	Name() string
}

// Conn is one client connection as the rest of the relay sees it. Every idle connection
// holds one, so it is kept to 128 bytes with its id (TestConnSize).
type Conn struct {
	ID          string   // made by NewConn, it points into the record's own id array
	ConnectedAt int64    // Unix nanoseconds: 8 bytes where a time.Time takes 24
	RemoteAddr  net.Addr // the client's ip:port; formatted only when asked for
	Transport   Transport

	// Request is the request that opened the connection, kept only until the backend has
	// used it for its connect notification (the lifecycle clears it after Backend.Opened),
	// and nil when nothing needs it: one pointer where an idle connection would otherwise
	// carry an empty slice and string (40 bytes).
	Request *Request

	// BackendState is the backend's per-connection state. Calls for one Conn never overlap,
	// so the backend needs no lock to set it in Opened and read it later.
	BackendState any

	messagesIn  atomic.Uint64 // and endedBit: the end-of-connection bookkeeping has run
	messagesOut atomic.Uint64

	id [IDLen]byte // ID's bytes, when made by NewConn
}

// endedBit in messagesIn marks a connection whose end was booked: a flag of its own would
// take a word, and a count never reaches 2^63.
const endedBit = 1 << 63

// NewConn returns a record whose ID is newID's, or a fresh random one when newID is nil. The
// id's bytes are inside the record: one allocation where a separate string took a second
// (32 bytes). A string taken from ID keeps the whole record alive.
func NewConn(newID func() string) *Conn {
	c := &Conn{}
	if newID == nil {
		fillID(&c.id)
	} else if id := newID(); len(id) == IDLen {
		copy(c.id[:], id)
	} else {
		c.ID = id
		return c
	}
	c.ID = unsafe.String(&c.id[0], IDLen) // the array is never written again
	return c
}

// Request is what a backend may need of the request that opened a connection.
type Request struct {
	Headers [][2]string // names lower-cased
	Path    string      // path and query
}

// Headers are the opening request's headers, nil once the backend has used them.
func (c *Conn) Headers() [][2]string {
	if c.Request == nil {
		return nil
	}
	return c.Request.Headers
}

// Path is the opening request's path and query, "" once the backend has used it.
func (c *Conn) Path() string {
	if c.Request == nil {
		return ""
	}
	return c.Request.Path
}

// MarkEnded reports true the first time it is called: the caller does the once-only
// bookkeeping of a connection's end.
func (c *Conn) MarkEnded() bool { return c.messagesIn.Or(endedBit)&endedBit == 0 }

// CountIn records a complete message received from the client.
func (c *Conn) CountIn() { c.messagesIn.Add(1) }

// CountOut records a complete message sent to the client.
func (c *Conn) CountOut() { c.messagesOut.Add(1) }

// MessagesIn is the number of complete messages received from the client.
func (c *Conn) MessagesIn() uint64 { return c.messagesIn.Load() &^ endedBit }

// MessagesOut is the number of complete messages sent to the client.
func (c *Conn) MessagesOut() uint64 { return c.messagesOut.Load() }

// IDLen is the length of a connection id: 128 random bits as lower-case hex.
const IDLen = 32

// NewID returns a fresh connection id from crypto/rand.
func NewID() string {
	var h [IDLen]byte
	fillID(&h)
	return string(h[:]) // the one allocation an id costs
}

// fillID writes a fresh id from crypto/rand into h.
func fillID(h *[IDLen]byte) {
	var b [IDLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+); it crashes the process instead
	hex.Encode(h[:], b[:])
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

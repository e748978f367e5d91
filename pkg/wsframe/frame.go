// Package wsframe implements the server side of RFC 6455 on byte slices: the opening
// handshake, frame headers, unmasking, message assembly and close codes. It does no I/O,
// so the event loop feeds it whatever bytes have arrived and it says what they hold.
package wsframe

import (
	"encoding/binary"
	"math"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// Opcodes, re-exported so callers need not import gobwas/ws for them.
const (
	OpContinuation = ws.OpContinuation
	OpText         = ws.OpText
	OpBinary       = ws.OpBinary
	OpClose        = ws.OpClose
	OpPing         = ws.OpPing
	OpPong         = ws.OpPong
)

// CloseError is a reason to fail the connection with a close code.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return e.Reason }

var (
	errReservedBits  = &CloseError{conntable.CloseProtocolError, "reserved bits set"}
	errReservedOp    = &CloseError{conntable.CloseProtocolError, "reserved opcode"}
	errUnmasked      = &CloseError{conntable.CloseProtocolError, "client frame not masked"}
	errMasked        = &CloseError{conntable.CloseProtocolError, "server frame masked"}
	errControlLong   = &CloseError{conntable.CloseProtocolError, "control frame over 125 bytes"}
	errControlFrag   = &CloseError{conntable.CloseProtocolError, "fragmented control frame"}
	errNoContinue    = &CloseError{conntable.CloseProtocolError, "continuation without a message"}
	errContinue      = &CloseError{conntable.CloseProtocolError, "new message inside a fragmented one"}
	errLength        = &CloseError{conntable.CloseProtocolError, "invalid payload length"}
	errCloseLength   = &CloseError{conntable.CloseProtocolError, "close payload of 1 byte"}
	errCloseCode     = &CloseError{conntable.CloseProtocolError, "invalid close code"}
	errCloseUTF8     = &CloseError{conntable.CloseInvalidPayload, "invalid UTF-8 in close reason"}
	errTextUTF8      = &CloseError{conntable.CloseInvalidPayload, "invalid UTF-8 in text message"}
	errMessageTooBig = &CloseError{conntable.CloseTooBig, "message too big"}
)

// ParseHeader reads a client frame header from the start of b. It returns n == 0 when b
// holds only part of the header. The returned error, if any, is a *CloseError.
func ParseHeader(b []byte) (h ws.Header, n int, err error) { return parseHeader(b, false) }

// parseHeader reads a frame header; fromServer says which side sent it (RFC 6455 §5.1:
// clients mask every frame, servers none).
func parseHeader(b []byte, fromServer bool) (h ws.Header, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		h.Length = int64(binary.BigEndian.Uint16(b[2:]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		u := binary.BigEndian.Uint64(b[2:])
		if u > math.MaxInt64 {
			return h, 0, errLength
		}
		h.Length = int64(u)
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, checkHeader(h, fromServer)
}

func checkHeader(h ws.Header, fromServer bool) error {
	switch {
	case h.Rsv != 0:
		return errReservedBits
	case h.OpCode.IsReserved():
		return errReservedOp
	case !h.Masked && !fromServer:
		return errUnmasked
	case h.Masked && fromServer:
		return errMasked
	case h.OpCode.IsControl() && h.Length > ws.MaxControlFramePayloadSize:
		return errControlLong
	case h.OpCode.IsControl() && !h.Fin:
		return errControlFrag
	}
	return nil
}

// AppendHeader appends an unmasked (server) frame header.
func AppendHeader(dst []byte, fin bool, op ws.OpCode, length int) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	switch {
	case length < 126:
		return append(dst, b0, byte(length))
	case length <= math.MaxUint16:
		return append(dst, b0, 126, byte(length>>8), byte(length))
	default:
		dst = append(dst, b0, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(length))
	}
}

// AppendFrame appends one complete unmasked frame.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	return append(AppendHeader(dst, true, op, len(payload)), payload...)
}

// FrameSize is the encoded size of an unmasked frame with the given payload length.
func FrameSize(length int) int {
	switch {
	case length < 126:
		return 2 + length
	case length <= math.MaxUint16:
		return 4 + length
	default:
		return 10 + length
	}
}

// AppendClose appends a close frame. Code 0 sends an empty close payload. The reason is cut
// to fit the 125-byte control payload limit, on a rune boundary.
func AppendClose(dst []byte, code int, reason string) []byte {
	if code == 0 {
		return AppendHeader(dst, true, OpClose, 0)
	}
	if len(reason) > ws.MaxControlFramePayloadSize-2 {
		reason = reason[:ws.MaxControlFramePayloadSize-2]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	dst = AppendHeader(dst, true, OpClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}

// ParseClosePayload validates a received close payload and returns its code and reason.
// An empty payload gives conntable.CloseNoStatus.
func ParseClosePayload(p []byte) (code int, reason string, err error) {
	switch len(p) {
	case 0:
		return conntable.CloseNoStatus, "", nil
	case 1:
		return 0, "", errCloseLength
	}
	code = int(binary.BigEndian.Uint16(p))
	if !ValidCloseCode(code) {
		return 0, "", errCloseCode
	}
	if !utf8.Valid(p[2:]) {
		return 0, "", errCloseUTF8
	}
	return code, string(p[2:]), nil
}

// ValidCloseCode reports whether a peer may send code in a close frame (RFC 6455 §7.4).
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

package wsframe

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The client side of RFC 6455, for the relay's own connections to a WebSocket upstream:
// masked frames out, the server's 101 in. Decoding the server's frames is Decoder with
// FromServer set.

// AppendMaskedFrame appends one complete client frame: header, mask key, and payload masked
// with key (RFC 6455 §5.3). payload is not changed.
func AppendMaskedFrame(dst []byte, op ws.OpCode, payload []byte, key [4]byte) []byte {
	dst = appendMaskedHeader(dst, op, len(payload), key)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], key, 0)
	return dst
}

// MaskedFrameSize is the encoded size of a client frame with the given payload length.
func MaskedFrameSize(length int) int { return FrameSize(length) + 4 }

// AppendMaskedClose appends a client close frame. Code 0 sends an empty close payload; the
// reason is cut to fit the control frame limit, on a rune boundary.
func AppendMaskedClose(dst []byte, code int, reason string, key [4]byte) []byte {
	if code == 0 {
		return appendMaskedHeader(dst, OpClose, 0, key)
	}
	reason = fitReason(reason)
	var p [ws.MaxControlFramePayloadSize]byte
	binary.BigEndian.PutUint16(p[:], uint16(code))
	n := 2 + copy(p[2:], reason)
	return AppendMaskedFrame(dst, OpClose, p[:n], key)
}

func appendMaskedHeader(dst []byte, op ws.OpCode, length int, key [4]byte) []byte {
	b0 := byte(op) | 0x80
	switch {
	case length < 126:
		dst = append(dst, b0, 0x80|byte(length))
	case length <= math.MaxUint16:
		dst = append(dst, b0, 0x80|126, byte(length>>8), byte(length))
	default:
		dst = append(dst, b0, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(length))
	}
	return append(dst, key[:]...)
}

// fitReason cuts a close reason to the 123 bytes a close frame holds, on a rune boundary.
func fitReason(reason string) string {
	if len(reason) <= ws.MaxControlFramePayloadSize-2 {
		return reason
	}
	reason = reason[:ws.MaxControlFramePayloadSize-2]
	for len(reason) > 0 && !utf8.ValidString(reason) {
		reason = reason[:len(reason)-1]
	}
	return reason
}

// Response is a parsed HTTP/1.1 response head. Its strings are copies.
type Response struct {
	Status  int
	Headers []Header // names lower-cased
}

// Get returns the first value of the header with the lower-case name.
func (r *Response) Get(name string) string {
	for _, h := range r.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// Values returns every value of the header with the lower-case name.
func (r *Response) Values(name string) []string {
	var out []string
	for _, h := range r.Headers {
		if h.Name == name {
			out = append(out, h.Value)
		}
	}
	return out
}

// ErrBadResponse is a response head that is not HTTP/1.1.
var ErrBadResponse = &HTTPError{Status: 502, Reason: "malformed response from the upstream"}

// ParseResponse parses the response head at the start of b. It returns n == 0 while the head
// is incomplete, and the head's size once it is whole; the bytes after it (frames the server
// sent right behind its 101) are not touched. maxSize bounds the head (0: MaxRequestHeader).
func ParseResponse(b []byte, maxSize int) (resp Response, n int, err error) {
	end, err := headEnd(b, maxSize)
	if end <= 0 {
		if err != nil {
			err = ErrBadResponse
		}
		return resp, 0, err
	}
	head := string(b[:end-4])
	line, rest, _ := strings.Cut(head, "\r\n")
	proto, line, ok := strings.Cut(line, " ")
	code, _, _ := strings.Cut(line, " ")
	status, convErr := strconv.Atoi(code)
	if !ok || (proto != "HTTP/1.1" && proto != "HTTP/1.0") || len(code) != 3 || convErr != nil || status < 100 {
		return resp, 0, ErrBadResponse
	}
	resp.Status = status
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\r\n")
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || !IsToken(name) {
			return resp, 0, ErrBadResponse
		}
		resp.Headers = append(resp.Headers, Header{Name: strings.ToLower(name), Value: strings.Trim(value, " \t")})
	}
	return resp, end, nil
}

// UpgradeError is a 101 that does not complete the client's handshake.
type UpgradeError struct{ Reason string }

func (e *UpgradeError) Error() string { return "bad upgrade response: " + e.Reason }

// CheckUpgradeResponse checks a server's 101 against the client's key and subprotocol offer
// (RFC 6455 §4.1) and returns the subprotocol the server chose ("" for none). The client
// offers no extensions, so any the server names fail the handshake.
func CheckUpgradeResponse(r *Response, key string, offered []string) (subprotocol string, err error) {
	switch {
	case r.Status != 101:
		return "", &UpgradeError{"status " + strconv.Itoa(r.Status)}
	case !HasToken(r.Get("upgrade"), "websocket"):
		return "", &UpgradeError{"no Upgrade: websocket"}
	case !HasToken(r.Get("connection"), "upgrade"):
		return "", &UpgradeError{"no Connection: upgrade"}
	case r.Get("sec-websocket-accept") != AcceptKey(key):
		return "", &UpgradeError{"wrong Sec-WebSocket-Accept"}
	case r.Get("sec-websocket-extensions") != "":
		return "", &UpgradeError{"extensions that were not offered"}
	}
	chosen := r.Values("sec-websocket-protocol")
	switch {
	case len(chosen) == 0:
		return "", nil
	case len(chosen) > 1 || strings.Contains(chosen[0], ","):
		return "", &UpgradeError{"more than one subprotocol"}
	}
	for _, p := range offered {
		if p == chosen[0] {
			return p, nil
		}
	}
	return "", &UpgradeError{"subprotocol " + strconv.Quote(chosen[0]) + " was not offered"}
}

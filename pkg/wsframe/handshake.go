package wsframe

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"unsafe"
)

// MaxRequestHeader is the default limit on the size of an HTTP request head.
const MaxRequestHeader = 8192

// HTTPError is a request the server answers with a plain HTTP status instead of an upgrade.
type HTTPError struct {
	Status int
	Reason string
	Header string // extra response header lines, each ending in \r\n
}

func (e *HTTPError) Error() string { return strconv.Itoa(e.Status) + " " + e.Reason }

var (
	errBadRequestLine = &HTTPError{Status: 400, Reason: "malformed request line"}
	errBadHeader      = &HTTPError{Status: 400, Reason: "malformed header line"}
	errHeadTooLarge   = &HTTPError{Status: 431, Reason: "request header too large"}
	errHTTPVersion    = &HTTPError{Status: 505, Reason: "HTTP/1.1 required"}
)

// Header is one request header with its name lower-cased.
type Header struct {
	Name, Value string
}

// Request is a parsed HTTP/1.x request head.
type Request struct {
	Method  string
	Target  string // as sent, with the query
	Path    string // Target without the query
	Headers []Header
}

// Get returns the first value of the header with the lower-case name.
func (r *Request) Get(name string) string {
	for _, h := range r.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// ParseRequest parses the request head at the start of b. It returns n == 0 while the head is
// incomplete, and n = the head's size (through the blank line) once it is whole; bytes after
// it (pipelined frames) are not touched. maxSize bounds the head (0: MaxRequestHeader). The
// request owns its strings.
func ParseRequest(b []byte, maxSize int) (req Request, n int, err error) {
	end, err := headEnd(b, maxSize)
	if end <= 0 {
		return req, 0, err
	}
	return ParseRequestInPlace(append([]byte(nil), b[:end]...), maxSize, nil)
}

// ParseRequestInPlace is ParseRequest without copying, for the event loop: it lower-cases
// header names inside b, every string in req aliases b (valid only while b is), and
// req.Headers reuses headers' storage. Copy whatever outlives b.
func ParseRequestInPlace(b []byte, maxSize int, headers []Header) (req Request, n int, err error) {
	end, err := headEnd(b, maxSize)
	if end <= 0 {
		return req, 0, err
	}
	raw := b[:end-4]
	for i, inName, lineStart := 0, false, false; i < len(raw); i++ { // the request line keeps its case
		switch c := raw[i]; {
		case lineStart:
			inName, lineStart = true, false
			fallthrough
		case inName:
			if c == ':' || c == '\r' {
				inName = false
			} else if 'A' <= c && c <= 'Z' {
				raw[i] = c + 'a' - 'A'
			}
		}
		if raw[i] == '\n' {
			lineStart = true
		}
	}
	head := unsafe.String(unsafe.SliceData(raw), len(raw))
	line, rest, _ := strings.Cut(head, "\r\n")
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || method == "" || target == "" || !validToken(method) || strings.ContainsAny(target, " \x00") {
		return req, 0, errBadRequestLine
	}
	switch proto {
	case "HTTP/1.1":
	case "HTTP/1.0":
		// Answered (never upgraded) so old clients get a clear status.
	default:
		if !strings.HasPrefix(proto, "HTTP/") {
			return req, 0, errBadRequestLine
		}
		return req, 0, errHTTPVersion
	}
	req.Method, req.Target = method, target
	req.Path, _, _ = strings.Cut(target, "?")
	req.Headers = headers[:0]
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\r\n")
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || !validToken(name) {
			return req, 0, errBadHeader
		}
		req.Headers = append(req.Headers, Header{Name: name, Value: strings.Trim(value, " \t")})
	}
	if proto == "HTTP/1.0" {
		return req, end, errHTTPVersion
	}
	return req, end, nil
}

// headEnd finds the end of the request head (after its blank line): 0 while incomplete.
func headEnd(b []byte, maxSize int) (int, error) {
	if maxSize <= 0 {
		maxSize = MaxRequestHeader
	}
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > maxSize {
			return 0, errHeadTooLarge
		}
		return 0, nil
	}
	if end+4 > maxSize {
		return 0, errHeadTooLarge
	}
	return end + 4, nil
}

// validToken reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// ErrNotUpgrade marks a GET without the WebSocket upgrade headers (answered 426).
var ErrNotUpgrade = errors.New("not a websocket upgrade")

// CheckUpgrade validates a WebSocket opening handshake (RFC 6455 §4.2.1) and returns the
// Sec-WebSocket-Accept value for it.
func CheckUpgrade(r *Request) (accept string, err error) {
	if r.Method != "GET" {
		return "", &HTTPError{Status: 405, Reason: "method not allowed", Header: "Allow: GET\r\n"}
	}
	if !hasToken(r.Get("upgrade"), "websocket") || !hasToken(r.Get("connection"), "upgrade") {
		return "", &HTTPError{Status: 426, Reason: "websocket upgrade required",
			Header: "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"}
	}
	if r.Get("host") == "" {
		return "", &HTTPError{Status: 400, Reason: "missing Host header"}
	}
	if r.Get("sec-websocket-version") != "13" {
		return "", &HTTPError{Status: 426, Reason: "unsupported websocket version", Header: "Sec-WebSocket-Version: 13\r\n"}
	}
	key := r.Get("sec-websocket-key")
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		return "", &HTTPError{Status: 400, Reason: "invalid Sec-WebSocket-Key"}
	}
	return AcceptKey(key), nil
}

// hasToken reports whether the comma-separated header value lists token (case-insensitive).
func hasToken(value, token string) bool {
	for value != "" {
		var t string
		t, value, _ = strings.Cut(value, ",")
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// AcceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func AcceptKey(key string) string {
	const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	var in [64 + len(guid)]byte // keys are 24 bytes; a longer one spills to the heap
	sum := sha1.Sum(append(append(in[:0], key...), guid...))
	var out [28]byte
	base64.StdEncoding.Encode(out[:], sum[:])
	return string(out[:])
}

// AppendUpgradeResponse appends the 101 response. subprotocol may be empty.
func AppendUpgradeResponse(dst []byte, accept, subprotocol string) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = append(dst, accept...)
	if subprotocol != "" {
		dst = append(dst, "\r\nSec-WebSocket-Protocol: "...)
		dst = append(dst, subprotocol...)
	}
	return append(dst, "\r\n\r\n"...)
}

// AppendResponse appends a complete plain-text HTTP response that closes the connection.
// extraHeader is zero or more header lines, each ending in \r\n.
func AppendResponse(dst []byte, status int, extraHeader, body string) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, statusText(status)...)
	dst = append(dst, "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, extraHeader...)
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

func statusText(status int) string {
	switch status {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 426:
		return "Upgrade Required"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 503:
		return "Service Unavailable"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Error"
}

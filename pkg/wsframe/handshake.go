package wsframe

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"unsafe"
)

// MaxRequestHeader is the default limit on the size of an HTTP request head.
const MaxRequestHeader = 8192

// DefaultMaxHeaders is the default limit on the header lines of a request head: far above
// what browsers and proxies send (20-40), far below the ~1,500 an 8 KiB head can hold.
const DefaultMaxHeaders = 100

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
	errBadHeaderValue = &HTTPError{Status: 400, Reason: "control character in a header value"}
	errObsFold        = &HTTPError{Status: 400, Reason: "folded header line"}
	errBadLineEnd     = &HTTPError{Status: 400, Reason: "lines must end in CRLF"}
	errNUL            = &HTTPError{Status: 400, Reason: "NUL in the request head"}
	errHeadTooLarge   = &HTTPError{Status: 431, Reason: "request header too large"}
	errTooManyHeaders = &HTTPError{Status: 431, Reason: "too many header fields"}
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

// ParseRequestInPlace parses the request head at the start of b. It returns n == 0 while the
// head is incomplete, and n = the head's size (through the blank line) once it is whole;
// bytes after it (pipelined frames, a body) are not touched. maxSize bounds the head (0: MaxRequestHeader),
// maxHeaders its header lines (0: DefaultMaxHeaders).
//
// The head is held to RFC 9112 strictly, so that no proxy in front can read other headers
// than the relay does (400 otherwise): every line ends in CRLF (no bare LF, RFC 9112 §2.2
// allows either choice; no bare CR anywhere); no NUL or other control character but HTAB in
// a value (RFC 9110 §5.5); no obs-fold (§5.2); names are tokens with no space before the
// colon (§5.1). NUL, bare CR and bare LF are refused as soon as they arrive, before the head
// is complete.
//
// It copies nothing, for the event loop: it lower-cases header names inside b, every string
// in req aliases b (valid only while b is), and req.Headers reuses headers' storage. Copy
// whatever outlives b.
func ParseRequestInPlace(b []byte, maxSize, maxHeaders int, headers []Header) (req Request, n int, err error) {
	end, err := headEnd(b, maxSize)
	if end <= 0 {
		return req, 0, err
	}
	if maxHeaders <= 0 {
		maxHeaders = DefaultMaxHeaders
	}
	raw := b[:end-2] // every line with its CRLF; the blank line dropped
	eol := bytes.Index(raw, crlf)
	method, target, proto, ok := splitRequestLine(raw[:eol])
	if !ok {
		return req, 0, errBadRequestLine
	}
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return req, 0, errHTTPVersion // HTTP/2.0, HTTP/0.9, ...
	}
	req.Method, req.Target = method, target
	req.Path, _, _ = strings.Cut(target, "?")
	req.Headers = headers[:0]
	for rest := raw[eol+2:]; len(rest) > 0; {
		eol := bytes.Index(rest, crlf)
		line := rest[:eol]
		rest = rest[eol+2:]
		if len(req.Headers) == maxHeaders {
			return req, 0, errTooManyHeaders
		}
		h, err := parseHeaderLine(line)
		if err != nil {
			return req, 0, err
		}
		req.Headers = append(req.Headers, h)
	}
	if proto == "HTTP/1.0" {
		return req, end, errHTTPVersion // answered (never upgraded) so old clients get a clear status
	}
	return req, end, nil
}

var crlf = []byte("\r\n")

// splitRequestLine splits "method SP target SP HTTP/d.d"; the strings alias line.
func splitRequestLine(line []byte) (method, target, proto string, ok bool) {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return "", "", "", false
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ') + sp1 + 1
	if sp2 <= sp1+1 {
		return "", "", "", false
	}
	m, t, p := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !IsToken(m) || len(p) != 8 || string(p[:5]) != "HTTP/" || !isDigit(p[5]) || p[6] != '.' || !isDigit(p[7]) {
		return "", "", "", false
	}
	for _, c := range t {
		if c <= ' ' || c == 0x7f { // controls (CR, LF and NUL among them), spaces, DEL
			return "", "", "", false
		}
	}
	return aliasString(m), aliasString(t), aliasString(p), true
}

// parseHeaderLine lower-cases the name in place and returns the header aliasing line.
func parseHeaderLine(line []byte) (Header, error) {
	if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		return Header{}, errObsFold
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !IsToken(line[:colon]) {
		return Header{}, errBadHeader
	}
	name := line[:colon]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			name[i] = c + 'a' - 'A'
		}
	}
	value := line[colon+1:]
	for _, c := range value {
		if (c < ' ' && c != '\t') || c == 0x7f { // CR, LF, NUL and every other control but HTAB
			return Header{}, errBadHeaderValue
		}
	}
	value = bytes.Trim(value, " \t")
	return Header{Name: aliasString(name), Value: aliasString(value)}, nil
}

func aliasString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// headEnd finds the end of the request head (after its blank line): 0 while incomplete. An
// incomplete head that already holds NUL, a bare CR or a bare LF is refused at once (it may
// never complete, and a bare LF ends a line for some proxies).
func headEnd(b []byte, maxSize int) (int, error) {
	if maxSize <= 0 {
		maxSize = MaxRequestHeader
	}
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if err := checkLineBytes(b[:min(len(b), maxSize)]); err != nil {
			return 0, err
		}
		if len(b) > maxSize {
			return 0, errHeadTooLarge
		}
		return 0, nil
	}
	if end+4 > maxSize {
		return 0, errHeadTooLarge
	}
	return end + 4, nil // the parse refuses a bare CR or LF in a whole head: each is a control byte within a CRLF line
}

// checkLineBytes refuses NUL, a CR not followed by LF (a CR ending b may yet be), and an LF
// not preceded by CR. It skips from one of these bytes to the next, so the incomplete head
// it is run on as bytes arrive costs little per call.
func checkLineBytes(b []byte) error {
	if bytes.IndexByte(b, 0) >= 0 {
		return errNUL
	}
	for i := 0; ; i++ {
		j := bytes.IndexByte(b[i:], '\r')
		if j < 0 {
			break
		}
		i += j
		if i+1 < len(b) && b[i+1] != '\n' {
			return errBadLineEnd
		}
	}
	for i := 0; ; i++ {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if i == 0 || b[i-1] != '\r' {
			return errBadLineEnd
		}
	}
	return nil
}

// tokenChars marks the bytes of an HTTP token (RFC 9110 §5.6.2).
var tokenChars = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = !strings.ContainsRune("\"(),/:;<=>?@[\\]{}", c)
	}
	return t
}()

// IsToken reports whether s is a non-empty HTTP token (RFC 9110 §5.6.2).
func IsToken[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return len(s) > 0
}

// CheckUpgrade validates a WebSocket opening handshake (RFC 6455 §4.2.1) and returns the
// Sec-WebSocket-Accept value for it.
func CheckUpgrade(r *Request) (accept string, err error) {
	a, err := CheckUpgradeAccept(r)
	if err != nil {
		return "", err
	}
	return string(a[:]), nil
}

// CheckUpgradeAccept is CheckUpgrade with the Sec-WebSocket-Accept value in an array: it
// allocates nothing, so an upgrade leaves no garbage behind here.
func CheckUpgradeAccept(r *Request) (accept [28]byte, err error) {
	if r.Method != "GET" {
		return accept, &HTTPError{Status: 405, Reason: "method not allowed", Header: "Allow: GET\r\n"}
	}
	if !HasToken(r.Get("upgrade"), "websocket") || !HasToken(r.Get("connection"), "upgrade") {
		return accept, &HTTPError{Status: 426, Reason: "websocket upgrade required",
			Header: "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"}
	}
	if r.Get("host") == "" {
		return accept, &HTTPError{Status: 400, Reason: "missing Host header"}
	}
	if r.Get("sec-websocket-version") != "13" {
		return accept, &HTTPError{Status: 426, Reason: "unsupported websocket version", Header: "Sec-WebSocket-Version: 13\r\n"}
	}
	// A key is 16 bytes in base64: 24 characters with padding (a header value holds no
	// line breaks, which the decoder would skip).
	key := r.Get("sec-websocket-key")
	var in [24]byte
	var raw [18]byte
	if len(key) != len(in) {
		return accept, &HTTPError{Status: 400, Reason: "invalid Sec-WebSocket-Key"}
	}
	copy(in[:], key)
	if n, err := base64.StdEncoding.Decode(raw[:], in[:]); err != nil || n != 16 {
		return accept, &HTTPError{Status: 400, Reason: "invalid Sec-WebSocket-Key"}
	}
	return acceptKey(key), nil
}

// HasToken reports whether a comma-separated header value lists token (case-insensitive).
func HasToken(value, token string) bool {
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
	a := acceptKey(key)
	return string(a[:])
}

func acceptKey(key string) (out [28]byte) {
	const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	var in [64 + len(guid)]byte // keys are 24 bytes; a longer one spills to the heap
	sum := sha1.Sum(append(append(in[:0], key...), guid...))
	base64.StdEncoding.Encode(out[:], sum[:])
	return out
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
	dst = AppendStatusLine(dst, status)
	dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, extraHeader...)
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

// AppendStatusLine appends "HTTP/1.1 <status> <text>\r\n".
func AppendStatusLine(dst []byte, status int) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, StatusText(status)...)
	return append(dst, "\r\n"...)
}

// StatusText is the reason phrase of an HTTP status, "Error" for one HTTP does not define.
func StatusText(status int) string {
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "Error"
}

package longpoll

import (
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/socketdock/socketdock/pkg/wsframe"
)

// Params is a poll request, routed and with its parameters decoded. The gateway keeps one
// per event loop and reuses it: Parse overwrites it.
//
// Every string and Data alias either the request (its head or body) or p's own scratch
// buffer: they are valid until the next Parse and while the request bytes are, and must not
// be modified. Copy what outlives them.
type Params struct {
	Route     Route
	Session   string // /poll/s|j|c: the session id from the path
	Preflight bool   // an OPTIONS request: answer AppendPreflight; nothing else was read

	Callback string // cb: JSONP requested (already checked by ValidCallback), "" for JSON

	// /poll/s: the message.
	Data []byte // d, percent- and base64-decoded; or a raw POST body
	Text bool   // a text message (t=t or absent; a text/* body)

	// /poll/j
	TTL    time.Duration // ttl, clamped to [0, MaxTTL]; MaxTTL when absent
	Ack    uint64
	HasAck bool

	// /poll/create
	Target, Token, From string

	scratch []byte // decoded values; grown once per Parse, so earlier values stay put
	budget  int    // an upper bound on this Parse's decoded bytes
}

// keepScratch is the largest scratch buffer kept from one Parse to the next: one large
// message must not pin its size in every loop forever.
const keepScratch = 64 << 10

// rawParams are the still-encoded values of the parameters we know, first occurrence each.
type rawParams struct {
	cb, d, t, ttl, ack, target, token, from string
	set                                     uint8 // bit per field, in that order
}

const (
	hasCB = 1 << iota
	hasD
	hasT
	hasTTL
	hasAck
	hasTarget
	hasToken
	hasFrom
)

// Parse routes req and reads its parameters from the query and, for a POST, from body
// (Content-Length bytes; see BodyLength). For POST /poll/s a body that is not form-encoded
// is the message itself: text/* is text, anything else binary. On a form POST the body's
// parameters win over the query's; within one source the first occurrence wins; unknown
// parameters (cache busters such as jQuery's "_") are ignored.
//
// Errors are *Error values. Check Plain first: a bad or disabled cb must be answered with
// AppendPlain. Otherwise p.Callback is set when the error should be answered in JSONP.
func (p *Params) Parse(req *wsframe.Request, body []byte, cfg *Config) error {
	return p.parse(req.Method, req.Target, req.Get("content-type"), body, cfg)
}

func (p *Params) parse(method, target, contentType string, body []byte, cfg *Config) error {
	scratch := p.scratch[:0]
	if cap(scratch) > keepScratch {
		scratch = nil
	}
	*p = Params{scratch: scratch, TTL: cfg.maxTTL()}

	path, query, _ := strings.Cut(target, "?")
	route, session, routeErr := ParseRoute(path)
	p.Route, p.Session = route, session
	if route == RouteNone {
		if routeErr != nil {
			return routeErr
		}
		return ErrNotFound
	}
	if !route.Allows(method) {
		return route.methodError()
	}
	if method == "OPTIONS" {
		p.Preflight = true
		return nil
	}

	var raw rawParams
	rawBody := false
	if method == "POST" {
		switch bodyKindOf(contentType, len(body)) {
		case bodyForm:
			form := bytesToString(body)
			p.budget = len(form)
			raw.collect(form)
		case bodyText, bodyBinary:
			rawBody = route == RouteSend
		}
	}
	p.budget += len(query)
	raw.collect(query)

	if raw.set&hasCB != 0 {
		if cfg != nil && cfg.NoJSONP {
			return ErrJSONPDisabled
		}
		cb, ok := p.unescape(raw.cb)
		if !ok || !ValidCallback(cb) {
			return ErrBadCallback
		}
		p.Callback = cb
	}
	if routeErr != nil {
		return routeErr // a session id of the wrong shape: a 403, in JSONP when cb asks
	}

	switch route {
	case RouteSend:
		if rawBody {
			p.Data = body
			p.Text = bodyKindOf(contentType, len(body)) == bodyText
		} else if err := p.message(&raw); err != nil {
			return err
		}
		if len(p.Data) > cfg.maxMessage() {
			return ErrTooBig
		}
		if p.Text && !utf8.Valid(p.Data) {
			return ErrNotUTF8
		}
	case RoutePoll:
		if s, ok := p.unescape(raw.ttl); !ok {
			return ErrBadTTL
		} else if s != "" { // absent or empty: the longest hold
			if p.TTL, ok = parseTTL(s, cfg.maxTTL()); !ok {
				return ErrBadTTL
			}
		}
		if s, ok := p.unescape(raw.ack); !ok {
			return ErrBadAck
		} else if s != "" {
			if p.Ack, ok = parseUint(s); !ok {
				return ErrBadAck
			}
			p.HasAck = true
		}
	case RouteCreate:
		var ok1, ok2, ok3 bool
		p.Target, ok1 = p.unescape(raw.target)
		p.Token, ok2 = p.unescape(raw.token)
		p.From, ok3 = p.unescape(raw.from)
		if !ok1 || !ok2 || !ok3 {
			return ErrBadQuery
		}
	}
	return nil
}

// message decodes d according to t.
func (p *Params) message(raw *rawParams) error {
	t, ok := p.unescape(raw.t)
	if !ok {
		return ErrBadType
	}
	switch t {
	case "", "t":
		p.Text = true
	case "b":
	default:
		return ErrBadType
	}
	if raw.set&hasD == 0 {
		return ErrMissingData
	}
	d, ok := p.unescape(raw.d)
	if !ok {
		return ErrBadQuery
	}
	if p.Text {
		p.Data = stringToBytes(d)
		return nil
	}
	// Base64 shrinks: it decodes in place, in scratch (d is there if it had escapes).
	src := stringToBytes(d)
	if !inScratch(p.scratch, d) {
		p.reserve()
		start := len(p.scratch)
		p.scratch = append(p.scratch, d...) // within the budget: raw d was counted in it
		src = p.scratch[start:]
	}
	n, ok := decodeBase64(src, src)
	if !ok {
		return ErrBadBase64
	}
	p.Data = src[:n]
	return nil
}

// reserve readies scratch for this Parse: sized once, before the first value lands in it.
func (p *Params) reserve() {
	if len(p.scratch) == 0 && cap(p.scratch) < p.budget {
		p.scratch = make([]byte, 0, max(p.budget, 256))
	}
}

// unescape percent-decodes a form value ("+" is a space). A value without escapes is
// returned as it is; otherwise it is decoded into scratch. ok is false on a malformed escape.
func (p *Params) unescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	p.reserve()
	start := len(p.scratch)
	var ok bool
	p.scratch, ok = appendUnescaped(p.scratch, s)
	if !ok {
		p.scratch = p.scratch[:start]
		return "", false
	}
	return bytesToString(p.scratch[start:]), true
}

// inScratch reports whether s points into the scratch buffer (decoded) rather than the request.
func inScratch(scratch []byte, s string) bool {
	if len(s) == 0 || cap(scratch) == 0 {
		return false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(scratch[:1])))
	at := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	return at >= base && at < base+uintptr(cap(scratch))
}

// collect records the first occurrence of each known parameter in a query or form body.
func (r *rawParams) collect(s string) {
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		key, value, _ := strings.Cut(pair, "=")
		var buf [3 * maxKeyLen]byte
		var slot *string
		var bit uint8
		switch decodeKey(key, &buf) {
		case "cb":
			slot, bit = &r.cb, hasCB
		case "d":
			slot, bit = &r.d, hasD
		case "t":
			slot, bit = &r.t, hasT
		case "ttl":
			slot, bit = &r.ttl, hasTTL
		case "ack":
			slot, bit = &r.ack, hasAck
		case "target":
			slot, bit = &r.target, hasTarget
		case "token":
			slot, bit = &r.token, hasToken
		case "from":
			slot, bit = &r.from, hasFrom
		default:
			continue
		}
		if r.set&bit == 0 {
			*slot, r.set = value, r.set|bit
		}
	}
}

// maxKeyLen bounds the decoded keys we compare: longer ones are not ours.
const maxKeyLen = 8

// decodeKey returns the key, percent-decoded into buf if it must be, or "" if it cannot be
// one of ours. The result may alias buf.
func decodeKey(key string, buf *[3 * maxKeyLen]byte) string {
	if strings.IndexByte(key, '%') < 0 && strings.IndexByte(key, '+') < 0 {
		return key
	}
	if len(key) > len(buf) {
		return ""
	}
	out, ok := appendUnescaped(buf[:0], key)
	if !ok {
		return ""
	}
	return bytesToString(out)
}

// appendUnescaped appends s with %XX escapes decoded and "+" read as a space.
func appendUnescaped(dst []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			dst = append(dst, ' ')
		case '%':
			if i+2 >= len(s) {
				return dst, false
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi < 0 || lo < 0 {
				return dst, false
			}
			dst = append(dst, byte(hi<<4|lo))
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// parseTTL reads a ttl in milliseconds, clamped to [0, limit]: a negative or huge value is
// a client's rounding, not an error; anything but an optional "-" and digits is.
func parseTTL(s string, limit time.Duration) (time.Duration, bool) {
	negative := s[0] == '-'
	if negative {
		s = s[1:]
	}
	if s == "" {
		return 0, false
	}
	limitMS := limit.Milliseconds()
	var ms int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= limitMS { // stop growing once past the limit: no overflow
			ms = ms*10 + int64(c-'0')
		}
	}
	switch {
	case negative:
		return 0, true
	case ms >= limitMS:
		return limit, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// parseUint reads a decimal uint64: digits only, no overflow.
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

type bodyKind uint8

const (
	bodyNone   bodyKind = iota // no body: parameters come from the query
	bodyForm                   // application/x-www-form-urlencoded
	bodyText                   // text/*: a text message
	bodyBinary                 // anything else: a binary message
)

// bodyKindOf classifies a POST body by its Content-Type. An empty body without a type
// carries nothing, so a POST with only a query string (d in the query) works like a GET.
func bodyKindOf(contentType string, n int) bodyKind {
	media, _, _ := strings.Cut(contentType, ";")
	media = strings.TrimSpace(media)
	switch {
	case media == "" && n == 0:
		return bodyNone
	case strings.EqualFold(media, "application/x-www-form-urlencoded"):
		return bodyForm
	case len(media) >= 5 && strings.EqualFold(media[:5], "text/"):
		return bodyText
	}
	return bodyBinary
}

// BodyLength reads the request's body length from Content-Length, before the gateway
// waits for the body: 0 without one; ErrLengthRequired for Transfer-Encoding (chunked is
// not read); ErrBadLength for a malformed or conflicting value; ErrTooBig above limit.
func BodyLength(req *wsframe.Request, limit int) (int, error) {
	n, seen := uint64(0), false
	for _, h := range req.Headers {
		switch h.Name {
		case "transfer-encoding":
			return 0, ErrLengthRequired
		case "content-length":
			v, ok := parseUint(h.Value)
			if !ok || len(h.Value) > 18 || (seen && v != n) {
				return 0, ErrBadLength
			}
			n, seen = v, true
		}
	}
	if n > uint64(limit) {
		return 0, ErrTooBig
	}
	return int(n), nil
}

// AppendMetaPath appends target (path and query, as sent) without its cb parameters, for
// meta.path in the connect POST: the callback name is the page's business, not the backend's.
func AppendMetaPath(dst []byte, target string) []byte {
	path, query, _ := strings.Cut(target, "?")
	dst = append(dst, path...)
	sep := byte('?')
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		key, _, _ := strings.Cut(pair, "=")
		var buf [3 * maxKeyLen]byte
		if pair == "" || decodeKey(key, &buf) == "cb" {
			continue
		}
		dst = append(dst, sep)
		dst = append(dst, pair...)
		sep = '&'
	}
	return dst
}

func bytesToString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func stringToBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

package backend

import (
	"encoding/base64"
	"hash/maphash"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/socketdock/socketdock/internal/jsonstr"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// The JSON bodies of CONTRACT §3, appended by hand: one allocation-free pass per message.

// Subject is the connection a body speaks of: its id, the transport it came by ("ws",
// "poll"), and the control endpoint through which the backend answers it.
type Subject struct {
	Endpoint, ID, Transport string
}

// SubjectOf is c's subject, answered through endpoint.
func SubjectOf(endpoint string, c *conntable.Conn) Subject {
	return Subject{Endpoint: endpoint, ID: c.ID, Transport: c.Transport.Name()}
}

// appendMeta appends `"connection_id":..,"send":..,"disconnect":..,"transport":..` (no braces).
func appendMeta(dst []byte, s Subject) []byte {
	dst = append(dst, `"connection_id":"`...)
	dst = append(dst, s.ID...)
	dst = append(dst, `","send":`...)
	dst = appendCallback(dst, s.Endpoint, s.ID, "send")
	dst = append(dst, `,"disconnect":`...)
	dst = appendCallback(dst, s.Endpoint, s.ID, "disconnect")
	dst = append(dst, `,"transport":`...)
	return jsonstr.Append(dst, s.Transport)
}

func appendCallback(dst []byte, endpoint, id, verb string) []byte {
	dst = jsonstr.Append(dst, endpoint)
	dst = dst[:len(dst)-1] // reopen the string to add the path
	dst = append(dst, "/socket/"...)
	dst = append(dst, id...)
	dst = append(dst, '/')
	dst = append(dst, verb...)
	return append(dst, '"')
}

// AppendMessage appends the message POST body. Text, and binary that is valid UTF-8, travel
// as a JSON string; other binary travels base64-encoded with meta.encoding "base64".
func AppendMessage(dst []byte, s Subject, op conntable.MessageType, payload []byte) []byte {
	b64 := op != conntable.Text && !utf8.Valid(payload)
	dst = appendMessageHead(dst, s, op, b64)
	if b64 {
		dst = base64.StdEncoding.AppendEncode(dst, payload)
	} else {
		dst = jsonstr.AppendEscaped(dst, payload)
	}
	return append(dst, messageTail...)
}

// appendMessageHead appends the message body up to the message string's first character.
func appendMessageHead(dst []byte, s Subject, op conntable.MessageType, b64 bool) []byte {
	dst = append(dst, `{"meta":{`...)
	dst = appendMeta(dst, s)
	switch {
	case op == conntable.Text:
		dst = append(dst, `,"type":"text"`...)
	case b64:
		dst = append(dst, `,"type":"binary","encoding":"base64"`...)
	default:
		dst = append(dst, `,"type":"binary"`...)
	}
	return append(dst, `},"message":"`...)
}

const messageTail = `"}`

// streamPiece is how many payload bytes a messageStream encodes at a time: a multiple of 3,
// so base64 pieces join without padding; escaped, at most six times as many bytes.
const streamPiece = 3 << 11

// messageStream writes a message POST body piece by piece: the same bytes as AppendMessage,
// without ever holding them all. Escaping can make a body six times its payload (a NUL is
// \u0000), so a large payload is kept raw and encoded on the way out, as often as needed:
// to measure it, to sign it, to send it (again, on a retry).
type messageStream struct {
	head    []byte
	payload []byte
	b64     bool
	buf     []byte // the current piece
	off     int    // payload bytes encoded so far
	stage   int    // 0 head, 1 payload, 2 tail, 3 done
	pending []byte // what Read has not returned yet of the current piece
}

func newMessageStream(s Subject, op conntable.MessageType, payload []byte) *messageStream {
	b64 := op != conntable.Text && !utf8.Valid(payload)
	return &messageStream{
		head:    appendMessageHead(nil, s, op, b64),
		payload: payload,
		b64:     b64,
		buf:     make([]byte, 0, 6*streamPiece),
	}
}

// rewind starts the body over.
func (m *messageStream) rewind() { m.off, m.stage, m.pending = 0, 0, nil }

// next returns the body's next piece, nil at the end. The piece is valid until the next call.
func (m *messageStream) next() []byte {
	switch m.stage {
	case 0:
		m.stage = 1
		return m.head
	case 1:
		if m.off < len(m.payload) {
			end := min(m.off+streamPiece, len(m.payload))
			if m.b64 {
				m.buf = base64.StdEncoding.AppendEncode(m.buf[:0], m.payload[m.off:end])
			} else {
				for end < len(m.payload) && !utf8.RuneStart(m.payload[end]) {
					end-- // the payload is valid UTF-8: never split a character
				}
				m.buf = jsonstr.AppendEscaped(m.buf[:0], m.payload[m.off:end])
			}
			m.off = end
			return m.buf
		}
		m.stage = 2
		return m.next()
	case 2:
		m.stage = 3
		return []byte(messageTail)
	}
	return nil
}

// WriteTo writes the rest of the body to w; fasthttp sends a body stream with it.
func (m *messageStream) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if len(m.pending) > 0 {
		k, err := w.Write(m.pending)
		n += int64(k)
		m.pending = nil
		if err != nil {
			return n, err
		}
	}
	for p := m.next(); p != nil; p = m.next() {
		k, err := w.Write(p)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Read makes messageStream an io.Reader, as fasthttp's SetBodyStream asks.
func (m *messageStream) Read(p []byte) (int, error) {
	for len(m.pending) == 0 {
		m.pending = m.next()
		if m.pending == nil {
			return 0, io.EOF
		}
	}
	n := copy(p, m.pending)
	m.pending = m.pending[n:]
	return n, nil
}

// size is the body's length in bytes (one encoding pass); the stream is rewound.
func (m *messageStream) size() int {
	m.rewind()
	n := 0
	for p := m.next(); p != nil; p = m.next() {
		n += len(p)
	}
	m.rewind()
	return n
}

// AppendConnect appends the connect POST body: meta.path (the request's path and query) and
// the headers (repeated names joined with ", ", as HTTP allows, keys in order of first
// appearance).
func AppendConnect(dst []byte, s Subject, path string, headers [][2]string) []byte {
	dst, _ = appendConnect(dst, s, path, headers)
	return dst
}

// stackHeaders is the largest head linked in arrays on the stack; a bigger one costs one
// allocation.
const stackHeaders = 32

// appendConnect is AppendConnect that also reports how many header names it compared (the
// test's proof that the work is linear in the header count).
func appendConnect(dst []byte, s Subject, path string, headers [][2]string) ([]byte, int) {
	var linkBuf [2 * stackHeaders]int32
	var slotBuf [2 * stackHeaders]int32
	n := len(headers)
	links, slots := linkBuf[:], slotBuf[:]
	if n > stackHeaders {
		size := 2 * stackHeaders
		for size < 2*n {
			size *= 2
		}
		all := make([]int32, 2*n+size)
		links, slots = all[:2*n], all[2*n:]
	}
	next, tail := links[:n], links[n:2*n]
	compares := linkRepeats(headers, next, tail, slots)

	dst = append(dst, `{"meta":{`...)
	dst = appendMeta(dst, s)
	dst = append(dst, `,"path":`...)
	dst = jsonstr.Append(dst, path)
	dst = append(dst, `,"headers":{`...)
	first := true
	for i, h := range headers {
		if tail[i] < 0 {
			continue // a repeat: written with its name's first appearance
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = jsonstr.Append(dst, h[0])
		dst = append(dst, ':', '"')
		dst = jsonstr.AppendEscaped(dst, h[1])
		for j := next[i]; j != 0; j = next[j-1] {
			dst = append(dst, ", "...)
			dst = jsonstr.AppendEscaped(dst, headers[j-1][1])
		}
		dst = append(dst, '"')
	}
	return append(dst, "}}}"...), compares
}

// headerSeed keys the header-name hash, so a client cannot choose names that collide.
var headerSeed = maphash.MakeSeed()

// linkRepeats groups headers by name in one pass, with a hash table of each name's first
// appearance (slots: index+1, 0 empty; a power of two at least twice the header count, so
// probes stay short). A first appearance i gets tail[i], the last header of its name so far;
// a repeat gets tail -1 and is chained from the one before it by next (index+1, 0 ends).
// It returns the number of names compared.
func linkRepeats(headers [][2]string, next, tail, slots []int32) (compares int) {
	mask := uint64(len(slots) - 1)
	clear(slots)
	for i, h := range headers {
		next[i] = 0
		for s := maphash.String(headerSeed, h[0]) & mask; ; s = (s + 1) & mask {
			f := slots[s]
			if f == 0 {
				slots[s] = int32(i + 1)
				tail[i] = int32(i)
				break
			}
			compares++
			if first := f - 1; headers[first][0] == h[0] {
				next[tail[first]] = int32(i + 1)
				tail[first] = int32(i)
				tail[i] = -1
				break
			}
		}
	}
	return compares
}

// AppendDisconnect appends the disconnect POST body.
func AppendDisconnect(dst []byte, s Subject, code int, reason string) []byte {
	dst = append(dst, `{"connection_id":"`...)
	dst = append(dst, s.ID...)
	dst = append(dst, `","transport":`...)
	dst = jsonstr.Append(dst, s.Transport)
	dst = append(dst, `,"code":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"reason":`...)
	return append(jsonstr.Append(dst, reason), '}')
}

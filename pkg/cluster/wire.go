package cluster

import (
	"encoding/binary"
	"errors"
)

// The envelope of a forwarded call and of its answer: a few fixed fields, then the payload,
// in one NATS message body (no NATS headers: nothing to allocate per call). Pure functions,
// fuzzed in wire_test.go.

// FramingOverhead is the most the envelope adds to a message's bytes: --max-message-size
// plus this must fit the NATS server's max_payload.
const FramingOverhead = 1024

// perMessage is what each message of a poll batch adds to its data in an answer.
const perMessage = 8 + 1 + 4

const wireVersion = 1

// opcode names what a forwarded call asks of the owner.
type opcode uint8

const (
	opPing opcode = iota + 1
	opSend
	opDisconnect
	opInfo
	opPollSend
	opPollGet
	opPollClose
	opLast = opPollClose
)

var opNames = [...]string{opPing: "ping", opSend: "send", opDisconnect: "disconnect", opInfo: "info",
	opPollSend: "poll_send", opPollGet: "poll_get", opPollClose: "poll_close"}

func (o opcode) String() string {
	if o == 0 || o > opLast {
		return "unknown"
	}
	return opNames[o]
}

const (
	flagText   = 1 << iota // opPollSend: a text message
	flagHasAck             // opPollGet: ack was given
)

// request is one forwarded call. Decoded slices alias the message they came from.
type request struct {
	op          opcode
	actBy       int64 // Unix ns: an owner that sees the call later drops it (the caller has given up)
	flags       uint8
	ack         uint64
	ttl         int64 // ns, opPollGet
	id          string
	contentType []byte // opSend; at most 255 bytes kept
	body        []byte
}

const requestFixed = 1 + 1 + 8 + 1 + 8 + 8 + 1 + 1 // version, op, actBy, flags, ack, ttl, id length, content-type length

var errMalformed = errors.New("cluster: malformed envelope")

func (r *request) append(dst []byte) []byte {
	ct := r.contentType
	if len(ct) > 255 {
		ct = ct[:255] // only its start (text/ or not) matters to the owner
	}
	id := r.id
	if len(id) > 255 {
		id = id[:255]
	}
	dst = append(dst, wireVersion, byte(r.op))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.actBy))
	dst = append(dst, r.flags)
	dst = binary.BigEndian.AppendUint64(dst, r.ack)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.ttl))
	dst = append(dst, byte(len(id)))
	dst = append(dst, id...)
	dst = append(dst, byte(len(ct)))
	dst = append(dst, ct...)
	return append(dst, r.body...)
}

func decodeRequest(b []byte) (request, error) {
	var r request
	if len(b) < requestFixed || b[0] != wireVersion {
		return r, errMalformed
	}
	r.op = opcode(b[1])
	if r.op == 0 || r.op > opLast {
		return r, errMalformed
	}
	r.actBy = int64(binary.BigEndian.Uint64(b[2:]))
	r.flags = b[10]
	r.ack = binary.BigEndian.Uint64(b[11:])
	r.ttl = int64(binary.BigEndian.Uint64(b[19:]))
	b = b[27:]
	n := int(b[0])
	if len(b) < 1+n+1 {
		return r, errMalformed
	}
	r.id = string(b[1 : 1+n])
	b = b[1+n:]
	n = int(b[0])
	if len(b) < 1+n {
		return r, errMalformed
	}
	r.contentType = b[1 : 1+n]
	r.body = b[1+n:]
	return r, nil
}

// requestID is the id of an encoded request without decoding the rest, or nil.
func requestID(b []byte) []byte {
	const at = requestFixed - 2 // the id's length byte
	if len(b) < requestFixed || int(b[at]) > len(b)-at-2 {
		return nil
	}
	return b[at+1 : at+1+int(b[at])]
}

// answer is the owner's reply: an HTTP-like status, and for the control API the answer's
// Content-Type, Retry-After and body; for a poll route a refusal's reason (body) and extra
// header lines, or a batch (body, see appendBatch).
type answer struct {
	status      int
	heartbeat   bool
	contentType []byte
	header      []byte // control: the Retry-After value; poll: extra header lines
	body        []byte
}

const answerFixed = 1 + 2 + 1 + 1 + 2

func (a *answer) append(dst []byte) []byte {
	ct, hdr := a.contentType, a.header
	if len(ct) > 255 {
		ct = ct[:255]
	}
	if len(hdr) > 1024 {
		hdr = hdr[:0]
	}
	flags := byte(0)
	if a.heartbeat {
		flags = 1
	}
	dst = append(dst, wireVersion)
	dst = binary.BigEndian.AppendUint16(dst, uint16(a.status))
	dst = append(dst, flags, byte(len(ct)))
	dst = append(dst, ct...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(hdr)))
	dst = append(dst, hdr...)
	return append(dst, a.body...)
}

func decodeAnswer(b []byte) (answer, error) {
	var a answer
	if len(b) < answerFixed || b[0] != wireVersion {
		return a, errMalformed
	}
	a.status = int(binary.BigEndian.Uint16(b[1:]))
	a.heartbeat = b[3]&1 != 0
	n := int(b[4])
	b = b[5:]
	if len(b) < n+2 {
		return a, errMalformed
	}
	a.contentType = b[:n]
	b = b[n:]
	n = int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < n {
		return a, errMalformed
	}
	a.header = b[:n]
	a.body = b[n:]
	if a.status < 100 || a.status > 599 {
		return a, errMalformed
	}
	return a, nil
}

// wireBatch is a poll batch in transit; messages alias the answer they came from.
type wireBatch struct {
	closed      bool
	code        int
	reason      string
	redelivered int
	messages    []wireMessage
}

type wireMessage struct {
	seq  uint64
	text bool
	data []byte
}

func appendBatch(dst []byte, b *wireBatch) []byte {
	closed := byte(0)
	if b.closed {
		closed = 1
	}
	reason := b.reason
	if len(reason) > 0xffff {
		reason = reason[:0xffff]
	}
	dst = append(dst, closed)
	dst = binary.BigEndian.AppendUint16(dst, uint16(b.code))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(reason)))
	dst = append(dst, reason...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(b.redelivered))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b.messages)))
	for _, m := range b.messages {
		dst = binary.BigEndian.AppendUint64(dst, m.seq)
		text := byte(0)
		if m.text {
			text = 1
		}
		dst = append(dst, text)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.data)))
		dst = append(dst, m.data...)
	}
	return dst
}

func decodeBatch(b []byte) (wireBatch, error) {
	var w wireBatch
	if len(b) < 5 {
		return w, errMalformed
	}
	w.closed = b[0] != 0
	w.code = int(binary.BigEndian.Uint16(b[1:]))
	n := int(binary.BigEndian.Uint16(b[3:]))
	b = b[5:]
	if len(b) < n+8 {
		return w, errMalformed
	}
	w.reason = string(b[:n])
	b = b[n:]
	w.redelivered = int(binary.BigEndian.Uint32(b))
	count := int(binary.BigEndian.Uint32(b[4:]))
	b = b[8:]
	if count > len(b)/perMessage {
		return w, errMalformed
	}
	w.messages = make([]wireMessage, 0, count)
	for range count {
		if len(b) < perMessage {
			return w, errMalformed
		}
		m := wireMessage{seq: binary.BigEndian.Uint64(b), text: b[8] != 0}
		size := int(binary.BigEndian.Uint32(b[9:]))
		b = b[perMessage:]
		if size > len(b) {
			return w, errMalformed
		}
		m.data = b[:size:size]
		b = b[size:]
		w.messages = append(w.messages, m)
	}
	if len(b) != 0 || w.redelivered > len(w.messages) {
		return w, errMalformed
	}
	return w, nil
}

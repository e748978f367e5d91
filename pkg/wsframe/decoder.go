package wsframe

import (
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Kind says what Decoder.Next found.
type Kind uint8

const (
	// NeedMore: the bytes hold no complete event yet; feed more.
	NeedMore Kind = iota
	// Message: a complete text or binary message (fragments joined).
	Message
	// Ping, Pong: a control frame with its payload.
	Ping
	Pong
	// Close: the peer's close frame, with a validated code and reason.
	Close
)

// Event is one thing the decoder found. Payload aliases either the caller's bytes (a message
// that arrived whole in one frame) or the decoder's own buffer: it is valid until the caller
// discards those bytes or calls Next again, whichever comes first.
type Event struct {
	Kind    Kind
	Op      ws.OpCode // OpText or OpBinary for a Message
	Payload []byte
	Code    int // for Close
	Reason  string
}

// Decoder turns the client-to-server byte stream into events. It unmasks in place, streams
// large frames into its buffer as they arrive, and enforces the message size limit before
// buffering. The zero value accepts messages of any size; set MaxMessage.
//
// A message that arrives whole in one frame needs no state between calls, so the assembly
// state exists only while a message is in pieces: an idle connection carries one pointer.
type Decoder struct {
	MaxMessage int  // largest message in bytes; 0 means no limit
	FromServer bool // decode a server's frames (the relay as a client): unmasked, and a masked one is an error
	s          Stream
}

// Stream is a Decoder without its settings, for a caller that keeps them once for many
// streams (the gateway: one pointer per idle connection): the same limit and direction
// must be passed to every Next of one stream. The zero value is ready.
type Stream struct {
	a *assembly
}

// assembly is a message arriving in pieces: fragments, or a frame not yet all here.
type assembly struct {
	frame     ws.Header // the frame whose payload is being read, while inFrame
	inFrame   bool
	remaining int64
	maskPos   int

	op   ws.OpCode
	buf  []byte
	text UTF8
}

// Next consumes a prefix of b (n bytes) and returns the first event found in it. Callers loop
// while n > 0 or ev.Kind != NeedMore. After an error the stream is unusable.
func (d *Decoder) Next(b []byte) (ev Event, n int, err error) {
	return d.s.Next(b, d.MaxMessage, d.FromServer)
}

// Buffered is the size of the message being assembled.
func (d *Decoder) Buffered() int { return d.s.Buffered() }

// Next is Decoder.Next with the decoder's settings: maxMessage as Decoder.MaxMessage,
// fromServer as Decoder.FromServer.
func (d *Stream) Next(b []byte, maxMessage int, fromServer bool) (ev Event, n int, err error) {
	a := d.a
	if a == nil || !a.inFrame {
		h, hn, err := parseHeader(b, fromServer)
		if err != nil || hn == 0 {
			return ev, 0, err
		}
		if err := d.admit(h, maxMessage); err != nil {
			return ev, 0, err
		}
		if h.OpCode.IsControl() {
			// Control frames are tiny: wait until the whole frame is here.
			total := hn + int(h.Length)
			if len(b) < total {
				return ev, 0, nil
			}
			p := b[hn:total]
			unmask(p, h, 0)
			ev, err = control(h.OpCode, p)
			return ev, total, err
		}
		// A whole single-frame message: hand out the caller's bytes, no copy.
		if h.Fin && a == nil && len(b)-hn >= int(h.Length) {
			total := hn + int(h.Length)
			p := b[hn:total]
			unmask(p, h, 0)
			if h.OpCode == OpText && !utf8.Valid(p) {
				return ev, 0, errTextUTF8
			}
			return Event{Kind: Message, Op: h.OpCode, Payload: p}, total, nil
		}
		if a == nil {
			a = &assembly{op: h.OpCode}
			d.a = a
		}
		a.frame, a.inFrame, a.remaining, a.maskPos = h, true, h.Length, 0
		n = hn
		b = b[hn:]
	}
	take := int(min(a.remaining, int64(len(b))))
	if take > 0 {
		p := b[:take]
		unmask(p, a.frame, a.maskPos)
		if a.op == OpText && !a.text.Write(p) {
			return ev, 0, errTextUTF8
		}
		a.buf = append(a.buf, p...)
		a.maskPos += take
		a.remaining -= int64(take)
		n += take
	}
	if a.remaining > 0 {
		return ev, n, nil
	}
	a.inFrame = false
	if !a.frame.Fin {
		return ev, n, nil
	}
	if a.op == OpText && !a.text.Complete() {
		return ev, 0, errTextUTF8
	}
	// The payload stays valid until the next call, which starts a fresh assembly.
	d.a = nil
	return Event{Kind: Message, Op: a.op, Payload: a.buf}, n, nil
}

// unmask removes a masked frame's mask from p, which starts at offset in the payload.
func unmask(p []byte, h ws.Header, offset int) {
	if h.Masked {
		ws.Cipher(p, h.Mask, offset)
	}
}

// admit checks a header against the message state and the size limit.
func (d *Stream) admit(h ws.Header, maxMessage int) error {
	fragmented, buffered := d.a != nil, d.Buffered()
	switch {
	case h.OpCode.IsControl():
		return nil
	case h.OpCode == OpContinuation && !fragmented:
		return errNoContinue
	case h.OpCode != OpContinuation && fragmented:
		return errContinue
	case maxMessage > 0 && h.Length > int64(maxMessage-buffered):
		return errMessageTooBig
	}
	return nil
}

// Buffered is the size of the message being assembled.
func (d *Stream) Buffered() int {
	if d.a == nil {
		return 0
	}
	return len(d.a.buf)
}

func control(op ws.OpCode, p []byte) (Event, error) {
	switch op {
	case OpPing:
		return Event{Kind: Ping, Payload: p}, nil
	case OpPong:
		return Event{Kind: Pong, Payload: p}, nil
	}
	code, reason, err := ParseClosePayload(p)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Close, Code: code, Reason: reason, Payload: p}, nil
}

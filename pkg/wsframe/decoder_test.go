package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/socketdock/socketdock/pkg/conntable"
)

var testMask = [4]byte{0xa1, 0x0b, 0x5c, 0x3f}

// clientFrame builds a masked client frame.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	out = append(out, testMask[:]...)
	for i, c := range payload {
		out = append(out, c^testMask[i%4])
	}
	return out
}

// feed feeds stream to a decoder in chunks of size step (0: all at once), the way the
// event loop does: bytes not consumed stay and more are appended. It returns the events (with
// copied payloads) and the first error.
func feed(d *Decoder, stream []byte, step int) ([]Event, error) {
	var events []Event
	var pending []byte
	for off := 0; off < len(stream) || len(pending) > 0; {
		if step == 0 {
			pending = append(pending, stream[off:]...)
			off = len(stream)
		} else if off < len(stream) {
			end := min(off+step, len(stream))
			pending = append(pending, stream[off:end]...)
			off = end
		}
		for {
			ev, n, err := d.Next(pending)
			if err != nil {
				return events, err
			}
			pending = pending[n:]
			if ev.Kind == NeedMore {
				if n == 0 {
					break
				}
				continue
			}
			ev.Payload = append([]byte(nil), ev.Payload...)
			events = append(events, ev)
		}
		if off >= len(stream) {
			break
		}
	}
	return events, nil
}

func TestDecoderMessages(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 7000) // 64-bit length form
	mid := bytes.Repeat([]byte("x"), 300)           // 16-bit length form
	cases := []struct {
		name   string
		stream []byte
		want   []Event
	}{
		{"text", clientFrame(true, 1, []byte("hello")), []Event{{Kind: Message, Op: OpText, Payload: []byte("hello")}}},
		{"empty binary", clientFrame(true, 2, nil), []Event{{Kind: Message, Op: OpBinary, Payload: []byte{}}}},
		{"16-bit length", clientFrame(true, 2, mid), []Event{{Kind: Message, Op: OpBinary, Payload: mid}}},
		{"64-bit length", clientFrame(true, 2, big), []Event{{Kind: Message, Op: OpBinary, Payload: big}}},
		{"fragments with control between", concat(
			clientFrame(false, 1, []byte("he")), clientFrame(true, 9, []byte("p")),
			clientFrame(false, 0, nil), clientFrame(true, 10, nil), clientFrame(true, 0, []byte("llo ✓"))),
			[]Event{{Kind: Ping, Payload: []byte("p")}, {Kind: Pong, Payload: []byte{}}, {Kind: Message, Op: OpText, Payload: []byte("hello ✓")}}},
		{"rune split across fragments", concat(clientFrame(false, 1, []byte{0xe2, 0x9c}), clientFrame(true, 0, []byte{0x93})),
			[]Event{{Kind: Message, Op: OpText, Payload: []byte("✓")}}},
		{"close with reason", clientFrame(true, 8, []byte{0x03, 0xe8, 'b', 'y', 'e'}), []Event{{Kind: Close, Code: 1000, Reason: "bye"}}},
		{"empty close", clientFrame(true, 8, nil), []Event{{Kind: Close, Code: conntable.CloseNoStatus}}},
		{"two messages back to back", concat(clientFrame(true, 1, []byte("a")), clientFrame(true, 2, []byte("b"))),
			[]Event{{Kind: Message, Op: OpText, Payload: []byte("a")}, {Kind: Message, Op: OpBinary, Payload: []byte("b")}}},
	}
	for _, tc := range cases {
		for _, step := range []int{0, 1, 3, 125, 4096} {
			d := &Decoder{MaxMessage: 1 << 20}
			got, err := feed(d, tc.stream, step)
			if err != nil {
				t.Fatalf("%s step %d: %v", tc.name, step, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%s step %d: %d events, want %d", tc.name, step, len(got), len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Kind != w.Kind || g.Op != w.Op || g.Code != w.Code || g.Reason != w.Reason || (w.Kind != Close && !bytes.Equal(g.Payload, w.Payload)) {
					t.Fatalf("%s step %d event %d: got %+v want %+v", tc.name, step, i, g, w)
				}
			}
		}
	}
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecoderErrors(t *testing.T) {
	unmasked := clientFrame(true, 1, []byte("x"))
	unmasked[1] &^= 0x80
	unmasked = append(unmasked[:2], unmasked[6:]...)
	rsv := clientFrame(true, 1, []byte("x"))
	rsv[0] |= 0x10
	hugeLen := []byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	cases := []struct {
		name   string
		stream []byte
		code   int
	}{
		{"unmasked", unmasked, conntable.CloseProtocolError},
		{"rsv3", rsv, conntable.CloseProtocolError},
		{"reserved data opcode", clientFrame(true, 5, nil), conntable.CloseProtocolError},
		{"reserved control opcode", clientFrame(true, 0xf, nil), conntable.CloseProtocolError},
		{"long ping", clientFrame(true, 9, make([]byte, 126)), conntable.CloseProtocolError},
		{"fragmented close", clientFrame(false, 8, nil), conntable.CloseProtocolError},
		{"stray continuation", clientFrame(true, 0, []byte("x")), conntable.CloseProtocolError},
		{"text inside fragmented", concat(clientFrame(false, 2, nil), clientFrame(true, 1, nil)), conntable.CloseProtocolError},
		{"64-bit length with top bit", hugeLen, conntable.CloseProtocolError},
		{"close of 1 byte", clientFrame(true, 8, []byte{1}), conntable.CloseProtocolError},
		{"close code 1004", clientFrame(true, 8, []byte{0x03, 0xec}), conntable.CloseProtocolError},
		{"close code 1015", clientFrame(true, 8, []byte{0x03, 0xf7}), conntable.CloseProtocolError},
		{"close code 5000", clientFrame(true, 8, []byte{0x13, 0x88}), conntable.CloseProtocolError},
		{"close reason bad UTF-8", clientFrame(true, 8, []byte{0x03, 0xe8, 0xc0}), conntable.CloseInvalidPayload},
		{"text bad UTF-8", clientFrame(true, 1, []byte{0xff}), conntable.CloseInvalidPayload},
		{"text surrogate", clientFrame(true, 1, []byte{0xed, 0xa0, 0x80}), conntable.CloseInvalidPayload},
		{"text truncated rune at end", concat(clientFrame(false, 1, []byte{'a', 0xe2}), clientFrame(true, 0, nil)), conntable.CloseInvalidPayload},
		{"too big", clientFrame(true, 2, make([]byte, 101)), conntable.CloseTooBig},
		{"too big across fragments", concat(clientFrame(false, 2, make([]byte, 60)), clientFrame(true, 0, make([]byte, 60))), conntable.CloseTooBig},
	}
	for _, tc := range cases {
		for _, step := range []int{0, 1} {
			d := &Decoder{MaxMessage: 100}
			_, err := feed(d, tc.stream, step)
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != tc.code {
				t.Errorf("%s step %d: err %v, want close %d", tc.name, step, err, tc.code)
			}
		}
	}
}

// A too-big frame is refused from its header, before any payload is buffered.
func TestDecoderRejectsTooBigBeforeBuffering(t *testing.T) {
	d := &Decoder{MaxMessage: 1 << 10}
	header := []byte{0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4} // 4 GiB announced
	_, _, err := d.Next(header)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != conntable.CloseTooBig || d.Buffered() != 0 {
		t.Fatalf("err %v, buffered %d", err, d.Buffered())
	}
}

// A Stream is the decoder's state alone, one pointer; its settings come with each Next.
func TestStreamTakesItsSettingsPerCall(t *testing.T) {
	if n := unsafe.Sizeof(Stream{}); n != unsafe.Sizeof(uintptr(0)) {
		t.Errorf("Stream is %d bytes, want one pointer", n)
	}
	var s Stream
	first := clientFrame(false, 0x1, []byte("hel"))
	if _, n, err := s.Next(first, 5, false); err != nil || n != len(first) || s.Buffered() != 3 {
		t.Fatalf("first fragment: n %d err %v buffered %d", n, err, s.Buffered())
	}
	var ce *CloseError
	if _, _, err := s.Next(clientFrame(true, 0x0, []byte("lo!")), 5, false); !errors.As(err, &ce) || ce.Code != conntable.CloseTooBig {
		t.Fatalf("6 bytes against a limit of 5: err %v", err)
	}
	var ok Stream
	ok.Next(clientFrame(false, 0x1, []byte("hel")), 6, false) // Next unmasks in place: a fresh frame
	ev, _, err := ok.Next(clientFrame(true, 0x0, []byte("lo!")), 6, false)
	if err != nil || ev.Kind != Message || string(ev.Payload) != "hello!" {
		t.Fatalf("event %+v err %v", ev, err)
	}
	if _, _, err := ok.Next(clientFrame(true, 0x2, []byte("x")), 6, true); err == nil {
		t.Fatal("a masked frame read as a server's was accepted")
	}
}

func TestUTF8StreamMatchesUTF8Valid(t *testing.T) {
	samples := [][]byte{
		[]byte("plain ascii"), []byte("κόσμε ✓ 𝄞"), {0xf4, 0x8f, 0xbf, 0xbf}, {0xf4, 0x90, 0x80, 0x80},
		{0xed, 0x9f, 0xbf}, {0xed, 0xa0, 0x80}, {0xe0, 0x80, 0x80}, {0xc0, 0xaf}, {0xc2}, {0x80}, {0xf0, 0x9d},
		{0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xf4, 0x90, 0x80, 0x80, 0x65, 0x64},
	}
	for _, s := range samples {
		for split1 := 0; split1 <= len(s); split1++ {
			for split2 := split1; split2 <= len(s); split2++ {
				var u UTF8
				ok := u.Write(s[:split1]) && u.Write(s[split1:split2]) && u.Write(s[split2:]) && u.Complete()
				if ok != utf8.Valid(s) {
					t.Fatalf("%x split %d/%d: stream says %v, utf8.Valid %v", s, split1, split2, ok, utf8.Valid(s))
				}
			}
		}
	}
}

func TestAppendHeaderAndFrameSize(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
		f := AppendFrame(nil, OpBinary, make([]byte, n))
		if len(f) != FrameSize(n) {
			t.Fatalf("len %d: frame %d bytes, FrameSize %d", n, len(f), FrameSize(n))
		}
		// The header reads back with the same length, and unmasked: the server-side parser
		// refuses it exactly for that.
		h, hn, err := ParseHeader(f)
		if hn != FrameSize(n)-n || h.Length != int64(n) || !h.Fin || h.Masked || err != errUnmasked {
			t.Fatalf("len %d: header %+v size %d err %v", n, h, hn, err)
		}
	}
	if c := AppendClose(nil, 1000, string(bytes.Repeat([]byte("é"), 100))); len(c) > 2+125 || !utf8.Valid(c[4:]) {
		t.Fatalf("close reason not cut to 123 bytes on a rune boundary: %d", len(c))
	}
}

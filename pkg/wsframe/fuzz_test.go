package wsframe

import (
	"bytes"
	"cmp"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// Fuzz targets (make fuzz; seeds in testdata/fuzz/). Each checks properties, not just "no
// panic": the gateway relies on every decoder error being a *CloseError, on n never running
// past the input, and on chunked input decoding exactly like whole input.

// mask builds a masked client frame for seeds (clientFrame, decoder_test.go).
func mask(fin bool, op byte, payload []byte) []byte { return clientFrame(fin, op, payload) }

type decoded struct {
	kind   Kind
	op     byte
	data   string
	code   int
	reason string
}

// decodeAll feeds stream to a fresh decoder in pieces of at most chunk bytes (0: whole),
// keeping unconsumed bytes like gnet's inbound buffer does.
func decodeAll(t *testing.T, stream []byte, chunk, max int) ([]decoded, error) {
	d := Decoder{MaxMessage: max}
	var out []decoded
	var pending []byte
	for off := 0; off < len(stream); {
		end := len(stream)
		if chunk > 0 {
			end = min(off+chunk, len(stream))
		}
		pending = append(pending, stream[off:end]...)
		off = end
		for steps := 0; ; steps++ {
			if steps > len(stream)+16 {
				t.Fatalf("decoder made no progress on %d bytes", len(pending))
			}
			ev, n, err := d.Next(pending)
			if err != nil {
				var ce *CloseError
				if !errors.As(err, &ce) || !ValidCloseCode(ce.Code) || len(ce.Reason) > 123 {
					t.Fatalf("error %#v is not a sendable *CloseError", err)
				}
				return out, err
			}
			if n < 0 || n > len(pending) {
				t.Fatalf("Next consumed %d of %d bytes", n, len(pending))
			}
			if ev.Kind != NeedMore {
				if ev.Kind == Message && max > 0 && len(ev.Payload) > max {
					t.Fatalf("message of %d bytes over the limit %d", len(ev.Payload), max)
				}
				if ev.Kind == Message && ev.Op == OpText && !utf8.Valid(ev.Payload) {
					t.Fatalf("text message with invalid UTF-8 %q", ev.Payload)
				}
				if ev.Kind == Close && (!utf8.ValidString(ev.Reason) || (ev.Code != conntable.CloseNoStatus && !ValidCloseCode(ev.Code))) {
					t.Fatalf("close event code %d reason %q", ev.Code, ev.Reason)
				}
				out = append(out, decoded{ev.Kind, byte(ev.Op), string(ev.Payload), ev.Code, ev.Reason})
			}
			pending = pending[n:]
			if ev.Kind == NeedMore && n == 0 {
				break
			}
		}
	}
	return out, nil
}

func FuzzDecoder(f *testing.F) {
	f.Add(mask(true, 0x1, []byte("hello")), uint8(0), uint16(1024))
	f.Add(append(mask(false, 0x1, []byte("hé")), append(mask(true, 0x9, []byte("p")), mask(true, 0x0, []byte("llo ✓"))...)...), uint8(3), uint16(1024))
	f.Add(mask(true, 0x2, bytes.Repeat([]byte{0xff}, 300)), uint8(7), uint16(200))
	f.Add(mask(true, 0x8, append([]byte{0x03, 0xe8}, "bye"...)), uint8(1), uint16(0))
	f.Add(mask(true, 0x1, []byte{0xe2, 0x82}), uint8(1), uint16(64))
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(2), uint16(64))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, uint8(0), uint16(64))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8, max uint16) {
		whole, errWhole := decodeAll(t, bytes.Clone(stream), 0, int(max))
		pieces, errPieces := decodeAll(t, bytes.Clone(stream), int(chunk), int(max))
		if (errWhole == nil) != (errPieces == nil) {
			t.Fatalf("whole: %v, in %d-byte pieces: %v", errWhole, chunk, errPieces)
		}
		// An error found earlier in pieces (UTF-8 is checked as it streams) may cut the events short.
		if errWhole == nil && len(whole) != len(pieces) {
			t.Fatalf("whole gives %d events, pieces %d", len(whole), len(pieces))
		}
		for i := range min(len(whole), len(pieces)) {
			if whole[i] != pieces[i] {
				t.Fatalf("event %d: whole %+v, pieces %+v", i, whole[i], pieces[i])
			}
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x85"), uint16(8192), uint8(0))
	f.Add([]byte("GET /healthz?x=1 HTTP/1.0\r\n\r\n"), uint16(0), uint8(0))
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nX: "+strings.Repeat("a", 300)+"\r\n\r\n"), uint16(256), uint8(0))
	f.Add([]byte("GET / HTTP/1.1\r\n: novalue\r\n\r\n"), uint16(1024), uint8(0))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), uint16(1024), uint8(0))
	f.Add([]byte("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), uint16(1024), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, max uint16, maxHeaders uint8) {
		maxSize := int(max)
		req, n, err := parseOwned(b, maxSize, int(maxHeaders))
		if maxSize <= 0 {
			maxSize = MaxRequestHeader
		}
		if err != nil {
			var he *HTTPError
			if !errors.As(err, &he) || he.Status < 400 || he.Status > 599 {
				t.Fatalf("error %#v is not an HTTP 4xx/5xx", err)
			}
		}
		if n < 0 || n > len(b) || n > maxSize {
			t.Fatalf("n = %d for %d bytes, max %d", n, len(b), maxSize)
		}
		if n > 0 && !bytes.HasSuffix(b[:n], []byte("\r\n\r\n")) {
			t.Fatalf("head of %d bytes does not end the request head", n)
		}
		if n == 0 && err == nil && bytes.Contains(b, []byte("\r\n\r\n")) {
			t.Fatal("a complete head reported as incomplete")
		}
		if err == nil && n > 0 {
			// The same head alone parses the same: pipelined bytes after it do not matter.
			again, n2, err2 := parseOwned(b[:n], int(max), int(maxHeaders))
			if n2 != n || err2 != nil || again.Target != req.Target || len(again.Headers) != len(req.Headers) {
				t.Fatalf("head alone: n %d err %v", n2, err2)
			}
			if !strings.HasPrefix(req.Target, req.Path) || strings.Contains(req.Path, "?") || !IsToken([]byte(req.Method)) {
				t.Fatalf("request line %q %q %q", req.Method, req.Target, req.Path)
			}
			// Every line ends in CRLF and holds one header: a proxy splitting on LF (or on
			// CR) alone sees the same headers.
			if lines := bytes.Count(b[:n], []byte("\n")); lines != len(req.Headers)+2 || bytes.Count(b[:n], []byte("\r")) != lines {
				t.Fatalf("%d LFs, %d CRs for %d headers", lines, bytes.Count(b[:n], []byte("\r")), len(req.Headers))
			}
			if limit := cmp.Or(int(maxHeaders), DefaultMaxHeaders); len(req.Headers) > limit {
				t.Fatalf("%d headers, limit %d", len(req.Headers), limit)
			}
			for _, h := range req.Headers {
				if h.Name == "" || h.Name != strings.ToLower(h.Name) || !IsToken([]byte(h.Name)) {
					t.Fatalf("header name %q", h.Name)
				}
				for _, c := range []byte(h.Value) {
					if (c < ' ' && c != '\t') || c == 0x7f {
						t.Fatalf("header %q value %q holds control byte %#x", h.Name, h.Value, c)
					}
				}
			}
			if accept, err := CheckUpgrade(&req); err == nil {
				if accept != AcceptKey(req.Get("sec-websocket-key")) {
					t.Fatal("accept key")
				}
			} else if he, ok := err.(*HTTPError); !ok || he.Status < 400 {
				t.Fatalf("CheckUpgrade error %#v", err)
			}
		}
	})
}

func FuzzUTF8(f *testing.F) {
	f.Add([]byte("héllo ✓ 𝄞"), []byte{1, 2, 3})
	f.Add([]byte{0xe2, 0x82, 0xac}, []byte{1, 1})
	f.Add([]byte{0xf0, 0x9f, 0x98}, []byte{2})
	f.Add([]byte{0xed, 0xa0, 0x80}, []byte{1})       // surrogate
	f.Add([]byte{0xf4, 0x90, 0x80, 0x80}, []byte{3}) // over U+10FFFF
	f.Add([]byte{0xc0, 0xaf}, []byte{1})             // overlong
	f.Fuzz(func(t *testing.T, data []byte, splits []byte) {
		var u UTF8
		ok := true
		rest := data
		for _, s := range splits {
			if len(rest) == 0 {
				break
			}
			k := int(s) % (len(rest) + 1)
			if !u.Write(rest[:k]) {
				ok = false
				break
			}
			rest = rest[k:]
		}
		if ok {
			ok = u.Write(rest) && u.Complete()
		}
		if ok != utf8.Valid(data) {
			t.Fatalf("streamed validator says %v, utf8.Valid %v for % x split by %v", ok, utf8.Valid(data), data, splits)
		}
	})
}

// Command refecho is the benchmark's ceiling for the WebSocket side: the
// least a gnet + gobwas/ws echo server has to do. It upgrades from the bytes
// gnet has buffered (so a frame pipelined behind the handshake is kept),
// echoes every data frame as it arrives (same opcode, same FIN: fragments are
// echoed as fragments), answers ping with pong and close with close, and keeps
// no per-connection state beyond one pointer. It checks masking, reserved
// bits and UTF-8 of unfragmented text, which any conforming relay must also
// pay for.
//
//	refecho -addr 127.0.0.1:8765 [-reuseport] [-loops N]
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
)

const maxHandshake = 8 << 10
const maxFrame = 16 << 20

// upgraded marks an upgraded connection in gnet's per-connection context
// without allocating anything per connection.
var upgraded = new(struct{ _ byte })

type server struct {
	gnet.BuiltinEventEngine
	addr string
}

func (s *server) OnBoot(eng gnet.Engine) gnet.Action {
	fmt.Fprintf(os.Stderr, "refecho: listening on %s\n", s.addr)
	return gnet.None
}

// handshakeRW feeds exactly the request bytes to the upgrader and collects
// its answer.
type handshakeRW struct {
	r *bytes.Reader
	w bytes.Buffer
}

func (h *handshakeRW) Read(p []byte) (int, error)  { return h.r.Read(p) }
func (h *handshakeRW) Write(p []byte) (int, error) { return h.w.Write(p) }

var crlf2 = []byte("\r\n\r\n")

func (s *server) OnTraffic(c gnet.Conn) gnet.Action {
	if c.Context() != upgraded {
		buf, _ := c.Peek(-1)
		i := bytes.Index(buf, crlf2)
		if i < 0 {
			if len(buf) > maxHandshake {
				return gnet.Close
			}
			return gnet.None // wait for the rest of the request
		}
		rw := &handshakeRW{r: bytes.NewReader(buf[:i+4])}
		_, err := ws.Upgrade(rw)
		_, _ = c.Write(rw.w.Bytes())
		if err != nil {
			return gnet.Close
		}
		_, _ = c.Discard(i + 4)
		c.SetContext(upgraded)
	}
	for {
		n := c.InboundBuffered()
		if n < 2 {
			return gnet.None
		}
		head, _ := c.Peek(min(n, 14))
		b0, b1 := head[0], head[1]
		fin, op := b0&0x80 != 0, ws.OpCode(b0&0x0F)
		if b0&0x70 != 0 || b1&0x80 == 0 { // reserved bits, or an unmasked client frame
			return closeWith(c, ws.StatusProtocolError)
		}
		hl, l := 2, int(b1&0x7F)
		switch l {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if n < hl+4 {
			return gnet.None
		}
		switch hl {
		case 4:
			l = int(binary.BigEndian.Uint16(head[2:]))
		case 10:
			v := binary.BigEndian.Uint64(head[2:])
			if v > maxFrame {
				return closeWith(c, ws.StatusMessageTooBig)
			}
			l = int(v)
		}
		var mask [4]byte
		copy(mask[:], head[hl:hl+4])
		hl += 4
		if n < hl+l {
			return gnet.None // partial frame: gnet calls again when more arrives
		}
		frame, _ := c.Peek(hl + l)
		payload := frame[hl:]
		ws.Cipher(payload, mask, 0) // unmask in place: these bytes are discarded below
		switch op {
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			if op == ws.OpText && fin && !utf8.Valid(payload) {
				return closeWith(c, ws.StatusInvalidFramePayloadData)
			}
			writeFrame(c, fin, op, payload)
		case ws.OpPing:
			if !fin || l > 125 {
				return closeWith(c, ws.StatusProtocolError)
			}
			writeFrame(c, true, ws.OpPong, payload)
		case ws.OpPong:
		case ws.OpClose:
			code := payload[:min(2, len(payload))]
			writeFrame(c, true, ws.OpClose, code)
			_, _ = c.Discard(hl + l)
			return gnet.Close
		default:
			return closeWith(c, ws.StatusProtocolError)
		}
		_, _ = c.Discard(hl + l)
	}
}

// writeFrame writes an unmasked server frame; on the event loop gnet writes
// at once and copies what the socket did not take, so payload may be reused.
func writeFrame(c gnet.Conn, fin bool, op ws.OpCode, payload []byte) {
	var hdr [10]byte
	hdr[0] = byte(op)
	if fin {
		hdr[0] |= 0x80
	}
	hl := 2
	switch n := len(payload); {
	case n <= 125:
		hdr[1] = byte(n)
	case n <= 0xFFFF:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
		hl = 4
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
		hl = 10
	}
	if len(payload) == 0 {
		_, _ = c.Write(hdr[:hl])
		return
	}
	_, _ = c.Writev([][]byte{hdr[:hl], payload})
}

func closeWith(c gnet.Conn, code ws.StatusCode) gnet.Action {
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], uint16(code))
	writeFrame(c, true, ws.OpClose, p[:])
	return gnet.Close
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8765", "listen address")
	reuse := flag.Bool("reuseport", false, "SO_REUSEPORT, so several processes can share the port")
	loops := flag.Int("loops", runtime.NumCPU(), "event loops")
	flag.Parse()
	s := &server{addr: *addr}
	err := gnet.Run(s, "tcp://"+*addr,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(*loops),
		gnet.WithReusePort(*reuse),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
	)
	if err != nil && err != io.EOF {
		fmt.Fprintln(os.Stderr, "refecho:", err)
		os.Exit(1)
	}
}

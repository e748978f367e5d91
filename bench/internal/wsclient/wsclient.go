// Package wsclient is a minimal RFC 6455 client for load generation.
//
// It is deliberately small: one blocking net.Conn, a bufio.Reader sized by the
// caller, masked frames written in one syscall, and replies parsed without
// allocating when the caller supplies the buffer. It is not a general-purpose
// client (no extensions, no subprotocols); it exists so the load generator
// costs as little CPU as possible and the relay, not the client, is measured.
package wsclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Opcodes (RFC 6455 §5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Errors a caller may want to tell apart.
var (
	ErrBadStatus    = errors.New("wsclient: upgrade answered with a status other than 101")
	ErrBadAccept    = errors.New("wsclient: Sec-WebSocket-Accept does not match the key")
	ErrMaskedServer = errors.New("wsclient: server sent a masked frame")
	ErrProtocol     = errors.New("wsclient: protocol error in server frame")
	ErrTooBig       = errors.New("wsclient: message larger than the read limit")
)

// CloseError is returned by ReadMessage when the server sent a close frame.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("wsclient: server closed with %d %q", e.Code, e.Reason)
}

// Options for Dial. The zero value dials with no local address, a 4 KiB read
// buffer and a 1 MiB message limit.
type Options struct {
	// LocalIP is the source address (for example 127.0.0.2). Spreading
	// connections over several source addresses multiplies the ephemeral
	// ports available towards one destination.
	LocalIP net.IP
	// ReadBufferSize of the bufio.Reader; small (e.g. 256) for idle holds.
	ReadBufferSize int
	// MaxMessage bounds ReadMessage.
	MaxMessage int
	// Path of the upgrade request; "/ws" when empty.
	Path string
	// Timeout for connect plus handshake; 10 s when zero.
	Timeout time.Duration
}

// Conn is one client WebSocket connection. Writes are serialized, so one
// reader goroutine (which answers pings) and writer goroutines may use it at
// the same time; ReadMessage itself is for one goroutine.
type Conn struct {
	nc     net.Conn
	br     *bufio.Reader
	max    int
	wmu    sync.Mutex // guards wbuf, prng and the writes
	wbuf   []byte
	prng   uint64
	closed bool
}

// NetConn exposes the underlying connection (for deadlines).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Dial connects to addr (host:port), performs the upgrade and checks the
// server's answer, including Sec-WebSocket-Accept.
func Dial(ctx context.Context, addr string, o Options) (*Conn, error) {
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = 4096
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = 1 << 20
	}
	if o.Path == "" {
		o.Path = "/ws"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	d := net.Dialer{Timeout: o.Timeout, Control: bindNoPort}
	if o.LocalIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: o.LocalIP}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := Handshake(nc, addr, o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT so that binding a source address
// does not reserve an ephemeral port before connect: the kernel then picks
// the port per 4-tuple, and one source address serves several destinations.
func bindNoPort(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, 24 /* IP_BIND_ADDRESS_NO_PORT */, 1)
	})
	if err != nil {
		return err
	}
	_ = serr // best effort: older kernels lack the option
	return nil
}

// Handshake upgrades an already connected nc.
func Handshake(nc net.Conn, host string, o Options) (*Conn, error) {
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = 4096
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = 1 << 20
	}
	if o.Path == "" {
		o.Path = "/ws"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString(raw[:])
	req := make([]byte, 0, 192)
	req = append(req, "GET "...)
	req = append(req, o.Path...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, host...)
	req = append(req, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	req = append(req, key...)
	req = append(req, "\r\nSec-WebSocket-Version: 13\r\n\r\n"...)
	_ = nc.SetDeadline(time.Now().Add(o.Timeout))
	if _, err := nc.Write(req); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, o.ReadBufferSize)
	if err := readUpgradeResponse(br, key); err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	c := &Conn{nc: nc, br: br, max: o.MaxMessage}
	c.prng = binary.LittleEndian.Uint64(raw[:8]) | 1
	return c, nil
}

// AcceptKey computes Sec-WebSocket-Accept for a key.
func AcceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(acceptGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func readUpgradeResponse(br *bufio.Reader, key string) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("reading status line: %w", err)
	}
	// "HTTP/1.1 101 Switching Protocols"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return fmt.Errorf("%w: %q", ErrBadStatus, bytes.TrimSpace(line))
	}
	if string(line[9:12]) != "101" {
		return fmt.Errorf("%w: %q", ErrBadStatus, bytes.TrimSpace(line))
	}
	want := AcceptKey(key)
	gotAccept := false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("reading headers: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		name := bytes.TrimSpace(line[:i])
		if bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")) {
			if string(bytes.TrimSpace(line[i+1:])) != want {
				return ErrBadAccept
			}
			gotAccept = true
		}
	}
	if !gotAccept {
		return ErrBadAccept
	}
	return nil
}

// nextMask is xorshift64*: masks must not be predictable by intermediaries in
// browsers; for a load generator a fast PRNG seeded from crypto/rand is enough.
func (c *Conn) nextMask() uint32 {
	c.prng ^= c.prng >> 12
	c.prng ^= c.prng << 25
	c.prng ^= c.prng >> 27
	return uint32((c.prng * 2685821657736338717) >> 32)
}

// AppendFrame appends one masked client frame to dst.
func AppendFrame(dst []byte, fin bool, op byte, mask uint32, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	n := len(payload)
	switch {
	case n <= 125:
		dst = append(dst, b0, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	var mk [4]byte
	binary.BigEndian.PutUint32(mk[:], mask)
	dst = append(dst, mk[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	maskBytes(dst[start:], mk)
	return dst
}

func maskBytes(b []byte, mk [4]byte) {
	// 8 bytes at a time, then the tail.
	m := uint64(binary.LittleEndian.Uint32(mk[:]))
	m |= m << 32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		binary.LittleEndian.PutUint64(b[i:], v^m)
	}
	for ; i < len(b); i++ {
		b[i] ^= mk[i&3]
	}
}

// WriteMessage writes one unfragmented message in one write call.
func (c *Conn) WriteMessage(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = AppendFrame(c.wbuf[:0], true, op, c.nextMask(), payload)
	_, err := c.nc.Write(c.wbuf)
	return err
}

// WriteFragments writes payload as n frames (first with op, then continuations).
func (c *Conn) WriteFragments(op byte, payload []byte, n int) error {
	if n < 1 {
		n = 1
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = c.wbuf[:0]
	step := (len(payload) + n - 1) / n
	if step == 0 {
		step = 1
	}
	first := true
	for off := 0; off < len(payload) || first; off += step {
		end := min(off+step, len(payload))
		o := OpContinuation
		if first {
			o = op
		}
		c.wbuf = AppendFrame(c.wbuf, end >= len(payload), o, c.nextMask(), payload[off:end])
		first = false
		if end >= len(payload) {
			break
		}
	}
	_, err := c.nc.Write(c.wbuf)
	return err
}

// readHeader reads one frame header. Server frames must not be masked.
func (c *Conn) readHeader() (fin bool, op byte, n int64, err error) {
	b, err := c.br.Peek(2)
	if err != nil {
		return
	}
	fin = b[0]&0x80 != 0
	if b[0]&0x70 != 0 {
		err = ErrProtocol
		return
	}
	op = b[0] & 0x0F
	if b[1]&0x80 != 0 {
		err = ErrMaskedServer
		return
	}
	l := int64(b[1] & 0x7F)
	hl := 2
	switch l {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	if b, err = c.br.Peek(hl); err != nil {
		return
	}
	switch hl {
	case 4:
		l = int64(binary.BigEndian.Uint16(b[2:]))
	case 10:
		l = int64(binary.BigEndian.Uint64(b[2:]))
		if l < 0 {
			err = ErrProtocol
			return
		}
	}
	if op >= 0x8 && (l > 125 || !fin) {
		err = ErrProtocol
		return
	}
	_, err = c.br.Discard(hl)
	return fin, op, l, err
}

// ReadMessage reads the next data message into buf (grown if needed) and
// returns its opcode and bytes. Pings are answered with pongs carrying the
// same payload; pongs are skipped; a close frame is answered and returned as
// *CloseError.
func (c *Conn) ReadMessage(buf []byte) (op byte, msg []byte, err error) {
	msg = buf[:0]
	op = 0
	var ctrl [125]byte
	for {
		fin, fop, n, err := c.readHeader()
		if err != nil {
			return 0, msg, err
		}
		if fop >= 0x8 {
			p := ctrl[:n]
			if _, err := io.ReadFull(c.br, p); err != nil {
				return 0, msg, err
			}
			switch fop {
			case OpPing:
				if err := c.WriteMessage(OpPong, p); err != nil {
					return 0, msg, err
				}
			case OpPong:
			case OpClose:
				ce := &CloseError{Code: 1005}
				if len(p) >= 2 {
					ce.Code = int(binary.BigEndian.Uint16(p))
					ce.Reason = string(p[2:])
				}
				if !c.closed {
					c.closed = true
					_ = c.WriteMessage(OpClose, p[:min(2, len(p))])
				}
				return OpClose, msg, ce
			default:
				return 0, msg, ErrProtocol
			}
			continue
		}
		if fop == OpContinuation {
			if op == 0 {
				return 0, msg, ErrProtocol
			}
		} else {
			if op != 0 {
				return 0, msg, ErrProtocol
			}
			op = fop
		}
		if int64(len(msg))+n > int64(c.max) {
			return 0, msg, ErrTooBig
		}
		start := len(msg)
		need := start + int(n)
		if cap(msg) < need {
			nm := make([]byte, start, need)
			copy(nm, msg)
			msg = nm
		}
		msg = msg[:need]
		if _, err := io.ReadFull(c.br, msg[start:]); err != nil {
			return 0, msg, err
		}
		if fin {
			return op, msg, nil
		}
	}
}

// Close performs the closing handshake (code 1000) bounded by timeout: it
// sends a close frame, waits for the server's close and for the server to
// drop the TCP connection (so TIME_WAIT lands on the server side, as RFC 6455
// §7.1.1 intends), then closes.
func (c *Conn) Close(timeout time.Duration) error {
	defer c.nc.Close()
	if !c.closed {
		c.closed = true
		if err := c.WriteMessage(OpClose, []byte{0x03, 0xE8}); err != nil {
			return err
		}
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	var scratch [512]byte
	for {
		_, _, err := c.ReadMessage(scratch[:0])
		var ce *CloseError
		if errors.As(err, &ce) {
			// Wait for EOF: the server closes TCP first.
			_, err = c.br.Read(scratch[:])
			for err == nil {
				_, err = c.br.Read(scratch[:])
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// Abort closes the TCP connection without a closing handshake.
func (c *Conn) Abort() error { return c.nc.Close() }

// FormatPayload fills p with a verifiable payload: the connection number and
// sequence number as fixed-width decimal, then a repeating printable pattern.
// Text-safe (ASCII) so it can go in text frames.
func FormatPayload(p []byte, conn int, seq uint64) {
	var head [24]byte
	h := strconv.AppendUint(head[:0], uint64(conn), 10)
	h = append(h, ':')
	h = strconv.AppendUint(h, seq, 10)
	h = append(h, ':')
	n := copy(p, h)
	for i := n; i < len(p); i++ {
		p[i] = 'a' + byte((i+int(seq))%26)
	}
}

// Detach hands the connection over to the caller's own event loop: it returns a duplicate
// of the socket's descriptor (non-blocking, close-on-exec) and any bytes already read past
// the handshake, and closes the Conn's own descriptor. The socket stays open until the
// caller closes fd.
func (c *Conn) Detach() (fd int, pending []byte, err error) {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return -1, nil, errors.New("wsclient: connection has no descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, nil, err
	}
	fd = -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		syscall.ForkLock.RLock()
		fd, derr = syscall.Dup(int(s))
		if derr == nil {
			syscall.CloseOnExec(fd)
		}
		syscall.ForkLock.RUnlock()
	}); err != nil {
		return -1, nil, err
	}
	if derr != nil {
		return -1, nil, derr
	}
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		pending = append([]byte(nil), b...)
	}
	c.closed = true
	_ = c.nc.Close()
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, nil, err
	}
	return fd, pending, nil
}

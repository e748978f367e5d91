package wsclient

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// fakeServer upgrades one connection by hand and echoes data frames as
// unmasked server frames; it answers a close with a close and hangs up.
func fakeServer(t *testing.T, nc net.Conn, pingFirst bool) {
	t.Helper()
	br := bufio.NewReader(nc)
	req, err := http.ReadRequest(br)
	if err != nil {
		t.Errorf("server: %v", err)
		return
	}
	key := req.Header.Get("Sec-WebSocket-Key")
	io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+AcceptKey(key)+"\r\n\r\n")
	if pingFirst {
		nc.Write([]byte{0x89, 3, 'a', 'b', 'c'})
	}
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return
		}
		if h[1]&0x80 == 0 {
			t.Errorf("server: client frame not masked")
			return
		}
		n := int(h[1] & 0x7F)
		switch n {
		case 126:
			var e [2]byte
			io.ReadFull(br, e[:])
			n = int(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			io.ReadFull(br, e[:])
			n = int(binary.BigEndian.Uint64(e[:]))
		}
		var mk [4]byte
		io.ReadFull(br, mk[:])
		p := make([]byte, n)
		io.ReadFull(br, p)
		maskBytes(p, mk)
		op := h[0] & 0x0F
		if op == OpPong {
			continue
		}
		// Echo, split in two frames to exercise continuation handling.
		out := []byte{}
		if op == OpText || op == OpBinary {
			half := len(p) / 2
			out = appendServerFrame(out, false, op, p[:half])
			out = appendServerFrame(out, true, OpContinuation, p[half:])
		} else {
			out = appendServerFrame(out, true, op, p)
		}
		nc.Write(out)
		if op == OpClose {
			nc.Close()
			return
		}
	}
}

func appendServerFrame(dst []byte, fin bool, op byte, p []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	switch n := len(p); {
	case n <= 125:
		dst = append(dst, b0, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, p...)
}

// tcpPair returns both ends of a loopback TCP connection (net.Pipe has no
// buffering, which would deadlock a ping answered while the echo is written).
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-ch
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli, srv
}

func TestEchoRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 64, 125, 126, 4096, 70000} {
		cli, srv := tcpPair(t)
		go fakeServer(t, srv, true)
		c, err := Handshake(cli, "test", Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("size %d: handshake: %v", size, err)
		}
		msg := make([]byte, size)
		FormatPayload(msg, 7, uint64(size))
		// One goroutine only: ReadMessage answers the server's ping with a write of its own.
		if err := c.WriteMessage(OpText, msg); err != nil {
			t.Fatalf("size %d: write: %v", size, err)
		}
		op, got, err := c.ReadMessage(nil)
		if err != nil || op != OpText || !bytes.Equal(got, msg) {
			t.Fatalf("size %d: op %d err %v equal %v", size, op, err, bytes.Equal(got, msg))
		}
		done := make(chan error, 1)
		go func() { done <- c.Close(2 * time.Second) }()
		if err := <-done; err != nil {
			t.Fatalf("size %d: close: %v", size, err)
		}
	}
}

func TestBadAccept(t *testing.T) {
	cli, srv := tcpPair(t)
	go func() {
		br := bufio.NewReader(srv)
		http.ReadRequest(br)
		io.WriteString(srv, "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n")
	}()
	if _, err := Handshake(cli, "test", Options{Timeout: time.Second}); !errors.Is(err, ErrBadAccept) {
		t.Fatalf("got %v, want ErrBadAccept", err)
	}
}

func TestMaskMatchesBytewise(t *testing.T) {
	mk := [4]byte{1, 2, 3, 4}
	for n := 0; n < 40; n++ {
		a := bytes.Repeat([]byte{0xAA}, n)
		b := append([]byte(nil), a...)
		maskBytes(a, mk)
		for i := range b {
			b[i] ^= mk[i%4]
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("n=%d: mask mismatch", n)
		}
	}
}

package e2e

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// CONTRACT §5: loopback echoes with the same opcode and bytes.
func TestLoopbackEchoesSameOpcodeAndBytes(t *testing.T) {
	r := startRelay(t)
	c := dial(t, r.WSURL, nil)
	big := bytes.Repeat([]byte{0xff, 0x00, 'x'}, 100_000)
	cases := []struct {
		typ int
		msg []byte
	}{
		{websocket.TextMessage, []byte("héllo ✓")},
		{websocket.BinaryMessage, []byte{0, 1, 2, 0xfe, 0xff}},
		{websocket.BinaryMessage, big},
		{websocket.TextMessage, []byte(strings.Repeat("a", 70_000))},
	}
	for _, tc := range cases {
		if err := c.WriteMessage(tc.typ, tc.msg); err != nil {
			t.Fatal(err)
		}
		typ, got := readMessage(t, c)
		if typ != tc.typ || !bytes.Equal(got, tc.msg) {
			t.Fatalf("echo: type %d len %d, want type %d len %d", typ, len(got), tc.typ, len(tc.msg))
		}
	}
}

// CONTRACT §1: plain HTTP on the public port gets a status, never a hang.
func TestPublicPortPlainHTTP(t *testing.T) {
	r := startRelay(t)
	cases := []struct {
		method, path string
		want         int
	}{
		{"GET", "/healthz", 200},
		{"GET", "/ws", 426},
		{"POST", "/ws", 405},
		{"GET", "/nope", 404},
		{"DELETE", "/healthz", 405},
		{"GET", "/poll/x", 404},
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, "http://"+r.Public+tc.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
}

// CONTRACT §6: a handshake split across reads, with a frame pipelined right behind it.
func TestHandshakeSplitAndPipelinedFrame(t *testing.T) {
	r := startRelay(t)
	c := rawConnect(t, r.Public)
	req := []byte(upgradeRequest(r.Public))
	// The head in 7-byte pieces, then its last piece and a frame in one write.
	last := len(req) - 5
	for i := 0; i < last; i += 7 {
		c.send(t, req[i:min(i+7, last)])
		time.Sleep(2 * time.Millisecond)
	}
	c.send(t, append(req[last:], frame(true, 0x1, []byte("pipelined"), true)...))
	head := c.expectStatus(t, 101)
	if !strings.Contains(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
		t.Fatalf("wrong accept key in %q", head)
	}
	_, op, p := c.readFrame(t)
	if op != 0x1 || string(p) != "pipelined" {
		t.Fatalf("got op %d %q", op, p)
	}
}

// CONTRACT §6: fragments with a ping between them are joined; the ping is answered.
func TestFragmentationWithInterleavedPing(t *testing.T) {
	r := startRelay(t)
	c := rawDial(t, r.Public)
	var b []byte
	b = append(b, frame(false, 0x1, []byte("frag"), true)...)
	b = append(b, frame(true, 0x9, []byte("ping-payload"), true)...)
	b = append(b, frame(false, 0x0, []byte("men"), true)...)
	b = append(b, frame(true, 0x0, []byte("ted ✓"), true)...)
	// Byte by byte, so every partial-frame path runs.
	for i := range b {
		c.send(t, b[i:i+1])
	}
	_, op, p := c.readFrame(t)
	if op != 0xA || string(p) != "ping-payload" {
		t.Fatalf("want pong with the ping's payload, got op %d %q", op, p)
	}
	fin, op, p := c.readFrame(t)
	if !fin || op != 0x1 || string(p) != "fragmented ✓" {
		t.Fatalf("want joined text, got fin %v op %d %q", fin, op, p)
	}
}

// CONTRACT §6 and §7: each protocol fault closes with its code.
func TestProtocolErrorsCloseWithCode(t *testing.T) {
	r := startRelay(t, "--max-message-size", "1000")
	closeWith := func(code uint16, reason string) []byte {
		return binary.BigEndian.AppendUint16(nil, code)
	}
	cases := []struct {
		name  string
		bytes []byte
		want  int
	}{
		{"unmasked", frame(true, 0x1, []byte("x"), false), 1002},
		{"rsv bit", func() []byte { f := frame(true, 0x1, []byte("x"), true); f[0] |= 0x40; return f }(), 1002},
		{"reserved opcode", frame(true, 0x3, nil, true), 1002},
		{"reserved control opcode", frame(true, 0xB, nil, true), 1002},
		{"control over 125", frame(true, 0x9, bytes.Repeat([]byte("p"), 126), true), 1002},
		{"fragmented control", frame(false, 0x9, []byte("p"), true), 1002},
		{"continuation first", frame(true, 0x0, []byte("x"), true), 1002},
		{"new message inside fragmented", append(frame(false, 0x1, []byte("a"), true), frame(true, 0x1, []byte("b"), true)...), 1002},
		{"close code 1005", frame(true, 0x8, closeWith(1005, ""), true), 1002},
		{"close code 999", frame(true, 0x8, closeWith(999, ""), true), 1002},
		{"close payload of 1 byte", frame(true, 0x8, []byte{3}, true), 1002},
		{"close reason not UTF-8", frame(true, 0x8, append(closeWith(1000, ""), 0xff, 0xfe), true), 1007},
		{"text not UTF-8", frame(true, 0x1, []byte{'a', 0xc3}, true), 1007},
		{"fragmented text not UTF-8", append(frame(false, 0x1, []byte{0xed}, true), frame(true, 0x0, []byte{0xa0, 0x80}, true)...), 1007},
		{"too big single frame", frame(true, 0x2, make([]byte, 1001), true), 1009},
		{"too big in fragments", append(frame(false, 0x2, make([]byte, 600), true), frame(true, 0x0, make([]byte, 600), true)...), 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, r.Public)
			c.send(t, tc.bytes)
			if got := c.expectCloseFrame(t); got != tc.want {
				t.Fatalf("close code %d, want %d", got, tc.want)
			}
			c.expectEOF(t)
		})
	}
}

// CONTRACT §6 and §7: a client's close is echoed with its code; 1000 from the relay too.
func TestCloseHandshakeEchoesCode(t *testing.T) {
	r := startRelay(t)
	for _, code := range []uint16{1000, 1001, 3000, 4999} {
		c := rawDial(t, r.Public)
		c.send(t, frame(true, 0x8, append(binary.BigEndian.AppendUint16(nil, code), "bye"...), true))
		_, op, p := c.readFrame(t)
		if op != 0x8 || binary.BigEndian.Uint16(p) != code {
			t.Fatalf("want close echo %d, got op %d %v", code, op, p)
		}
		c.expectEOF(t)
	}
	// An empty close is answered with an empty close.
	c := rawDial(t, r.Public)
	c.send(t, frame(true, 0x8, nil, true))
	if _, op, p := c.readFrame(t); op != 0x8 || len(p) != 0 {
		t.Fatalf("want empty close echo, got op %d %v", op, p)
	}
}

// CONTRACT §6: idle clients are pinged; a silent one is dropped after the ping timeout.
func TestServerPingsAndDropsSilentClient(t *testing.T) {
	r := startRelay(t, "--ping-interval", "200ms", "--ping-timeout", "300ms")
	// gorilla answers pings by default: that client stays.
	alive := dial(t, r.WSURL, nil)
	pinged := make(chan struct{}, 1)
	alive.SetPingHandler(func(data string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return alive.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := alive.ReadMessage(); err != nil {
				return
			}
		}
	}()
	// A raw client that never answers.
	silent := rawDial(t, r.Public)
	_, op, _ := silent.readFrame(t)
	if op != 0x9 {
		t.Fatalf("want a ping, got op %d", op)
	}
	start := time.Now()
	silent.expectEOF(t)
	if waited := time.Since(start); waited > 3*time.Second {
		t.Fatalf("silent client dropped only after %v", waited)
	}
	select {
	case <-pinged:
	case <-time.After(3 * time.Second):
		t.Fatal("answering client was never pinged")
	}
	time.Sleep(800 * time.Millisecond)
	if err := alive.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatalf("answering client was dropped: %v", err)
	}
}

// CONTRACT §7: 1001 on shutdown.
func TestShutdownClosesWith1001(t *testing.T) {
	r := startRelay(t)
	c := dial(t, r.WSURL, nil)
	done := make(chan error, 1)
	go func() { done <- r.Shutdown(t.Context()) }()
	if code, _ := expectClose(t, c); code != 1001 {
		t.Fatalf("close code %d, want 1001", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// A frame that arrives in pieces, with pauses so each piece is its own read, is kept whole:
// bytes the decoder cannot use yet must stay in the buffer.
func TestPartialFramesAcrossReads(t *testing.T) {
	r := startRelay(t)
	c := rawDial(t, r.Public)
	ping := frame(true, 0x9, []byte("split-ping"), true)
	text := frame(true, 0x1, []byte("split text"), true)
	for _, piece := range [][]byte{ping[:1], ping[1:3], ping[3:7], ping[7:], text[:2], text[2:9], text[9:]} {
		c.send(t, piece)
		time.Sleep(30 * time.Millisecond)
	}
	if _, op, p := c.readFrame(t); op != 0xA || string(p) != "split-ping" {
		t.Fatalf("want pong, got op %d %q", op, p)
	}
	if _, op, p := c.readFrame(t); op != 0x1 || string(p) != "split text" {
		t.Fatalf("want echo, got op %d %q", op, p)
	}
}

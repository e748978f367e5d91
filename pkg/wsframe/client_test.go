package wsframe

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// serverFrame builds an unmasked server frame.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	return append(AppendHeader(nil, fin, ws.OpCode(op), len(payload)), payload...)
}

func TestMaskedFrameDecodesOnTheServerSide(t *testing.T) {
	for _, n := range []int{0, 5, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte("abcdefg"), n/7+1)[:n]
		frame := AppendMaskedFrame(nil, OpBinary, payload, testMask)
		if len(frame) != MaskedFrameSize(n) {
			t.Fatalf("%d: frame is %d bytes, MaskedFrameSize says %d", n, len(frame), MaskedFrameSize(n))
		}
		var d Decoder
		events, err := feed(&d, frame, 0)
		if err != nil || len(events) != 1 || !bytes.Equal(events[0].Payload, payload) {
			t.Fatalf("%d: %v %d events", n, err, len(events))
		}
	}
	closeFrame := AppendMaskedClose(nil, 4404, strings.Repeat("é", 100), testMask)
	var d Decoder
	events, err := feed(&d, closeFrame, 0)
	if err != nil || events[0].Kind != Close || events[0].Code != 4404 || len(events[0].Reason) != 122 {
		t.Fatalf("close: %v %+v", err, events)
	}
}

func TestFromServerDecoder(t *testing.T) {
	d := Decoder{FromServer: true}
	stream := append(serverFrame(false, byte(OpText), []byte("hel")), serverFrame(true, 0, []byte("lo"))...)
	stream = append(stream, serverFrame(true, byte(OpPing), []byte("p"))...)
	events, err := feed(&d, stream, 3)
	if err != nil || len(events) != 2 || string(events[0].Payload) != "hello" || events[1].Kind != Ping {
		t.Fatalf("%v %+v", err, events)
	}
	d = Decoder{FromServer: true}
	_, err = feed(&d, clientFrame(true, byte(OpText), []byte("x")), 0)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != conntable.CloseProtocolError {
		t.Fatalf("masked server frame: %v", err)
	}
}

func TestParseResponse(t *testing.T) {
	raw := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + AcceptKey("dGhlIHNhbXBsZSBub25jZQ==") + "\r\nSec-WebSocket-Protocol: b\r\n\r\n\x81\x02hi"
	resp, n, err := ParseResponse([]byte(raw), 0)
	if err != nil || n != len(raw)-4 || resp.Status != 101 {
		t.Fatalf("%v %d %+v", err, n, resp)
	}
	proto, err := CheckUpgradeResponse(&resp, "dGhlIHNhbXBsZSBub25jZQ==", []string{"a", "b"})
	if err != nil || proto != "b" {
		t.Fatalf("%q %v", proto, err)
	}
	if _, err := CheckUpgradeResponse(&resp, "dGhlIHNhbXBsZSBub25jZQ==", []string{"a"}); err == nil {
		t.Fatal("a subprotocol that was not offered passed")
	}
	if _, err := CheckUpgradeResponse(&resp, "AAAAAAAAAAAAAAAAAAAAAA==", []string{"b"}); err == nil {
		t.Fatal("a wrong accept passed")
	}
	if _, n, err := ParseResponse([]byte("HTTP/1.1 101 Switching"), 0); n != 0 || err != nil {
		t.Fatalf("partial head: %d %v", n, err)
	}
	for _, bad := range []string{"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 404 x\r\nno colon\r\n\r\n"} {
		if _, _, err := ParseResponse([]byte(bad), 0); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	resp, _, err = ParseResponse([]byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"), 0)
	if err != nil || resp.Status != 404 {
		t.Fatalf("%v %+v", err, resp)
	}
}

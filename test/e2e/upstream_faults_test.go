package e2e

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bad input from the upstream ends both hops with the right codes (CONTRACT §9): the
// upstream gets the close code for what it did, the client 1014 naming the upstream, and the
// end is counted by reason.
func TestUpstreamProtocolErrors(t *testing.T) {
	for _, c := range []struct {
		name      string
		send      []byte
		upstream  int // the close code the upstream gets
		metric    string
		inReason  string
		extraArgs []string
	}{
		{"invalid UTF-8", serverFrame(true, 0x1, []byte{'o', 'k', 0xff, 0xfe}), 1007, "invalid_utf8", "UTF-8", nil},
		{"oversize", serverFrame(true, 0x2, bytes.Repeat([]byte{1}, 2000)), 1009, "too_big", "too big", []string{"--max-message-size", "1024"}},
		{"masked frame", frame(true, 0x1, []byte("hi"), true), 1002, "protocol_error", "masked", nil},
		{"reserved bits", append([]byte{0xC1, 2}, "hi"...), 1002, "protocol_error", "reserved", nil},
		{"bad close code", serverFrame(true, 0x8, []byte{0x03, 0xed}), 1002, "protocol_error", "close code", nil}, // 1005 on the wire
		{"continuation first", serverFrame(true, 0x0, []byte("x")), 1002, "protocol_error", "continuation", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := make(chan []byte, 4)
			up := newRawUpstream(t, func(conn net.Conn, r *bufio.Reader) {
				_, _ = conn.Write(c.send)
				for {
					op, p, err := readClientFrame(r)
					if err != nil {
						return
					}
					if op == 0x8 {
						got <- p
					}
				}
			})
			r := upstreamRelay(t, up.URL, c.extraArgs...)
			cl := rawDial(t, r.Public)
			code, reason, before := cl.rawClose(t)
			cl.send(t, frame(true, 0x8, []byte{byte(code >> 8), byte(code)}, true))
			if code != 1014 || !strings.Contains(reason, "upstream "+up.URL) || !strings.Contains(reason, c.inReason) || len(before) != 0 {
				t.Errorf("client got %d %q after %d messages, want 1014 naming %s and %q", code, reason, len(before), up.URL, c.inReason)
			}
			select {
			case p := <-got:
				if len(p) < 2 || int(p[0])<<8|int(p[1]) != c.upstream {
					t.Errorf("upstream got close payload %q, want code %d", p, c.upstream)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("no close frame at the upstream")
			}
			eventually(t, 5*time.Second, "the end counted", func() bool {
				return strings.Contains(metricsText(t, r), `socketdock_upstream_closes_total{reason="`+c.metric+`"} 1`)
			})
			eventually(t, 5*time.Second, "the client's 1014 counted", func() bool {
				return strings.Contains(metricsText(t, r), `socketdock_closes_total{code="1014"} 1`)
			})
		})
	}
}

// An upstream that dies in the middle of a message: the client gets the whole messages
// before it, then 1014, and never the torn one.
func TestUpstreamDiesMidMessage(t *testing.T) {
	up := newRawUpstream(t, func(conn net.Conn, r *bufio.Reader) {
		_, _, _ = readClientFrame(r) // wait for the client's first message
		whole := serverFrame(true, 0x1, []byte("whole"))
		torn := serverFrame(true, 0x2, bytes.Repeat([]byte{7}, 1000))
		_, _ = conn.Write(append(whole, torn[:300]...))
		time.Sleep(50 * time.Millisecond)
	})
	r := upstreamRelay(t, up.URL, "--upstream-errors", "message")
	c := rawDial(t, r.Public)
	c.send(t, frame(true, 0x1, []byte("go"), true))
	code, reason, before := c.rawClose(t)
	if code != 1014 || !strings.Contains(reason, "lost") {
		t.Fatalf("got %d %q", code, reason)
	}
	if len(before) != 2 || string(before[0]) != "whole" || !bytes.Contains(before[1], []byte(`"error":"upstream ws://`)) {
		t.Fatalf("messages before the close: %q", before)
	}
}

// An upstream that never answers pings is lost after --ping-timeout (CONTRACT §9).
func TestUpstreamPingTimeout(t *testing.T) {
	pings := make(chan struct{}, 8)
	up := newRawUpstream(t, func(conn net.Conn, r *bufio.Reader) {
		for {
			op, _, err := readClientFrame(r)
			if err != nil {
				return
			}
			if op == 0x9 {
				pings <- struct{}{}
			}
		}
	})
	r := upstreamRelay(t, up.URL, "--upstream-ping-interval", "200ms", "--ping-timeout", "400ms")
	c := rawDial(t, r.Public)
	start := time.Now()
	code, reason, _ := c.rawClose(t)
	if code != 1014 || !strings.Contains(reason, "ping timeout") {
		t.Fatalf("got %d %q", code, reason)
	}
	if d := time.Since(start); d < 500*time.Millisecond || d > 5*time.Second {
		t.Errorf("lost after %v, want about 600ms", d)
	}
	select {
	case <-pings:
	default:
		t.Error("the upstream was never pinged")
	}

	// An upstream that answers (gorilla answers pings) stays.
	live := newGoUpstream(t, echoUpstream)
	r2 := upstreamRelay(t, live.URL, "--upstream-ping-interval", "100ms", "--ping-timeout", "1s")
	c2 := dial(t, r2.WSURL, nil)
	time.Sleep(2 * time.Second) // some 20 pings answered
	readUntilOpen(t, c2)
}

// A slow upstream (it answers after a while) is just slow: nothing is lost or reordered.
func TestUpstreamSlowAnswers(t *testing.T) {
	up := newRawUpstream(t, func(conn net.Conn, r *bufio.Reader) {
		for {
			op, p, err := readClientFrame(r)
			if err != nil || op == 0x8 {
				return
			}
			time.Sleep(20 * time.Millisecond)
			_, _ = conn.Write(serverFrame(true, op, p))
		}
	})
	r := upstreamRelay(t, up.URL)
	c := dial(t, r.WSURL, nil)
	for i := 0; i < 30; i++ {
		_ = c.WriteMessage(1, []byte(strconv.Itoa(i)))
	}
	for i := 0; i < 30; i++ {
		if _, p := readMessage(t, c); string(p) != strconv.Itoa(i) {
			t.Fatalf("%d: %q", i, p)
		}
	}
}

// Bad input from the client ends both hops too: the client gets the gateway's code (1007,
// 1009, 1002) and the upstream the same code.
func TestUpstreamClientBadInput(t *testing.T) {
	up := newGoUpstream(t, echoUpstream)
	r := upstreamRelay(t, up.URL, "--max-message-size", "1024")
	for i, c := range []struct {
		name  string
		frame []byte
		code  int
	}{
		{"invalid UTF-8", frame(true, 0x1, []byte{0xff, 0xfe}, true), 1007},
		{"oversize", frame(true, 0x2, bytes.Repeat([]byte{1}, 2000), true), 1009},
		{"unmasked", frame(true, 0x1, []byte("hi"), false), 1002},
	} {
		cl := rawDial(t, r.Public)
		cl.send(t, frame(true, 0x1, []byte("up?"), true))
		if _, _, p := cl.readFrame(t); string(p) != "up?" {
			t.Fatalf("%s: echo %q", c.name, p)
		}
		cl.send(t, c.frame)
		if code, _, _ := cl.rawClose(t); code != c.code {
			t.Errorf("%s: client got %d, want %d", c.name, code, c.code)
		}
		if got := up.closeFrame(t, i+1); got.Code != c.code {
			t.Errorf("%s: upstream got %d %q, want %d", c.name, got.Code, got.Text, c.code)
		}
	}
}

package e2e

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// nodeUpstream is Node's ws server (test/node/ws_upstream.mjs) running as the upstream.
type nodeUpstream struct {
	URL string // ws://127.0.0.1:port
	cmd *exec.Cmd

	mu     sync.Mutex
	closes []string // "code reason" of each close the relay sent
}

// startNodeUpstream starts the Node upstream, or skips the test when Node or the ws package
// (npm ci in test/node) is missing.
func startNodeUpstream(t testing.TB) *nodeUpstream {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the Node upstream tests need it")
	}
	dir, _ := filepath.Abs("../node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws")); err != nil {
		t.Skip("test/node/node_modules/ws is missing: run npm ci in test/node")
	}
	cmd := exec.Command(node, filepath.Join(dir, "ws_upstream.mjs"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u := &nodeUpstream{cmd: cmd}
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "PORT "):
				port <- strings.TrimPrefix(line, "PORT ")
			case strings.HasPrefix(line, "CLOSE "):
				u.mu.Lock()
				u.closes = append(u.closes, strings.TrimPrefix(line, "CLOSE "))
				u.mu.Unlock()
			}
		}
	}()
	t.Cleanup(u.kill)
	select {
	case p := <-port:
		u.URL = "ws://127.0.0.1:" + p
	case <-time.After(10 * time.Second):
		t.Fatal("the Node upstream did not start")
	}
	return u
}

func (u *nodeUpstream) kill() {
	if u.cmd.ProcessState == nil {
		_ = u.cmd.Process.Kill()
		_ = u.cmd.Wait()
	}
}

func (u *nodeUpstream) closeLine(t testing.TB, n int) string {
	t.Helper()
	return nthLocked(t, &u.mu, &u.closes, n, 10*time.Second, "a close at the Node upstream")
}

// CONTRACT §9 against Node's ws as the upstream: relaying, subprotocol and headers, close
// codes both ways, bad input, flow control, and the tremor demo with the process killed.
func TestUpstreamNode(t *testing.T) {
	up := startNodeUpstream(t)

	t.Run("relay and handshake", func(t *testing.T) {
		r := upstreamRelay(t, up.URL+"/headers", "--upstream-pass-path", "--forward-headers", "x-trace")
		d := websocket.Dialer{Subprotocols: []string{"v1.chat", "v2.chat"}}
		c, _, err := d.Dial(r.WSURL+"?q=1", http.Header{"X-Trace": {"n1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.Subprotocol() != "v2.chat" {
			t.Errorf("subprotocol %q", c.Subprotocol())
		}
		_, p := readMessage(t, c)
		var hello struct {
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
		}
		if err := json.Unmarshal(p, &hello); err != nil {
			t.Fatal(err)
		}
		if hello.URL != "/headers/ws?q=1" || hello.Headers["x-trace"] != "n1" || hello.Headers["x-forwarded-for"] != "127.0.0.1" ||
			len(hello.Headers["x-socketdock-connection-id"]) != 32 || hello.Headers["sec-websocket-protocol"] != "v1.chat, v2.chat" {
			t.Errorf("the upstream saw %+v", hello)
		}
		for _, m := range [][]byte{[]byte("snot"), {0, 0xff, 1}} {
			typ := websocket.TextMessage
			if m[0] == 0 {
				typ = websocket.BinaryMessage
			}
			_ = c.WriteMessage(typ, m)
			gt, p := readMessage(t, c)
			if string(m) == "snot" {
				m = []byte("badger")
			}
			if gt != typ || string(p) != string(m) {
				t.Errorf("sent %q, got %d %q", m, gt, p)
			}
		}
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4002, "from the client"), time.Now().Add(time.Second))
		if got := up.closeLine(t, 1); got != "4002 from the client" {
			t.Errorf("Node got close %q", got)
		}
	})

	t.Run("upstream close code", func(t *testing.T) {
		r := upstreamRelay(t, up.URL+"/close/4404")
		c := dial(t, r.WSURL, nil)
		_ = c.WriteMessage(websocket.TextMessage, []byte("x"))
		if code, reason := expectClose(t, c); code != 4404 || reason != "node says" {
			t.Errorf("got %d %q", code, reason)
		}
	})

	t.Run("invalid UTF-8", func(t *testing.T) {
		r := upstreamRelay(t, up.URL+"/invalid")
		c := rawDial(t, r.Public)
		if code, reason, _ := c.rawClose(t); code != 1014 || !strings.Contains(reason, "UTF-8") {
			t.Errorf("got %d %q", code, reason)
		}
		eventually(t, 10*time.Second, "Node's close 1007", func() bool {
			up.mu.Lock()
			defer up.mu.Unlock()
			for _, l := range up.closes {
				if strings.HasPrefix(l, "1007 ") {
					return true
				}
			}
			return false
		})
	})

	t.Run("flood", func(t *testing.T) {
		const n = 1000
		r := upstreamRelay(t, up.URL+"/flood/1000", "--max-outbound-bytes", "131072")
		c := dial(t, r.WSURL, nil)
		_ = c.WriteMessage(websocket.TextMessage, []byte("go"))
		time.Sleep(500 * time.Millisecond)
		for i := 0; i < n; i++ {
			_, p := readMessage(t, c)
			if binary.BigEndian.Uint32(p) != uint32(i) {
				t.Fatalf("message %d has seq %d", i, binary.BigEndian.Uint32(p))
			}
		}
		if strings.Contains(metricsText(t, r), "socketdock_upstream_pauses_total 0") {
			t.Error("no pause counted")
		}
	})

	t.Run("tremor demo, upstream process killed", func(t *testing.T) {
		r := upstreamRelay(t, up.URL+"/echo", "--upstream-errors", "message")
		c := rawDial(t, r.Public)
		c.send(t, frame(true, 0x1, []byte("snot"), true))
		if _, _, p := c.readFrame(t); string(p) != "badger" {
			t.Fatalf("got %q", p)
		}
		up.kill()
		c.send(t, frame(true, 0x1, []byte("snot"), true))
		code, reason, before := c.rawClose(t)
		if code != 1014 || len(before) != 1 || !strings.Contains(string(before[0]), `"error":"upstream `+up.URL+`/echo lost`) {
			t.Fatalf("got %d %q after %q", code, reason, before)
		}
	})
}

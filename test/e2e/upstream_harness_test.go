package e2e

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Upstreams for --backend ws (CONTRACT §9) that we did not write: a gorilla/websocket server
// (here), Node's ws server (upstream_node_test.go), and raw TCP for what no library sends.

// goUpstream is a gorilla/websocket server whose behaviour each test picks.
type goUpstream struct {
	*httptest.Server
	URL string // ws://127.0.0.1:port

	mu       sync.Mutex
	requests []*http.Request // the upgrade requests, as received
	conns    []*websocket.Conn
	closes   []websocket.CloseError // close frames the relay sent, in order
	refuse   int                    // when set, upgrades are answered with this status
	serve    func(u *goUpstream, c *websocket.Conn)
	upgrader websocket.Upgrader
}

func newGoUpstream(t testing.TB, serve func(u *goUpstream, c *websocket.Conn)) *goUpstream {
	t.Helper()
	return startGoUpstream(t, serve, false)
}

// newGoUpstreamTLS is newGoUpstream on wss://, with a certificate for 127.0.0.1 from
// httptest's own CA; caFile holds that CA as PEM for --upstream-ca-file.
func newGoUpstreamTLS(t testing.TB, serve func(u *goUpstream, c *websocket.Conn)) (u *goUpstream, caFile string) {
	t.Helper()
	u = startGoUpstream(t, serve, true)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return u, caFile
}

func startGoUpstream(t testing.TB, serve func(u *goUpstream, c *websocket.Conn), secure bool) *goUpstream {
	t.Helper()
	u := &goUpstream{serve: serve}
	u.upgrader.CheckOrigin = func(*http.Request) bool { return true }
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.requests = append(u.requests, r)
		refuse := u.refuse
		u.mu.Unlock()
		if refuse != 0 {
			http.Error(w, "refused", refuse)
			return
		}
		c, err := u.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		u.mu.Lock()
		u.conns = append(u.conns, c)
		u.mu.Unlock()
		c.SetCloseHandler(func(code int, text string) error {
			u.mu.Lock()
			u.closes = append(u.closes, websocket.CloseError{Code: code, Text: text})
			u.mu.Unlock()
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
			return nil
		})
		u.serve(u, c)
	}))
	if secure {
		u.StartTLS()
	} else {
		u.Start()
	}
	u.URL = "ws" + strings.TrimPrefix(u.Server.URL, "http")
	t.Cleanup(u.kill)
	return u
}

// echoUpstream answers every message with itself, except tremor's "snot", answered "badger".
func echoUpstream(_ *goUpstream, c *websocket.Conn) {
	for {
		typ, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		if string(p) == "snot" {
			p = []byte("badger")
		}
		if err := c.WriteMessage(typ, p); err != nil {
			return
		}
	}
}

// kill drops every upstream connection without a close frame and stops the server.
func (u *goUpstream) kill() {
	u.mu.Lock()
	conns := u.conns
	u.conns = nil
	u.mu.Unlock()
	for _, c := range conns {
		_ = c.NetConn().Close()
	}
	u.Server.Close()
}

func (u *goUpstream) request(t testing.TB, n int) *http.Request {
	t.Helper()
	return nthLocked(t, &u.mu, &u.requests, n, 5*time.Second, "upstream upgrade request")
}

func (u *goUpstream) conn(t testing.TB, n int) *websocket.Conn {
	t.Helper()
	return nthLocked(t, &u.mu, &u.conns, n, 5*time.Second, "upstream connection")
}

// closeFrame waits for the n-th close frame the relay sent upstream.
func (u *goUpstream) closeFrame(t testing.TB, n int) websocket.CloseError {
	t.Helper()
	return nthLocked(t, &u.mu, &u.closes, n, 10*time.Second, "a close frame at the upstream")
}

// upstreamRelay starts a relay on --backend ws in front of url.
func upstreamRelay(t testing.TB, url string, args ...string) *testRelay {
	t.Helper()
	return startRelay(t, append([]string{"--backend", "ws", "--upstream-url", url}, args...)...)
}

// rawUpstream is a TCP server that completes WebSocket handshakes by hand and then runs
// script on the connection: for frames no library sends, and sockets that never read.
type rawUpstream struct {
	ln   net.Listener
	URL  string
	wg   sync.WaitGroup
	mu   sync.Mutex
	nets []net.Conn
}

func newRawUpstream(t testing.TB, script func(c net.Conn, r *bufio.Reader)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, URL: "ws://" + ln.Addr().String() + "/raw"}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.nets = append(u.nets, c)
			u.mu.Unlock()
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				req, err := http.ReadRequest(r)
				if err != nil {
					return
				}
				sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
				_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
					base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"))
				script(c, r)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for _, c := range u.nets {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

// serverFrame builds an unmasked frame as a server sends it.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	f := frame(fin, op, payload, false)
	return f
}

// readClientFrame reads one masked frame from the relay (as upstream) and unmasks it.
func readClientFrame(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := readFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 == 0 {
		return 0, nil, errors.New("client frame not masked")
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := readFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = int(b[0])<<8 | int(b[1])
	case 127:
		var b [8]byte
		if _, err := readFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = 0
		for _, x := range b {
			n = n<<8 | int(x)
		}
	}
	var key [4]byte
	if _, err := readFull(r, key[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	if _, err := readFull(r, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= key[i%4]
	}
	return h[0] & 0x0f, payload, nil
}

func readFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// rawClose reads server frames until a close frame and returns its code and reason with the
// text and binary messages before it (unfragmented). gorilla/websocket (v1.5.3) refuses
// close code 1014, so tests that expect it read the frames themselves.
func (c *rawConn) rawClose(t testing.TB) (code int, reason string, before [][]byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, op, p := c.readFrame(t)
		switch op {
		case 0x8:
			if len(p) < 2 {
				return 1005, "", before
			}
			return int(p[0])<<8 | int(p[1]), string(p[2:]), before
		case 0x1, 0x2:
			before = append(before, p)
		}
	}
}

// nthLocked waits until *items, guarded by mu, holds n entries and returns the nth.
func nthLocked[T any](t testing.TB, mu *sync.Mutex, items *[]T, n int, within time.Duration, what string) T {
	t.Helper()
	eventually(t, within, what, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(*items) >= n
	})
	mu.Lock()
	defer mu.Unlock()
	return (*items)[n-1]
}

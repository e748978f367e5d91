package e2e

// Issue 4 (docs/SECURITY.md): control API authentication, signed backend requests, connect
// authorization, Origin / forwarded headers / subprotocols, and bad input at every edge.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketdock/socketdock/pkg/backend"
)

// authDo sends a control request with an Authorization header value (none when empty).
func authDo(t testing.TB, method, url, auth string, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// checkTokenEnforced: every route but /readyz answers 401 without the token, with a wrong
// one, or with another scheme; with the token the route works.
func checkTokenEnforced(t *testing.T, r *testRelay, token string, id string) {
	t.Helper()
	routes := []struct {
		method, path, body string
		ok                 int
	}{
		{"GET", "/status", "", 200},
		{"GET", "/metrics", "", 200},
		{"GET", "/socket/" + id, "", 200},
		{"POST", "/socket/" + id + "/send", "hi", 200},
		{"GET", "/socket/0123456789abcdef0123456789abcdef", "", 404},
		{"POST", "/socket/0123456789abcdef0123456789abcdef/send", "x", 404},
		{"GET", "/nowhere", "", 404},
		{"POST", "/socket/" + id + "/disconnect", "", 200}, // last: it closes the client
	}
	for _, rt := range routes {
		for _, auth := range []string{"", "Bearer wrong-" + token, "Bearer " + token + "x", "Bearer", "Basic " + token, token, "bearer  " + token} {
			if got := authDo(t, rt.method, r.Control+rt.path, auth, rt.body); got != 401 {
				t.Errorf("%s %s with Authorization %q: %d, want 401", rt.method, rt.path, auth, got)
			}
		}
		if got := authDo(t, rt.method, r.Control+rt.path, "Bearer "+token, rt.body); got != rt.ok {
			t.Errorf("%s %s with the token: %d, want %d", rt.method, rt.path, got, rt.ok)
		}
	}
	if got := authDo(t, "GET", r.Control+"/readyz", "", ""); got != 200 {
		t.Errorf("/readyz without a token: %d, want 200 (load balancers probe it)", got)
	}
}

func TestSecurityControlTokenFlag(t *testing.T) {
	b := newBackend(t)
	r := startRelay(t, b.relayArgs("--control-token", "s3cret-flag")...)
	c := dial(t, r.WSURL, nil)
	id := waitConnectID(t, b, 1)
	checkTokenEnforced(t, r, "s3cret-flag", id)
	if _, msg := readMessage(t, c); string(msg) != "hi" {
		t.Fatalf("authorized send delivered %q", msg)
	}
}

func TestSecurityControlTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s3cret-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t)
	r := startRelay(t, b.relayArgs("--control-token-file", file)...)
	dial(t, r.WSURL, nil)
	checkTokenEnforced(t, r, "s3cret-file", waitConnectID(t, b, 1))
}

func TestSecurityControlTokenEnv(t *testing.T) {
	b := newBackend(t)
	r := startRelayEnv(t, map[string]string{"SOCKETDOCK_CONTROL_TOKEN": "s3cret-env"}, b.relayArgs()...)
	dial(t, r.WSURL, nil)
	checkTokenEnforced(t, r, "s3cret-env", waitConnectID(t, b, 1))
}

func waitConnectID(t testing.TB, b *fakeBackend, n int) string {
	t.Helper()
	eventually(t, 5*time.Second, "connect POST", func() bool { return len(b.on("/connect")) >= n })
	meta, _ := b.on("/connect")[n-1].Body["meta"].(map[string]any)
	id, _ := meta["connection_id"].(string)
	return id
}

// --backend-secret: connect, message and disconnect POSTs all verify with the exported
// VerifySignature the docs' Go example uses, each only as its own kind of event; a relay
// without the secret sends no signature.
func TestSecurityBackendRequestsSigned(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(file, []byte("from-file-secret\n"), 0o600)
	for _, tc := range []struct {
		name, secret string
		args         []string
	}{
		{"flag", "flag-secret", []string{"--backend-secret", "flag-secret"}},
		{"file", "from-file-secret", []string{"--backend-secret-file", file}},
		{"authorize", "flag-secret", []string{"--backend-secret", "flag-secret", "--connect-mode", "authorize"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			r := startRelay(t, b.relayArgs(tc.args...)...)
			c := dial(t, r.WSURL, nil)
			c.WriteMessage(websocket.TextMessage, []byte(`{"hello":"world"}`))
			c.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0x00})
			eventually(t, 5*time.Second, "two message POSTs", func() bool { return len(b.on("/message")) == 2 })
			c.Close()
			eventually(t, 5*time.Second, "disconnect POST", func() bool { return len(b.on("/disconnect")) == 1 })
			all := append(append(b.on("/connect"), b.on("/message")...), b.on("/disconnect")...)
			for _, p := range all {
				kind := strings.TrimPrefix(p.Path, "/")
				if err := backend.VerifySignature([]byte(tc.secret), kind, p.Header.Get, p.Raw, time.Minute); err != nil {
					t.Errorf("%s: %v (headers %v)", p.Path, err, p.Header)
				}
				if err := backend.VerifySignature([]byte("not-"+tc.secret), kind, p.Header.Get, p.Raw, time.Minute); err == nil {
					t.Errorf("%s verifies under the wrong secret", p.Path)
				}
				for _, other := range []string{"connect", "message", "disconnect"} {
					if err := backend.VerifySignature([]byte(tc.secret), other, p.Header.Get, p.Raw, time.Minute); other != kind && err == nil {
						t.Errorf("%s POST verifies as %s", p.Path, other)
					}
				}
			}
		})
	}
	t.Run("unsigned by default", func(t *testing.T) {
		b := newBackend(t)
		r := startRelay(t, b.relayArgs()...)
		dial(t, r.WSURL, nil)
		waitConnectID(t, b, 1)
		if h := b.on("/connect")[0].Header; h.Get(backend.HeaderSignature) != "" || h.Get(backend.HeaderTimestamp) != "" {
			t.Fatalf("signature headers without a secret: %v", h)
		}
	})
}

// --connect-mode authorize: the connect POST comes before the 101, which waits for it.
func TestSecurityAuthorizeAccepts(t *testing.T) {
	b := newBackend(t)
	release := make(chan struct{})
	b.setConnect(func(p backendPost, w http.ResponseWriter) {
		<-release
		w.WriteHeader(204)
	})
	r := startRelay(t, b.relayArgs("--connect-mode", "authorize", "--loops", "1")...)
	dialed := make(chan *websocket.Conn, 1)
	go func() {
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		c, _, err := d.Dial(r.WSURL, http.Header{"Authorization": {"Bearer user-token"}})
		if err != nil {
			t.Errorf("dial: %v", err)
		}
		dialed <- c
	}()
	eventually(t, 5*time.Second, "authorize POST", func() bool { return len(b.on("/connect")) == 1 })
	// While the backend thinks: no 101 yet, no connection in the table, and the (single)
	// event loop keeps serving others.
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + r.Public + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("event loop blocked during authorization: %v", err)
	}
	resp.Body.Close()
	select {
	case <-dialed:
		t.Fatal("upgrade completed before the backend answered")
	case <-time.After(100 * time.Millisecond):
	}
	if r.Table.Active() != 0 {
		t.Fatal("connection in the table before it was authorized")
	}
	meta, _ := b.on("/connect")[0].Body["meta"].(map[string]any)
	headers, _ := meta["headers"].(map[string]any)
	if headers["authorization"] != "Bearer user-token" {
		t.Fatalf("authorize POST headers: %v", headers)
	}
	close(release)
	c := <-dialed
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("first"))
	eventually(t, 5*time.Second, "message POST", func() bool { return len(b.on("/message")) == 1 })
	if got := len(b.on("/connect")); got != 1 {
		t.Fatalf("%d connect POSTs, want exactly 1 (no second one after the upgrade)", got)
	}
	id, _ := meta["connection_id"].(string)
	if st, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte("back")); st != 200 {
		t.Fatalf("send to the authorized connection: %d", st)
	}
	if _, msg := readMessage(t, c); string(msg) != "back" {
		t.Fatalf("got %q", msg)
	}
	c.Close()
	eventually(t, 5*time.Second, "disconnect POST", func() bool { return len(b.on("/disconnect")) == 1 })
}

// A refusal answers the backend's 4xx, or 403 for anything else; nothing is POSTed after it.
func TestSecurityAuthorizeRejects(t *testing.T) {
	cases := []struct {
		backend, want int
	}{{401, 401}, {403, 403}, {404, 404}, {429, 429}, {500, 403}, {503, 403}, {302, 403}, {101, 403}}
	b := newBackend(t)
	r := startRelay(t, b.relayArgs("--connect-mode", "authorize", "--max-connections", "2")...)
	for i, tc := range cases {
		b.setConnect(func(p backendPost, w http.ResponseWriter) {
			if tc.backend == 302 {
				w.Header().Set("Location", "/elsewhere")
			}
			w.WriteHeader(tc.backend)
		})
		c := rawConnect(t, r.Public)
		c.send(t, []byte(upgradeRequest(r.Public)))
		c.expectStatus(t, tc.want)
		c.expectEOF(t)
		if n := len(b.on("/connect")); n != i+1 {
			t.Fatalf("backend %d: %d connect POSTs, want %d", tc.backend, n, i+1)
		}
	}
	// Refused connections gave their --max-connections slots back; none was ever open.
	b.setConnect(nil)
	c1, c2 := dial(t, r.WSURL, nil), dial(t, r.WSURL, nil)
	c1.Close()
	c2.Close()
	eventually(t, 5*time.Second, "2 disconnect POSTs", func() bool { return len(b.on("/disconnect")) == 2 })
	time.Sleep(100 * time.Millisecond)
	if n := len(b.on("/disconnect")); n != 2 || len(b.on("/message")) != 0 {
		t.Fatalf("%d disconnect POSTs, want 2: refused connections must not be reported", n)
	}
}

// The backend's answer time counts against --handshake-timeout: a slow one gets the client a
// 408, and the late 200 opens nothing.
func TestSecurityAuthorizeTimeout(t *testing.T) {
	b := newBackend(t)
	b.setConnect(func(p backendPost, w http.ResponseWriter) {
		time.Sleep(1200 * time.Millisecond)
		w.WriteHeader(200)
	})
	r := startRelay(t, b.relayArgs("--connect-mode", "authorize", "--handshake-timeout", "400ms")...)
	c := rawConnect(t, r.Public)
	start := time.Now()
	c.send(t, []byte(upgradeRequest(r.Public)))
	c.expectStatus(t, 408)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("408 after %v: the handshake deadline did not bound the backend's answer", d)
	}
	// The backend answers 200 after the deadline: it accepted a connection that never opened,
	// so it gets that connection's one disconnect (code 1006), and nothing opens.
	eventually(t, 5*time.Second, "the disconnect for the late yes", func() bool { return len(b.on("/disconnect")) == 1 })
	time.Sleep(200 * time.Millisecond)
	d := b.on("/disconnect")
	if r.Table.Active() != 0 || len(d) != 1 || d[0].Body["code"] != float64(1006) ||
		d[0].Body["connection_id"] != b.on("/connect")[0].meta()["connection_id"] {
		t.Fatalf("late authorization: %d active, disconnects %v", r.Table.Active(), d)
	}
}

// Frames pipelined behind the upgrade request wait until the backend accepts, then flow.
func TestSecurityAuthorizePipelinedFrames(t *testing.T) {
	b := newBackend(t)
	b.setConnect(func(p backendPost, w http.ResponseWriter) {
		time.Sleep(200 * time.Millisecond)
		w.WriteHeader(200)
	})
	r := startRelay(t, b.relayArgs("--connect-mode", "authorize")...)
	c := rawConnect(t, r.Public)
	req := []byte(upgradeRequest(r.Public))
	req = append(req, frame(true, 0x1, []byte("early one"), true)...)
	req = append(req, frame(true, 0x2, []byte("early two"), true)...)
	c.send(t, req)
	c.expectStatus(t, 101)
	eventually(t, 5*time.Second, "both early messages", func() bool { return len(b.on("/message")) == 2 })
	for i, want := range []string{"early one", "early two"} {
		if got := b.on("/message")[i].Body["message"]; got != want {
			t.Fatalf("message %d = %v, want %q", i, got, want)
		}
	}
}

// A client cannot make the relay buffer without bound while the backend decides.
func TestSecurityAuthorizeEarlyDataBounded(t *testing.T) {
	b := newBackend(t)
	release := make(chan struct{})
	defer close(release)
	b.setConnect(func(p backendPost, w http.ResponseWriter) {
		select {
		case <-release:
		case <-time.After(3 * time.Second):
		}
		w.WriteHeader(200)
	})
	r := startRelay(t, b.relayArgs("--connect-mode", "authorize")...)
	c := rawConnect(t, r.Public)
	c.send(t, []byte(upgradeRequest(r.Public)))
	eventually(t, 5*time.Second, "authorize POST", func() bool { return len(b.on("/connect")) == 1 })
	big := frame(true, 0x2, make([]byte, 100<<10), true)
	c.Write(big) // may fail once the relay has answered and closed
	c.expectStatus(t, 400)
}

func TestSecurityAllowedOrigins(t *testing.T) {
	for _, tc := range []struct {
		allowed string
		origin  string
		want    int
	}{
		{"", "https://evil.example", 101},
		{"https://app.example,http://localhost:3000", "https://app.example", 101},
		{"https://app.example,http://localhost:3000", "HTTPS://APP.EXAMPLE", 101},
		{"https://app.example,http://localhost:3000", "http://localhost:3000", 101},
		{"https://app.example,http://localhost:3000", "https://evil.example", 403},
		{"https://app.example,http://localhost:3000", "https://app.example.evil.example", 403},
		{"https://app.example,http://localhost:3000", "http://app.example", 403},
		{"https://app.example,http://localhost:3000", "null", 403},
		{"https://app.example", "", 101}, // not a browser: documented in docs/SECURITY.md
		{"*", "https://anything.example", 101},
	} {
		args := []string{}
		if tc.allowed != "" {
			args = append(args, "--allowed-origins", tc.allowed)
		}
		r := startRelay(t, args...)
		c := rawConnect(t, r.Public)
		req := upgradeRequest(r.Public)
		if tc.origin != "" {
			req = strings.Replace(req, "\r\n\r\n", "\r\nOrigin: "+tc.origin+"\r\n\r\n", 1)
		}
		c.send(t, []byte(req))
		c.expectStatus(t, tc.want)
		if tc.want != 101 {
			c.expectEOF(t)
			if r.Table.Lifetime() != 0 {
				t.Errorf("%q from %q: a connection was registered", tc.allowed, tc.origin)
			}
		}
	}
}

func TestSecurityForwardHeaders(t *testing.T) {
	hdr := http.Header{"Cookie": {"session=abc"}, "Authorization": {"Bearer u"}, "X-Tenant": {"t1"}, "User-Agent": {"sec-test"}}
	for _, tc := range []struct {
		list    string
		present []string
		absent  []string
	}{
		{"", []string{"cookie", "authorization", "x-tenant", "user-agent", "host"}, nil}, // compat: all
		{"x-tenant,User-Agent", []string{"x-tenant", "user-agent"}, []string{"cookie", "authorization", "host", "sec-websocket-key"}},
		{"x-tenant,cookie", []string{"x-tenant", "cookie"}, []string{"authorization", "user-agent"}},
	} {
		for _, mode := range []string{"notify", "authorize"} {
			b := newBackend(t)
			args := b.relayArgs("--connect-mode", mode)
			if tc.list != "" {
				args = append(args, "--forward-headers", tc.list)
			}
			r := startRelay(t, args...)
			dial(t, r.WSURL, hdr)
			waitConnectID(t, b, 1)
			meta, _ := b.on("/connect")[0].Body["meta"].(map[string]any)
			headers, _ := meta["headers"].(map[string]any)
			for _, h := range tc.present {
				if headers[h] == nil {
					t.Errorf("--forward-headers %q (%s): %s missing from %v", tc.list, mode, h, headers)
				}
			}
			for _, h := range tc.absent {
				if headers[h] != nil {
					t.Errorf("--forward-headers %q (%s): %s forwarded", tc.list, mode, h)
				}
			}
		}
	}
}

func TestSecuritySubprotocols(t *testing.T) {
	for _, tc := range []struct {
		server  string
		offered []string
		want    string
	}{
		{"", []string{"v2.chat"}, ""},
		{"v2.chat,v1.chat", []string{"v1.chat", "v2.chat"}, "v2.chat"}, // the server's preference wins
		{"v2.chat,v1.chat", []string{"v1.chat"}, "v1.chat"},
		{"v2.chat,v1.chat", []string{"V2.CHAT", "mqtt"}, ""}, // case-sensitive; no match: no header
		{"v2.chat,v1.chat", nil, ""},
	} {
		args := []string{}
		if tc.server != "" {
			args = append(args, "--subprotocols", tc.server)
		}
		r := startRelay(t, args...)
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: tc.offered}
		c, resp, err := d.Dial(r.WSURL, nil)
		if err != nil {
			t.Fatalf("%q offered %q: %v", tc.server, tc.offered, err)
		}
		got := resp.Header.Get("Sec-WebSocket-Protocol")
		if got != tc.want || c.Subprotocol() != tc.want {
			t.Errorf("server %q, client %q: negotiated %q, want %q", tc.server, tc.offered, got, tc.want)
		}
		c.WriteMessage(websocket.TextMessage, []byte("x"))
		readMessage(t, c)
		c.Close()
	}
	// Offered as several header lines, as RFC 6455 allows.
	r := startRelay(t, "--subprotocols", "b,a")
	c := rawConnect(t, r.Public)
	c.send(t, []byte(strings.Replace(upgradeRequest(r.Public), "\r\n\r\n", "\r\nSec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: c, b\r\n\r\n", 1)))
	if head := c.expectStatus(t, 101); !strings.Contains(head, "\r\nSec-WebSocket-Protocol: b\r\n") {
		t.Fatalf("101 head %q, want protocol b", head)
	}
}

// rawHTTP writes a request as-is and returns the status code of the answer (0: none).
func rawHTTP(t *testing.T, addr string, req []byte, closeWrite bool) int {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(req); err != nil {
		t.Logf("write: %v", err)
	}
	if closeWrite {
		nc.(*net.TCPConn).CloseWrite()
	}
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(nc, buf, 12)
	var code int
	if _, err := fmt.Sscanf(string(buf[:n]), "HTTP/1.1 %d", &code); err != nil {
		return 0
	}
	return code
}

// Bad input at the public edge: 4xx, and the listener keeps serving.
func TestSecurityBadInputPublic(t *testing.T) {
	r := startRelay(t)
	long := strings.Repeat("a", 9000)
	cases := []struct {
		name string
		req  string
		want int
	}{
		{"oversized header", "GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: " + long + "\r\n\r\n", 431},
		{"oversized unterminated head", "GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: " + long, 431},
		{"many headers", "GET /ws HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 1200) + "\r\n", 431},
		{"bad percent-encoding", "GET /ws%zz HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"NUL in target", "GET /w\x00s HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"bare LF header", "GET /ws HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"HTTP/1.0", "GET /ws HTTP/1.0\r\nHost: x\r\n\r\n", 505},
		{"not HTTP", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400},
		{"bad Sec-WebSocket-Key", strings.Replace(upgradeRequest(r.Public), testKey, "short", 1), 400},
		{"upgrade with a body", strings.Replace(upgradeRequest(r.Public), "GET", "POST", 1), 405},
	}
	for _, tc := range cases {
		if got := rawHTTP(t, r.Public, []byte(tc.req), false); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
		if got := rawHTTP(t, r.Public, []byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), false); got != 200 {
			t.Fatalf("after %s: /healthz %d", tc.name, got)
		}
	}
	c := dial(t, r.WSURL, nil)
	c.WriteMessage(websocket.TextMessage, []byte("still serving"))
	readMessage(t, c)
}

// Bad input at the control edge: 4xx, and the listener keeps serving.
func TestSecurityBadInputControl(t *testing.T) {
	b := newBackend(t)
	r := startRelay(t, b.relayArgs("--control-token", "tok", "--max-message-size", "65536")...)
	ws := dial(t, r.WSURL, nil)
	id := waitConnectID(t, b, 1)
	addr := strings.TrimPrefix(r.Control, "http://")
	auth := "Authorization: Bearer tok\r\n"
	long := strings.Repeat("a", 16<<10)
	send := func(extra, body string) string {
		return "POST /socket/" + id + "/send HTTP/1.1\r\nHost: x\r\n" + auth + extra + "\r\n" + body
	}
	cases := []struct {
		name       string
		req        string
		closeWrite bool
		want       int
	}{
		{"oversized header", "GET /status HTTP/1.1\r\nHost: x\r\n" + auth + "X-Big: " + long + "\r\n\r\n", false, 431},
		{"oversized header, no token", "GET /status HTTP/1.1\r\nHost: x\r\nX-Big: " + long + "\r\n\r\n", false, 431},
		{"bad percent-encoding in id", "GET /socket/%zz%" + id[4:] + " HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", false, 404},
		{"percent-encoded id", "GET /socket/%" + fmt.Sprintf("%02x", id[0]) + id[1:] + "x HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", false, 404},
		{"dot segments are normalized (fasthttp): /status", "GET /socket/../status HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", false, 200},
		{"dot segments without the token", "GET /socket/../socket/" + id + " HTTP/1.1\r\nHost: x\r\n\r\n", false, 401},
		{"id too short", "GET /socket/" + id[1:] + " HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", false, 404},
		{"id too long", "GET /socket/" + id + "0 HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", false, 404},
		{"id upper-case", "GET /socket/" + strings.ToUpper(id) + " HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", false, 404},
		{"id not hex", "POST /socket/" + strings.Repeat("g", 32) + "/send HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 1\r\n\r\nx", false, 404},
		{"unknown verb", "POST /socket/" + id + "/sendall HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 1\r\n\r\nx", false, 404},
		{"huge Content-Length, small body", send("Content-Length: 99999999999\r\n", "tiny"), false, 413},
		{"Content-Length over the limit", send("Content-Length: 65537\r\n", "tiny"), false, 413},
		{"short body, then EOF", send("Content-Length: 100\r\n", "tiny"), true, 400},
		{"negative Content-Length", send("Content-Length: -1\r\n", "tiny"), false, 400},
		{"two Content-Lengths", send("Content-Length: 4\r\nContent-Length: 5\r\n", "tiny"), false, 400},
		{"chunked over the limit", send("Transfer-Encoding: chunked\r\n", "10001\r\n"+strings.Repeat("a", 65537)+"\r\n0\r\n\r\n"), false, 413},
		{"chunked, bad chunk size", send("Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n"), false, 400},
		{"chunked, truncated", send("Transfer-Encoding: chunked\r\n", "10\r\nabc"), true, 400},
		{"not HTTP", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", false, 400},
	}
	for _, tc := range cases {
		if got := rawHTTP(t, addr, []byte(tc.req), tc.closeWrite); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
		if got := authDo(t, "GET", r.Control+"/status", "Bearer tok", ""); got != 200 {
			t.Fatalf("after %s: /status %d", tc.name, got)
		}
	}
	// A well-formed chunked body is accepted (fasthttp decodes it): a documented behaviour.
	if got := rawHTTP(t, addr, []byte(send("Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n", "5\r\nchunk\r\n3\r\ned!\r\n0\r\n\r\n")), false); got != 200 {
		t.Fatalf("valid chunked send: %d", got)
	}
	if _, msg := readMessage(t, ws); string(msg) != "chunked!" {
		t.Fatalf("chunked send delivered %q", msg)
	}
}

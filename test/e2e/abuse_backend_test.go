package e2e

// Abuse of the HTTP backend path (issue 8): secrets in backend URIs must not reach the logs;
// every POST carries an event id a backend can drop duplicates by; the inbound bound holds
// for messages that grow sixfold when escaped into JSON.

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/socketdock/socketdock/pkg/conntable"

	"github.com/gorilla/websocket"

	"github.com/socketdock/socketdock/pkg/backend"
)

// Backend URIs with a password and an API key, pointing at a closed port: the relay's log
// (startup, failed connect/message/disconnect POSTs, failed authorization) and its startup
// errors name the host but never the password or the key.
func TestAbuseBackendURISecretsNotLogged(t *testing.T) {
	bin := buildRelay(t)
	host := "127.0.0.1:" + strconv.Itoa(closedPort(t))
	secretURI := func(path string) string {
		return "http://sduser:hunter2password@" + host + path + "?api_key=k3yk3yk3y&x=1#frag-s3cret"
	}
	secrets := []string{"hunter2password", "sduser", "k3yk3yk3y", "frag-s3cret", "ctlpassword"}
	args := []string{"--backend", "http", "--message-uri", secretURI("/m"), "--connect-uri", secretURI("/c"),
		"--disconnect-uri", secretURI("/d"), "--backend-retries", "1", "--log-level", "debug",
		"--endpoint", "http://ctl:ctlpassword@127.0.0.1:1/base?token=k3yk3yk3y"}
	check := func(what, log string, wantHost bool) {
		t.Helper()
		var leaked []string
		for _, s := range secrets {
			if strings.Contains(log, s) {
				leaked = append(leaked, s)
			}
		}
		if leaked != nil {
			t.Errorf("%s: %q in the log:\n%s", what, leaked, log)
		}
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "error") || strings.Contains(line, "endpoint") || strings.HasPrefix(line, "socketdock:") {
				t.Logf("%s: %s", what, line)
			}
		}
		if wantHost && !strings.Contains(log, host) {
			t.Errorf("%s: the log does not name the backend host %s:\n%s", what, host, log)
		}
	}

	t.Run("notify", func(t *testing.T) {
		p := startProc(t, bin, args...)
		c := dial(t, "ws://"+p.public+"/ws", nil)
		if code, _ := expectClose(t, c); code != 1011 {
			t.Errorf("client closed with %d, want 1011", code)
		}
		eventually(t, 10*time.Second, "disconnect POST failure logged", func() bool {
			return strings.Contains(p.stderr.String(), "disconnect POST failed")
		})
		log := p.stderr.String()
		for _, want := range []string{"socketdock listening", "backend did not accept"} {
			if !strings.Contains(log, want) {
				t.Errorf("no %q in the log:\n%s", want, log)
			}
		}
		check("notify", log, true)
	})

	t.Run("authorize", func(t *testing.T) {
		p := startProc(t, bin, append(args, "--connect-mode", "authorize")...)
		status, _ := tryUpgrade(t, p.public, "")
		if status != 503 {
			t.Errorf("upgrade answered %d, want 503 (backend unreachable)", status)
		}
		eventually(t, 5*time.Second, "authorization failure logged", func() bool {
			return strings.Contains(p.stderr.String(), "connect authorization failed")
		})
		check("authorize", p.stderr.String(), true)
	})

	t.Run("startup errors", func(t *testing.T) {
		for _, bad := range []string{
			"ftp://sduser:hunter2password@" + host + "/m?api_key=k3yk3yk3y",   // wrong scheme
			"http://sduser:hunter2password@/m?api_key=k3yk3yk3y",              // no host
			"http://sduser:hunter2 password@" + host + "/m?api_key=k3yk3yk3y", // not a URL
		} {
			out, err := exec.Command(bin, "--backend", "http", "--message-uri", bad).CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Errorf("%s: exit %v, want 2", bad, err)
			}
			check("startup error", string(out), false)
			if !strings.Contains(string(out), "--message-uri") {
				t.Errorf("startup error does not name the flag: %s", out)
			}
		}
	})
}

// CONTRACT §3: every POST carries X-SocketDock-Event (its kind) and X-SocketDock-Event-Id
// <connection_id>-<n>, n counting the connection's events from 1 in order; a retried POST
// repeats its id. The backend answers the first message POST 503 once.
func TestAbuseBackendEventIDs(t *testing.T) {
	for _, mode := range []string{"notify", "authorize"} {
		t.Run(mode, func(t *testing.T) {
			b := newBackend(t)
			var refused atomic.Bool
			b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
				if p.Path == "/message" && refused.CompareAndSwap(false, true) {
					w.WriteHeader(503)
					return true
				}
				return false
			})
			r := httpRelay(t, b, "--backend-retries", "3", "--connect-mode", mode)
			c := dial(t, r.WSURL, nil)
			for _, m := range []string{"one", "two", "three"} {
				c.WriteMessage(websocket.TextMessage, []byte(m))
			}
			eventually(t, 10*time.Second, "three messages delivered", func() bool { return len(b.on("/message")) == 4 })
			c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"))
			eventually(t, 10*time.Second, "disconnect POST", func() bool { return len(b.on("/disconnect")) == 1 })

			id := b.connID(t, 1)
			want := []string{"connect 1", "message 2 one", "message 2 one", "message 3 two", "message 4 three", "disconnect 5"}
			var got []string
			for _, p := range b.all() {
				kind := strings.TrimPrefix(p.Path, "/")
				n, ok := strings.CutPrefix(p.Header.Get("X-SocketDock-Event-Id"), id+"-")
				if !ok {
					n = "<" + p.Header.Get("X-SocketDock-Event-Id") + ">"
				}
				if ev := p.Header.Get("X-SocketDock-Event"); ev != kind {
					t.Errorf("%s POST has X-SocketDock-Event %q", p.Path, ev)
				}
				entry := kind + " " + n
				if m, ok := p.Body["message"]; ok {
					entry += fmt.Sprint(" ", m)
				}
				got = append(got, entry)
			}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Fatalf("POSTs with event ids:\n got %q\nwant %q", got, want)
			}
			t.Logf("%s: %s", mode, strings.Join(got, ", "))
		})
	}
}

// closedPort returns a loopback port that refuses connections for the whole test: a socket
// bound to it and never listening keeps other processes from taking it meanwhile.
func closedPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}

// stalledBackend answers connect and disconnect at once; message POSTs are read (their
// length checked, nothing kept: the test measures the relay's heap in this process) and
// answered only once released.
type stalledBackend struct {
	*httptest.Server
	release   chan struct{}
	bodyLen   atomic.Int64 // a message body's expected length
	messages  atomic.Int32
	disconned atomic.Int32
}

func newStalledBackend(t *testing.T) *stalledBackend {
	b := &stalledBackend{release: make(chan struct{})}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/message":
			if n != b.bodyLen.Load() {
				t.Errorf("message body of %d bytes, want %d", n, b.bodyLen.Load())
			}
			b.messages.Add(1)
			<-b.release
		case "/disconnect":
			b.disconned.Add(1)
		}
	}))
	t.Cleanup(b.Close)
	return b
}

// unstall releases the backend's held POSTs, once.
func (b *stalledBackend) unstall() {
	select {
	case <-b.release:
	default:
		close(b.release)
	}
}

// A client floods 4 MiB texts of NUL bytes (each 24 MiB as a JSON string: "\u0000" is six
// bytes) at a stalled backend. The relay holds about --max-inbound-bytes of it per
// connection, not its sixfold JSON; the client is closed with 1013 once the bound is
// reached; what was accepted arrives intact once the backend answers.
func TestAbuseBackendInboundBoundCountsEscapes(t *testing.T) {
	const clients = 4
	payload := make([]byte, 4<<20-64) // NUL bytes: valid UTF-8, the costliest to escape
	b := newStalledBackend(t)
	r := startRelay(t, "--backend", "http", "--message-uri", b.URL+"/message", "--connect-uri", b.URL+"/connect",
		"--disconnect-uri", b.URL+"/disconnect", "--backend-timeout", "60s")
	t.Cleanup(b.unstall) // before the relay drains
	b.bodyLen.Store(int64(len(backend.AppendMessage(nil, backend.Subject{Endpoint: r.Opts.Endpoint, ID: strings.Repeat("0", 32), Transport: "ws"}, conntable.Text, payload))))
	msg := frame(true, 0x1, payload, true)
	before := heapInUse()
	written := 0
	for i := 0; i < clients; i++ {
		c := rawDial(t, r.Public)
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		code := 0
		for n := 0; n < 10 && code == 0; n++ { // the bound (8 MiB) is reached at the third
			if _, err := c.Write(msg); err != nil {
				break
			}
			written++
			code, _ = closeFrameIfAny(t, c)
		}
		if code == 0 {
			code = c.expectCloseFrame(t)
		}
		if code != 1013 {
			t.Fatalf("client %d closed with %d, want 1013", i, code)
		}
		_, _ = c.Write(frame(true, 0x8, []byte{0x03, 0xf5}, true))
		c.Close()
	}
	eventually(t, 60*time.Second, "one message POST in flight per client", func() bool { return b.messages.Load() == clients })
	time.Sleep(200 * time.Millisecond)
	held := int64(heapInUse()) - int64(before)
	t.Logf("%d clients wrote %d messages of %d KiB NUL bytes (%d KiB as JSON each), each closed 1013; stalled backend: relay heap grew %d MiB (%d MiB per connection)",
		clients, written, len(payload)>>10, 6*len(payload)>>10, held>>20, held/clients>>20)
	if held > clients*16<<20 {
		t.Errorf("relay heap grew %d MiB for %d connections with --max-inbound-bytes 8 MiB; want under %d MiB", held>>20, clients, clients*16)
	}
	b.unstall()
	eventually(t, 60*time.Second, "every disconnect POST", func() bool { return b.disconned.Load() == clients })
	if got := b.messages.Load(); got < 2*clients {
		t.Errorf("backend got %d messages; the two each connection's bound held must arrive", got)
	}
}

// closeFrameIfAny reads a close frame if one arrives within 300 ms.
func closeFrameIfAny(t *testing.T, c *rawConn) (int, bool) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.r.Peek(2)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err != nil {
		return 0, false
	}
	return c.expectCloseFrame(t), true
}

// A message past the size the relay builds whole is streamed: with a Content-Length (not
// chunked: simple backends cannot read that), signed over the streamed bytes, and sent
// again whole on a retry.
func TestAbuseBackendLargeMessageStreamedSignedRetried(t *testing.T) {
	b := newBackend(t)
	var refused atomic.Bool
	b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
		if p.Path == "/message" && refused.CompareAndSwap(false, true) {
			w.WriteHeader(503)
			return true
		}
		return false
	})
	r := httpRelay(t, b, "--backend-retries", "2", "--backend-secret", "s3cret")
	c := dial(t, r.WSURL, nil)
	payload := strings.Repeat("\x00\"é✓ plain text ", 30_000) // 570 KB, 1.6 MB as JSON
	c.WriteMessage(websocket.TextMessage, []byte(payload))
	c.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0xfe}) // small: built whole
	eventually(t, 10*time.Second, "the retry and the next message", func() bool { return len(b.on("/message")) == 3 })
	posts := b.on("/message")
	for i, p := range posts {
		if err := backend.VerifySignature([]byte("s3cret"), "message", p.Header.Get, p.Raw, time.Minute); err != nil {
			t.Errorf("POST %d: %v", i, err)
		}
		if cl := p.Header.Get("Content-Length"); cl != strconv.Itoa(len(p.Raw)) || p.Header.Get("Transfer-Encoding") != "" {
			t.Errorf("POST %d: Content-Length %q for %d bytes, Transfer-Encoding %q", i, cl, len(p.Raw), p.Header.Get("Transfer-Encoding"))
		}
	}
	for i := range 2 {
		if posts[i].Body["message"] != payload || posts[i].Header.Get(backend.HeaderEventID) != posts[0].Header.Get(backend.HeaderEventID) {
			t.Fatalf("attempt %d: message of %d bytes arrived as %d, event id %s", i+1, len(payload),
				len(fmt.Sprint(posts[i].Body["message"])), posts[i].Header.Get(backend.HeaderEventID))
		}
	}
	if posts[2].meta()["encoding"] != "base64" || posts[2].Body["message"] != "//4=" {
		t.Fatalf("small binary message: %v", posts[2].Body)
	}
	t.Logf("%d-byte text streamed as %d bytes of JSON, signed, retried after 503 with the same id", len(payload), len(posts[1].Raw))
}

// Package e2e drives a real relay (both listeners, on free loopback ports) with client
// libraries we did not write (gorilla/websocket, and raw frames for protocol faults) and a
// real HTTP backend that records what it receives.
package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socketdock/socketdock/internal/testkit"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/socketdock/socketdock/pkg/config"
	"github.com/socketdock/socketdock/pkg/relay"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp keeps one process-wide date-caching goroutine.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.init.0.func1"),
		// fasthttp's worker-pool cleaner sleeps out its interval after Shutdown, then ends.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// fasthttp's client: the idle-connection cleaner sleeps out MaxIdleConnDuration before it
		// sees no connections and ends; the default dialer's address cache lives for the process.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		// gnet's shared goroutine pool parks idle workers process-wide.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
		// Its idle workers wait for tasks until purged (EventLoop.Enroll runs on that pool).
		goleak.IgnoreAnyFunction("github.com/panjf2000/ants/v2.(*goWorker).run.func1"),
		// net/http test clients keep idle connections until the process ends.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// freePort is testkit.FreePort: a loopback port free now and not handed out before.
func freePort(t testing.TB) int { return testkit.FreePort(t) }

// testRelay is a running relay with its addresses.
type testRelay struct {
	*relay.Relay
	Opts    config.Options
	WSURL   string // ws://.../ws
	Public  string // host:port
	Control string // http://host:port
}

// startRelay parses args like the command does (on free ports unless args set them) and
// starts the relay; it is drained when the test ends.
func startRelay(t testing.TB, args ...string) *testRelay {
	t.Helper()
	return startRelayEnv(t, nil, args...)
}

// startRelayEnv is startRelay with SOCKETDOCK_* variables in the environment it parses.
func startRelayEnv(t testing.TB, env map[string]string, args ...string) *testRelay {
	t.Helper()
	all := append([]string{"--bindport", strconv.Itoa(freePort(t)), "--control-bindport", strconv.Itoa(freePort(t)), "--loops", "2"}, args...)
	opts, err := config.Parse(all, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	if os.Getenv("SOCKETDOCK_TEST_DEBUG") != "" {
		log = log.Level(zerolog.DebugLevel)
	}
	r, err := relay.New(opts, log)
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	if err := r.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	tr := &testRelay{Relay: r, Opts: opts, Public: r.PublicAddr(), Control: "http://" + r.ControlAddr()}
	tr.WSURL = "ws://" + tr.Public + "/ws"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return tr
}

// dial opens a gorilla/websocket client connection.
func dial(t testing.TB, url string, header http.Header) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(url, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readMessage reads one message with a deadline.
func readMessage(t testing.TB, c *websocket.Conn) (int, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, p, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, p
}

// expectClose reads until the connection closes and returns the close code and reason.
func expectClose(t testing.TB, c *websocket.Conn) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code, ce.Text
		}
		t.Fatalf("expected a close frame, got %v", err)
	}
}

// post sends a control API request and returns status and body.
func post(t testing.TB, url, contentType string, body []byte) (int, string) {
	t.Helper()
	return do(t, "POST", url, contentType, body)
}

func do(t testing.TB, method, url, contentType string, body []byte) (int, string) {
	t.Helper()
	status, b, _ := doHeader(t, method, url, contentType, body)
	return status, b
}

// doHeader is do that also returns the answer's headers.
func doHeader(t testing.TB, method, url, contentType string, body []byte) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// eventually polls cond until it holds or the time runs out.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// backendPost is one POST the fake backend received.
type backendPost struct {
	Path        string
	ContentType string
	Header      http.Header
	Body        map[string]any
	Raw         []byte
}

func (p backendPost) meta() map[string]any {
	m, _ := p.Body["meta"].(map[string]any)
	return m
}

// fakeBackend records POSTs; answer decides each response (nil: 200 with no body).
type fakeBackend struct {
	*httptest.Server
	mu     sync.Mutex
	posts  []backendPost
	answer func(p backendPost, w http.ResponseWriter) bool // true: handled
}

func newBackend(t testing.TB) *fakeBackend {
	t.Helper()
	b := &fakeBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		p := backendPost{Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Header: r.Header.Clone(), Raw: raw}
		if err := json.Unmarshal(raw, &p.Body); err != nil {
			t.Errorf("backend got invalid JSON on %s: %v: %q", r.URL.Path, err, raw)
		}
		b.mu.Lock()
		b.posts = append(b.posts, p)
		answer := b.answer
		b.mu.Unlock()
		if answer != nil && answer(p, w) {
			return
		}
		w.WriteHeader(200)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *fakeBackend) setAnswer(f func(p backendPost, w http.ResponseWriter) bool) {
	b.mu.Lock()
	b.answer = f
	b.mu.Unlock()
}

// setConnect decides the answers to connect POSTs (nil: 200, like every other POST).
func (b *fakeBackend) setConnect(f func(p backendPost, w http.ResponseWriter)) {
	if f == nil {
		b.setAnswer(nil)
		return
	}
	b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
		if p.Path != "/connect" {
			return false
		}
		f(p, w)
		return true
	})
}

// on returns the POSTs received on path so far.
func (b *fakeBackend) on(path string) []backendPost {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []backendPost
	for _, p := range b.posts {
		if p.Path == path {
			out = append(out, p)
		}
	}
	return out
}

func (b *fakeBackend) all() []backendPost {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]backendPost(nil), b.posts...)
}

// relayArgs points a relay's http backend at b's connect, message and disconnect URIs.
func (b *fakeBackend) relayArgs(extra ...string) []string {
	return append([]string{"--backend", "http", "--message-uri", b.URL + "/message",
		"--connect-uri", b.URL + "/connect", "--disconnect-uri", b.URL + "/disconnect"}, extra...)
}

// httpRelay starts a relay on the http backend with connect, message and disconnect URIs.
func httpRelay(t testing.TB, b *fakeBackend, args ...string) *testRelay {
	t.Helper()
	return startRelay(t, b.relayArgs(args...)...)
}

// connID waits for the connect POST and returns the connection id from it.
func (b *fakeBackend) connID(t testing.TB, n int) string {
	t.Helper()
	eventually(t, 5*time.Second, "connect POST", func() bool { return len(b.on("/connect")) >= n })
	return b.on("/connect")[n-1].meta()["connection_id"].(string)
}

// rawConn is a hand-driven client for protocol faults no library would send.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

func upgradeRequest(host string) string {
	return "GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// rawDial connects and upgrades, failing the test on anything but 101.
func rawDial(t testing.TB, addr string) *rawConn {
	t.Helper()
	c := rawConnect(t, addr)
	c.send(t, []byte(upgradeRequest(addr)))
	c.expectStatus(t, 101)
	return c
}

func rawConnect(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(15 * time.Second))
	return &rawConn{Conn: nc, r: bufio.NewReader(nc)}
}

func (c *rawConn) send(t testing.TB, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expectStatus reads a response head and checks its status.
func (c *rawConn) expectStatus(t testing.TB, status int) string {
	t.Helper()
	var head strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading response: %v (so far %q)", err, head.String())
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	want := "HTTP/1.1 " + strconv.Itoa(status) + " "
	if !strings.HasPrefix(head.String(), want) {
		t.Fatalf("want status %d, got %q", status, head.String())
	}
	return head.String()
}

// frame builds a client frame: masked unless mask is false.
func frame(fin bool, op byte, payload []byte, mask bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	m := byte(0)
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, m|byte(n))
	case n <= 0xffff:
		out = append(out, m|126, byte(n>>8), byte(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !mask {
		return append(out, payload...)
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

// readFrame reads one server frame (unmasked, unfragmented header forms).
func (c *rawConn) readFrame(t testing.TB) (fin bool, op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		t.Fatalf("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		io.ReadFull(c.r, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		io.ReadFull(c.r, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		t.Fatalf("read payload: %v", err)
	}
	return h[0]&0x80 != 0, h[0] & 0x0f, payload
}

// expectCloseFrame reads frames until a close frame and returns its code.
func (c *rawConn) expectCloseFrame(t testing.TB) int {
	t.Helper()
	for {
		_, op, p := c.readFrame(t)
		if op == 0x8 {
			if len(p) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// expectEOF checks the server closes the TCP connection.
func (c *rawConn) expectEOF(t testing.TB) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c.r); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("want EOF, got %v", err)
	}
}

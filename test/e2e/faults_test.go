package e2e

// Backend faults (issue 3): a backend that is absent, goes down, flaps, is slow, answers
// 500/429/400, or resets connections. Each test asserts what the client sees, what the
// backend sees (connect and disconnect once per connection, messages in order, no duplicate
// of a message it answered 2xx) and that the clients beside the faulty one are unaffected.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketdock/socketdock/internal/testkit"
)

// faultBackend is a backend on a fixed loopback port that can be stopped (listener and every
// connection closed, like a crashed process) and started again on the same port. It counts
// what it sees per connection: connects, disconnects, messages in arrival order, how many of
// each message it answered 2xx, and the most message POSTs in flight at once.
type faultBackend struct {
	t    testing.TB
	addr string
	URL  string

	mu          sync.Mutex
	srv         *http.Server
	conns       map[string]*fbConn
	order       []string // connection ids in connect order
	answer      func(id string, p backendPost, w http.ResponseWriter, r *http.Request) bool
	wg          sync.WaitGroup // handlers in progress
	stopCh      chan struct{}  // closed when the test ends: sleeping handlers give up
	closeOnce   sync.Once
	totalPosts  int
	maxInflight int
	idleTimeout time.Duration // the backend's keep-alive timeout; 0: Go's default
}

type fbConn struct {
	connects, disconnects int
	messages              []string        // in arrival order, every attempt
	answered2xx           map[string]int  // message → 2xx answers to distinct event ids
	acted                 map[string]bool // event ids answered 2xx
	inflight              int
	disconnect            map[string]any // the last disconnect body
}

func newFaultBackend(t testing.TB) *faultBackend {
	t.Helper()
	fb := &faultBackend{t: t, conns: make(map[string]*fbConn), stopCh: make(chan struct{})}
	fb.addr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	fb.URL = "http://" + fb.addr
	t.Cleanup(func() {
		fb.closeOnce.Do(func() { close(fb.stopCh) })
		fb.stop()
		fb.wg.Wait()
	})
	return fb
}

// sleep waits d, or less when the test is ending.
func (fb *faultBackend) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-fb.stopCh:
	}
}

func (fb *faultBackend) setAnswer(f func(id string, p backendPost, w http.ResponseWriter, r *http.Request) bool) {
	fb.mu.Lock()
	fb.answer = f
	fb.mu.Unlock()
}

// start listens on the backend's port (retrying briefly while the old socket lingers).
func (fb *faultBackend) start() {
	fb.t.Helper()
	ln, err := testkit.Relisten(fb.addr)
	if err != nil {
		fb.t.Fatalf("backend listen %s: %v", fb.addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(fb.serve), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: fb.idleTimeout}
	fb.mu.Lock()
	fb.srv = srv
	fb.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// stop closes the listener and every connection at once, like a backend that crashed.
func (fb *faultBackend) stop() {
	fb.mu.Lock()
	srv := fb.srv
	fb.srv = nil
	fb.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = 200
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return s.ResponseWriter.(http.Hijacker).Hijack()
}

func (fb *faultBackend) serve(w http.ResponseWriter, r *http.Request) {
	fb.wg.Add(1)
	defer fb.wg.Done()
	raw, _ := io.ReadAll(r.Body)
	p := backendPost{Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Raw: raw}
	if err := json.Unmarshal(raw, &p.Body); err != nil {
		fb.t.Errorf("backend got invalid JSON on %s: %v", r.URL.Path, err)
	}
	id, _ := p.Body["connection_id"].(string)
	if id == "" {
		id, _ = p.meta()["connection_id"].(string)
	}
	msg, _ := p.Body["message"].(string)

	fb.mu.Lock()
	fb.totalPosts++
	c := fb.conns[id]
	if c == nil {
		c = &fbConn{answered2xx: make(map[string]int), acted: make(map[string]bool)}
		fb.conns[id] = c
	}
	switch r.URL.Path {
	case "/connect":
		c.connects++
		fb.order = append(fb.order, id)
	case "/message":
		c.messages = append(c.messages, msg)
		c.inflight++
		fb.maxInflight = max(fb.maxInflight, c.inflight)
	case "/disconnect":
		c.disconnects++
		c.disconnect = p.Body
	}
	answer := fb.answer
	fb.mu.Unlock()

	rec := &statusRecorder{ResponseWriter: w}
	if answer == nil || !answer(id, p, rec, r) {
		rec.WriteHeader(200)
	}
	fb.mu.Lock()
	if r.URL.Path == "/message" {
		c.inflight--
		// Counted as a backend that drops repeats by X-SocketDock-Event-Id acts: a retry of a
		// POST whose 2xx the relay never received (the backend closed under it) repeats its
		// event id (CONTRACT §3), and is acted on once.
		if eventID := r.Header.Get("X-SocketDock-Event-Id"); rec.status >= 200 && rec.status < 300 && !c.acted[eventID] {
			c.acted[eventID] = true
			c.answered2xx[msg]++
		}
	}
	fb.mu.Unlock()
}

// conn returns a copy of what the backend saw of one connection.
func (fb *faultBackend) conn(id string) fbConn {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	c := fb.conns[id]
	if c == nil {
		return fbConn{answered2xx: map[string]int{}}
	}
	cp := *c
	cp.messages = append([]string(nil), c.messages...)
	cp.answered2xx = make(map[string]int, len(c.answered2xx))
	for k, v := range c.answered2xx {
		cp.answered2xx[k] = v
	}
	return cp
}

func (fb *faultBackend) connIDs() []string {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return append([]string(nil), fb.order...)
}

func (fb *faultBackend) waitConnects(t testing.TB, n int) []string {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("%d connect POSTs", n), func() bool { return len(fb.connIDs()) >= n })
	return fb.connIDs()
}

// relayFor starts a relay whose three URIs point at fb.
func (fb *faultBackend) relayFor(t testing.TB, args ...string) *testRelay {
	t.Helper()
	return startRelay(t, append([]string{"--backend", "http", "--message-uri", fb.URL + "/message",
		"--connect-uri", fb.URL + "/connect", "--disconnect-uri", fb.URL + "/disconnect"}, args...)...)
}

// checkAllDelivered waits for every chatter to finish, checks each closed normally after
// sending all msgs, and checks each connection's messages arrived in order (checkConn). It
// returns the extra deliveries of attempts the backend never answered.
func (fb *faultBackend) checkAllDelivered(t testing.TB, ids []string, chs []*chatter, msgs int) (extra int) {
	t.Helper()
	byName := map[string]*chatter{}
	for _, ch := range chs {
		ch.wait(t)
		byName[ch.name] = ch
		if ch.closeCode != 1000 || len(ch.sent) != msgs {
			t.Errorf("%s: sent %d, closed %d %q; want all %d and 1000", ch.name, len(ch.sent), ch.closeCode, ch.closeText, msgs)
		}
	}
	for _, id := range ids {
		c := fb.conn(id)
		eventually(t, 10*time.Second, "messages", func() bool { c = fb.conn(id); return len(c.messages) > 0 })
		name, _, _ := strings.Cut(c.messages[0], "-")
		got := fb.checkConn(t, id, byName[name].sent)
		extra += len(got.messages) - msgs
	}
	return extra
}

// checkConn asserts the backend's view of one connection whose client sent want (in order):
// one connect, one disconnect, every message in order, none answered 2xx twice, and no
// message the client did not send.
func (fb *faultBackend) checkConn(t testing.TB, id string, want []string) fbConn {
	t.Helper()
	eventually(t, 10*time.Second, "disconnect POST of "+id, func() bool { return fb.conn(id).disconnects >= 1 })
	time.Sleep(20 * time.Millisecond) // a second disconnect would arrive about now
	c := fb.conn(id)
	if c.connects != 1 || c.disconnects != 1 {
		t.Errorf("%s: backend saw %d connects and %d disconnects, want 1 and 1", id, c.connects, c.disconnects)
	}
	for m, n := range c.answered2xx {
		if n > 1 {
			t.Errorf("%s: message %q answered 2xx %d times", id, m, n)
		}
	}
	// Distinct messages in first-arrival order must equal what the client sent.
	var got []string
	seen := map[string]bool{}
	for _, m := range c.messages {
		if !seen[m] {
			seen[m] = true
			got = append(got, m)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: backend messages (distinct, in order) = %d %v..., want %d", id, len(got), head(got), len(want))
	}
	for _, m := range want {
		if c.answered2xx[m] != 1 {
			t.Errorf("%s: message %q answered 2xx %d times, want once", id, m, c.answered2xx[m])
			break
		}
	}
	return c
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

// chatter is one client sending numbered messages at an interval; it stops at n messages,
// when told, or when the server closes it, and remembers the close it saw.
type chatter struct {
	c         *websocket.Conn
	name      string
	sent      []string
	closeCode int
	closeText string
	done      chan struct{}
}

func startChatter(t testing.TB, url, name string, n int, every time.Duration) *chatter {
	t.Helper()
	return startChatterHold(t, url, name, n, every, false)
}

// startChatterHold is startChatter; with hold, the client does not close after its last
// message but waits (up to 10 s) for the server to close it.
func startChatterHold(t testing.TB, url, name string, n int, every time.Duration, hold bool) *chatter {
	t.Helper()
	ch := &chatter{c: dial(t, url, nil), name: name, done: make(chan struct{})}
	closed := make(chan struct{})
	go func() { // reader: notices the server's close
		defer close(closed)
		for {
			_ = ch.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, _, err := ch.c.ReadMessage(); err != nil {
				if ce, ok := err.(*websocket.CloseError); ok {
					ch.closeCode, ch.closeText = ce.Code, ce.Text
				}
				return
			}
		}
	}()
	go func() {
		defer close(ch.done)
		for i := 0; i < n; i++ {
			select {
			case <-closed:
				return
			case <-time.After(every):
			}
			m := fmt.Sprintf("%s-%04d", name, i)
			if err := ch.c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
				// The server closed us: let the reader record its close before done.
				select {
				case <-closed:
				case <-time.After(10 * time.Second):
				}
				return
			}
			ch.sent = append(ch.sent, m)
		}
		if hold {
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
			}
			return
		}
		// Normal end: close handshake, then wait for the echo.
		_ = ch.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "done"), time.Now().Add(time.Second))
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
		}
	}()
	return ch
}

func (ch *chatter) wait(t testing.TB) {
	t.Helper()
	select {
	case <-ch.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not finish", ch.name)
	}
}

// faultArgs are short timeouts so fault tests stay fast: 300 ms per attempt, 4 retries
// (backoff 50-100, 100-200, 200-400, 400-800 ms: a 300 ms outage is always covered, one over
// 1.5 s never is).
var faultArgs = []string{"--backend-timeout", "300ms", "--backend-retries", "4"}

// Absent at start: the first client is told 1011; once the backend is up, new clients work.
func TestFaultBackendAbsentAtStart(t *testing.T) {
	fb := newFaultBackend(t)
	r := fb.relayFor(t, faultArgs...)
	c := dial(t, r.WSURL, nil)
	start := time.Now()
	code, reason := expectClose(t, c)
	if code != 1011 || !strings.Contains(reason, "backend") {
		t.Fatalf("client saw close %d %q, want 1011 naming the backend", code, reason)
	}
	t.Logf("absent backend: client closed 1011 %q after %v (connect POST retried)", reason, time.Since(start).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // the first connection's disconnect POST runs out of retries

	fb.start()
	ch := startChatter(t, r.WSURL, "late", 20, 5*time.Millisecond)
	ch.wait(t)
	if ch.closeCode != 1000 {
		t.Fatalf("client after the backend came up closed with %d %q", ch.closeCode, ch.closeText)
	}
	ids := fb.waitConnects(t, 1)
	if len(ids) != 1 {
		t.Fatalf("backend saw %d connects, want 1 (the first connection's must not arrive late)", len(ids))
	}
	fb.checkConn(t, ids[0], ch.sent)
}

// A blip shorter than the retry window is invisible to clients: every message arrives
// once, in order. Then an outage longer than the window closes every client with 1011.
func TestFaultBackendDownMidTraffic(t *testing.T) {
	fb := newFaultBackend(t)
	fb.start()
	r := fb.relayFor(t, faultArgs...)

	const clients, msgs = 4, 120
	var chs []*chatter
	for i := 0; i < clients; i++ {
		chs = append(chs, startChatter(t, r.WSURL, "c"+strconv.Itoa(i), msgs, 5*time.Millisecond))
	}
	ids := fb.waitConnects(t, clients)
	time.Sleep(150 * time.Millisecond)
	fb.stop()
	time.Sleep(300 * time.Millisecond)
	fb.start()
	retried := fb.checkAllDelivered(t, ids, chs, msgs)
	t.Logf("300ms outage: %d clients x %d messages delivered once each, in order; %d extra deliveries of unanswered attempts", clients, msgs, retried)

	// A long outage: the retries run out and the clients are told.
	long := []*chatter{startChatter(t, r.WSURL, "x0", 1000, 10*time.Millisecond), startChatter(t, r.WSURL, "x1", 1000, 10*time.Millisecond)}
	fb.waitConnects(t, clients+2)
	time.Sleep(100 * time.Millisecond)
	fb.stop()
	start := time.Now()
	for _, ch := range long {
		ch.wait(t)
		if ch.closeCode != 1011 || !strings.Contains(ch.closeText, "backend") {
			t.Errorf("%s: long outage closed %d %q, want 1011", ch.name, ch.closeCode, ch.closeText)
		}
	}
	t.Logf("long outage: clients closed 1011 after %v", time.Since(start).Round(time.Millisecond))
}

// Flapping: down 250 ms of every second for four seconds. The retries cover each outage.
func TestFaultBackendFlapping(t *testing.T) {
	fb := newFaultBackend(t)
	fb.start()
	r := fb.relayFor(t, faultArgs...)
	const clients, msgs = 3, 300
	var chs []*chatter
	for i := 0; i < clients; i++ {
		chs = append(chs, startChatter(t, r.WSURL, "f"+strconv.Itoa(i), msgs, 12*time.Millisecond))
	}
	ids := fb.waitConnects(t, clients)
	stopFlap := make(chan struct{})
	var flaps atomic.Int32
	go func() {
		for i := 0; i < 4; i++ {
			select {
			case <-stopFlap:
				return
			case <-time.After(750 * time.Millisecond):
			}
			fb.stop()
			time.Sleep(250 * time.Millisecond)
			fb.start()
			flaps.Add(1)
		}
	}()
	for _, ch := range chs {
		ch.wait(t)
	}
	close(stopFlap)
	extra := fb.checkAllDelivered(t, ids, chs, msgs)
	t.Logf("flapping (%d outages of 250ms): %d clients x %d messages delivered in order; %d extra deliveries", flaps.Load(), clients, msgs, extra)
}

// Slow: one client's messages take longer than --backend-timeout. That client is told 1011;
// the POST is not retried (the backend may have acted); its neighbours keep going.
func TestFaultBackendSlow(t *testing.T) {
	fb := newFaultBackend(t)
	fb.start()
	fb.setAnswer(func(id string, p backendPost, w http.ResponseWriter, r *http.Request) bool {
		if m, _ := p.Body["message"].(string); strings.HasPrefix(m, "slow-") && strings.HasSuffix(m, "0005") {
			fb.sleep(2 * time.Second)
		}
		return false
	})
	r := fb.relayFor(t, faultArgs...)
	slow := startChatterHold(t, r.WSURL, "slow", 50, 5*time.Millisecond, true)
	ok := []*chatter{startChatter(t, r.WSURL, "ok0", 200, 5*time.Millisecond), startChatter(t, r.WSURL, "ok1", 200, 5*time.Millisecond)}
	slow.wait(t)
	if slow.closeCode != 1011 || !strings.Contains(slow.closeText, "timeout") {
		t.Fatalf("slow client closed %d %q, want 1011 backend timeout", slow.closeCode, slow.closeText)
	}
	for _, ch := range ok {
		ch.wait(t)
		if ch.closeCode != 1000 || len(ch.sent) != 200 {
			t.Errorf("neighbour %s: sent %d, closed %d %q", ch.name, len(ch.sent), ch.closeCode, ch.closeText)
		}
	}
	for _, id := range fb.waitConnects(t, 3) {
		c := fb.conn(id)
		eventually(t, 5*time.Second, "disconnect", func() bool { c = fb.conn(id); return c.disconnects > 0 })
		if len(c.messages) > 0 && strings.HasPrefix(c.messages[0], "slow-") {
			// slow-0000..0005 reached the backend, 0005 exactly once; nothing after it.
			if n := len(c.messages); n != 6 || c.messages[5] != "slow-0005" {
				t.Errorf("slow connection: backend saw %v", c.messages)
			}
			if c.connects != 1 || c.disconnects != 1 {
				t.Errorf("slow connection: %d connects, %d disconnects", c.connects, c.disconnects)
			}
			if code, _ := c.disconnect["code"].(float64); code != 1011 {
				t.Errorf("slow connection: disconnect code %v, want 1011", c.disconnect["code"])
			}
			continue
		}
		name, _, _ := strings.Cut(c.messages[0], "-")
		for _, ch := range ok {
			if ch.name == name {
				fb.checkConn(t, id, ch.sent)
			}
		}
	}
}

// Status answers: 500 → 1011 and no retry; 400 → 1008 and no retry; 429 with Retry-After →
// delivered after the pause, the 2xx once. Only the client whose message failed is closed.
func TestFaultBackendStatuses(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		header     string
		times      int // how many answers are the fault, then 200
		wantCode   int
		wantReason string
		attempts   int // POSTs of the faulty message the backend sees
		minDelay   time.Duration
	}{
		{"500", 500, "", 99, 1011, "500", 1, 0},
		{"400", 400, "", 99, 1008, "400", 1, 0},
		{"429-retry-after", 429, "1", 1, 1000, "", 2, time.Second},
		{"429-forever", 429, "0", 99, 1011, "429", 5, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fb := newFaultBackend(t)
			fb.start()
			var mu sync.Mutex
			answered := 0
			var firstAt, okAt time.Time
			fb.setAnswer(func(id string, p backendPost, w http.ResponseWriter, r *http.Request) bool {
				if m, _ := p.Body["message"].(string); m != "bad-0003" {
					return false
				}
				mu.Lock()
				defer mu.Unlock()
				answered++
				if answered == 1 {
					firstAt = time.Now()
				}
				if answered <= tc.times {
					if tc.header != "" {
						w.Header().Set("Retry-After", tc.header)
					}
					w.WriteHeader(tc.status)
					return true
				}
				okAt = time.Now()
				return false
			})
			r := fb.relayFor(t, faultArgs...)
			bad := startChatterHold(t, r.WSURL, "bad", 10, 5*time.Millisecond, tc.wantCode != 1000)
			good := startChatter(t, r.WSURL, "good", 60, 5*time.Millisecond)
			bad.wait(t)
			good.wait(t)
			if bad.closeCode != tc.wantCode || !strings.Contains(bad.closeText, tc.wantReason) {
				t.Errorf("faulty client closed %d %q, want %d naming %q", bad.closeCode, bad.closeText, tc.wantCode, tc.wantReason)
			}
			if good.closeCode != 1000 || len(good.sent) != 60 {
				t.Errorf("neighbour: sent %d, closed %d %q", len(good.sent), good.closeCode, good.closeText)
			}
			ids := fb.waitConnects(t, 2)
			for _, id := range ids {
				c := fb.conn(id)
				eventually(t, 5*time.Second, "messages", func() bool { c = fb.conn(id); return len(c.messages) > 0 })
				if strings.HasPrefix(c.messages[0], "good-") {
					fb.checkConn(t, id, good.sent)
					continue
				}
				eventually(t, 10*time.Second, "disconnect", func() bool { c = fb.conn(id); return c.disconnects > 0 })
				n := 0
				for _, m := range c.messages {
					if m == "bad-0003" {
						n++
					}
				}
				if n != tc.attempts {
					t.Errorf("backend saw bad-0003 %d times, want %d", n, tc.attempts)
				}
				if tc.wantCode == 1000 {
					fb.checkConn(t, id, bad.sent)
				} else if last := c.messages[len(c.messages)-1]; last != "bad-0003" {
					t.Errorf("messages after the failed one were POSTed: %v", c.messages)
				}
				if code, _ := c.disconnect["code"].(float64); int(code) != tc.wantCode {
					t.Errorf("disconnect POST code %v, want %d", c.disconnect["code"], tc.wantCode)
				}
			}
			mu.Lock()
			if tc.minDelay > 0 && okAt.Sub(firstAt) < tc.minDelay {
				t.Errorf("Retry-After %s not honoured: retried after %v", tc.header, okAt.Sub(firstAt))
			}
			if tc.minDelay > 0 {
				t.Logf("429 Retry-After: 1 → retried after %v, then 2xx", okAt.Sub(firstAt).Round(time.Millisecond))
			}
			mu.Unlock()
		})
	}
}

// Resets on fresh connections are not retried, whether or not the backend read the request
// (the relay cannot tell, and the backend may have acted on it): the client is told 1011.
// (a) reset before reading: the backend never saw the message; (b) reset after reading a
// message that arrived on a pooled connection: one retry on a fresh connection, whose reset
// ends it. The pooled keep-alive race itself is TestFaultBackendStaleKeepAlivePool.
func TestFaultBackendResets(t *testing.T) {
	t.Run("before-request-read", func(t *testing.T) {
		fb := newFaultBackend(t)
		fb.start()
		// A proxy in front of the backend that resets the first two connections it accepts.
		pln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var resets atomic.Int32
		var pwg sync.WaitGroup
		var pmu sync.Mutex
		var pconns []net.Conn
		t.Cleanup(func() {
			pln.Close()
			pmu.Lock()
			for _, c := range pconns { // the relay's idle keep-alive connections
				c.Close()
			}
			pmu.Unlock()
			pwg.Wait()
		})
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for {
				c, err := pln.Accept()
				if err != nil {
					return
				}
				if resets.Load() < 2 {
					resets.Add(1)
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
					continue
				}
				pmu.Lock()
				pconns = append(pconns, c)
				pmu.Unlock()
				pwg.Add(1)
				go func() { defer pwg.Done(); proxyTo(c, fb.addr) }()
			}
		}()
		purl := "http://" + pln.Addr().String()
		r := startRelay(t, append([]string{"--backend", "http", "--message-uri", purl + "/message",
			"--connect-uri", purl + "/connect", "--disconnect-uri", purl + "/disconnect"}, faultArgs...)...)
		ch := startChatter(t, r.WSURL, "r", 20, 5*time.Millisecond)
		ch.wait(t)
		if ch.closeCode != 1011 {
			t.Fatalf("client closed %d %q, want 1011 (a reset on a fresh connection is not retried)", ch.closeCode, ch.closeText)
		}
		// The connect POST and then the disconnect POST each meet one reset: neither is retried.
		if n := resets.Load(); n > 2 {
			t.Fatalf("%d connections reset, want at most 2 (connect, disconnect): a POST was retried", n)
		}
		if ids := fb.connIDs(); len(ids) != 0 {
			t.Fatalf("backend saw %d connections, want none", len(ids))
		}
		t.Logf("reset of a fresh connection before the request was read: client closed %d %q, no retry", ch.closeCode, ch.closeText)
	})
	t.Run("after-request-read", func(t *testing.T) {
		fb := newFaultBackend(t)
		fb.start()
		fb.setAnswer(func(id string, p backendPost, w http.ResponseWriter, r *http.Request) bool {
			if m, _ := p.Body["message"].(string); m != "r-0004" {
				return false
			}
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
			return true
		})
		r := fb.relayFor(t, faultArgs...)
		ch := startChatterHold(t, r.WSURL, "r", 20, 5*time.Millisecond, true)
		good := startChatter(t, r.WSURL, "good", 40, 5*time.Millisecond)
		ch.wait(t)
		good.wait(t)
		if ch.closeCode != 1011 {
			t.Errorf("client closed %d %q, want 1011", ch.closeCode, ch.closeText)
		}
		if good.closeCode != 1000 || len(good.sent) != 40 {
			t.Errorf("neighbour: sent %d, closed %d %q", len(good.sent), good.closeCode, good.closeText)
		}
		for _, id := range fb.waitConnects(t, 2) {
			c := fb.conn(id)
			eventually(t, 5*time.Second, "messages", func() bool { c = fb.conn(id); return len(c.messages) > 0 })
			if strings.HasPrefix(c.messages[0], "good-") {
				fb.checkConn(t, id, good.sent)
				continue
			}
			n := 0
			for _, m := range c.messages {
				if m == "r-0004" {
					n++
				}
			}
			// CONTRACT §3 retries "a reset on a pooled keep-alive connection", and the relay
			// cannot tell that from a backend that read the request and then reset: the
			// message may arrive once more. The retry goes out on a fresh connection, and a
			// reset there is not retried, so twice at most (never one answered 2xx).
			if n < 1 || n > 2 {
				t.Errorf("backend received r-0004 %d times, want 1 or 2", n)
			}
			t.Logf("reset after reading the request: backend received the message %d times (no 2xx), client closed %d %q", n, ch.closeCode, ch.closeText)
		}
	})
}

// proxyTo copies bytes both ways between c and addr until either side closes.
func proxyTo(c net.Conn, addr string) {
	defer c.Close()
	u, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); u.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

// A backend whose keep-alive timeout is shorter than the relay's (Node's default is 5 s) leaves
// the relay's pool full of connections it has closed. After a quiet spell every client's next
// message must still arrive: the retries may not each pick another dead pooled connection.
func TestFaultBackendStaleKeepAlivePool(t *testing.T) {
	fb := newFaultBackend(t)
	fb.idleTimeout = 100 * time.Millisecond
	fb.setAnswer(func(id string, p backendPost, w http.ResponseWriter, r *http.Request) bool {
		time.Sleep(50 * time.Millisecond) // concurrent POSTs: the relay pools one connection each
		return false
	})
	fb.start()
	r := fb.relayFor(t, "--backend-timeout", "300ms", "--backend-retries", "1")
	const clients = 12
	var cs []*websocket.Conn
	for i := 0; i < clients; i++ {
		cs = append(cs, dial(t, r.WSURL, nil))
	}
	ids := fb.waitConnects(t, clients)
	for round := 0; round < 3; round++ {
		time.Sleep(300 * time.Millisecond) // every pooled connection is now closed by the backend
		if round == 1 {
			fb.stop() // and a restart closes whatever is left
			fb.start()
		}
		for i, c := range cs {
			if err := c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("m%d-%d", i, round))); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 5*time.Second, "messages after a quiet spell", func() bool {
			n := 0
			for _, id := range ids {
				n += len(fb.conn(id).messages)
			}
			return n == clients*(round+1)
		})
	}
	for _, c := range cs {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
		if code, _ := expectClose(t, c); code != 1000 {
			t.Errorf("client closed %d, want 1000 (a stale pool must not cost a client its connection)", code)
		}
	}
	for _, id := range ids {
		eventually(t, 5*time.Second, "disconnect", func() bool { return fb.conn(id).disconnects == 1 })
	}
	t.Logf("backend keep-alive 100ms, 3 quiet spells of 300ms, %d clients: every message and disconnect delivered", clients)
}

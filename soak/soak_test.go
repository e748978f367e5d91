// Package soak runs the relay for a long while under churn and faults, reconciles every
// message at the end (issue 3), and follows the relay's memory throughout (issue 8). It runs
// only when SOAK_DURATION is set: `make soak` (10 minutes by default; SOAK_DURATION=60s in CI).
//
// The relay is the built binary in a process of its own (soak.mk passes the one `make build`
// made, else the test builds it), so what is measured is the relay, not the test's clients,
// backend and ledger. Every SOAK_SAMPLE (5 s) the test reads its VmRSS from /proc and its Go
// heap from /metrics, into SOAK_CSV if set.
//
// Clients come and go (sessions of 0.3-3 s), send numbered messages, and receive /send
// callbacks the backend makes in answer to some of them. A quarter of them (SOAK_POLL_CLIENTS)
// are long-poll sessions (pollclient_test.go), the rest WebSockets. Every session ends with a
// "bye" message that the backend acknowledges through /send once everything before it was
// handled; then a WebSocket closes with a close handshake, drops TCP, or asks to be
// disconnected by the backend, and a poll session ends with /poll/c, is disconnected by the
// backend, or vanishes (the relay must expire it). Meanwhile the backend blips: 503 answers for
// 400 ms, or a restart that refuses connections for 300 ms; the relay's retries must cover both.
// Every sixth fault is an outage of 3.5 s that they cannot cover (1011). After the load, a
// churn burst (SOAK_BURST, 15 s of connect, upgrade, drop), then the relay is left alone
// (SOAK_SETTLE, 45 s).
//
// At the end, per transport: every message a client sent was answered 2xx by the backend
// exactly once, unless that client got a close code saying it was not; every /send answered
// 200 reached its client once; connect and disconnect were POSTed once per connection, with
// the client's meta.transport. The relay's live heap and RSS in the
// last third of the load are within a wide margin of its first minute's; after the load and two
// GCs its live heap is within 8 MiB of its live heap at rest; after the burst and the settle its
// RSS is within 48 MiB of its RSS at rest and (two GCs later) its live heap within 32 MiB, and
// goroutines and open files are back.
package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketdock/socketdock/internal/testkit"
)

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// backend is the soak's HTTP backend: it answers messages, pushes /send callbacks, blips.
type backend struct {
	t      testing.TB
	addr   string
	client *http.Client

	mu          sync.Mutex
	srv         *http.Server
	session     map[string]string         // connection id → session key
	conns       map[string]*backendConn   // by connection id
	received    map[string]int            // "session|seq" → 2xx answers
	sendOK      map[string]map[string]int // session → /send payloads answered 200
	connects    int
	disconnects int
	mode503     atomic.Bool
	blips503    int
	outages     int
	restarts    int
	sends       atomic.Int64
	sends200    atomic.Int64
	sendsOther  atomic.Int64
}

type backendConn struct {
	id        string
	key       string // the client's session key
	transport string // meta.transport of the connect POST: "ws" or "poll"
	sendURL   string
	discURL   string
	inflight  sync.WaitGroup // /send callbacks under way
	leaving   bool
	connects  int
	discs     int
	code      int
	reason    string
	mismatch  []string // a message or disconnect that named another transport
}

func (b *backend) start() {
	ln, err := testkit.Relisten(b.addr)
	if err != nil {
		b.t.Fatalf("backend listen: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(b.serve), IdleTimeout: time.Second, ReadHeaderTimeout: 5 * time.Second}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// restart is a deploy: refuse connections for d, finishing the requests already read.
func (b *backend) restart(d time.Duration) {
	b.mu.Lock()
	srv := b.srv
	b.restarts++
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(ctx)
	cancel()
	time.Sleep(d)
	b.start()
}

func (b *backend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

type body struct {
	ConnectionID string `json:"connection_id"`
	Transport    string `json:"transport"` // disconnect
	Code         int    `json:"code"`
	Reason       string `json:"reason"`
	Message      string `json:"message"`
	Meta         struct {
		ConnectionID string            `json:"connection_id"`
		Transport    string            `json:"transport"`
		Send         string            `json:"send"`
		Disconnect   string            `json:"disconnect"`
		Headers      map[string]string `json:"headers"`
	} `json:"meta"`
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var m body
	if err := json.Unmarshal(raw, &m); err != nil {
		b.t.Errorf("backend: bad JSON %q", raw)
		w.WriteHeader(400)
		return
	}
	switch r.URL.Path {
	case "/connect":
		b.mu.Lock()
		c := b.conn(m.Meta.ConnectionID)
		c.connects++
		c.sendURL, c.discURL = m.Meta.Send, m.Meta.Disconnect
		c.key, c.transport = m.Meta.Headers["x-soak-session"], m.Meta.Transport
		b.session[c.id] = c.key
		b.connects++
		b.mu.Unlock()
	case "/disconnect":
		b.mu.Lock()
		c := b.conn(m.ConnectionID)
		c.discs++
		c.code, c.reason = m.Code, m.Reason
		if m.Transport != c.transport {
			c.mismatch = append(c.mismatch, "disconnect says "+strconv.Quote(m.Transport))
		}
		b.disconnects++
		b.mu.Unlock()
	case "/message":
		if b.mode503.Load() {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(503)
			return
		}
		b.message(m)
	}
	w.WriteHeader(200)
}

func (b *backend) conn(id string) *backendConn { // b.mu held
	c := b.conns[id]
	if c == nil {
		c = &backendConn{id: id}
		b.conns[id] = c
	}
	return c
}

func (b *backend) message(m body) {
	b.mu.Lock()
	c := b.conn(m.Meta.ConnectionID)
	sess := b.session[c.id]
	b.received[m.Message]++
	if m.Meta.Transport != c.transport && len(c.mismatch) < 3 {
		c.mismatch = append(c.mismatch, "message says "+strconv.Quote(m.Meta.Transport))
	}
	leaving := c.leaving
	if strings.HasPrefix(m.Message, "bye|") {
		c.leaving = true
	}
	b.mu.Unlock()
	if strings.HasPrefix(m.Message, "hold|") {
		// A slow answer: the connection's next messages wait in the relay's inbound queue.
		time.Sleep(holdFor)
		return
	}
	if rest, ok := strings.CutPrefix(m.Message, "bye|"); ok {
		// Everything before the bye is handled; wait for our callbacks, then acknowledge.
		c.inflight.Wait()
		b.push(c, sess, "ACK")
		if strings.HasSuffix(rest, "|kick") {
			resp, err := b.client.Post(c.discURL, "application/json", strings.NewReader(`{"code":1000,"reason":"bye"}`))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		return
	}
	if !leaving && rand.IntN(3) == 0 {
		c.inflight.Add(1)
		payload := "S|" + strconv.FormatInt(b.sends.Add(1), 10)
		go func() {
			defer c.inflight.Done()
			b.push(c, sess, payload)
		}()
	}
}

// push sends one callback and records a 200.
func (b *backend) push(c *backendConn, sess, payload string) {
	resp, err := b.client.Post(c.sendURL, "text/plain", strings.NewReader(payload))
	if err != nil {
		b.sendsOther.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.sendsOther.Add(1)
		return
	}
	b.sends200.Add(1)
	b.mu.Lock()
	if b.sendOK[sess] == nil {
		b.sendOK[sess] = make(map[string]int)
	}
	b.sendOK[sess][payload]++
	b.mu.Unlock()
}

// session is what one client connection (a WebSocket, or a poll session) saw.
type session struct {
	key       string
	transport string // "ws" or "poll"
	sent      []string
	got       map[string]int
	acked     bool
	closeCode int // from the server, 0 when none
	mode      string

	// Poll sessions only.
	uncertain   []string // sent, but the request failed: answered 2xx at most once
	refused     int      // messages the relay refused (503 past the retry budget): not sent
	retries503  int      // 503 + Retry-After answers to /poll/s, retried
	floods      int      // floods of the inbound queue (a held message, then 300 at once)
	redelivered int      // messages a poll answer carried again, dropped by seq
	pollErrors  int      // polls that failed (network), retried with the same ack
	statusErr   []string // answers the contract does not allow here
	closeErr    string   // /poll/c did not answer 200
}

func runSession(url, key string, life time.Duration) *session {
	s := &session{key: key, transport: "ws", got: make(map[string]int)}
	modes := []string{"close", "drop", "kick"}
	s.mode = modes[rand.IntN(len(modes))]
	h := http.Header{"X-Soak-Session": []string{key}}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial(url, h)
	if err != nil {
		s.closeCode = -1 // never connected; sends nothing
		return s
	}
	defer c.Close()
	var mu sync.Mutex
	ackCh := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, p, err := c.ReadMessage()
			if err != nil {
				if ce, ok := err.(*websocket.CloseError); ok {
					mu.Lock()
					s.closeCode = ce.Code
					mu.Unlock()
				}
				return
			}
			mu.Lock()
			s.got[string(p)]++
			mu.Unlock()
			if string(p) == "ACK" {
				close(ackCh)
			}
		}
	}()
	end := time.Now().Add(life)
	for seq := 0; time.Now().Before(end) && seq < 10_000; seq++ {
		msg := key + "|" + strconv.Itoa(seq)
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			break
		}
		s.sent = append(s.sent, msg)
		select {
		case <-readerDone:
			return s
		case <-time.After(time.Duration(10+rand.IntN(40)) * time.Millisecond):
		}
	}
	bye := "bye|" + key + "|" + s.mode
	if err := c.WriteMessage(websocket.TextMessage, []byte(bye)); err == nil {
		s.sent = append(s.sent, bye)
	}
	var ended bool
	if s.acked, ended = awaitAck(ackCh, readerDone, 15*time.Second); !s.acked || ended {
		return s
	}
	switch s.mode {
	case "close":
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(time.Second))
	case "drop":
		c.NetConn().(*net.TCPConn).SetLinger(0)
		c.Close()
		return s
	case "kick": // the backend disconnects us
	}
	select {
	case <-readerDone:
	case <-time.After(10 * time.Second):
	}
	return s
}

// pollSessionTimeout is the relay's --poll-session-timeout: a poll client that vanishes
// must be disconnected with 1006 this long after its last poll.
const pollSessionTimeout = 3 * time.Second

const (
	// outageFor outlasts the relay's retries (--backend-retries 5: backoffs of at most
	// 0.1+0.2+0.4+0.8+1.6 s).
	outageFor = 3500 * time.Millisecond
	// holdFor is how long the backend takes over a "hold|" message, under --backend-timeout.
	holdFor = time.Second
)

func TestSoak(t *testing.T) {
	durS := os.Getenv("SOAK_DURATION")
	if durS == "" {
		t.Skip("set SOAK_DURATION (make soak) to run the soak")
	}
	dur, err := time.ParseDuration(durS)
	if err != nil {
		t.Fatalf("SOAK_DURATION: %v", err)
	}
	workers := 40
	if v, err := strconv.Atoi(os.Getenv("SOAK_CLIENTS")); err == nil && v > 0 {
		workers = v
	}
	pollWorkers := workers / 4
	if v := os.Getenv("SOAK_POLL_CLIENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > workers {
			t.Fatalf("SOAK_POLL_CLIENTS=%q: want 0..%d (of SOAK_CLIENTS)", v, workers)
		}
		pollWorkers = n
	}
	every := envDuration(t, "SOAK_SAMPLE", 5*time.Second)
	settleFor := envDuration(t, "SOAK_SETTLE", 45*time.Second)
	burstFor := time.Duration(0)
	if os.Getenv("SOAK_BURST") != "0" {
		burstFor = envDuration(t, "SOAK_BURST", 15*time.Second)
	}

	b := &backend{t: t, addr: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		client:  &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Second}},
		session: map[string]string{}, conns: map[string]*backendConn{}, received: map[string]int{}, sendOK: map[string]map[string]int{}}
	b.start()
	burl := "http://" + b.addr
	relay := startRelay(t, relayBinary(t), freePort(t), freePort(t),
		"--backend", "http", "--message-uri", burl+"/message", "--connect-uri", burl+"/connect", "--disconnect-uri", burl+"/disconnect",
		"--backend-retries", "5", "--backend-timeout", "2s", "--ping-interval", "2s", "--ping-timeout", "2s", "--loops", "2",
		"--poll-session-timeout", pollSessionTimeout.String(), "--pprof", "--log-level", "WARNING")
	url := "ws://" + relay.public + "/ws"
	pollBase := "http://" + relay.public

	// The sampler reads the relay every few seconds, through every phase, into samples
	// (and SOAK_CSV, a line at a time, so a long run can be watched).
	start := time.Now()
	var csv *os.File
	if path := os.Getenv("SOAK_CSV"); path != "" {
		if csv, err = os.Create(path); err != nil {
			t.Fatal(err)
		}
		defer csv.Close()
		fmt.Fprintln(csv, csvHeader)
	}
	var (
		smu     sync.Mutex
		samples []sample
		phase   = "idle"
	)
	take := func() sample {
		smu.Lock()
		defer smu.Unlock()
		s, err := relay.read(start, phase)
		if err != nil {
			t.Errorf("sampling the relay: %v", err)
			return s
		}
		samples = append(samples, s)
		if csv != nil {
			fmt.Fprintln(csv, s.csv())
		}
		return s
	}
	setPhase := func(p string) {
		smu.Lock()
		phase = p
		smu.Unlock()
	}
	if err := relay.gc(); err != nil {
		t.Fatal(err)
	}
	base := take()
	stopSampler := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stopSampler:
				return
			case <-tick.C:
				take()
			}
		}
	}()
	t.Logf("soak: %v, %d concurrent clients (%d WebSocket, %d long-poll), a sample every %v; relay at rest: RSS %s, live heap %s, %d goroutines, %d fds",
		dur, workers, workers-pollWorkers, pollWorkers, every, mib(base.rss), mib(base.heapLive), base.goroutines, base.fds)

	setPhase("load")
	loadStart := time.Since(start)
	deadline := time.Now().Add(dur)
	var sessMu sync.Mutex
	var sessions []*session
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			poll := w < pollWorkers
			for i := 0; time.Now().Before(deadline); i++ {
				life := time.Duration(300+rand.IntN(2700)) * time.Millisecond
				var s *session
				if poll {
					s = runPollSession(pollBase, fmt.Sprintf("w%dp%d", w, i), life)
				} else {
					s = runSession(url, fmt.Sprintf("w%ds%d", w, i), life)
				}
				sessMu.Lock()
				sessions = append(sessions, s)
				sessMu.Unlock()
			}
		}()
	}
	// Faults: alternate a 503 window and a restart, one every ~5 s; every sixth is an outage,
	// 503 for longer than the relay's retries last, which closes with 1011 the connections
	// that had a message under way.
	stopBlips := make(chan struct{})
	blipsDone := make(chan struct{})
	go func() {
		defer close(blipsDone)
		for i := 0; ; i++ {
			select {
			case <-stopBlips:
				return
			case <-time.After(time.Duration(4000+rand.IntN(2000)) * time.Millisecond):
			}
			switch {
			case i%6 == 4:
				b.mode503.Store(true)
				time.Sleep(outageFor)
				b.mode503.Store(false)
				b.mu.Lock()
				b.outages++
				b.mu.Unlock()
			case i%2 == 0:
				b.mode503.Store(true)
				time.Sleep(400 * time.Millisecond)
				b.mode503.Store(false)
				b.mu.Lock()
				b.blips503++
				b.mu.Unlock()
			default:
				b.restart(300 * time.Millisecond)
			}
		}
	}()
	wg.Wait()
	close(stopBlips)
	<-blipsDone
	loadEnd := time.Since(start)

	// Let the relay finish: every connection gone and its disconnect POSTed.
	setPhase("drain")
	waitIdle(t, b, relay, start)

	sent, connBad := reconcile(t, b, sessions, workers-pollWorkers, pollWorkers)
	pollTransport.CloseIdleConnections()

	// The leak check proper: the load is over and every connection gone; after two GCs the
	// live heap must be back near its level at rest.
	setPhase("gc")
	if err := relay.gc(); err != nil {
		t.Error(err)
	}
	afterLoad := take()

	// A churn burst: connect, upgrade and drop, as fast as the workers go. Under it the relay's
	// heap grows to tens of MiB for a few dozen connections open at a time; the point is what
	// RSS does once it stops.
	var burstUps, burstFails int64
	if burstFor > 0 {
		setPhase("burst")
		burstUps, burstFails = churn(url, 64, burstFor)
		setPhase("drain")
		waitIdle(t, b, relay, start)
		b.mu.Lock()
		burstBad := 0
		for _, c := range b.conns {
			if c.connects != 1 || c.discs != 1 {
				burstBad++
			}
		}
		b.mu.Unlock()
		t.Logf("burst: %v, 64 workers: %d upgrades (%.0f/s), %d failed; connections with one connect and one disconnect: %d otherwise",
			burstFor, burstUps, float64(burstUps)/burstFor.Seconds(), burstFails, burstBad-connBad)
		if burstBad > connBad {
			t.Errorf("burst: %d connections without exactly one connect and one disconnect", burstBad-connBad)
		}
	}

	// Settle: the relay is left alone, sampled, for settleFor; then RSS is read. Then one GC
	// (the runtime forces one within 2 minutes anyway), so the live heap is current.
	setPhase("settle")
	time.Sleep(settleFor)
	settled := take()
	setPhase("gc")
	if err := relay.gc(); err != nil {
		t.Error(err)
	}
	close(stopSampler)
	<-samplerDone
	end := take()

	// The test process holds the ledger (every message sent, every answer counted) until
	// here; its size is why RSS could not be measured in this process.
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("test process (clients, backend, ledger of %d messages in %d sessions): heap in use %s after GC",
		sent, len(sessions), mib(int64(ms.HeapInuse)))
	runtime.KeepAlive(sessions)

	checkMemory(t, relay, samples, base, afterLoad, settled, end, loadStart, loadEnd)
	relay.stop(t)
	b.stop()
	b.client.CloseIdleConnections()
}

// waitIdle waits (30 s at most) until the relay has no connection open and the backend has
// heard every disconnect.
func waitIdle(t *testing.T, b *backend, relay *relayProc, start time.Time) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		b.mu.Lock()
		done := b.disconnects >= b.connects
		b.mu.Unlock()
		if s, err := relay.read(start, "drain"); err == nil && s.conns == 0 && done {
			return
		}
	}
	t.Logf("relay not idle 30 s after the load")
}

// burstRate caps the churn burst. On an idle 2-core machine an uncapped burst reached
// 8,800-9,900 upgrades/s, and the test's backend, on the same cores, then answered some connect
// and disconnect POSTs after the relay's 2 s --backend-timeout: thousands of connections
// without their disconnect, a failure of the test's backend, not the relay (the runs that
// passed went at 5,200-7,700/s).
const burstRate = 6000

// churn runs workers loops of connect, upgrade, drop (RST, so no TIME_WAIT piles up here)
// for d, burstRate upgrades a second at most.
func churn(url string, workers int, d time.Duration) (upgrades, failures int64) {
	deadline := time.Now().Add(d)
	every := time.Duration(workers) * time.Second / burstRate // per worker
	var ups, fails atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
			next := time.Now()
			for time.Now().Before(deadline) {
				if wait := time.Until(next); wait > 0 {
					time.Sleep(wait)
				}
				next = next.Add(every)
				c, _, err := dialer.Dial(url, nil)
				if err != nil {
					fails.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ups.Add(1)
				_ = c.NetConn().(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}()
	}
	wg.Wait()
	return ups.Load(), fails.Load()
}

// checkMemory asserts that the relay's memory stayed flat under the load and came back after
// it, with wide margins: the faults it guards against grow with time, or hold the burst's
// memory for minutes, by far more.
func checkMemory(t *testing.T, relay *relayProc, samples []sample, base, afterLoad, settled, end sample, loadStart, loadEnd time.Duration) {
	dur := loadEnd - loadStart
	earlyTo := loadStart + min(70*time.Second, dur/2)
	lateFrom := loadStart + dur*2/3
	var early, late, peak, burst sample
	var nEarly, nLate int
	for _, s := range samples {
		peak.rss, peak.heapLive, peak.heapInuse = max(peak.rss, s.rss), max(peak.heapLive, s.heapLive), max(peak.heapInuse, s.heapInuse)
		if s.phase == "burst" {
			burst.rss, burst.heapLive = max(burst.rss, s.rss), max(burst.heapLive, s.heapLive)
		}
		if s.phase != "load" {
			continue
		}
		if s.at >= loadStart+10*time.Second && s.at <= earlyTo {
			early.rss, early.heapLive = max(early.rss, s.rss), max(early.heapLive, s.heapLive)
			nEarly++
		}
		if s.at >= lateFrom {
			late.rss, late.heapLive = max(late.rss, s.rss), max(late.heapLive, s.heapLive)
			nLate++
		}
	}
	t.Logf("relay RSS: %s at rest; under the load %s peak of the first minute, %s peak of the last third; %s peak of the burst; %s after the settle, %s after a GC",
		mib(base.rss), mib(early.rss), mib(late.rss), mib(burst.rss), mib(settled.rss), mib(end.rss))
	t.Logf("relay live heap: %s at rest; under the load %s / %s (first minute / last third); %s after the load and 2 GCs; %s peak of the burst; %s after the settle and 2 GCs; heap in use peak %s; goroutines %d → %d, fds %d → %d",
		mib(base.heapLive), mib(early.heapLive), mib(late.heapLive), mib(afterLoad.heapLive), mib(burst.heapLive), mib(end.heapLive), mib(peak.heapInuse),
		base.goroutines, end.goroutines, base.fds, end.fds)
	if nEarly == 0 || nLate == 0 {
		t.Errorf("too few samples to compare (%d early, %d late): make SOAK_SAMPLE shorter or SOAK_DURATION longer", nEarly, nLate)
		return
	}
	if late.heapLive > early.heapLive*3/2+8<<20 {
		t.Errorf("relay live heap grew under a steady load: %s in the last third, %s in the first minute", mib(late.heapLive), mib(early.heapLive))
	}
	if late.rss > early.rss*3/2+32<<20 {
		t.Errorf("relay RSS grew under a steady load: %s in the last third, %s in the first minute", mib(late.rss), mib(early.rss))
	}
	if afterLoad.heapLive > base.heapLive+8<<20 {
		t.Errorf("relay live heap %s after the load and 2 GCs, %s at rest before it", mib(afterLoad.heapLive), mib(base.heapLive))
	}
	// After the burst the runtime keeps one descriptor (about 480 B) per goroutine the burst
	// had running at once, for good; the margins allow for that high-water mark.
	if settled.rss > base.rss+48<<20 {
		t.Errorf("relay RSS %s once the load and the burst were over (settle), %s at rest before them", mib(settled.rss), mib(base.rss))
	}
	if end.heapLive > base.heapLive+32<<20 {
		t.Errorf("relay live heap %s after the burst and 2 GCs, %s at rest before it", mib(end.heapLive), mib(base.heapLive))
	}
	if end.goroutines > base.goroutines+4 || end.fds > base.fds+4 || end.conns != 0 {
		t.Errorf("relay after the load: %d goroutines (%d at rest), %d fds (%d at rest), %d connections",
			end.goroutines, base.goroutines, end.fds, base.fds, end.conns)
		t.Logf("relay goroutines:\n%s", relay.goroutines())
	}
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a duration such as 5s", name, v)
	}
	return d
}

// awaitAck waits for the backend's acknowledgement of a session's bye. acked is false when
// the session ended (ended) or the wait ran out first. The ACK and the close that follows it
// can arrive together: select picks either of two ready channels, so the end is checked for
// an ACK that came with it.
func awaitAck(ack, done <-chan struct{}, wait time.Duration) (acked, ended bool) {
	select {
	case <-ack:
		return true, false
	case <-done:
		select {
		case <-ack:
			return true, true
		default:
			return false, true
		}
	case <-time.After(wait):
		return false, false
	}
}

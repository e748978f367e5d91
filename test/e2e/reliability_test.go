package e2e

// Slow consumers, flooding clients, limits and resource hygiene (issue 3), against a running
// relay.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dialTinyRcvbuf connects with a 4 KiB receive buffer set before connect (so the window the
// server sees is small) and upgrades; the client then reads nothing.
func dialTinyRcvbuf(t testing.TB, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawConn{Conn: nc, r: bufio.NewReaderSize(nc, 256)}
	c.send(t, []byte(upgradeRequest(addr)))
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.expectStatus(t, 101)
	return c
}

// keepAliveClient is an HTTP client for many small control API calls.
var keepAliveClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

func sendTo(t testing.TB, url string, body []byte) int {
	t.Helper()
	resp, err := keepAliveClient.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Errorf("POST %s: %v", url, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// A client that stops reading: /send fills its outbound bound, then answers 503 at once; the
// relay's memory stays flat however hard the backend pushes; past --write-timeout the client
// is dropped and its disconnect POSTed.
func TestSlowConsumerBoundedAndDropped(t *testing.T) {
	const limit = 64 << 10
	b := newBackend(t)
	r := httpRelay(t, b, "--max-outbound-bytes", strconv.Itoa(limit), "--write-timeout", "1500ms", "--ping-interval", "10s")
	dialTinyRcvbuf(t, r.Public)
	id := b.connID(t, 1)
	url := r.Control + "/socket/" + id + "/send"

	chunk := bytes.Repeat([]byte("s"), 8<<10)
	accepted := 0
	for i := 0; i < 2000; i++ {
		st := sendTo(t, url, chunk)
		if st == 503 {
			break
		}
		if st != 200 {
			t.Fatalf("send %d: status %d", i, st)
		}
		accepted++
	}
	if accepted == 2000 {
		t.Fatal("2000 sends of 8 KiB to a client that reads nothing were all accepted")
	}
	lastAccepted := time.Now()
	t.Logf("slow consumer: %d x 8 KiB accepted (%d KiB: outbound bound %d KiB plus kernel socket buffers) before the first 503",
		accepted, accepted*8, limit>>10)

	// Pushing harder: every send is refused at once and memory does not grow.
	before := heapInUse()
	big := bytes.Repeat([]byte("b"), 32<<10)
	var worst time.Duration
	refused := 0
	for i := 0; i < 300; i++ {
		start := time.Now()
		st := sendTo(t, url, big)
		worst = max(worst, time.Since(start))
		if st == 503 {
			refused++
		} else if st == 200 {
			t.Errorf("send %d to a full client answered 200", i)
		} else {
			break // 410/404: the write timeout already dropped it
		}
	}
	after := heapInUse()
	t.Logf("300 more sends of 32 KiB (9.4 MiB offered): %d answered 503, slowest answer %v; heap in use %d KiB → %d KiB",
		refused, worst.Round(time.Microsecond), before>>10, after>>10)
	if refused < 100 {
		t.Errorf("only %d of the sends to a full client were refused", refused)
	}
	if after > before+4<<20 {
		t.Errorf("heap grew by %d KiB while sends were refused", (after-before)>>10)
	}
	if worst > 2*time.Second {
		t.Errorf("a refused send took %v; want an answer at once", worst)
	}

	// Stuck past --write-timeout: dropped, and the backend hears of it.
	eventually(t, 6*time.Second, "disconnect POST after the write timeout", func() bool { return len(b.on("/disconnect")) == 1 })
	d := b.on("/disconnect")[0].Body
	t.Logf("write timeout 1.5s: disconnect POSTed %v after the last accepted send: code %v reason %q",
		time.Since(lastAccepted).Round(10*time.Millisecond), d["code"], d["reason"])
	if d["connection_id"] != id || d["code"] != float64(1006) || !strings.Contains(fmt.Sprint(d["reason"]), "write timeout") {
		t.Errorf("disconnect body %v, want code 1006 reason write timeout", d)
	}
	if st := sendTo(t, url, chunk); st != 404 && st != 410 {
		t.Errorf("send after the drop: %d, want 404 or 410", st)
	}
}

// percentile of sorted durations.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// Neighbours of a slow consumer keep their latency: round trips through the backend (message
// POST → /send callback) timed without and then with a stuck client being pushed at.
func TestSlowConsumerNeighbourLatency(t *testing.T) {
	b := newBackend(t)
	var r *testRelay
	b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
		if p.Path != "/message" {
			return false
		}
		send, _ := p.meta()["send"].(string)
		resp, err := keepAliveClient.Post(send, "text/plain", strings.NewReader(p.Body["message"].(string)))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return false
	})
	r = httpRelay(t, b, "--max-outbound-bytes", strconv.Itoa(64<<10), "--write-timeout", "30s")

	measure := func(label string) (p50, p99 time.Duration) {
		const neighbours, trips = 4, 150
		var mu sync.Mutex
		var all []time.Duration
		var wg sync.WaitGroup
		for i := 0; i < neighbours; i++ {
			c := dial(t, r.WSURL, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for j := 0; j < trips; j++ {
					msg := fmt.Sprintf("%s-%d-%d", label, i, j)
					start := time.Now()
					if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
						t.Errorf("write: %v", err)
						return
					}
					_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
					_, got, err := c.ReadMessage()
					if err != nil || string(got) != msg {
						t.Errorf("round trip %s: %q %v", msg, got, err)
						return
					}
					mu.Lock()
					all = append(all, time.Since(start))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		return percentile(all, .5), percentile(all, .99)
	}

	base50, base99 := measure("base")

	// A stuck client, pushed at from four goroutines for the whole second run.
	dialTinyRcvbuf(t, r.Public)
	eventually(t, 5*time.Second, "slow client connect", func() bool { return len(b.on("/connect")) >= 5 })
	slowID := b.on("/connect")[4].meta()["connection_id"].(string)
	stop := make(chan struct{})
	var pushed, refused atomic.Int64
	var pw sync.WaitGroup
	for i := 0; i < 4; i++ {
		pw.Add(1)
		go func() {
			defer pw.Done()
			chunk := bytes.Repeat([]byte("x"), 16<<10)
			for n := 0; n < 5000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				st := sendTo(t, r.Control+"/socket/"+slowID+"/send", chunk)
				pushed.Add(1)
				if st == 503 {
					refused.Add(1)
				}
			}
		}()
	}
	slow50, slow99 := measure("slow")
	close(stop)
	pw.Wait()
	t.Logf("neighbour round trips (4 clients x 150, via message POST and /send): without slow client p50 %v p99 %v; "+
		"with a stuck client receiving %d sends (%d answered 503): p50 %v p99 %v (p50 ratio %.2f)",
		base50, base99, pushed.Load(), refused.Load(), slow50, slow99, float64(slow50)/float64(base50))
	if refused.Load() == 0 {
		t.Error("the stuck client never filled up")
	}
	// Generous: the pushing goroutines share two CPUs with everything else.
	if slow50 > 10*base50+20*time.Millisecond {
		t.Errorf("neighbour p50 latency went from %v to %v beside a slow consumer", base50, slow50)
	}
}

// A client that floods while the backend is slow: its inbound queue holds its bound, then it
// is closed with 1013; the backend never has two of its POSTs in flight; everything accepted
// before the bound arrives, in order.
func TestFloodingClientClosed1013(t *testing.T) {
	const queue = 4
	b := newBackend(t)
	var inflight, maxInflight atomic.Int32
	b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
		if p.Path != "/message" {
			return false
		}
		n := inflight.Add(1)
		for {
			m := maxInflight.Load()
			if n <= m || maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
		inflight.Add(-1)
		return false
	})
	r := httpRelay(t, b, "--max-inbound-queue", strconv.Itoa(queue))
	c := rawDial(t, r.Public)
	var burst []byte
	const sent = 40
	for i := 0; i < sent; i++ {
		burst = append(burst, frame(true, 0x1, []byte(fmt.Sprintf("flood-%02d", i)), true)...)
	}
	c.send(t, burst)
	code := c.expectCloseFrame(t)
	if code != 1013 {
		t.Fatalf("flooding client closed with %d, want 1013", code)
	}
	_, _ = c.Write(frame(true, 0x8, []byte{0x03, 0xf5}, true)) // echo 1013
	eventually(t, 10*time.Second, "disconnect POST", func() bool { return len(b.on("/disconnect")) == 1 })
	got := b.on("/message")
	for i, p := range got {
		if want := fmt.Sprintf("flood-%02d", i); p.Body["message"] != want {
			t.Fatalf("message %d at the backend is %v, want %s (a gap or reorder)", i, p.Body["message"], want)
		}
	}
	if len(got) < queue {
		t.Errorf("backend got %d messages; the %d the queue holds must all arrive", len(got), queue)
	}
	if maxInflight.Load() != 1 {
		t.Errorf("backend saw %d message POSTs in flight for one client, want 1", maxInflight.Load())
	}
	all := b.all()
	if last := all[len(all)-1]; last.Path != "/disconnect" || last.Body["code"] != float64(1013) {
		t.Errorf("last POST %s %v, want the disconnect with code 1013", last.Path, last.Body)
	}
	t.Logf("flood of %d messages, backend 100ms each, --max-inbound-queue %d: closed 1013; backend got flood-00..flood-%02d in order, at most 1 in flight",
		sent, queue, len(got)-1)
}

func metricValue(t testing.TB, r *testRelay, series string) float64 {
	t.Helper()
	st, body := do(t, "GET", r.Control+"/metrics", "", nil)
	if st != 200 {
		t.Fatalf("/metrics: %d", st)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// tryUpgrade sends an upgrade from laddr (empty: any) and returns the status.
func tryUpgrade(t testing.TB, addr, laddr string) (int, *rawConn) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if laddr != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(laddr)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	c := &rawConn{Conn: nc, r: bufio.NewReader(nc)}
	c.send(t, []byte(upgradeRequest(addr)))
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading status: %v", err)
	}
	f := strings.Fields(line)
	st, _ := strconv.Atoi(f[1])
	for { // rest of the head
		l, err := c.r.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	return st, c
}

func TestLimits(t *testing.T) {
	t.Run("max-connections", func(t *testing.T) {
		r := startRelay(t, "--max-connections", "2")
		_, c1 := tryUpgrade(t, r.Public, "")
		st2, _ := tryUpgrade(t, r.Public, "")
		st3, c3 := tryUpgrade(t, r.Public, "")
		if st2 != 101 || st3 != 503 {
			t.Fatalf("statuses %d, %d; want 101 then 503 before any 101", st2, st3)
		}
		c3.expectEOF(t)
		if v := metricValue(t, r, `socketdock_upgrades_rejected_total{reason="max_connections"}`); v != 1 {
			t.Errorf("upgrades_rejected_total{max_connections} = %v, want 1", v)
		}
		c1.Close() // a slot frees when a connection ends
		eventually(t, 5*time.Second, "a free slot", func() bool { return r.Table.Active() == 1 })
		if st, _ := tryUpgrade(t, r.Public, ""); st != 101 {
			t.Errorf("after a close: %d, want 101", st)
		}
	})
	t.Run("max-connections-per-ip", func(t *testing.T) {
		r := startRelay(t, "--max-connections-per-ip", "2")
		a, _ := tryUpgrade(t, r.Public, "127.0.0.1")
		b, _ := tryUpgrade(t, r.Public, "127.0.0.1")
		c, _ := tryUpgrade(t, r.Public, "127.0.0.1")
		d, _ := tryUpgrade(t, r.Public, "127.0.0.2")
		if a != 101 || b != 101 || c != 503 || d != 101 {
			t.Fatalf("statuses %d %d %d (127.0.0.1) %d (127.0.0.2); want 101 101 503 101", a, b, c, d)
		}
		if v := metricValue(t, r, `socketdock_upgrades_rejected_total{reason="max_connections_per_ip"}`); v != 1 {
			t.Errorf("upgrades_rejected_total{max_connections_per_ip} = %v, want 1", v)
		}
	})
	t.Run("max-message-size", func(t *testing.T) {
		r := startRelay(t, "--max-message-size", "1000")
		c := dial(t, r.WSURL, nil)
		_ = c.WriteMessage(websocket.BinaryMessage, bytes.Repeat([]byte{1}, 1000))
		if _, p := readMessage(t, c); len(p) != 1000 {
			t.Fatalf("echo of 1000 bytes: %d", len(p))
		}
		_ = c.WriteMessage(websocket.BinaryMessage, bytes.Repeat([]byte{1}, 1001))
		if code, _ := expectClose(t, c); code != 1009 {
			t.Fatalf("1001 bytes: close %d, want 1009", code)
		}
	})
	t.Run("handshake-timeout-slowloris", func(t *testing.T) {
		r := startRelay(t, "--handshake-timeout", "300ms")
		const n = 20
		start := time.Now()
		var conns []*rawConn
		for i := 0; i < n; i++ {
			c := rawConnect(t, r.Public)
			if i%2 == 0 { // half a request, then silence; the other half send nothing
				c.send(t, []byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"))
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.expectStatus(t, 408)
			c.expectEOF(t)
		}
		took := time.Since(start)
		if took > 2*time.Second {
			t.Errorf("stalled handshakes closed after %v with --handshake-timeout 300ms", took)
		}
		if v := metricValue(t, r, `socketdock_upgrades_rejected_total{reason="handshake_timeout"}`); v != n {
			t.Errorf("handshake_timeout rejections %v, want %d", v, n)
		}
		t.Logf("slowloris: %d stalled handshakes answered 408 and closed within %v", n, took.Round(time.Millisecond))
	})
	t.Run("max-header-bytes", func(t *testing.T) {
		r := startRelay(t, "--max-header-bytes", "1024")
		c := rawConnect(t, r.Public)
		req := "GET /ws HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 2000) + "\r\n"
		c.send(t, []byte(req)) // no end of head yet: the size alone decides
		c.expectStatus(t, 431)
		c.expectEOF(t)
		ok := rawDial(t, r.Public) // an ordinary upgrade still fits
		ok.Close()
	})
}

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// 10,000 connect/upgrade/disconnect cycles, half closed with a close handshake, half by
// dropping TCP: the process's open files return to the baseline.
func TestFDsBackToBaselineAfterChurn(t *testing.T) {
	r := startRelay(t)
	// Warm up the pools (gnet loops, control client) before the baseline.
	c := rawDial(t, r.Public)
	c.Close()
	eventually(t, 5*time.Second, "warm-up close", func() bool { return r.Table.Active() == 0 })
	base := openFDs(t)

	const cycles, workers = 10_000, 8
	deadline := time.Now().Add(45 * time.Second)
	var done, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			req := []byte(upgradeRequest(r.Public))
			// The client's own FIN and RST, and a close frame with its echo.
			closeFrame := frame(true, 0x8, []byte{0x03, 0xe8}, true)
			for {
				i := done.Add(1)
				if i > cycles || time.Now().After(deadline) {
					return
				}
				nc, err := net.DialTimeout("tcp", r.Public, 5*time.Second)
				if err != nil {
					failed.Add(1)
					continue
				}
				_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = nc.Write(req)
				n, _ := io.ReadAtLeast(nc, buf, 12)
				if n < 12 || string(buf[9:12]) != "101" {
					failed.Add(1)
				}
				if i%2 == 0 {
					_, _ = nc.Write(closeFrame)
					_, _ = io.Copy(io.Discard, nc) // until the server closes
				}
				nc.Close()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	n := min(done.Load(), cycles)
	if n < cycles {
		t.Errorf("only %d cycles in the time allowed", n)
	}
	if failed.Load() > 0 {
		t.Errorf("%d of %d cycles failed", failed.Load(), n)
	}
	eventually(t, 10*time.Second, "every connection gone", func() bool { return r.Table.Active() == 0 })
	var now int
	eventually(t, 10*time.Second, "FDs back to baseline", func() bool { now = openFDs(t); return now <= base })
	t.Logf("%d connect/upgrade/close cycles in %v (%d workers): open FDs %d before, %d after; lifetime connections %d",
		n, took.Round(time.Millisecond), workers, base, now, r.Table.Lifetime())
}

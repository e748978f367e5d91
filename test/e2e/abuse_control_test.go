package e2e

// Abuse at both edges (issue 8): requests an attacker shapes to hold memory or workers on the
// control listener, to slip headers past the public parser, or to grow the metric series.
// Each test drives a real relay with raw sockets and measures what the attacker gets.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const abuseToken = "abuse-token"

// headStatus writes req on a new connection to addr and waits up to wait for the status
// line; it returns the status (0: none arrived) and the time it took.
func headStatus(t *testing.T, addr, req string, wait time.Duration) (int, time.Duration) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatalf("write: %v", err)
	}
	return readStatus(nc, start.Add(wait)), time.Since(start)
}

// readStatus reads a status line before deadline: its code, or 0.
func readStatus(nc net.Conn, deadline time.Time) int {
	_ = nc.SetReadDeadline(deadline)
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		return 0
	}
	var code int
	if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &code); err != nil {
		return 0
	}
	return code
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A request head that will be refused is answered from the head alone: the relay does not
// wait for (or buffer) the 4 MB body the head announces and never sends.
func TestAbuseControlRefusedHeadAnsweredAtOnce(t *testing.T) {
	r := startRelay(t, "--control-token", abuseToken)
	addr := strings.TrimPrefix(r.Control, "http://")
	id := "0123456789abcdef0123456789abcdef"
	req := func(method, path, auth, extra string) string {
		if auth != "" {
			auth = "Authorization: " + auth + "\r\n"
		}
		return method + " " + path + " HTTP/1.1\r\nHost: x\r\n" + auth + extra + "\r\n"
	}
	big := "Content-Length: 4000000\r\n"
	cases := []struct {
		name, req string
		want      int
	}{
		{"no token", req("POST", "/socket/"+id+"/send", "", big), 401},
		{"wrong token", req("POST", "/socket/"+id+"/send", "Bearer nope", big), 401},
		{"basic scheme", req("POST", "/socket/"+id+"/send", "Basic "+abuseToken, big), 401},
		{"no token, unknown route", req("POST", "/upload", "", big), 401},
		{"no token, chunked", req("POST", "/socket/"+id+"/send", "", "Transfer-Encoding: chunked\r\n"), 401},
		{"no token, expect 100-continue", req("POST", "/socket/"+id+"/send", "", big+"Expect: 100-continue\r\n"), 401},
		{"token, unknown route", req("POST", "/upload", "Bearer "+abuseToken, big), 404},
		{"token, unknown verb", req("POST", "/socket/"+id+"/sendall", "Bearer "+abuseToken, big), 404},
		{"token, malformed id", req("POST", "/socket/"+strings.ToUpper(id)+"/send", "Bearer "+abuseToken, big), 404},
		{"token, wrong method", req("PUT", "/socket/"+id+"/send", "Bearer "+abuseToken, big), 405},
		{"token, GET route with a body", req("GET", "/status", "Bearer "+abuseToken, big), 413},
		{"token, declared size over the limit", req("POST", "/socket/"+id+"/send", "Bearer "+abuseToken, "Content-Length: 4194305\r\n"), 413},
	}
	for _, tc := range cases {
		got, took := headStatus(t, addr, tc.req, time.Second)
		t.Logf("%s: %d after %v", tc.name, got, took.Round(time.Millisecond))
		if got != tc.want {
			t.Errorf("%s: status %d within 1s, want %d", tc.name, got, tc.want)
		}
	}
	if got := authDo(t, "GET", r.Control+"/status", "Bearer "+abuseToken, ""); got != 200 {
		t.Fatalf("/status after the refusals: %d", got)
	}
}

// 24 unauthenticated heads announcing 4 MB bodies that never come: the relay's heap does not
// grow by the announced sizes (it grew ~96 MiB, held for the 30 s read timeout, before).
func TestAbuseControlRefusedBodiesHoldNoMemory(t *testing.T) {
	r := startRelay(t, "--control-token", abuseToken)
	addr := strings.TrimPrefix(r.Control, "http://")
	const conns = 24
	head := "POST /socket/0123456789abcdef0123456789abcdef/send HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n"
	before := heapAfterGC()
	var ncs []net.Conn
	for range conns {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
		ncs = append(ncs, nc)
	}
	deadline := time.Now().Add(2 * time.Second)
	answered := 0
	for _, nc := range ncs {
		if readStatus(nc, deadline) == 401 {
			answered++
		}
	}
	after := heapAfterGC() // the connections that were not answered are still open here
	grew := int64(after) - int64(before)
	t.Logf("%d heads, %d answered 401 within 2s; heap %d -> %d KiB (%+d KiB)", conns, answered, before>>10, after>>10, grew>>10)
	if grew > 16<<20 {
		t.Errorf("heap grew %d MiB for %d refused heads", grew>>20, conns)
	}
	if answered != conns {
		t.Errorf("%d of %d heads answered 401 within 2s", answered, conns)
	}
}

// The token holder's requests still carry bodies, including ones that arrive in pieces.
func TestAbuseControlValidBodiesStillWork(t *testing.T) {
	b := newBackend(t)
	r := startRelay(t, b.relayArgs("--control-token", abuseToken)...)
	c := dial(t, r.WSURL, nil)
	id := waitConnectID(t, b, 1)
	addr := strings.TrimPrefix(r.Control, "http://")

	big := strings.Repeat("x", 1<<20)
	if got := authDo(t, "POST", r.Control+"/socket/"+id+"/send", "Bearer "+abuseToken, big); got != 200 {
		t.Fatalf("1 MiB send: %d", got)
	}
	if _, msg := readMessage(t, c); len(msg) != len(big) {
		t.Fatalf("1 MiB send delivered %d bytes", len(msg))
	}

	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body := "in two pieces"
	fmt.Fprintf(nc, "POST /socket/%s/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
		id, abuseToken, len(body), body[:5])
	time.Sleep(200 * time.Millisecond)
	io.WriteString(nc, body[5:])
	if got := readStatus(nc, time.Now().Add(5*time.Second)); got != 200 {
		t.Fatalf("send in two pieces: %d", got)
	}
	if _, msg := readMessage(t, c); string(msg) != body {
		t.Fatalf("send in two pieces delivered %q", msg)
	}

	// Expect: 100-continue (curl sends it for large bodies): 100 first, then the body.
	nc2, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	fmt.Fprintf(nc2, "POST /socket/%s/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/plain\r\nContent-Length: 8\r\nExpect: 100-continue\r\n\r\n",
		id, abuseToken)
	br := bufio.NewReader(nc2)
	_ = nc2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, _ := br.ReadString('\n'); line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("expect 100-continue: %q", line)
	}
	br.ReadString('\n') // the blank line after the 100
	io.WriteString(nc2, "continue")
	if line, _ := br.ReadString('\n'); line != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("after 100 Continue: %q", line)
	}
	if _, msg := readMessage(t, c); string(msg) != "continue" {
		t.Fatalf("send after 100 Continue delivered %q", msg)
	}

	if got := authDo(t, "POST", r.Control+"/socket/"+id+"/disconnect", "Bearer "+abuseToken, `{"code":4001,"reason":"bye"}`); got != 200 {
		t.Fatalf("disconnect with a JSON body: %d", got)
	}
	if code, _ := expectClose(t, c); code != 4001 {
		t.Fatalf("disconnect closed with %d", code)
	}
}

// A token holder's body that stops arriving holds its worker for the body timeout (10 s),
// not the old 30 s read timeout.
func TestAbuseControlSlowBodyBounded(t *testing.T) {
	b := newBackend(t)
	r := startRelay(t, b.relayArgs("--control-token", abuseToken)...)
	dial(t, r.WSURL, nil)
	id := waitConnectID(t, b, 1)
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(r.Control, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	fmt.Fprintf(nc, "POST /socket/%s/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n0123456789", id, abuseToken)
	_ = nc.SetReadDeadline(start.Add(25 * time.Second))
	n, _ := io.Copy(io.Discard, nc) // until the relay gives up and closes
	took := time.Since(start)
	t.Logf("slow body: connection ended after %v (%d bytes answered)", took.Round(100*time.Millisecond), n)
	if took > 20*time.Second {
		t.Fatalf("a stalled body held the connection %v", took)
	}
}

// --control-max-conns: connections beyond it get 503 at once; the slots come back.
func TestAbuseControlConcurrencyBounded(t *testing.T) {
	r := startRelay(t, "--control-token", abuseToken, "--control-max-conns", "8")
	addr := strings.TrimPrefix(r.Control, "http://")
	var holders []net.Conn
	for range 8 {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(nc, "GET /status HTTP/1.1\r\nHost: x\r\n") // a head that never ends
		holders = append(holders, nc)
	}
	eventually(t, 5*time.Second, "the ninth connection refused", func() bool {
		got, _ := headStatus(t, addr, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", time.Second)
		return got == 503
	})
	for _, nc := range holders {
		nc.Close()
	}
	eventually(t, 5*time.Second, "a slot after the holders left", func() bool {
		got, _ := headStatus(t, addr, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", time.Second)
		return got == 200
	})
}

// The public parser's header count: 100 headers upgrade, 101 get 431.
func TestAbuseHeaderCountCapped(t *testing.T) {
	r := startRelay(t)
	head := func(total int) string {
		var b strings.Builder
		b.WriteString("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n")
		for i := 5; i < total; i++ {
			b.WriteString("X-" + strconv.Itoa(i) + ": v\r\n")
		}
		return b.String() + "\r\n"
	}
	if got, _ := headStatus(t, r.Public, head(100), 5*time.Second); got != 101 {
		t.Errorf("100 headers: status %d, want 101", got)
	}
	if got, _ := headStatus(t, r.Public, head(101), 5*time.Second); got != 431 {
		t.Errorf("101 headers: status %d, want 431", got)
	}
	r2 := startRelay(t, "--max-headers", "10")
	if got, _ := headStatus(t, r2.Public, head(10), 5*time.Second); got != 101 {
		t.Errorf("--max-headers 10, 10 headers: status %d, want 101", got)
	}
	if got, _ := headStatus(t, r2.Public, head(11), 5*time.Second); got != 431 {
		t.Errorf("--max-headers 10, 11 headers: status %d, want 431", got)
	}
}

// Bytes RFC 9110/9112 forbid in a head get 400 at once, whether or not the head is complete,
// so no proxy in front can read a different set of headers than the relay. HTAB and obs-text
// in values stay allowed.
func TestAbuseHeaderBadBytes(t *testing.T) {
	r := startRelay(t)
	base := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n"
	cases := []struct {
		name, req string
		want      int
	}{
		{"NUL in a value", base + "X-A: a\x00b\r\n\r\n", 400},
		{"bare CR in a value", base + "X-A: a\rb\r\n\r\n", 400},
		{"bare LF in a value (a second header to an LF-splitting proxy)", base + "X-A: a\nX-Smuggled: b\r\n\r\n", 400},
		{"bare LF ending a header line", base + "X-A: a\n\r\n", 400},
		{"bare LF ending the request line", strings.Replace(base, "HTTP/1.1\r\n", "HTTP/1.1\n", 1) + "\r\n", 400},
		{"bare LF line endings throughout, unterminated", strings.ReplaceAll(base, "\r\n", "\n") + "\n", 400},
		{"bare CR ending a header line", base + "X-A: a\rX-B: b\r\n\r\n", 400},
		{"obs-fold (space)", base + "X-A: a\r\n b\r\n\r\n", 400},
		{"obs-fold (tab)", base + "X-A: a\r\n\tb\r\n\r\n", 400},
		{"control character 0x01 in a value", base + "X-A: a\x01b\r\n\r\n", 400},
		{"ESC in a value", base + "X-A: \x1b[31mred\r\n\r\n", 400},
		{"DEL in a value", base + "X-A: a\x7fb\r\n\r\n", 400},
		{"parenthesis in a name", base + "X(A): a\r\n\r\n", 400},
		{"space before the colon", base + "X-A : a\r\n\r\n", 400},
		{"empty name", base + ": a\r\n\r\n", 400},
		{"NUL in a name", base + "X\x00A: a\r\n\r\n", 400},
		{"NUL in an unfinished head", base + "X-A: a\x00", 400},
		{"bare LF in an unfinished head", base + "X-A: a\nX-B", 400},
		{"HTAB in a value", base + "X-A: a\tb\r\n\r\n", 101},
		{"obs-text in a value", base + "X-A: caf\xc3\xa9 \xff\r\n\r\n", 101},
		{"empty value", base + "X-A:\r\n\r\n", 101},
	}
	for _, tc := range cases {
		got, took := headStatus(t, r.Public, tc.req, 2*time.Second)
		if got != tc.want {
			t.Errorf("%s: status %d within 2s (after %v), want %d", tc.name, got, took.Round(time.Millisecond), tc.want)
		}
	}
	c := dial(t, r.WSURL, nil)
	c.WriteMessage(websocket.TextMessage, []byte("still serving"))
	readMessage(t, c)
}

// The control listener (fasthttp) refuses NUL, bare CR and controls itself; bare LF and
// obs-fold, which it would accept, are refused from the head too.
func TestAbuseControlHeaderBadBytes(t *testing.T) {
	r := startRelay(t, "--control-token", abuseToken)
	addr := strings.TrimPrefix(r.Control, "http://")
	base := "GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + abuseToken + "\r\n"
	cases := []struct {
		name, req string
		want      int
	}{
		{"clean", base + "\r\n", 200},
		{"NUL in a value", base + "X-A: a\x00b\r\n\r\n", 400},
		{"bare CR in a value", base + "X-A: a\rb\r\n\r\n", 400},
		{"bare LF in a value", base + "X-A: a\nX-Smuggled: b\r\n\r\n", 400},
		{"obs-fold", base + "X-A: a\r\n b\r\n\r\n", 400},
		{"control character in a value", base + "X-A: a\x01b\r\n\r\n", 400},
		{"space before the colon", base + "X-A : a\r\n\r\n", 400},
		{"HTAB in a value", base + "X-A: a\tb\r\n\r\n", 200},
	}
	for _, tc := range cases {
		if got, took := headStatus(t, addr, tc.req, 2*time.Second); got != tc.want {
			t.Errorf("%s: status %d within 2s (after %v), want %d", tc.name, got, took.Round(time.Millisecond), tc.want)
		}
	}
}

// Close codes chosen by clients cannot mint metric series: 100 distinct 4xxx and 100
// distinct 3xxx codes make two series, not 200.
func TestAbuseCloseCodeSeriesBounded(t *testing.T) {
	r := startRelay(t)
	var wg sync.WaitGroup
	codes := make(chan int, 200)
	for i := range 100 {
		codes <- 4000 + i
		codes <- 3000 + i
	}
	close(codes)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for code := range codes {
				c, _, err := websocket.DefaultDialer.Dial(r.WSURL, nil)
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(5*time.Second))
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						break
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	dial(t, r.WSURL, nil).WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(5*time.Second))

	series := map[string]float64{}
	eventually(t, 5*time.Second, "201 closes counted", func() bool {
		series = closeSeries(t, r.Control+"/metrics")
		total := 0.0
		for _, v := range series {
			total += v
		}
		return total >= 201
	})
	t.Logf("socketdock_closes_total: %d series for 201 closes", len(series))
	if len(series) > 18 {
		t.Errorf("%d series for 201 closes", len(series))
	}
	if series[`code="4xxx"`] != 100 || series[`code="3xxx"`] != 100 || series[`code="1000"`] != 1 {
		t.Errorf("4xxx: %v, 3xxx: %v, 1000: %v; want 100, 100, 1", series[`code="4xxx"`], series[`code="3xxx"`], series[`code="1000"`])
	}
}

// closeSeries reads the socketdock_closes_total series from /metrics: labels → value.
func closeSeries(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		labels, ok := strings.CutPrefix(sc.Text(), "socketdock_closes_total{")
		if !ok {
			continue
		}
		labels, value, _ := strings.Cut(labels, "} ")
		v, _ := strconv.ParseFloat(value, 64)
		out[labels] = v
	}
	return out
}

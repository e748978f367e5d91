package e2e

// The browser client (clients/js/socketdock-client.mjs) in headless Chromium against the real
// relay: WebSocket, forced poll, fallback when the upgrade is refused, and a poll answer cut
// mid-way by a proxy (CONTRACT §8: a lost poll response loses nothing; the client drops
// duplicates by seq).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cutProxy forwards TCP connections to the relay. With refuseWS it answers a WebSocket
// upgrade with 400, as a proxy that strips upgrades does. With cutAt > 0 it cuts the cutAt-th
// poll answer that carries messages: half its body, then both connections are closed.
type cutProxy struct {
	ln       net.Listener
	target   string
	refuseWS bool
	cutAt    int32
	answers  atomic.Int32 // poll answers with messages seen
	cut      atomic.Int32 // answers cut
	wg       sync.WaitGroup
}

func startCutProxy(t testing.TB, target string, refuseWS bool, cutAt int32) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, refuseWS: refuseWS, cutAt: cutAt}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *cutProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute)) // the test's bound: nothing outlives it
	br := bufio.NewReader(c)
	if p.refuseWS {
		if first, err := br.Peek(7); err == nil && string(first) == "GET /ws" {
			_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
	}
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer u.Close()
	_ = u.SetDeadline(time.Now().Add(2 * time.Minute))
	go func() { _, _ = io.Copy(u, br); u.Close() }()
	ur := bufio.NewReader(u)
	for {
		head, body, upgraded, err := readAnswer(ur)
		if err != nil {
			return
		}
		if upgraded {
			_, _ = c.Write(head)
			_, _ = io.Copy(c, ur)
			return
		}
		if bytes.Contains(body, []byte(`"seq":`)) && p.answers.Add(1) == p.cutAt {
			p.cut.Add(1)
			_, _ = c.Write(head)
			_, _ = c.Write(body[:len(body)/2])
			return // both connections close: the page sees a cut body
		}
		_, _ = c.Write(head)
		_, _ = c.Write(body)
	}
}

// readAnswer reads one HTTP response: its head, its Content-Length body, and whether it is a
// 101 (the stream is WebSocket frames from then on).
func readAnswer(r *bufio.Reader) (head, body []byte, upgraded bool, err error) {
	n := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, nil, false, err
		}
		head = append(head, line...)
		if len(head) == len(line) && strings.HasPrefix(line, "HTTP/1.1 101") {
			upgraded = true
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "content-length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if line == "\r\n" {
			break
		}
	}
	if upgraded {
		return head, nil, true, nil
	}
	body = make([]byte, n)
	_, err = io.ReadFull(r, body)
	return head, body, false, err
}

// browserClientPage runs the scenarios named in ?run= (JSON: [{name, url, options, count}])
// one after another, each sending count messages (text, binary, alternately) and waiting for
// their echoes, then closing; it posts every scenario's outcome to /result.
const browserClientPage = `<!doctype html><meta charset="utf-8"><title>socketdock client against the relay</title>
<script type="module">
import { SocketDockClient } from './socketdock-client.mjs';
const runs = JSON.parse(new URLSearchParams(location.search).get('run'));
function scenario(run) {
  return new Promise((resolve) => {
    const c = new SocketDockClient(run.url, { retryDelay: 20, maxRetryDelay: 200, pollTtl: 3000, pollGrace: 2000, ...run.options });
    const got = [];
    let done = false;
    const timer = setTimeout(() => { if (!done) { done = true; resolve({ name: run.name, transport: c.transport, got, error: 'timed out', code: 0 }); } }, 40000);
    c.onopen = () => {
      for (let i = 0; i < run.count; i++) {
        if (i % 2 === 0) c.send('msg-' + i + ' ✓');
        else c.send(new Uint8Array([i, 0, 255, 128]));
      }
    };
    c.onmessage = (ev) => {
      got.push(typeof ev.data === 'string' ? ev.data : 'bin:' + Array.from(new Uint8Array(ev.data)).join(','));
      if (got.length === run.count) c.close(1000, 'done');
    };
    c.onclose = (ev) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ name: run.name, transport: c.transport, fallbackReason: c.fallbackReason, got, code: ev.code, wasClean: ev.wasClean });
    };
  });
}
const results = [];
for (const run of runs) results.push(await scenario(run));
// A refusal the page must be able to act on: 503 with Retry-After, cross-origin.
const full = new URLSearchParams(location.search).get('full');
const r = await fetch(full + '/poll/create', { method: 'POST' });
results.push({ name: 'retry-after', code: r.status, got: [String(r.headers.get('retry-after'))] });
await fetch('/result', { method: 'POST', body: JSON.stringify(results) });
</script>`

type browserRun struct {
	Name    string         `json:"name"`
	URL     string         `json:"url"`
	Options map[string]any `json:"options"`
	Count   int            `json:"count"`
}

type browserOutcome struct {
	Name           string   `json:"name"`
	Transport      string   `json:"transport"`
	FallbackReason string   `json:"fallbackReason"`
	Got            []string `json:"got"`
	Code           int      `json:"code"`
	WasClean       bool     `json:"wasClean"`
	Error          string   `json:"error"`
}

func wantEchoes(n int) []string {
	out := make([]string, n)
	for i := range out {
		if i%2 == 0 {
			out[i] = "msg-" + strconv.Itoa(i) + " ✓"
		} else {
			out[i] = fmt.Sprintf("bin:%d,0,255,128", i)
		}
	}
	return out
}

func TestPollBrowserClient(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (Debian package chromium; .ci/run installs it)")
	}
	module, err := os.ReadFile("../../clients/js/socketdock-client.mjs")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan []browserOutcome, 1)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/result":
			var out []browserOutcome
			b, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(b, &out); err != nil {
				t.Errorf("result %q: %v", b, err)
			}
			results <- out
		case "/socketdock-client.mjs":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			_, _ = w.Write(module)
		default:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, browserClientPage)
		}
	}))
	defer page.Close()

	r := startRelay(t, "--allowed-origins", page.URL)
	full := startRelay(t, "--allowed-origins", page.URL, "--max-connections", "1")
	newPollClient(t, full).create(t, "")
	refusing := startCutProxy(t, r.Public, true, 0)
	cutting := startCutProxy(t, r.Public, false, 2)
	const count = 30
	runs := []browserRun{
		{"ws", "http://" + r.Public, nil, 6},
		{"poll", "http://" + r.Public, map[string]any{"transports": []string{"poll"}}, 6},
		{"fallback", refusing.url(), nil, 6},
		{"cut", cutting.url(), map[string]any{"transports": []string{"poll"}}, count},
	}
	run, _ := json.Marshal(runs)

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), page.URL+"/index.html?run="+url.QueryEscape(string(run))+"&full="+url.QueryEscape("http://"+full.Public))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Chromium's helpers end with it
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }()

	var out []browserOutcome
	select {
	case out = <-results:
	case <-ctx.Done():
		t.Fatal("the page reported nothing within 150s")
	}
	if len(out) != len(runs)+1 {
		t.Fatalf("%d outcomes: %+v", len(out), out)
	}
	// CONTRACT §8: 503 + Retry-After; a cross-origin page reads it only if it is exposed.
	if ra := out[len(runs)]; ra.Code != 503 || len(ra.Got) != 1 || ra.Got[0] != "1" {
		t.Errorf("cross-origin 503 as the page sees it: status %d, Retry-After %q; want 503 and \"1\"", ra.Code, ra.Got)
	}
	out = out[:len(runs)]
	for i, o := range out {
		want := wantEchoes(runs[i].Count)
		wantTransport := map[string]string{"ws": "ws", "poll": "poll", "fallback": "poll", "cut": "poll"}[o.Name]
		if o.Error != "" || o.Transport != wantTransport || o.Code != 1000 || !o.WasClean {
			t.Errorf("%s: %+v, want transport %s and a clean close 1000", o.Name, o, wantTransport)
		}
		if strings.Join(o.Got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: got %d messages %q, want %d in order, no loss, no duplicate", o.Name, len(o.Got), o.Got, len(want))
		}
		if o.Name == "fallback" && o.FallbackReason == "" {
			t.Errorf("fallback: no fallbackReason")
		}
	}
	if cutting.cut.Load() != 1 {
		t.Errorf("the proxy cut %d answers, want 1 (of %d with messages)", cutting.cut.Load(), cutting.answers.Load())
	}
	if n := metricValue(t, r, "socketdock_poll_redeliveries_total"); n < 1 {
		t.Errorf("socketdock_poll_redeliveries_total %v: the cut answer's messages were not sent again", n)
	}
	t.Logf("cut answer %d of %d with messages; redeliveries %v", cutting.cutAt, cutting.answers.Load(), metricValue(t, r, "socketdock_poll_redeliveries_total"))
}

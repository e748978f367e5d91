package e2e

// Clients for the long-poll transport (CONTRACT §8): net/http with keep-alive, and raw
// requests on a net.Conn where the bytes on the wire matter.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pollClient drives /poll/ on one relay with a keep-alive net/http client of its own.
type pollClient struct {
	base string // http://host:port
	hc   *http.Client
	tr   *http.Transport
}

func newPollClient(t testing.TB, r *testRelay) *pollClient {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &pollClient{base: "http://" + r.Public, tr: tr, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// pollMsg is one record of a poll answer.
type pollMsg struct {
	Seq    uint64 `json:"seq"`
	Type   string `json:"type"`
	Data   string `json:"data"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// pollBody is any §8 JSON body.
type pollBody struct {
	OK       *bool     `json:"ok"`
	Error    string    `json:"error"`
	Status   int       `json:"status"`
	Socket   string    `json:"socket"`
	FQDN     string    `json:"fqdn"`
	Messages []pollMsg `json:"messages"`
}

func (b pollBody) ok() bool { return b.OK != nil && *b.OK }

// pollAnswer is one HTTP answer; JSON is decoded when the body is JSON or JSONP.
type pollAnswer struct {
	Status int
	Header http.Header
	Body   string
	JSON   pollBody
	IsJSON bool
	Close  bool // the answer said Connection: close (raw connections only)
}

// do sends one request; body may be nil. hdr adds request headers.
func (pc *pollClient) do(t testing.TB, method, pathQuery, contentType string, body []byte, hdr http.Header) pollAnswer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequest(method, pc.base+pathQuery, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := pc.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, pathQuery, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, pathQuery, err)
	}
	return decodePollAnswer(t, resp.StatusCode, resp.Header, string(raw))
}

func decodePollAnswer(t testing.TB, status int, h http.Header, body string) pollAnswer {
	t.Helper()
	a := pollAnswer{Status: status, Header: h, Body: body}
	js := body
	if strings.HasPrefix(h.Get("Content-Type"), "application/javascript") {
		open, close := strings.IndexByte(js, '('), strings.LastIndex(js, ");")
		if !strings.HasPrefix(js, "/**/") || open < 0 || close < open {
			t.Fatalf("JSONP body %q is not /**/cb(...);", body)
		}
		js = js[open+1 : close]
	} else if !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		return a
	}
	if err := json.Unmarshal([]byte(js), &a.JSON); err != nil {
		t.Fatalf("answer %d %q: not JSON: %v", status, body, err)
	}
	a.IsJSON = true
	return a
}

func (pc *pollClient) get(t testing.TB, pathQuery string) pollAnswer {
	t.Helper()
	return pc.do(t, "GET", pathQuery, "", nil, nil)
}

// create opens a session (query: "" or "token=...&..."), failing the test unless 200 ok.
func (pc *pollClient) create(t testing.TB, query string) string {
	t.Helper()
	a := pc.do(t, "POST", "/poll/create?"+query, "", nil, nil)
	if a.Status != 200 || !a.JSON.ok() || a.JSON.Socket == "" {
		t.Fatalf("create: %d %s", a.Status, a.Body)
	}
	return a.JSON.Socket
}

// send posts d (and t) as a form body and wants 201.
func (pc *pollClient) send(t testing.TB, session, typ, d string) {
	t.Helper()
	form := url.Values{"d": {d}, "t": {typ}}.Encode()
	a := pc.do(t, "POST", "/poll/s/"+session, "application/x-www-form-urlencoded", []byte(form), nil)
	if a.Status != 201 || !a.JSON.ok() {
		t.Fatalf("send %q: %d %s", d, a.Status, a.Body)
	}
}

// poll asks /poll/j/<session>?<query> and wants 200 ok.
func (pc *pollClient) poll(t testing.TB, session, query string) []pollMsg {
	t.Helper()
	a := pc.get(t, "/poll/j/"+session+"?"+query)
	if a.Status != 200 || !a.JSON.ok() || a.JSON.Messages == nil {
		t.Fatalf("poll %s: %d %s", query, a.Status, a.Body)
	}
	return a.JSON.Messages
}

// collect polls (acking what it got) until want data messages or a close record arrived,
// and returns them in order; duplicates by seq are dropped, as a client must.
func (pc *pollClient) collect(t testing.TB, session string, want int) (msgs []pollMsg, closeRec *pollMsg) {
	t.Helper()
	var ack uint64
	deadline := time.Now().Add(10 * time.Second)
	for len(msgs) < want && closeRec == nil {
		if time.Now().After(deadline) {
			t.Fatalf("collected %d of %d messages: %+v", len(msgs), want, msgs)
		}
		for _, m := range pc.poll(t, session, "ttl=2000&ack="+strconv.FormatUint(ack, 10)) {
			switch {
			case m.Type == "close":
				m := m
				closeRec = &m
			case m.Type == "heartbeat":
			case m.Seq > ack:
				msgs = append(msgs, m)
				ack = m.Seq
			}
		}
	}
	return msgs, closeRec
}

// awaitClose polls until the close record arrives and returns it.
func (pc *pollClient) awaitClose(t testing.TB, session string) pollMsg {
	t.Helper()
	_, rec := pc.collect(t, session, 1<<30)
	return *rec
}

// sessionPattern: 32 lower-case hex characters.
func sessionPattern(s string) bool { return idPattern(s) }

// rawHTTPConn writes requests by hand and reads answers on one TCP connection.
type rawHTTPConn struct {
	net.Conn
	br *bufio.Reader
}

func rawHTTPDial(t testing.TB, addr string) *rawHTTPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawHTTPConn{Conn: c, br: bufio.NewReader(c)}
}

func (c *rawHTTPConn) write(t testing.TB, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// read reads one answer to a request of method.
func (c *rawHTTPConn) read(t testing.TB, method string) pollAnswer {
	t.Helper()
	req, _ := http.NewRequest(method, "/", nil)
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a body: %v", err)
	}
	a := decodePollAnswer(t, resp.StatusCode, resp.Header, string(raw))
	a.Close = resp.Close
	return a
}

// getReq is a keep-alive GET request's bytes.
func getReq(host, pathQuery string) string {
	return "GET " + pathQuery + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
}

// postReq is a POST with a Content-Length body.
func postReq(host, pathQuery, contentType, body string) string {
	return "POST " + pathQuery + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: " + contentType +
		"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// lookCurl finds curl or skips the test.
func lookCurl(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (Debian package curl)")
	}
	return p
}

// runCurl runs curl with args (bounded in time) and returns stdout and stderr together.
func runCurl(t testing.TB, curl string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, append([]string{"--max-time", "20"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

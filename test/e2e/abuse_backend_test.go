package e2e

// Abuse of the HTTP backend path (issue 8): secrets in backend URIs must not reach the logs;
// every POST carries an event id a backend can drop duplicates by.

import (
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Backend URIs with a password and an API key, pointing at a closed port: the relay's log
// (startup, failed connect/message/disconnect POSTs, failed authorization) and its startup
// errors name the host but never the password or the key.
func TestAbuseBackendURISecretsNotLogged(t *testing.T) {
	bin := buildRelay(t)
	host := "127.0.0.1:" + strconv.Itoa(freePort(t)) // nothing listens there
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

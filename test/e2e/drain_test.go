package e2e

// Graceful drain of the built binary on SIGTERM/SIGINT (issue 3): /readyz turns 503 at once,
// upgrades are refused, clients get 1001, in-flight backend POSTs finish within
// --drain-timeout, every disconnect is POSTed, exit 0; a second signal exits at once.

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/socketdock/socketdock/internal/testkit"

	"github.com/gorilla/websocket"
)

// buildRelay builds cmd/socketdock into a temporary directory.
func buildRelay(t testing.TB) string {
	t.Helper()
	return testkit.Build(t, t.TempDir(), "socketdock", "github.com/socketdock/socketdock/cmd/socketdock")
}

// relayProc is the relay binary running in a child process.
type relayProc struct {
	cmd     *exec.Cmd
	public  string
	control string
	stderr  *syncBuffer
	exited  chan struct{}
	waitErr error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProc(t testing.TB, bin string, args ...string) *relayProc {
	t.Helper()
	pp, cp := freePort(t), freePort(t)
	all := append([]string{"--bindip", "127.0.0.1", "--bindport", strconv.Itoa(pp), "--control-bindport", strconv.Itoa(cp), "--loops", "2"}, args...)
	p := &relayProc{cmd: exec.Command(bin, all...), stderr: &syncBuffer{}, exited: make(chan struct{}),
		public: "127.0.0.1:" + strconv.Itoa(pp), control: "http://127.0.0.1:" + strconv.Itoa(cp)}
	p.cmd.Stderr = p.stderr
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("relay stderr:\n%s", p.stderr.String())
		}
	})
	eventually(t, 10*time.Second, "relay /readyz", func() bool {
		resp, err := http.Get(p.control + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

func (p *relayProc) exitCode(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("relay did not exit within %v", within)
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode()
	}
	if p.waitErr != nil {
		t.Fatalf("wait: %v", p.waitErr)
	}
	return 0
}

func readyzStatus(control string) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(control + "/readyz")
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDrainOnSignal(t *testing.T) {
	bin := buildRelay(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			b := newBackend(t)
			var slowDone atomic.Bool
			b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
				if p.Path == "/message" && p.Body["message"] == "slow" {
					time.Sleep(700 * time.Millisecond)
					slowDone.Store(true)
				}
				return false
			})
			p := startProc(t, bin, "--backend", "http", "--message-uri", b.URL+"/message", "--connect-uri", b.URL+"/connect",
				"--disconnect-uri", b.URL+"/disconnect", "--drain-timeout", "3s")
			const clients = 3
			var cs []*websocket.Conn
			for i := 0; i < clients; i++ {
				cs = append(cs, dial(t, "ws://"+p.public+"/ws", nil))
			}
			eventually(t, 5*time.Second, "connects", func() bool { return len(b.on("/connect")) == clients })
			_ = cs[0].WriteMessage(websocket.TextMessage, []byte("slow"))
			eventually(t, 5*time.Second, "the slow POST in flight", func() bool { return len(b.on("/message")) == 1 })

			sent := time.Now()
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			eventually(t, time.Second, "/readyz 503", func() bool { return readyzStatus(p.control) == 503 })
			readyAfter := time.Since(sent)

			// Upgrades are refused (503 while draining, or the listener is already gone).
			d := websocket.Dialer{HandshakeTimeout: 2 * time.Second}
			if c, resp, err := d.Dial("ws://"+p.public+"/ws", nil); err == nil {
				c.Close()
				t.Error("an upgrade succeeded while draining")
			} else if resp != nil && resp.StatusCode != 503 {
				t.Errorf("upgrade while draining: %d, want 503", resp.StatusCode)
			}

			for i, c := range cs {
				if code, _ := expectClose(t, c); code != 1001 {
					t.Errorf("client %d closed %d, want 1001", i, code)
				}
			}
			code := p.exitCode(t, 6*time.Second)
			took := time.Since(sent)
			if code != 0 {
				t.Errorf("exit status %d, want 0", code)
			}
			if !slowDone.Load() {
				t.Error("the in-flight message POST did not finish before exit")
			}
			ds := b.on("/disconnect")
			if len(ds) != clients {
				t.Errorf("%d disconnect POSTs, want %d", len(ds), clients)
			}
			for _, d := range ds {
				if d.Body["code"] != float64(1001) {
					t.Errorf("disconnect code %v, want 1001", d.Body["code"])
				}
			}
			all := b.all()
			if last := all[len(all)-1]; last.Path != "/disconnect" {
				t.Errorf("a %s POST came after the disconnects", last.Path)
			}
			t.Logf("%s: /readyz 503 after %v; %d clients closed 1001; in-flight POST (700ms) finished; %d disconnects POSTed; exit 0 after %v",
				sig, readyAfter.Round(time.Millisecond), clients, len(ds), took.Round(time.Millisecond))
		})
	}
	t.Run("drain-timeout-bounds", func(t *testing.T) {
		b := newBackend(t)
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
			if p.Path == "/message" {
				select {
				case <-release:
				case <-time.After(20 * time.Second):
				}
			}
			return false
		})
		p := startProc(t, bin, "--backend", "http", "--message-uri", b.URL+"/message", "--drain-timeout", "1s")
		c := dial(t, "ws://"+p.public+"/ws", nil)
		_ = c.WriteMessage(websocket.TextMessage, []byte("stuck"))
		eventually(t, 5*time.Second, "the POST in flight", func() bool { return len(b.on("/message")) == 1 })
		sent := time.Now()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if code, _ := expectClose(t, c); code != 1001 {
			t.Errorf("client closed %d, want 1001", code)
		}
		code := p.exitCode(t, 5*time.Second)
		took := time.Since(sent)
		if took < 900*time.Millisecond {
			t.Errorf("exited after %v, before --drain-timeout 1s", took)
		}
		t.Logf("drain held by a 20s POST, --drain-timeout 1s: exit %d after %v", code, took.Round(time.Millisecond))
	})
	t.Run("second-signal", func(t *testing.T) {
		b := newBackend(t)
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
			if p.Path == "/message" {
				select { // a POST that would hold the drain for 20 s
				case <-release:
				case <-time.After(20 * time.Second):
				}
			}
			return false
		})
		p := startProc(t, bin, "--backend", "http", "--message-uri", b.URL+"/message", "--drain-timeout", "30s")
		c := dial(t, "ws://"+p.public+"/ws", nil)
		_ = c.WriteMessage(websocket.TextMessage, []byte("stuck"))
		eventually(t, 5*time.Second, "the POST in flight", func() bool { return len(b.on("/message")) == 1 })
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		eventually(t, time.Second, "/readyz 503", func() bool { return readyzStatus(p.control) == 503 })
		time.Sleep(200 * time.Millisecond)
		second := time.Now()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		code := p.exitCode(t, 2*time.Second)
		t.Logf("second SIGTERM during a drain held by a stuck POST: exit %d after %v", code, time.Since(second).Round(time.Millisecond))
		if code == 0 {
			t.Error("a forced exit reported status 0")
		}
	})
}

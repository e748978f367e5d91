package e2e

import (
	"encoding/csv"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/socketdock/socketdock/internal/testkit"

	"github.com/gorilla/websocket"
)

// CONTRACT §10 with real processes: a nats-server built from the module, three SocketDock
// binaries joined over it, the reference backend, and HAProxy (configs/haproxy.cfg as it is
// shipped) in front of both the public and the control listeners, with no stickiness. The
// backend's --endpoint is HAProxy's control frontend, so every callback lands on a random
// instance. Then one instance gets SIGTERM.

// proc is a child process with its output in a file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
}

func startChild(t *testing.T, dir, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	f.Close()
	p := &proc{name: name, cmd: cmd, log: logPath}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
	return p
}

func waitHTTP(t *testing.T, url string, want int) {
	t.Helper()
	eventually(t, 15*time.Second, url, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == want
	})
}

// haproxyServers reads HAProxy's stats CSV: backend/server → column → value.
func haproxyServers(t *testing.T, statsURL string) map[string]map[string]string {
	t.Helper()
	resp, err := http.Get(statsURL + ";csv")
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	defer resp.Body.Close()
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("stats CSV: %v", err)
	}
	head := rows[0]
	head[0] = strings.TrimPrefix(head[0], "# ")
	out := map[string]map[string]string{}
	for _, row := range rows[1:] {
		m := map[string]string{}
		for i, v := range row {
			if i < len(head) {
				m[head[i]] = v
			}
		}
		out[m["pxname"]+"/"+m["svname"]] = m
	}
	return out
}

func TestClusterBehindHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed (Debian package haproxy; .ci/run installs it): the multi-process cluster test needs it")
	}
	if testing.Short() {
		t.Skip("builds three binaries and runs seven processes")
	}
	dir := t.TempDir()
	sdBin := testkit.Build(t, dir, "socketdock", "github.com/socketdock/socketdock/cmd/socketdock")
	refBin := testkit.Build(t, dir, "refbackend", "github.com/socketdock/socketdock/bench/cmd/refbackend")
	natsBin := testkit.Build(t, dir, "nats-server", "github.com/nats-io/nats-server/v2")

	natsPort := freePort(t)
	natsConf := filepath.Join(dir, "nats.conf")
	_ = os.WriteFile(natsConf, []byte("listen: 127.0.0.1:"+strconv.Itoa(natsPort)+"\nmax_payload: 8388608\n"), 0o600)
	startChild(t, dir, "nats", nil, natsBin, "-c", natsConf)
	eventually(t, 10*time.Second, "nats-server", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(natsPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	refAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startChild(t, dir, "refbackend", nil, refBin, "-addr", refAddr)

	lbPublic := "127.0.0.1:" + strconv.Itoa(freePort(t))
	lbControl := "127.0.0.1:" + strconv.Itoa(freePort(t))
	lbStats := "127.0.0.1:" + strconv.Itoa(freePort(t))
	env := []string{"SD_PUBLIC_BIND=" + lbPublic, "SD_CONTROL_BIND=" + lbControl, "SD_STATS_BIND=" + lbStats,
		"SD_CHECK_INTER=100ms", "SD_MAXCONN=2000"}
	type instance struct {
		public, control int
		p               *proc
	}
	var sds []*instance
	for i := 1; i <= 3; i++ {
		in := &instance{public: freePort(t), control: freePort(t)}
		n := strconv.Itoa(i)
		env = append(env, "SD"+n+"_HOST=127.0.0.1", "SD"+n+"_PUBLIC_PORT="+strconv.Itoa(in.public), "SD"+n+"_CONTROL_PORT="+strconv.Itoa(in.control))
		in.p = startChild(t, dir, "sd"+n, nil, sdBin, "--bindport", strconv.Itoa(in.public), "--control-bindport", strconv.Itoa(in.control),
			"--cluster", "nats", "--nats-url", "nats://127.0.0.1:"+strconv.Itoa(natsPort),
			"--backend", "http", "--message-uri", "http://"+refAddr+"/message", "--endpoint", "http://"+lbControl,
			"--loops", "1", "--drain-timeout", "10s", "--log-level", "warning")
		waitHTTP(t, "http://127.0.0.1:"+strconv.Itoa(in.control)+"/readyz", 200)
		sds = append(sds, in)
	}
	startChild(t, dir, "haproxy", env, haproxy, "-db", "-f", "../../configs/haproxy.cfg")
	statsURL := "http://" + lbStats + "/stats"
	eventually(t, 15*time.Second, "HAProxy to see every instance up", func() bool {
		resp, err := http.Get(statsURL + ";csv")
		if err != nil {
			return false
		}
		resp.Body.Close()
		up := 0
		for _, s := range haproxyServers(t, statsURL) {
			if s["svname"] != "BACKEND" && s["svname"] != "FRONTEND" && s["status"] == "UP" {
				up++
			}
		}
		return up == 6
	})

	// Clients through HAProxy: WebSocket and poll, each echoing through the reference
	// backend, whose callbacks go through HAProxy's control frontend to any instance.
	const wsClients, pollClients = 12, 3
	var (
		phase      atomic.Int32 // 0: before SIGTERM; 1: after
		roundTrips atomic.Int64
		goingAway  atomic.Int64 // WebSocket clients that got 1001 and reconnected
		otherClose atomic.Int64 // any other end of a client: a disturbance
		stop       = make(chan struct{})
		wg         sync.WaitGroup
		errMu      sync.Mutex
		errs       []string
	)
	fail := func(s string) { errMu.Lock(); errs = append(errs, s); errMu.Unlock() }
	wsURL := "ws://" + lbPublic + "/ws"
	for i := range wsClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *websocket.Conn
			dialLB := func() bool {
				for try := 0; try < 50; try++ {
					var err error
					if c, _, err = websocket.DefaultDialer.Dial(wsURL, nil); err == nil {
						return true
					}
					time.Sleep(50 * time.Millisecond) // a draining instance answers 503 until HAProxy takes it out
				}
				fail("client " + strconv.Itoa(i) + ": could not reconnect through HAProxy")
				return false
			}
			if !dialLB() {
				return
			}
			defer func() { c.Close() }()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				msg := "c" + strconv.Itoa(i) + "-" + strconv.Itoa(n)
				for {
					_ = c.WriteMessage(websocket.TextMessage, []byte(msg))
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, p, err := c.ReadMessage()
					if err == nil {
						if string(p) != msg {
							fail("client " + strconv.Itoa(i) + ": got " + string(p) + ", want " + msg)
							return
						}
						roundTrips.Add(1)
						break
					}
					if websocket.IsCloseError(err, 1001) && phase.Load() == 1 {
						goingAway.Add(1)
						c.Close()
						if !dialLB() {
							return
						}
						continue // the message in flight when the instance left is sent again
					}
					otherClose.Add(1)
					fail("client " + strconv.Itoa(i) + ": " + err.Error())
					return
				}
			}
		}()
	}
	for i := range pollClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc := newClusterPollClient(t)
			base := "http://" + lbPublic
			create := func() string {
				for try := 0; try < 50; try++ {
					status, a := pc.get(base + "/poll/create")
					if status == 200 {
						pc.ack = 0
						return a.Socket
					}
					time.Sleep(50 * time.Millisecond)
				}
				fail("poll client: could not create a session")
				return ""
			}
			session := create()
			for n := 0; session != ""; n++ {
				select {
				case <-stop:
					_, _ = pc.get(base + "/poll/c/" + session)
					return
				default:
				}
				msg := "p" + strconv.Itoa(i) + "-" + strconv.Itoa(n)
			retry:
				if status, _ := pc.get(base + "/poll/s/" + session + "?d=" + msg); status != 201 {
					if status == 403 && phase.Load() == 1 { // its instance left
						session = create()
						goto retry
					}
					fail("poll send: " + strconv.Itoa(status))
					return
				}
				for got := false; !got; {
					status, a := pc.poll(&testRelay{Public: lbPublic}, session, 5*time.Second)
					if status == 403 && phase.Load() == 1 {
						session = create()
						goto retry
					}
					if status != 200 {
						fail("poll: " + strconv.Itoa(status) + " " + a.Error)
						return
					}
					for _, m := range a.Messages {
						switch {
						case m.Type == "close" && m.Code == 1001 && phase.Load() == 1:
							session = create()
							goto retry
						case m.Type == "text" && m.Data == msg:
							got = true
							roundTrips.Add(1)
						case m.Type != "heartbeat":
							fail("poll client got " + m.Type + " " + m.Data + ", want " + msg)
							return
						}
						pc.ack = max(pc.ack, m.Seq)
					}
				}
			}
		}()
	}
	eventually(t, 30*time.Second, "round trips through HAProxy", func() bool { return roundTrips.Load() >= 300 })
	if len(errs) > 0 {
		close(stop)
		wg.Wait()
		t.Fatalf("before SIGTERM: %v", errs)
	}

	// Hold sd2's drain open a few seconds with a client that never reads, so HAProxy's check
	// is seen to take it out while it still runs (its /readyz answers 503).
	victim := sds[1]
	rawDial(t, "127.0.0.1:"+strconv.Itoa(victim.public))
	before := haproxyServers(t, statsURL)["socketdock_public/sd2"]["stot"]
	phase.Store(1)
	if err := victim.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var down map[string]string
	eventually(t, 5*time.Second, "HAProxy to take sd2 out", func() bool {
		s := haproxyServers(t, statsURL)
		down = s["socketdock_public/sd2"]
		return strings.HasPrefix(down["status"], "DOWN") && strings.HasPrefix(s["socketdock_control/sd2"]["status"], "DOWN")
	})
	if down["check_status"] != "L7STS" || down["check_code"] != "503" {
		t.Fatalf("sd2 went down on %s %s, want its /readyz's 503 (L7STS)", down["check_status"], down["check_code"])
	}
	if status, _ := do(t, "GET", "http://127.0.0.1:"+strconv.Itoa(victim.control)+"/readyz", "", nil); status != 503 {
		t.Fatalf("sd2's /readyz answered %d once HAProxy had taken it out; want 503 from a draining instance", status)
	}
	downAt := haproxyServers(t, statsURL)["socketdock_public/sd2"]["stot"]
	target := roundTrips.Load() + 300
	eventually(t, 30*time.Second, "round trips after SIGTERM", func() bool { return roundTrips.Load() >= target })
	close(stop)
	wg.Wait()
	if err := victim.p.cmd.Wait(); err != nil {
		t.Errorf("sd2 after SIGTERM: %v", err)
	}
	after := haproxyServers(t, statsURL)["socketdock_public/sd2"]["stot"]
	t.Logf("sd2 sessions through HAProxy: %s before SIGTERM, %s when marked down, %s at the end; %d WebSocket clients got 1001 and reconnected; %d round trips",
		before, downAt, after, goingAway.Load(), roundTrips.Load())
	for _, e := range errs {
		t.Error(e)
	}
	if goingAway.Load() == 0 {
		t.Error("no client was on sd2 (round robin over 12 should put 4 there)")
	}
	if after != downAt {
		t.Errorf("HAProxy sent sd2 new sessions after marking it down: %s then %s", downAt, after)
	}
	if otherClose.Load() != 0 {
		t.Errorf("%d clients were disturbed otherwise", otherClose.Load())
	}
}

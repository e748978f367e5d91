package e2e

// Dead peers for real (issue 3): a client in its own network namespace, joined to the relay
// by a veth pair this test creates, vanishes without FIN or RST when its link goes down. The
// relay's ping timeout finds it within --ping-interval + --ping-timeout and POSTs the
// disconnect. Needs root (CAP_NET_ADMIN) and iproute2; skipped with a reason otherwise.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// vethPair is a namespace holding one end of a veth pair; the other end stays in ours.
type vethPair struct {
	ns     string
	hostIf string
	nsIf   string
	hostIP string // on hostIf, in our namespace: the relay binds here
	peerIP string // on nsIf, inside ns: the client's address
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newVethPair creates the namespace and the pair, or skips the test saying why it cannot.
func newVethPair(t *testing.T) *vethPair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("dead-peer test needs root to create a network namespace (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("dead-peer test needs iproute2 (apt-get install -y iproute2)")
	}
	id := os.Getpid() % 10000
	octet := os.Getpid()%250 + 1
	v := &vethPair{
		ns:     fmt.Sprintf("sdrel%d", id),
		hostIf: fmt.Sprintf("sdr%da", id),
		nsIf:   fmt.Sprintf("sdr%db", id),
		hostIP: fmt.Sprintf("10.200.%d.1", octet),
		peerIP: fmt.Sprintf("10.200.%d.2", octet),
	}
	if err := ipCmd("netns", "add", v.ns); err != nil {
		t.Skipf("cannot create a network namespace here: %v", err)
	}
	t.Cleanup(func() {
		_ = ipCmd("netns", "del", v.ns) // takes nsIf, and with it hostIf
		_ = exec.Command("ip", "link", "del", v.hostIf).Run()
	})
	steps := [][]string{
		{"link", "add", v.hostIf, "type", "veth", "peer", "name", v.nsIf},
		{"link", "set", v.nsIf, "netns", v.ns},
		{"addr", "add", v.hostIP + "/30", "dev", v.hostIf},
		{"link", "set", v.hostIf, "up"},
		{"-n", v.ns, "addr", "add", v.peerIP + "/30", "dev", v.nsIf},
		{"-n", v.ns, "link", "set", v.nsIf, "up"},
		{"-n", v.ns, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Skipf("cannot set up the veth pair: %v", err)
		}
	}
	return v
}

// dialFromNetns opens a TCP connection whose socket lives in the namespace: the dial runs on
// an OS thread switched into it (sockets keep the namespace they were created in).
func (v *vethPair) dialFromNetns(addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + v.ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		c, derr := net.DialTimeout("tcp", addr, 5*time.Second)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread is stuck in the namespace: leave it locked so it dies with us.
			ch <- result{c, derr}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{c, derr}
	}()
	r := <-ch
	return r.c, r.err
}

func TestDeadPeerDetectedByPingTimeout(t *testing.T) {
	v := newVethPair(t)
	const interval, timeout = 500 * time.Millisecond, 500 * time.Millisecond
	b := newBackend(t)
	r := startRelay(t, "--bindip", v.hostIP, "--control-bindip", "127.0.0.1",
		"--backend", "http", "--message-uri", b.URL+"/message", "--connect-uri", b.URL+"/connect", "--disconnect-uri", b.URL+"/disconnect",
		"--ping-interval", interval.String(), "--ping-timeout", timeout.String())

	nc, err := v.dialFromNetns(r.Public)
	if err != nil {
		t.Fatalf("dial from the namespace: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	local := nc.LocalAddr().(*net.TCPAddr)
	if local.IP.String() != v.peerIP {
		t.Fatalf("client address %s, want %s (inside the namespace)", local, v.peerIP)
	}
	c := &rawConn{Conn: nc, r: bufio.NewReader(nc)}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	c.send(t, []byte(upgradeRequest(r.Public)))
	c.expectStatus(t, 101)
	id := b.connID(t, 1)
	c.send(t, frame(true, 0x1, []byte("alive"), true))
	eventually(t, 5*time.Second, "message POST", func() bool { return len(b.on("/message")) == 1 })

	// The client answers pings while its link is up: two intervals pass, still connected.
	go func() { // a reader that answers pings like a live client until the link drops
		for {
			fin, op, p, err := readFrameErr(c)
			if err != nil {
				return
			}
			if op == 0x9 && fin {
				_, _ = nc.Write(frame(true, 0xA, p, true))
			}
		}
	}()
	time.Sleep(2*interval + timeout)
	if len(b.on("/disconnect")) != 0 {
		t.Fatalf("a live client answering pings was dropped: %v", b.on("/disconnect")[0].Body)
	}

	// Vanish: the link goes down inside the namespace. No FIN, no RST reaches the relay.
	dropped := time.Now()
	if err := ipCmd("-n", v.ns, "link", "set", v.nsIf, "down"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*(interval+timeout), "disconnect POST for the dead peer", func() bool { return len(b.on("/disconnect")) == 1 })
	took := time.Since(dropped)
	d := b.on("/disconnect")[0].Body
	if d["connection_id"] != id || d["code"] != float64(1006) || !strings.Contains(fmt.Sprint(d["reason"]), "ping timeout") {
		t.Errorf("disconnect %v, want code 1006 reason ping timeout", d)
	}
	// Bound: the last client bytes were at most one interval before the drop is noticed as
	// silence, plus the ping timeout, plus a timer tick and scheduling slack.
	if limit := interval + timeout + 250*time.Millisecond; took > limit {
		t.Errorf("dead peer found after %v, want within ping-interval + ping-timeout (%v) + slack", took, interval+timeout)
	}
	if r.Table.Active() != 0 {
		t.Errorf("%d connections still in the table", r.Table.Active())
	}
	t.Logf("half-open peer (veth down in its namespace): disconnect POSTed %v after the drop (ping-interval %v + ping-timeout %v): %v",
		took.Round(time.Millisecond), interval, timeout, d)
}

// readFrameErr reads one unfragmented server frame, returning errors instead of failing.
func readFrameErr(c *rawConn) (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(c.r, h[:]); err != nil {
		return
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(c.r, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(c.r, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.r, payload)
	return h[0]&0x80 != 0, h[0] & 0x0f, payload, err
}

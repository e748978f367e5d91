package control

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/metrics"
)

func startServer(t *testing.T, opts Options) string {
	t.Helper()
	opts.Addr = "127.0.0.1:0"
	opts.Token = "tok"
	opts.Logger = zerolog.Nop()
	opts.Metrics = metrics.New(func() float64 { return 0 }, func() float64 { return 0 })
	opts.Table = conntable.New()
	opts.Table.Add(&conntable.Conn{ID: fuzzID, Transport: nopTransport{}})
	s := New(opts)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s.Addr().String()
}

// heldFor writes req and returns how long the server keeps the connection, and its status.
func heldFor(t *testing.T, addr, req string) (time.Duration, string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	io.WriteString(nc, req)
	_ = nc.SetReadDeadline(start.Add(10 * time.Second))
	line, _ := bufio.NewReader(nc).ReadString('\n')
	return time.Since(start), line
}

// HeadTimeout and BodyTimeout bound what a slow caller holds; each restarts nothing.
func TestReadTimeouts(t *testing.T) {
	addr := startServer(t, Options{HeadTimeout: 300 * time.Millisecond, BodyTimeout: 600 * time.Millisecond})
	took, _ := heldFor(t, addr, "GET /status HTTP/1.1\r\nHost: x\r\n")
	if took < 250*time.Millisecond || took > 3*time.Second {
		t.Errorf("unfinished head held %v, want about the 300ms head timeout", took)
	}
	took, line := heldFor(t, addr, fmt.Sprintf("POST /socket/%s/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Length: 100\r\n\r\n0123456789", fuzzID))
	if took < 500*time.Millisecond || took > 3*time.Second || line != "HTTP/1.1 408 Request Timeout\r\n" {
		t.Errorf("unfinished body: %q after %v, want 408 after about the 600ms body timeout", line, took)
	}
	took, line = heldFor(t, addr, fmt.Sprintf("POST /socket/%s/send HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789", fuzzID))
	if took > 250*time.Millisecond || line != "HTTP/1.1 401 Unauthorized\r\n" {
		t.Errorf("refused head: %q after %v, want 401 at once", line, took)
	}
}

// MaxConns: a connection over the bound is answered 503 and closed at once.
func TestMaxConns(t *testing.T) {
	addr := startServer(t, Options{MaxConns: 2})
	for range 2 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		io.WriteString(nc, "GET /status HTTP/1.1\r\n")
	}
	for deadline := time.Now().Add(5 * time.Second); ; { // until the server has taken both
		took, line := heldFor(t, addr, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
		if line == "HTTP/1.1 503 Service Unavailable\r\n" && took < 2*time.Second {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("third connection: %q after %v, want 503 at once", line, took)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// /readyz is 503 "starting" until the relay says its public listener is up, 200 then, and
// 503 "draining" once a drain starts: a load balancer never routes to a relay that cannot
// take connections.
func TestReadyzFollowsTheRelay(t *testing.T) {
	opts := Options{Addr: "127.0.0.1:0", Logger: zerolog.Nop(), Table: conntable.New(),
		Metrics: metrics.New(func() float64 { return 0 }, func() float64 { return 0 })}
	s := New(opts)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	probe := func() string {
		_, line := heldFor(t, s.Addr().String(), "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		return line
	}
	for _, step := range []struct {
		do   func()
		want string
	}{
		{func() {}, "HTTP/1.1 503 Service Unavailable\r\n"},
		{s.SetReady, "HTTP/1.1 200 OK\r\n"},
		{s.SetDraining, "HTTP/1.1 503 Service Unavailable\r\n"},
	} {
		step.do()
		if got := probe(); got != step.want {
			t.Fatalf("/readyz: %q, want %q", got, step.want)
		}
	}
}

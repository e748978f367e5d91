package hub

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// recorder is a backend that counts what it is told.
type recorder struct {
	opened, closed atomic.Int64
}

func (r *recorder) Opened(*conntable.Conn) { r.opened.Add(1) }
func (r *recorder) Message(*conntable.Conn, conntable.MessageType, []byte) (backend.Reply, bool, error) {
	return backend.Reply{}, false, nil
}
func (r *recorder) Closed(*conntable.Conn, int, string) { r.closed.Add(1) }
func (r *recorder) Drain(context.Context) error         { return nil }

// fakeTransport records closes.
type fakeTransport struct {
	mu     sync.Mutex
	closes []int
}

func (f *fakeTransport) Send(conntable.MessageType, []byte) error { return nil }
func (f *fakeTransport) Close(code int, _ string) {
	f.mu.Lock()
	f.closes = append(f.closes, code)
	f.mu.Unlock()
}
func (f *fakeTransport) Name() string { return "fake" }

func newHub(maxConns, perIP int) (*Hub, *recorder) {
	rec := &recorder{}
	table := conntable.New()
	m := metrics.New(func() float64 { return float64(table.Active()) }, func() float64 { return float64(table.Lifetime()) })
	return New(Options{MaxConnections: maxConns, MaxConnectionsPerIP: perIP, Table: table, Backend: rec, Metrics: m, Logger: zerolog.Nop()}), rec
}

func addr(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }

func TestAdmissionLimits(t *testing.T) {
	h, _ := newHub(3, 2)
	a1, err1 := h.Admit(addr("10.0.0.1", 1))
	a2, err2 := h.Admit(addr("10.0.0.1", 2))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := h.Admit(addr("10.0.0.1", 3)); err != ErrMaxPerIP {
		t.Fatalf("third from one address: %v, want ErrMaxPerIP", err)
	}
	b1, err := h.Admit(addr("10.0.0.2", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Admit(addr("10.0.0.3", 1)); err != ErrMaxConnections {
		t.Fatalf("fourth overall: %v, want ErrMaxConnections", err)
	}
	h.Release(&a1)
	h.Release(&a1) // twice is once
	if h.Admitted() != 2 {
		t.Fatalf("admitted %d after one release, want 2", h.Admitted())
	}
	if _, err := h.Admit(addr("10.0.0.1", 4)); err != nil {
		t.Fatalf("a released slot is reusable: %v", err)
	}
	h.Release(&a2)
	h.Release(&b1)
	h.perIPMu.Lock()
	left := len(h.perIP)
	h.perIPMu.Unlock()
	if left != 1 { // 10.0.0.1's fourth connection
		t.Fatalf("%d addresses counted after their tickets were released, want 1", left)
	}
}

// Every connection holds a ticket: one pointer, not an address string.
func TestTicketSize(t *testing.T) {
	if s := unsafe.Sizeof(Ticket{}); s != 8 {
		t.Errorf("a Ticket is %d bytes, want 8", s)
	}
	h, _ := newHub(0, 0)
	tk, err := h.Admit(addr("10.0.0.1", 1))
	if err != nil || !tk.Held() {
		t.Fatalf("admitted without a per-IP limit: held %v, %v", tk.Held(), err)
	}
	h.Release(&tk)
	if tk.Held() || h.Admitted() != 0 {
		t.Fatalf("released: held %v, admitted %d", tk.Held(), h.Admitted())
	}
}

func TestClosedOnceAndDrainReachesLateOpens(t *testing.T) {
	h, rec := newHub(0, 0)
	ft := &fakeTransport{}
	tk, _ := h.Admit(addr("127.0.0.1", 1))
	c := h.NewConn(ft, addr("127.0.0.1", 1), [][2]string{{"x", "y"}}, "/ws?token=1")
	h.Open(c)
	if c.Request != nil || c.Headers() != nil || c.Path() != "" {
		t.Fatal("the request is kept after the backend saw it")
	}
	h.Closed(c, &tk, 1000, "")
	h.Closed(c, &tk, 1006, "again")
	if rec.opened.Load() != 1 || rec.closed.Load() != 1 || h.opts.Table.Active() != 0 || h.Admitted() != 0 {
		t.Fatalf("opened %d closed %d active %d admitted %d, want 1 1 0 0",
			rec.opened.Load(), rec.closed.Load(), h.opts.Table.Active(), h.Admitted())
	}

	// A connection admitted before the drain but opened after its sweep still gets 1001.
	tk2, err := h.Admit(addr("127.0.0.1", 2))
	if err != nil {
		t.Fatal(err)
	}
	h.Drain()
	late := &fakeTransport{}
	c2 := h.NewConn(late, addr("127.0.0.1", 2), nil, "")
	h.Open(c2)
	if len(late.closes) != 1 || late.closes[0] != conntable.CloseGoingAway {
		t.Fatalf("a connection opened during drain got closes %v, want [1001]", late.closes)
	}
	if _, err := h.Admit(addr("127.0.0.1", 3)); err != ErrDraining {
		t.Fatalf("admission while draining: %v, want ErrDraining", err)
	}
	h.Closed(c2, &tk2, 1001, "")
}

func TestAbandonedTellsTheBackendOnce(t *testing.T) {
	h, rec := newHub(0, 0)
	tk, _ := h.Admit(addr("127.0.0.1", 1))
	c := h.NewConn(&fakeTransport{}, addr("127.0.0.1", 1), nil, "")
	h.Abandoned(c, &tk, 1006, "client left")
	h.Abandoned(c, &tk, 1006, "client left")
	if rec.closed.Load() != 1 || h.Admitted() != 0 || h.opts.Table.Active() != 0 {
		t.Fatalf("closed %d admitted %d active %d, want 1 0 0", rec.closed.Load(), h.Admitted(), h.opts.Table.Active())
	}
}

// Drain racing opens: however they interleave, every opened connection is closed.
func TestDrainRacingOpens(t *testing.T) {
	for round := 0; round < 50; round++ {
		h, _ := newHub(0, 0)
		var wg sync.WaitGroup
		transports := make([]*fakeTransport, 64)
		opened := make([]bool, len(transports))
		for i := range transports {
			transports[i] = &fakeTransport{}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if _, err := h.Admit(addr("127.0.0.1", i)); err != nil {
					return
				}
				h.Open(h.NewConn(transports[i], addr("127.0.0.1", i), nil, ""))
				opened[i] = true
			}(i)
		}
		h.Drain()
		wg.Wait()
		for i, ft := range transports {
			if opened[i] && len(ft.closes) == 0 {
				t.Fatalf("round %d: connection %d opened around the drain and was never closed", round, i)
			}
		}
	}
}

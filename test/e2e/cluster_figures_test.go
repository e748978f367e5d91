package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Figures for docs/SCALING.md, not a check: /send to a connection on the instance asked
// (local) against /send through another instance (over NATS), in the same run, alternating.
//
//	SOCKETDOCK_CLUSTER_FIGURES=1 go test ./test/e2e -run TestClusterFigures -v -count=1
func TestClusterFigures(t *testing.T) {
	if os.Getenv("SOCKETDOCK_CLUSTER_FIGURES") == "" {
		t.Skip("set SOCKETDOCK_CLUSTER_FIGURES=1 to measure")
	}
	const conns, senders, perPhase = 8, 16, 20000
	ns := startNATS(t, -1)
	backend := newBackend(t)
	a := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	b := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	c := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	var received atomic.Int64
	ids := make([]string, conns)
	for i := range conns {
		ws := dial(t, a.WSURL, nil)
		ids[i] = backend.connID(t, i+1)
		go func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
				received.Add(1)
			}
		}()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders, MaxConnsPerHost: senders}}
	body := bytes.Repeat([]byte("x"), 64)
	phase := func(target *testRelay) (rate float64, p50, p99 time.Duration, refused int64) {
		var next atomic.Int64
		lat := make([][]time.Duration, senders)
		var wg sync.WaitGroup
		start := time.Now()
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > perPhase {
						return
					}
					t0 := time.Now()
					resp, err := client.Post(target.Control+"/socket/"+ids[i%conns]+"/send", "text/plain", bytes.NewReader(body))
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						atomic.AddInt64(&refused, 1)
					}
					lat[s] = append(lat[s], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		took := time.Since(start)
		var all []time.Duration
		for _, l := range lat {
			all = append(all, l...)
		}
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		return float64(perPhase) / took.Seconds(), all[len(all)/2], all[len(all)*99/100], refused
	}
	for round := range 2 {
		for _, p := range []struct {
			name   string
			target *testRelay
		}{{"local (A)", a}, {"remote (B→A)", b}} {
			rate, p50, p99, refused := phase(p.target)
			t.Logf("round %d %-13s %8.0f msgs/s  p50 %-9v p99 %-9v non-200 %d", round+1, p.name, rate, p50.Round(time.Microsecond), p99.Round(time.Microsecond), refused)
		}
	}
	eventually(t, 10*time.Second, "every message delivered", func() bool { return received.Load() >= 4*perPhase })

	// Connections held across the three instances, summed by any of them.
	const held = 1500
	var ws []*websocket.Conn
	for i := range 3 * held {
		r := []*testRelay{a, b, c}[i%3]
		conn, _, err := websocket.DefaultDialer.Dial(r.WSURL, nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		ws = append(ws, conn)
	}
	doc := clusterStatus(t, c)
	t.Logf("held %d WebSocket connections over 3 instances; /status?scope=cluster on one of them: active %d, %d instances answered",
		len(ws), doc.Connections.Active, doc.Instances.Answered)
	for _, w := range ws {
		w.Close()
	}
}

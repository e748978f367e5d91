package e2e

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Adversarial lifecycle cases of docs/SECURITY.md: a connect the backend accepted always gets
// its disconnect, and no connection escapes a drain.

// Clients that leave while the backend decides (--connect-mode authorize): the backend said
// yes to connections that never opened, and each gets exactly one disconnect (1006).
func TestAbuseAuthorizeClientLeavesWhileDeciding(t *testing.T) {
	b := newBackend(t)
	b.setConnect(func(p backendPost, w http.ResponseWriter) {
		time.Sleep(400 * time.Millisecond)
		w.WriteHeader(200)
	})
	r := startRelay(t, b.relayArgs("--connect-mode", "authorize")...)
	const clients = 5
	for i := 0; i < clients; i++ {
		c := rawConnect(t, r.Public)
		c.send(t, []byte(upgradeRequest(r.Public)))
		eventually(t, 5*time.Second, "authorize POST", func() bool { return len(b.on("/connect")) == i+1 })
		c.Close()
	}
	eventually(t, 5*time.Second, "a disconnect per accepted connect", func() bool { return len(b.on("/disconnect")) == clients })
	time.Sleep(300 * time.Millisecond) // nothing more arrives
	connects := map[any]bool{}
	for _, p := range b.on("/connect") {
		connects[p.meta()["connection_id"]] = true
	}
	for _, d := range b.on("/disconnect") {
		if !connects[d.Body["connection_id"]] || d.Body["code"] != float64(1006) {
			t.Fatalf("disconnect %v: want code 1006 for a connection the backend saw", d.Body)
		}
		delete(connects, d.Body["connection_id"])
	}
	if len(b.on("/disconnect")) != clients || len(b.on("/message")) != 0 || r.Table.Active() != 0 {
		t.Fatalf("%d disconnects, %d messages, %d active; want %d, 0, 0",
			len(b.on("/disconnect")), len(b.on("/message")), r.Table.Active(), clients)
	}
}

// A drain that starts while the backend decides: the yes still ends in one disconnect, and
// the client is not left open.
func TestAbuseAuthorizeDrainWhileDeciding(t *testing.T) {
	b := newBackend(t)
	release := make(chan struct{})
	b.setConnect(func(p backendPost, w http.ResponseWriter) {
		<-release
		w.WriteHeader(200)
	})
	r := startRelay(t, b.relayArgs("--connect-mode", "authorize")...)
	c := rawConnect(t, r.Public)
	c.send(t, []byte(upgradeRequest(r.Public)))
	eventually(t, 5*time.Second, "authorize POST", func() bool { return len(b.on("/connect")) == 1 })
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- r.Shutdown(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	close(release)
	eventually(t, 8*time.Second, "the disconnect", func() bool { return len(b.on("/disconnect")) == 1 })
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	id := b.on("/connect")[0].meta()["connection_id"]
	if d := b.on("/disconnect"); len(d) != 1 || d[0].Body["connection_id"] != id {
		t.Fatalf("disconnects %v, want one for %v", d, id)
	}
	if r.Table.Active() != 0 {
		t.Fatalf("%d connections left in the table after the drain", r.Table.Active())
	}
}

// Upgrades racing a drain: every client that got its 101 is closed with 1001, and the table
// empties (a connection admitted between the drain's check and its registration used to
// miss the 1001 and stay open).
func TestAbuseDrainRacingUpgrades(t *testing.T) {
	b := newBackend(t)
	r := startRelay(t, b.relayArgs()...)
	const clients = 40
	type result struct {
		upgraded bool
		close    int
	}
	results := make(chan result, clients)
	start := make(chan struct{})
	for i := 0; i < clients; i++ {
		go func() {
			<-start
			c, resp, err := websocket.DefaultDialer.Dial(r.WSURL, nil)
			if err != nil {
				if resp != nil && resp.StatusCode != 503 {
					results <- result{close: -resp.StatusCode}
					return
				}
				results <- result{}
				return
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					code := 0
					if errors.As(err, &ce) {
						code = ce.Code
					}
					results <- result{upgraded: true, close: code}
					return
				}
			}
		}()
	}
	close(start)
	time.Sleep(5 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	upgraded := 0
	for i := 0; i < clients; i++ {
		res := <-results
		if res.close < 0 {
			t.Fatalf("an upgrade during the drain got status %d, want 101 or 503", -res.close)
		}
		if res.upgraded {
			upgraded++
			if res.close != 1001 {
				t.Fatalf("an upgraded client ended with %d, want 1001", res.close)
			}
		}
	}
	if r.Table.Active() != 0 {
		t.Fatalf("%d connections in the table after the drain", r.Table.Active())
	}
	eventually(t, 5*time.Second, "a disconnect per connect", func() bool { return len(b.on("/disconnect")) == len(b.on("/connect")) })
	t.Logf("%d of %d clients upgraded before the drain; all got 1001", upgraded, clients)
}

package soak

import (
	"fmt"
	"slices"
	"testing"
)

// tally is the reconciliation of one transport's sessions.
type tally struct {
	opened, neverConnected, acked, told int
	codes                               map[int]int
	modes                               map[string]int

	sent, delivered, toldUndelivered, dups, lost int
	uncertain, uncertainDelivered, refused       int

	send200, send200Got, send200Missing, sendDups int

	connOnce, connBad int // the backend's connections of this transport

	retries503, floods, redelivered, pollErrors int
}

// reconcile checks every session against what the backend saw, per transport, and logs the
// figures. It returns the messages sent and the connections without exactly one connect and
// one disconnect.
func reconcile(t *testing.T, b *backend, sessions []*session, wsWorkers, pollWorkers int) (sent, connBad int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tallies := map[string]*tally{}
	get := func(tr string) *tally {
		if tallies[tr] == nil {
			tallies[tr] = &tally{codes: map[int]int{}, modes: map[string]int{}}
		}
		return tallies[tr]
	}
	byKey := make(map[string]*backendConn, len(b.conns))
	for _, c := range b.conns {
		if c.key != "" {
			byKey[c.key] = c
		}
	}
	errs := 0
	errorf := func(format string, args ...any) {
		errs++
		if errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	for _, s := range sessions {
		k := get(s.transport)
		if s.closeCode == -1 {
			k.neverConnected++
			continue
		}
		k.opened++
		k.modes[s.mode]++
		k.retries503 += s.retries503
		k.floods += s.floods
		k.redelivered += s.redelivered
		k.pollErrors += s.pollErrors
		k.refused += s.refused
		if s.acked {
			k.acked++
		} else {
			k.told++
			k.codes[s.closeCode]++
		}
		for _, e := range s.statusErr {
			errorf("%s session %s: %s", s.transport, s.key, e)
		}
		if s.closeErr != "" {
			errorf("%s session %s: %s", s.transport, s.key, s.closeErr)
		}
		for _, m := range s.sent {
			k.sent++
			n := b.received[m]
			switch {
			case n == 1:
				k.delivered++
			case n > 1:
				k.dups++
				errorf("message %q answered 2xx %d times", m, n)
			case !s.acked && s.closeCode >= 1008 && s.closeCode != 1009 || !s.acked && s.closeCode == 1001:
				k.toldUndelivered++
			default:
				k.lost++
				errorf("message %q never answered 2xx; %s session acked=%v close=%d", m, s.transport, s.acked, s.closeCode)
			}
		}
		for _, m := range s.uncertain {
			k.uncertain++
			switch n := b.received[m]; {
			case n == 1:
				k.uncertainDelivered++
			case n > 1:
				k.dups++
				errorf("message %q (its request failed) answered 2xx %d times", m, n)
			}
		}
		// A poll session's close record comes after every message queued before the close,
		// so a poll client that saw one has every /send answered 200, acknowledged or not.
		mustHave := s.acked || s.transport == "poll" && s.closeCode > 0
		for p, n := range b.sendOK[s.key] {
			k.send200 += n
			switch got := s.got[p]; {
			case got > n:
				k.sendDups++
				errorf("/send %q to %s answered 200 %d times, arrived %d times", p, s.key, n, got)
			case got >= 1:
				k.send200Got += n
			case mustHave:
				k.send200Missing += n
				errorf("/send %q to %s answered 200 but never arrived (acked=%v close=%d)", p, s.key, s.acked, s.closeCode)
			}
		}
		c := byKey[s.key]
		switch {
		case c == nil:
			if s.acked {
				errorf("%s session %s acknowledged, but the backend saw no connect for it", s.transport, s.key)
			}
		case c.transport != s.transport:
			errorf("%s session %s: connect with meta.transport %q", s.transport, s.key, c.transport)
		case s.transport == "poll" && s.acked:
			want, reason := 1000, ""
			if s.mode == "vanish" {
				want, reason = 1006, "poll session expired"
			}
			if c.code != want || reason != "" && c.reason != reason {
				errorf("poll session %s (%s): disconnect %d %q, want %d %q", s.key, s.mode, c.code, c.reason, want, reason)
			}
		}
	}
	for _, c := range b.conns {
		tr := c.transport
		if tr == "" {
			tr = "(no connect)"
		}
		k := get(tr)
		if c.connects == 1 && c.discs == 1 {
			k.connOnce++
		} else {
			k.connBad++
			connBad++
			errorf("%s connection %s (%s): %d connects, %d disconnects", tr, c.id, c.key, c.connects, c.discs)
		}
		for _, m := range c.mismatch {
			errorf("%s connection %s (%s): %s", tr, c.id, c.key, m)
		}
	}
	if errs > 20 {
		t.Errorf("%d reconciliation errors in all, the first 20 above", errs)
	}

	names := make([]string, 0, len(tallies))
	for tr := range tallies {
		names = append(names, tr)
	}
	slices.Sort(names)
	for _, tr := range names {
		k := tallies[tr]
		sent += k.sent
		if k.lost > 0 {
			t.Errorf("%s: %d messages lost without a close code saying so", tr, k.lost)
		}
		for code, n := range k.codes {
			if code != 1011 && code != 1008 && code != 1013 && code != 1001 {
				t.Errorf("%s: %d sessions ended early with close %d, which does not say messages were lost", tr, n, code)
			}
		}
		if k.opened == 0 && k.neverConnected == 0 { // the connections only the burst made, or none
			t.Logf("%s: connections: %d with exactly one connect and one disconnect, %d otherwise", tr, k.connOnce, k.connBad)
			continue
		}
		leave := fmt.Sprintf("%d close handshake, %d TCP drop, %d backend kick", k.modes["close"], k.modes["drop"], k.modes["kick"])
		if tr == "poll" {
			leave = fmt.Sprintf("%d /poll/c, %d vanished (left to expire), %d backend kick", k.modes["close"], k.modes["vanish"], k.modes["kick"])
		}
		t.Logf("%s sessions: %d opened (%s), %d never connected; %d ended cleanly (bye acknowledged), %d closed early with codes %v",
			tr, k.opened, leave, k.neverConnected, k.acked, k.told, k.codes)
		t.Logf("%s client → backend: %d sent, %d answered 2xx exactly once, %d not delivered and told by close code, %d duplicates, %d lost",
			tr, k.sent, k.delivered, k.toldUndelivered, k.dups, k.lost)
		if tr == "poll" {
			t.Logf("poll sends: %d floods of the inbound queue; %d answered 503 + Retry-After and retried, %d given up after 20 s of 503s; %d failed in flight (%d of them answered 2xx once, none twice)",
				k.floods, k.retries503, k.refused, k.uncertain, k.uncertainDelivered)
			t.Logf("poll polls: %d failed and retried with the same ack, %d messages carried again and dropped by seq", k.pollErrors, k.redelivered)
		}
		t.Logf("%s backend → client: %d /send answered 200, %d received, %d missing where they had to arrive, %d received twice",
			tr, k.send200, k.send200Got, k.send200Missing, k.sendDups)
		t.Logf("%s connections: %d with exactly one connect and one disconnect, %d otherwise", tr, k.connOnce, k.connBad)
	}
	t.Logf("backend: %d /send calls (S| payloads, plus one ACK a bye), %d answered 200, %d refused (connection closing/gone); faults: %d 503 windows (400ms), %d backend restarts (300ms refused), %d outages (%v of 503s)",
		b.sends.Load(), b.sends200.Load(), b.sendsOther.Load(), b.blips503, b.restarts, b.outages, outageFor)
	if ws := tallies["ws"]; wsWorkers > 0 && (ws == nil || ws.opened == 0 || ws.sent == 0) {
		t.Error("the soak's WebSocket clients did nothing")
	}
	if p := tallies["poll"]; pollWorkers > 0 && (p == nil || p.opened == 0 || p.sent == 0) {
		t.Error("the soak's poll clients did nothing")
	}
	return sent, connBad
}

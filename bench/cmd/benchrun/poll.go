package main

import (
	"fmt"
	"strconv"
	"time"
)

// The long-poll transport (CONTRACT §8) against the WebSocket figures of the same run and
// the same relay build: held polls' memory per session, and the send/poll round trip.

// startPushpinGrip starts Pushpin proxying plain HTTP to a fresh refbackend in grip mode
// (the long-poll API, holds and publishes through GRIP). The pids are Pushpin's processes
// and the backend's: the sessions' state lives in the backend.
func (b *bench) startPushpinGrip() (pids string, port int, stop func(), err error) {
	bePort := b.nextPort(1)
	pp, port, err := b.startPushpinRoute(bePort, "")
	if err != nil {
		return "", 0, nil, err
	}
	be, err := b.sup.start("refbackend-grip", []string{b.tool("refbackend"), "-addr", addr(bePort), "-mode", "grip",
		"-publish-uri", "http://" + addr(port+3) + "/publish/"}, []string{addr(bePort)})
	if err != nil {
		b.sup.stop(pp)
		return "", 0, nil, err
	}
	return pp.pidList() + "," + be.pidList(), port, func() { b.sup.stop(be); b.sup.stop(pp) }, nil
}

// scenarioPollIdle holds idleConns WebSocket connections, then as many poll sessions (each
// one held poll on its own keep-alive connection), against fresh relays with the idle
// scenario's configuration (HTTP backend, callback), and compares RSS growth per connection.
func (b *bench) scenarioPollIdle() error {
	n := b.cfg.idleConns
	sc := &Scenario{ID: "poll-idle-memory", Title: fmt.Sprintf("Held polls' memory, %d sessions vs %d WebSockets (RSS growth per connection)", n, n), Metric: "rss_per_conn_bytes", Unit: "bytes/conn"}
	b.Scenarios = append(b.Scenarios, sc)
	ws := sc.subject("socketdock ws", true)
	poll := sc.subject("socketdock poll", false)
	sc.ratio("socketdock poll", "socketdock ws", "", 0, true)
	sc.absolute("socketdock poll", "", "≤ 2048 B/session", 2048, true)
	var pp *Subject
	if b.cfg.pushpin {
		pp = sc.subject("pushpin poll (GRIP)", true)
		sc.ratio("pushpin poll (GRIP)", "socketdock poll", "", 0, false)
	}
	bePort := b.nextPort(1)
	be, err := b.startBackend(bePort, "callback")
	if err != nil {
		return err
	}
	defer b.sup.stop(be)
	to := 3 * time.Minute
	relay := func(name string) (*proc, int, error) {
		port := b.nextPort(2)
		p, err := b.startRelay(port, name, "--backend", "http", "--message-uri", "http://"+addr(bePort)+"/message")
		return p, port, err
	}
	for run := 0; run < b.cfg.runs && b.ctx.Err() == nil; run++ {
		b.measure(sc, ws, run, func(int) (map[string]any, error) {
			p, port, err := relay("socketdock-idle-ws")
			if err != nil {
				return nil, err
			}
			defer b.sup.stop(p)
			return b.sup.runTool(b.ctx, "sdbench-poll-idle-ws", to, b.holdArgs(addr(port), n, p.pidList()))
		})
		b.measure(sc, poll, run, func(int) (map[string]any, error) {
			p, port, err := relay("socketdock-idle-poll")
			if err != nil {
				return nil, err
			}
			defer b.sup.stop(p)
			// ttl 25 s (the relay's --poll-max-ttl): no poll ends while RSS is read.
			return b.sup.runTool(b.ctx, "sdbench-poll-idle-poll", to, b.holdArgs(addr(port), n, p.pidList(), "-transport", "poll", "-poll-ttl", "25s"))
		})
		if pp != nil {
			b.measure(sc, pp, run, func(int) (map[string]any, error) {
				pids, port, stop, err := b.startPushpinGrip()
				if err != nil {
					return nil, err
				}
				defer stop()
				return b.sup.runTool(b.ctx, "sdbench-poll-idle-pushpin", to, b.holdArgs(addr(port), n, pids, "-transport", "poll", "-poll-ttl", "25s", "-connect-concurrency", "16"))
			})
		}
	}
	sc.finish()
	return nil
}

// scenarioPollEcho: closed-loop echo through the loopback backend, conns WebSockets vs conns
// poll sessions (send, then poll with ack until the echo is there).
func (b *bench) scenarioPollEcho() error {
	sc := &Scenario{ID: "poll-echo", Title: fmt.Sprintf("Long-poll round trip vs WebSocket echo, loopback backend, %d sessions × 64 B", b.cfg.conns), Metric: "msgs_per_s", Unit: "msgs/s"}
	b.Scenarios = append(b.Scenarios, sc)
	ws := sc.subject("socketdock ws", true)
	poll := sc.subject("socketdock poll", false)
	sc.ratio("socketdock poll", "socketdock ws", "", 0, false)
	var pp *Subject
	if b.cfg.pushpin {
		pp = sc.subject("pushpin poll (GRIP)", true)
		sc.ratio("socketdock poll", "pushpin poll (GRIP)", "", 0, false)
	}
	pollArgs := func(target, pids string, extra ...string) []string {
		a := []string{b.tool("sdbench"), "pollecho", "-addr", target, "-conns", strconv.Itoa(b.cfg.conns), "-size", "64",
			"-duration", b.cfg.duration.String(), "-warmup", b.cfg.warmup.String(), "-pid", pids}
		return append(a, extra...)
	}
	for run := 0; run < b.cfg.runs && b.ctx.Err() == nil; run++ {
		b.measure(sc, ws, run, func(int) (map[string]any, error) {
			port := b.nextPort(2)
			p, err := b.startRelay(port, "socketdock-echo-ws", "--backend", "loopback")
			if err != nil {
				return nil, err
			}
			defer b.sup.stop(p)
			return b.sup.runTool(b.ctx, "sdbench-poll-echo-ws", b.clientTimeout(), b.echoArgs(addr(port), 64, "-pid", p.pidList()))
		})
		b.measure(sc, poll, run, func(int) (map[string]any, error) {
			port := b.nextPort(2)
			p, err := b.startRelay(port, "socketdock-echo-poll", "--backend", "loopback")
			if err != nil {
				return nil, err
			}
			defer b.sup.stop(p)
			return b.sup.runTool(b.ctx, "sdbench-poll-echo-poll", b.clientTimeout(), pollArgs(addr(port), p.pidList()))
		})
		if pp != nil {
			b.measure(sc, pp, run, func(int) (map[string]any, error) {
				pids, port, stop, err := b.startPushpinGrip()
				if err != nil {
					return nil, err
				}
				defer stop()
				return b.sup.runTool(b.ctx, "sdbench-poll-echo-pushpin", b.clientTimeout(), pollArgs(addr(port), pids, "-connect-concurrency", "16"))
			})
		}
	}
	sc.finish()
	return nil
}

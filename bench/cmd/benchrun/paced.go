package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The latency SocketDock adds under a paced load (issue 12): in each run, the raw path's
// capacity is measured closed loop, then the raw path and SocketDock are each paced at
// half of it, or the fraction -paced-at gives (sdbench -rate, open loop, latency from each message's due time), in
// alternating order from run to run, and their p99s are compared.

// pacedPath is one of the two HTTP paths: the raw yardstick and SocketDock's mode on it.
type pacedPath struct {
	id, title   string
	backendMode string // refbackend -mode
	rawPath     string // sdbench rawpath -path
	raw, sd     string // subject names
	relayArgs   []string
}

var pacedPaths = []pacedPath{
	{id: "paced-callback", title: "raw two-POST", backendMode: "callback", rawPath: "callback",
		raw: "raw two-POST", sd: "socketdock callback"},
	{id: "paced-reply-in-response", title: "raw one-POST", backendMode: "response", rawPath: "response",
		raw: "raw one-POST", sd: "socketdock reply-in-response", relayArgs: []string{"--reply-in-response"}},
}

var errNoCapacity = errors.New("no capacity measured in this run")

func (b *bench) scenarioPaced() error {
	for _, pp := range pacedPaths {
		if b.ctx.Err() != nil {
			break
		}
		if err := b.scenarioPacedPath(pp); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) scenarioPacedPath(pp pacedPath) error {
	id, at := pp.id, "half the"
	if f := b.cfg.pacedAt; f != 0.5 {
		id, at = fmt.Sprintf("%s-at-%.0f", pp.id, f*100), fmt.Sprintf("%.0f %% of the", f*100)
	}
	sc := &Scenario{ID: id,
		Title: fmt.Sprintf("Paced at %s %s capacity, %d connections × 64 B (open loop, latency from each message's due time)",
			at, pp.title, b.cfg.conns),
		Metric: "msgs_per_s", Unit: "msgs/s"}
	b.Scenarios = append(b.Scenarios, sc)
	capacity := sc.subject(pp.raw+" capacity (closed loop)", true)
	raw := sc.subject(pp.raw+" paced", true)
	sd := sc.subject(pp.sd+" paced", false)
	raw.Paced, sd.Paced = true, true
	sc.latencyRatio(sd.Name, raw.Name, "p99_us", "≤ 1.5", 1.5, true)
	sc.latencyRatio(sd.Name, raw.Name, "p50_us", "", 0, true)
	// Both ≈ -paced-at when the paced subject kept up with its schedule.
	sc.ratio(raw.Name, capacity.Name, "", 0, false)
	sc.ratio(sd.Name, capacity.Name, "", 0, false)

	bePort := b.nextPort(1)
	be, err := b.startBackend(bePort, pp.backendMode)
	if err != nil {
		return err
	}
	defer b.sup.stop(be)
	uri := "http://" + addr(bePort) + "/message"
	rawArgs := func(extra ...string) []string {
		a := []string{b.tool("sdbench"), "rawpath", "-message-uri", uri, "-path", pp.rawPath,
			"-conns", strconv.Itoa(b.cfg.conns), "-size", "64",
			"-duration", b.cfg.duration.String(), "-warmup", b.cfg.warmup.String()}
		return append(a, extra...)
	}
	for run := 0; run < b.cfg.runs && b.ctx.Err() == nil; run++ {
		b.measure(sc, capacity, run, func(int) (map[string]any, error) {
			return b.sup.runTool(b.ctx, "sdbench-"+sc.ID+"-capacity", b.clientTimeout(), rawArgs())
		})
		rate := ""
		if len(capacity.Values) == run+1 {
			if c := capacity.Values[run]; c == c && c > 0 {
				rate = strconv.FormatFloat(c*b.cfg.pacedAt, 'f', 0, 64)
			}
		}
		measureRaw := func() {
			b.measure(sc, raw, run, func(int) (map[string]any, error) {
				if rate == "" {
					return nil, errNoCapacity
				}
				return b.sup.runTool(b.ctx, "sdbench-"+sc.ID+"-raw", b.clientTimeout(), rawArgs("-rate", rate))
			})
		}
		measureSD := func() {
			b.measure(sc, sd, run, func(int) (map[string]any, error) {
				if rate == "" {
					return nil, errNoCapacity
				}
				port := b.nextPort(2)
				args := append([]string{"--backend", "http", "--message-uri", uri}, pp.relayArgs...)
				p, err := b.startRelay(port, "socketdock-"+sc.ID, args...)
				if err != nil {
					return nil, err
				}
				defer b.sup.stop(p)
				return b.sup.runTool(b.ctx, "sdbench-"+sc.ID+"-socketdock", b.clientTimeout(),
					b.echoArgs(addr(port), 64, "-pid", p.pidList(), "-rate", rate))
			})
		}
		// Alternate which subject goes first, so that neither always meets the machine
		// in the same state.
		if run%2 == 0 {
			measureRaw()
			measureSD()
		} else {
			measureSD()
			measureRaw()
		}
	}
	sc.finish()
	sc.Note = pacedNote(b.cfg.pacedAt, raw, sd)
	return nil
}

// pacedNote says at which rates the runs were paced and how many sends were late.
func pacedNote(at float64, subs ...*Subject) string {
	var rates []string
	for _, r := range subs[0].Runs {
		if r != nil {
			rates = append(rates, fmtNum(num(r["target_rate"])))
		}
	}
	if len(rates) == 0 {
		return ""
	}
	note := fmt.Sprintf("Paced at %s msgs/s (%.0f %% of the run's capacity). Sends more than 1 ms late, median of runs:",
		strings.Join(rates, ", "), at*100)
	for i, s := range subs {
		var late []float64
		for _, r := range s.Runs {
			if r != nil && num(r["paced_sent"]) > 0 {
				late = append(late, 100*num(r["late_sends"])/num(r["paced_sent"]))
			}
		}
		sep := ","
		if i == 0 {
			sep = ""
		}
		note += fmt.Sprintf("%s %s %.1f %%", sep, s.Name, median(sortedCopy(late)))
	}
	return note + "."
}

package upstream

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/socketdock/socketdock/pkg/metrics"
)

// Why an upstream link ended, the label of socketdock_upstream_closes_total.
const (
	endUpstreamClose = "upstream_close" // the upstream sent a close frame
	endClientClose   = "client_close"   // the client's connection ended (its code forwarded)
	endLost          = "lost"           // EOF or reset without a close frame
	endPingTimeout   = "ping_timeout"
	endWriteTimeout  = "write_timeout" // the upstream read nothing of ours for --write-timeout
	endProtocol      = "protocol_error"
	endInvalidUTF8   = "invalid_utf8"
	endTooBig        = "too_big"
)

// instruments are the upstream backend's series, registered beside the relay's own.
type instruments struct {
	dials  *prometheus.CounterVec // result: ok, 401, 403, 404, 502, 504
	ends   *prometheus.CounterVec // reason, see end*
	pauses prometheus.Counter     // reads of an upstream stopped for a slow client
	links  prometheus.Gauge       // upstream connections held
}

func newInstruments(m *metrics.Metrics) *instruments {
	in := &instruments{
		dials:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "socketdock_upstream_dials_total", Help: "WebSocket upstream dials, by result (ok or the status the client got)."}, []string{"result"}),
		ends:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "socketdock_upstream_closes_total", Help: "WebSocket upstream links ended, by reason."}, []string{"reason"}),
		pauses: prometheus.NewCounter(prometheus.CounterOpts{Name: "socketdock_upstream_pauses_total", Help: "Times an upstream stopped being read because its client's outbound buffer was full."}),
		links:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "socketdock_upstream_links", Help: "WebSocket upstream connections held."}),
	}
	if m != nil {
		m.Registry.MustRegister(in.dials, in.ends, in.pauses, in.links)
	}
	for _, r := range []string{"ok", "401", "403", "404", "502", "504"} {
		in.dials.WithLabelValues(r)
	}
	for _, r := range []string{endUpstreamClose, endClientClose, endLost, endPingTimeout, endWriteTimeout, endProtocol, endInvalidUTF8, endTooBig} {
		in.ends.WithLabelValues(r)
	}
	return in
}

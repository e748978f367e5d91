// Package metrics defines the relay's Prometheus instruments. Every component receives the
// *Metrics it records into through its constructor; nothing registers globally, so tests can
// run several servers in one process.
package metrics

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the instruments, with label values resolved up front for the hot paths.
type Metrics struct {
	Registry *prometheus.Registry

	trafficMu sync.Mutex
	traffic   []*Traffic

	UpgradesRejected *prometheus.CounterVec // reason
	HTTPResponses    *prometheus.CounterVec // public port non-upgrade answers, by status

	BackendLatency *prometheus.HistogramVec // kind: connect, message, disconnect
	BackendErrors  *prometheus.CounterVec   // kind: transport, timeout, status_4xx, status_5xx, retry_exhausted
	BackendRetries prometheus.Counter

	SendResults *prometheus.CounterVec // control API send outcome

	PollSessions prometheus.Gauge // long-poll sessions the gateway knows (open, or closed with the close record unread)
	PollsHeld    prometheus.Gauge // polls waiting for a message or their ttl

	closes   *prometheus.CounterVec
	closesMu sync.Mutex
	closeBy  map[string]prometheus.Counter // by CloseLabel: at most 18 entries
}

// New creates the instruments and registers them, with the Go and process collectors, in a
// fresh registry. active and lifetime report the connection table's counts.
func New(active func() float64, lifetime func() float64) *Metrics {
	r := prometheus.NewRegistry()
	// go_gc_heap_live_bytes (the heap marked live by the last GC) on top of the defaults: the
	// figure that shows a leak, where the heap in use also counts garbage not yet collected.
	goc := collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)}))
	r.MustRegister(goc, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { r.MustRegister(c) }

	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "socketdock_connections_active", Help: "Open client connections."}, active))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "socketdock_connections_total", Help: "Client connections opened since start."}, lifetime))

	m := &Metrics{
		Registry:         r,
		UpgradesRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "socketdock_upgrades_rejected_total", Help: "WebSocket upgrades refused, by reason."}, []string{"reason"}),
		HTTPResponses:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "socketdock_public_http_responses_total", Help: "Plain HTTP answers on the public port, by status."}, []string{"status"}),
		BackendLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "socketdock_backend_request_duration_seconds", Help: "Backend POST latency per attempt.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind"}),
		BackendErrors:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "socketdock_backend_errors_total", Help: "Failed backend POST attempts, by kind."}, []string{"kind"}),
		BackendRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "socketdock_backend_retries_total", Help: "Backend POST attempts that were retries."}),
		SendResults:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "socketdock_control_send_total", Help: "Control API send calls, by result."}, []string{"result"}),
		closes:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "socketdock_closes_total", Help: "Client connections ended, by close code (1006: no close handshake; 3xxx, 4xxx: application codes; other: anything else)."}, []string{"code"}),
		closeBy:        make(map[string]prometheus.Counter),
		PollSessions:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "socketdock_poll_sessions", Help: "Long-poll sessions held."}),
		PollsHeld:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "socketdock_poll_held", Help: "Long polls waiting for a message or their ttl."}),
	}
	// Series that exist from the start, at zero, so dashboards and alerts see them.
	for _, kind := range []string{"transport", "timeout", "status_4xx", "status_429", "status_5xx", "status_503"} {
		m.BackendErrors.WithLabelValues(kind)
	}
	for _, kind := range []string{"connect", "message", "disconnect"} {
		m.BackendLatency.WithLabelValues(kind)
	}
	for _, c := range []struct {
		name, help, typ string
		value           func(*Traffic) uint64
	}{
		{"socketdock_messages_in_total", "Complete messages received from clients.", "text", func(t *Traffic) uint64 { return t.MessagesInText.Load() }},
		{"socketdock_messages_in_total", "Complete messages received from clients.", "binary", func(t *Traffic) uint64 { return t.MessagesInBinary.Load() }},
		{"socketdock_messages_out_total", "Complete messages sent to clients.", "text", func(t *Traffic) uint64 { return t.MessagesOutText.Load() }},
		{"socketdock_messages_out_total", "Complete messages sent to clients.", "binary", func(t *Traffic) uint64 { return t.MessagesOutBinary.Load() }},
		{"socketdock_bytes_in_total", "Message payload bytes received from clients.", "", func(t *Traffic) uint64 { return t.BytesIn.Load() }},
		{"socketdock_bytes_out_total", "Message payload bytes sent to clients.", "", func(t *Traffic) uint64 { return t.BytesOut.Load() }},
		{"socketdock_empty_messages_total", "Empty client messages (not forwarded to the backend).", "", func(t *Traffic) uint64 { return t.EmptyMessages.Load() }},
		{"socketdock_poll_messages_total", "Complete messages on long-poll sessions (included in the totals above), by direction.", "direction=in", func(t *Traffic) uint64 { return t.PollMessagesIn.Load() }},
		{"socketdock_poll_messages_total", "Complete messages on long-poll sessions (included in the totals above), by direction.", "direction=out", func(t *Traffic) uint64 { return t.PollMessagesOut.Load() }},
		{"socketdock_poll_redeliveries_total", "Messages a poll answer carried again because the client did not confirm them.", "", func(t *Traffic) uint64 { return t.PollRedeliveries.Load() }},
	} {
		opts := prometheus.CounterOpts{Name: c.name, Help: c.help}
		if name, value, ok := strings.Cut(c.typ, "="); ok {
			opts.ConstLabels = prometheus.Labels{name: value}
		} else if c.typ != "" {
			opts.ConstLabels = prometheus.Labels{"type": c.typ}
		}
		f(prometheus.NewCounterFunc(opts, func() float64 { return float64(m.sumTraffic(c.value)) }))
	}
	for _, c := range []prometheus.Collector{m.UpgradesRejected, m.HTTPResponses,
		m.BackendLatency, m.BackendErrors, m.BackendRetries, m.SendResults, m.closes, m.PollSessions, m.PollsHeld} {
		f(c)
	}
	return m
}

// Traffic counts one event loop's messages and bytes. Each loop owns one and is its only
// writer, so counting on the hot path never contends for a cache line with another core;
// a scrape adds them up.
type Traffic struct {
	MessagesInText, MessagesInBinary   atomic.Uint64
	MessagesOutText, MessagesOutBinary atomic.Uint64
	BytesIn, BytesOut                  atomic.Uint64
	EmptyMessages                      atomic.Uint64
	PollMessagesIn, PollMessagesOut    atomic.Uint64 // the poll transport's share of the messages
	PollRedeliveries                   atomic.Uint64
	_                                  [64]byte // keep the next loop's counters off these lines
}

// NewTraffic returns a Traffic that the metrics include from now on.
func (m *Metrics) NewTraffic() *Traffic {
	t := &Traffic{}
	m.trafficMu.Lock()
	m.traffic = append(m.traffic, t)
	m.trafficMu.Unlock()
	return t
}

func (m *Metrics) sumTraffic(value func(*Traffic) uint64) uint64 {
	m.trafficMu.Lock()
	defer m.trafficMu.Unlock()
	var sum uint64
	for _, t := range m.traffic {
		sum += value(t)
	}
	return sum
}

// Closed counts a connection that ended with code.
func (m *Metrics) Closed(code int) {
	label := CloseLabel(code)
	m.closesMu.Lock()
	c, ok := m.closeBy[label]
	if !ok {
		c = m.closes.WithLabelValues(label)
		m.closeBy[label] = c
	}
	m.closesMu.Unlock()
	c.Inc()
}

// CloseLabel is the code label of socketdock_closes_total. Clients choose their close code,
// so each code must not become a series of its own: the codes RFC 6455 and the IANA registry
// define keep their number; the application ranges fold into "3xxx" and "4xxx"; anything
// else (reserved, undefined) is "other".
func CloseLabel(code int) string {
	switch {
	case code >= 1000 && code <= 1015 && code != 1004: // 1004 is reserved
		return definedCloseLabels[code-1000]
	case code >= 3000 && code <= 3999:
		return "3xxx"
	case code >= 4000 && code <= 4999:
		return "4xxx"
	}
	return "other"
}

var definedCloseLabels = func() (l [16]string) {
	for i := range l {
		l[i] = strconv.Itoa(1000 + i)
	}
	return l
}()

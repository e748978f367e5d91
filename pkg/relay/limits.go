package relay

import (
	"syscall"

	"github.com/socketdock/socketdock/pkg/config"

	"github.com/prometheus/client_golang/prometheus"
)

// RaiseFileLimit raises the process's soft limit on open files to its hard limit (every
// client connection is a descriptor) and returns the soft limit in force. Go's runtime does
// the same at start on Linux; doing it here makes it explicit and reports the outcome.
func RaiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		raised := l
		raised.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return l.Cur, err
		}
		l = raised
	}
	return l.Cur, nil
}

// fileLimitReserve is what a relay keeps for itself beyond its backend and control
// connections: listeners, the event loops' pollers, NATS, logs.
const fileLimitReserve = 64

// ConnectionCeiling is how many client connections the open-file limit leaves room for.
func (r *Relay) ConnectionCeiling() int64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	reserve := uint64(fileLimitReserve + r.opts.ControlMaxConns)
	if r.opts.Backend != config.BackendLoopback {
		reserve += uint64(r.opts.BackendMaxConns)
	}
	if l.Cur <= reserve {
		return 0
	}
	return int64(l.Cur - reserve)
}

func (r *Relay) registerLimits() {
	r.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "socketdock_connection_ceiling",
		Help: "Client connections the open-file limit leaves room for (soft limit minus backend, control and internal descriptors).",
	}, func() float64 { return float64(r.ConnectionCeiling()) }))
}

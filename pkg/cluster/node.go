// Package cluster joins SocketDock instances over NATS (CONTRACT §10): any instance's control
// API answers for a connection another holds, any instance serves the poll routes of a
// session another holds, and GET /status?scope=cluster sums them all.
//
// The model (docs/SCALING.md): every instance stays independent for its own connections. An
// instance picks a random 32-bit tag at start, checks on NATS that no live instance holds it,
// and puts it at the end of every connection and poll session id it issues. A call for an id
// with another tag is one core NATS request to <prefix>.i.<tag>.<op>, which only the owner
// subscribes to (one wildcard subscription per instance); the owner's answer is the answer.
// Nobody is asked who holds what, and nothing is stored in NATS.
package cluster

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/gateway"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// Options configures a Node.
type Options struct {
	URLs           []string      // NATS servers
	Creds          string        // a .creds file, or ""
	Prefix         string        // subject prefix (--nats-prefix)
	Timeout        time.Duration // --cluster-timeout
	MaxMessageSize int           // --max-message-size: must fit the server's max_payload with the framing
	Name           string        // the NATS connection's name (shows in the server's monitoring)

	Table   *conntable.Table // for this instance's share of /status?scope=cluster
	Started time.Time
	Metrics *metrics.Metrics
	Logger  zerolog.Logger

	// Heartbeat is how often the instance announces itself (the member list that tells
	// /status?scope=cluster whom to wait for); default 1s.
	Heartbeat time.Duration
}

// LocalControl serves a forwarded control call (control.Server).
type LocalControl interface {
	ServeLocal(ctx *fasthttp.RequestCtx, op string, id string)
}

// LocalPolls serves a forwarded poll call (gateway.Server).
type LocalPolls interface {
	ServeRemotePoll(call *gateway.PollCall, maxSize, perMessage int, done func(gateway.PollResult))
}

// Errors a start can end with.
var (
	ErrTagsExhausted = errors.New("cluster: every instance tag tried is held by a live instance")
)

// Node is this instance's membership in the cluster.
type Node struct {
	opts    Options
	log     zerolog.Logger
	nc      *nats.Conn
	tag     atomic.Uint32
	tagText string
	nonce   string // tells this process from another that claims the same tag

	control LocalControl
	polls   LocalPolls

	workers []chan *nats.Msg
	wg      sync.WaitGroup
	stop    chan struct{} // Stop was called
	closed  chan struct{} // the NATS connection is closed
	done    chan struct{} // the workers are to end

	membersMu sync.Mutex
	members   map[string]time.Time // other instances' tags, by last heartbeat

	randomTag func() uint32 // crypto/rand; tests substitute a sequence

	latency    *prometheus.HistogramVec
	results    *prometheus.CounterVec
	served     *prometheus.CounterVec
	expired    prometheus.Counter
	collisions prometheus.Counter
}

// New prepares a Node; Attach the local servers, then Start it before they start.
func New(opts Options) *Node {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Second
	}
	if opts.Started.IsZero() {
		opts.Started = time.Now()
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	n := &Node{
		opts:    opts,
		log:     opts.Logger.With().Str("component", "cluster").Logger(),
		nonce:   hex.EncodeToString(nonce[:]),
		stop:    make(chan struct{}),
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
		members: make(map[string]time.Time),
	}
	n.randomTag = func() uint32 {
		var b [4]byte
		_, _ = rand.Read(b[:])
		return binary.BigEndian.Uint32(b[:])
	}
	n.registerMetrics(opts.Metrics.Registry)
	return n
}

// Attach names the servers that answer forwarded calls.
func (n *Node) Attach(c LocalControl, p LocalPolls) { n.control, n.polls = c, p }

// Tag is this instance's tag (valid once Start returned).
func (n *Node) Tag() string { return n.tagText }

// NewID issues a connection or session id that names this instance.
func (n *Node) NewID() string { return conntable.NewTaggedID(n.tag.Load()) }

// Remote reports whether id belongs to another instance.
func (n *Node) Remote(id string) bool {
	tag, ok := conntable.TagOf(id)
	return ok && tag != n.tag.Load()
}

// Timeout is --cluster-timeout.
func (n *Node) Timeout() time.Duration { return n.opts.Timeout }

func (n *Node) subject(tag string, op opcode) string {
	return n.opts.Prefix + ".i." + tag + "." + op.String()
}

func (n *Node) statusSubject() string    { return n.opts.Prefix + ".status" }
func (n *Node) heartbeatSubject() string { return n.opts.Prefix + ".hb" }

// workerCount: calls for one id always go to the same worker, so they are served in the
// order they arrived; a slow call (a send that waits for its event loop) holds up only the
// ids that share its worker.
const workerCount = 32

// Start connects to NATS, checks that --max-message-size fits its max_payload, claims a free
// tag and subscribes. Every error is one line that says what to change.
func (n *Node) Start() error {
	urls := strings.Join(n.opts.URLs, ",")
	opts := []nats.Option{
		nats.Name(n.opts.Name),
		nats.MaxReconnects(-1), // reconnect by itself, forever
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		// No buffering while reconnecting: a call that could not be sent is answered 503 at
		// once, and never goes out later, after its caller was told it failed.
		nats.ReconnectBufSize(-1),
		nats.NoEcho(),
		nats.Timeout(min(max(n.opts.Timeout, time.Second), 5*time.Second)),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DrainTimeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if n.stopping() {
				return
			}
			n.log.Warn().Err(err).Msg("NATS connection lost: calls to other instances answer 503 until it is back")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			n.log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS connection back")
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(n.closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			n.log.Warn().Err(err).Msg("NATS")
		}),
	}
	if n.opts.Creds != "" {
		opts = append(opts, nats.UserCredentials(n.opts.Creds))
	}
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return fmt.Errorf("--nats-url %s: cannot connect: %v", urls, err)
	}
	n.nc = nc
	if need := int64(n.opts.MaxMessageSize + FramingOverhead); need > nc.MaxPayload() {
		nc.Close()
		return fmt.Errorf("--max-message-size %d plus %d bytes of framing exceeds the NATS server's max_payload of %d: raise max_payload in the NATS server configuration to at least %d, or lower --max-message-size",
			n.opts.MaxMessageSize, FramingOverhead, nc.MaxPayload(), need)
	}
	if err := n.claimTag(); err != nil {
		nc.Close()
		return err
	}
	n.workers = make([]chan *nats.Msg, workerCount)
	for i := range n.workers {
		ch := make(chan *nats.Msg, 256)
		n.workers[i] = ch
		n.wg.Add(1)
		go n.work(ch)
	}
	subs := []struct {
		subject string
		handle  nats.MsgHandler
	}{
		{n.opts.Prefix + ".i." + n.tagText + ".*", n.dispatch},
		{n.statusSubject(), n.answerStatus},
		{n.heartbeatSubject(), n.heard},
	}
	for _, s := range subs {
		if _, err := nc.Subscribe(s.subject, s.handle); err != nil {
			n.Stop()
			return fmt.Errorf("NATS subscribe %s: %v", s.subject, err)
		}
	}
	if err := nc.Flush(); err != nil {
		n.Stop()
		return fmt.Errorf("NATS: %v", err)
	}
	n.announce(false)
	n.wg.Add(1)
	go n.heartbeats()
	n.log.Info().Str("instance", n.tagText).Str("server", nc.ConnectedUrlRedacted()).Int64("max_payload", nc.MaxPayload()).
		Msg("joined the cluster")
	return nil
}

// claimTag picks a random tag that no live instance answers for. Two instances that pick
// the same one within the same moment are told apart by their heartbeats (a collision is
// logged and counted); with 32 random bits that takes some 9,000 simultaneous starts for
// even odds of one.
func (n *Node) claimTag() error {
	for range 8 {
		tag := n.randomTag()
		text := conntable.FormatTag(tag)
		_, err := n.nc.Request(n.subject(text, opPing), nil, n.opts.Timeout)
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			n.tag.Store(tag)
			n.tagText = text
			return nil
		case err == nil || errors.Is(err, nats.ErrTimeout):
			n.log.Warn().Str("instance", text).Msg("instance tag already held; picking another")
		default:
			return fmt.Errorf("NATS: checking instance tag: %v", err)
		}
	}
	return ErrTagsExhausted
}

// Stop leaves the cluster: a farewell heartbeat, the subscriptions drained (calls in hand
// are answered), the connection closed. Call it once the local connections are gone.
func (n *Node) Stop() {
	if n.nc == nil {
		return
	}
	select {
	case <-n.stop:
		return
	default:
	}
	close(n.stop)
	if n.tagText != "" {
		n.announce(true)
	}
	if err := n.nc.Drain(); err != nil {
		n.nc.Close()
	}
	select {
	case <-n.closed:
	case <-time.After(10 * time.Second):
		n.nc.Close()
	}
	close(n.done) // calls still queued are dropped: their callers answer 504
	n.wg.Wait()
}

func (n *Node) stopping() bool {
	select {
	case <-n.stop:
		return true
	default:
		return false
	}
}

// Connected reports whether NATS is reachable now.
func (n *Node) Connected() bool { return n.nc != nil && n.nc.IsConnected() }

// heartbeats announces the instance until Stop.
func (n *Node) heartbeats() {
	defer n.wg.Done()
	t := time.NewTicker(n.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.announce(false)
		}
	}
}

// announce publishes "<tag> <nonce>", or "<tag> <nonce> bye" when leaving.
func (n *Node) announce(bye bool) {
	msg := n.tagText + " " + n.nonce
	if bye {
		msg += " bye"
	}
	_ = n.nc.Publish(n.heartbeatSubject(), []byte(msg))
}

// heard records another instance's heartbeat. A newcomer is greeted with ours, so it knows
// every member within a round trip rather than a heartbeat period.
func (n *Node) heard(m *nats.Msg) {
	fields := strings.Fields(string(m.Data))
	if len(fields) < 2 {
		return
	}
	tag, nonce := fields[0], fields[1]
	if tag == n.tagText {
		if nonce != n.nonce {
			n.collisions.Inc()
			n.log.Error().Str("instance", tag).Msg("another instance holds this instance's tag: restart one of them")
		}
		return
	}
	n.membersMu.Lock()
	_, known := n.members[tag]
	if len(fields) > 2 && fields[2] == "bye" {
		delete(n.members, tag)
		known = true
	} else {
		n.members[tag] = time.Now()
	}
	n.membersMu.Unlock()
	if !known {
		n.announce(false)
	}
}

// liveMembers lists the other instances heard from recently.
func (n *Node) liveMembers() map[string]bool {
	cutoff := time.Now().Add(-3 * n.opts.Heartbeat)
	live := make(map[string]bool)
	n.membersMu.Lock()
	for tag, seen := range n.members {
		if seen.Before(cutoff) {
			delete(n.members, tag)
			continue
		}
		live[tag] = true
	}
	n.membersMu.Unlock()
	return live
}

func (n *Node) registerMetrics(r *prometheus.Registry) {
	n.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "socketdock_cluster_call_duration_seconds", Help: "Calls forwarded to another instance over NATS, from request to answer, by op (poll_get includes its hold).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"op"})
	n.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "socketdock_cluster_calls_total", Help: "Calls forwarded to another instance, by op and result (the owner's status, or no_responders, timeout, unavailable).",
	}, []string{"op", "result"})
	n.served = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "socketdock_cluster_served_total", Help: "Calls this instance served for other instances, by op.",
	}, []string{"op"})
	n.expired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "socketdock_cluster_expired_total", Help: "Forwarded calls dropped unserved because their caller had already given up (check clock sync if this grows).",
	})
	n.collisions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "socketdock_cluster_tag_collisions_total", Help: "Heartbeats from another process claiming this instance's tag.",
	})
	connected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "socketdock_cluster_nats_connected", Help: "1 while the NATS connection is up, else 0.",
	}, func() float64 {
		if n.Connected() {
			return 1
		}
		return 0
	})
	instances := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "socketdock_cluster_instances", Help: "Instances this one hears heartbeats from, itself included.",
	}, func() float64 { return float64(len(n.liveMembers()) + 1) })
	r.MustRegister(n.latency, n.results, n.served, n.expired, n.collisions, connected, instances)
	for op := opSend; op <= opLast; op++ {
		n.latency.WithLabelValues(op.String())
	}
}

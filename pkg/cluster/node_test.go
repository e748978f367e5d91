package cluster

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/control"
	"github.com/socketdock/socketdock/pkg/gateway"
	"github.com/socketdock/socketdock/pkg/metrics"
)

func runNATS(t *testing.T, maxPayload int32) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, MaxPayload: maxPayload, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func newNode(t *testing.T, url string, timeout time.Duration, maxMessage int) *Node {
	t.Helper()
	table := conntable.New()
	m := metrics.New(func() float64 { return 0 }, func() float64 { return 0 })
	return New(Options{URLs: []string{url}, Prefix: "test", Timeout: timeout, MaxMessageSize: maxMessage,
		Table: table, Metrics: m, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
}

// slowControl answers each forwarded call after its delay, and records the bodies it saw.
type slowControl struct {
	mu    sync.Mutex
	delay time.Duration
	seen  []string
}

func (c *slowControl) ServeLocal(ctx *fasthttp.RequestCtx, op string, id string) {
	c.mu.Lock()
	c.seen = append(c.seen, string(ctx.PostBody()))
	d := c.delay
	c.mu.Unlock()
	time.Sleep(d)
	ctx.SetStatusCode(200)
	ctx.SetBodyString("OK")
}

func (c *slowControl) bodies() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}

type noPolls struct{}

func (noPolls) ServeRemotePoll(*gateway.PollCall, int, int, func(gateway.PollResult)) {}

func forward(n *Node, op, id, body string) (int, string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.Header.SetContentType("text/plain")
	ctx.Request.SetBodyString(body)
	n.Forward(&ctx, op, id)
	return ctx.Response.StatusCode(), string(ctx.Response.Body())
}

// An owner slower than --cluster-timeout: the caller answers 504, and a call that waited
// behind the slow one past its act-by time is dropped, never delivered after its 504.
func TestSlowOwnerIs504AndLateCallsAreDropped(t *testing.T) {
	ns := runNATS(t, 0)
	timeout := 200 * time.Millisecond
	owner, caller := newNode(t, ns.ClientURL(), timeout, 1<<10), newNode(t, ns.ClientURL(), timeout, 1<<10)
	slow := &slowControl{delay: 3 * timeout}
	owner.Attach(slow, noPolls{})
	caller.Attach(&slowControl{}, noPolls{})
	for _, n := range []*Node{owner, caller} {
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Stop)
	}
	id := conntable.NewTaggedID(owner.tag.Load())
	start := time.Now()
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i, body := range []string{"first", "second"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = forward(caller, control.OpSend, id, body)
		}()
		time.Sleep(20 * time.Millisecond) // "first" reaches the owner's worker first
	}
	wg.Wait()
	if statuses[0] != 504 || statuses[1] != 504 {
		t.Fatalf("statuses %v, want 504 504", statuses)
	}
	if took := time.Since(start); took > timeout+time.Second {
		t.Fatalf("504 came after %v", took)
	}
	time.Sleep(4 * timeout) // the owner is done with "first" and has looked at "second"
	if got := slow.bodies(); len(got) != 1 || got[0] != "first" {
		t.Fatalf("the owner served %q; the call queued past its act-by time must be dropped", got)
	}
	if n := counterValue(owner.expired); n != 1 {
		t.Fatalf("expired = %v, want 1", n)
	}
	// And once the owner is quick again, calls go through.
	slow.mu.Lock()
	slow.delay = 0
	slow.mu.Unlock()
	if status, body := forward(caller, control.OpSend, id, "third"); status != 200 || body != "OK" {
		t.Fatalf("after: %d %q", status, body)
	}
}

// A tag a live instance answers for is not taken.
func TestTagInUseIsNotTaken(t *testing.T) {
	ns := runNATS(t, 0)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe("test.i."+conntable.FormatTag(0xabcdef01)+".*", func(m *nats.Msg) { _ = m.Respond(nil) }); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	n := newNode(t, ns.ClientURL(), time.Second, 1<<10)
	n.Attach(&slowControl{}, noPolls{})
	tags := []uint32{0xabcdef01, 0x12345678}
	n.randomTag = func() uint32 { tag := tags[0]; tags = tags[1:]; return tag }
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if n.Tag() != "12345678" {
		t.Fatalf("took tag %s", n.Tag())
	}
	if !n.Remote(conntable.NewTaggedID(0xabcdef01)) || n.Remote(n.NewID()) {
		t.Fatal("Remote does not tell the tags apart")
	}
}

// --max-message-size plus the framing must fit the server's max_payload: one line that
// says what to raise.
func TestStartRefusesMessagesOverMaxPayload(t *testing.T) {
	ns := runNATS(t, 1<<20)
	n := newNode(t, ns.ClientURL(), time.Second, 4<<20)
	err := n.Start()
	if err == nil {
		n.Stop()
		t.Fatal("started with 4 MiB messages on a 1 MiB NATS")
	}
	for _, want := range []string{"--max-message-size 4194304", "max_payload", "1048576", "raise"} {
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("error %q lacks %q (or is not one line)", err, want)
		}
	}
	n = newNode(t, ns.ClientURL(), time.Second, 1<<20-FramingOverhead)
	n.Attach(&slowControl{}, noPolls{})
	if err := n.Start(); err != nil {
		t.Fatalf("a message size that fits: %v", err)
	}
	n.Stop()
	n = newNode(t, "nats://127.0.0.1:1", time.Second, 1<<10)
	if err := n.Start(); err == nil || !strings.Contains(err.Error(), "--nats-url") {
		t.Fatalf("unreachable NATS: %v", err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

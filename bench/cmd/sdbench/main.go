// Command sdbench is SocketDock's load generator.
//
//	sdbench hold    -conns N [-procs P] [-pid PID,...]   hold N idle connections (-transport poll: held polls), RSS per connection
//	sdbench echo    -conns C -size S -duration D          closed-loop echo, msgs/s and latency percentiles
//	sdbench rate    -duration D -workers W                connect + upgrade + close, upgrades/s
//	sdbench pollecho -conns C -size S -duration D          long-poll sessions: send, poll until the echo, msgs/s
//	sdbench rawpath -message-uri URL -conns C -size S     the HTTP path with no WebSocket (yardstick)
//
// echo and rawpath run closed loops, or with -rate R an open loop: R messages per
// second spread over the C connections (workers), each on its own staggered schedule,
// up to -window messages in flight each, latency counted from each message's due time.
//
// Human-readable progress goes to stderr; every run ends with exactly one
// line "RESULT {json}" on stdout. Only loopback targets are accepted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage: sdbench <hold|echo|pollecho|rate|rawpath> [flags]
run "sdbench <subcommand> -h" for the flags of one subcommand
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "hold":
		err = runHold(ctx, os.Args[2:])
	case "echo":
		err = runEcho(ctx, os.Args[2:])
	case "rate":
		err = runRate(ctx, os.Args[2:])
	case "pollecho":
		err = runPollEcho(ctx, os.Args[2:])
	case "rawpath":
		err = runRawPath(ctx, os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "sdbench:", err)
		os.Exit(1)
	}
}

// common holds the flags every WebSocket subcommand shares.
type common struct {
	addr    string
	path    string
	srcBase int
	perIP   int
	timeout time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8765", "target host:port (loopback only)")
	fs.StringVar(&c.path, "path", "/ws", "upgrade path")
	fs.IntVar(&c.srcBase, "src-first", 0, "index of the first source address (0 = 127.0.0.2)")
	fs.IntVar(&c.perIP, "per-ip", 20000, "connections per source address before moving to the next")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "connect+handshake timeout, and per-message timeout")
}

// checkLoopback refuses anything outside 127.0.0.0/8 (and ::1): this tool
// generates load and must never point at another machine.
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("bad address %q: %w", hostport, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing non-loopback target %q", hostport)
	}
	return nil
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "sdbench: "+format+"\n", a...)
}

// Package config is the relay's one Options struct: defaults, command-line flags, SOCKETDOCK_*
// environment variables (the command line wins), and validation that names the first problem.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/socketdock/socketdock/pkg/limits"

	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/internal/redact"
)

// Options is everything the relay can be told at startup.
type Options struct {
	BindIP          string
	BindPort        int
	ControlBindIP   string
	ControlBindPort int
	Endpoint        string

	Backend         BackendKind
	MessageURI      string
	ConnectURI      string
	DisconnectURI   string
	ReplyInResponse bool
	BackendTimeout  time.Duration
	BackendRetries  int
	BackendMaxConns int
	MaxInboundQueue int
	MaxInboundBytes int

	MaxMessageSize      int
	MaxOutboundBytes    int
	MaxHeaderBytes      int
	MaxHeaders          int
	MaxConnections      int
	MaxConnectionsPerIP int
	PingInterval        time.Duration
	PingTimeout         time.Duration
	HandshakeTimeout    time.Duration
	WriteTimeout        time.Duration
	DrainTimeout        time.Duration
	Loops               int
	ReusePort           bool

	ControlToken     string
	Pprof            bool
	ControlTokenFile string
	ControlInsecure  bool // serve the control API beyond loopback without a token
	ControlMaxConns  int

	// Security (docs/SECURITY.md). Lists are comma-separated; see SplitList.
	BackendSecret     string // HMAC-SHA256 key signing every backend POST
	BackendSecretFile string
	ConnectMode       ConnectMode // notify (compat) or authorize
	AllowedOrigins    string      // upgrade Origin allow-list; empty: any
	ForwardHeaders    string      // upgrade headers copied into the connect POST; empty: all (compat)
	Subprotocols      string      // Sec-WebSocket-Protocol values, in the server's order of preference

	PollOptions
	ClusterOptions
	UpstreamOptions

	LogLevel  string
	LogFormat string

	MemoryLimit string // see ParseMemoryLimit; applied by the command at startup

	Version bool
}

// EnvPrefix starts every environment variable the relay reads.
const EnvPrefix = "SOCKETDOCK_"

// ErrHelp is returned by Parse when --help was asked for; the usage is already printed.
var ErrHelp = errors.New("help requested")

// Defaults returns the options with nothing set.
func Defaults() Options {
	return Options{
		BindIP:           "127.0.0.1",
		BindPort:         8765,
		Backend:          BackendLoopback,
		BackendTimeout:   30 * time.Second,
		BackendRetries:   3,
		BackendMaxConns:  512,
		MaxInboundQueue:  256,
		MaxInboundBytes:  limits.MaxInboundBytes,
		MaxMessageSize:   limits.MaxMessageSize,
		MaxHeaderBytes:   limits.MaxHeaderBytes,
		MaxHeaders:       100,
		ControlMaxConns:  1024,
		PingInterval:     20 * time.Second,
		PingTimeout:      20 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		ConnectMode:      ConnectNotify,
		WriteTimeout:     30 * time.Second,
		DrainTimeout:     10 * time.Second,
		LogLevel:         "INFO",
		LogFormat:        "json",
		PollOptions:      pollDefaults(),
		ClusterOptions:   clusterDefaults(),
		UpstreamOptions:  upstreamDefaults(),
	}
}

func (o *Options) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("socketdock", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.BindIP, "bindip", o.BindIP, "address the public (WebSocket) listener binds")
	fs.IntVar(&o.BindPort, "bindport", o.BindPort, "port of the public listener")
	fs.StringVar(&o.ControlBindIP, "control-bindip", o.ControlBindIP, "address of the control listener (default: bindip)")
	fs.IntVar(&o.ControlBindPort, "control-bindport", o.ControlBindPort, "port of the control listener (default: bindport+1)")
	fs.StringVar(&o.Endpoint, "endpoint", o.Endpoint, "base URL backends use to reach the control listener (default: http://<control address>)")
	fs.StringVar((*string)(&o.Backend), "backend", string(o.Backend), "loopback (echo), http, or ws (each client linked to a WebSocket upstream, --upstream-url)")
	fs.StringVar(&o.MessageURI, "message-uri", o.MessageURI, "URL each client message is POSTed to (required with --backend http)")
	fs.StringVar(&o.ConnectURI, "connect-uri", o.ConnectURI, "URL told of each new connection (optional)")
	fs.StringVar(&o.DisconnectURI, "disconnect-uri", o.DisconnectURI, "URL told of each closed connection (optional)")
	fs.BoolVar(&o.ReplyInResponse, "reply-in-response", o.ReplyInResponse, "deliver a non-empty 2xx answer to a message POST to its client")
	fs.DurationVar(&o.BackendTimeout, "backend-timeout", o.BackendTimeout, "time limit of one backend POST attempt")
	fs.IntVar(&o.BackendRetries, "backend-retries", o.BackendRetries, "retries of a POST that failed before reaching the backend, or got 429/503")
	fs.IntVar(&o.BackendMaxConns, "backend-max-conns", o.BackendMaxConns, "connections to each backend host")
	fs.IntVar(&o.MaxInboundQueue, "max-inbound-queue", o.MaxInboundQueue, "messages a client may have waiting for the backend before it is closed with 1013")
	fs.IntVar(&o.MaxInboundBytes, "max-inbound-bytes", o.MaxInboundBytes, "message bytes a client may have queued or in flight to the backend before it is closed with 1013")
	fs.IntVar(&o.MaxMessageSize, "max-message-size", o.MaxMessageSize, "largest message in bytes, either way (1009 for a client over it)")
	fs.IntVar(&o.MaxOutboundBytes, "max-outbound-bytes", o.MaxOutboundBytes, "bytes buffered for a slow client before /send answers 503 (default: max-message-size+1024)")
	fs.IntVar(&o.MaxHeaderBytes, "max-header-bytes", o.MaxHeaderBytes, "largest upgrade request head in bytes")
	fs.IntVar(&o.MaxHeaders, "max-headers", o.MaxHeaders, "most header lines an upgrade request may have (431 beyond)")
	fs.IntVar(&o.MaxConnections, "max-connections", o.MaxConnections, "open WebSocket connections before upgrades get 503 (0: unlimited)")
	fs.IntVar(&o.MaxConnectionsPerIP, "max-connections-per-ip", o.MaxConnectionsPerIP, "open WebSocket connections per client IP (0: unlimited)")
	fs.DurationVar(&o.PingInterval, "ping-interval", o.PingInterval, "silence after which the server pings a client")
	fs.DurationVar(&o.PingTimeout, "ping-timeout", o.PingTimeout, "time a pinged client has to answer before it is dropped")
	fs.DurationVar(&o.HandshakeTimeout, "handshake-timeout", o.HandshakeTimeout, "time a new connection has to complete its upgrade request")
	fs.DurationVar(&o.WriteTimeout, "write-timeout", o.WriteTimeout, "time a client may leave its outbound bytes unread before it is dropped")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", o.DrainTimeout, "on SIGTERM, time allowed for queued backend POSTs before exit")
	fs.IntVar(&o.Loops, "loops", o.Loops, "event loops (0: one per CPU)")
	fs.BoolVar(&o.ReusePort, "reuseport", o.ReusePort, "set SO_REUSEPORT so several processes share the public port")
	fs.StringVar(&o.ControlToken, "control-token", o.ControlToken, "bearer token the control API requires (except /readyz)")
	fs.StringVar(&o.ControlTokenFile, "control-token-file", o.ControlTokenFile, "file holding the control token")
	fs.BoolVar(&o.ControlInsecure, "control-insecure", o.ControlInsecure, "allow a control listener beyond loopback without a control token (refused otherwise)")
	fs.IntVar(&o.ControlMaxConns, "control-max-conns", o.ControlMaxConns, "control connections served at once; more get 503")
	fs.StringVar(&o.BackendSecret, "backend-secret", o.BackendSecret, "key that signs every backend POST (X-SocketDock-Signature: sha256=HMAC of timestamp.event.event_id.body)")
	fs.StringVar(&o.BackendSecretFile, "backend-secret-file", o.BackendSecretFile, "file holding the backend secret")
	fs.StringVar((*string)(&o.ConnectMode), "connect-mode", string(o.ConnectMode), "notify: connect POST after the upgrade; authorize: before the 101, a non-2xx answer refuses the upgrade")
	fs.StringVar(&o.AllowedOrigins, "allowed-origins", o.AllowedOrigins, "comma-separated Origin values allowed to upgrade, or * (default: any); others get 403")
	fs.StringVar(&o.ForwardHeaders, "forward-headers", o.ForwardHeaders, "comma-separated upgrade headers copied into the connect POST (default: all)")
	fs.StringVar(&o.Subprotocols, "subprotocols", o.Subprotocols, "comma-separated WebSocket subprotocols, most preferred first")
	fs.BoolVar(&o.Pprof, "pprof", o.Pprof, "serve Go's profiler at /debug/pprof/ on the control listener (behind the control token)")
	o.PollOptions.addFlags(fs)
	o.ClusterOptions.addFlags(fs)
	fs.StringVar(&o.MemoryLimit, "memory-limit", o.MemoryLimit, "soft limit of the Go runtime's memory: bytes, 512M or 2G (powers of 1024), a percentage of the cgroup's or machine's memory such as 80%, or off (default: GOMEMLIMIT, else none)")
	o.UpstreamOptions.addFlags(fs)
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "DEBUG, INFO, WARNING, ERROR or CRITICAL")
	fs.StringVar(&o.LogFormat, "log-format", o.LogFormat, "json or console")
	fs.BoolVar(&o.Version, "version", o.Version, "print the version and exit")
	return fs
}

// EnvName is the environment variable that sets a flag.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse builds Options from args (without the program name) over env, where lookup reads
// the environment. On --help it prints the usage to stdout and returns ErrHelp. Any other
// error is one line naming the flag or variable at fault.
func Parse(args []string, lookup func(string) (string, bool), stdout io.Writer) (Options, error) {
	o := Defaults()
	fs := o.flagSet()
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil {
			return
		}
		if v, ok := lookup(EnvName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("invalid value %q in %s: want %s", v, EnvName(f.Name), want(f))
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, stdout)
			return o, ErrHelp
		}
		return o, rephrase(fs, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (options are --name value)", fs.Arg(0))
	}
	if o.Version {
		return o, nil
	}
	return o, o.finish()
}

// want describes the values a flag takes.
func want(f *flag.Flag) string {
	switch f.Value.(flag.Getter).Get().(type) {
	case int:
		return "a whole number"
	case time.Duration:
		return "a duration such as 500ms, 30s or 2m"
	case bool:
		return "true or false"
	}
	return "a string"
}

// rephrase turns the flag package's messages into one line that uses --names.
func rephrase(fs *flag.FlagSet, err error) error {
	s := err.Error()
	switch {
	case strings.HasPrefix(s, "flag provided but not defined: "):
		name := strings.TrimLeft(strings.TrimPrefix(s, "flag provided but not defined: "), "-")
		return fmt.Errorf("unknown flag --%s (see --help)", name)
	case strings.HasPrefix(s, "flag needs an argument: "):
		name := strings.TrimLeft(strings.TrimPrefix(s, "flag needs an argument: "), "-")
		return fmt.Errorf("flag --%s needs a value", name)
	case strings.HasPrefix(s, "invalid value "), strings.HasPrefix(s, "invalid boolean value "):
		// invalid value "x" for flag -name: cause
		v, rest, ok := strings.Cut(s, " for flag -")
		if !ok {
			v, rest, _ = strings.Cut(s, " for -")
		}
		name, _, _ := strings.Cut(rest, ": ")
		v = strings.TrimPrefix(strings.TrimPrefix(v, "invalid boolean value "), "invalid value ")
		if f := fs.Lookup(name); f != nil {
			return fmt.Errorf("invalid value %s for --%s: want %s", v, name, want(f))
		}
		return fmt.Errorf("invalid value %s for --%s", v, name)
	}
	return errors.New(strings.ReplaceAll(s, " -", " --"))
}

// finish fills the derived defaults and validates; the first problem wins.
func (o *Options) finish() error {
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	if o.ControlBindIP == "" {
		o.ControlBindIP = o.BindIP
	}
	if o.ControlBindPort == 0 {
		o.ControlBindPort = o.BindPort + 1
	}
	if o.Endpoint == "" {
		o.Endpoint = "http://" + net.JoinHostPort(endpointHost(o.ControlBindIP), strconv.Itoa(o.ControlBindPort))
	}
	if o.MaxOutboundBytes == 0 {
		o.MaxOutboundBytes = limits.MaxOutboundBytes(o.MaxMessageSize)
	}
	if o.ControlTokenFile != "" {
		b, err := os.ReadFile(o.ControlTokenFile)
		if err != nil {
			return fmt.Errorf("--control-token-file: %v", err)
		}
		o.ControlToken = strings.TrimSpace(string(b))
		if o.ControlToken == "" {
			return fmt.Errorf("--control-token-file %s is empty", o.ControlTokenFile)
		}
	}
	if o.BackendSecretFile != "" {
		b, err := os.ReadFile(o.BackendSecretFile)
		if err != nil {
			return fmt.Errorf("--backend-secret-file: %v", err)
		}
		o.BackendSecret = strings.TrimSpace(string(b))
		if o.BackendSecret == "" {
			return fmt.Errorf("--backend-secret-file %s is empty", o.BackendSecretFile)
		}
	}
	if err := o.checkSecurity(); err != nil {
		return err
	}
	if err := o.PollOptions.check(); err != nil {
		return err
	}
	if err := o.ClusterOptions.check(); err != nil {
		return err
	}
	if err := o.checkUpstream(); err != nil {
		return err
	}
	checks := []struct {
		bad bool
		msg string
	}{
		{net.ParseIP(o.BindIP) == nil, fmt.Sprintf("--bindip %q is not an IP address", o.BindIP)},
		{net.ParseIP(o.ControlBindIP) == nil, fmt.Sprintf("--control-bindip %q is not an IP address", o.ControlBindIP)},
		{o.BindPort < 1 || o.BindPort > 65535, fmt.Sprintf("--bindport %d is not a port (1-65535)", o.BindPort)},
		{o.ControlBindPort < 1 || o.ControlBindPort > 65535, fmt.Sprintf("--control-bindport %d is not a port (1-65535)", o.ControlBindPort)},
		{o.ControlBindPort == o.BindPort && sameHost(o.ControlBindIP, o.BindIP), fmt.Sprintf("--control-bindport %d is the public port; pick another", o.ControlBindPort)},
		{!o.Backend.valid(), fmt.Sprintf("--backend %q is not loopback, http or ws", o.Backend)},
		{o.Backend == BackendHTTP && o.MessageURI == "", "--backend http needs --message-uri"},
		{o.BackendTimeout <= 0, "--backend-timeout must be positive"},
		{o.BackendRetries < 0 || o.BackendRetries > 100, "--backend-retries must be 0-100"},
		{o.BackendMaxConns < 1, "--backend-max-conns must be at least 1"},
		{o.MaxInboundQueue < 1, "--max-inbound-queue must be at least 1"},
		{o.MaxInboundBytes < 1, "--max-inbound-bytes must be at least 1"},
		{o.MaxMessageSize < 1 || o.MaxMessageSize > 1<<30, "--max-message-size must be 1 to 1073741824 bytes"},
		{o.MaxOutboundBytes < 0, "--max-outbound-bytes must not be negative"},
		{o.MaxHeaderBytes < 256 || o.MaxHeaderBytes > 1<<20, "--max-header-bytes must be 256 to 1048576"},
		{o.MaxHeaders < 8 || o.MaxHeaders > 10000, "--max-headers must be 8 to 10000"},
		{o.ControlMaxConns < 1, "--control-max-conns must be at least 1"},
		{o.MaxConnections < 0, "--max-connections must not be negative"},
		{o.MaxConnectionsPerIP < 0, "--max-connections-per-ip must not be negative"},
		{o.PingInterval <= 0, "--ping-interval must be positive"},
		{o.PingTimeout <= 0, "--ping-timeout must be positive"},
		{o.HandshakeTimeout <= 0, "--handshake-timeout must be positive"},
		{o.WriteTimeout <= 0, "--write-timeout must be positive"},
		{o.DrainTimeout < 0, "--drain-timeout must not be negative"},
		{o.Loops < 0, "--loops must not be negative"},
		{o.LogFormat != "json" && o.LogFormat != "console", fmt.Sprintf("--log-format %q is not json or console", o.LogFormat)},
	}
	for _, c := range checks {
		if c.bad {
			return errors.New(c.msg)
		}
	}
	if _, err := ParseLevel(o.LogLevel); err != nil {
		return err
	}
	if _, err := ParseMemoryLimit(o.MemoryLimit); err != nil {
		return err
	}
	for _, u := range []struct{ flag, val string }{{"message-uri", o.MessageURI}, {"connect-uri", o.ConnectURI}, {"disconnect-uri", o.DisconnectURI}} {
		if u.val != "" {
			if err := checkURL(u.val); err != nil {
				return fmt.Errorf("--%s %s: %v", u.flag, redact.URI(u.val), err)
			}
		}
	}
	if err := checkURL(o.Endpoint); err != nil {
		return fmt.Errorf("--endpoint %s: %v", redact.URI(o.Endpoint), err)
	}
	if o.endpointIsPublic() {
		return fmt.Errorf("--endpoint %s points at the public port %d; the control API listens on %s",
			redact.URI(o.Endpoint), o.BindPort, net.JoinHostPort(o.ControlBindIP, strconv.Itoa(o.ControlBindPort)))
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

// endpointIsPublic reports whether the endpoint reaches this process's public listener.
func (o *Options) endpointIsPublic() bool {
	u, _ := url.Parse(o.Endpoint)
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if port != strconv.Itoa(o.BindPort) {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	bind := net.ParseIP(o.BindIP)
	switch {
	case ip == nil: // a name we cannot judge: only the port matches; assume a proxy in between
		return false
	case bind.IsUnspecified():
		return ip.IsLoopback() || ip.IsUnspecified() || isLocal(ip)
	default:
		return ip.Equal(bind) || (ip.IsLoopback() && bind.IsLoopback())
	}
}

func isLocal(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

func sameHost(a, b string) bool {
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	return ia == nil || ib == nil || ia.Equal(ib) || ia.IsUnspecified() || ib.IsUnspecified()
}

// endpointHost is the host part of the default endpoint: a wildcard bind is reached on loopback.
func endpointHost(ip string) string {
	if p := net.ParseIP(ip); p != nil && p.IsUnspecified() {
		if p.To4() != nil {
			return "127.0.0.1"
		}
		return "::1"
	}
	return ip
}

// ParseLevel maps the Python SocketDock's level names (and Go's short ones) to zerolog's.
func ParseLevel(s string) (zerolog.Level, error) {
	switch strings.ToUpper(s) {
	case "DEBUG":
		return zerolog.DebugLevel, nil
	case "INFO":
		return zerolog.InfoLevel, nil
	case "WARNING", "WARN":
		return zerolog.WarnLevel, nil
	case "ERROR":
		return zerolog.ErrorLevel, nil
	case "CRITICAL", "FATAL":
		return zerolog.FatalLevel, nil
	}
	return zerolog.NoLevel, fmt.Errorf("--log-level %q is not DEBUG, INFO, WARNING, ERROR or CRITICAL", s)
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "Usage: socketdock [options]\n\nSocketDock relays WebSocket clients to an HTTP backend.\nEvery option can also be set with the environment variable shown; the command line wins.\n\nOptions:\n")
	fs.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  --%s\n        %s\n        default: %s   env: %s\n", f.Name, f.Usage, def, EnvName(f.Name))
	})
}

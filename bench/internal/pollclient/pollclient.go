// Package pollclient is a minimal HTTP/1.1 keep-alive client for SocketDock's long-poll
// transport (CONTRACT §8): one TCP connection, one request at a time, Content-Length
// bodies only (what the relay sends). It is for load generation: no redirects, no TLS,
// no chunked bodies, no pooling; what a browser holds per poll session is one such
// connection.
package pollclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// Options configure Dial.
type Options struct {
	LocalIP net.IP        // source address (nil: the kernel's choice)
	Timeout time.Duration // dial timeout (default 10 s)
	// ReadBufferSize sizes the response reader (default 4096).
	ReadBufferSize int
	// Prefix is the transport's path prefix (default "/poll").
	Prefix string
}

// Conn is one keep-alive connection to the relay's public port.
type Conn struct {
	nc     net.Conn
	br     *bufio.Reader
	host   string
	prefix string
	req    []byte // request under construction, reused
	body   []byte // last response body, reused
}

// Message is one entry of a poll answer.
type Message struct {
	Seq  int64  `json:"seq"`
	Type string `json:"type"`
	Data string `json:"data"`
	Code int    `json:"code"`
}

type answer struct {
	OK       bool      `json:"ok"`
	Socket   string    `json:"socket"`
	Error    string    `json:"error"`
	Messages []Message `json:"messages"`
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// Dial connects to addr (host:port).
func Dial(ctx context.Context, addr string, o Options) (*Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = 4096
	}
	if o.Prefix == "" {
		o.Prefix = "/poll"
	}
	d := net.Dialer{Timeout: o.Timeout, Control: bindNoPort}
	if o.LocalIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: o.LocalIP}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Conn{nc: nc, br: bufio.NewReaderSize(nc, o.ReadBufferSize), host: addr, prefix: o.Prefix}, nil
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT: a bound source address then serves several
// destinations, the port being picked per 4-tuple at connect.
func bindNoPort(network, address string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, 24 /* IP_BIND_ADDRESS_NO_PORT */, 1)
	})
}

// NetConn is the underlying connection (for deadlines).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Abort closes the connection at once.
func (c *Conn) Abort() error { return c.nc.Close() }

// Create opens a session and returns its id.
func (c *Conn) Create() (string, error) {
	var a answer
	if err := c.do(c.prefix+"/create", &a, 200); err != nil {
		return "", err
	}
	if !a.OK || a.Socket == "" {
		return "", fmt.Errorf("create: %q", c.body)
	}
	return a.Socket, nil
}

// SendText sends one text message (d in the query string, URL-escaped).
func (c *Conn) SendText(session string, data []byte) error {
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, c.prefix...)
	c.req = append(c.req, "/s/"...)
	c.req = append(c.req, session...)
	c.req = append(c.req, "?d="...)
	c.req = append(c.req, url.QueryEscape(string(data))...)
	return c.roundTrip(nil, 201)
}

// Poll asks for messages, holding at most ttl; ack < 0 sends no ack. The messages slice
// is reused from into.
func (c *Conn) Poll(session string, ttl time.Duration, ack int64, into []Message) ([]Message, error) {
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, c.prefix...)
	c.req = append(c.req, "/j/"...)
	c.req = append(c.req, session...)
	c.req = append(c.req, "?ttl="...)
	c.req = strconv.AppendInt(c.req, ttl.Milliseconds(), 10)
	if ack >= 0 {
		c.req = append(c.req, "&ack="...)
		c.req = strconv.AppendInt(c.req, ack, 10)
	}
	a := answer{Messages: into[:0]}
	if err := c.roundTrip(&a, 200); err != nil {
		return nil, err
	}
	if !a.OK {
		return nil, fmt.Errorf("poll: %q", c.body)
	}
	return a.Messages, nil
}

// WritePoll writes a poll request without reading its answer (for holders that read in a
// loop with ReadAnswer).
func (c *Conn) WritePoll(session string, ttl time.Duration) error {
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, c.prefix...)
	c.req = append(c.req, "/j/"...)
	c.req = append(c.req, session...)
	c.req = append(c.req, "?ttl="...)
	c.req = strconv.AppendInt(c.req, ttl.Milliseconds(), 10)
	return c.writeRequest()
}

// ReadAnswer reads one response and returns its status (the body is discarded).
func (c *Conn) ReadAnswer() (int, error) {
	st, err := c.readResponse()
	return st, err
}

func (c *Conn) do(path string, a *answer, want int) error {
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, path...)
	return c.roundTrip(a, want)
}

func (c *Conn) roundTrip(a *answer, want int) error {
	if err := c.writeRequest(); err != nil {
		return err
	}
	st, err := c.readResponse()
	if err != nil {
		return err
	}
	if st != want {
		return &StatusError{Status: st, Body: string(c.body)}
	}
	if a != nil {
		if err := json.Unmarshal(c.body, a); err != nil {
			return fmt.Errorf("bad JSON answer %q: %w", c.body, err)
		}
	}
	return nil
}

func (c *Conn) writeRequest() error {
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.host...)
	c.req = append(c.req, "\r\n\r\n"...)
	_, err := c.nc.Write(c.req)
	return err
}

var errMalformed = errors.New("malformed HTTP response")

// readResponse reads a status line, headers and a Content-Length body into c.body.
func (c *Conn) readResponse() (int, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	length := -1
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, fmt.Errorf("%w: header %q", errMalformed, h)
		}
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil || length < 0 {
				return 0, fmt.Errorf("%w: content-length %q", errMalformed, value)
			}
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			return 0, fmt.Errorf("%w: transfer-encoding not supported", errMalformed)
		}
	}
	if length < 0 {
		return 0, fmt.Errorf("%w: no content-length", errMalformed)
	}
	if cap(c.body) < length {
		c.body = make([]byte, length)
	}
	c.body = c.body[:length]
	if _, err := io.ReadFull(c.br, c.body); err != nil {
		return 0, err
	}
	return status, nil
}

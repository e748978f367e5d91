package pollclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// HTTPClient is the same API over net/http (a shared Transport with keep-alive), kept to
// compare the client CPU the two cost; Conn is the cheaper one (docs/BENCHMARKS.md).
type HTTPClient struct {
	c    *http.Client
	base string
}

// NewHTTPClient returns a client for addr holding up to conns keep-alive connections.
func NewHTTPClient(addr, prefix string, conns int, timeout time.Duration) *HTTPClient {
	if prefix == "" {
		prefix = "/poll"
	}
	d := &net.Dialer{Timeout: timeout}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &HTTPClient{c: &http.Client{Transport: tr}, base: "http://" + addr + prefix}
}

// Close drops the idle connections.
func (h *HTTPClient) Close() { h.c.CloseIdleConnections() }

func (h *HTTPClient) get(ctx context.Context, u string, want int, a *answer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return &StatusError{Status: resp.StatusCode, Body: string(body)}
	}
	if a != nil {
		if err := json.Unmarshal(body, a); err != nil {
			return fmt.Errorf("bad JSON answer %q: %w", body, err)
		}
	}
	return nil
}

// Create opens a session.
func (h *HTTPClient) Create(ctx context.Context) (string, error) {
	var a answer
	if err := h.get(ctx, h.base+"/create", 200, &a); err != nil {
		return "", err
	}
	if !a.OK || a.Socket == "" {
		return "", fmt.Errorf("create: not ok")
	}
	return a.Socket, nil
}

// SendText sends one text message.
func (h *HTTPClient) SendText(ctx context.Context, session string, data []byte) error {
	return h.get(ctx, h.base+"/s/"+session+"?d="+url.QueryEscape(string(data)), 201, nil)
}

// Poll asks for messages, holding at most ttl; ack < 0 sends no ack.
func (h *HTTPClient) Poll(ctx context.Context, session string, ttl time.Duration, ack int64, into []Message) ([]Message, error) {
	u := h.base + "/j/" + session + "?ttl=" + strconv.FormatInt(ttl.Milliseconds(), 10)
	if ack >= 0 {
		u += "&ack=" + strconv.FormatInt(ack, 10)
	}
	a := answer{Messages: into[:0]}
	if err := h.get(ctx, u, 200, &a); err != nil {
		return nil, err
	}
	if !a.OK {
		return nil, fmt.Errorf("poll: not ok")
	}
	return a.Messages, nil
}

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUpstreamOptions(t *testing.T) {
	env := map[string]string{"SOCKETDOCK_UPSTREAM_URL": "ws://127.0.0.1:9000/chat", "SOCKETDOCK_UPSTREAM_ERRORS": "message",
		"SOCKETDOCK_UPSTREAM_ALLOW": "ws://a.example/, wss://b.example/", "SOCKETDOCK_UPSTREAM_PASS_PATH": "true"}
	o, err := parseOpts(t, env, "--backend", "ws", "--upstream-dial-timeout", "3s")
	if err != nil {
		t.Fatal(err)
	}
	if o.UpstreamURL != "ws://127.0.0.1:9000/chat" || o.UpstreamErrors != "message" || !o.UpstreamPassPath ||
		o.UpstreamDialTimeout != 3*time.Second || len(SplitList(o.UpstreamAllow)) != 2 || o.UpstreamPingInterval != 0 {
		t.Fatalf("%+v", o.UpstreamOptions)
	}
	o, _ = parseOpts(t, nil)
	if o.UpstreamDialTimeout != 10*time.Second || o.UpstreamErrors != "close" {
		t.Fatalf("defaults: %+v", o.UpstreamOptions)
	}
}

func TestUpstreamOptionsRefused(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--backend", "ws"}, "--backend ws needs --upstream-url"},
		{[]string{"--backend", "ws", "--upstream-url", "http://x/"}, "--upstream-url"},
		{[]string{"--backend", "ws", "--upstream-url", "ws:///path"}, "no host"},
		{[]string{"--backend", "ws", "--upstream-url", "ws://h/#frag"}, "fragment"},
		{[]string{"--backend", "ws", "--upstream-url", "ws://h/", "--upstream-errors", "loud"}, "--upstream-errors"},
		{[]string{"--backend", "ws", "--upstream-url", "ws://h/", "--upstream-dial-timeout", "0s"}, "--upstream-dial-timeout"},
		{[]string{"--backend", "ws", "--upstream-url", "ws://h/", "--upstream-allow", "http://x/"}, "--upstream-allow"},
		{[]string{"--backend", "ws", "--upstream-url", "ws://h/", "--upstream-ca-file", ca}, "--upstream-ca-file"},
		{[]string{"--backend", "ws", "--upstream-url", "ws://h/", "--upstream-ca-file", ca + ".absent"}, "--upstream-ca-file"},
		{[]string{"--backend", "ws", "--upstream-url", "ws://h/", "--message-uri", "http://b/m"}, "--message-uri"},
		{[]string{"--backend", "ws", "--upstream-url", "ws://h/", "--subprotocols", "a"}, "--subprotocols"},
		{[]string{"--backend", "ws", "--upstream-url", "ws://h/", "--connect-mode", "authorize", "--connect-uri", "http://b/c"}, "--connect-mode"},
		{[]string{"--backend", "nats"}, "loopback, http or ws"},
	} {
		_, err := parseOpts(t, nil, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v (want one line naming %s)", c.args, err, c.want)
		}
	}
	// The audit trail: connect and disconnect URIs are allowed beside the upstream.
	if _, err := parseOpts(t, nil, "--backend", "ws", "--upstream-url", "wss://h:8443/x?y=1", "--connect-uri", "http://b/c"); err != nil {
		t.Fatal(err)
	}
}

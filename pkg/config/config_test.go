package config

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func parseOpts(t *testing.T, env map[string]string, args ...string) (Options, error) {
	t.Helper()
	return Parse(args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
}

func TestDefaultsDerived(t *testing.T) {
	o, err := parseOpts(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.BindIP != "127.0.0.1" || o.BindPort != 8765 || o.ControlBindIP != "127.0.0.1" || o.ControlBindPort != 8766 ||
		o.Endpoint != "http://127.0.0.1:8766" || o.Backend != "loopback" || o.MaxMessageSize != 4<<20 ||
		o.BackendTimeout != 30*time.Second || o.LogLevel != "INFO" || o.ConnectURI != "" || o.DisconnectURI != "" {
		t.Fatalf("defaults: %+v", o)
	}
	o, _ = parseOpts(t, nil, "--bindip", "0.0.0.0", "--bindport", "9000", "--control-insecure")
	if o.ControlBindIP != "0.0.0.0" || o.ControlBindPort != 9001 || o.Endpoint != "http://127.0.0.1:9001" {
		t.Fatalf("derived from 0.0.0.0:9000: %s %d %s", o.ControlBindIP, o.ControlBindPort, o.Endpoint)
	}
	o, _ = parseOpts(t, nil, "--bindip", "::1")
	if o.Endpoint != "http://[::1]:8766" {
		t.Fatalf("IPv6 endpoint %s", o.Endpoint)
	}
}

func TestEndpointTrailingSlashTolerated(t *testing.T) {
	o, err := parseOpts(t, nil, "--endpoint", "https://relay.example/sd/")
	if err != nil || o.Endpoint != "https://relay.example/sd" {
		t.Fatalf("%q %v", o.Endpoint, err)
	}
}

func TestEndpointAtPublicPortRefused(t *testing.T) {
	for _, ep := range []string{"http://127.0.0.1:8765", "http://localhost:8765/", "http://127.0.0.2:8765"} {
		if _, err := parseOpts(t, nil, "--endpoint", ep); err == nil || !strings.Contains(err.Error(), "127.0.0.1:8766") {
			t.Errorf("%s: %v", ep, err)
		}
	}
	// Through a proxy on another host the same port is fine.
	if _, err := parseOpts(t, nil, "--endpoint", "http://mediator.internal:8765"); err != nil {
		t.Errorf("named host: %v", err)
	}
}

func TestEnvironmentAndFlagPrecedence(t *testing.T) {
	env := map[string]string{"SOCKETDOCK_BINDPORT": "9100", "SOCKETDOCK_BACKEND": "http", "SOCKETDOCK_MESSAGE_URI": "http://b/m",
		"SOCKETDOCK_REPLY_IN_RESPONSE": "true", "SOCKETDOCK_PING_INTERVAL": "5s"}
	o, err := parseOpts(t, env, "--bindport", "9200")
	if err != nil {
		t.Fatal(err)
	}
	if o.BindPort != 9200 || o.Backend != "http" || o.MessageURI != "http://b/m" || !o.ReplyInResponse || o.PingInterval.String() != "5s" {
		t.Fatalf("%+v", o)
	}
}

func TestLogLevels(t *testing.T) {
	for in, want := range map[string]zerolog.Level{"DEBUG": zerolog.DebugLevel, "info": zerolog.InfoLevel, "Warning": zerolog.WarnLevel,
		"warn": zerolog.WarnLevel, "error": zerolog.ErrorLevel, "CRITICAL": zerolog.FatalLevel} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	_, err := Parse([]string{"--help"}, func(string) (string, bool) { return "", false }, &out)
	if !errors.Is(err, ErrHelp) || !strings.Contains(out.String(), "SOCKETDOCK_BINDPORT") {
		t.Fatalf("%v %q", err, out.String())
	}
}

package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parse(t *testing.T, env map[string]string, args ...string) (Options, error) {
	t.Helper()
	return Parse(args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
}

func TestSecurityOptions(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("  from-file\n"), 0o600)
	emptyFile := filepath.Join(dir, "empty")
	os.WriteFile(emptyFile, []byte("\n"), 0o600)
	http := []string{"--backend", "http", "--message-uri", "http://127.0.0.1:9/m"}

	o, err := parse(t, nil)
	if err != nil || o.ConnectMode != "notify" || o.BackendSecret != "" {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	o, err = parse(t, nil, "--backend-secret-file", secretFile)
	if err != nil || o.BackendSecret != "from-file" {
		t.Fatalf("secret file: %q %v", o.BackendSecret, err)
	}
	o, err = parse(t, map[string]string{"SOCKETDOCK_BACKEND_SECRET": "env", "SOCKETDOCK_CONTROL_TOKEN": "tok"})
	if err != nil || o.BackendSecret != "env" || o.ControlToken != "tok" {
		t.Fatalf("env: %q %q %v", o.BackendSecret, o.ControlToken, err)
	}
	o, err = parse(t, map[string]string{"SOCKETDOCK_CONNECT_MODE": "authorize"}, append(http, "--connect-uri", "http://127.0.0.1:9/c")...)
	if err != nil || o.ConnectMode != "authorize" {
		t.Fatalf("authorize: %v", err)
	}
	if got := SplitList(" a, ,b ,c,"); strings.Join(got, "|") != "a|b|c" {
		t.Fatalf("SplitList = %q", got)
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--backend-secret-file", emptyFile}, "--backend-secret-file"},
		{[]string{"--backend-secret-file", filepath.Join(dir, "none")}, "--backend-secret-file"},
		{[]string{"--connect-mode", "maybe"}, "--connect-mode"},
		{[]string{"--connect-mode", "authorize"}, "--connect-uri"},
		{append(http, "--connect-mode", "authorize"), "--connect-uri"},
		{[]string{"--allowed-origins", "example.com"}, "--allowed-origins"},
		{[]string{"--allowed-origins", "https://a.example/path"}, "--allowed-origins"},
		{[]string{"--forward-headers", "x-ok,bad header"}, "--forward-headers"},
		{[]string{"--subprotocols", "chat,v1/x"}, "--subprotocols"},
	}
	for _, tc := range bad {
		_, err := parse(t, nil, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line naming %s", tc.args, err, tc.want)
		}
	}
	for _, ok := range [][]string{
		{"--allowed-origins", "*"},
		{"--allowed-origins", "https://a.example, http://localhost:3000/"},
		{"--forward-headers", "User-Agent,x-tenant"},
		{"--subprotocols", "didcomm,v2.chat"},
	} {
		if _, err := parse(t, nil, ok...); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// A control listener beyond loopback needs a token, or --control-insecure to say the operator
// means it (issue 8: --bindip 0.0.0.0 used to carry the control API along with a warning).
func TestControlBeyondLoopbackNeedsToken(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("t0k\n"), 0o600)
	cases := []struct {
		env  map[string]string
		args []string
		ok   bool
	}{
		{nil, nil, true},
		{nil, []string{"--bindip", "0.0.0.0"}, false},
		{nil, []string{"--control-bindip", "0.0.0.0"}, false},
		{nil, []string{"--control-bindip", "::"}, false},
		{nil, []string{"--control-bindip", "10.0.0.5"}, false},
		{nil, []string{"--control-bindip", "192.0.2.7"}, false},
		{nil, []string{"--bindip", "0.0.0.0", "--control-token", "t"}, true},
		{nil, []string{"--bindip", "0.0.0.0", "--control-token-file", tokenFile}, true},
		{map[string]string{"SOCKETDOCK_CONTROL_TOKEN": "t"}, []string{"--bindip", "0.0.0.0"}, true},
		{nil, []string{"--bindip", "0.0.0.0", "--control-insecure"}, true},
		{map[string]string{"SOCKETDOCK_CONTROL_INSECURE": "true"}, []string{"--control-bindip", "::"}, true},
		{map[string]string{"SOCKETDOCK_CONTROL_INSECURE": "true"}, []string{"--control-bindip", "::", "--control-insecure=false"}, false},
		{nil, []string{"--bindip", "0.0.0.0", "--control-bindip", "127.0.0.1"}, true},
		{nil, []string{"--bindip", "0.0.0.0", "--control-bindip", "127.0.0.2"}, true},
		{nil, []string{"--bindip", "::", "--control-bindip", "::1"}, true},
	}
	for _, tc := range cases {
		_, err := parse(t, tc.env, tc.args...)
		if tc.ok && err != nil {
			t.Errorf("%v %v: %v", tc.env, tc.args, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "--control-token-file") || !strings.Contains(err.Error(), "--control-insecure") || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%v %v: %v; want one line naming --control-token-file and --control-insecure", tc.env, tc.args, err)
		}
	}
}

func TestMaxHeadersAndControlMaxConns(t *testing.T) {
	o, err := parse(t, nil)
	if err != nil || o.MaxHeaders != 100 || o.ControlMaxConns != 1024 {
		t.Fatalf("defaults: max-headers %d control-max-conns %d err %v", o.MaxHeaders, o.ControlMaxConns, err)
	}
	o, err = parse(t, map[string]string{"SOCKETDOCK_MAX_HEADERS": "50", "SOCKETDOCK_CONTROL_MAX_CONNS": "64"})
	if err != nil || o.MaxHeaders != 50 || o.ControlMaxConns != 64 {
		t.Fatalf("env: %d %d %v", o.MaxHeaders, o.ControlMaxConns, err)
	}
	for _, args := range [][]string{{"--max-headers", "7"}, {"--max-headers", "10001"}, {"--control-max-conns", "0"}} {
		if _, err := parse(t, nil, args...); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v", args, err)
		}
	}
}

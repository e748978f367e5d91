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

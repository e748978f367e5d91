// Package configs holds example deployment files; this test keeps them valid.
package configs

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socketdock/socketdock/pkg/config"
)

// socketdock.env parses with the relay's own parser (token and secret files stubbed).
func TestExampleEnvFileParses(t *testing.T) {
	f, err := os.Open("socketdock.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(k, config.EnvPrefix) {
			t.Fatalf("not a SOCKETDOCK_ setting: %q", line)
		}
		env[k] = v
	}
	dir := t.TempDir()
	for _, k := range []string{"SOCKETDOCK_CONTROL_TOKEN_FILE", "SOCKETDOCK_BACKEND_SECRET_FILE"} {
		stub := filepath.Join(dir, k)
		if err := os.WriteFile(stub, []byte("example-"+k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env[k] = stub
	}
	opts, err := config.Parse(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
	if err != nil {
		t.Fatalf("socketdock.env: %v", err)
	}
	if opts.Backend != "http" || opts.ControlToken == "" || opts.BackendSecret == "" {
		t.Fatalf("parsed %+v", opts)
	}
}

package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketdock/socketdock/pkg/config"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "socketdock-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "socketdock")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCLI runs the binary to completion with env added to a clean environment.
func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// CONTRACT §2: bad flags and values stop startup with status 2 and one line naming the flag.
func TestStartupErrorsAreOneLine(t *testing.T) {
	cases := []struct {
		env   []string
		args  []string
		names string
	}{
		{nil, []string{"--no-such-flag"}, "--no-such-flag"},
		{nil, []string{"--bindport", "eighty"}, "--bindport"},
		{nil, []string{"--bindport", "70000"}, "--bindport"},
		{nil, []string{"--bindip", "not-an-ip"}, "--bindip"},
		{nil, []string{"--backend", "carrier-pigeon"}, "--backend"},
		{nil, []string{"--backend", "http"}, "--message-uri"},
		{nil, []string{"--backend", "http", "--message-uri", "ftp://x/"}, "--message-uri"},
		{nil, []string{"--log-level", "LOUD"}, "--log-level"},
		{nil, []string{"--ping-interval", "5"}, "--ping-interval"},
		{nil, []string{"--reply-in-response=perhaps"}, "--reply-in-response"},
		{nil, []string{"--bindport"}, "--bindport"},
		{[]string{"SOCKETDOCK_BINDPORT=abc"}, nil, "SOCKETDOCK_BINDPORT"},
		{nil, []string{"--endpoint", "http://127.0.0.1:8765/"}, "127.0.0.1:8766"},
	}
	for _, tc := range cases {
		_, stderr, code := runCLI(t, tc.env, tc.args...)
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.names) {
			t.Errorf("%v %v: exit %d, stderr %q; want exit 2 and one line naming %s", tc.env, tc.args, code, stderr, tc.names)
		}
	}
}

// CONTRACT §2: --help lists every option with its default and variable; --version.
func TestHelpAndVersion(t *testing.T) {
	out, _, code := runCLI(t, nil, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, name := range []string{"bindip", "bindport", "endpoint", "backend", "message-uri", "connect-uri", "disconnect-uri", "log-level",
		"control-bindip", "control-bindport", "reply-in-response", "backend-timeout", "backend-retries", "max-message-size", "ping-interval", "ping-timeout"} {
		if !strings.Contains(out, "--"+name+"\n") || !strings.Contains(out, "env: "+config.EnvName(name)) {
			t.Errorf("--help lacks --%s or its variable", name)
		}
	}
	if !strings.Contains(out, "default: 8765") || !strings.Contains(out, "default: loopback") {
		t.Errorf("--help lacks defaults:\n%s", out)
	}
	out, _, code = runCLI(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(out, "socketdock ") {
		t.Fatalf("--version: exit %d %q", code, out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startCLI starts the binary and waits until /healthz answers on port.
func startCLI(t *testing.T, env []string, port int, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/healthz")
		if err == nil {
			resp.Body.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay did not come up on %d: %s", port, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CONTRACT §2: SOCKETDOCK_* variables set options; the command line wins; SIGTERM exits 0.
func TestEnvironmentAndPrecedence(t *testing.T) {
	envPort, flagPort := freePort(t), freePort(t)
	// Control ports of their own: bindport+1 may be taken (a client's TIME_WAIT blocks it).
	cmd := startCLI(t, []string{"SOCKETDOCK_BINDPORT=" + strconv.Itoa(envPort), "SOCKETDOCK_CONTROL_BINDPORT=" + strconv.Itoa(freePort(t)),
		"SOCKETDOCK_LOG_LEVEL=warning"}, envPort)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM exit: %v", err)
	}
	startCLI(t, []string{"SOCKETDOCK_BINDPORT=" + strconv.Itoa(envPort)}, flagPort, "--bindport", strconv.Itoa(flagPort),
		"--control-bindport", strconv.Itoa(freePort(t)), "--log-level", "debug")
	if resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(envPort) + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("the environment's port was used although --bindport was given")
	}
}

// The README's options table lists exactly the flags --help lists, with their defaults.
func TestReadmeListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	help, _, _ := runCLI(t, nil, "--help")
	lines := strings.Split(help, "\n")
	listed := 0
	for i, line := range lines {
		if !strings.HasPrefix(line, "  --") {
			continue
		}
		name := strings.TrimSpace(line)
		def, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(lines[i+2]), "default: "), "   env: ")
		row := "| `" + name + "` | "
		if def != `""` {
			row += "`" + def + "` |"
		}
		if !strings.Contains(string(readme), row) {
			t.Errorf("README lacks the row %q", row)
		}
		listed++
	}
	rows := 0
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `--") && strings.Contains(line, "`SOCKETDOCK_") {
			rows++
		}
	}
	if rows != listed {
		t.Errorf("README lists %d flags, --help %d", rows, listed)
	}
}

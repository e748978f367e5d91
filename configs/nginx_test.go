package configs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nginx.conf parses: balanced blocks, every simple directive ended with ";", the routes and
// timeouts the cluster needs, no stickiness; and `nginx -t` accepts it where nginx exists.
func TestNginxConfig(t *testing.T) {
	b, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	depth, directives := 0, map[string]int{}
	for i, raw := range strings.Split(string(b), "\n") {
		line := strings.TrimSpace(raw)
		if c := strings.IndexByte(line, '#'); c >= 0 {
			line = strings.TrimSpace(line[:c])
		}
		if line == "" {
			continue
		}
		switch {
		case strings.HasSuffix(line, "{"):
			depth++
		case line == "}":
			depth--
		case !strings.HasSuffix(line, ";"):
			t.Errorf("line %d: %q does not end in ;", i+1, line)
		}
		if depth < 0 {
			t.Fatalf("line %d: unbalanced }", i+1)
		}
		directives[strings.Fields(line)[0]]++
	}
	if depth != 0 {
		t.Fatalf("%d blocks left open", depth)
	}
	for _, want := range []string{"upstream", "proxy_pass", "proxy_read_timeout", "proxy_buffering", "map", "proxy_next_upstream"} {
		if directives[want] == 0 {
			t.Errorf("nginx.conf has no %s", want)
		}
	}
	for _, sticky := range []string{"ip_hash", "hash", "sticky"} {
		if directives[sticky] != 0 {
			t.Errorf("nginx.conf uses %s; the cluster needs no stickiness", sticky)
		}
	}
	for _, route := range []string{"location = /ws", "location /poll/"} {
		if !strings.Contains(string(b), route) {
			t.Errorf("nginx.conf lacks %q", route)
		}
	}
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx is not installed: checked the structure only")
	}
	abs, _ := filepath.Abs("nginx.conf")
	dir := t.TempDir()
	out, err := exec.Command(nginx, "-t", "-c", abs, "-p", dir, "-e", filepath.Join(dir, "error.log")).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

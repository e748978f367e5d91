package configs

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// haproxy.cfg is valid for HAProxy itself (where it is installed), and points at the
// SocketDock routes and health check the relay serves.
func TestHAProxyConfig(t *testing.T) {
	b, err := os.ReadFile("haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, want := range []string{"option httpchk GET /readyz", "balance roundrobin", "timeout tunnel", "option redispatch"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	if regexp.MustCompile(`(?m)^\s*(stick|cookie|balance source)`).MatchString(cfg) {
		t.Error("haproxy.cfg makes sessions sticky; the cluster needs none")
	}
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed: checked the text only")
	}
	if out, err := exec.Command(haproxy, "-c", "-f", "haproxy.cfg").CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}

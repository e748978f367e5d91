package main

import (
	"strconv"
	"strings"
	"testing"
)

// --cluster's flags fail like every other flag; a NATS that cannot be reached, or whose
// max_payload is too small, stops the start with one line saying what to change.
func TestClusterStartupErrors(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		names string
	}{
		{[]string{"--cluster", "zookeeper"}, "--cluster"},
		{[]string{"--cluster", "nats", "--nats-url", "http://127.0.0.1:4222"}, "--nats-url"},
		{[]string{"--cluster", "nats", "--nats-prefix", "a b"}, "--nats-prefix"},
		{[]string{"--cluster", "nats", "--cluster-timeout", "forever"}, "--cluster-timeout"},
	} {
		_, stderr, code := runCLI(t, nil, tc.args...)
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.names) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line naming %s", tc.args, code, stderr, tc.names)
		}
	}
	port := freePort(t) // nothing listens there
	_, stderr, code := runCLI(t, nil, "--bindport", strconv.Itoa(freePort(t)), "--cluster", "nats", "--nats-url", "nats://127.0.0.1:"+strconv.Itoa(port))
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "--nats-url") || !strings.Contains(lines[0], "cannot connect") {
		t.Errorf("unreachable NATS: exit %d, stderr %q; want exit 1 and one line naming --nats-url", code, stderr)
	}
}

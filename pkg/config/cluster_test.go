package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestClusterOptions(t *testing.T) {
	o, err := parse(t, nil)
	if err != nil || o.Clustered() || o.Cluster != "none" || o.NATSPrefix != "socketdock" || o.ClusterTimeout != 2*time.Second {
		t.Fatalf("defaults: %+v %v", o.ClusterOptions, err)
	}
	o, err = parse(t, map[string]string{"SOCKETDOCK_CLUSTER": "nats", "SOCKETDOCK_NATS_URL": "nats://10.0.0.1:4222, tls://n2:4443,n3:4222"},
		"--cluster-timeout", "500ms", "--nats-prefix", "prod.eu-1")
	if err != nil || !o.Clustered() || o.ClusterTimeout != 500*time.Millisecond || o.NATSPrefix != "prod.eu-1" {
		t.Fatalf("env and flags: %+v %v", o.ClusterOptions, err)
	}
	if got := strings.Join(o.NATSURLs(), "|"); got != "nats://10.0.0.1:4222|tls://n2:4443|n3:4222" {
		t.Fatalf("urls %q", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster", "redis"}, "--cluster"},
		{[]string{"--cluster", "nats", "--nats-url", ""}, "--nats-url"},
		{[]string{"--cluster", "nats", "--nats-url", "http://x:4222"}, "--nats-url"},
		{[]string{"--cluster", "nats", "--nats-prefix", "a.*"}, "--nats-prefix"},
		{[]string{"--cluster", "nats", "--nats-prefix", "a..b"}, "--nats-prefix"},
		{[]string{"--cluster", "nats", "--cluster-timeout", "0s"}, "--cluster-timeout"},
		{[]string{"--cluster", "nats", "--nats-creds", filepath.Join(t.TempDir(), "none.creds")}, "--nats-creds"},
	} {
		_, err := parse(t, nil, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v; want one line naming %s", tc.args, err, tc.want)
		}
	}
	// Without --cluster the NATS flags are not judged: nothing changes.
	if _, err := parse(t, nil, "--nats-prefix", "a.*"); err != nil {
		t.Fatalf("--nats-prefix without --cluster: %v", err)
	}
}

package configs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/socketdock/socketdock/pkg/config"
)

// kubernetes.yaml parses as YAML, its container's flags parse as the relay's, and the drain
// fits: the grace period covers preStop plus --drain-timeout, readiness asks /readyz.
func TestKubernetesManifests(t *testing.T) {
	b, err := os.ReadFile("kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		kind, _ := doc["kind"].(string)
		name, _ := dig(doc, "metadata", "name").(string)
		kinds[kind+"/"+name] = doc
	}
	for _, want := range []string{"Deployment/socketdock", "Service/socketdock", "Service/socketdock-control", "PodDisruptionBudget/socketdock"} {
		if kinds[want] == nil {
			t.Fatalf("no %s", want)
		}
	}
	pod := dig(kinds["Deployment/socketdock"], "spec", "template", "spec").(map[string]any)
	container := pod["containers"].([]any)[0].(map[string]any)
	var args []string
	for _, a := range container["args"].([]any) {
		args = append(args, a.(string))
	}
	stub := filepath.Join(t.TempDir(), "control-token")
	_ = os.WriteFile(stub, []byte("token\n"), 0o600)
	for i, a := range args {
		if strings.HasPrefix(a, "--control-token-file=") {
			args[i] = "--control-token-file=" + stub
		}
	}
	opts, err := config.Parse(args, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatalf("container args: %v", err)
	}
	if !opts.Clustered() {
		t.Error("the Deployment does not join a cluster")
	}
	grace := time.Duration(pod["terminationGracePeriodSeconds"].(int)) * time.Second
	preStop := time.Duration(dig(container, "lifecycle", "preStop", "sleep", "seconds").(int)) * time.Second
	if grace <= preStop+opts.DrainTimeout {
		t.Errorf("terminationGracePeriodSeconds %v does not cover preStop %v plus --drain-timeout %v", grace, preStop, opts.DrainTimeout)
	}
	if p := dig(container, "readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("readiness probe on %v, want /readyz", p)
	}
	if dig(container, "resources", "requests", "memory") == nil || dig(container, "resources", "limits", "memory") == nil {
		t.Error("no memory request or limit")
	}
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

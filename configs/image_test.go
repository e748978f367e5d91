package configs

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// make image builds the Dockerfile with podman; the image runs /socketdock as a non-root
// user and exposes both ports, and the binary copied out of it runs (podman run itself is
// refused by this sandbox). Skipped, saying so, where podman is missing.
func TestImage(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed (Debian package podman): the image is not built here")
	}
	if testing.Short() {
		t.Skip("builds a container image")
	}
	const tag = "socketdock:imagetest"
	build := exec.Command("make", "image", "IMAGE="+tag)
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	out, err := exec.Command(podman, "image", "inspect", tag).Output()
	if err != nil {
		t.Fatalf("podman image inspect: %v", err)
	}
	var images []struct {
		Config struct {
			Entrypoint   []string
			User         string
			ExposedPorts map[string]any
		}
	}
	if err := json.Unmarshal(out, &images); err != nil || len(images) != 1 {
		t.Fatalf("inspect: %v %s", err, out)
	}
	cfg := images[0].Config
	if strings.Join(cfg.Entrypoint, " ") != "/socketdock" || cfg.User == "" || strings.HasPrefix(cfg.User, "0") || strings.HasPrefix(cfg.User, "root") {
		t.Fatalf("entrypoint %v user %q", cfg.Entrypoint, cfg.User)
	}
	for _, port := range []string{"8765/tcp", "8766/tcp"} {
		if _, ok := cfg.ExposedPorts[port]; !ok {
			t.Errorf("port %s not exposed (%v)", port, cfg.ExposedPorts)
		}
	}
	// The binary inside, copied out and run here.
	dir := t.TempDir()
	ctr, err := exec.Command(podman, "create", tag).Output()
	if err != nil {
		t.Fatalf("podman create: %v", err)
	}
	id := strings.TrimSpace(string(ctr))
	defer func() { _ = exec.Command(podman, "rm", id).Run() }()
	bin := filepath.Join(dir, "socketdock")
	if out, err := exec.Command(podman, "cp", id+":/socketdock", bin).CombinedOutput(); err != nil {
		t.Fatalf("podman cp: %v %s", err, out)
	}
	if out, err := exec.Command(bin, "--version").Output(); err != nil || !strings.HasPrefix(string(out), "socketdock ") {
		t.Fatalf("--version: %v %q", err, out)
	}
	cmd := exec.Command(bin, "--bindip", "127.0.0.1", "--bindport", "18865")
	cmd.Env = []string{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:18865/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("/healthz: %d", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = os.Remove(filepath.Join("..", "bin", "socketdock-static"))
}

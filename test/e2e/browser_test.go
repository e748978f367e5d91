package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// A real browser as the client: headless Chromium loads a page that opens a WebSocket to the
// relay, sends text and binary, and reports what came back. This is where a browser matters:
// it sends its own Origin header, which --allowed-origins checks, and it is strict about the
// handshake (Sec-WebSocket-Accept, no masking from the server, valid close frames).
func TestBrowserClient(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (Debian package chromium; .ci/run installs it)")
	}
	reports := make(chan string, 4)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/report" {
			b, _ := io.ReadAll(r.Body)
			reports <- string(b)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, browserPage, r.URL.Query().Get("ws"))
	}))
	defer page.Close()

	allowed := startRelay(t, "--allowed-origins", page.URL)
	refused := startRelay(t, "--allowed-origins", "https://elsewhere.example")
	for _, tc := range []struct {
		name, wsURL, want string
	}{
		{"allowed origin", allowed.WSURL, "text:from the browser ✓|binary:0,255,128,7|close:1000"},
		{"refused origin", refused.WSURL, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
				"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--user-data-dir="+t.TempDir(), page.URL+"/?ws="+tc.wsURL)
			// Its own process group, killed whole: Chromium's helper processes would otherwise
			// keep writing into the profile directory while the test removes it.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }()
			select {
			case got := <-reports:
				if got != tc.want {
					t.Fatalf("browser reported %q, want %q", got, tc.want)
				}
			case <-ctx.Done():
				t.Fatal("the browser reported nothing within 60s")
			}
		})
	}
}

// browserPage: text echo, binary echo (ArrayBuffer), then a normal close; any failure to
// open reports "refused". %s is the relay's ws:// URL.
const browserPage = `<!doctype html><meta charset="utf-8"><title>socketdock browser test</title>
<script>
const report = (s) => fetch("/report", {method: "POST", body: s});
const ws = new WebSocket(%q);
ws.binaryType = "arraybuffer";
const got = [];
let opened = false;
ws.onopen = () => { opened = true; ws.send("from the browser ✓"); };
ws.onmessage = (e) => {
  if (typeof e.data === "string") {
    got.push("text:" + e.data);
    ws.send(new Uint8Array([0, 255, 128, 7]));
  } else {
    got.push("binary:" + Array.from(new Uint8Array(e.data)).join(","));
    ws.close(1000, "done");
  }
};
ws.onclose = (e) => { if (!opened) { report("refused"); return; } got.push("close:" + e.code); report(got.join("|")); };
</script>`

package relay

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/config"
)

// The startup warning of docs/SECURITY.md: a control listener beyond loopback without a token
// (which config.Parse refuses unless --control-insecure says so).
// Checked without binding (the tests use loopback addresses only).
func TestWarnsOfOpenControlListener(t *testing.T) {
	cases := []struct {
		args []string
		warn bool
	}{
		{[]string{"--control-bindip", "0.0.0.0", "--control-insecure"}, true},
		{[]string{"--bindip", "0.0.0.0", "--control-bindip", "::", "--control-insecure"}, true},
		{[]string{"--control-bindip", "0.0.0.0", "--control-token", "t"}, false},
		{[]string{"--control-bindip", "127.0.0.1"}, false},
		{[]string{"--control-bindip", "::1"}, false},
	}
	for _, tc := range cases {
		opts, err := config.Parse(tc.args, func(string) (string, bool) { return "", false }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		r, err := New(opts, zerolog.New(&buf))
		if err != nil {
			t.Fatal(err)
		}
		r.warnOpenControl()
		got := strings.Contains(buf.String(), `"level":"warn"`) && strings.Contains(buf.String(), "--control-token")
		if got != tc.warn {
			t.Errorf("%q: warning %v, want %v (log %q)", tc.args, got, tc.warn, buf.String())
		}
	}
}

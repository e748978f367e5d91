package configs

import (
	"os"
	"strings"
	"testing"
)

// Every setting in sysctl-socketdock.conf has a reason above it and names a key this kernel
// knows (where /proc/sys can be read).
func TestSysctlFile(t *testing.T) {
	b, err := os.ReadFile("sysctl-socketdock.conf")
	if err != nil {
		t.Fatal(err)
	}
	commented := false
	settings := 0
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			commented = false
		case strings.HasPrefix(line, "#"):
			commented = true
		default:
			key, value, ok := strings.Cut(line, "=")
			key, value = strings.TrimSpace(key), strings.TrimSpace(value)
			if !ok || key == "" || value == "" {
				t.Fatalf("line %d: %q is not key = value", i+1, line)
			}
			if !commented {
				t.Errorf("line %d: %s has no reason above it", i+1, key)
			}
			if _, err := os.Stat("/proc/sys/" + strings.ReplaceAll(key, ".", "/")); os.IsNotExist(err) {
				if _, err := os.Stat("/proc/sys/net"); err == nil {
					t.Errorf("line %d: %s is not a sysctl on this kernel", i+1, key)
				}
			}
			settings++
		}
	}
	if settings < 8 {
		t.Fatalf("only %d settings", settings)
	}
}

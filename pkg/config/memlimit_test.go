package config

import (
	"strings"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MemoryLimit
	}{
		{"", MemoryLimit{}},
		{"off", MemoryLimit{Set: true, Off: true}},
		{"OFF", MemoryLimit{Set: true, Off: true}},
		{"67108864", MemoryLimit{Set: true, Bytes: 64 << 20}},
		{"65536K", MemoryLimit{Set: true, Bytes: 64 << 20}},
		{"64M", MemoryLimit{Set: true, Bytes: 64 << 20}},
		{"64MiB", MemoryLimit{Set: true, Bytes: 64 << 20}},
		{"64m", MemoryLimit{Set: true, Bytes: 64 << 20}},
		{"2G", MemoryLimit{Set: true, Bytes: 2 << 30}},
		{"2GiB", MemoryLimit{Set: true, Bytes: 2 << 30}},
		{"1T", MemoryLimit{Set: true, Bytes: 1 << 40}},
		{"80%", MemoryLimit{Set: true, Percent: 80}},
		{"12.5%", MemoryLimit{Set: true, Percent: 12.5}},
		{"100%", MemoryLimit{Set: true, Percent: 100}},
	} {
		got, err := ParseMemoryLimit(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseMemoryLimit(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"64MB", "64 M", "-1", "1M", "16777215", "0", "0%", "101%", "x%", "lots", "9999999999T", "1.5G"} {
		if got, err := ParseMemoryLimit(in); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
			t.Errorf("ParseMemoryLimit(%q) = %+v, %v; want an error naming --memory-limit", in, got, err)
		}
	}
}

func TestMemoryLimitFlagAndEnv(t *testing.T) {
	o, err := parseOpts(t, map[string]string{"SOCKETDOCK_MEMORY_LIMIT": "256M"})
	if err != nil || o.MemoryLimit != "256M" {
		t.Fatalf("env: %q %v", o.MemoryLimit, err)
	}
	o, err = parseOpts(t, map[string]string{"SOCKETDOCK_MEMORY_LIMIT": "256M"}, "--memory-limit", "75%")
	if err != nil || o.MemoryLimit != "75%" {
		t.Fatalf("flag over env: %q %v", o.MemoryLimit, err)
	}
	if _, err = parseOpts(t, nil, "--memory-limit", "8M"); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
		t.Fatalf("8M accepted: %v", err)
	}
	if o, _ = parseOpts(t, nil); o.MemoryLimit != "" {
		t.Fatalf("default %q; want unset (GOMEMLIMIT applies)", o.MemoryLimit)
	}
}

package config

import (
	"fmt"
	"strconv"
	"strings"
)

// MinMemoryLimit is the smallest --memory-limit accepted: the relay at rest already maps
// about 13 MiB, and a soft limit below its working set only makes the GC run without end.
const MinMemoryLimit = 16 << 20

// MemoryLimit is a parsed --memory-limit: unset (Go's own GOMEMLIMIT applies), off, a size
// in bytes, or a percentage of the memory available to the process.
type MemoryLimit struct {
	Set     bool
	Off     bool
	Bytes   int64
	Percent float64 // 0 < Percent <= 100 when the limit is a share
}

var sizeUnits = map[string]int64{"": 1, "B": 1, "K": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MIB": 1 << 20,
	"G": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TIB": 1 << 40}

// ParseMemoryLimit reads "", "off", "512M", "1GiB", "268435456" or "80%". K, M, G and T are
// powers of 1024, as GOMEMLIMIT's KiB, MiB, GiB and TiB (also accepted).
func ParseMemoryLimit(s string) (MemoryLimit, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return MemoryLimit{}, nil
	case strings.EqualFold(s, "off"):
		return MemoryLimit{Set: true, Off: true}, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || !(p > 0 && p <= 100) {
			return MemoryLimit{}, fmt.Errorf("--memory-limit %q: a percentage must be above 0%% and at most 100%%", s)
		}
		return MemoryLimit{Set: true, Percent: p}, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	unit, ok := sizeUnits[strings.ToUpper(s[i:])]
	if err != nil || !ok || n > (1<<62)/unit {
		return MemoryLimit{}, fmt.Errorf("--memory-limit %q: want bytes, a size such as 512M or 2GiB (K, M, G, T: powers of 1024), a percentage such as 80%%, or off", s)
	}
	if n*unit < MinMemoryLimit {
		return MemoryLimit{}, fmt.Errorf("--memory-limit %q is below the minimum of 16MiB", s)
	}
	return MemoryLimit{Set: true, Bytes: n * unit}, nil
}

package main

import (
	"fmt"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/socketdock/socketdock/pkg/config"
)

// applyMemoryLimit sets the Go runtime's soft memory limit from --memory-limit and returns
// the limit in effect (math.MaxInt64: none) and where it came from. With the flag unset,
// GOMEMLIMIT (which the runtime read at start) stays as it is.
func applyMemoryLimit(spec string, readFile func(string) ([]byte, error)) (int64, string, error) {
	ml, err := config.ParseMemoryLimit(spec)
	if err != nil {
		return 0, "", err
	}
	switch {
	case !ml.Set:
		limit := debug.SetMemoryLimit(-1)
		if _, ok := os.LookupEnv("GOMEMLIMIT"); ok && limit != math.MaxInt64 {
			return limit, "GOMEMLIMIT", nil
		}
		return limit, "none", nil
	case ml.Off:
		debug.SetMemoryLimit(math.MaxInt64)
		return math.MaxInt64, "--memory-limit off", nil
	case ml.Percent > 0:
		total, from := availableMemory(readFile)
		if total == 0 {
			return 0, "", fmt.Errorf("--memory-limit %s: cannot tell the memory available (no cgroup limit, no /proc/meminfo)", spec)
		}
		limit := int64(float64(total) * ml.Percent / 100)
		if limit < config.MinMemoryLimit {
			return 0, "", fmt.Errorf("--memory-limit %s of %s (%d bytes) is below the minimum of 16MiB", spec, from, total)
		}
		debug.SetMemoryLimit(limit)
		return limit, fmt.Sprintf("--memory-limit %s of %s (%d bytes)", spec, from, total), nil
	default:
		debug.SetMemoryLimit(ml.Bytes)
		return ml.Bytes, "--memory-limit " + spec, nil
	}
}

// noLimit is how cgroup v1 writes "unlimited" (a page-rounded MaxInt64); anything above it
// is no limit either.
const noLimit = 1 << 60

// availableMemory is the smallest cgroup memory limit of this process and its ancestors
// (cgroup v2 memory.max, or v1 memory.limit_in_bytes), else the machine's MemTotal.
func availableMemory(readFile func(string) ([]byte, error)) (int64, string) {
	var best int64
	var from string
	consider := func(file string) {
		b, err := readFile(file)
		if err != nil {
			return
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64) // "max" fails: no limit
		if err == nil && v > 0 && v < noLimit && (best == 0 || v < best) {
			best, from = v, "the cgroup limit "+file
		}
	}
	if cg, err := readFile("/proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(cg), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 {
				continue
			}
			var root, file string
			switch {
			case parts[0] == "0" && parts[1] == "":
				root, file = "/sys/fs/cgroup", "memory.max"
			case strings.Contains(","+parts[1]+",", ",memory,"):
				root, file = "/sys/fs/cgroup/memory", "memory.limit_in_bytes"
			default:
				continue
			}
			// In a container the cgroup namespace makes the process's own group the root;
			// elsewhere the path names it. Walk from there up to the root.
			for dir := path.Clean("/" + parts[2]); ; dir = path.Dir(dir) {
				consider(path.Join(root, dir, file))
				if dir == "/" {
					break
				}
			}
		}
	}
	if best > 0 {
		return best, from
	}
	if mi, err := readFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(mi), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err == nil && kib > 0 {
					return kib << 10, "MemTotal"
				}
			}
		}
	}
	return 0, ""
}

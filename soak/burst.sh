#!/usr/bin/env bash
# burst.sh: what the relay's memory does after a churn burst, and how fast it comes back.
# Starts refbackend and the relay (--backend http, connect and disconnect POSTs), runs
# `sdbench rate` for BURST (connect + upgrade + close loops), and samples the relay's VmRSS and
# Go heap every 5 s from the start until AFTER has passed since the burst ended. The relay's log
# goes to OUT.relay.log (OUT without .csv).
#
#   soak/burst.sh OUT.csv [relay flags...]      e.g. soak/burst.sh /tmp/b.csv --memory-limit 64M
#   env: BURST=60s WORKERS=64 AFTER=150 (seconds) PORT=19765 (the control port is PORT+1,
#   refbackend PORT+2); RELAY_BIN=path runs that relay binary instead of building ./cmd/socketdock
set -euo pipefail
out=$1; shift
BURST=${BURST:-60s} WORKERS=${WORKERS:-64} AFTER=${AFTER:-150} PORT=${PORT:-19765}
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; cp "$bin/relay.log" "${out%.csv}.relay.log" 2>/dev/null; rm -rf "$bin"' EXIT
cd "$(dirname "$0")/.."
if [ -n "${RELAY_BIN:-}" ]; then cp "$RELAY_BIN" "$bin/socketdock"; else go build -trimpath -o "$bin/socketdock" ./cmd/socketdock; fi
go build -o "$bin/sdbench" ./bench/cmd/sdbench
go build -o "$bin/refbackend" ./bench/cmd/refbackend
back=http://127.0.0.1:$((PORT + 2))
"$bin/refbackend" -addr 127.0.0.1:$((PORT + 2)) 2>/dev/null &
"$bin/socketdock" --bindport "$PORT" --backend http --message-uri $back/message --connect-uri $back/connect \
	--disconnect-uri $back/disconnect --log-level WARNING "$@" 2>"$bin/relay.log" &
relay=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:$((PORT + 1))/readyz >/dev/null && break; sleep 0.1; done
t0=$(date +%s.%N)
echo "seconds,phase,rss_kib,heap_live_kib,heap_inuse_kib,heap_idle_kib,heap_released_kib,next_gc_kib,go_sys_kib,goroutines,connections" >"$out"
sample() {
	local rss m
	rss=$(awk '/^VmRSS:/ {print $2}' /proc/$relay/status)
	m=$(curl -sf http://127.0.0.1:$((PORT + 1))/metrics | awk '
		$1=="go_gc_heap_live_bytes"{l=$2} $1=="go_memstats_heap_inuse_bytes"{u=$2} $1=="go_memstats_heap_idle_bytes"{i=$2}
		$1=="go_memstats_heap_released_bytes"{r=$2} $1=="go_memstats_next_gc_bytes"{n=$2} $1=="go_memstats_sys_bytes"{s=$2}
		$1=="go_goroutines"{g=$2} $1=="socketdock_connections_active"{c=$2}
		END{printf "%d,%d,%d,%d,%d,%d,%d,%d", l/1024, u/1024, i/1024, r/1024, n/1024, s/1024, g, c}')
	printf "%.0f,%s,%s,%s\n" "$(echo "$(date +%s.%N) - $t0" | bc)" "$1" "$rss" "$m" >>"$out"
}
kill -0 $relay 2>/dev/null || { cat "$bin/relay.log" >&2; exit 1; }
sample idle
"$bin/sdbench" rate -addr 127.0.0.1:"$PORT" -workers "$WORKERS" -duration "$BURST" -warmup 0s >"$bin/rate.out" 2>/dev/null &
rate=$!
while kill -0 $rate 2>/dev/null; do sample burst; sleep 5; done
grep RESULT "$bin/rate.out" | cut -c1-200 >&2 || true
end=$(date +%s)
while (($(date +%s) - end < AFTER)); do sample after; sleep 5; done

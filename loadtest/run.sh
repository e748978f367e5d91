#!/usr/bin/env bash
# Runs the k6 scripts against SocketDock processes this script starts on
# loopback ports, and stops them on exit, however it exits.
#   bash loadtest/run.sh [smoke|long]        (make loadtest runs smoke, about one minute)
# Environment: K6 (k6 binary), RELAY (socketdock binary), BENCH_BIN (refbackend),
# PORT_BASE (default 23765). Any variable of loadtest/lib/config.js passes through.
set -euo pipefail
profile="${1:-smoke}"
here="$(cd "$(dirname "$0")" && pwd)"
K6="${K6:-k6}"
RELAY="${RELAY:-bin/socketdock}"
BENCH_BIN="${BENCH_BIN:-bin/bench}"
base="${PORT_BASE:-23765}"
out="${LOADTEST_OUT:-$here/../bench/out/loadtest}"
mkdir -p "$out"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on 127.0.0.1:$1" >&2
  return 1
}

case "$profile" in
  smoke)
    hold_env=(-e VUS=10 -e SOCKETS_PER_VU=100 -e HOLD_SECONDS=10)
    echo_env=(-e VUS=10 -e SOCKETS_PER_VU=20 -e HOLD_SECONDS=8 -e DURATION=20s -e THINK_MS=100)
    http_env=(-e VUS=10 -e SOCKETS_PER_VU=20 -e HOLD_SECONDS=8 -e DURATION=20s -e THINK_MS=100)
    ;;
  long)
    # See loadtest/README.md: raise ulimit -n first; k6 itself holds one fd per socket.
    hold_env=(-e VUS=50 -e SOCKETS_PER_VU=300 -e HOLD_SECONDS=600 -e CONNECT_P95_MS=2000)
    echo_env=(-e VUS=50 -e SOCKETS_PER_VU=20 -e HOLD_SECONDS=60 -e DURATION=10m)
    http_env=(-e VUS=50 -e SOCKETS_PER_VU=20 -e HOLD_SECONDS=60 -e DURATION=10m -e THINK_MS=10)
    ;;
  *) echo "usage: $0 [smoke|long]" >&2; exit 2 ;;
esac

loop_port=$base
http_port=$((base + 10))
backend_port=$((base + 20))

"$RELAY" --bindip 127.0.0.1 --bindport "$loop_port" --backend loopback --log-level ERROR \
  >"$out/socketdock-loopback.log" 2>&1 &
pids+=($!)
"$BENCH_BIN/refbackend" -addr "127.0.0.1:$backend_port" -mode callback >"$out/refbackend.log" 2>&1 &
pids+=($!)
"$RELAY" --bindip 127.0.0.1 --bindport "$http_port" --backend http \
  --message-uri "http://127.0.0.1:$backend_port/message" --log-level ERROR \
  >"$out/socketdock-http.log" 2>&1 &
pids+=($!)
wait_port "$loop_port"; wait_port "$backend_port"; wait_port "$http_port"

status=0
run() {
  local name=$1 script=$2 url=$3; shift 3
  echo "== k6 $name ($profile) against $url"
  if ! "$K6" run --quiet --no-usage-report -e WS_URL="$url" "$@" \
      --summary-export "$out/$name-$profile.json" "$here/$script"; then
    echo "== $name: thresholds not met (or k6 failed)"
    status=1
  fi
}
run hold hold.js "ws://127.0.0.1:$loop_port/ws" "${hold_env[@]}"
run echo echo.js "ws://127.0.0.1:$loop_port/ws" "${echo_env[@]}"
run http_backend http_backend.js "ws://127.0.0.1:$http_port/ws" "${http_env[@]}"
exit $status

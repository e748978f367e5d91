#!/usr/bin/env bash
# `make cluster-demo`: a SocketDock cluster on this machine — a NATS server, three SocketDock
# instances joined over it (--cluster nats), the reference echo backend, and HAProxy in front
# (configs/haproxy.cfg, no stickiness). Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null || { echo "cluster-demo needs haproxy (apt-get install haproxy)" >&2; exit 1; }
BIN=${BIN:-bin}
mkdir -p "$BIN"
go build -o "$BIN/socketdock" ./cmd/socketdock
go build -o "$BIN/refbackend" ./bench/cmd/refbackend
go build -o "$BIN/nats-server" github.com/nats-io/nats-server/v2 # a Go module dependency

run=$(mktemp -d)
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_LOGS:-}" ] || rm -rf "$run"
}
trap stop INT TERM EXIT

# SocketDock's default 4 MiB messages need NATS's max_payload above its 1 MiB default.
printf 'listen: 127.0.0.1:4222\nmax_payload: 8388608\n' >"$run/nats.conf"
"$BIN/nats-server" -c "$run/nats.conf" >"$run/nats.log" 2>&1 & pids+=($!)
"$BIN/refbackend" -addr 127.0.0.1:9000 >"$run/refbackend.log" 2>&1 & pids+=($!)
sleep 0.5
for port in 8765 8775 8785; do
  "$BIN/socketdock" --bindport "$port" --control-bindport $((port + 1)) --log-format console --log-level warning \
    --cluster nats --nats-url nats://127.0.0.1:4222 \
    --backend http --message-uri http://127.0.0.1:9000/message --endpoint http://127.0.0.1:8081 \
    2>"$run/socketdock-$port.log" & pids+=($!)
done
for port in 8766 8776 8786; do
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
# HAProxy needs two descriptors per connection: fit its maxconn to this shell's fd limit.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=200000
export SD_MAXCONN=${SD_MAXCONN:-$(( hard / 2 - 64 < 100000 ? hard / 2 - 64 : 100000 ))}
haproxy -db -f configs/haproxy.cfg >"$run/haproxy.log" 2>&1 & pids+=($!)
sleep 1

cat <<TEXT
SocketDock cluster: NATS 127.0.0.1:4222, instances on 8765/8775/8785 (control +1),
reference echo backend on 9000 (its callbacks go through HAProxy's control frontend).

  WebSocket (any instance):  wscat -c ws://127.0.0.1:8080/ws      (messages come back echoed)
  Long-poll (no stickiness): curl -s http://127.0.0.1:8080/poll/create
                             curl -s 'http://127.0.0.1:8080/poll/s/<socket>?d=hello'
                             curl -s 'http://127.0.0.1:8080/poll/j/<socket>?ttl=5000'
  Control API (any instance): curl -s 'http://127.0.0.1:8081/status?scope=cluster'
                             curl -s -d hi -H 'Content-Type: text/plain' http://127.0.0.1:8081/socket/<id>/send
  HAProxy stats:             http://127.0.0.1:8082/stats
  Logs:                      $run

Try: kill -TERM one instance and watch its clients get 1001 and HAProxy take it out.
Ctrl-C stops the cluster.
TEXT
wait -n "${pids[@]}" || true
echo "a process of the demo exited; stopping (logs were in $run)" >&2

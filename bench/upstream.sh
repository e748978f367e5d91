#!/usr/bin/env bash
# Benchmarks of --backend ws (docs/BENCHMARKS.md, "WebSocket upstream"): the same echo
# upstream (refecho) reached directly, through SocketDock, and through nginx as a WebSocket
# reverse proxy; then idle memory per proxied pair. Loopback only, every run bounded.
#   bash bench/upstream.sh [runs] [pairs]     (defaults: 3 runs, 9000 idle pairs)
# Needs: go, and nginx on PATH for its rows (Debian package nginx; skipped when absent).
set -euo pipefail
runs=${1:-3}
pairs=${2:-9000}
conns=${CONNS:-1000}
size=${SIZE:-64}
dur=${DURATION:-8s}
out=${OUT:-bench/out/upstream}
mkdir -p "$out/bin"
ulimit -n 20000
go build -trimpath -o "$out/bin/" ./bench/cmd/sdbench ./bench/cmd/refecho ./bench/cmd/tlsecho ./cmd/socketdock
bin=$out/bin
up=${PORT_BASE:-24400} # below the ephemeral range (32768-60999 here)
# Each round moves to fresh ports: refecho does not set SO_REUSEADDR, and the last round's
# connections linger in TIME_WAIT on its port.
ports() { sd=$((up + 1)) ng=$((up + 2)) tup=$((up + 3)) tsd=$((up + 4)) ctl=$((up + 11)) tctl=$((up + 14)); }
ports

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# listening <port>: wait until something accepts on it (5 s at most).
listening() { for _ in $(seq 100); do (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; return 1; }

start_refecho() { "$bin/refecho" -addr 127.0.0.1:$up >"$out/refecho.log" 2>&1 & pids+=($!); listening $up; }
start_sd() {
	"$bin/socketdock" --bindport $sd --control-bindport $ctl --backend ws \
		--upstream-url ws://127.0.0.1:$up/ws --log-level ERROR >"$out/socketdock.log" 2>&1 & pids+=($!)
	sdpid=$!
	listening $sd
}
# wss:// upstream: tlsecho (gorilla behind Go's TLS) and a relay linked to it.
start_tls() {
	"$bin/tlsecho" -addr 127.0.0.1:$tup -ca "$out/tlsecho-ca.pem" >"$out/tlsecho.log" 2>&1 & pids+=($!)
	listening $tup
	"$bin/socketdock" --bindport $tsd --control-bindport $tctl --backend ws --upstream-url wss://127.0.0.1:$tup/ws \
		--upstream-ca-file "$out/tlsecho-ca.pem" --log-level ERROR >"$out/socketdock-tls.log" 2>&1 & pids+=($!)
	tsdpid=$!
	listening $tsd
}
start_nginx() {
	command -v nginx >/dev/null || return 1
	local d; d=$(realpath "$out")/nginx
	mkdir -p "$d"
	cat >"$d/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log error;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $d/body; proxy_temp_path $d/proxy; fastcgi_temp_path $d/fcgi;
  uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;
  server {
    listen 127.0.0.1:$ng;
    location / {
      proxy_pass http://127.0.0.1:$up;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 3600s;
    }
  }
}
EOF
	nginx -c "$d/nginx.conf" -p "$d" >"$d/stdout.log" 2>&1 & pids+=($!)
	listening $ng
	local master; master=$(pgrep -f "nginx -c $d/nginx.conf" | head -1)
	ngpids=$(pgrep -d, -P "$master" | sed "s/^/$master,/")
}
stop_all() { cleanup; pids=(); up=$((up + 20)); ports; sleep 0.5; }

# echo <label> <port> <pids>: one closed-loop run, printed as a row; the CPU time of the
# given processes per message is the figure that survives a busy machine best.
echo_row() {
	"$bin/sdbench" echo -addr 127.0.0.1:"$2" -conns "$conns" -size "$size" -duration "$dur" -warmup 2s -pid "$3" 2>/dev/null |
		sed -n 's/^RESULT //p' | python3 -c '
import json, sys
r = json.load(sys.stdin)
l = r["latency"]
print("| %s | %d | %.0f | %d | %d | %.1f | %d |" % (sys.argv[1], r["connected"], r["msgs_per_s"], l["p50_us"], l["p99_us"],
      r.get("target_cpu_us_per_msg", 0), r.get("errors", 0)))
' "$1"
}

echo "## echo, $conns connections x $size B, $dur measured, $runs runs (alternating)"
echo "| path | connected | msgs/s | p50 us | p99 us | CPU us/msg (that process) | errors |"
echo "|---|---|---|---|---|---|---|"
for run in $(seq "$runs"); do
	start_refecho
	echo_row "direct (refecho)" $up "${pids[-1]}"
	start_sd
	echo_row "SocketDock --backend ws" $sd "$sdpid"
	if start_nginx; then echo_row "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')" $ng "$ngpids"; fi
	stop_all
done
start_tls
echo_row "SocketDock --backend ws, wss:// upstream (tlsecho: gorilla, Go TLS)" $tsd "$tsdpid"
stop_all

# hold <label> <port> <pids>: RSS growth per idle connection of the given processes.
hold_row() {
	"$bin/sdbench" hold -addr 127.0.0.1:"$2" -conns "$pairs" -pid "$3" -settle 3s 2>/dev/null |
		sed -n 's/^RESULT //p' | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("| %s | %d | %.0f |" % (sys.argv[1], r["alive_at_end"], r["rss_per_conn_bytes"]))
' "$1"
}

echo
echo "## idle memory, $pairs connections, RSS growth of a fresh process per connection"
echo "| process | alive | bytes per connection |"
echo "|---|---|---|"
start_refecho
refpid=${pids[-1]}
hold_row "refecho (the upstream, direct clients)" $up "$refpid"
stop_all
start_refecho
start_sd
hold_row "SocketDock --backend ws (both hops of each pair)" $sd "$sdpid"
stop_all
start_refecho
if start_nginx; then hold_row "nginx, master and workers (both hops)" $ng "$ngpids"; fi
stop_all
start_tls
hold_row "SocketDock --backend ws, wss:// upstream (both hops, TLS on one)" $tsd "$tsdpid"
stop_all

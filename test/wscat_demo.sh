#!/usr/bin/env bash
# The README's 30-second demo, as a test: the built relay on its loopback backend, driven by
# wscat (npm). Usage: test/wscat_demo.sh path/to/socketdock
set -euo pipefail
bin=$(realpath "${1:-bin/socketdock}")
here=$(cd "$(dirname "$0")" && pwd)
wscat="$here/node/node_modules/.bin/wscat"
# Two ports the kernel says are free (bound together, so they differ).
read -r port cport < <(python3 -c 'import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
log=$(mktemp)
"$bin" --bindport "$port" --control-bindport "$cport" --log-format console 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
fail() { echo "wscat demo: $*"; echo "--- relay log"; cat "$log"; exit 1; }

for _ in $(seq 200); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || fail "relay did not come up"

# wscat prints what it receives only to a terminal, so give it one (script, from util-linux).
out=$(timeout 20 script -qec "$wscat -c ws://127.0.0.1:$port/ws -x 'hello, socketdock' -w 1" /dev/null 2>&1) || fail "wscat exited $?: $out"
grep -q 'hello, socketdock' <<<"$out" || fail "no echo in wscat output: $out"

# /status counts the connection wscat made.
status=$(curl -fs "http://127.0.0.1:$cport/status")
grep -q '"lifetime":1' <<<"$status" || fail "status after one connection: $status"

# SIGTERM drains and exits 0.
kill -TERM $pid
wait $pid || fail "relay exited $? on SIGTERM"
trap 'rm -f "$log"' EXIT
echo "wscat demo: ok (echo received, /status counted it, clean exit on SIGTERM)"

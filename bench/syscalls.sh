#!/usr/bin/env bash
# System calls per message on the HTTP backend path (docs/BENCHMARKS.md, "Where the HTTP
# path's time goes"): the raw yardsticks and SocketDock, each process counted by strace from
# its start, divided by the messages the client completed. Counts, not times: strace slows
# every process alike, and what is counted does not depend on the machine's other load
# (except the EAGAIN reads, which are a few per cent more when the reader is fast).
#   bash bench/syscalls.sh            (1,000 connections × 64 B, runs of 4 s and 12 s, about 90 s)
# Needs: strace (Debian package strace). Loopback only; every process stops by itself.
set -euo pipefail
conns=${CONNS:-1000}
size=${SIZE:-64}
out=${OUT:-bench/out/syscalls}
mkdir -p "$out/bin"
ulimit -n 20000
command -v strace >/dev/null || { echo "strace not found (apt-get install strace)" >&2; exit 1; }
go build -trimpath -o "$out/bin/" ./bench/cmd/sdbench ./bench/cmd/refbackend ./cmd/socketdock
bin=$out/bin
port=${PORT_BASE:-24600} # below the ephemeral range

pids=()
# Stopping a traced server: its own process is signalled, so that strace writes its summary.
cleanup() {
	for p in "${pids[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
listening() { for _ in $(seq 100); do (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; return 1; }

# traced <name> <cmd...>: runs cmd under strace -c -f, its counts in $out/<name>.strace.
traced() { local name=$1; shift; strace -f -c -o "$out/$name.strace" "$@" >"$out/$name.log" 2>&1 & pids+=($!); }

# calls <file>: "<syscall> <calls> <failed>" per line, from an strace -c summary.
calls() { awk '$NF ~ /^(read|write|writev|readv|recvfrom|sendto|sendmsg|recvmsg)$/ { print $NF, $4, ($5 ~ /^[0-9]+$/) ? $5 : 0 }' "$1"; }

# msgs <log>: the messages the client completed (its RESULT line; no warm-up).
msgs() { grep -o '"msgs":[0-9]*' "$1" | head -1 | cut -d: -f2; }

# once <path> <subject> <duration> <tag>: one run, every process under strace.
once() {
	local path=$1 subj=$2 d=$3 tag=$4 be=$port sd=$((port + 1)) ctl=$((port + 2))
	port=$((port + 10))
	traced "$tag-backend" "$bin/refbackend" -addr 127.0.0.1:$be -mode "$path"
	listening $be
	local uri=http://127.0.0.1:$be/message
	if [[ $subj == raw ]]; then
		strace -f -c -o "$out/$tag-client.strace" "$bin/sdbench" rawpath -message-uri "$uri" -path "$path" \
			-conns "$conns" -size "$size" -duration "$d" -warmup 0s >"$out/$tag-client.log" 2>&1
	else
		local extra=()
		[[ $path == response ]] && extra=(--reply-in-response)
		traced "$tag-relay" "$bin/socketdock" --bindip 127.0.0.1 --bindport $sd --control-bindport $ctl \
			--log-level ERROR --backend http --message-uri "$uri" "${extra[@]}"
		listening $sd
		strace -f -c -o "$out/$tag-client.strace" "$bin/sdbench" echo -addr 127.0.0.1:$sd \
			-conns "$conns" -size "$size" -duration "$d" -warmup 0s >"$out/$tag-client.log" 2>&1
	fi
	cleanup
	pids=()
}

# run <path: callback|response> <subject: raw|socketdock>: a short and a long run; the
# difference of their counts over the difference of their messages leaves out what setting
# up and closing the connections cost.
run() {
	local path=$1 subj=$2 short=$out/$2-$1-short long=$out/$2-$1-long
	once "$path" "$subj" "$short_dur" "$2-$1-short"
	once "$path" "$subj" "$long_dur" "$2-$1-long"
	local m=$(($(msgs "$long-client.log") - $(msgs "$short-client.log")))
	echo "$subj, $path path ($m messages between the two runs):"
	local procs=(client backend)
	[[ $subj == socketdock ]] && procs=(client relay backend)
	local sum=0
	for p in "${procs[@]}"; do
		join <(calls "$short-$p.strace" | sort) <(calls "$long-$p.strace" | sort) |
			awk -v m="$m" -v p="$p" '{ c = ($4 - $2) / m; f = ($5 - $3) / m; tot += c; fail += f
				s = s sprintf(" %s %.2f", $1, c); if (f > 0.005) s = s sprintf(" (EAGAIN %.2f)", f) }
				END { printf "  %-8s %.2f I/O calls per message:%s\n", p, tot, s }' | tee "$out/line"
		sum=$(awk -v a="$sum" '{ print a + $2 }' "$out/line")
	done
	printf "  all      %.2f I/O calls per message\n" "$sum"
	totals[$subj-$path]=$sum
}
declare -A totals

short_dur=${SHORT:-4s}
long_dur=${LONG:-12s}
run callback raw
run callback socketdock
run response raw
run response socketdock
# If the path is bound by system calls, throughput is inversely proportional to their count.
for p in callback response; do
	awk -v r="${totals[raw-$p]}" -v s="${totals[socketdock-$p]}" -v p="$p" \
		'BEGIN { printf "%s path: raw %.2f, SocketDock %.2f I/O calls per message; raw/SocketDock %.2f\n", p, r, s, r / s }'
done

#!/usr/bin/env bash
# Runs benchrun's scale scenario with the kernel settings it needs (taken from
# configs/sysctl-socketdock.conf), restores the previous values afterwards, and ends the
# run if MemAvailable falls under 2 GiB (sdbench itself stops connecting under 3 GiB and
# ends its clients under 2 GiB; this also takes the servers down).
#
#   sudo bench/scale.sh 250000 [benchrun flags...]   (after make build bench-tools)
set -euo pipefail
conns=${1:?usage: bench/scale.sh CONNECTIONS [benchrun flags...]}
shift
conf=${SCALE_SYSCTL_CONF:-configs/sysctl-socketdock.conf}
# Only what the run needs: ip_local_port_range stays (the run spreads source addresses
# instead), and the keepalive settings do not matter for it.
keys=(fs.file-max net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.core.netdev_max_backlog
	net.ipv4.tcp_mem net.ipv4.tcp_rmem net.ipv4.tcp_wmem)
saved=$(mktemp)
for k in "${keys[@]}"; do
	printf '%s=%s\n' "$k" "$(sysctl -n "$k" | tr '\t' ' ')" >>"$saved"
done
restore() {
	while IFS= read -r kv; do sysctl -qw "$kv" || true; done <"$saved"
	rm -f "$saved"
	echo "scale.sh: kernel settings restored" >&2
}
trap restore EXIT
for k in "${keys[@]}"; do
	v=$(sed -n "s/^$k *= *//p" "$conf")
	[ -n "$v" ] && sysctl -qw "$k=$v"
done
ulimit -n 20000
bin/bench/benchrun -profile full -only scale -scale-conns "$conns" -relay bin/socketdock -tools bin/bench "$@" &
run=$!
while kill -0 "$run" 2>/dev/null; do
	avail=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
	if [ "$avail" -lt $((2 * 1024 * 1024)) ]; then
		echo "scale.sh: MemAvailable ${avail} kB < 2 GiB: ending the run" >&2
		kill -TERM "$run" 2>/dev/null || true
		sleep 10
		kill -KILL "$run" 2>/dev/null || true
		break
	fi
	sleep 1
done
wait "$run"

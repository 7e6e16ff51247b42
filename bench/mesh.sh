#!/usr/bin/env bash
# TCP throughput across berth's VXLAN node mesh against the underlay it rides on, in one run
# (issue 12's "overlay vs underlay" ratio, for the mesh as it is today): a fabric namespace
# with a bridge and a real etcd, two host holders veth'd onto it, a berth daemon in each
# joined with --cluster-store. The daemons program berth-vx (FDB + neighbour entries per
# node); the bench adds one /32 per node on berth-vx and a route to the other's through the
# mesh, as an address block's route will be. iperf3 then runs over the underlay address and
# over the mesh address, ROUNDS times alternating; medians are reported with the ratio.
#
# Env: ROUNDS (default 3), SECS (default 5), BERTH (binary), OUT (default /tmp/berth-bench).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/berth-bench}; mkdir -p "$OUT"
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-5}
BERTH=${BERTH:-$HERE/../target/release/berth}; BERTH=$(readlink -f "$BERTH")
[ "$(id -u)" = 0 ] || { echo "mesh.sh must run as root" >&2; exit 1; }
for t in iperf3 etcd nsenter unshare; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install iperf3 etcd-server util-linux)" >&2; exit 1; }
done
BENCH_WORK=$(mktemp -d /tmp/berth-bench-mesh.XXXX); export BENCH_WORK
# shellcheck source=lib.sh
. "$HERE/lib.sh"
fabric_session || exit 1
declare -A HOLDER
for n in 11 12; do
  lan_host "$n" || exit 1
  HOLDER[$n]=$HOLDER_PID
  holder_exec "$HOLDER_PID" "$BERTH" daemon --root "$BENCH_WORK/root$n" --run /run/berth \
    -H "unix://$BENCH_WORK/n$n.sock" --resolv-conf /etc/resolv.conf \
    --cluster-store etcd://10.99.0.1:2379 --advertise-addr "10.99.0.$n" --node-name "n$n" \
    >"$BENCH_WORK/daemon$n.log" 2>&1 &
done
H() { holder_exec "${HOLDER[$1]}" "${@:2}"; }
for _ in $(seq 200); do
  H 11 bridge fdb show dev berth-vx 2>/dev/null | grep -q "dst 10.99.0.12" &&
    H 12 bridge fdb show dev berth-vx 2>/dev/null | grep -q "dst 10.99.0.11" && break
  sleep 0.05
done
H 11 bridge fdb show dev berth-vx | grep -q "dst 10.99.0.12" || { echo "the mesh did not form" >&2; cat "$BENCH_WORK/daemon11.log" >&2; exit 1; }
H 11 sh -c "ip addr add 10.200.0.11/32 dev berth-vx && ip route add 10.200.0.12/32 via 10.99.0.12 dev berth-vx onlink"
H 12 sh -c "ip addr add 10.200.0.12/32 dev berth-vx && ip route add 10.200.0.11/32 via 10.99.0.11 dev berth-vx onlink"
H 12 iperf3 -s -D -1 >/dev/null 2>&1 || true
run() { # DST SRC -> Gbit/s
  H 12 sh -c 'pkill -x iperf3; iperf3 -s -D' >/dev/null 2>&1; sleep 0.3
  H 11 iperf3 -c "$1" -B "$2" -t "$SECS" -J 2>/dev/null |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9, 3))'
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
under=(); mesh=()
for _ in $(seq "$ROUNDS"); do
  under+=("$(run 10.99.0.12 10.99.0.11)")
  mesh+=("$(run 10.200.0.12 10.200.0.11)")
done
u=$(printf '%s\n' "${under[@]}" | median); m=$(printf '%s\n' "${mesh[@]}" | median)
mtu=$(H 11 cat /sys/class/net/berth-vx/mtu)
ul=$(IFS=,; echo "${under[*]}"); ml=$(IFS=,; echo "${mesh[*]}")
line=$(python3 -c "import json; print(json.dumps({'rounds': $ROUNDS, 'secs': $SECS, 'underlay_gbps': $u, 'mesh_gbps': $m, 'ratio': round($m/$u, 3), 'mesh_mtu': $mtu, 'underlay': [$ul], 'mesh_runs': [$ml], 'commit': '$(git -C "$HERE/.." rev-parse --short HEAD)'}))")
echo "$line" | tee "$OUT/mesh.json"

#!/usr/bin/env bash
# Services across three nodes (issue 13's first figures): how evenly a VIP spreads new
# connections over its tasks, and how long `service create` takes until every replica runs
# and the last one answers through the VIP, at 3 and 30 replicas.
#
#   balance   CONNS connections from one client container to a 3-replica service's VIP; the
#             share each task got (ideal 1/3 each) and the largest deviation from it
#   create    wall time of `berth service create` (which waits for every task to run) and of
#             the first moment every replica has answered through the VIP
#
# Env: CONNS (2000), BERTH (binary), OUT (/tmp/berth-bench).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/berth-bench}; mkdir -p "$OUT"
CONNS=${CONNS:-2000}
BERTH=${BERTH:-$HERE/../target/release/berth}; BERTH=$(readlink -f "$BERTH")
[ "$(id -u)" = 0 ] || { echo "services.sh must run as root" >&2; exit 1; }
for t in etcd nsenter unshare curl python3 socat; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
BENCH_WORK=$(mktemp -d /tmp/berth-bench-services.XXXX); export BENCH_WORK
# shellcheck source=lib.sh
. "$HERE/lib.sh"
fabric_session || exit 1
cluster_up 11 12 13 || exit 1
B 11 network create -d overlay --subnet 10.0.0.0/16 app >/dev/null
B 11 run -d --name client --network app -- sleep 100000 >/dev/null
now_us() { echo "${EPOCHREALTIME/./}"; }

# create → converged → every replica answered through the VIP
create() { # NAME REPLICAS -> "converged_ms answered_ms"
  local t0 t1 t2 seen
  t0=$(now_us)
  B 12 service create --name "$1" --replicas "$2" --network app -- \
    socat TCP-LISTEN:80,fork,reuseaddr SYSTEM:hostname >/dev/null
  t1=$(now_us)
  for _ in $(seq 2000); do
    seen=$(B 11 exec client sh -c "for i in \$(seq $(( $2 * 4 ))); do socat -T1 - TCP:$1:80,connect-timeout=1; done" 2>/dev/null | sort -u | grep -c .)
    [ "$seen" -ge "$2" ] && break
  done
  t2=$(now_us)
  echo "$(( (t1 - t0) / 1000 )) $(( (t2 - t0) / 1000 ))"
}
read -r c3 a3 <<<"$(create web3 3)"
# Balance over the 3-replica service.
counts=$(B 11 exec client sh -c "for i in \$(seq $CONNS); do socat -T1 - TCP:web3:80,connect-timeout=1; done" | sort | uniq -c | awk '{print $1}' | tr '\n' ',')
B 12 service rm web3 >/dev/null
sleep 1
read -r c30 a30 <<<"$(create web30 30)"
line=$(python3 -c "
import json
c = [int(x) for x in '$counts'.strip(',').split(',') if x]
n = sum(c)
share = [round(x / n, 4) for x in c]
print(json.dumps({
  'balance': {'connections': n, 'tasks': len(c), 'shares': share,
              'max_deviation_from_even': round(max(abs(s - 1 / len(c)) for s in share), 4)},
  'create': {'replicas_3': {'converged_ms': $c3, 'all_answered_ms': $a3},
             'replicas_30': {'converged_ms': $c30, 'all_answered_ms': $a30}},
  'commit': '$(git -C "$HERE/.." rev-parse --short HEAD)'}))")
echo "$line" | tee "$OUT/services.json"

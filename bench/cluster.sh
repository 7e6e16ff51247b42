#!/usr/bin/env bash
# berth's cluster mode measured in one run (issue 12's figures): a fabric namespace with a
# LAN bridge and a real etcd, three host holders on it with a berth daemon each joined with
# --cluster-store (n11, n12, n13), and a fourth holder (s14) with a daemon on one host only.
#
#   throughput   iperf3 between containers on an overlay network on n11 and n12, against
#                iperf3 between the two hosts over the underlay (ROUNDS alternating, medians)
#   attach       `berth run -d` of a container on an overlay network on n11, against the same
#                on a bridge network of the single-host daemon s14 (ATTACH runs each, medians
#                and p90 of the CLI's wall time, which includes the etcd transaction)
#   writes       etcd revisions per overlay `run -d` (one revision per transaction)
#   propagation  from `run -d --name pI` returning on n11 to pI resolving in a container on
#                n13 (NAMES runs; the container polls getaddrinfo every millisecond and
#                prints when each name first answers; both clocks are this machine's)
#
# Env: ROUNDS (3), SECS (5), ATTACH (40), NAMES (200), BERTH (binary), OUT (/tmp/berth-bench).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/berth-bench}; mkdir -p "$OUT"
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-5}; ATTACH=${ATTACH:-40}; NAMES=${NAMES:-200}
BERTH=${BERTH:-$HERE/../target/release/berth}; BERTH=$(readlink -f "$BERTH")
[ "$(id -u)" = 0 ] || { echo "cluster.sh must run as root" >&2; exit 1; }
for t in iperf3 etcd nsenter unshare curl python3; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install iperf3 etcd-server util-linux curl python3)" >&2; exit 1; }
done
BENCH_WORK=$(mktemp -d /tmp/berth-bench-cluster.XXXX); export BENCH_WORK
# shellcheck source=lib.sh
. "$HERE/lib.sh"
fabric_session || exit 1
declare -A HOLDER
for n in 11 12 13 14; do
  lan_host "$n" || exit 1
  HOLDER[$n]=$HOLDER_PID
  cluster=(--cluster-store etcd://10.99.0.1:2379 --advertise-addr "10.99.0.$n" --node-name "n$n")
  [ "$n" = 14 ] && cluster=()
  holder_exec "$HOLDER_PID" "$BERTH" daemon --root "$BENCH_WORK/root$n" --run /run/berth \
    -H "unix://$BENCH_WORK/n$n.sock" --resolv-conf "$BENCH_WORK/resolv.conf" "${cluster[@]}" \
    >"$BENCH_WORK/daemon$n.log" 2>&1 &
done
H() { holder_exec "${HOLDER[$1]}" "${@:2}"; }
B() { local n=$1; shift; H "$n" "$BERTH" -H "unix://$BENCH_WORK/n$n.sock" "$@"; }
for n in 11 12 13 14; do
  for _ in $(seq 200); do B "$n" info >/dev/null 2>&1 && break; sleep 0.05; done
done
B 11 network create -d overlay --subnet 10.0.0.0/16 ov >/dev/null || { cat "$BENCH_WORK/daemon11.log" >&2; exit 1; }
B 14 network create br >/dev/null
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END{i=int(NR*p/100+0.999); if(i<1)i=1; print a[i]}'; }
# Microseconds from bash itself: no process spawned around what is timed.
now_us() { echo "${EPOCHREALTIME/./}"; }

# --- throughput ---------------------------------------------------------------------------
B 12 run -d --name srv --network ov -- iperf3 -s >/dev/null
SRV=$(B 12 inspect -f '{{(index .NetworkSettings.Networks "ov").IPAddress}}' srv)
H 12 sh -c 'iperf3 -s -D' >/dev/null 2>&1
for _ in $(seq 100); do
  B 11 run --rm --network ov -- sh -c "echo | socat -T1 - TCP:$SRV:5201,connect-timeout=1" >/dev/null 2>&1 && break
  sleep 0.1
done
gbps() { python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9, 3))'; }
under=(); over=()
for _ in $(seq "$ROUNDS"); do
  under+=("$(H 11 iperf3 -c 10.99.0.12 -t "$SECS" -J 2>/dev/null | gbps)")
  over+=("$(B 11 run --rm --network ov -- iperf3 -c "$SRV" -t "$SECS" -J 2>/dev/null | gbps)")
done
u=$(printf '%s\n' "${under[@]}" | median); o=$(printf '%s\n' "${over[@]}" | median)

# --- attach latency and etcd writes ---------------------------------------------------------
rev() { F curl -s -X POST http://10.99.0.1:2379/v3/kv/range -d '{"key":"AA=="}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'; }
# A first run on each (the overlay's first block claim and bridge are made here).
B 11 run -d --network ov -- sleep 1000 >/dev/null; B 14 run -d --network br -- sleep 1000 >/dev/null
sleep 0.5
r0=$(rev)
cl=(); sh=()
for _ in $(seq "$ATTACH"); do
  t=$(now_us); B 11 run -d --network ov -- sleep 1000 >/dev/null; e=$(now_us); cl+=("$(((e - t) / 1000))")
  t=$(now_us); B 14 run -d --network br -- sleep 1000 >/dev/null; e=$(now_us); sh+=("$(((e - t) / 1000))")
done
sleep 0.5
r1=$(rev)
writes=$(python3 -c "print(round(($r1-$r0)/$ATTACH, 3))")
c50=$(printf '%s\n' "${cl[@]}" | median); s50=$(printf '%s\n' "${sh[@]}" | median)
c90=$(printf '%s\n' "${cl[@]}" | pct 90); s90=$(printf '%s\n' "${sh[@]}" | pct 90)

# --- name propagation ----------------------------------------------------------------------
# shellcheck disable=SC2016
POLL='import socket, sys, time
for i in range(int(sys.argv[1])):
    while True:
        try:
            socket.getaddrinfo("p%d" % i, None, socket.AF_INET)
            break
        except socket.gaierror:
            time.sleep(0.001)
    print(i, time.time() * 1000, flush=True)'
B 13 run -d --name poller --network ov -- python3 -u -c "$POLL" "$NAMES" >/dev/null
sleep 1
: >"$BENCH_WORK/returned"
for i in $(seq 0 $((NAMES - 1))); do
  B 11 run -d --name "p$i" --network ov -- sleep 1000 >/dev/null
  e=$(now_us); echo "$i $((e / 1000))" >>"$BENCH_WORK/returned"
  # Well above the latency measured, so one name never queues behind the one before.
  sleep 0.15
done
sleep 1
B 13 logs poller >"$BENCH_WORK/resolved"
prop=$(python3 - "$BENCH_WORK/returned" "$BENCH_WORK/resolved" <<'EOF'
import sys
ret = dict(l.split() for l in open(sys.argv[1]))
res = dict(l.split() for l in open(sys.argv[2]) if l.strip())
d = sorted(float(res[k]) - float(ret[k]) for k in ret if k in res)
if not d:
    print('{"count": 0}')
else:
    p = lambda q: d[min(len(d) - 1, int(len(d) * q / 100 + 0.999) - 1)]
    print('{"count": %d, "p50_ms": %.1f, "p99_ms": %.1f, "max_ms": %.1f}' % (len(d), p(50), p(99), d[-1]))
EOF
)
line=$(python3 -c "
import json
print(json.dumps({
  'throughput': {'rounds': $ROUNDS, 'secs': $SECS, 'underlay_gbps': $u, 'overlay_gbps': $o,
                 'ratio': round($o/$u, 3), 'underlay': [$(IFS=,; echo "${under[*]}")], 'overlay': [$(IFS=,; echo "${over[*]}")]},
  'attach': {'runs': $ATTACH, 'cluster_p50_ms': $c50, 'single_p50_ms': $s50,
             'cluster_p90_ms': $c90, 'single_p90_ms': $s90, 'ratio_p50': round($c50/$s50, 3)},
  'etcd_writes_per_attach': $writes,
  'name_propagation': json.loads('$prop'),
  'commit': '$(git -C "$HERE/.." rev-parse --short HEAD)'}))")
echo "$line" | tee "$OUT/cluster.json"

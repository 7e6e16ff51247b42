#!/usr/bin/env bash
# Failover through the routing mesh (issue 13, section 6): a service with two tasks, one on
# n11 and one on n12, published on 8080 in ingress mode; a client on the LAN sends requests
# through n13 (no task) in a tight loop (one connection each, 300 ms timeouts) while n12 is
# lost (daemon kill -9 and its LAN link down). Per kill:
#
#   first_ok_ms   kill → the first answered request after it (the task on n11 answers at
#                 once for the requests the balancer gives it: near 0 by design)
#   all_ok_ms     kill → the end of the last failed request: from then on every request is
#                 answered (the lost node's task left n13's maps; its flows were deleted)
#
# KILLS (20) kills, each on a fresh service (rm + create spreads the two tasks again) with n12
# restarted and Ready before it. The TTL is berth's default (--node-ttl 2s); TTL=… overrides.
# Distribution: p50, p99 (nearest rank), max. Env: KILLS, TTL, BERTH, OUT (/tmp/berth-bench).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/berth-bench}; mkdir -p "$OUT"
KILLS=${KILLS:-20}; TTL=${TTL:-2s}
BERTH=${BERTH:-$HERE/../target/release/berth}; BERTH=$(readlink -f "$BERTH")
[ "$(id -u)" = 0 ] || { echo "failover.sh must run as root" >&2; exit 1; }
for t in etcd nsenter unshare curl python3 socat; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
BENCH_WORK=$(mktemp -d /tmp/berth-bench-failover.XXXX); export BENCH_WORK
# shellcheck source=lib.sh
. "$HERE/lib.sh"
fabric_session || exit 1
DAEMON_FLAGS="--node-ttl $TTL"
cluster_up 11 12 13 || exit 1
B 11 network create -d overlay app >/dev/null || exit 1
RAW=$BENCH_WORK/raw; mkdir -p "$RAW"
for k in $(seq "$KILLS"); do
  B 11 service rm web >/dev/null 2>&1
  sleep 1.2
  B 11 service create --name web --replicas 2 --network app --constraint 'node.hostname!=n13' \
    -p 8080:80 -- socat TCP-LISTEN:80,fork,reuseaddr SYSTEM:hostname >/dev/null || exit 1
  # Both tasks answer through n13 before the kill.
  for _ in $(seq 400); do
    seen=$(for _ in 1 2 3 4 5 6 7 8; do F socat -T1 - TCP:10.99.0.13:8080,connect-timeout=1 </dev/null 2>/dev/null; done | sort -u | grep -c .)
    [ "$seen" = 2 ] && break
    sleep 0.05
  done
  # The loop: one line per request, "start_us end_us ok|fail".
  F bash -c 'end=$(( ${EPOCHREALTIME/./} + 9000000 ))
    while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
      s=${EPOCHREALTIME/./}
      if [ -n "$(socat -T0.3 - TCP:10.99.0.13:8080,connect-timeout=0.3 </dev/null 2>/dev/null)" ]; then r=ok; else r=fail; fi
      echo "$s ${EPOCHREALTIME/./} $r"
    done' > "$RAW/loop.$k" &
  loop=$!
  sleep 1
  kill_us=${EPOCHREALTIME/./}
  pkill -9 -f "unix://$BENCH_WORK/n12.sock" 2>/dev/null
  holder_exec "${HOLDER[12]}" ip link set lan down
  echo "$kill_us" > "$RAW/kill.$k"
  wait "$loop"
  holder_exec "${HOLDER[12]}" ip link set lan up
  cluster_daemon 12
  for _ in $(seq 200); do
    [ "$(B 11 node ls --format '{{.Hostname}} {{.Status}}' 2>/dev/null | grep -c Ready)" = 3 ] && break
    sleep 0.1
  done
done
python3 - "$RAW" "$KILLS" "$OUT/failover.json" "$TTL" "$(git -C "$HERE/.." rev-parse --short HEAD)" <<'PY'
import json, math, sys
raw, kills, out, ttl, commit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
first, alls, reqs = [], [], 0
for k in range(1, kills + 1):
    t0 = int(open(f"{raw}/kill.{k}").read())
    rows = [l.split() for l in open(f"{raw}/loop.{k}") if l.strip()]
    rows = [(int(s), int(e), r) for s, e, r in rows]
    reqs += len(rows)
    after = [x for x in rows if x[0] >= t0]
    ok = [e for s, e, r in after if r == "ok"]
    bad = [e for s, e, r in rows if r == "fail" and e >= t0]
    first.append((ok[0] - t0) / 1000 if ok else None)
    alls.append((max(bad) - t0) / 1000 if bad else 0.0)
def dist(v):
    v = sorted(x for x in v if x is not None)
    if not v:
        return None
    rank = lambda p: v[max(0, math.ceil(p / 100 * len(v)) - 1)]
    return {"n": len(v), "p50": round(rank(50)), "p99": round(rank(99)), "max": round(v[-1])}
doc = {"kills": kills, "ttl": ttl, "requests": reqs,
       "first_ok_ms": dist(first), "all_ok_ms": dist(alls),
       "all_ok_each_ms": [round(x) for x in alls], "commit": commit}
json.dump(doc, open(out, "w"), indent=1)
print(json.dumps({k: doc[k] for k in ("kills", "ttl", "first_ok_ms", "all_ok_ms")}))
PY

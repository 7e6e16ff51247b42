#!/usr/bin/env bash
# The routing mesh (issue 13, section 6), three nodes on a LAN of namespaces, the client a
# namespace on the LAN; one task of a service, on n12, publishing 8080 (nginx) and 5201
# (iperf3) in ingress mode. In one run, alternating, medians:
#
#   direct   the client routes to the task's overlay address via n12 (no NAT, one hop)
#   owner    the published port on n12, the task's node (DNAT, no mesh hop)
#   mesh     the published port on n13, a node without a task: DNAT there, VXLAN to n12,
#            the reply steered back through n13 (the client's address is kept)
#
#   throughput  iperf3 -t SECS, Gbit/s, ROUNDS each
#   conns       wrk -H 'Connection: close' -c 32 -d SECS: new connections/s (conntrack flushed
#               between runs on every node and the client), ROUNDS each
#
# Ratios mesh/direct are the targets (≥ 0.9 throughput, ≥ 0.8 new connections/s).
# Env: ROUNDS (5), SECS (5), BERTH (binary), OUT (/tmp/berth-bench).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/berth-bench}; mkdir -p "$OUT"
ROUNDS=${ROUNDS:-5}; SECS=${SECS:-5}
BERTH=${BERTH:-$HERE/../target/release/berth}; BERTH=$(readlink -f "$BERTH")
[ "$(id -u)" = 0 ] || { echo "ingress.sh must run as root" >&2; exit 1; }
for t in etcd nsenter unshare curl python3 socat iperf3 wrk nginx conntrack; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install etcd-server iperf3 wrk nginx-light conntrack socat)" >&2; exit 1; }
done
BENCH_WORK=$(mktemp -d /tmp/berth-bench-ingress.XXXX); export BENCH_WORK
# shellcheck source=lib.sh
. "$HERE/lib.sh"
fabric_session || exit 1
cluster_up 11 12 13 || exit 1
W=$BENCH_WORK/www; mkdir -p "$W"
head -c 100 /dev/zero | tr '\0' 'x' > "$W/index.html"
cat > "$BENCH_WORK/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $BENCH_WORK/nginx.pid;
error_log $BENCH_WORK/nginx-error.log;
worker_rlimit_nofile 65536;
events { worker_connections 8192; }
http { access_log off; server { listen 80 backlog=4096; root $W; } }
NGX
B 11 network create -d overlay app >/dev/null || exit 1
B 11 service create --name web --network app --constraint node.hostname==n12 \
  -p 8080:80 -p 5201:5201 -- sh -c "iperf3 -s -D -p 5201 && exec nginx -c $BENCH_WORK/nginx.conf" >/dev/null || exit 1
cid=$(B 12 ps -q --filter label=com.docker.swarm.service.name=web | head -1)
TASK=$(B 12 inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$cid")
F ip route add "$TASK/32" via 10.99.0.12
for _ in $(seq 200); do F curl -s -m 1 -o /dev/null "http://10.99.0.13:8080/" && break; sleep 0.05; done
F sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
declare -A HTTP=( [direct]=$TASK:80 [owner]=10.99.0.12:8080 [mesh]=10.99.0.13:8080 )
declare -A IPERF=( [direct]=$TASK [owner]=10.99.0.12 [mesh]=10.99.0.13 )
flush() {
  F conntrack -F >/dev/null 2>&1
  for n in 11 12 13; do holder_exec "${HOLDER[$n]}" conntrack -F >/dev/null 2>&1; done
  sleep 0.5
}
R=$BENCH_WORK/raw; mkdir -p "$R"
for r in $(seq "$ROUNDS"); do
  for p in direct owner mesh; do
    F iperf3 -c "${IPERF[$p]}" -p 5201 -t "$SECS" -J > "$R/iperf.$p.$r.json" 2>/dev/null
    flush
    F wrk -t 2 -c 32 -d "${SECS}s" -H 'Connection: close' "http://${HTTP[$p]}/" > "$R/wrk.$p.$r.txt" 2>&1
    flush
  done
done
python3 - "$R" "$ROUNDS" "$OUT/ingress.json" "$(git -C "$HERE/.." rev-parse --short HEAD)" <<'PY'
import json, re, statistics, sys
raw, rounds, out, commit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
res = {}
for p in ("direct", "owner", "mesh"):
    g, c = [], []
    for r in range(1, rounds + 1):
        try:
            j = json.load(open(f"{raw}/iperf.{p}.{r}.json"))
            g.append(j["end"]["sum_received"]["bits_per_second"] / 1e9)
        except Exception:
            pass
        t = open(f"{raw}/wrk.{p}.{r}.txt").read()
        m = re.search(r"Requests/sec:\s+([\d.]+)", t)
        if m:
            c.append(float(m.group(1)))
    res[p] = {"gbps": g, "conns_per_s": c,
              "gbps_median": round(statistics.median(g), 3) if g else None,
              "conns_median": round(statistics.median(c)) if c else None}
def ratio(a, b, k):
    x, y = res[a][k], res[b][k]
    return round(x / y, 3) if x and y else None
summary = {
    "mesh_vs_direct": {"throughput": ratio("mesh", "direct", "gbps_median"),
                       "new_conns": ratio("mesh", "direct", "conns_median")},
    "owner_vs_direct": {"throughput": ratio("owner", "direct", "gbps_median"),
                        "new_conns": ratio("owner", "direct", "conns_median")},
}
doc = {"rounds": rounds, "paths": res, "ratios": summary, "commit": commit}
json.dump(doc, open(out, "w"), indent=1)
print(json.dumps({k: {"gbps": v["gbps_median"], "conns_per_s": v["conns_median"]} for k, v in res.items()}))
print(json.dumps(summary))
PY

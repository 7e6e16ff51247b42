#!/usr/bin/env bash
# Published-port data path and publishing cost, berth against the reference tools, one run.
#
# Topology (all inside namespace holders made here, see lib.sh; nothing touches the machine):
#   ext 10.90.0.2 --veth-- 10.90.0.1 host (berth daemon; network "bench" 10.89.0.0/24)
#   container "srv" (10.89.0.2): nginx (1 worker, 100-byte file, :80) and iperf3 -s (:5201),
#   published as 18080->80 and 15201->5201.
# Paths, all measured from ext with the same clients:
#   direct   10.89.0.2:80 / :5201       routed by the host, no NAT        (upper bound)
#   kernel   10.90.0.1:18080 / :15201   berth's nftables DNAT (map lookup)
#   bproxy   10.90.0.1:18080 / :15201   berth's userland proxy: the daemon restarted with
#                                       --userland-proxy=always (same container, same port)
#   dproxy   10.90.0.1:28080 / :25201   docker-proxy (Debian docker.io) in the host
#   socat    10.90.0.1:38080 / :35201   socat fork-per-connection in the host
# Tests per path: iperf3 -t DUR (throughput), wrk -c50 keep-alive (req/s), wrk -c50
# `Connection: close` (new connections/s). conntrack is flushed in the host and
# tcp_max_tw_buckets=0 set in every namespace before each test (anchor-bench/04_portpub.sh).
#
# Then the cost of publishing, flat or not, with N = 10, 1000, 10000 ports already published
# by one container (`-p 0.0.0.0:40000-(40000+N-1):...`, one nft batch):
#   publish_N   `berth run -d` of the N-port container itself (whole command)
#   one_more_N  `berth run -d -p 18081:80` of a one-port container with N published (median)
#   close_N     wrk new connections/s through the kernel path with N published
#
# Env: OUT (default /tmp/berth-bench), DUR (5 s), REPS (2), LEVELS (10,1000,10000; "" skips),
#      PATHS ("direct kernel dproxy socat bproxy"),
#      BERTH (binary). Needs: wrk iperf3 nginx socat conntrack docker-proxy (docker.io).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/berth-bench}; mkdir -p "$OUT"
DUR=${DUR:-5}; REPS=${REPS:-2}; LEVELS=${LEVELS-10,1000,10000}
PATHS=${PATHS-direct kernel dproxy socat bproxy}
if [ "${QUICK:-0}" = 1 ]; then DUR=2; REPS=1; LEVELS=10,1000; fi
BERTH=${BERTH:-$HERE/../target/release/berth}; BERTH=$(readlink -f "$BERTH")
OWN_WORK=0
if [ -z "${BENCH_WORK:-}" ]; then BENCH_WORK=/tmp/berth-bench-work.$$; OWN_WORK=1; fi
export BENCH_WORK
W=$BENCH_WORK/ports; mkdir -p "$W/www"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
[ "$(id -u)" = 0 ] || { echo "ports.sh must run as root" >&2; exit 1; }
for t in wrk iperf3 nginx socat conntrack /usr/sbin/docker-proxy "$BERTH"; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install wrk iperf3 nginx-light socat conntrack docker.io)" >&2; exit 1; }
done

HH=""; HE=""
cleanup() {
  set +e
  [ -n "$HE" ] && holder_kill "$HE"
  [ -n "$HH" ] && holder_kill "$HH"
  if [ "$OWN_WORK" = 1 ]; then rm -rf "$BENCH_WORK"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

holder_start ports-host host || exit 1; HH=$HOLDER_PID
holder_start ports-ext host || exit 1; HE=$HOLDER_PID
H() { holder_exec "$HH" "$@"; }
E() { holder_exec "$HE" "$@"; }
BSOCK=$W/berth.sock
B() { timeout 300 "$BERTH" -H "unix://$BSOCK" "$@"; }

# the link between ext and host
# (only the network namespace entered: /proc stays the machine's, where $HE is a PID)
nsenter -t "$HH" -n -- ip link add uplink type veth peer name wan netns "/proc/$HE/ns/net"
H ip addr add 10.90.0.1/24 dev uplink; H ip link set uplink up
E ip addr add 10.90.0.2/24 dev wan; E ip link set wan up
E ip route add 10.89.0.0/24 via 10.90.0.1
for ns in H E; do
  $ns sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_tw_reuse=1 \
    net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_max_syn_backlog=4096 \
    net.ipv4.tcp_max_tw_buckets=0
done

echo "nameserver 10.255.255.53" > "$W/resolv.conf"
start_daemon() {
  H "$BERTH" daemon --root "$W/root" --run /run/berth -H "unix://$BSOCK" \
    --resolv-conf "$W/resolv.conf" --log-level warn "$@" </dev/null >>"$W/daemon.log" 2>&1 &
  for i in $(seq 1 100); do B version >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "berth daemon did not start:"; cat "$W/daemon.log"; exit 1
}
kill_daemon() { H pkill -9 -f "berth daemon" ; sleep 0.3; }
start_daemon

head -c 100 /dev/zero | tr '\0' 'x' > "$W/www/index.html"
cat > "$W/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
worker_rlimit_nofile 65536;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 80 backlog=4096; root $W/www; }
}
NGX
B network create --subnet 10.89.0.0/24 bench >/dev/null || exit 1
B run -d --name srv --network bench --ip 10.89.0.2 -p 18080:80 -p 15201:5201 -- \
  sh -c "iperf3 -s -D -p 5201 && exec nginx -c $W/nginx.conf" >/dev/null || exit 1
# the proxies of the reference tools, in the host
H /usr/sbin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 28080 -container-ip 10.89.0.2 -container-port 80 3>/dev/null &
H /usr/sbin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 25201 -container-ip 10.89.0.2 -container-port 5201 3>/dev/null &
H socat TCP-LISTEN:38080,fork,reuseaddr,backlog=4096 TCP:10.89.0.2:80 &
H socat TCP-LISTEN:35201,fork,reuseaddr TCP:10.89.0.2:5201 &
sleep 1

declare -A HTTP=( [direct]=10.89.0.2:80 [kernel]=10.90.0.1:18080 [bproxy]=10.90.0.1:18080 [dproxy]=10.90.0.1:28080 [socat]=10.90.0.1:38080 )
declare -A IPERF=( [direct]="10.89.0.2 5201" [kernel]="10.90.0.1 15201" [bproxy]="10.90.0.1 15201" [dproxy]="10.90.0.1 28080" [socat]="10.90.0.1 35201" )
IPERF[dproxy]="10.90.0.1 25201"
R=$W/raw; mkdir -p "$R"
flush() { H conntrack -F >/dev/null 2>&1 || true; }

# CPU accounting for the new-connection runs: the machine's busy time (all CPUs, from
# /proc/stat: user+nice+system+irq+softirq+steal) and the proxy process's own time, in
# clock ticks. With both cores saturated, busy time per connection is what a path costs.
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
proxy_pid() {
  case $1 in
    # anchored: the nsenter wrappers' command lines contain the same words
    bproxy) pgrep -f "^$BERTH daemon --root $W/root" | head -1 ;;
    dproxy) pgrep -f "^/usr/sbin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 28080" | head -1 ;;
  esac
}
proc_ticks() { if [ -n "$1" ]; then awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; else echo 0; fi; }
measure() { # PATH
  local p=$1 r pp c0 c1 t0 t1
  E curl --noproxy "*" -sf -o /dev/null -m 3 "http://${HTTP[$p]}/index.html" || { echo "sanity $p FAILED"; return 1; }
  for r in $(seq 1 "$REPS"); do
    set -- ${IPERF[$p]}
    flush; E iperf3 -c "$1" -p "$2" -t "$DUR" -J > "$R/iperf_${p}_$r.json" 2>&1 || true
    flush; E wrk -t2 -c50 -d"${DUR}s" "http://${HTTP[$p]}/index.html" > "$R/ka_${p}_$r.txt" 2>&1 || true
    flush; pp=$(proxy_pid "$p"); c0=$(machine_busy); t0=$(proc_ticks "$pp")
    E wrk -t2 -c50 -d"${DUR}s" -H 'Connection: close' "http://${HTTP[$p]}/index.html" > "$R/close_${p}_$r.txt" 2>&1 || true
    c1=$(machine_busy); t1=$(proc_ticks "$pp")
    echo "$(( c1 - c0 )) $(( t1 - t0 ))" > "$R/cpu_close_${p}_$r.txt"
    sleep 1
  done
  echo "measured $p"
}
for p in $PATHS; do [ "$p" = bproxy ] || measure "$p" || exit 1; done
if [[ " $PATHS " == *" bproxy "* ]]; then
  # the same container behind berth's userland proxy: restart the daemon in that mode (the
  # container keeps running; the DNAT elements are dropped, the held sockets serve everything)
  kill_daemon; start_daemon --userland-proxy always
  measure bproxy || exit 1
  kill_daemon; start_daemon
fi

# publishing cost at N already-published ports
IFS=, read -ra LV <<< "$LEVELS"
# milliseconds since $1 (an $EPOCHREALTIME stamp), computed after the fact
ms() { local now=$EPOCHREALTIME; awk -v a="$1" -v b="$now" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'; }
for n in "${LV[@]}"; do
  end=$((40000 + n - 1))
  t0=$EPOCHREALTIME
  # IPv4 only: with `::` too, 10 000 ports are 20 000 held sockets, above this VM's hard
  # descriptor limit (20000, and no CAP_SYS_RESOURCE to raise it)
  B run -d --name "many$n" --network bench -p "0.0.0.0:40000-$end:40000-$end" -- sleep 100000 >/dev/null || { echo "publishing $n ports failed"; cat "$W/daemon.log" | tail -5; exit 1; }
  echo "{\"n\": $n, \"publish_ms\": $(ms "$t0")}" > "$R/publish_$n.json"
  : > "$R/one_more_$n.txt"
  for i in $(seq 1 15); do
    t0=$EPOCHREALTIME
    B run -d --name one -p 18081:80 --network bench -- sleep 100000 >/dev/null
    ms "$t0" >> "$R/one_more_$n.txt"
    B rm -f one >/dev/null
  done
  flush; E wrk -t2 -c50 -d"${DUR}s" -H 'Connection: close' "http://10.90.0.1:18080/index.html" > "$R/close_at_$n.txt" 2>&1 || true
  B rm -f "many$n" >/dev/null
  echo "measured publishing with $n ports"
done

python3 "$HERE/summarize_ports.py" "$R" | tee "$OUT/ports.txt"
cp -r "$R" "$OUT/ports-raw"

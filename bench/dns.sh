#!/usr/bin/env bash
# Embedded DNS: berth against aardvark-dns 1.4 (podman's) and dnsmasq (reference), one run.
#
# Topology (namespace holders made here, see lib.sh; nothing touches the machine):
#   host "berth"  berth daemon, network "bench" 10.87.0.0/16 (resolver on 10.87.0.1);
#                 the dnsperf client is a berth container on it ("client").
#   host "ref"    bridge 10.87.0.1/16 with aardvark-dns 1.4 on 10.87.0.1:53 and dnsmasq on
#                 10.87.0.254:53 (hosts file), the client a netns on the bridge (10.87.0.2,
#                 which aardvark knows as the container asking, as it answers per source).
#   upstream      dnsmasq on 10.99.0.2 answers f1..f100.test: the upstream of both berth
#                 and aardvark (each host has a veth to it), for forwarded names.
# Names: N per level (LEVELS, default 10,1000,10000). berth holds them as network aliases
# of ten containers (N/10 each: the resolver's index is what is measured, not 10 000
# processes); aardvark and dnsmasq get the same N names in their config / hosts file.
# Per level and server: dnsperf max q/s (REPS x DUR s, 100 outstanding, dnsperf defaults),
# and per-query latency at a fixed 2000 q/s (-Q 2000 -v) → p50/p99. Forwarded names: the
# same for f*.test through berth and aardvark. Memory: RSS of each server at each level.
# Server CPU per query: the server's own CPU time (user + system) per answered query during
# the max runs. The client shares the two cores and is the limit of every server's q/s figure;
# CPU per query is what the server itself costs.
# The same max runs with the names in their network-qualified form (berth `cN.bench`,
# aardvark and dnsmasq `cN.dns.podman`: aardvark scans every name for that form), labels
# *_fqdn; and at the first level with a two-thread client (dnsperf -T 2 -c 2), labels *_mt,
# which shows how far each server goes when the client is less of a bottleneck.
# Then: the first query after `berth run -d` returns (RUNS times).
#
# Env: OUT (/tmp/berth-bench), DUR (5), REPS (3), LEVELS, RUNS (20), BERTH (binary).
# Needs: dnsperf, dnsmasq (dnsmasq-base), aardvark-dns (/usr/lib/podman/aardvark-dns), dig.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/berth-bench}; mkdir -p "$OUT"
DUR=${DUR:-5}; REPS=${REPS:-3}; LEVELS=${LEVELS-10,1000,10000}; RUNS=${RUNS:-20}
if [ "${QUICK:-0}" = 1 ]; then DUR=2; REPS=1; LEVELS=10,1000; RUNS=5; fi
BERTH=${BERTH:-$HERE/../target/release/berth}; BERTH=$(readlink -f "$BERTH")
AARDVARK=${AARDVARK:-/usr/lib/podman/aardvark-dns}
OWN_WORK=0
if [ -z "${BENCH_WORK:-}" ]; then BENCH_WORK=/tmp/berth-bench-work.$$; OWN_WORK=1; fi
export BENCH_WORK
W=$BENCH_WORK/dns; mkdir -p "$W/aardvark"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
[ "$(id -u)" = 0 ] || { echo "dns.sh must run as root" >&2; exit 1; }
for t in dnsperf dnsmasq dig "$AARDVARK" "$BERTH"; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install dnsperf dnsmasq-base aardvark-dns bind9-dnsutils)" >&2; exit 1; }
done

HB=""; HR=""; HU=""
cleanup() {
  set +e
  for h in "$HB" "$HR" "$HU"; do [ -n "$h" ] && holder_kill "$h"; done
  if [ "$OWN_WORK" = 1 ]; then rm -rf "$BENCH_WORK"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

holder_start dns-berth host || exit 1; HB=$HOLDER_PID
holder_start dns-ref host || exit 1; HR=$HOLDER_PID
holder_start dns-up host || exit 1; HU=$HOLDER_PID
HBx() { holder_exec "$HB" "$@"; }
HRx() { holder_exec "$HR" "$@"; }
HUx() { holder_exec "$HU" "$@"; }
BSOCK=$W/berth.sock
B() { timeout 600 "$BERTH" -H "unix://$BSOCK" "$@"; }

# the upstream, reachable from both hosts
nsenter -t "$HU" -n -- ip link add upb type veth peer name up0 netns "/proc/$HB/ns/net"
nsenter -t "$HU" -n -- ip link add upr type veth peer name up0 netns "/proc/$HR/ns/net"
HUx ip addr add 10.99.0.2/24 dev upb; HUx ip addr add 10.98.0.2/24 dev upr
HUx ip link set upb up; HUx ip link set upr up
HBx ip addr add 10.99.0.1/24 dev up0; HBx ip link set up0 up
HRx ip addr add 10.98.0.1/24 dev up0; HRx ip link set up0 up
for i in $(seq 1 100); do echo "192.0.2.$i f$i.test"; done > "$W/up_hosts"
HUx dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --addn-hosts="$W/up_hosts" \
  --listen-address=10.99.0.2,10.98.0.2 --bind-interfaces --port=53 --user=root \
  --log-facility=/dev/null --cache-size=1000 &
for i in $(seq 1 100); do echo "f$i.test A"; done > "$W/q_fwd.txt"

# berth
echo "nameserver 10.99.0.2" > "$W/resolv.conf"
HBx "$BERTH" daemon --root "$W/root" --run /run/berth -H "unix://$BSOCK" \
  --resolv-conf "$W/resolv.conf" --log-level warn </dev/null >>"$W/daemon.log" 2>&1 &
for i in $(seq 1 100); do B version >/dev/null 2>&1 && break; sleep 0.1; done
B network create --subnet 10.87.0.0/16 bench >/dev/null || { cat "$W/daemon.log"; exit 1; }
B run -d --name client --network bench --ip 10.87.0.2 -- sleep 100000 >/dev/null || exit 1
BPID=$(HBx pgrep -f "berth daemon" | head -1)

# the reference host: bridge, client netns, aardvark config dir, upstream as resolv.conf
HRx ip link add br0 type bridge
HRx ip addr add 10.87.0.1/16 dev br0; HRx ip addr add 10.87.0.254/16 dev br0
HRx ip link set br0 up
HRx ip netns add c
HRx ip link add vc type veth peer name eth0 netns c
HRx ip link set vc master br0 up
HRx ip netns exec c ip addr add 10.87.0.2/16 dev eth0
HRx ip netns exec c ip link set eth0 up
HRx ip netns exec c ip link set lo up
echo "nameserver 10.98.0.2" > "$W/ref_resolv.conf"
HRx mount --bind "$W/ref_resolv.conf" /etc/resolv.conf

R=$W/raw; mkdir -p "$R"
rss_kb() { local v; v=$("$@" awk '/^VmRSS/ {print $2}' "/proc/$PID_FOR_RSS/status" 2>/dev/null); echo "${v:-0}"; }
names_file() { # N FILE: "name A" lines, the names spread over the file in order
  local n=$1
  awk -v n="$n" 'BEGIN { for (i = 1; i <= n; i++) printf "c%d A\n", i }' > "$2"
}
# dnsperf runs: SERVER-LABEL LEVEL RUNNER... (the runner puts dnsperf in the client's netns)
maxruns() {
  local label=$1 lvl=$2 qf=$3 server=$4; shift 4
  local r t0 t1
  for r in $(seq 1 "$REPS"); do
    t0=$(cpu_ticks)
    "$@" dnsperf -s "$server" -d "$qf" -l "$DUR" $CLIENT > "$R/max_${label}_${lvl}_$r.txt" 2>&1
    t1=$(cpu_ticks)
    echo "$(( t1 - t0 ))" > "$R/cpu_${label}_${lvl}_$r.txt"
  done
}
CLIENT=""
perf() {
  local label=$1 lvl=$2 qf=$3 server=$4; shift 4
  maxruns "$label" "$lvl" "$qf" "$server" "$@"
  "$@" dnsperf -s "$server" -d "$qf" -l "$DUR" -Q 2000 -v > "$R/q2000_${label}_${lvl}.txt" 2>&1
}
# the extra rows: qualified names at every level, a two-thread client at the first
extra() {
  local label=$1 lvl=$2 qf=$3 fq=$4 server=$5; shift 5
  maxruns "${label}_fqdn" "$lvl" "$fq" "$server" "$@"
  if [ "$lvl" = "${LV[0]}" ]; then
    CLIENT="-T 2 -c 2" maxruns "${label}_mt" "$lvl" "$qf" "$server" "$@"
  fi
}
# the server's CPU time (user + system, clock ticks) — SRV_PID inside the holder SRV_IN
cpu_ticks() { "$SRV_IN" awk '{print $14 + $15}' "/proc/$SRV_PID/stat" 2>/dev/null || echo 0; }
in_berth_client() { B exec client "$@"; }
in_ref_client() { HRx ip netns exec c "$@"; }

IFS=, read -ra LV <<< "$LEVELS"
have=0
for n in "${LV[@]}"; do
  # berth: grow to n aliases over ten holders (n/10 each; the holders are replaced)
  for k in $(seq 0 9); do B rm -f "h$k" >/dev/null 2>&1; done
  per=$(( (n + 9) / 10 ))
  for k in $(seq 0 9); do
    args=()
    for i in $(seq $((k * per + 1)) $(( (k + 1) * per ))); do
      [ "$i" -le "$n" ] && args+=(--network-alias "c$i")
    done
    B run -d --name "h$k" --network bench "${args[@]}" -- sleep 100000 >/dev/null || exit 1
  done
  names_file "$n" "$W/q_$n.txt"
  sed 's/ A$/.bench A/' "$W/q_$n.txt" > "$W/qb_$n.txt"
  sed 's/ A$/.dns.podman A/' "$W/q_$n.txt" > "$W/qp_$n.txt"
  sanity=$(in_berth_client dig +short +time=2 +tries=1 "c$n" A)
  [ -n "$sanity" ] || { echo "berth does not answer c$n"; exit 1; }
  sanity=$(in_berth_client dig +short +time=2 +tries=1 "c$n.bench" A)
  [ -n "$sanity" ] || { echo "berth does not answer c$n.bench"; exit 1; }
  sleep 1
  PID_FOR_RSS=$BPID; echo "berth_rss_kb $n $(rss_kb HBx)" >> "$R/rss.txt"
  SRV_IN=HBx; SRV_PID=$BPID
  perf berth "$n" "$W/q_$n.txt" 10.87.0.1 in_berth_client
  extra berth "$n" "$W/q_$n.txt" "$W/qb_$n.txt" 10.87.0.1 in_berth_client
  [ "$n" = "${LV[0]}" ] && perf berth_fwd "$n" "$W/q_fwd.txt" 10.87.0.1 in_berth_client
  echo "measured berth at $n names"

  # aardvark: the same names, the client as the container that asks
  {
    echo "10.87.0.1"
    printf '%064x 10.87.0.2  client\n' 1
    for i in $(seq 1 "$n"); do
      printf '%064x %s  c%d\n' $((i + 1)) "10.87.$(( (i + 2) / 250 + 1 )).$(( (i + 2) % 250 + 1 ))" "$i"
    done
  } > "$W/aardvark/bench"
  [ -f "$W/aardvark/aardvark.pid" ] && HRx kill "$(cat "$W/aardvark/aardvark.pid")" 2>/dev/null && sleep 0.5
  HRx "$AARDVARK" --config "$W/aardvark" -p 53 run >/dev/null 2>&1
  APID=$(cat "$W/aardvark/aardvark.pid")
  sleep 0.5
  sanity=$(in_ref_client dig +short +time=2 +tries=1 @10.87.0.1 "c$n" A)
  [ -n "$sanity" ] || { echo "aardvark does not answer c$n"; exit 1; }
  PID_FOR_RSS=$APID; echo "aardvark_rss_kb $n $(rss_kb HRx)" >> "$R/rss.txt"
  SRV_IN=HRx; SRV_PID=$APID
  sanity=$(in_ref_client dig +short +time=2 +tries=1 @10.87.0.1 "c$n.dns.podman" A)
  [ -n "$sanity" ] || { echo "aardvark does not answer c$n.dns.podman"; exit 1; }
  perf aardvark "$n" "$W/q_$n.txt" 10.87.0.1 in_ref_client
  extra aardvark "$n" "$W/q_$n.txt" "$W/qp_$n.txt" 10.87.0.1 in_ref_client
  [ "$n" = "${LV[0]}" ] && perf aardvark_fwd "$n" "$W/q_fwd.txt" 10.87.0.1 in_ref_client
  echo "measured aardvark at $n names"

  # dnsmasq: a hosts file with the same names
  for i in $(seq 1 "$n"); do echo "10.87.$(( (i + 2) / 250 + 1 )).$(( (i + 2) % 250 + 1 )) c$i c$i.dns.podman"; done > "$W/ref_hosts"
  HRx dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --addn-hosts="$W/ref_hosts" \
    --listen-address=10.87.0.254 --bind-interfaces --port=53 --user=root \
    --log-facility=/dev/null --pid-file="$W/dnsmasq.pid" &
  sleep 1
  SRV_IN=HRx; SRV_PID=$(cat "$W/dnsmasq.pid")
  perf dnsmasq "$n" "$W/q_$n.txt" 10.87.0.254 in_ref_client
  extra dnsmasq "$n" "$W/q_$n.txt" "$W/qp_$n.txt" 10.87.0.254 in_ref_client
  PID_FOR_RSS=$(cat "$W/dnsmasq.pid"); echo "dnsmasq_rss_kb $n $(rss_kb HRx)" >> "$R/rss.txt"
  HRx kill "$(cat "$W/dnsmasq.pid")"; sleep 0.3
  echo "measured dnsmasq at $n names"
  have=1
done
[ "$have" = 1 ] && [ -f "$W/aardvark/aardvark.pid" ] && HRx kill "$(cat "$W/aardvark/aardvark.pid")" 2>/dev/null

# the first query after `berth run -d` returns: answered at once?
: > "$R/first_query.txt"
for i in $(seq 1 "$RUNS"); do
  B run -d --name "new$i" --network bench -- sleep 100000 >/dev/null || exit 1
  in_berth_client dig +time=1 +tries=1 "new$i" A > "$R/first_$i.txt" 2>&1
  if grep -q "^new$i\..*IN.*A.*10\.87\." "$R/first_$i.txt"; then
    echo "ok $(awk '/Query time:/ {print $4}' "$R/first_$i.txt")" >> "$R/first_query.txt"
  else
    echo "miss" >> "$R/first_query.txt"
  fi
  B rm -f "new$i" >/dev/null
  # gone as soon as rm returns
  if in_berth_client dig +short +time=1 +tries=1 "new$i" A | grep -q .; then echo "stale" >> "$R/first_query.txt"; fi
done

cp -r "$R" "$OUT/dns-raw"
python3 "$HERE/summarize_dns.py" "$R" | tee "$OUT/dns-summary.txt"

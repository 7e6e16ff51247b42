#!/usr/bin/env bash
# Three berth nodes and an etcd, each in network namespaces of its own on a LAN bridge
# (nothing on this machine's network changes): an overlay network created on one node, a
# server on another, reached by name across the VXLAN mesh; then a service whose published
# port answers on every node through the routing mesh, also on the node without a task, and
# sees the LAN client's own address. Run as root after a release build
# (scripts/quickstart.sh runs it at its end).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the demo makes namespaces, links and nftables tables" >&2; exit 1; }
B=$(readlink -f "${BERTH:-target/release/berth}")
[ -x "$B" ] || { echo "build first: cargo build --release" >&2; exit 1; }
BENCH_WORK=$(mktemp -d /tmp/berth-cluster-demo.XXXX); export BENCH_WORK
# shellcheck source=../bench/lib.sh
. bench/lib.sh
fabric_session || exit 1
declare -A HOLDER
for n in 11 12 13; do
  lan_host "$n"
  HOLDER[$n]=$HOLDER_PID
  holder_exec "$HOLDER_PID" "$B" daemon --log-level warn --root "$BENCH_WORK/root$n" --run /run/berth \
    -H "unix://$BENCH_WORK/n$n.sock" --resolv-conf "$BENCH_WORK/resolv.conf" \
    --cluster-store etcd://10.99.0.1:2379 --advertise-addr "10.99.0.$n" --node-name "n$n" \
    >"$BENCH_WORK/daemon$n.log" 2>&1 &
  for _ in $(seq 100); do
    holder_exec "$HOLDER_PID" "$B" -H "unix://$BENCH_WORK/n$n.sock" version >/dev/null 2>&1 && break
    sleep 0.05
  done
done
on() {
  local n=$1; shift
  printf '\n\033[1mn%s$ berth %s\033[0m\n' "$n" "$*"
  holder_exec "${HOLDER[$n]}" "$B" -H "unix://$BENCH_WORK/n$n.sock" "$@"
}
on 11 node ls
on 11 network create -d overlay --attachable app
on 12 network ls --filter driver=overlay
on 12 run -d --name web --network app -- socat TCP-LISTEN:80,fork,reuseaddr "SYSTEM:echo hello from n12"
# The name reaches n11 with the next round after the run returned (tens of milliseconds).
for _ in $(seq 20); do
  holder_exec "${HOLDER[11]}" "$B" -H "unix://$BENCH_WORK/n11.sock" run --rm --network app -- getent hosts web >/dev/null && break
  sleep 0.1
done
on 11 run --rm --network app -- socat -T2 - TCP:web:80,connect-timeout=2
on 11 run --rm --network app -- sh -c 'getent hosts web; ip -o link show eth0 | grep -o "mtu [0-9]*"'
on 11 network rm app || true
on 12 rm -f web
on 11 service create --name who --replicas 2 --network app --constraint 'node.hostname!=n13' \
  -p 8080:80 -- socat TCP-LISTEN:80,fork,reuseaddr 'SYSTEM:echo you are $SOCAT_PEERADDR served by $(hostname)'
on 13 service ps who
for n in 11 12 13 13; do
  printf '\n\033[1mlan (10.99.0.1)$ socat - TCP:10.99.0.%s:8080\033[0m\n' "$n"
  F socat -T2 - "TCP:10.99.0.$n:8080,connect-timeout=2" </dev/null
done
on 11 service rm who
# The tasks' containers go a second after their service.
for _ in $(seq 40); do
  holder_exec "${HOLDER[11]}" "$B" -H "unix://$BENCH_WORK/n11.sock" network rm app >/dev/null 2>&1 && break
  sleep 0.1
done
on 11 network ls --filter driver=overlay

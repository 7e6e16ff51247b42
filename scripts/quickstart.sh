#!/usr/bin/env bash
# Installs what berth needs, builds it, starts a daemon, runs seed 004's cluster from its
# compose file (examples/seed-cluster) with the seed's curl loop, then walks through the
# networking commands of Docker's tutorials with `docker` replaced by `berth`.
#
# The demo daemon runs in a throwaway network namespace of its own, so trying berth
# changes nothing on this machine's network; `berth daemon` without the wrapper is the
# real thing (state in /var/lib/berth, socket /run/berth/berth.sock).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (from another user: sudo $0): berth manages namespaces, links and nftables" >&2; exit 1; }
scripts/deps.sh
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install a Rust toolchain (https://rustup.rs), then run this again" >&2
  exit 1
fi
cargo build --release --quiet
B=$PWD/target/release/berth
# Shell completions and man pages, generated from the command definitions.
mkdir -p /usr/share/bash-completion/completions /usr/local/share/man/man1 \
  /usr/share/zsh/vendor-completions /usr/share/fish/vendor_completions.d
"$B" completion bash > /usr/share/bash-completion/completions/berth
"$B" completion zsh > /usr/share/zsh/vendor-completions/_berth
"$B" completion fish > /usr/share/fish/vendor_completions.d/berth.fish
"$B" man /usr/local/share/man/man1 >/dev/null
W=$(mktemp -d /tmp/berth-demo.XXXXXX)
echo "nameserver 203.0.113.53" > "$W/resolv.conf"
# A demo host: new network, mount and PID namespaces; killing its init removes everything.
unshare --net --mount --propagation private --pid --fork -- sh -c \
  'mount -t proc proc /proc; mount -t sysfs sysfs /sys; ip link set lo up; exec sleep 1000000' 2>/dev/null &
HOLDER=$!
disown
cleanup() { kill -9 $(cat /proc/$HOLDER/task/$HOLDER/children 2>/dev/null) 2>/dev/null || true; kill $HOLDER 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
sleep 0.3
NS=$(tr -d " " < /proc/$HOLDER/task/$HOLDER/children)
nsenter -t "$NS" -n -m -p -- "$B" daemon --log-level warn --root "$W/root" --run "$W/run" \
  --resolv-conf "$W/resolv.conf" -H "unix://$W/berth.sock" &
disown
export BERTH_HOST=unix://$W/berth.sock
for _ in $(seq 100); do "$B" version >/dev/null 2>&1 && break; sleep 0.05; done
run() { printf '\n\033[1m$ berth %s\033[0m\n' "$*"; "$B" "$@"; }

# Seed 004's cluster from one file (examples/seed-cluster): nginx in front of three
# replicas of a web app that counts hits in redis, redis on a back-end network.
cp -r examples/seed-cluster "$W/seed-cluster"
cd "$W/seed-cluster"
run compose up -d
run compose ps
printf '\n\033[1m$ for i in $(seq 9); do curl -s http://localhost:8080; done\033[0m\n'
for _ in $(seq 9); do nsenter -t "$NS" -n -- curl -s -m 3 http://localhost:8080; done
run compose down
cd - >/dev/null

# The networking tutorials, command by command.
run network ls
run network create dev
run run -d --name es --network dev -- sleep 600
run run --rm --network dev -- getent hosts es
run run --rm --network dev -- ping -c 1 "$("$B" inspect -f '{{(index .NetworkSettings.Networks "dev").IPAddress}}' es)"
run network create --subnet 10.66.0.0/16 --gateway 10.66.0.254 --ip-range 10.66.5.0/24 --aux-address printer=10.66.5.1 pubnet
run run -d --name web --network pubnet --ip 10.66.66.66 -- sleep 600
run inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' web
run network create --internal sealed
run run --rm --network sealed -- ip route
run run --rm --network none -- ip -o link
run run -d --name joined1 --network none -- socat TCP-LISTEN:3333,bind=127.0.0.1,fork SYSTEM:'echo hello from joined1'
sleep 0.3
run run --rm --network container:joined1 -- socat - TCP:127.0.0.1:3333
run run -d --name default1 -- sleep 600
run inspect --format '{{ .NetworkSettings.IPAddress }}' default1
run network connect dev default1
# published ports (seeds 001 and 002): a fixed port, and an ephemeral one on loopback only
run run -d --name pg -p 8080:80 -p 127.0.0.1::5432 -- socat TCP-LISTEN:80,fork,reuseaddr SYSTEM:'echo hello through a published port'
sleep 0.3
run port pg
printf '\n\033[1m$ curl-like client on the demo host: socat - TCP:127.0.0.1:8080\033[0m\n'
nsenter -t "$NS" -n -- socat -T2 - TCP:127.0.0.1:8080 </dev/null
run restart -t 1 pg
run port pg 5432
run ps
run network inspect --format '{{range .Containers}}{{.Name}} {{.IPv4Address}}{{"\n"}}{{end}}' dev
run rm -f es web joined1 default1 pg
run network prune -f
run network ls
printf '\nThe same daemon answers the docker CLI: DOCKER_HOST=%s docker network ls\n' "$BERTH_HOST"
command -v docker >/dev/null && DOCKER_CONFIG=$W/docker DOCKER_HOST=$BERTH_HOST docker network ls

# Across hosts: an etcd and three nodes in namespaces of their own, an overlay network between
# them, and a service's port answering on every node through the routing mesh.
printf '\n\033[1m# Three nodes, an overlay network, the routing mesh (scripts/cluster-demo.sh)\033[0m\n'
BERTH=$B scripts/cluster-demo.sh

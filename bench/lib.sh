# shellcheck shell=bash
# Helpers sourced by the bench scripts: namespace "holders".
#
# A holder is `unshare --net --mount --propagation private --pid --fork -- sh -c '...; exec sleep 1000000'`.
# Its child is PID 1 of a new PID namespace; everything started with holder_exec lives in
# the holder's network + mount + PID namespaces, and SIGKILL of that PID 1 tears down all
# of it (processes, then the network namespace with its links, routes, nft/iptables state).
# /run is a private tmpfs inside every holder, so nothing the tools write there (netns bind
# mounts, lock files, docker/containerd sockets) reaches the machine.
#
# Kinds:
#   host    mount proc + sysfs (for the holder's own /sys/class/net) — berth, netavark, CNI
#   docker  mount proc, keep the machine's /sys (dockerd needs the cgroup v1 mounts under
#           /sys/fs/cgroup; a fresh sysfs would hide them — the reason `ip netns exec`
#           cannot be used for dockerd, see anchor-bench/05_docker.sh), plus a private tmpfs
#           on /etc/docker (dockerd 20.10 writes key.json there).

: "${BENCH_WORK:?BENCH_WORK must be set before sourcing lib.sh}"

# holder_start LABEL KIND  -> sets HOLDER_PID; appends it to $BENCH_WORK/holders.pid
holder_start() {
  local label=$1 kind=$2 ready="$BENCH_WORK/holder.$1.ready" setup u c="" i
  rm -f "$ready"
  setup='mount -t proc proc /proc && mount -t tmpfs -o mode=755 tmpfs /run'
  case "$kind" in
    host) setup="$setup && mount -t sysfs sysfs /sys" ;;
    docker) setup="$setup && mount -t tmpfs -o mode=755 tmpfs /etc/docker" ;;
    *) echo "holder_start: unknown kind $kind" >&2; return 1 ;;
  esac
  unshare --net --mount --propagation private --pid --fork -- \
    sh -c "$setup && ip link set lo up && touch '$ready' && exec sleep 1000000" \
    </dev/null >"$BENCH_WORK/holder.$label.log" 2>&1 &
  u=$!
  for i in $(seq 1 200); do
    [ -z "$c" ] && c=$(awk '{print $1}' "/proc/$u/task/$u/children" 2>/dev/null)
    [ -n "$c" ] && [ -e "$ready" ] && break
    kill -0 "$u" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$c" ] || [ ! -e "$ready" ]; then
    echo "holder $label could not be created: $(cat "$BENCH_WORK/holder.$label.log")" >&2
    [ -n "$c" ] && holder_kill "$c"
    return 1
  fi
  echo "$c" >> "$BENCH_WORK/holders.pid"
  HOLDER_PID=$c
}

# holder_exec PID CMD...  (network + mount + pid namespaces of the holder)
holder_exec() { local p=$1; shift; nsenter -t "$p" -n -m -p -- "$@"; }

# is the PID still one of our holders (guards against PID reuse)?
holder_is_ours() {
  [ -r "/proc/$1/cmdline" ] && [ "$(tr '\0' ' ' < "/proc/$1/cmdline")" = "sleep 1000000 " ]
}

holder_kill() {
  local p=$1 i
  holder_is_ours "$p" || return 0
  kill -9 "$p" 2>/dev/null
  for i in $(seq 1 100); do [ -e "/proc/$p" ] || break; sleep 0.05; done
}

holders_kill_all() {
  local p
  [ -f "$BENCH_WORK/holders.pid" ] || return 0
  while read -r p; do [ -n "$p" ] && holder_kill "$p"; done < "$BENCH_WORK/holders.pid"
  : > "$BENCH_WORK/holders.pid"
}

# The cluster fabric: a network namespace with the LAN bridge lan0 (10.99.0.1/24) and a
# one-member etcd on it. Sets FABRIC (its holder's PID; `fabric_kill` in the caller's trap).
# F runs a command in it.
F() { nsenter -t "$FABRIC" -n -- "$@"; }
fabric_start() {
  unshare --net sleep 100000 >/dev/null 2>&1 &
  FABRIC=$!
  disown
  sleep 0.2
  F ip link set lo up
  F ip link add lan0 type bridge && F ip addr add 10.99.0.1/24 dev lan0 && F ip link set lan0 up
  F etcd --name m0 --data-dir "$BENCH_WORK/etcd" \
    --listen-client-urls http://10.99.0.1:2379 --advertise-client-urls http://10.99.0.1:2379 \
    --listen-peer-urls http://10.99.0.1:2380 --initial-advertise-peer-urls http://10.99.0.1:2380 \
    --initial-cluster m0=http://10.99.0.1:2380 >"$BENCH_WORK/etcd.log" 2>&1 &
  local _
  for _ in $(seq 100); do F curl -s -m 1 http://10.99.0.1:2379/health 2>/dev/null | grep -q true && return 0; sleep 0.1; done
  echo "etcd did not start: $BENCH_WORK/etcd.log" >&2
  return 1
}
fabric_kill() { [ -n "${FABRIC:-}" ] && kill -9 "$FABRIC" 2>/dev/null; FABRIC=""; }

# The fabric with everything removed on exit, and an empty resolv.conf for the daemons (no
# upstream resolvers: a name that is not, or not yet, a container's is answered at once).
fabric_session() {
  FABRIC=""
  trap 'fabric_kill; holders_kill_all; rm -rf "$BENCH_WORK"' EXIT
  fabric_start && : >"$BENCH_WORK/resolv.conf"
}

# lan_host N: a host holder at 10.99.0.N on the LAN -> HOLDER_PID.
lan_host() {
  local n=$1
  holder_start "n$n" host || return 1
  F ip link add "n$n" type veth peer name lan netns "$HOLDER_PID"
  F ip link set "n$n" master lan0 up
  holder_exec "$HOLDER_PID" sh -c "ip addr add 10.99.0.$n/24 dev lan && ip link set lan up"
}

# A cluster of LAN hosts, each with a berth daemon on the fabric's etcd (its own root and
# socket under BENCH_WORK, its log appended to daemonN.log). DAEMON_FLAGS: more daemon flags.
# cluster_daemon N: (re)starts host N's daemon. B N ARGS…: the CLI against it.
# cluster_up N…: the hosts and their daemons, waited for; sets HOLDER[N].
declare -A HOLDER
cluster_daemon() {
  local n=$1
  # shellcheck disable=SC2086
  holder_exec "${HOLDER[$n]}" "$BERTH" daemon --root "$BENCH_WORK/root$n" --run /run/berth \
    -H "unix://$BENCH_WORK/n$n.sock" --resolv-conf "$BENCH_WORK/resolv.conf" \
    --cluster-store etcd://10.99.0.1:2379 --advertise-addr "10.99.0.$n" --node-name "n$n" \
    ${DAEMON_FLAGS:-} >>"$BENCH_WORK/daemon$n.log" 2>&1 &
}
B() { local n=$1; shift; holder_exec "${HOLDER[$n]}" "$BERTH" -H "unix://$BENCH_WORK/n$n.sock" "$@"; }
cluster_up() {
  local n
  for n in "$@"; do
    lan_host "$n" || return 1
    HOLDER[$n]=$HOLDER_PID
    cluster_daemon "$n"
  done
  for n in "$@"; do
    for _ in $(seq 200); do B "$n" info >/dev/null 2>&1 && break; sleep 0.05; done
  done
}

#!/usr/bin/env bash
# Whole-container run time, one hyperfine invocation for all four commands:
#   berth run --rm --network none  -- true
#   berth run --rm --network bench -- true        (bridge network 10.9.0.0/16)
#   docker run --rm --network none bx/busybox true
#   docker run --rm --network dev  bx/busybox true  (user bridge 10.66.0.0/24)
# berth daemon and dockerd 20.10 each run in their own namespace holder (see lib.sh);
# the CLIs are plain unix-socket clients. dockerd: private mount ns + nsenter --net (never
# `ip netns exec`, which remounts /sys and hides the cgroup mounts), vfs storage, state
# under the work dir, cgroup parent /berth-bench-docker (removed afterwards), /etc/docker
# is a private tmpfs (and checked afterwards anyway).
# If dockerd cannot start, the reason is printed and written to run_cmd.json, and the
# berth rows are still measured.
#
# Env: OUT (default /tmp/berth-bench), RUNS (hyperfine runs per command; 30, QUICK=1: 5),
#      BERTH (binary), BENCH_WORK (scratch dir, removed on exit).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/berth-bench}; mkdir -p "$OUT"
if [ "${QUICK:-0}" = 1 ]; then RUNS=${RUNS:-5}; else RUNS=${RUNS:-30}; fi
BERTH=${BERTH:-$HERE/../target/release/berth}; BERTH=$(readlink -f "$BERTH")
DOCKER=/usr/bin/docker   # the 20.10 CLI that matches dockerd (a 28.x CLI is in /usr/local/bin)
OWN_WORK=0
if [ -z "${BENCH_WORK:-}" ]; then BENCH_WORK=/tmp/berth-bench-work.$$; OWN_WORK=1; fi
export BENCH_WORK
W=$BENCH_WORK/runcmd; mkdir -p "$W"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
[ "$(id -u)" = 0 ] || { echo "run_cmd.sh must run as root" >&2; exit 1; }
[ -x "$BERTH" ] || { echo "berth binary not found: $BERTH" >&2; exit 1; }

HB=""; HD=""; DOCKER_OK=0; DOCKER_ERR=""
DSOCK=$W/docker.sock; BSOCK=$W/berth.sock
export DOCKER_CONFIG=$W/docker-cli
D() { timeout 120 "$DOCKER" -H "unix://$DSOCK" "$@"; }
Bc() { timeout 120 "$BERTH" -H "unix://$BSOCK" "$@"; }

cleanup() {
  set +e
  if [ -n "$HD" ] && holder_is_ours "$HD"; then
    # graceful: containers, network, then dockerd (which stops its containerd)
    ids=$(D ps -aq 2>/dev/null); [ -n "$ids" ] && D rm -f $ids >/dev/null 2>&1
    D network rm dev >/dev/null 2>&1
    dpid=$(cat "$W/dockerd.pid" 2>/dev/null)
    if [ -n "$dpid" ]; then
      holder_exec "$HD" kill -TERM "$dpid" 2>/dev/null
      for i in $(seq 1 40); do holder_exec "$HD" kill -0 "$dpid" 2>/dev/null || break; sleep 0.5; done
    fi
  fi
  [ -n "$HD" ] && holder_kill "$HD"
  [ -n "$HB" ] && holder_kill "$HB"
  # cgroups are machine-wide: remove the (empty) ones dockerd created, deepest first
  for c in /sys/fs/cgroup/*/berth-bench-docker; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  # anything dockerd may have written outside its dirs (it should not: private /run, /etc/docker)
  if [ -f "$W/etc_docker_before.txt" ]; then
    for f in $(ls -A /etc/docker 2>/dev/null); do
      grep -qx "$f" "$W/etc_docker_before.txt" || { echo "removing /etc/docker/$f"; rm -rf "/etc/docker/$f"; }
    done
  fi
  if [ "$OWN_WORK" = 1 ]; then rm -rf "$BENCH_WORK"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# ---------------------------------------------------------------- berth daemon
# Runtime files where production keeps them: /run/berth, here the holder's private tmpfs.
echo "nameserver 10.255.255.53" > "$W/resolv.conf"
holder_start berth-run host || exit 1; HB=$HOLDER_PID
holder_exec "$HB" "$BERTH" daemon --root "$W/berth-root" --run /run/berth \
  -H "unix://$BSOCK" --resolv-conf "$W/resolv.conf" --log-level warn \
  </dev/null > "$W/berth-daemon.log" 2>&1 &
ok=0
for i in $(seq 1 100); do Bc version >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
[ $ok = 1 ] || { echo "berth daemon did not start:"; cat "$W/berth-daemon.log"; exit 1; }
Bc network create --subnet 10.9.0.0/16 bench >/dev/null || exit 1
echo "berth daemon up (holder pid $HB)"

# ---------------------------------------------------------------- dockerd
ls -A /etc/docker > "$W/etc_docker_before.txt" 2>/dev/null || true
"$HERE/mk_rootfs.sh" "$W/rootfs" >/dev/null
mkdir -p "$DOCKER_CONFIG"; echo '{}' > "$W/daemon.json"
if holder_start docker-run docker; then
  HD=$HOLDER_PID
  t0=$(date +%s%N)
  holder_exec "$HD" dockerd --data-root "$W/docker-data" --exec-root "$W/docker-exec" \
    --pidfile "$W/dockerd.pid" -H "unix://$DSOCK" --config-file "$W/daemon.json" \
    --storage-driver vfs --bip 10.65.0.1/24 --default-address-pool base=10.64.0.0/16,size=24 \
    --cgroup-parent /berth-bench-docker --log-level warn \
    </dev/null > "$W/dockerd.log" 2>&1 &
  DJOB=$!   # the nsenter process; it exits when dockerd exits
  for i in $(seq 1 60); do
    if D version >/dev/null 2>&1; then DOCKER_OK=1; break; fi
    kill -0 "$DJOB" 2>/dev/null || { DOCKER_ERR="dockerd exited"; break; }
    sleep 0.5
  done
  if [ $DOCKER_OK = 1 ]; then
    echo "dockerd up in $(ms "$t0") ms (holder pid $HD)"
    if ! err=$(D network create --subnet 10.66.0.0/24 dev 2>&1 >/dev/null); then
      DOCKER_OK=0; DOCKER_ERR="docker network create failed: $err"
    elif ! err=$(tar -C "$W/rootfs" -c . | D import - bx/busybox 2>&1 >/dev/null); then
      DOCKER_OK=0; DOCKER_ERR="docker import failed: $err"
    elif ! err=$(D run --rm --network dev bx/busybox true 2>&1); then
      DOCKER_OK=0; DOCKER_ERR="docker run failed: $err"
    fi
  else
    DOCKER_ERR="${DOCKER_ERR:-dockerd did not become ready within 30 s}: $(tail -5 "$W/dockerd.log" | tr '\n' ' ')"
  fi
else
  DOCKER_ERR="could not create the docker namespace holder"
fi
cp "$W/dockerd.log" "$OUT/dockerd.log" 2>/dev/null
[ $DOCKER_OK = 1 ] || echo "DOCKER NOT MEASURED: $DOCKER_ERR"

# ---------------------------------------------------------------- hyperfine
Bc run --rm --network bench -- true || { echo "berth run --rm failed"; exit 1; }
cmds=(-n "berth none" "$BERTH -H unix://$BSOCK run --rm --network none -- true"
      -n "berth bridge" "$BERTH -H unix://$BSOCK run --rm --network bench -- true"
      -n "berth bridge -p 80" "$BERTH -H unix://$BSOCK run --rm --network bench -p 80 -- true")
if [ $DOCKER_OK = 1 ]; then
  cmds+=(-n "docker none" "$DOCKER -H unix://$DSOCK run --rm --network none bx/busybox true"
         -n "docker bridge" "$DOCKER -H unix://$DSOCK run --rm --network dev bx/busybox true"
         -n "docker bridge -p 80" "$DOCKER -H unix://$DSOCK run --rm --network dev -p 80 bx/busybox true")
fi
timeout 1200 hyperfine -N --runs "$RUNS" --warmup 2 --export-json "$OUT/run_cmd.hyperfine.json" \
  "${cmds[@]}" 2>&1 | tee "$OUT/run_cmd.hyperfine.txt"
hf_rc=${PIPESTATUS[0]}

python3 - "$OUT" "$DOCKER_OK" "$DOCKER_ERR" "$RUNS" "$hf_rc" <<'EOF'
import json, sys
out, ok, err, runs, rc = sys.argv[1], sys.argv[2] == "1", sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
res = {"runs": runs, "docker_ok": ok, "docker_error": err or None, "hyperfine_rc": rc, "results": {}}
try:
    hf = json.load(open(f"{out}/run_cmd.hyperfine.json"))
    for r in hf["results"]:
        t = sorted(x * 1000 for x in r["times"])
        res["results"][r["command"]] = {"median_ms": r["median"] * 1000, "mean_ms": r["mean"] * 1000,
                                        "min_ms": r["min"] * 1000, "max_ms": r["max"] * 1000,
                                        "stddev_ms": (r["stddev"] or 0) * 1000, "times_ms": t}
except Exception as e:
    res["error"] = f"no hyperfine results: {e}"
json.dump(res, open(f"{out}/run_cmd.json", "w"), indent=1)
EOF
echo "wrote $OUT/run_cmd.json"

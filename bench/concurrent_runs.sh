#!/usr/bin/env bash
# N concurrent and N sequential `berth run -d --network dev -- sleep 600` on one network
# (issue 11's measure of the daemon lock: one start waiting for the one before), then the
# same number removed, in a namespace holder of its own (lib.sh). Prints one JSON line.
#
# Env: N (default 100), ROUNDS (default 3; the median is reported), BERTH (binary),
#      OUT (default /tmp/berth-bench).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/berth-bench}; mkdir -p "$OUT"
N=${N:-100}; ROUNDS=${ROUNDS:-3}
BERTH=${BERTH:-$HERE/../target/release/berth}; BERTH=$(readlink -f "$BERTH")
BENCH_WORK=$(mktemp -d /tmp/berth-bench-conc.XXXX); export BENCH_WORK
# shellcheck source=lib.sh
. "$HERE/lib.sh"
[ "$(id -u)" = 0 ] || { echo "concurrent_runs.sh must run as root" >&2; exit 1; }
trap 'holders_kill_all; rm -rf "$BENCH_WORK"' EXIT
holder_start conc host || exit 1
H=$HOLDER_PID
S=$BENCH_WORK/berth.sock
# Runtime files where production keeps them: /run/berth, here the holder's private tmpfs
# (on ext4, creating a container's files right after 100 were removed costs the inode
# allocator a scan past every recently deleted inode: a quarter of the CPU of a round).
holder_exec "$H" "$BERTH" daemon --root "$BENCH_WORK/root" --run /run/berth -H "unix://$S" \
  --resolv-conf /etc/resolv.conf >"$BENCH_WORK/daemon.log" 2>&1 &
for _ in $(seq 100); do "$BERTH" -H "unix://$S" version >/dev/null 2>&1 && break; sleep 0.1; done
B() { "$BERTH" -H "unix://$S" "$@"; }
B network create --subnet 10.88.0.0/16 dev >/dev/null
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
conc=(); seq_=(); rm_=()
for r in $(seq "$ROUNDS"); do
  t=$(ms); seq "$N" | xargs -P "$N" -I{} "$BERTH" -H "unix://$S" run -d --network dev -- sleep 600 >/dev/null; conc+=($(( $(ms) - t )))
  t=$(ms); B ps -q | xargs -P "$N" -n1 "$BERTH" -H "unix://$S" rm -f >/dev/null; rm_+=($(( $(ms) - t )))
  t=$(ms); for _ in $(seq "$N"); do B run -d --network dev -- sleep 600 >/dev/null; done; seq_+=($(( $(ms) - t )))
  B ps -q | xargs -P "$N" -n1 "$BERTH" -H "unix://$S" rm -f >/dev/null
done
c=$(printf '%s\n' "${conc[@]}" | median); s=$(printf '%s\n' "${seq_[@]}" | median); d=$(printf '%s\n' "${rm_[@]}" | median)
line="{\"n\": $N, \"rounds\": $ROUNDS, \"concurrent_run_ms\": $c, \"sequential_run_ms\": $s, \"concurrent_rm_ms\": $d, \"commit\": \"$(git -C "$HERE/.." rev-parse --short HEAD)\"}"
echo "$line" | tee "$OUT/concurrent_runs.json"

#!/usr/bin/env bash
# Run the whole berth benchmark in one go and print ONE table of figures and ratios.
#
#   sudo bench/run.sh                 # full: LEVELS=1,200,1000 ITERS=200, hyperfine RUNS=30
#   sudo QUICK=1 bench/run.sh         # smoke: LEVELS=1,20 ITERS=20 RUNS=5 (also: --quick)
#   sudo bench/run.sh --out DIR       # raw JSON + logs (default /tmp/berth-bench)
#
# Env knobs: LEVELS, ITERS, WARMUP (untimed pairs per level, 2), PAUSE_MS (100), RUNS,
#   TOOLS (default "berth netavark netavark-noport cni cni-noport"; cni-nofw is optional),
#   REF_MAX_LEVEL (default 200 in the full run, none in QUICK) caps the levels of the tools in
#   REF_CAP_TOOLS (default "netavark cni cni-nofw cni-noport") so the full run fits in ~20 min
#   (their 1000 level costs 4-10 min each: setup of 1000 containers at 50-300 ms, then 400
#   timed pairs). netavark-noport is cheap enough to run at 1000. REF_MAX_LEVEL= (empty)
#   removes the cap. SKIP_RUN_CMD=1 skips run_cmd.sh. BERTH (binary).
#
# Safety: every tool runs inside namespace holders this script creates (lib.sh / attach.py);
# nothing is done in the machine's own network namespace. Each part has a hard timeout, and
# on EXIT (also on failure / Ctrl-C) every holder is SIGKILLed by PID, which removes all
# processes, links, rules and namespaces the tools created. The root namespace's netns list,
# links and nft tables are compared before/after and the result is printed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  LEVELS=${LEVELS:-1,20}; ITERS=${ITERS:-20}; RUNS=${RUNS:-5}; REF_MAX_LEVEL=${REF_MAX_LEVEL:-}
  PART_TIMEOUT=${PART_TIMEOUT:-300}
else
  LEVELS=${LEVELS:-1,200,1000}; ITERS=${ITERS:-200}; RUNS=${RUNS:-30}
  REF_MAX_LEVEL=${REF_MAX_LEVEL-200}; PART_TIMEOUT=${PART_TIMEOUT:-3600}
fi
REF_CAP_TOOLS=${REF_CAP_TOOLS-netavark cni cni-nofw cni-noport}
WARMUP=${WARMUP:-2}; PAUSE_MS=${PAUSE_MS:-100}
TOOLS=${TOOLS:-berth netavark netavark-noport cni cni-noport}
OUT=${OUT:-/tmp/berth-bench}
BERTH=$(readlink -f "${BERTH:-$HERE/../target/release/berth}")
export QUICK LEVELS ITERS RUNS WARMUP PAUSE_MS OUT BERTH

[ "$(id -u)" = 0 ] || { echo "run.sh must run as root (sudo bench/run.sh)" >&2; exit 1; }
[ -x "$BERTH" ] || { echo "berth binary not found: $BERTH — run: cargo build --release" >&2; exit 1; }
for b in /usr/lib/podman/netavark /usr/lib/cni/bridge hyperfine unshare nsenter nft ip python3; do
  command -v "$b" >/dev/null || [ -x "$b" ] || echo "warning: $b not found" >&2
done

mkdir -p "$OUT"
rm -f "$OUT"/attach-*.json "$OUT"/attach-*.txt "$OUT"/run_cmd.* "$OUT"/meta.json \
  "$OUT"/table.txt "$OUT"/durations.txt "$OUT"/dockerd.log
export BENCH_WORK=/tmp/berth-bench-work.$$
mkdir -p "$BENCH_WORK"
. "$HERE/lib.sh"

# Snapshot the berth binary: others may run `cargo build --release` while the bench runs,
# and every part must use the same binary (the daemon re-executes itself via current_exe
# for its shims, so the copy is used throughout). Its identity is recorded in meta.json.
BERTH_ORIG=$BERTH
cp "$BERTH_ORIG" "$BENCH_WORK/berth"
BERTH=$BENCH_WORK/berth; export BERTH
"$BERTH" --version >/dev/null || { echo "berth binary copy does not run" >&2; exit 1; }
BERTH_SHA=$(sha256sum "$BERTH" | cut -c1-16)
BERTH_MTIME=$(date -r "$BERTH_ORIG" '+%Y-%m-%d %H:%M:%S')
REPO=$(cd "$HERE/.." && pwd)
GIT_HEAD=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)
GIT_DIRTY=$(git --no-optional-locks -C "$REPO" status --porcelain --untracked-files=no -- src crates Cargo.toml Cargo.lock 2>/dev/null | wc -l)
echo "berth binary: $BERTH_ORIG (mtime $BERTH_MTIME, sha256 $BERTH_SHA…, git HEAD $GIT_HEAD, $GIT_DIRTY modified files in src/crates/Cargo.*) copied to $BERTH"

snapshot() {  # root network namespace state (read-only)
  { echo "## netns"; ip netns list; echo "## links"; ip -o link | awk -F': ' '{print $2}' | sed 's/@.*//';
    echo "## nft"; nft list tables; } 2>&1
}
snapshot > "$BENCH_WORK/root-before.txt"

cleanup() {
  set +e
  holders_kill_all           # holders of interrupted parts, by PID
  rm -rf "$BENCH_WORK"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM HUP

cap_levels() {  # cap_levels LEVELS MAX -> levels <= MAX (MAX empty = no cap)
  local out="" l
  for l in ${1//,/ }; do
    if [ -z "$2" ] || [ "$l" -le "$2" ]; then out="$out${out:+,}$l"; fi
  done
  echo "$out"
}

declare -A CAP
: > "$OUT/durations.txt"
T0=$(date +%s)
echo "berth bench: levels=$LEVELS iters=$ITERS pause=${PAUSE_MS}ms runs=$RUNS tools=[$TOOLS] out=$OUT"
for t in $TOOLS; do
  max=""
  case " $REF_CAP_TOOLS " in *" $t "*) max=$REF_MAX_LEVEL ;; esac
  lv=$(cap_levels "$LEVELS" "$max")
  [ "$lv" != "$LEVELS" ] && CAP[$t]="REF_MAX_LEVEL=$max to fit the ~20 min budget"
  [ -n "$lv" ] || { echo "[$t] no level <= $max, skipped"; continue; }
  echo "=== attach: $t (levels $lv)"
  s=$(date +%s)
  timeout -s TERM -k 30 "$PART_TIMEOUT" python3 "$HERE/attach.py" --tool "$t" --levels "$lv" \
    --iters "$ITERS" --warmup "$WARMUP" --pause-ms "$PAUSE_MS" --berth "$BERTH" \
    --timeout "$PART_TIMEOUT" --out "$OUT/attach-$t.json" 2>&1 | tee "$OUT/attach-$t.txt"
  rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || echo "[$t] FAILED (rc=$rc), see $OUT/attach-$t.txt"
  holders_kill_all
  echo "attach-$t $(( $(date +%s) - s ))" >> "$OUT/durations.txt"
done

if [ "${SKIP_RUN_CMD:-0}" != 1 ]; then
  echo "=== run --rm: berth vs docker"
  s=$(date +%s)
  timeout -s TERM -k 60 "$PART_TIMEOUT" "$HERE/run_cmd.sh" 2>&1 | tee "$OUT/run_cmd.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || echo "run_cmd.sh FAILED, see $OUT/run_cmd.txt"
  holders_kill_all
  echo "run_cmd $(( $(date +%s) - s ))" >> "$OUT/durations.txt"
fi
echo "total $(( $(date +%s) - T0 ))" >> "$OUT/durations.txt"

caps_json=$(for k in "${!CAP[@]}"; do printf '%s\t%s\n' "$k" "${CAP[$k]}"; done)
python3 - "$OUT" "$LEVELS" "$ITERS" "$PAUSE_MS" "$RUNS" "$TOOLS" "$QUICK" "$BERTH_ORIG" "$caps_json" \
  "$BERTH_SHA" "$BERTH_MTIME" "$GIT_HEAD" "$GIT_DIRTY" "$T0" <<'EOF'
import json, os, platform, subprocess, sys, time
out, levels, iters, pause, runs, tools, quick, berth, caps = sys.argv[1:10]
sha, mtime, head, dirty, t0 = sys.argv[10:15]
def sh(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as e:
        return str(e)
dur = {}
for l in open(f"{out}/durations.txt"):
    k, v = l.split()
    dur[k] = int(v)
meta = {
    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(int(t0))) + " (start)",
    "host": f"{platform.node()} kernel {platform.release()}, {os.cpu_count()} CPUs",
    "levels": levels, "iters": int(iters), "pause_ms": float(pause), "hyperfine_runs": int(runs),
    "tools": tools.split(), "quick": quick == "1",
    "caps": dict(l.split("\t", 1) for l in caps.splitlines() if l.strip()),
    "berth_binary": berth + " (copied at start; all parts used the copy)",
    "berth_binary_mtime": mtime, "berth_binary_sha256_16": sha,
    "berth_git_head_at_start": head, "berth_modified_files_at_start": int(dirty),
    "netavark": sh("/usr/lib/podman/netavark", "--version"),
    "dockerd": sh("dockerd", "--version"),
    "durations": dur,
}
json.dump(meta, open(f"{out}/meta.json", "w"), indent=1)
EOF

python3 "$HERE/summarize.py" "$OUT" | tee "$OUT/table.txt"

# leave the machine as we found it
holders_kill_all
snapshot > "$BENCH_WORK/root-after.txt"
if diff "$BENCH_WORK/root-before.txt" "$BENCH_WORK/root-after.txt" > "$BENCH_WORK/root-diff.txt"; then
  echo "root namespace check: netns list, links and nft tables unchanged" | tee -a "$OUT/table.txt"
else
  echo "root namespace check: CHANGED (other users of this machine, or a leak):" | tee -a "$OUT/table.txt"
  tee -a "$OUT/table.txt" < "$BENCH_WORK/root-diff.txt"
fi
echo "raw results: $OUT"

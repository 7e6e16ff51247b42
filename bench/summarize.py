#!/usr/bin/env python3
"""Print ONE table of figures and ratios from a bench output dir.

    bench/summarize.py /tmp/berth-bench

Reads attach-<tool>.json (attach.py), run_cmd.json (run_cmd.sh) and meta.json (run.sh).
Ratios are "<tool> / berth" of the same statistic from the same run (>1 means berth is faster).
"""
import json
import os
import sys

ORDER = ["berth", "netavark", "netavark-noport", "cni", "cni-nofw", "cni-noport"]
DESC = {
    "berth": "berth (connect/disconnect)",
    "netavark": "netavark 1.4",
    "netavark-noport": "netavark 1.4, no port",
    "cni": "CNI bridge→portmap→firewall",
    "cni-nofw": "CNI bridge→portmap",
    "cni-noport": "CNI bridge only",
}
MEASURES = [
    ("attach", "attach (alone)"),
    ("detach", "detach (alone)"),
    ("cycle", "attach+detach back to back"),
]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def num(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return "n/a"
    return f"{a / b:.1f}×"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "/tmp/berth-bench")
    meta = load(os.path.join(out, "meta.json")) or {}
    att = {}
    for t in ORDER:
        d = load(os.path.join(out, f"attach-{t}.json"))
        if d:
            att[t] = d
    rc = load(os.path.join(out, "run_cmd.json"))

    levels = sorted({int(L) for d in att.values() for L in d["levels"]})
    pause = next((d.get("pause_ms") for d in att.values()), None)
    iters = next((d.get("iters") for d in att.values()), None)

    print()
    print(f"berth bench — {meta.get('date', '?')} — {meta.get('host', '')}")
    if meta.get("berth_binary_sha256_16"):
        print(f"berth binary: built {meta.get('berth_binary_mtime')}, sha256 "
              f"{meta['berth_binary_sha256_16']}…, git HEAD {meta.get('berth_git_head_at_start')} "
              f"+ {meta.get('berth_modified_files_at_start')} modified files")
    print(f"attach/detach: n={iters} per cell, pause {num(pause, 0)} ms before each timed "
          f"op in the 'alone' rows, none in the back-to-back rows; wall clock around the "
          f"CLI / plugin execs (process spawn included). ms.")
    print()
    hdr = ["measure", "attached", "tool", "port", "p50 ms", "p99 ms", "tool/berth p50",
           "tool/berth p99"]
    rows = []
    for key, label in MEASURES:
        for L in levels:
            b = att.get("berth", {}).get("levels", {}).get(str(L), {}).get(f"{key}_stats")
            for t in ORDER:
                lv = att.get(t, {}).get("levels", {}).get(str(L))
                if not lv:
                    continue
                s = lv[f"{key}_stats"]
                port = "1 published" if att[t].get("published_port") else "none"
                if t == "berth":
                    r50 = r99 = "1.0×" if b else "n/a"
                else:
                    r50 = ratio(s.get("median"), b and b.get("median"))
                    r99 = ratio(s.get("p99"), b and b.get("p99"))
                rows.append([label, str(L), DESC[t], port, num(s.get("median")),
                             num(s.get("p99")), r50, r99])
    if rc:
        res = rc.get("results", {})
        bn = res.get("berth none", {}).get("median_ms")
        bb = res.get("berth bridge", {}).get("median_ms")
        bp = res.get("berth bridge -p 80", {}).get("median_ms")
        for name, base in (("berth none", bn), ("berth bridge", bb), ("berth bridge -p 80", bp),
                           ("docker none", bn), ("docker bridge", bb),
                           ("docker bridge -p 80", bp)):
            r = res.get(name)
            if not r:
                continue
            net = "none" if "none" in name else ("bench" if name.startswith("berth") else "dev")
            pub = " -p 80" if name.endswith("-p 80") else ""
            tool = (f"berth run --rm --network {net}{pub} -- true"
                    if name.startswith("berth") else
                    f"docker 20.10 run --rm --network {net}{pub} bx/busybox true")
            rows.append([f"run --rm true (hyperfine, {rc.get('runs')} runs)", "-", tool,
                         "1 published" if pub else "none", num(r["median_ms"]), "-",
                         "1.0×" if name.startswith("berth") else ratio(r["median_ms"], base),
                         "-"])
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(hdr)]
    right = {1, 4, 5, 6, 7}

    def line(cells):
        return "| " + " | ".join(c.rjust(w[i]) if i in right else c.ljust(w[i])
                                 for i, c in enumerate(cells)) + " |"
    print(line(hdr))
    print("|" + "|".join(("-" * (w[i] + 1) + ":") if i in right else "-" * (w[i] + 2)
                         for i in range(len(hdr))) + "|")
    prev = None
    for r in rows:
        cells = list(r)
        if prev is not None and (r[0], r[1]) == (prev[0], prev[1]):
            cells[0] = cells[1] = ""
            if r[1] == "-":
                cells[1] = "-"
        prev = r
        print(line(cells))

    # ---- notes
    print()
    print("Notes:")
    print("- berth's attach rows have no published port (its publishing cost is measured by "
          "bench/ports.sh and by the `-p 80` run row); the '1 published' rows are the reference "
          "setups as specified (netavark/CNI with one TCP port each); the 'none' rows are "
          "like-for-like.")
    caps = []
    want = meta.get("levels")
    if want:
        want = [int(x) for x in str(want).split(",")]
        for t in ORDER:
            if t in att:
                got = sorted(int(L) for L in att[t]["levels"])
                miss = [L for L in want if L not in got]
                if miss:
                    caps.append(f"{t}: levels {','.join(map(str, miss))} not measured"
                                f"{' (capped: ' + meta['caps'].get(t) + ')' if meta.get('caps', {}).get(t) else ''}")
    for c in caps:
        print(f"- {c}")
    missing = [t for t in meta.get("tools", []) if t not in att]
    for t in missing:
        print(f"- {t}: NO RESULT (see attach-{t}.txt)")
    print("- back-to-back split, p50 attach / detach inside the cycle (berth's detach returns "
          "before the kernel finishes deleting the veth, so the next attach waits for it):")
    for L in levels:
        parts = []
        for t in ORDER:
            lv = att.get(t, {}).get("levels", {}).get(str(L))
            if lv:
                parts.append(f"{t} {num(lv['cycle_attach_stats'].get('median'))}/"
                             f"{num(lv['cycle_detach_stats'].get('median'))}")
        print(f"    attached={L}: " + "; ".join(parts))
    b = att.get("berth")
    if b:
        fl = b.get("spawn_floor_true", {})
        vr = b.get("berth_version_roundtrip", {})
        print(f"- harness floor: spawning /bin/true from the harness p50 {num(fl.get('median'), 2)} ms; "
              f"`berth version` (CLI spawn + 1 API round trip) p50 {num(vr.get('median'), 2)} ms")
    for t in ORDER:
        if t in att and att[t].get("iptables_rules_at_max") is not None:
            print(f"- {t}: iptables rules/chains at the highest level: "
                  f"{att[t]['iptables_rules_at_max']}/{att[t].get('iptables_chains_at_max')}")
    if rc:
        if not rc.get("docker_ok"):
            print(f"- docker NOT measured: {rc.get('docker_error')}")
        if rc.get("error"):
            print(f"- run --rm: {rc['error']}")
    elif meta:
        print("- run --rm: no run_cmd.json (run_cmd.sh failed or was skipped)")
    print("- 2 shared vCPUs, noisy VM: compare ratios within one run, not absolute ms "
          "across runs.")
    dur = meta.get("durations", {})
    if dur:
        print("- wall time per part (s): " + ", ".join(f"{k} {v}" for k, v in dur.items()))


if __name__ == "__main__":
    main()

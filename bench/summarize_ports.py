#!/usr/bin/env python3
"""Table of bench/ports.sh results: medians over repetitions, ratios to the direct path."""
import glob
import json
import os
import re
import statistics
import sys

R = sys.argv[1]
PATHS = ["direct", "kernel", "bproxy", "dproxy", "socat"]
NAMES = {
    "direct": "direct to the container",
    "kernel": "berth kernel path (nft DNAT)",
    "bproxy": "berth userland proxy",
    "dproxy": "docker-proxy (docker.io)",
    "socat": "socat (fork per conn)",
}


def iperf(p):
    out = []
    for f in glob.glob(f"{R}/iperf_{p}_*.json"):
        try:
            out.append(json.load(open(f))["end"]["sum_received"]["bits_per_second"] / 1e9)
        except Exception:  # noqa: a failed run is reported as missing
            pass
    return out


def wrk(pattern):
    out = []
    for f in glob.glob(pattern):
        m = re.search(r"Requests/sec:\s+([0-9.]+)", open(f).read())
        if m:
            out.append(float(m.group(1)))
    return out


def med(xs):
    return statistics.median(xs) if xs else None


rows = {}
for p in PATHS:
    rows[p] = (med(iperf(p)), med(wrk(f"{R}/ka_{p}_*.txt")), med(wrk(f"{R}/close_{p}_*.txt")))

print("Published-port data path (medians; ratio to direct in parentheses)")
print(f"{'path':34} {'iperf3 Gbit/s':>18} {'keep-alive req/s':>20} {'new conn/s':>18}")
d = rows["direct"]
for p in PATHS:
    cells = []
    for i, v in enumerate(rows[p]):
        if v is None:
            cells.append("-")
        elif d[i]:
            cells.append(f"{v:.2f} ({v / d[i]:.2f}x)" if i == 0 else f"{v:.0f} ({v / d[i]:.2f}x)")
        else:
            cells.append(f"{v:.2f}")
    print(f"{NAMES[p]:34} {cells[0]:>18} {cells[1]:>20} {cells[2]:>18}")

# CPU per new connection: machine busy time and the proxy's own, over each run's requests
HZ = os.sysconf("SC_CLK_TCK")
cpu_rows = {}
for p in PATHS:
    per_machine, per_proxy = [], []
    for f in glob.glob(f"{R}/cpu_close_{p}_*.txt"):
        w = open(f.replace("cpu_close_", "close_")).read()
        m = re.search(r"(\d+) requests in", w)
        if not m or not int(m.group(1)):
            continue
        busy, own = (int(x) for x in open(f).read().split())
        n = int(m.group(1))
        per_machine.append(busy * 1e6 / HZ / n)
        per_proxy.append(own * 1e6 / HZ / n)
    if per_machine:
        cpu_rows[p] = (med(per_machine), med(per_proxy))
if cpu_rows:
    print()
    print("CPU per new connection (machine busy time, all cores; the proxy process's own time)")
    base = cpu_rows.get("direct", (None, None))[0]
    for p in PATHS:
        if p in cpu_rows:
            mach, own = cpu_rows[p]
            extra = f", +{mach - base:.0f} us over direct" if base and p != "direct" else ""
            proxy = f", proxy process {own:.0f} us" if p in ("bproxy", "dproxy") else ""
            print(f"  {NAMES[p]:34} {mach:6.0f} us{extra}{proxy}")

b, dp = rows["bproxy"], rows["dproxy"]
if all(b) and all(dp):
    print("berth proxy / docker-proxy: "
          + ", ".join(f"{x / y:.2f}x" for x, y in zip(b, dp))
          + " (throughput, keep-alive, new connections)")

levels = sorted(int(os.path.basename(f)[8:-5]) for f in glob.glob(f"{R}/publish_*.json"))
if levels:
    print()
    print("Publishing with N ports already published (kernel path)")
    print(f"{'N':>6} {'run -d with N ports, ms':>24} {'one more port: run -d p50 ms':>30} {'new conn/s':>12}")
    for n in levels:
        pub = json.load(open(f"{R}/publish_{n}.json"))["publish_ms"]
        one = [float(x) for x in open(f"{R}/one_more_{n}.txt").read().split()]
        close = med(wrk(f"{R}/close_at_{n}.txt"))
        print(f"{n:>6} {pub:>24.1f} {med(one):>30.1f} {close if close is None else round(close):>12}")

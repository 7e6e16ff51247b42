#!/usr/bin/env python3
"""Summary of bench/dns.sh raw output: q/s, latency and memory per server and level, and
berth's ratios to aardvark-dns and dnsmasq from the same run."""
import glob, os, re, sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stats import summary  # noqa: E402

d = sys.argv[1]


def parse(path):
    t = open(path).read()
    g = lambda pat: (re.search(pat, t) or [None, None])[1]
    return {"qps": float(g(r"Queries per second:\s+([\d.]+)") or 0),
            "lost": int(g(r"Queries lost:\s+(\d+)") or 0),
            "sent": int(g(r"Queries sent:\s+(\d+)") or 0)}


def cpu_us_per_query(label, lvl):
    """Server CPU (user+system) per completed query over the max runs, microseconds."""
    ticks = completed = 0
    hz = os.sysconf("SC_CLK_TCK")
    for p in sorted(glob.glob(f"{d}/cpu_{label}_{lvl}_*.txt")):
        t = open(p.replace("/cpu_", "/max_")).read()
        m = re.search(r"Queries completed:\s+(\d+)", t)
        if m:
            ticks += int(open(p).read().strip() or 0)
            completed += int(m.group(1))
    return ticks * 1e6 / hz / completed if completed else float("nan")


def latencies(path):
    out = []
    for line in open(path):
        m = re.match(r"^[>?] \S+ .* ([\d.]+)$", line.strip())
        if m:
            out.append(float(m.group(1)) * 1000)
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


qps = defaultdict(dict)
rows = []
for f in sorted(glob.glob(f"{d}/max_*_1.txt")):
    label, lvl = re.match(r".*/max_(.+)_(\d+)_1\.txt", f).groups()
    runs = [parse(p) for p in sorted(glob.glob(f"{d}/max_{label}_{lvl}_*.txt"))]
    s = summary([r["qps"] for r in runs])
    qps[label][int(lvl)] = s["median"]
    lat = latencies(f"{d}/q2000_{label}_{lvl}.txt") if os.path.exists(f"{d}/q2000_{label}_{lvl}.txt") else []
    rows.append((label, int(lvl), s, sum(r["lost"] for r in runs), lat))

rows.sort(key=lambda r: (r[0], r[1]))
cpu = defaultdict(dict)
print("server          names   q/s median [min-max] (runs)      lost   p50 ms  p99 ms  max ms @2000 q/s   CPU us/query")
for label, lvl, s, lost, lat in rows:
    c = cpu_us_per_query(label, lvl)
    cpu[label][lvl] = c
    print(f"{label:<15} {lvl:>6}   {s['median']:>8.0f} [{s['min']:.0f}-{s['max']:.0f}] ({s['n']})"
          f"   {lost:>6}   {pct(lat, 50):.3f}   {pct(lat, 99):.3f}   {max(lat) if lat else float('nan'):.2f}"
          f"   {c:8.2f}")

print("\nratios (same run, median q/s):")
for suffix, what in (("", "short names"), ("_fqdn", "qualified names (berth NAME.NETWORK, "
                     "others NAME.dns.podman)"), ("_mt", "two-thread client")):
    if not qps.get("berth" + suffix):
        continue
    print(f" {what}:")
    for lvl in sorted(qps["berth" + suffix]):
        b = qps["berth" + suffix][lvl]
        parts = [f"names={lvl}: berth {b:.0f}"]
        for ref in ("aardvark", "dnsmasq"):
            r = qps.get(ref + suffix, {}).get(lvl)
            if r:
                parts.append(f"{b / r:.2f}x {ref} ({r:.0f})")
        print("  " + ", ".join(parts))
print("\nserver CPU per answered query (lower is better; the others' cost relative to berth's):")
for lvl in sorted(cpu.get("berth", {})):
    b = cpu["berth"][lvl]
    parts = [f"names={lvl}: berth {b:.2f} us"]
    for ref in ("aardvark", "dnsmasq"):
        if lvl in cpu.get(ref, {}):
            parts.append(f"{ref} {cpu[ref][lvl]:.2f} us ({cpu[ref][lvl] / b:.2f}x)")
    print("  " + ", ".join(parts))
for lvl in sorted(qps.get("berth_fwd", {})):
    b = qps["berth_fwd"][lvl]
    a = qps.get("aardvark_fwd", {}).get(lvl)
    print(f"  forwarded names: berth {b:.0f}" + (f", {b / a:.2f}x aardvark ({a:.0f})" if a else ""))
levels = sorted(qps.get("berth", {}))
if len(levels) > 1:
    lo, hi = qps["berth"][levels[0]], qps["berth"][levels[-1]]
    print(f"  berth flatness: {hi / lo:.2f} (q/s at {levels[-1]} names / at {levels[0]})")

rss = defaultdict(dict)
if os.path.exists(f"{d}/rss.txt"):
    for line in open(f"{d}/rss.txt"):
        k, n, v = line.split()
        rss[k.replace("_rss_kb", "")][int(n)] = int(v)
print("\nmemory (RSS, KiB):")
for k, m in rss.items():
    lv = sorted(m)
    per = ""
    if len(lv) > 1 and lv[-1] > lv[0]:
        per = f"  -> {(m[lv[-1]] - m[lv[0]]) * 1024 / (lv[-1] - lv[0]):.0f} bytes per name"
    print(f"  {k:<9} " + ", ".join(f"{n} names: {m[n]}" for n in lv) + per)

fq = f"{d}/first_query.txt"
if os.path.exists(fq):
    lines = open(fq).read().split("\n")
    ok = [float(x.split()[1]) for x in lines if x.startswith("ok ") and len(x.split()) > 1]
    miss = sum(1 for x in lines if x == "miss")
    stale = sum(1 for x in lines if x == "stale")
    print(f"\nfirst query after `berth run -d` returned: {len(ok)} answered, {miss} missed;"
          f" dig query time max {max(ok) if ok else float('nan'):.0f} ms; stale answers after rm: {stale}")

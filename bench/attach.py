#!/usr/bin/env python3
"""Attach/detach latency of one probe sandbox on a bridge network, for berth,
netavark 1.4 and the reference CNI plugin chain.

Adapted from /work/shared/reference/anchor-bench/attach_bench.py.

Run as root from anywhere:
    bench/attach.py --tool berth --levels 1,200,1000 --iters 200 --out /tmp/berth-bench/attach-berth.json

The script creates a private "host" namespace holder first:
    unshare --net --mount --propagation private --pid --fork -- sh -c \
      'mount -t proc proc /proc; mount -t tmpfs tmpfs /run; mount -t sysfs sysfs /sys; ip link set lo up; exec sleep 1000000'
and re-executes itself inside it (nsenter -t <pid 1 of holder> -n -m -p). Every
bridge, veth, nft/iptables rule, sysctl, daemon and container the tools create lives
in that holder (or in network namespaces created inside it). /run is a private tmpfs
in the holder, so `ip netns add` bind mounts and lock files never reach the machine.
When the measurement ends (or fails, or is interrupted) the holder's PID 1 is
SIGKILLed, which tears down everything (processes, namespaces, links, rules).

Per level L (the number of *other* sandboxes already attached to the network):
  1. grow the background population to L (each background setup is timed too);
  2. WARMUP untimed attach/detach pairs;
  3. "isolated": ITERS times { sleep PAUSE; time attach; sleep PAUSE; time detach }
     so that each operation runs alone (no leftover kernel work from the previous one);
  4. "cycle": ITERS times { time (attach; detach) } back to back, no pause.

Timing is the wall clock around subprocess.run() of the CLI / plugin binaries,
so process spawn is included for every tool.

Tools:
  berth            `berth network connect bench probe` / `berth network disconnect bench probe`;
                   background = `berth run -d --name bgN --network bench -- sleep 100000` containers;
                   the probe is a container on a second network (probenet). NO published port
                   (berth has no port publishing yet).
  netavark         netavark 1.4 setup/teardown (NETAVARK_FW=iptables), 1 published port per container
                   (as in the reference), one netns per container.
  netavark-noport  same with empty port_mappings (like-for-like with berth).
  cni              bridge+host-local -> portmap -> firewall(iptables), 1 published port (reference chain).
  cni-nofw         bridge+host-local -> portmap (the reference's "no firewall" variant).
  cni-noport       bridge+host-local only (like-for-like with berth).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stats import summary, fmt  # noqa: E402

CNI_BIN = "/usr/lib/cni"
NETAVARK = "/usr/lib/podman/netavark"
DEFAULT_BERTH = os.path.join(os.path.dirname(HERE), "target", "release", "berth")
TOOLS = ["berth", "netavark", "netavark-noport", "cni", "cni-nofw", "cni-noport"]
CMD_TIMEOUT = 120  # seconds, any single tool invocation


def sh(*args):
    subprocess.run(args, check=True, timeout=CMD_TIMEOUT,
                   stdout=subprocess.DEVNULL)


def timed(args, **kw):
    """Run args, return (ms, CompletedProcess). Raises on non-zero exit."""
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, timeout=CMD_TIMEOUT, **kw)
    dt = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (rc={r.returncode}): "
                           f"{r.stdout[-2000:]!r} {r.stderr[-2000:]!r}")
    return dt, r


def ip4(prefix, i):
    # prefix like "10.88" (/16); index i >= 2
    return f"{prefix}.{i // 250}.{i % 250 + 2}"


# --------------------------------------------------------------------------- tools
class Berth:
    name = "berth"
    published_port = False

    def __init__(self, workdir, binary, log_level):
        self.bin = binary
        self.workdir = workdir
        self.sock = os.path.join(workdir, "berth.sock")
        self.host = f"unix://{self.sock}"
        resolv = os.path.join(workdir, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 10.255.255.53\n")
        self.log = open(os.path.join(workdir, "berth-daemon.log"), "wb")
        self.daemon = subprocess.Popen(
            [self.bin, "daemon", "--root", os.path.join(workdir, "root"),
             # runtime files where production keeps them: /run (the holder's private tmpfs)
             "--run", "/run/berth", "-H", self.host,
             "--resolv-conf", resolv, "--log-level", log_level],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            r = subprocess.run(self.cli("version"), capture_output=True, timeout=30)
            if r.returncode == 0:
                break
            if self.daemon.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"berth daemon did not start: {r.stderr!r}; see "
                                   f"{self.log.name}")
            time.sleep(0.05)
        sh(*self.cli("network", "create", "--subnet", "10.9.0.0/16", "bench"))
        sh(*self.cli("network", "create", "--subnet", "10.10.0.0/24", "probenet"))
        sh(*self.cli("run", "-d", "--name", "probe", "--network", "probenet",
                     "--", "sleep", "100000"))
        self.n = 0

    def cli(self, *args):
        return [self.bin, "-H", self.host, *args]

    def bg_add(self, idx):
        # explicit names: berth's random-name generator has only 30x24 = 720 names and the
        # 721st unnamed container spins forever (src/model.rs random_name, containers.rs loop)
        dt, _ = timed(self.cli("run", "-d", "--name", f"bg{idx}", "--network", "bench", "--",
                               "sleep", "100000"))
        return dt

    def add(self, it):
        return timed(self.cli("network", "connect", "bench", "probe"))[0]

    def delete(self, it):
        return timed(self.cli("network", "disconnect", "bench", "probe"))[0]

    def noop(self):
        return timed(self.cli("version"))[0]

    def stop(self):
        try:
            self.daemon.send_signal(signal.SIGTERM)
            self.daemon.wait(timeout=10)
        except Exception:  # noqa: the holder kill is the real cleanup
            pass


class Netavark:
    published_port = True

    def __init__(self, workdir, prefix, port=True):
        self.name = "netavark" if port else "netavark-noport"
        self.published_port = port
        self.prefix = prefix
        self.port = port
        self.cfgdir = os.path.join(workdir, "netavark-config")
        os.makedirs(self.cfgdir, exist_ok=True)
        self.env = dict(os.environ, NETAVARK_FW="iptables")
        self.opts = {}

    def _options(self, cid, name, ip, hport):
        pm = []
        if self.port:
            pm = [{"host_ip": "", "container_port": 80, "host_port": hport,
                   "range": 1, "protocol": "tcp"}]
        return {
            "container_id": cid,
            "container_name": name,
            "port_mappings": pm,
            "networks": {"bxnet": {"interface_name": "eth0", "static_ips": [ip]}},
            "network_info": {"bxnet": {
                "dns_enabled": False, "driver": "bridge", "id": "b" * 64,
                "internal": False, "ipv6_enabled": False, "name": "bxnet",
                "network_interface": "bxnv0",
                "subnets": [{"gateway": f"{self.prefix}.0.1",
                             "subnet": f"{self.prefix}.0.0/16"}]}},
        }

    def _setup(self, cid, name, netns, ip, hport):
        opts = json.dumps(self._options(cid, name, ip, hport)).encode()
        self.opts[cid] = (opts, netns)
        return timed([NETAVARK, "--config", self.cfgdir, "setup", netns],
                     input=opts, env=self.env)[0]

    def _teardown(self, cid):
        opts, netns = self.opts.pop(cid)
        return timed([NETAVARK, "--config", self.cfgdir, "teardown", netns],
                     input=opts, env=self.env)[0]


class CniChain:
    """Minimal libcni-like conflist driver: ADD in order passing prevResult,
    DEL in reverse order with the cached ADD result as prevResult."""

    def __init__(self, workdir, prefix, variant):
        self.name = variant
        self.published_port = variant != "cni-noport"
        plugins = [
            {"type": "bridge", "bridge": "bxcni0", "isGateway": True,
             "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local",
                      "dataDir": os.path.join(workdir, "ipam"),
                      "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": f"{prefix}.0.0/16",
                                   "gateway": f"{prefix}.0.1"}]]}},
        ]
        if self.published_port:
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True},
                            "snat": True})
        if variant == "cni":
            plugins.append({"type": "firewall", "backend": "iptables"})
        self.conflist = {"cniVersion": "0.4.0", "name": "bxcni", "plugins": plugins}
        with open(os.path.join(workdir, "bxcni.conflist"), "w") as f:
            json.dump(self.conflist, f, indent=1)
        self.cache = {}
        self.plugin_ms = {}  # "CMD type" -> [ms]

    def _conf(self, plugin, prev, hport):
        c = dict(plugin)
        c["cniVersion"] = self.conflist["cniVersion"]
        c["name"] = self.conflist["name"]
        if plugin.get("capabilities", {}).get("portMappings"):
            c["runtimeConfig"] = {"portMappings": [
                {"hostPort": hport, "containerPort": 80, "protocol": "tcp"}]}
        if prev is not None:
            c["prevResult"] = prev
        return json.dumps(c).encode()

    def _exec(self, cmd, plugin, cid, netns, stdin):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": cmd,
               "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
               "CNI_PATH": CNI_BIN}
        dt, r = timed([os.path.join(CNI_BIN, plugin["type"])], input=stdin, env=env)
        self.plugin_ms.setdefault(f"{cmd} {plugin['type']}", []).append(dt)
        return r.stdout

    def _setup(self, cid, name, netns, ip, hport):
        t0 = time.perf_counter()
        prev = None
        for p in self.conflist["plugins"]:
            prev = json.loads(self._exec("ADD", p, cid, netns, self._conf(p, prev, hport)))
        dt = (time.perf_counter() - t0) * 1000
        self.cache[cid] = (prev, netns, hport)
        return dt

    def _teardown(self, cid):
        prev, netns, hport = self.cache.pop(cid)
        t0 = time.perf_counter()
        for p in reversed(self.conflist["plugins"]):
            self._exec("DEL", p, cid, netns, self._conf(p, prev, hport))
        return (time.perf_counter() - t0) * 1000


class NetnsPerContainer:
    """Reference approach for netavark/CNI: one `ip netns add` per container
    (not timed), the probe always uses the same netns with a fresh container id."""

    def __init__(self, drv, prefix):
        self.drv = drv
        self.name = drv.name
        self.published_port = drv.published_port
        self.prefix = prefix
        self.probe_ns = self._mkns("bb-probe")
        self.probe_cid = None

    @staticmethod
    def _mkns(name):
        path = f"/run/netns/{name}"
        if not os.path.exists(path):
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        return path

    def bg_add(self, idx):
        cid = f"{idx:064x}"
        ns = self._mkns(f"bb-c{idx}")
        return self.drv._setup(cid, f"bg{idx}", ns, ip4(self.prefix, 10 + idx), 20000 + idx)

    def add(self, it):
        cid = "f" + f"{it:063x}"
        self.probe_cid = cid
        return self.drv._setup(cid, "probe", self.probe_ns, ip4(self.prefix, 5), 8080)

    def delete(self, it):
        return self.drv._teardown(self.probe_cid)

    def stop(self):
        pass


# --------------------------------------------------------------------------- inner
def inner(a):
    os.makedirs(a.workdir, exist_ok=True)
    levels = [int(x) for x in a.levels.split(",") if x.strip()]
    if levels != sorted(levels):
        raise SystemExit("--levels must be increasing")
    pause = a.pause_ms / 1000.0

    # spawn floor: what the harness itself costs per exec (fork/exec of /bin/true)
    floor = [timed(["/bin/true"])[0] for _ in range(50)]

    if a.tool == "berth":
        drv = Berth(a.workdir, a.berth, a.log_level)
    elif a.tool.startswith("netavark"):
        drv = NetnsPerContainer(Netavark(a.workdir, "10.88", port=(a.tool == "netavark")), "10.88")
    else:
        drv = NetnsPerContainer(CniChain(a.workdir, "10.77", a.tool), "10.77")

    res = {"tool": a.tool, "published_port": drv.published_port,
           "pause_ms": a.pause_ms, "iters": a.iters, "warmup": a.warmup,
           "levels": {}, "bg_setup": [], "spawn_floor_true": summary(floor)}
    if a.tool == "berth":
        res["berth_version_roundtrip"] = summary([drv.noop() for _ in range(50)])
    tag = f"[{a.tool}]"
    print(f"{tag} spawn floor (/bin/true via subprocess.run): {fmt(res['spawn_floor_true'], nd=2)}",
          flush=True)
    if "berth_version_roundtrip" in res:
        print(f"{tag} `berth version` (CLI spawn + 1 API round trip): "
              f"{fmt(res['berth_version_roundtrip'], nd=2)}", flush=True)
    nbg = 0
    it = 0
    t_start = time.time()
    try:
        for L in levels:
            tl = time.time()
            while nbg < L:
                nbg += 1
                res["bg_setup"].append([nbg - 1, drv.bg_add(nbg)])
            t_grow = time.time() - tl
            for _ in range(a.warmup):
                it += 1
                drv.add(it)
                drv.delete(it)
            adds, dels = [], []
            for _ in range(a.iters):
                it += 1
                time.sleep(pause)
                adds.append(drv.add(it))
                time.sleep(pause)
                dels.append(drv.delete(it))
            time.sleep(pause)
            cyc, cadds, cdels = [], [], []
            for _ in range(a.iters):
                it += 1
                t0 = time.perf_counter()
                cadds.append(drv.add(it))
                cdels.append(drv.delete(it))
                cyc.append((time.perf_counter() - t0) * 1000)
            time.sleep(pause)
            lv = {
                "attach": adds, "detach": dels, "cycle": cyc,
                "cycle_attach": cadds, "cycle_detach": cdels,
                "attach_stats": summary(adds), "detach_stats": summary(dels),
                "cycle_stats": summary(cyc), "cycle_attach_stats": summary(cadds),
                "cycle_detach_stats": summary(cdels),
                "grow_seconds": t_grow, "level_seconds": time.time() - tl,
            }
            res["levels"][str(L)] = lv
            for k in ("attach", "detach", "cycle", "cycle_attach", "cycle_detach"):
                print(f"{tag} attached={L:5d} {k:13s} {fmt(lv[k + '_stats'])}", flush=True)
            print(f"{tag} attached={L:5d} (grow {t_grow:.1f} s, level total "
                  f"{lv['level_seconds']:.1f} s)", flush=True)
    finally:
        res["total_seconds"] = time.time() - t_start
        # growth curve of the background setups, binned
        bins = {}
        for n, dt in res["bg_setup"]:
            bins.setdefault((n // 100) * 100, []).append(dt)
        res["bg_setup_binned"] = {str(b): summary(v) for b, v in sorted(bins.items())}
        for b, v in sorted(bins.items()):
            print(f"{tag} background setup with {b:4d}-{b + 99:4d} attached: {fmt(summary(v))}",
                  flush=True)
        if hasattr(getattr(drv, "drv", None), "plugin_ms"):
            res["plugin_ms"] = {k: summary(v) for k, v in drv.drv.plugin_ms.items()}
        if a.tool != "berth":
            try:
                rs = subprocess.run(["iptables-save"], capture_output=True, text=True,
                                    timeout=60).stdout
                res["iptables_rules_at_max"] = sum(1 for l in rs.splitlines() if l.startswith("-A"))
                res["iptables_chains_at_max"] = sum(1 for l in rs.splitlines() if l.startswith(":"))
            except Exception as e:  # noqa
                res["iptables_rules_at_max"] = str(e)
        else:
            try:
                rs = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True,
                                    timeout=60).stdout
                res["nft_ruleset_lines_at_max"] = len(rs.splitlines())
            except Exception as e:  # noqa
                res["nft_ruleset_lines_at_max"] = str(e)
        drv.stop()
        with open(a.out, "w") as f:
            json.dump(res, f)


# --------------------------------------------------------------------------- outer
HOLDER_SETUP = ("mount -t proc proc /proc && mount -t tmpfs -o mode=755 tmpfs /run && "
                "mount -t sysfs sysfs /sys && ip link set lo up && touch {ready} && "
                "exec sleep 1000000")


def is_our_holder(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:2] == [b"sleep", b"1000000"]
    except OSError:
        return False


def kill_holder(pid):
    if is_our_holder(pid):
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            if not os.path.exists(f"/proc/{pid}"):
                break
            time.sleep(0.05)


def outer(a):
    if os.geteuid() != 0:
        raise SystemExit("attach.py must run as root")
    if a.tool == "berth" and not os.access(a.berth, os.X_OK):
        raise SystemExit(f"berth binary not found: {a.berth} (cargo build --release)")
    work = os.environ.get("BENCH_WORK") or f"/tmp/berth-bench-work.{os.getpid()}"
    own_work = "BENCH_WORK" not in os.environ
    tooldir = os.path.join(work, f"attach-{a.tool}")
    os.makedirs(tooldir, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    ready = os.path.join(tooldir, "holder.ready")
    unshare = subprocess.Popen(
        ["unshare", "--net", "--mount", "--propagation", "private", "--pid", "--fork",
         "--", "sh", "-c", HOLDER_SETUP.format(ready=ready)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    holder = None

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    rc = 1
    try:
        for _ in range(200):
            if holder is None:
                try:
                    with open(f"/proc/{unshare.pid}/task/{unshare.pid}/children") as f:
                        kids = f.read().split()
                    holder = int(kids[0]) if kids else None
                except OSError:
                    pass
            if holder is not None and os.path.exists(ready):
                break
            if unshare.poll() is not None:
                break
            time.sleep(0.05)
        if holder is None or not os.path.exists(ready):
            raise RuntimeError("could not create the namespace holder")
        with open(os.path.join(work, "holders.pid"), "a") as f:
            f.write(f"{holder}\n")
        cmd = ["nsenter", "-t", str(holder), "-n", "-m", "-p", "--",
               sys.executable, os.path.abspath(__file__), "--inner",
               "--tool", a.tool, "--levels", a.levels, "--iters", str(a.iters),
               "--warmup", str(a.warmup), "--pause-ms", str(a.pause_ms),
               "--workdir", tooldir, "--out", os.path.abspath(a.out),
               "--berth", a.berth, "--log-level", a.log_level]
        p = subprocess.Popen(cmd)
        try:
            rc = p.wait(timeout=a.timeout)
        except subprocess.TimeoutExpired:
            print(f"[{a.tool}] TIMEOUT after {a.timeout} s, aborting", file=sys.stderr)
            rc = 124
    except KeyboardInterrupt as e:
        print(f"[{a.tool}] interrupted ({e}), cleaning up", file=sys.stderr)
        rc = 130
    finally:
        if holder is not None:
            kill_holder(holder)  # kills daemon, containers, plugins; frees all namespaces
        try:
            unshare.wait(timeout=10)
        except Exception:  # noqa
            pass
        subprocess.run(["rm", "-rf", tooldir])
        if own_work:
            subprocess.run(["rm", "-rf", work])
    return rc


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    quick = os.environ.get("QUICK") == "1"
    ap.add_argument("--tool", choices=TOOLS, required=True)
    ap.add_argument("--levels", default=os.environ.get("LEVELS", "1,20" if quick else "1,200,1000"))
    ap.add_argument("--iters", type=int, default=int(os.environ.get("ITERS", 20 if quick else 200)))
    ap.add_argument("--warmup", type=int, default=int(os.environ.get("WARMUP", 2)))
    ap.add_argument("--pause-ms", type=float, default=float(os.environ.get("PAUSE_MS", 100)))
    ap.add_argument("--out", required=True, help="JSON results file")
    ap.add_argument("--berth", default=os.environ.get("BERTH", DEFAULT_BERTH))
    ap.add_argument("--log-level", default="warn")
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("ATTACH_TIMEOUT", 3600)),
                    help="hard limit for one tool's whole run, seconds")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.inner:
        inner(a)
        return 0
    return outer(a)


if __name__ == "__main__":
    sys.exit(main())

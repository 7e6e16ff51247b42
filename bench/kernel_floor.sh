#!/usr/bin/env bash
# The kernel's own cost of an attach, with no tool around it: a veth whose peer is created in
# a sandbox namespace, enslaved to a bridge, addressed and brought up, with two `ip -batch`
# execs, timed with 1 and with N (default 1000) other sandboxes attached. Everything happens
# in namespaces made here (`bkf-*`), removed on exit.
set -euo pipefail
N=${N:-1000}
if [ "${1:-}" != "--inner" ]; then
  ip netns add bkf-host
  trap 'for n in $(ls /run/netns | grep "^bkf-"); do ip netns del "$n"; done' EXIT
  ip netns exec bkf-host "$0" --inner
  exit 0
fi
ip link set lo up
ip link add kbr0 type bridge
ip link set kbr0 up
ip netns add bkf-probe
probe() {
  python3 - "$1" <<'PY'
import subprocess, sys, time, statistics
t = []
for _ in range(40):
    time.sleep(0.1)
    s = time.perf_counter()
    subprocess.run(['ip', '-batch', '-'], check=True,
                   input=b'link add kpv type veth peer name eth0 netns bkf-probe\nlink set kpv master kbr0 up\n')
    subprocess.run(['ip', '-n', 'bkf-probe', '-batch', '-'], check=True,
                   input=b'addr add 10.99.255.254/16 dev eth0\nlink set eth0 up\n')
    t.append((time.perf_counter() - s) * 1000)
    time.sleep(0.1)
    subprocess.run(['ip', 'link', 'del', 'kpv'], check=True)
print(f'kernel floor attach with {sys.argv[1]} attached: p50 {statistics.median(t):.2f} ms')
PY
}
probe 1
for i in $(seq 1 "$N"); do
  ip netns add "bkf-c$i"
  ip link add "kv$i" type veth peer name eth0 netns "bkf-c$i"
  ip link set "kv$i" master kbr0 up
done
probe "$N"

#!/usr/bin/env bash
# System packages berth needs at run time and in its tests (Debian 12). Idempotent.
set -euo pipefail
pkgs=(nftables iproute2 util-linux socat busybox-static bind9-dnsutils dnsmasq-base iputils-ping procps conntrack ca-certificates curl python3 nginx-light redis-server redis-tools etcd-server protobuf-compiler libprotobuf-dev prometheus)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start services in the machine's own namespaces.
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# py-consul (PyPI): the Consul API test's real client. pip, or Debian's python3-pip first.
if ! python3 -c 'import consul' 2>/dev/null; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  fi
  python3 -m pip install -q py-consul 2>/dev/null || python3 -m pip install -q --break-system-packages py-consul
fi

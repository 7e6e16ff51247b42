#!/usr/bin/env python3
"""Sends a TCP SYN as a raw Ethernet frame (AF_PACKET), the way a neighbour on the LAN could,
and reports whether a SYN-ACK came back: `synack` or `none`.

A normal client cannot do this: its own kernel answers for 127.0.0.1 and ::1 itself, so
a connect() to a loopback address never leaves the machine. A raw frame to the target's MAC
with a loopback destination is exactly what an attacker on the same link sends.

usage: raw_syn.py IFACE DST_MAC SRC_IP DST_IP DPORT [SECONDS]
"""
import ipaddress
import os
import random
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_syn(src, dst, sport, dport, seq):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 6, len(hdr))
    else:
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(hdr), 6)
    c = checksum(pseudo + hdr)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:]


def frame(dst_mac, src_mac, src, dst, sport, dport, seq):
    tcp = tcp_syn(src, dst, sport, dport, seq)
    if src.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.randint(0, 65535),
                         0x4000, 64, 6, 0, src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        ethertype = 0x0800
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, src.packed, dst.packed)
        ethertype = 0x86DD
    return dst_mac + src_mac + struct.pack("!H", ethertype) + ip + tcp


def is_synack(pkt, src, dst, sport, dport):
    """A SYN-ACK from dst:dport to src:sport in an Ethernet frame."""
    if len(pkt) < 14:
        return False
    ethertype = struct.unpack("!H", pkt[12:14])[0]
    if ethertype == 0x0800 and dst.version == 4:
        ip = pkt[14:]
        ihl = (ip[0] & 0x0F) * 4
        if len(ip) < ihl + 14 or ip[9] != 6 or ip[12:16] != dst.packed or ip[16:20] != src.packed:
            return False
        tcp = ip[ihl:]
    elif ethertype == 0x86DD and dst.version == 6:
        ip = pkt[14:]
        if len(ip) < 54 or ip[6] != 6 or ip[8:24] != dst.packed or ip[24:40] != src.packed:
            return False
        tcp = ip[40:]
    else:
        return False
    sp, dp = struct.unpack("!HH", tcp[:4])
    flags = tcp[13]
    return sp == dport and dp == sport and flags & 0x12 == 0x12


def main():
    iface, dst_mac, src_ip, dst_ip, dport = sys.argv[1:6]
    seconds = float(sys.argv[6]) if len(sys.argv) > 6 else 2.0
    src, dst = ipaddress.ip_address(src_ip), ipaddress.ip_address(dst_ip)
    dport = int(dport)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    src_mac = s.getsockname()[4]
    dmac = bytes.fromhex(dst_mac.replace(":", ""))
    sport = random.randint(20000, 60000)
    seq = random.randint(0, 2**32 - 1)
    s.settimeout(0.2)
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        # A few tries: the first frame may race the target learning our MAC.
        if sent < 4:
            s.send(frame(dmac, src_mac, src, dst, sport, dport, seq))
            sent += 1
        end = time.monotonic() + 0.3
        while time.monotonic() < min(end, deadline):
            try:
                pkt = s.recv(65535)
            except socket.timeout:
                continue
            if is_synack(pkt, src, dst, sport, dport):
                print("synack")
                return
    print("none")


if __name__ == "__main__":
    main()

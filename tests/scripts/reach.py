#!/usr/bin/env python3
"""Reachability tools for the isolation tests. Bounded in time: every wait has a deadline.

  reach.py serve PORT SECS            TCP and UDP on PORT: answer "peer=IP" to everyone
  reach.py probe TIMEOUT TARGET...    try each TARGET at once; print "TARGET ok|no"
                                      TARGET: tcp:IP:PORT, udp:IP:PORT or icmp:IP
  reach.py sink PORT SECS             print "from=IP data=..." for each UDP datagram
  reach.py raw-listen IFACE ETHERTYPE SECS    print "ready" once listening, then how many
                                      frames of ETHERTYPE arrived within SECS
  reach.py raw-send IFACE DST_MAC ETHERTYPE   one raw Ethernet frame from IFACE's own MAC
  reach.py udp-frame IFACE SRC_MAC SRC_IP DST_MAC DST_IP PORT DATA
                                      one hand-made Ethernet/IPv4/UDP frame
  reach.py arp-reply IFACE CLAIMED_IP DST_MAC DST_IP
                                      an ARP reply: CLAIMED_IP is at IFACE's MAC
  reach.py ipv6-frames IFACE GATEWAY_MAC
                                      three hand-made IPv6 frames: a neighbour solicitation
                                      to GATEWAY_MAC, an MLD report to 33:33:00:00:00:16 and a
                                      forged neighbour advertisement to all nodes
"""
import socket
import struct
import subprocess
import sys
import threading
import time

from udp import datagrams


def serve(port, secs):
    end = time.time() + secs

    def tcp():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(64)
        s.settimeout(0.5)
        while time.time() < end:
            try:
                c, addr = s.accept()
            except socket.timeout:
                continue
            c.sendall(f"peer={addr[0]}\n".encode())
            c.close()

    def udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        s.settimeout(0.5)
        while time.time() < end:
            try:
                _, addr = s.recvfrom(2048)
            except socket.timeout:
                continue
            s.sendto(f"peer={addr[0]}\n".encode(), addr)

    threads = [threading.Thread(target=f, daemon=True) for f in (tcp, udp)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def probe_one(target, timeout):
    kind, rest = target.split(":", 1)
    try:
        if kind == "icmp":
            r = subprocess.run(["ping", "-c", "1", "-W", str(int(timeout) or 1), rest],
                               capture_output=True, timeout=timeout + 2)
            return r.returncode == 0
        host, port = rest.rsplit(":", 1)
        if kind == "tcp":
            c = socket.create_connection((host, int(port)), timeout=timeout)
            c.settimeout(timeout)
            return c.recv(100).startswith(b"peer=")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        s.sendto(b"hello", (host, int(port)))
        return s.recvfrom(100)[0].startswith(b"peer=")
    except (OSError, subprocess.TimeoutExpired):
        return False


def probe(timeout, targets):
    results = {}

    def run(t):
        results[t] = probe_one(t, timeout)

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t in targets:
        print(f"{t} {'ok' if results[t] else 'no'}")


def sink(port, secs):
    for _, data, addr in datagrams(("0.0.0.0", port), secs):
        print(f"from={addr[0]} data={data.decode(errors='replace')}", flush=True)


def mac_bytes(mac):
    return bytes(int(b, 16) for b in mac.split(":"))


def own_mac(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return mac_bytes(f.read().strip())


def raw_socket(iface, ethertype=0):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    s.bind((iface, ethertype))
    return s


def raw_listen(iface, ethertype, secs):
    s = raw_socket(iface, ethertype)
    s.settimeout(0.2)
    print("ready", flush=True)
    end = time.time() + secs
    count = 0
    while time.time() < end:
        try:
            frame = s.recv(2048)
        except socket.timeout:
            continue
        if struct.unpack("!H", frame[12:14])[0] == ethertype:
            count += 1
    print(count)


def raw_send(iface, dst_mac, ethertype):
    s = raw_socket(iface)
    frame = mac_bytes(dst_mac) + own_mac(iface) + struct.pack("!H", ethertype)
    s.send(frame + b"netd raw frame".ljust(46, b"."))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(iface, src_mac, src_ip, dst_mac, dst_ip, port, data):
    payload = data.encode()
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload  # no checksum
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    s = raw_socket(iface)
    s.send(mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x00" + ip + udp)


def arp_reply(iface, claimed_ip, dst_mac, dst_ip):
    mac = own_mac(iface)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, mac, socket.inet_aton(claimed_ip),
                      mac_bytes(dst_mac), socket.inet_aton(dst_ip))
    s = raw_socket(iface)
    for _ in range(3):
        s.send(mac_bytes(dst_mac) + mac + b"\x08\x06" + arp)
        time.sleep(0.05)


def ipv6_frames(iface, gateway_mac):
    mac = own_mac(iface)
    link_local = bytes.fromhex("fe80000000000000") + mac[:3] + b"\xff\xfe" + mac[3:]
    all_nodes = bytes.fromhex("ff020000000000000000000000000001")
    mld_routers = bytes.fromhex("ff020000000000000000000000000016")
    target = bytes.fromhex("fe800000000000000000000000000001")  # claimed: the gateway's

    def frame(dst_mac, dst_ip, icmp):
        header = struct.pack("!IHBB", 0x60000000, len(icmp), 58, 255) + link_local + dst_ip
        pseudo = link_local + dst_ip + struct.pack("!I3xB", len(icmp), 58)
        icmp = icmp[:2] + struct.pack("!H", checksum(pseudo + icmp)) + icmp[4:]
        return dst_mac + mac + b"\x86\xdd" + header + icmp

    s = raw_socket(iface)
    s.send(frame(mac_bytes(gateway_mac), target, struct.pack("!BBH4x", 135, 0, 0) + target))
    s.send(frame(b"\x33\x33\x00\x00\x00\x16", mld_routers, struct.pack("!BBH4xH", 143, 0, 0, 0)))
    s.send(frame(b"\x33\x33\x00\x00\x00\x01", all_nodes,
                 struct.pack("!BBHB3x", 136, 0, 0, 0x20) + target + b"\x02\x01" + mac))


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "serve":
        serve(int(args[0]), float(args[1]))
    elif mode == "probe":
        probe(float(args[0]), args[1:])
    elif mode == "sink":
        sink(int(args[0]), float(args[1]))
    elif mode == "raw-listen":
        raw_listen(args[0], int(args[1], 0), float(args[2]))
    elif mode == "raw-send":
        raw_send(args[0], args[1], int(args[2], 0))
    elif mode == "udp-frame":
        udp_frame(args[0], args[1], args[2], args[3], args[4], int(args[5]), args[6])
    elif mode == "arp-reply":
        arp_reply(args[0], args[1], args[2], args[3])
    elif mode == "ipv6-frames":
        ipv6_frames(args[0], args[1])
    else:
        sys.exit(f"unknown mode {mode}")

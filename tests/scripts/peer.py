#!/usr/bin/env python3
"""Test servers and clients for netd's end-to-end tests. Bounded in time: every socket has a
timeout and every server exits after serving or after its deadline.

  peer.py tcp-server PORT [COUNT]      reply "peer=IP:PORT" to each of COUNT connections
  peer.py udp-server PORT [COUNT [TAG]] echo "[TAG ]peer=IP:PORT" to each of COUNT datagrams
  peer.py udp-stream HOST PORT SECS [UNTIL]
                                       one flow, a datagram every 50 ms, replies timestamped;
                                       stops early at the first reply that contains UNTIL
  peer.py bulk-server PORT BYTES       send BYTES to one connection, slowly enough to last
  peer.py tcp-client HOST PORT         print the server's reply
  peer.py tcp-peername HOST PORT       print the reply and what getpeername() says
  peer.py udp-client HOST PORT         print the server's reply
  peer.py bulk-client HOST PORT        print how many bytes arrived before the server closed
  peer.py sink-server PORT             print how many bytes one connection sent before it closed
  peer.py bulk-push HOST PORT BYTES    send BYTES, then wait for the server to close
  peer.py udp-echo PORT SECS          echo each datagram whole, after "IP:PORT " of its sender
  peer.py udp-big HOST PORT BYTES      send one datagram of BYTES (fragmented on the way) until
                                       its whole echo comes back; print "IP:PORT BYTES" of it
  peer.py udp-from PORT HOST DPORT     from a socket bound to PORT, print the reply to one query
  peer.py udp-many HOST PORT COUNT LO HI
                                       COUNT queries, each from a new socket with an ephemeral
                                       port; print "replies=N in_range=M" (ports in LO..=HI)
  peer.py tcp-echo PORT SECS           echo every connection's bytes back, a thread each
  peer.py tcp-hold HOST PORT SECS      one connection: an exchange, "ready", SECS idle, an
                                       exchange, "ok"
  peer.py udp-flood HOST PORT COUNT    COUNT datagrams, each from its own source port: new flows
  peer.py syn-flood HOST PORT COUNT    COUNT SYNs from random 198.18.0.0/15 sources (raw socket)
  peer.py frag-needed SECS             print "ready", then the tuple embedded in the first
                                       ICMP "fragmentation needed" this namespace receives
  peer.py tcp-stream HOST PORT DIR     one connection to an echo server, 1 KiB every 10 ms, each
                                       echo checked; writes the bytes echoed so far to DIR/progress
                                       until DIR/stop exists; prints "sent=N echoed=M max_gap_ms=G"
  peer.py udp-count HOST PORT DIR      one flow to udp-echo, a numbered datagram every 10 ms, the
                                       same progress and stop files; prints "sent=N replied=M"
"""
import os
import socket
import sys
import threading
import time

DEADLINE = time.time() + 120


def tcp_server(port, count=1000):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    s.settimeout(1)
    served = 0
    while served < count and time.time() < DEADLINE:
        try:
            c, addr = s.accept()
        except socket.timeout:
            continue
        c.sendall(f"peer={addr[0]}:{addr[1]}\n".encode())
        c.close()
        served += 1


def udp_server(port, count=1000, tag=""):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(1)
    served = 0
    prefix = f"{tag} " if tag else ""
    while served < count and time.time() < DEADLINE:
        try:
            _, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        s.sendto(f"{prefix}peer={addr[0]}:{addr[1]}\n".encode(), addr)
        served += 1


def udp_stream(host, port, secs, until=None):
    """One socket, one flow: a datagram every 50 ms; prints each reply with its arrival time."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.05)
    end = time.time() + secs
    while time.time() < end:
        s.sendto(b"ping", (host, port))
        try:
            data = s.recvfrom(200)[0].decode().strip()
            print(f"{time.time():.3f} {data}", flush=True)
            if until and until in data:
                return
        except socket.timeout:
            pass
        time.sleep(0.05)


def bulk_server(port, total):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    s.settimeout(60)
    c, _ = s.accept()
    chunk = b"x" * 65536
    sent = 0
    while sent < total:
        c.sendall(chunk[: min(len(chunk), total - sent)])
        sent += min(len(chunk), total - sent)
        time.sleep(0.01)
    c.close()


def retry(fn, secs=20):
    """Calls fn until it succeeds, for at most SECS: a server may still be starting."""
    end = time.time() + secs
    while True:
        try:
            return fn()
        except OSError:
            if time.time() >= end:
                raise
            time.sleep(0.1)


def tcp_client(host, port):
    def once():
        c = socket.create_connection((host, port), timeout=3)
        return c.recv(200).decode().strip()
    print(retry(once))


def tcp_peername(host, port):
    def once():
        c = socket.create_connection((host, port), timeout=3)
        name = c.getpeername()
        return f"{c.recv(200).decode().strip()} peername={name[0]}:{name[1]}"
    print(retry(once))


def udp_client(host, port):
    def once():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.5)
        s.sendto(b"ping", (host, port))
        return s.recvfrom(200)[0].decode().strip()
    print(retry(once))


def bulk_client(host, port):
    c = retry(lambda: socket.create_connection((host, port), timeout=3))
    c.settimeout(30)
    got = 0
    while True:
        data = c.recv(1 << 16)
        if not data:
            break
        got += len(data)
    print(got)


def sink_server(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    s.settimeout(60)
    c, _ = s.accept()
    c.settimeout(30)
    got = 0
    while True:
        data = c.recv(1 << 16)
        if not data:
            break
        got += len(data)
    c.close()
    print(got, flush=True)


def bulk_push(host, port, total):
    c = retry(lambda: socket.create_connection((host, port), timeout=3))
    c.settimeout(30)
    c.sendall(b"x" * total)
    c.shutdown(socket.SHUT_WR)
    # The server closes once it has read everything: every byte made it through.
    while c.recv(1 << 16):
        pass
    print(total)


def udp_echo(port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(0.2)
    end = time.time() + secs
    while time.time() < end:
        try:
            data, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        s.sendto(f"{addr[0]}:{addr[1]} ".encode() + data, addr)


def udp_big(host, port, total):
    payload = bytes(i % 251 for i in range(total))

    def once():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.5)
        s.sendto(payload, (host, port))
        reply = s.recvfrom(65535)[0]
        seen, _, echoed = reply.partition(b" ")
        if echoed != payload:
            raise OSError(f"echo of {len(echoed)} bytes differs")
        return f"{seen.decode()} {len(echoed)}"
    print(retry(once))


def udp_from(port, host, dport):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(0.5)

    def once():
        s.sendto(b"query", (host, dport))
        return s.recvfrom(2048)[0].decode()
    print(retry(once))


def udp_many(host, port, count, lo, hi):
    replies = in_range = 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1)
        s.connect((host, port))
        if lo <= s.getsockname()[1] <= hi:
            in_range += 1
        s.send(b"q")
        try:
            s.recv(2048)
            replies += 1
        except socket.timeout:
            pass
        s.close()
    print(f"replies={replies} in_range={in_range}")


def tcp_echo(port, secs):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    s.settimeout(1)
    end = time.time() + secs

    def echo(c):
        c.settimeout(secs)
        try:
            while data := c.recv(4096):
                c.sendall(data)
        except OSError:
            pass
        c.close()
    while time.time() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=echo, args=(c,), daemon=True).start()


def tcp_hold(host, port, secs):
    c = retry(lambda: socket.create_connection((host, port), timeout=3))
    c.settimeout(10)
    c.sendall(b"1")
    assert c.recv(1) == b"1"
    print("ready", flush=True)
    time.sleep(secs)
    c.sendall(b"2")
    print("ok" if c.recv(1) == b"2" else "lost", flush=True)


def udp_flood(host, port, count):
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 20000 + i % 40000))
        s.sendto(b"f", (host, port))
        s.close()
    print(f"sent {count}")


def syn_flood(host, port, count):
    import random
    import struct
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    dst = socket.inet_aton(host)
    for _ in range(count):
        src = bytes([198, 18 + random.randint(0, 1), random.randint(0, 255), random.randint(1, 254)])
        sport = random.randint(1024, 65535)
        tcp = struct.pack("!HHIIBBHHH", sport, port, random.getrandbits(32), 0, 0x50, 0x02, 64240, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
        s.sendto(ip + tcp, (host, 0))
    print(f"sent {count}")


def checksum(data):
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frag_needed(secs):
    """A raw ICMP socket sees every ICMP message the namespace receives, errors included."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(1)
    print("ready", flush=True)
    end = time.time() + secs
    while time.time() < end:
        try:
            pkt = s.recv(2048)
        except socket.timeout:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        icmp = pkt[ihl:]
        if icmp[0] != 3 or icmp[1] != 4:
            continue
        inner = icmp[8:]
        iihl = (inner[0] & 0x0F) * 4
        l4 = inner[iihl:]
        src = socket.inet_ntoa(inner[12:16])
        dst = socket.inet_ntoa(inner[16:20])
        sport = int.from_bytes(l4[0:2], "big")
        dport = int.from_bytes(l4[2:4], "big")
        mtu = int.from_bytes(icmp[6:8], "big")
        print(f"mtu={mtu} embedded={src}:{sport}>{dst}:{dport}", flush=True)
        return


def progress(folder, count):
    tmp = os.path.join(folder, "progress.tmp")
    with open(tmp, "w") as f:
        f.write(str(count))
    os.replace(tmp, os.path.join(folder, "progress"))


def stopped(folder):
    return os.path.exists(os.path.join(folder, "stop")) or time.time() >= DEADLINE


def tcp_stream(host, port, folder):
    c = retry(lambda: socket.create_connection((host, port), timeout=3))
    c.settimeout(30)
    sent = echoed = max_gap = 0
    last = time.time()
    i = 0
    while not stopped(folder):
        chunk = bytes([i % 251]) * 1024
        c.sendall(chunk)
        sent += len(chunk)
        got = b""
        while len(got) < len(chunk):
            part = c.recv(len(chunk) - len(got))
            if not part:
                sys.exit(f"closed by the peer after {echoed} bytes")
            got += part
        if got != chunk:
            sys.exit(f"the echo of chunk {i} differs")
        echoed += len(got)
        now = time.time()
        max_gap, last = max(max_gap, now - last), now
        if i % 10 == 0:
            progress(folder, echoed)
        i += 1
        time.sleep(0.01)
    c.close()
    print(f"sent={sent} echoed={echoed} max_gap_ms={int(max_gap * 1000)}")


def udp_count(host, port, folder):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    replied = set()

    def receive():
        while True:
            try:
                data = s.recv(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            replied.add(int(data.split(b" ")[-1]))
            if len(replied) % 10 == 0:
                progress(folder, len(replied))
    s.settimeout(1)
    threading.Thread(target=receive, daemon=True).start()
    sent = 0
    while not stopped(folder):
        s.send(str(sent).encode())
        sent += 1
        time.sleep(0.01)
    # What is still on its way has a second to come back.
    end = time.time() + 1
    while len(replied) < sent and time.time() < end:
        time.sleep(0.01)
    print(f"sent={sent} replied={len(replied)}")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "tcp-server":
        tcp_server(int(args[0]), *(int(a) for a in args[1:]))
    elif mode == "udp-server":
        udp_server(int(args[0]), *(int(a) for a in args[1:2]), *args[2:3])
    elif mode == "udp-stream":
        udp_stream(args[0], int(args[1]), float(args[2]), args[3] if len(args) > 3 else None)
    elif mode == "bulk-server":
        bulk_server(int(args[0]), int(args[1]))
    elif mode == "tcp-client":
        tcp_client(args[0], int(args[1]))
    elif mode == "tcp-peername":
        tcp_peername(args[0], int(args[1]))
    elif mode == "udp-client":
        udp_client(args[0], int(args[1]))
    elif mode == "bulk-client":
        bulk_client(args[0], int(args[1]))
    elif mode == "sink-server":
        sink_server(int(args[0]))
    elif mode == "bulk-push":
        bulk_push(args[0], int(args[1]), int(args[2]))
    elif mode == "udp-echo":
        udp_echo(int(args[0]), float(args[1]))
    elif mode == "udp-big":
        udp_big(args[0], int(args[1]), int(args[2]))
    elif mode == "udp-from":
        udp_from(int(args[0]), args[1], int(args[2]))
    elif mode == "udp-many":
        udp_many(args[0], int(args[1]), *(int(a) for a in args[2:5]))
    elif mode == "tcp-echo":
        tcp_echo(int(args[0]), float(args[1]))
    elif mode == "tcp-hold":
        tcp_hold(args[0], int(args[1]), float(args[2]))
    elif mode == "udp-flood":
        udp_flood(args[0], int(args[1]), int(args[2]))
    elif mode == "syn-flood":
        syn_flood(args[0], int(args[1]), int(args[2]))
    elif mode == "tcp-stream":
        tcp_stream(args[0], int(args[1]), args[2])
    elif mode == "udp-count":
        udp_count(args[0], int(args[1]), args[2])
    elif mode == "frag-needed":
        frag_needed(float(args[0]))
    else:
        sys.exit(f"unknown mode {mode}")

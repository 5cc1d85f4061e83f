#!/usr/bin/env python3
"""DNS tools for the embedded-DNS tests. Bounded in time.

  dns.py upstream PORT SECS     a resolver on 127.0.0.1:PORT (UDP): outside.test -> 192.0.2.53,
                                NXDOMAIN for anything else; prints each name it was asked
  dns.py silent PORT SECS       a resolver on 127.0.0.1:PORT that never answers (an
                                upstream gone away); prints "ready"
  dns.py flood SERVER COUNT     COUNT queries for names nobody knows, as fast as one socket
                                sends them, answers unread; prints "sent COUNT"
  dns.py garbage SERVER         send malformed queries over UDP; print what came back
  dns.py half-tcp SERVER        over TCP: announce a query, send half of it, reset the
                                connection; print "reset"
  dns.py tcp-hold SERVER N M    open N TCP connections with a query answered on each, then M
                                more; query each again: print "held H refused R answered A"
                                (H of N answered at first, R of M closed without an answer,
                                A of the N answered again)
"""
import socket
import struct
import sys
import time

from udp import datagrams


def qname(data, off=12):
    labels = []
    while data[off]:
        n = data[off]
        labels.append(data[off + 1:off + 1 + n].decode())
        off += 1 + n
    return ".".join(labels), off + 1


def upstream(port, secs):
    for s, data, addr in datagrams(("127.0.0.1", port), secs):
        name, end_q = qname(data)
        print(name, flush=True)
        qid = data[:2]
        question = data[12:end_q + 4]
        if name.lower() == "outside.test":
            header = qid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
            answer = struct.pack("!HHHLH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton("192.0.2.53")
            s.sendto(header + question + answer, addr)
        else:
            header = qid + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0)
            s.sendto(header + question, addr)


def query(name, qid=0x1234):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 1, 1)


def silent(port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.settimeout(0.2)
    print("ready", flush=True)
    end = time.time() + secs
    while time.time() < end:
        try:
            s.recv(2048)
        except socket.timeout:
            pass


def flood(server, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        s.sendto(query(f"n{i}.flood.test", qid=i & 0xFFFF), (server, 53))
    print(f"sent {count}")


def garbage(server):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    for payload in [b"\x12", b"\x12\x34\x01\x00\x00\x01", b"\xff" * 40,
                    query("web")[:-3]]:
        s.sendto(payload, (server, 53))
        try:
            reply = s.recv(2048)
            rcode = reply[3] & 0x0F if len(reply) >= 4 else None
            print(f"reply rcode={rcode}")
        except socket.timeout:
            print("no reply")


def half_tcp(server):
    q = query("web")
    c = socket.create_connection((server, 53), timeout=2)
    c.sendall(struct.pack("!H", len(q)) + q[: len(q) // 2])
    time.sleep(0.2)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    print("reset")


def tcp_exchange(c, name):
    """An answer to a query for `name` on connection `c`, or None if it was closed."""
    q = query(name)
    try:
        c.sendall(struct.pack("!H", len(q)) + q)
        head = c.recv(2)
        if len(head) < 2:
            return None
        n = struct.unpack("!H", head)[0]
        data = b""
        while len(data) < n:
            chunk = c.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data
    except OSError:
        return None


def tcp_hold(server, n, m):
    held = [socket.create_connection((server, 53), timeout=3) for _ in range(n)]
    answered_first = sum(tcp_exchange(c, "web") is not None for c in held)
    # Again, just before the extra ones: no held connection is near the idle timeout.
    sum(tcp_exchange(c, "web") is not None for c in held)
    refused = 0
    for _ in range(m):
        c = socket.create_connection((server, 53), timeout=3)
        if tcp_exchange(c, "web") is None:
            refused += 1
        c.close()
    answered = sum(tcp_exchange(c, "web") is not None for c in held)
    print(f"held {answered_first} refused {refused} answered {answered}", flush=True)
    for c in held:
        c.close()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "upstream":
        upstream(int(args[0]), float(args[1]))
    elif mode == "silent":
        silent(int(args[0]), float(args[1]))
    elif mode == "flood":
        flood(args[0], int(args[1]))
    elif mode == "garbage":
        garbage(args[0])
    elif mode == "half-tcp":
        half_tcp(args[0])
    elif mode == "tcp-hold":
        tcp_hold(args[0], int(args[1]), int(args[2]))
    else:
        sys.exit(f"unknown mode {mode}")

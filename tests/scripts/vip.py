#!/usr/bin/env python3
"""Backends and clients of the virtual-IP tests. Bounded in time: every wait has a deadline.

  vip.py serve PORT SECS NAME       TCP and UDP on PORT: answer NAME to each connection, to
                                    each line received on it, and to each datagram
  vip.py connect IP PORT COUNT [SPORT_BASE]
                                    COUNT TCP connections one after the other; prints a JSON
                                    object {"sport": name, ...}; with SPORT_BASE, connection i
                                    leaves from port SPORT_BASE+i (closed by RST, so that the
                                    same port can be used again at once)
  vip.py udp IP PORT COUNT          COUNT datagrams, each from a new socket (all held open to
                                    the end, so that each is its own flow: a closed socket's
                                    port could be drawn again); prints the JSON list of the
                                    names that answered
  vip.py hold IP PORT SECS [UNTIL]  one TCP connection kept for SECS, asking every 0.2 s;
                                    prints the JSON list of the names that answered; with
                                    UNTIL, ends as soon as file UNTIL exists, and fails if it
                                    did not appear within SECS
"""
import json
import os
import socket
import struct
import sys
import threading
import time


def serve(port, secs, name):
    end = time.time() + secs
    answer = f"{name}\n".encode()

    def conversation(c):
        c.settimeout(max(end - time.time(), 0.1))
        try:
            c.sendall(answer)
            while c.recv(64):
                c.sendall(answer)
        except OSError:
            pass
        finally:
            c.close()

    def tcp():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(256)
        s.settimeout(0.5)
        while time.time() < end:
            try:
                c, _ = s.accept()
            except socket.timeout:
                continue
            threading.Thread(target=conversation, args=(c,), daemon=True).start()

    def udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        s.settimeout(0.5)
        while time.time() < end:
            try:
                _, addr = s.recvfrom(2048)
            except socket.timeout:
                continue
            s.sendto(answer, addr)

    threads = [threading.Thread(target=f, daemon=True) for f in (tcp, udp)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def first_line(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(64)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def connect(ip, port, count, sport_base=None):
    names = {}
    for i in range(count):
        s = socket.socket()
        s.settimeout(3)
        if sport_base is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", sport_base + i))
        try:
            s.connect((ip, port))
            name = first_line(s)
        except OSError as e:
            name = f"error:{e.__class__.__name__}"
        if sport_base is not None:
            # Linger 0: the close is an RST, and the port has no TIME_WAIT.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        names[str(i if sport_base is None else sport_base + i)] = name
    print(json.dumps(names))


def udp(ip, port, count):
    names, held = [], []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        held.append(s)
        s.settimeout(2)
        try:
            s.sendto(b"?", (ip, port))
            data, _ = s.recvfrom(64)
            names.append(data.decode().strip())
        except OSError as e:
            names.append(f"error:{e.__class__.__name__}")
    for s in held:
        s.close()
    print(json.dumps(names))


def hold(ip, port, secs, until=None):
    s = socket.create_connection((ip, port), timeout=3)
    names = [first_line(s)]
    end = time.time() + secs
    while time.time() < end:
        if until and os.path.exists(until):
            break
        time.sleep(0.2)
        try:
            s.sendall(b"?\n")
            names.append(first_line(s))
        except OSError as e:
            names.append(f"error:{e.__class__.__name__}")
            break
    s.close()
    print(json.dumps(names))
    if until and not os.path.exists(until):
        sys.exit(f"{until} did not appear within {secs} s")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        serve(int(args[0]), float(args[1]), args[2])
    elif cmd == "connect":
        base = int(args[3]) if len(args) > 3 else None
        connect(args[0], int(args[1]), int(args[2]), base)
    elif cmd == "udp":
        udp(args[0], int(args[1]), int(args[2]))
    elif cmd == "hold":
        hold(args[0], int(args[1]), float(args[2]), args[3] if len(args) > 3 else None)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()

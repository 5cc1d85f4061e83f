#!/usr/bin/env python3
"""Hostile clients of a listener, for the hardening tests: connections that send nothing
(idle), that send part of a request head and then one byte now and then (head), and that
send a whole head and then its body a byte now and then (body); each re-opened as the
server closes it, for a bounded time.

    flood.py TARGET IDLE HEAD BODY SECS

TARGET is HOST:PORT (TCP) or a path (a unix socket). Prints "ready N" once the first round
is open (N connections held), then keeps the count up until SECS have passed or stdin
closes, and prints "done OPENED CLOSED_BY_SERVER". Prints "closed" the first time the
server closes one of its connections.
"""
import os
import select
import socket
import sys
import time

HEAD = b"POST /v1/networks HTTP/1.1\r\nHost: netd\r\nContent-Length: 100000\r\n"


def connect(target):
    if target.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(target)
    else:
        host, port = target.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    s.setblocking(False)
    return s


def main():
    target, secs = sys.argv[1], float(sys.argv[5])
    counts = {"idle": int(sys.argv[2]), "head": int(sys.argv[3]), "body": int(sys.argv[4])}
    end = time.monotonic() + secs
    held = {}  # socket -> "idle" | "head" | "body"
    opened = closed = 0

    def top_up():
        nonlocal opened
        want = dict(counts)
        for kind in held.values():
            want[kind] -= 1
        for kind, n in want.items():
            for _ in range(n):
                try:
                    s = connect(target)
                except OSError:
                    return
                first = {"idle": b"", "head": HEAD[:20], "body": HEAD + b"\r\n"}[kind]
                try:
                    s.send(first)
                except OSError:
                    pass
                held[s] = kind
                opened += 1

    top_up()
    print("ready", len(held), flush=True)
    last_trickle = last_top_up = time.monotonic()
    while time.monotonic() < end:
        readable, _, _ = select.select(list(held) + [sys.stdin], [], [], 0.2)
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1):
            break
        for s in readable:
            if s is sys.stdin:
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                held.pop(s, None)
                s.close()
                closed += 1
                if closed == 1:
                    print("closed", flush=True)
        if time.monotonic() - last_trickle > 1.0:
            last_trickle = last_top_up = time.monotonic()
            for s, kind in list(held.items()):
                if kind != "idle":
                    try:
                        s.send(b"X")
                    except OSError:
                        held.pop(s, None)
                        s.close()
                        closed += 1
        # Paced: a flood of held connections, not a loop of reconnects (that is a CPU
        # flood, which no listener bound can answer).
        if time.monotonic() - last_top_up > 0.2:
            last_top_up = time.monotonic()
            top_up()
    print("done", opened, closed, flush=True)


if __name__ == "__main__":
    main()

"""Shared by the test scripts: UDP datagrams received until a deadline."""
import socket
import time


def datagrams(bind, secs):
    """Yields (socket, data, sender) for each datagram reaching `bind` within `secs`."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(bind)
    s.settimeout(0.2)
    end = time.time() + secs
    while time.time() < end:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        yield s, data, addr

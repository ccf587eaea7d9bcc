#!/usr/bin/env python3
"""The soak's trickle (bench/soak.sh): a sample of connections through a SOCKS5 proxy to an echo
server, each sending a few bytes every --interval seconds and checking the echo, until SIGTERM.
Then it closes them and prints "TRICKLE conns=N open_at_end=N rounds=N bytes=N errors=N
first_error=..."
(exit 0 when every round came back intact).

usage: soak_trickle.py --proxy IP:PORT --target IP:PORT [--conns 100] [--interval 1]"""

import argparse
import ipaddress
import select
import signal
import socket
import struct
import sys
import time

MESSAGE = b"geoproxy soak\n"


def hostport(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def recv_exact(sock, n, deadline):
    data = b""
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            raise TimeoutError(f"{len(data)} of {n} bytes before the deadline")
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the proxy")
        data += chunk
    return data


def socks5_open(proxy, target, timeout=10.0):
    deadline = time.monotonic() + timeout
    sock = socket.create_connection(proxy, timeout=timeout)
    sock.sendall(b"\x05\x01\x00")
    if recv_exact(sock, 2, deadline) != b"\x05\x00":
        raise ConnectionError("no-auth method refused")
    addr = ipaddress.IPv4Address(target[0]).packed
    sock.sendall(b"\x05\x01\x00\x01" + addr + struct.pack(">H", target[1]))
    reply = recv_exact(sock, 10, deadline)
    if reply[1] != 0:
        raise ConnectionError(f"SOCKS5 reply {reply[1]:#04x}")
    return sock


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxy", type=hostport, required=True)
    ap.add_argument("--target", type=hostport, required=True)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--interval", type=float, default=1.0)
    o = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    socks, errors, rounds, moved, first_error = [], 0, 0, 0, "-"

    def fail(why):
        nonlocal errors, first_error
        errors += 1
        if first_error == "-":
            first_error = why.replace(" ", "_")

    for _ in range(o.conns):
        try:
            socks.append(socks5_open(o.proxy, o.target))
        except OSError as e:
            fail(f"open: {e}")
    print(f"trickle: {len(socks)} connections open", file=sys.stderr, flush=True)
    while not stop:
        started = time.monotonic()
        for sock in list(socks):
            try:
                sock.sendall(MESSAGE)
                if recv_exact(sock, len(MESSAGE), time.monotonic() + 10) != MESSAGE:
                    fail("echo differs")
                moved += len(MESSAGE)
            except OSError as e:
                fail(f"round {rounds}: {e}")
                socks.remove(sock)
                sock.close()
        rounds += 1
        time.sleep(max(0.0, o.interval - (time.monotonic() - started)))
    opened = len(socks)
    for sock in socks:
        sock.close()
    print(f"TRICKLE conns={o.conns} open_at_end={opened} rounds={rounds} bytes={moved} "
          f"errors={errors} first_error={first_error}", flush=True)
    return 0 if errors == 0 and opened == o.conns else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""How long a policy edit takes to be in force: writes the configuration (editor-style rename),
then opens SOCKS5 connections to a probe port every 2 ms until the verdict flips, N times,
alternating a policy that blocks the probe port and one that passes it. Also times SIGHUP.

usage: bench/reload_latency.py [--bin build/geoproxy] [-n 40]
The issue's goal: a new policy in force within 200 ms of the file being written."""

import argparse
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def socks5_rep(proxy_port, port):
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as s:
        s.sendall(b"\x05\x01\x00")
        s.recv(2)
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", port))
        return s.recv(10)[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                  "geoproxy"))
    ap.add_argument("-n", type=int, default=40)
    args = ap.parse_args()

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    probe.listen(512)
    probe_port = probe.getsockname()[1]
    threading.Thread(target=lambda: [probe.accept()[0].close() for _ in iter(int, 1)],
                     daemon=True).start()

    work = tempfile.mkdtemp(prefix="geoproxy-reload-bench-")
    conf = os.path.join(work, "geoproxy.conf")
    port = free_port()
    head = f"listen socks5 127.0.0.1:{port}\ngeoip country none\n"
    policies = {
        0x02: head + f"rule probe block to :{probe_port} log none\nrule rest pass log none\n",
        0x00: head + "rule rest pass log none\n",
    }
    with open(conf, "w") as f:
        f.write(policies[0x00])
    proc = subprocess.Popen([args.bin, "run", "-c", conf], stderr=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socks5_rep(port, probe_port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("geoproxy did not start")
                time.sleep(0.05)

        results = {"rename": [], "SIGHUP": []}
        want = 0x00
        for i in range(args.n):
            want = 0x02 if want == 0x00 else 0x00
            how = "rename" if i % 4 != 3 else "SIGHUP"
            tmp = conf + ".tmp"
            with open(tmp, "w") as f:
                f.write(policies[want])
            if how == "SIGHUP":
                # Replace the file where no watcher looks first, then signal: only SIGHUP counts.
                t0 = time.monotonic()
                os.rename(tmp, conf)
                proc.send_signal(signal.SIGHUP)
            else:
                t0 = time.monotonic()
                os.rename(tmp, conf)
            while socks5_rep(port, probe_port) != want:
                if time.monotonic() - t0 > 5:
                    sys.exit(f"reload {i} ({how}) not in force after 5 s")
                time.sleep(0.002)
            results[how].append((time.monotonic() - t0) * 1000)
            time.sleep(0.12)  # let the debounce window of the last change pass
        for how, ms in results.items():
            if not ms:
                continue
            ms.sort()
            print(f"{how:7s} n={len(ms):3d} median={statistics.median(ms):6.1f} ms "
                  f"p95={ms[int(len(ms) * 0.95) - 1]:6.1f} ms max={ms[-1]:6.1f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()

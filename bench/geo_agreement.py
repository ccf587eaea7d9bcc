#!/usr/bin/env python3
"""The builder against its source on the full Tor data: builds a database from Debian's
tor-geoipdb files with `geoproxy geodb build`, then for N random IPv4 and IPv6 addresses (half
inside some source range, half anywhere) compares `geoproxy geodb lookup` with the answer found
by scanning the source ranges (binary search over the sorted ranges; Tor's ranges do not
overlap), and checks a sample with libmaxminddb's own `mmdblookup`.

usage: bench/geo_agreement.py [--bin build/geoproxy] [-n 100000]"""

import argparse
import bisect
import ipaddress
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

TOR4, TOR6 = "/usr/share/tor/geoip", "/usr/share/tor/geoip6"
BATCH = 5000


def load_ranges():
    ranges = {4: [], 6: []}
    with open(TOR4) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            a, b, cc = line.strip().split(",")
            if cc != "??":
                ranges[4].append((int(a), int(b), cc))
    with open(TOR6) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            a, b, cc = line.strip().split(",")
            if cc != "??":
                ranges[6].append((int(ipaddress.IPv6Address(a)), int(ipaddress.IPv6Address(b)),
                                  cc))
    for v in ranges:
        ranges[v].sort()
    return ranges


def answer(ranges, version, n):
    rs = ranges[version]
    i = bisect.bisect_right(rs, (n, float("inf"), "")) - 1
    if i >= 0 and rs[i][0] <= n <= rs[i][1]:
        return rs[i][2]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                  "geoproxy"))
    ap.add_argument("-n", type=int, default=100000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="geoproxy-agreement-")
    db = os.path.join(work, "tor.mmdb")
    try:
        t0 = time.monotonic()
        subprocess.run([args.bin, "geodb", "build", "-o", db, TOR4, TOR6], check=True,
                       stdout=subprocess.DEVNULL)
        build_s = time.monotonic() - t0
        ranges = load_ranges()
        rng = random.Random(20261128)
        addrs = []
        for i in range(args.n):
            version = 4 if i % 4 < 2 else 6
            if i % 2 == 0:
                a, b, _ = rng.choice(ranges[version])
                n = rng.randint(a, b)
            else:
                n = rng.randrange(1 << 32) if version == 4 else rng.randrange(1 << 128)
            addrs.append((version, n))
        texts = [str(ipaddress.ip_address(n)) if v == 4 else str(ipaddress.IPv6Address(n))
                 for v, n in addrs]
        got = {}
        line_rx = re.compile(r"^(\S+) class=\S+(?: local)? country=([A-Z]{2}|-) ")
        for i in range(0, len(texts), BATCH):
            out = subprocess.run([args.bin, "geodb", "lookup", "--db", db, *texts[i:i + BATCH]],
                                 check=True, capture_output=True).stdout.decode()
            for line in out.splitlines():
                m = line_rx.match(line)
                got[m.group(1)] = None if m.group(2) == "-" else m.group(2)
        wrong = []
        for (v, n), text in zip(addrs, texts):
            want = answer(ranges, v, n)
            if got.get(text, "missing") != want:
                wrong.append((text, got.get(text), want))
        sample_bad = 0
        mmdblookup = shutil.which("mmdblookup")
        if mmdblookup:
            for text in texts[:200]:
                r = subprocess.run([mmdblookup, "-f", db, "-i", text, "country", "iso_code"],
                                   capture_output=True, text=True)
                m = re.search(r'"([A-Z]{2})"', r.stdout)
                if (m.group(1) if m else None) != got[text]:
                    sample_bad += 1
        print(f"build_s={build_s:.2f} ranges_v4={len(ranges[4])} ranges_v6={len(ranges[6])}")
        print(f"addresses={len(addrs)} disagree={len(wrong)} "
              f"with_country={sum(1 for t in texts if got.get(t))}")
        print(f"mmdblookup_sample=200 disagree={sample_bad if mmdblookup else 'n/a'}")
        for w in wrong[:10]:
            print("  disagree:", w)
        sys.exit(1 if wrong or sample_bad else 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

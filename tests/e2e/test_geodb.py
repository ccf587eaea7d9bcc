"""`geoproxy geodb build` and `geoproxy geodb lookup`: databases built from CIDR, CSV and Tor
files answer what their sources say, libmaxminddb's mmdblookup agrees, bad lines fail the build
without touching the output, and Debian's real Tor geoip files build and answer."""

import bisect
import ipaddress
import os
import random
import re
import shutil
import unittest

from harness import ProxyTestCase, geoproxy_bin, run

MMDBLOOKUP = shutil.which("mmdblookup")
TOR_GEOIP = "/usr/share/tor/geoip"
TOR_GEOIP6 = "/usr/share/tor/geoip6"
LOOKUP_LINE = re.compile(r"^(\S+) class=(local|unknown|country(?: local)?) country=([A-Z]{2}|-) "
                         r"regions=(\S+)$")
BATCH = 5000  # addresses per `geodb lookup` process
CODES = ["AU", "BR", "CH", "DE", "FR", "HK", "JP", "NL", "SE", "US"]


def v4(n):
    return str(ipaddress.IPv4Address(n))


def v6(n):
    return str(ipaddress.IPv6Address(n))


def random_v4_range(rng):
    """A random IPv4 range outside 127.0.0.0/8, which the tests keep for the fixtures."""
    while True:
        first = rng.randrange(1 << 32)
        last = min(first + rng.randrange(1 << rng.randrange(1, 24)), (1 << 32) - 1)
        if last < 0x7F000000 or first > 0x7FFFFFFF:
            return first, last


class Source:
    """The ranges the test wrote, in the order the build applies them (range files in the
    order given, then the overlays). The answer for an address is the last range holding it:
    found by scanning the ranges, done once per elementary segment between range boundaries so
    that 100,000 answers stay quick."""

    def __init__(self):
        self.ranges = []  # (version, first int, last int, code)
        self._segments = None

    def add(self, version, first, last, code):
        self.ranges.append((version, first, last, code))
        self._segments = None

    def _scan(self, version, n):
        found = None
        for v, first, last, code in self.ranges:
            if v == version and first <= n <= last:
                found = code
        return found

    def _compile(self):
        self._segments = {}
        for version in (4, 6):
            starts = sorted({r[1] for r in self.ranges if r[0] == version} |
                            {r[2] + 1 for r in self.ranges if r[0] == version} | {0})
            self._segments[version] = (starts, [self._scan(version, s) for s in starts])

    def answer(self, addr):
        if self._segments is None:
            self._compile()
        ip = ipaddress.ip_address(addr)
        starts, codes = self._segments[ip.version]
        return codes[bisect.bisect_right(starts, int(ip)) - 1]


class Geodb(ProxyTestCase):
    def write(self, name, text):
        path = os.path.join(self.workdir(), name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def build(self, out, *inputs):
        return run([geoproxy_bin(), "geodb", "build", "-o", out, *inputs])

    def lookup(self, db, addrs):
        """{address: country or None} from `geodb lookup`, in batches."""
        answers = {}
        for i in range(0, len(addrs), BATCH):
            batch = addrs[i:i + BATCH]
            r = run([geoproxy_bin(), "geodb", "lookup", "--db", db, *batch])
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = r.stdout.decode().splitlines()
            self.assertEqual(len(lines), len(batch), r.stdout)
            for addr, line in zip(batch, lines):
                m = LOOKUP_LINE.match(line)
                self.assertIsNotNone(m, f"unexpected lookup line {line!r}")
                self.assertEqual(m.group(1), addr)
                answers[addr] = None if m.group(3) == "-" else m.group(3)
        return answers

    def mmdblookup(self, db, addr):
        r = run([MMDBLOOKUP, "--file", db, "--ip", addr, "country", "iso_code"])
        m = re.search(rb'"([A-Z]{2})" <utf8_string>', r.stdout)
        return m.group(1).decode() if m else None

    def small_sources(self, rng):
        """Writes a Tor geoip, a Tor geoip6, a CSV and a CIDR overlay; returns (paths, Source)."""
        src = Source()
        tor4, tor6, csv, cidr = [], [], [], []
        # CSV first (given first on the command line), then the Tor files, then the overlay.
        for i in range(60):
            first, last = random_v4_range(rng)
            code = rng.choice(CODES)
            q = '"' if i % 2 else ""
            csv.append(f"{q}{v4(first)}{q},{q}{v4(last)}{q},{q}{code}{q},extra column")
            src.add(4, first, last, code)
        for i in range(40):
            first = (0x2000 << 112) + rng.randrange(1 << 125)
            last = first + rng.randrange(1 << rng.randrange(1, 100))
            code = rng.choice(CODES)
            csv.append(f"{v6(first)},{v6(last)},{code}")
            src.add(6, first, last, code)
        tor4.append("# Tor-format test file")
        for i in range(60):
            first, last = random_v4_range(rng)
            if i % 10 == 9:
                tor4.append(f"{first},{last},??")  # not a country: skipped, keeps older ranges
                continue
            code = rng.choice(CODES)
            tor4.append(f"{first},{last},{code}")
            src.add(4, first, last, code)
        for i in range(40):
            first = (0x2000 << 112) + rng.randrange(1 << 125)
            last = first + rng.randrange(1 << rng.randrange(1, 100))
            code = rng.choice(CODES)
            tor6.append(f"{v6(first)},{v6(last)},{code}")
            src.add(6, first, last, code)
        # The overlay: the loopback fixtures, and blocks over earlier ranges (they must win).
        cidr += ["# loopback fixtures", "127.0.1.0/24 HK", "127.0.2.0/24 CH", ""]
        src.add(4, 0x7F000100, 0x7F0001FF, "HK")
        src.add(4, 0x7F000200, 0x7F0002FF, "CH")
        for version, first, _, _ in list(src.ranges[:100:5]):
            bits = 32 if version == 4 else 128
            plen = rng.randrange(bits - 20, bits + 1)
            net = ipaddress.ip_network((first, plen), strict=False)
            code = rng.choice(CODES)
            cidr.append(f"{net} {code}")
            src.add(version, int(net.network_address), int(net.broadcast_address), code)

        paths = [self.write("ranges.csv", "\n".join(csv) + "\n"),
                 self.write("geoip", "\n".join(tor4) + "\n"),
                 self.write("geoip6", "\n".join(tor6) + "\n"),
                 self.write("overlay.txt", "\n".join(cidr) + "\n")]
        return paths, src

    def test_build_and_lookup(self):
        rng = random.Random(20261127)
        paths, src = self.small_sources(rng)
        out = os.path.join(self.workdir(), "test.mmdb")
        # The overlay is given first: it is still applied after the ranges.
        r = self.build(out, paths[3], *paths[:3])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.decode(), rf"^{re.escape(out)}: \d+ ranges from 4 files, "
                                            r"6 skipped, built in \d+ ms\n$")

        answers = self.lookup(out, ["127.0.1.5", "127.0.2.9", "127.0.3.1"])
        self.assertEqual(answers, {"127.0.1.5": "HK", "127.0.2.9": "CH", "127.0.3.1": None})
        self.assertIsNone(src.answer("127.0.3.1"))

        if MMDBLOOKUP:
            self.assertEqual(self.mmdblookup(out, "127.0.1.5"), "HK")
            self.assertEqual(self.mmdblookup(out, "127.0.2.9"), "CH")

        # 100,000 addresses: half inside some source range, half anywhere.
        addrs = []
        for i in range(100000):
            if i % 2 == 0:
                version, first, last, _ = rng.choice(src.ranges)
                n = rng.randint(first, last)
            else:
                version = rng.choice((4, 6))
                n = rng.randrange(1 << 32) if version == 4 else (
                    (0x2000 << 112) + rng.randrange(1 << 125))
            addrs.append(v4(n) if version == 4 else v6(n))
        got = self.lookup(out, addrs)
        wrong = [(a, got[a], src.answer(a)) for a in addrs if got[a] != src.answer(a)]
        self.assertEqual(wrong[:10], [], f"{len(wrong)} of {len(addrs)} addresses disagree")
        self.assertGreater(sum(1 for a in addrs if got[a] is not None), 45000)
        if MMDBLOOKUP:
            for a in addrs[:50]:
                self.assertEqual(self.mmdblookup(out, a), src.answer(a), a)

    def test_lookup_output(self):
        out = os.path.join(self.workdir(), "t.mmdb")
        overlay = self.write("o.txt", "127.0.1.0/24 DE\n8.8.8.0/24 US\n")
        r = self.build(out, overlay)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run([geoproxy_bin(), "geodb", "lookup", "--db", out, "127.0.1.5", "127.0.0.1",
                 "8.8.8.8", "2001:db8::1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode().splitlines(), [
            "127.0.1.5 class=country local country=DE regions=EU,EEA,FOURTEEN_EYES",
            "127.0.0.1 class=local country=- regions=-",
            "8.8.8.8 class=country country=US regions=FIVE_EYES,NINE_EYES,FOURTEEN_EYES",
            "2001:db8::1 class=unknown country=- regions=-",
        ])
        r = run([geoproxy_bin(), "geodb", "lookup", "--db", out, "8.8.8.8", "not-an-ip"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"'not-an-ip' is not an IP address", r.stderr)
        self.assertIn(b"8.8.8.8 class=country country=US", r.stdout)

    def test_bad_line_fails_build(self):
        out = os.path.join(self.workdir(), "bad.mmdb")
        good = self.write("good.txt", "127.0.1.0/24 HK\n")
        bad = self.write("bad.csv", "# ranges\n1.0.0.0,1.0.0.255,AU\n1.0.1.9,1.0.1.0,AU\n")
        r = self.build(out, good, bad)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{bad}:3: range start '1.0.1.9' is after its end '1.0.1.0'".encode(),
                      r.stderr)
        self.assertFalse(os.path.exists(out), "a failed build left its output behind")

        # An existing output stays as it was.
        with open(out, "wb") as f:
            f.write(b"previous")
        many = self.write("many.txt", "".join(f"10.0.0.{i}/24 DE\n" for i in range(1, 31)))
        r = self.build(out, good, many)
        self.assertEqual(r.returncode, 1)
        err = r.stderr.decode()
        self.assertEqual(len(re.findall(rf"^{re.escape(many)}:\d+: ", err, re.M)), 20, err)
        self.assertIn("10 more errors not shown", err)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"previous")
        self.assertEqual(os.listdir(self.workdir()).count("bad.mmdb"), 1)

    @unittest.skipUnless(os.path.exists(TOR_GEOIP) and os.path.exists(TOR_GEOIP6),
                         "Debian's tor-geoipdb is not installed")
    def test_real_tor_files(self):
        out = os.path.join(self.workdir(), "tor.mmdb")
        r = run([geoproxy_bin(), "geodb", "build", "-o", out, TOR_GEOIP, TOR_GEOIP6],
                timeout=240)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.decode(), r"ranges from 2 files")

        rng = random.Random(7)
        expected = {}
        for path, version in ((TOR_GEOIP, 4), (TOR_GEOIP6, 6)):
            with open(path, encoding="ascii") as f:
                rows = [line.strip().split(",") for line in f
                        if line.strip() and not line.startswith("#")]
            rows = [row for row in rows if re.fullmatch(r"[A-Z]{2}", row[2])]
            for low, high, code in rng.sample(rows, 15):
                if version == 4:
                    addr = v4(rng.randint(int(low), int(high)))
                else:
                    lo, hi = int(ipaddress.IPv6Address(low)), int(ipaddress.IPv6Address(high))
                    addr = v6(rng.randint(lo, hi))
                expected[addr] = code
        got = self.lookup(out, list(expected))
        self.assertEqual(got, expected)
        if MMDBLOOKUP:
            for addr in list(expected)[:5] + list(expected)[-5:]:
                self.assertEqual(self.mmdblookup(out, addr), expected[addr], addr)


if __name__ == "__main__":
    unittest.main()

"""Geography end to end: both ends of every connection are classified with the country database
named by the configuration, the result shows in the connection's events, and a database
replaced on disk is picked up live (or refused, keeping the one in use) without disturbing a
transfer in flight. Loopback blocks stand for countries (geo_fixtures.py)."""

import hashlib
import os
import re
import unittest

from harness import (ProxyTestCase, payload, recv_exact, run, geoproxy_bin, socks5_open)
from geo_fixtures import (BLOCKS, UNMAPPED_CLIENT, client_addr, replace_file_atomically,
                          server_addr)

EU_REGIONS = "EU,EEA,FOURTEEN_EYES"
US_REGIONS = "FIVE_EYES,NINE_EYES,FOURTEEN_EYES"


def event_line(log, event, conn=None):
    """The last 'event' line (decision/close), or of connection 'conn'."""
    lines = [l for l in log.splitlines() if f" {event} conn=" in l]
    if conn is not None:
        lines = [l for l in lines if f" conn={conn} " in l]
    return lines[-1] if lines else ""


def field(line, key):
    m = re.search(rf"(?:^| ){re.escape(key)}=(\S+)", line)
    return m.group(1) if m else None


class GeoClassification(ProxyTestCase):
    def start_geo_proxy(self, db, dns=None, rules=None):
        return self.start_proxy(dns=dns, rules=rules, extra=[f"geoip country {db}"])

    def echo_through(self, proxy, src, host, port, data=b"ping"):
        sock, reply = socks5_open(proxy.port, host, port, source=src)
        self.track(sock)
        self.assertSocks5Reply(reply, 0, f"{src} -> {host}")
        sock.sendall(data)
        self.assertEqual(recv_exact(sock, len(data)), data)
        return sock

    def test_both_ends_classified_in_events(self):
        db = self.geo_db()
        proxy = self.start_geo_proxy(db)
        ch = self.start_echo(host=server_addr("CH"))
        us = self.start_echo(host=server_addr("US"))

        self.echo_through(proxy, client_addr("HK"), ch.host, ch.port).close()
        line = proxy.wait_log(r"close conn=\d+ .*from=HK").group(0)
        close = event_line(proxy.log_text(), "close")
        self.assertEqual(field(close, "from"), "HK", close)
        self.assertIsNone(field(close, "from_regions"), close)  # Hong Kong is in no region
        self.assertEqual(field(close, "to"), "CH", close)
        self.assertIsNone(field(close, "to_regions"), close)
        decision = event_line(proxy.log_text(), "decision")
        self.assertEqual((field(decision, "from"), field(decision, "to")), ("HK", "CH"), line)

        self.echo_through(proxy, client_addr("DE"), us.host, us.port).close()
        proxy.wait_log(r"close conn=\d+ .*from=DE ")
        close = event_line(proxy.log_text(), "close")
        self.assertEqual(field(close, "from_regions"), EU_REGIONS, close)
        self.assertEqual(field(close, "to"), "US", close)
        self.assertEqual(field(close, "to_regions"), US_REGIONS, close)

        # A loopback address the database does not map stays local; so does ::1.
        self.echo_through(proxy, UNMAPPED_CLIENT, ch.host, ch.port).close()
        proxy.wait_log(r"close conn=\d+ .*from=local .*to=CH")

    def test_named_destination_classified_once_resolved(self):
        dns = self.start_dns()
        db = self.geo_db()
        proxy = self.start_geo_proxy(db, dns=dns)
        jp = self.start_origin(host=server_addr("JP"))
        # A real client: curl through the HTTP proxy, bound to the Hong Kong block, asking for
        # a name only the proxy resolves.
        r = run(["curl", "-sS", "--max-time", "10", "--interface", client_addr("HK"), "-x",
                 f"http://127.0.0.1:{proxy.port}", f"http://jp.geo.test:{jp.port}/bytes/1000",
                 "-o", "/dev/null", "-w", "%{http_code}"])
        self.assertEqual(r.stdout, b"200", r.stderr)
        proxy.wait_log(r"close conn=\d+ .*from=HK .*to=JP")

    def test_without_database_loopback_is_local(self):
        proxy = self.start_proxy(extra=["geoip country none"])
        ch = self.start_echo(host=server_addr("CH"))
        self.echo_through(proxy, client_addr("HK"), ch.host, ch.port).close()
        proxy.wait_log(r"close conn=\d+ .*from=local .*to=local")
        self.assertIn("no GeoIP country database", proxy.log_text())


class GeoDatabaseReplaced(ProxyTestCase):
    """geoipupdate replaces the database by rename; geoproxy follows without dropping anything,
    and refuses a broken file while keeping the database it has."""

    def setUp(self):
        self.db = self.geo_db()
        self.proxy = self.start_proxy(extra=[f"geoip country {self.db}"])
        self.ch = self.start_echo(host=server_addr("CH"))
        self.sent = hashlib.sha256()
        self.received = hashlib.sha256()
        sock, reply = socks5_open(self.proxy.port, self.ch.host, self.ch.port,
                                  source=client_addr("HK"))
        self.live = self.track(sock)
        self.assertSocks5Reply(reply, 0, "live transfer")
        self.transfer(256 * 1024)

    def transfer(self, n):
        """Moves n more bytes through the live connection and back."""
        data = payload(n)
        self.live.sendall(data)
        got = recv_exact(self.live, n)
        self.sent.update(data)
        self.received.update(got)
        self.assertEqual(got, data, "the live transfer was altered")

    def from_country_of_new_connection(self):
        start = self.proxy.log_size()
        sock, reply = socks5_open(self.proxy.port, self.ch.host, self.ch.port,
                                  source=client_addr("HK"))
        with sock:
            self.assertSocks5Reply(reply, 0, "new connection")
        m = self.proxy.wait_log(r"close conn=\d+ .*from=(\S+)", start=start)
        return m.group(1)

    def test_replacement_is_picked_up_without_dropping_the_transfer(self):
        self.assertEqual(self.from_country_of_new_connection(), "HK")
        start = self.proxy.log_size()
        moved = dict(BLOCKS, GB=BLOCKS["HK"])
        del moved["HK"]
        self.geo_db(moved)  # the builder writes a temporary file and renames it over
        self.proxy.wait_log(r"policy generation 2 loaded \(file change\)", start=start)
        self.transfer(256 * 1024)
        self.assertEqual(self.from_country_of_new_connection(), "GB")
        self.transfer(256 * 1024)
        self.live.shutdown(1)
        self.assertEqual(self.live.recv(1), b"", "echo server did not end after our EOF")
        self.assertEqual(self.sent.hexdigest(), self.received.hexdigest())

    def test_broken_replacements_are_refused_and_the_old_database_kept(self):
        with open(self.db, "rb") as f:
            good = f.read()
        cases = [
            ("garbage", lambda: replace_file_atomically(self.db, b"not a database\n" * 1000),
             r"not a valid MaxMind DB"),
            ("truncated", lambda: replace_file_atomically(self.db, good[:len(good) // 2]),
             r"not a valid MaxMind DB"),
            ("empty", lambda: replace_file_atomically(self.db, b""),
             r"the file is empty"),
            ("missing", lambda: os.unlink(self.db), r"No such file or directory"),
        ]
        for what, breaks_it, message in cases:
            with self.subTest(what):
                start = self.proxy.log_size()
                breaks_it()
                self.proxy.wait_log(message, start=start)
                self.proxy.wait_log(r"reload \(file change\) failed: keeping policy generation 1",
                                    start=start)
                self.transfer(64 * 1024)
                self.assertEqual(self.from_country_of_new_connection(), "HK")
                self.assertIn(f"{os.path.basename(self.db)}", self.proxy.log_text()[start:])
        # A good file again is taken.
        start = self.proxy.log_size()
        replace_file_atomically(self.db, good)
        self.proxy.wait_log(r"policy generation 2 loaded \(file change\)", start=start)
        self.transfer(64 * 1024)


if __name__ == "__main__":
    unittest.main()

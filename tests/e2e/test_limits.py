"""Per-client limits: `limit per-client-connections` refuses a client's N+1st concurrent
connection while other clients still get in, `limit per-client-rate` refuses a burst beyond its
rate and lets the client in again a second later. Refusals are closed at accept, counted by end
reason in /metrics, and warned about once per client per interval, by pseudonym only."""

import re
import time
import unittest
import urllib.request

from harness import (ProxyTestCase, connect, free_port, recv_exact, send_ignoring_reset,
                     socks5_open, wait_closed, wait_until)


def ends(admin_port, reason):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf'^geoproxy_connection_ends_total{{reason="{reason}"}} (\d+)$', text, re.M)
    return int(m.group(1)) if m else 0


class LimitsTestCase(ProxyTestCase):
    def start(self, *limits):
        self.echo = self.start_echo()
        self.admin_port = free_port()
        return self.start_proxy(extra=[f"admin 127.0.0.1:{self.admin_port}", *limits])

    def open_from(self, source):
        """A SOCKS5 tunnel to the echo server from 'source', checked with one echo."""
        sock, reply = socks5_open(self.proxy.port, "127.0.0.1", self.echo.port,
                                  source=source)
        self.track(sock)
        self.assertSocks5Reply(reply, 0, f"CONNECT from {source}")
        sock.sendall(b"x")
        self.assertEqual(recv_exact(sock, 1), b"x")
        return sock

    def served_from(self, source):
        """True when a SOCKS5 request from 'source' is served, False when the proxy closes."""
        try:
            self.open_from(source)
            return True
        except (AssertionError, OSError):
            return False

    def assertRefusedAtAccept(self, source):
        sock = self.track(connect("127.0.0.1", self.proxy.port, source=source))
        send_ignoring_reset(sock, b"\x05\x01\x00")
        closed, got = wait_closed(sock, 5)
        self.assertTrue(closed, f"a refused connection from {source} stayed open ({got!r})")
        self.assertEqual(got, b"", f"a refused connection from {source} got an answer")

    def assertWarnedByPseudonymOnly(self, pattern, source, times):
        log = self.proxy.log_text()
        warnings = re.findall(pattern, log)
        self.assertEqual(len(warnings), times, f"warnings matching {pattern!r} in:\n{log}")
        self.assertNotIn(source, log, "a client address in the log at the default level")


class PerClientConnections(LimitsTestCase):
    def test_n_plus_first_refused_others_served(self):
        self.proxy = self.start("limit per-client-connections 3")
        held = [self.open_from("127.0.0.5") for _ in range(3)]
        for _ in range(3):
            self.assertRefusedAtAccept("127.0.0.5")
        self.assertTrue(self.served_from("127.0.0.6"), "another client was refused")
        for sock in held:  # the three are untouched
            sock.sendall(b"y")
            self.assertEqual(recv_exact(sock, 1), b"y")
        self.assertEqual(ends(self.admin_port, "per-client-limit"), 3)
        self.assertWarnedByPseudonymOnly(
            r"client c-[0-9a-f]{12} has 3 connections open \(limit per-client-connections\)",
            "127.0.0.5", 1)
        # Closing one makes room for exactly one more.
        held[0].close()
        wait_until(lambda: self.served_from("127.0.0.5"), timeout=10, interval=0.1,
                   what="a connection from 127.0.0.5 once one of its three closed")
        self.assertRefusedAtAccept("127.0.0.5")


class PerClientRate(LimitsTestCase):
    def test_burst_refused_then_accepted_again(self):
        self.proxy = self.start("limit per-client-rate 3/s")
        started = time.monotonic()
        served = [self.served_from("127.0.0.7") for _ in range(8)]
        elapsed = time.monotonic() - started
        # A bucket of 3 refilled at 3/s: the burst's first three pass, one more per 333 ms.
        allowed = 3 + int(elapsed * 3)
        self.assertEqual(served[:3], [True] * 3, f"the burst's first three: {served}")
        self.assertLessEqual(served.count(True), allowed,
                             f"{served} in {elapsed:.2f}s with 3/s and a burst of 3")
        self.assertIn(False, served)
        self.assertTrue(self.served_from("127.0.0.8"), "another client was refused")
        self.assertGreaterEqual(ends(self.admin_port, "per-client-rate"), served.count(False))
        self.assertWarnedByPseudonymOnly(
            r"client c-[0-9a-f]{12} opens more than 3 connections/s \(limit per-client-rate\)",
            "127.0.0.7", 1)
        time.sleep(1.1)  # the bucket is full again
        self.assertEqual([self.served_from("127.0.0.7") for _ in range(3)], [True] * 3)


if __name__ == "__main__":
    unittest.main()

"""Operating tunnels: what an operator sees of upstreams and tunnel certificates, end to end.
An entry has a tls upstream to a real exit (egress declared DE, the exit's `external` address
is in DE), a second tls upstream to a closed port, and a failover group of both:

  Status         GET /status: the exit up with the egress it reported and its latency, the
                 dead one down with a reason, the group up with its members, certificate expiry
                 of the entry's client certificate and of the exit's tunnel listener;
                 `geoproxy status` prints both upstreams
  Metrics        geoproxy_upstream_up 1 and 0, check latency, state changes, certificate expiry
                 within the validity `geoproxy certs issue` gave; promtool accepts both
                 proxies' metrics
  TlsFailures    a client without a certificate refused by the exit is counted in the exit's
                 geoproxy_tls_failures_total{reason="no_certificate"}; a pool refill that meets
                 an exit certificate from another CA is counted in the entry's
                 geoproxy_tls_failures_total{reason="unknown_ca"}"""

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import unittest

from geo_fixtures import server_addr
from harness import free_port, geoproxy_bin, run, wait_until
from test_admin import PROMTOOL, http, metric
from test_tunnel import EXIT_DE, TunnelTestCase, exit_tls_connections, text

ISSUE_DAYS = 825  # `geoproxy certs issue` without --days
ISO_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


def expiry_days(text_, kind, name):
    """geoproxy_certificate_expiry_seconds{kind,name} in days (test_admin.metric cannot take a
    label called name), or None."""
    m = re.search(rf'(?m)^geoproxy_certificate_expiry_seconds\{{kind="{kind}",name="{re.escape(name)}"'
                  rf'\}} (\S+)$', text_)
    return float(m.group(1)) / 86400 if m else None


class TunnelOpsCase(TunnelTestCase):
    def setUp(self):
        super().setUp()
        self.origin = self.start_origin("ch", host=server_addr("CH"))
        self.exit_admin = free_port()
        self.exit = self.start_exit(external=EXIT_DE, extra=[f"admin 127.0.0.1:{self.exit_admin}"])
        self.entry_admin = free_port()
        dead = (f"upstream dead tls 127.0.0.1:{self.closed_port()} ca {self.pki.ca} "
                f"cert {self.entry_cert.pem} key {self.entry_cert.key}")
        self.entry = self.start_entry(
            [self.tls_upstream("exit1", self.exit, "egress", "DE"), dead,
             "upstream exits group failover exit1 dead"],
            ["rule all tunnel via exits"], extra=[f"admin 127.0.0.1:{self.entry_admin}"])

    def status(self, port):
        code, body = http(port, "/status")
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def metrics(self, port):
        code, body = http(port, "/metrics")
        self.assertEqual(code, 200, body)
        return body.decode()

    def upstreams_settled(self):
        """Waits until the health checker found exit1 up and dead down; returns them by name."""
        last = {}

        def settled():
            last["u"] = {u["name"]: u for u in self.status(self.entry_admin)["upstreams"]}
            return (last["u"]["exit1"]["state"], last["u"]["dead"]["state"]) == ("up", "down")

        try:
            wait_until(settled, timeout=10, what="exit1 up and dead down in /status")
        except AssertionError:
            self.fail(f"upstreams never settled: {last.get('u')}; entry log:\n"
                      f"{self.entry.log_text()[-3000:]}")
        return last["u"]

    def assertCertDaysLeft(self, days, what):
        # Issued a moment ago for ISSUE_DAYS days: ISSUE_DAYS minus at most one day.
        self.assertGreaterEqual(days, ISSUE_DAYS - 1, what)
        self.assertLessEqual(days, ISSUE_DAYS, what)

    def assertPromtoolAccepts(self, text_, what):
        if PROMTOOL is None:
            self.fail("promtool is not installed: run scripts/install-deps.sh")
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text_.encode(),
                           capture_output=True, timeout=30)
        self.assertEqual((r.stdout + r.stderr).strip(), b"", f"promtool on {what}")


class Status(TunnelOpsCase):
    def test_status_shows_one_upstream_up_and_one_down(self):
        ups = self.upstreams_settled()
        exit1, dead, group = ups["exit1"], ups["dead"], ups["exits"]
        self.assertEqual(exit1["kind"], "tls")
        self.assertEqual(exit1["egress"], EXIT_DE, "the egress the exit reported")
        self.assertEqual(exit1["declared_egress"], "DE")
        self.assertIsNone(exit1["reason"])
        self.assertIsInstance(exit1["latency_ms"], (int, float))
        self.assertGreaterEqual(exit1["latency_ms"], 0)
        self.assertGreaterEqual(exit1["state_changes"], 1)
        self.assertEqual(exit1["address"], f"127.0.0.1:{self.exit.port}")
        self.assertRegex(exit1["cert_not_after"], ISO_TIME)
        self.assertCertDaysLeft(exit1["cert_days_left"], "exit1's client certificate")

        self.assertEqual(dead["kind"], "tls")
        self.assertRegex(dead["reason"] or "", r"(?i)dead.*(connect|refused)",
                         "why the dead upstream is down")
        self.assertIsNone(dead["latency_ms"])
        self.assertIsNone(dead["egress"])

        self.assertEqual((group["kind"], group["state"], group["strategy"], group["members"]),
                         ("group", "up", "failover", ["exit1", "dead"]))

        # The exit's tunnel listener shows its certificate's expiry.
        tunnel = [l for l in self.status(self.exit_admin)["listeners"] if l["kind"] == "tunnel"]
        self.assertEqual(len(tunnel), 1, tunnel)
        self.assertRegex(tunnel[0]["cert_not_after"], ISO_TIME)
        self.assertCertDaysLeft(tunnel[0]["cert_days_left"], "the exit's listener certificate")

        # And a person sees the same in `geoproxy status`.
        r = run([geoproxy_bin(), "status", "--admin", f"127.0.0.1:{self.entry_admin}"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = text(r.stdout)
        self.assertRegex(out, rf"(?m)^upstream +exit1 tls 127\.0\.0\.1:{self.exit.port}: up, "
                              rf"egress {re.escape(EXIT_DE)} \(declared DE\), [\d.]+ ms, "
                              rf"certificate expires \S+ \(\d+ day\(s\)\)$")
        self.assertRegex(out, r"(?m)^upstream +dead tls 127\.0\.0\.1:\d+: down: .+$")
        self.assertRegex(out, r"(?m)^upstream +exits group failover \(exit1, dead\): up$")
        r = run([geoproxy_bin(), "status", "--admin", f"127.0.0.1:{self.exit_admin}"])
        self.assertRegex(text(r.stdout), r"(?m)^listener .*\(tunnel\), certificate expires "
                                         r"\S+ \(\d+ day\(s\)\)$")


class Metrics(TunnelOpsCase):
    def test_upstream_and_certificate_metrics(self):
        self.upstreams_settled()
        m = self.metrics(self.entry_admin)
        self.assertEqual(metric(m, "geoproxy_upstream_up", upstream="exit1"), 1, m)
        self.assertEqual(metric(m, "geoproxy_upstream_up", upstream="dead"), 0)
        self.assertEqual(metric(m, "geoproxy_upstream_up", upstream="exits"), 1, "the group")
        latency = metric(m, "geoproxy_upstream_check_latency_seconds", upstream="exit1")
        self.assertIsNotNone(latency, "exit1's check latency")
        self.assertLess(latency, 3.0, "within the health check's timeout")
        self.assertIsNone(metric(m, "geoproxy_upstream_check_latency_seconds", upstream="dead"))
        self.assertGreaterEqual(metric(m, "geoproxy_upstream_state_changes_total",
                                       upstream="exit1"), 1)
        self.assertGreaterEqual(metric(m, "geoproxy_upstream_state_changes_total",
                                       upstream="dead"), 1)
        for name in ("exit1", "dead"):
            days = expiry_days(m, "upstream", name)
            self.assertIsNotNone(days, f"{name}'s certificate expiry")
            self.assertGreater(days, ISSUE_DAYS - 1, name)
            self.assertLessEqual(days, ISSUE_DAYS, name)
        for reason in ("no_certificate", "unknown_ca", "expired", "not_yet_valid",
                       "pin_mismatch", "handshake"):
            self.assertIsNotNone(metric(m, "geoproxy_tls_failures_total", reason=reason), reason)
        # No address in any label: only names from the configuration.
        labels = " ".join(re.findall(r"\{([^}]*)\}", m))
        self.assertNotIn("127.0.", labels)
        self.assertPromtoolAccepts(m, "the entry's metrics")

        x = self.metrics(self.exit_admin)
        listener = [l["name"] for l in self.status(self.exit_admin)["listeners"]][0]
        days = expiry_days(x, "listener", listener)
        self.assertIsNotNone(days, f"the exit's listener certificate expiry in:\n{x}")
        self.assertGreater(days, ISSUE_DAYS - 1)
        self.assertLessEqual(days, ISSUE_DAYS)
        self.assertPromtoolAccepts(x, "the exit's metrics")


class TlsFailures(TunnelOpsCase):
    def test_client_without_certificate_counted_at_the_exit(self):
        def refused():
            return metric(self.metrics(self.exit_admin), "geoproxy_tls_failures_total",
                          reason="no_certificate")

        self.assertEqual(refused(), 0)
        r = self.curl("--proxy", f"https://127.0.0.1:{self.exit.port}", "--proxy-cacert",
                      self.pki.ca, f"http://{self.origin.authority}/peer")
        self.assertNotEqual(r.returncode, 0, f"curl without a certificate got through: "
                                             f"{r.stdout!r}")
        wait_until(lambda: refused() == 1, timeout=5,
                   what="geoproxy_tls_failures_total{reason=\"no_certificate\"} 1 at the exit")
        self.assertTrue(self.origin.peers.empty(), "the refused client reached the origin")



class PoolFailures(TunnelTestCase):
    def test_a_refill_refused_by_tls_is_counted(self):
        """The handshakes an entry makes ahead for its pool (`mux off`) count their failures
        like a tunnel's own: once the exit serves a certificate from another CA, the next tunnel
        still goes through on a link pooled before, and the refill after it fails and is counted
        with its reason."""
        origin = self.start_origin("ch", host=server_addr("CH"))
        exit1 = self.start_exit(external=EXIT_DE)
        admin = free_port()
        # One health check, at start: after it, only tunnels and the pool make handshakes.
        entry = self.start_proxy(
            listeners=(("mixed", "127.0.0.1"),), rules=["rule all tunnel via exit1"],
            extra=[f"geoip country {self.db}",
                   self.tls_upstream("exit1", exit1, "pool 2", "mux off"),
                   "health-check every 1h", f"admin 127.0.0.1:{admin}", "workers 1"],
            tag="entry")

        def failures():
            code, body = http(admin, "/metrics")
            self.assertEqual(code, 200, body)
            return metric(text(body), "geoproxy_tls_failures_total", reason="unknown_ca")

        self.assertEqual(self.wait_served(entry, origin.host, origin.port), EXIT_DE)
        # That tunnel's connection closes; the pool's two stay, idle.
        wait_until(lambda: len(exit_tls_connections(exit1.port)) == 2, timeout=5,
                   what="the pool's two links to the exit")
        self.assertEqual(failures(), 0)
        foreign = self.pki.issue("exit-foreign", "exit.test", "127.0.0.1",
                                 ca_dir=self.pki.other_ca())
        for src, dst in ((foreign.key, self.exit_cert.key), (foreign.pem, self.exit_cert.pem)):
            shutil.copy(src, dst + ".new")  # as a renewal tool does: renamed over the old one
            os.replace(dst + ".new", dst)
        with open(foreign.pem) as f:
            foreign_der = ssl.PEM_cert_to_DER_cert(f.read())
        wait_until(lambda: self.served_certificate(exit1) == foreign_der, timeout=5,
                   what="the exit serving the new certificate to new connections")
        self.assertEqual(self.wait_served(entry, origin.host, origin.port), EXIT_DE,
                         "the tunnel after the swap, on a link pooled before it")
        kinds = []

        def two_closed():
            kinds[:] = re.findall(r"\bclose\b.*?via_tls=(\w+)", entry.log_text())
            return len(kinds) >= 2

        wait_until(two_closed, timeout=5, what="both tunnels' close events")
        self.assertEqual(kinds, ["full", "pooled"])
        wait_until(lambda: failures() >= 1, timeout=5,
                   what='geoproxy_tls_failures_total{reason="unknown_ca"} at the entry')

    def served_certificate(self, exit1):
        """The certificate (DER) the exit presents to a new TLS client now, or None."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(self.entry_cert.pem, self.entry_cert.key)
        try:
            with socket.create_connection(("127.0.0.1", exit1.port), timeout=5) as raw:
                with ctx.wrap_socket(raw) as tls:
                    return tls.getpeercert(binary_form=True)
        except OSError:
            return None


if __name__ == "__main__":
    unittest.main()

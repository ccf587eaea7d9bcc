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
                 geoproxy_tls_failures_total{reason="no_certificate"}"""

import json
import re
import shutil
import subprocess
import time
import unittest

from geo_fixtures import server_addr
from harness import free_port, geoproxy_bin, run, wait_until
from test_admin import PROMTOOL, http, metric
from test_tunnel import EXIT_DE, TunnelTestCase, text

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
    # The counting call is wired in proxy/conn.c (conn_tunnel_refuse) by its owner; until then
    # the counter stays at 0 and this test fails.
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


if __name__ == "__main__":
    unittest.main()

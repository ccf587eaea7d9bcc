"""The admin dashboard (GET / on the admin listener) in a real browser: headless Chromium from
Debian, driven over the DevTools protocol (cdp.py, standard library only). The page must load
with no console errors or exceptions under its Content-Security-Policy, follow /events live,
and show counts that change when known traffic crosses the proxy: passed and blocked
connections, countries and regions, recent blocks (with no client identity in them), active
connections, the policy generation and the geo database age from /status. When the daemon
restarts, the page reconnects by itself and keeps counting.

Needs /usr/bin/chromium (Debian package chromium); skipped without it."""

import json
import re
import unittest
import urllib.request

from cdp import Browser, chromium_available
from geo_fixtures import client_addr, server_addr
from harness import (WAIT, ProxyTestCase, can_connect, free_port, recv_exact, socks5_open,
                     wait_until)

RULES = ['rule hk-to-cn block from HK to CN reason "not from HK to CN"', "rule rest pass"]

# Reads everything the tests look at in one evaluation: stable ids in the page.
READ_PAGE = """(() => {
  const t = (id) => document.getElementById(id).textContent.trim();
  const rows = (id) => Array.from(document.querySelectorAll('#' + id + ' tr'))
    .filter((tr) => !tr.classList.contains('empty'))
    .map((tr) => Array.from(tr.cells).map((td) => td.textContent));
  const places = {};
  document.querySelectorAll('#regions-body tr[data-name]').forEach((tr) => {
    const c = Array.from(tr.cells).map((td) => td.textContent);
    places[tr.dataset.name] = { kind: c[1], from: +c[2], to: +c[3], blocked: +c[4] };
  });
  return {
    stream: document.getElementById('stream-state').dataset.state,
    active: t('active-connections'), pass: t('count-pass'), block: t('count-block'),
    total: t('count-total'), closed: t('count-closed'), totalPass: t('total-pass'),
    totalBlock: t('total-block'), chartPass: t('chart-pass'), chartBlock: t('chart-block'),
    generation: t('policy-generation'), policyPath: t('policy-path'), geoAge: t('geo-age'),
    places: places,
    blocks: rows('blocks-body'), upstreams: document.getElementById('upstreams-body').innerText,
    text: document.body.innerText,
  };
})()"""


@unittest.skipUnless(chromium_available(), "needs /usr/bin/chromium (Debian package chromium)")
class Dashboard(ProxyTestCase):
    def setUp(self):
        self.db = self.geo_db()
        self.admin_port = free_port()
        self.proxy = self.start_dashboard_proxy()
        self.ch = self.start_echo(host=server_addr("CH"))
        self.cn = self.start_echo(host=server_addr("CN"))
        self.us = self.start_echo(host=server_addr("US"))
        self.browser = Browser(timeout=WAIT)
        self.addCleanup(self.browser.close)

    def start_dashboard_proxy(self, tag="geoproxy"):
        proxy = self.start_proxy(rules=RULES, drain_s=1.0, tag=tag, extra=[
            f"admin 127.0.0.1:{self.admin_port}", f"geoip country {self.db}"])
        wait_until(lambda: can_connect("127.0.0.1", self.admin_port),
                   what=f"the admin listener on port {self.admin_port}")
        return proxy

    # -- helpers

    def admin_json(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}",
                                    timeout=WAIT) as r:
            return json.load(r)

    def page(self):
        return self.browser.evaluate(READ_PAGE)

    def wait_page(self, predicate, what, timeout=WAIT):
        """Polls the page until predicate(state) holds; the failure shows the last state."""
        last = {}

        def check():
            last["state"] = self.page()
            return predicate(last["state"])

        try:
            wait_until(check, timeout=timeout, interval=0.2, what=what)
        except AssertionError as e:
            shown = {k: v for k, v in last.get("state", {}).items() if k != "text"}
            raise AssertionError(f"{e}; page shows {shown}; browser errors "
                                 f"{self.browser.errors}") from None
        return last["state"]

    def open_dashboard(self):
        self.browser.navigate(f"http://127.0.0.1:{self.admin_port}/")
        # Events have no history: traffic is sent only once the stream is open.
        return self.wait_page(lambda s: s["stream"] == "live" and s["generation"] != "-",
                              "the dashboard to go live and show the status")

    def passed(self, src_cc, server):
        sock, reply = socks5_open(self.proxy.port, server.host, server.port,
                                  source=client_addr(src_cc))
        with sock:
            self.assertSocks5Reply(reply, 0, f"{src_cc} -> {server.host}")
            sock.sendall(b"ping")
            self.assertEqual(recv_exact(sock, 4), b"ping")

    def blocked(self, src_cc, server):
        sock, reply = socks5_open(self.proxy.port, server.host, server.port,
                                  source=client_addr(src_cc))
        with sock:
            self.assertSocks5Reply(reply, 0x02, f"{src_cc} -> {server.host} (blocked by rule)")

    def assertNoBrowserErrors(self):
        self.assertEqual(self.browser.errors, [], "the dashboard logged errors in the browser")

    # -- tests

    def test_live_counts_follow_traffic(self):
        state = self.open_dashboard()
        self.assertEqual((state["pass"], state["block"], state["total"]), ("0", "0", "0"))
        self.assertEqual(state["blocks"], [])
        self.assertEqual(state["places"], {})
        status = self.admin_json("/status")
        self.assertEqual(state["generation"], str(status["policy"]["generation"]))
        age = status["geoip"]["country"]["age_days"]
        self.assertEqual(state["geoAge"], f"{age} day" + ("" if age == 1 else "s"))
        self.assertIn("no upstreams configured", state["upstreams"])
        self.assertEqual(state["active"], "0")

        # Known traffic: three passed connections, two blocked ones.
        self.passed("HK", self.ch)
        self.passed("HK", self.ch)
        self.passed("DE", self.us)
        self.blocked("HK", self.cn)
        self.blocked("HK", self.cn)

        state = self.wait_page(
            lambda s: (s["pass"], s["block"], s["total"], s["closed"]) == ("3", "2", "5", "5"),
            "3 passed, 2 blocked and 5 closed connections on the page")
        places = state["places"]
        self.assertEqual(places.get("HK"), {"kind": "country", "from": 4, "to": 0, "blocked": 2})
        self.assertEqual(places.get("CN"), {"kind": "country", "from": 0, "to": 2, "blocked": 2})
        self.assertEqual(places.get("CH"), {"kind": "country", "from": 0, "to": 2, "blocked": 0})
        self.assertEqual(places.get("DE"), {"kind": "country", "from": 1, "to": 0, "blocked": 0})
        self.assertEqual(places.get("EU"), {"kind": "region", "from": 1, "to": 0, "blocked": 0})
        self.assertEqual(places.get("FIVE_EYES"),
                         {"kind": "region", "from": 0, "to": 1, "blocked": 0})
        self.assertEqual(places.get("FOURTEEN_EYES"),  # DE is in it, and so is US
                         {"kind": "region", "from": 1, "to": 1, "blocked": 0})
        self.assertEqual((state["chartPass"], state["chartBlock"]), ("3", "2"))

        # Recent blocks: time, rule, reason, from, to, and nothing else.
        self.assertEqual(len(state["blocks"]), 2, state["blocks"])
        for cells in state["blocks"]:
            self.assertRegex(cells[0], r"^\d\d:\d\d:\d\d$")
            self.assertEqual(cells[1:], ["hk-to-cn", "not from HK to CN", "HK", "CN"])

        # Totals since start come from /metrics (polled every few seconds).
        self.wait_page(lambda s: (s["totalPass"], s["totalBlock"]) == ("3", "2"),
                       "totals since start from /metrics")

        # Active connections come from /status: one held open shows, then goes.
        sock, reply = socks5_open(self.proxy.port, self.ch.host, self.ch.port,
                                  source=client_addr("HK"))
        self.track(sock)
        self.assertSocks5Reply(reply, 0, "held connection")
        self.wait_page(lambda s: s["active"] == "1", "one active connection")
        sock.close()
        state = self.wait_page(lambda s: s["active"] == "0" and s["pass"] == "4",
                               "no active connection and 4 passed")

        # No client address or pseudonym anywhere on the page (the log has the pseudonyms).
        pseudonyms = set(re.findall(r"client_id=(\S+)", self.proxy.log_text()))
        self.assertTrue(pseudonyms, "no client_id in the log to look for")
        for secret in ("127.0.", *pseudonyms):
            self.assertNotIn(secret, state["text"])
        self.assertNoBrowserErrors()

    def test_reconnects_when_the_daemon_restarts(self):
        self.open_dashboard()
        self.blocked("HK", self.cn)
        self.wait_page(lambda s: s["block"] == "1", "the first block on the page")

        self.assertEqual(self.proxy.stop(), 0, self.proxy.log_text()[-2000:])
        self.wait_page(lambda s: s["stream"] != "live", "the page to notice the daemon went away")

        self.proxy = self.start_dashboard_proxy(tag="geoproxy-restarted")
        self.wait_page(lambda s: s["stream"] == "live", "the page to reconnect", timeout=3 * WAIT)
        # The new daemon's status (its own configuration file) shows once a poll got through.
        self.wait_page(lambda s: s["policyPath"] == self.proxy.config_path,
                       "the restarted daemon's status")
        errors_while_down = len(self.browser.errors)

        self.passed("HK", self.ch)
        self.blocked("HK", self.cn)
        state = self.wait_page(lambda s: (s["pass"], s["block"]) == ("1", "2"),
                               "counts that go on after the restart")
        self.assertEqual(len(state["blocks"]), 2, state["blocks"])

        # While the daemon was down the browser reported its failed requests; nothing else, and
        # nothing at all once it was back.
        for error in self.browser.errors[:errors_while_down]:
            self.assertRegex(error, r"^network error: .*net::ERR_(CONNECTION_REFUSED|"
                                    r"EMPTY_RESPONSE|CONNECTION_RESET|INCOMPLETE_CHUNKED_ENCODING)")
        self.assertEqual(self.browser.errors[errors_while_down:], [],
                         "errors in the browser after the daemon came back")

    def test_upstream_health_table(self):
        # Another geoproxy with upstreams: a SOCKS5 parent on a closed port (down once checked)
        # and a failover group of it; the table follows /status.
        admin = free_port()
        self.start_proxy(rules=["rule rest tunnel via parents"], tag="geoproxy-upstreams", extra=[
            f"admin 127.0.0.1:{admin}", f"geoip country {self.db}",
            f"upstream parent socks5 127.0.0.1:{self.closed_port()}",
            "upstream parents group failover parent", "health-check every 200ms timeout 500ms"])
        wait_until(lambda: can_connect("127.0.0.1", admin), what="the second admin listener")
        self.browser.navigate(f"http://127.0.0.1:{admin}/")
        rows = """Array.from(document.querySelectorAll('#upstreams-body tr[data-name]'))
          .map((tr) => [tr.dataset.name, tr.dataset.state, tr.cells[1].title,
                        tr.cells[0].textContent])"""
        last = {}

        def down():
            last["rows"] = self.browser.evaluate(rows)
            return [r[:2] for r in last["rows"]] == [["parent", "down"], ["parents", "down"]]

        wait_until(down, timeout=WAIT, interval=0.2, what="both upstreams down in the table")
        parent, group = last["rows"]
        self.assertRegex(parent[2], r"parent", "the reason as the state's tooltip")
        self.assertEqual(group[3], "parents (group: parent)")
        self.assertNoBrowserErrors()


if __name__ == "__main__":
    unittest.main()

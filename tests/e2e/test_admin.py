"""The admin listener and the operators' tools, end to end: /status, /metrics (counts match the
traffic the test sent; promtool agrees with the format), /events and `geoproxy tail` (the
decisions of a blocked and a passed connection; tail survives a restart), /connections, reload
and dry-run (HTTP and CLI), the bearer token, and privacy: with default settings no client
address and no destination host name appears anywhere an operator can look."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from harness import (ProxyTestCase, free_port, geoproxy_bin, recv_exact, run, socks5_open,
                     wait_until)
from geo_fixtures import client_addr, server_addr

PROMTOOL = shutil.which("promtool")


def http(port, path, method="GET", body=None, token=None, timeout=10):
    """(status, body bytes) from the admin listener."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=body.encode() if body is not None else None)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric(text, name, **labels):
    """The value of one sample, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-z_]+)(?:\{([^}]*)\})? (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == \
                ",".join(sorted(want.split(","))):
            return float(m.group(3))
    return None


def settled_metrics(fetch):
    """The metrics text once no connection is active; fetch() answers (status, body) of
    GET /metrics."""
    def settled():
        text = fetch()[1].decode()
        return text if metric(text, "geoproxy_active_connections") == 0 else None
    return wait_until(settled, what="all connections closed in the metrics")


class EventStream:
    """GET /events read on a socket, lines collected as they arrive: to the admin port, or on
    sock, a connected socket (a unix one)."""

    def __init__(self, port, query="", sock=None):
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(f"GET /events{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        self.head, self.buf = self.buf.split(b"\r\n\r\n", 1)

    def lines_until(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.buf.decode(errors="replace").splitlines()
            if predicate(lines):
                return lines
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            self.buf += chunk
        raise AssertionError(f"events never satisfied the test; got:\n{self.buf[-3000:]!r}")

    def close(self):
        self.sock.close()


class AdminBase(ProxyTestCase):
    RULES = ['rule hk-to-cn block from HK to CN reason "no traffic from HK to CN"',
             "rule rest pass"]

    def start(self, rules=None, extra=(), dns=None):
        self.admin_port = free_port()
        self.db = self.geo_db()
        return self.start_proxy(rules=rules or self.RULES, dns=dns,
                                extra=[f"geoip country {self.db}",
                                       f"admin 127.0.0.1:{self.admin_port}", *extra])

    def check_tail(self, proxy, admin, restart):
        """`geoproxy tail --admin ADMIN` shows a passed and a blocked decision, reconnects by
        itself to the daemon restart() stops and starts again (and returns), and ends with 0
        on SIGINT."""
        ch = self.start_echo(host=server_addr("CH"))
        cn = self.start_echo(host=server_addr("CN"))
        out_path = os.path.join(self.workdir(), "tail.out")
        with open(out_path, "wb") as out:
            tail = subprocess.Popen([geoproxy_bin(), "tail", "--admin", admin],
                                    stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: (tail.poll() is None and tail.kill(), tail.wait(timeout=10)))

        def tail_text():
            with open(out_path, encoding="utf-8", errors="replace") as f:
                return f.read()

        def pass_and_block():
            self.connect_through(proxy, "HK", "CH", ch)[0].close()
            self.connect_through(proxy, "HK", "CN", cn)[0].close()

        # tail may connect a moment after it starts: send until it shows both decisions.
        def both_seen():
            pass_and_block()
            t = tail_text()
            return ("decision" in t and "action=pass rule=rest" in t and
                    "action=block rule=hk-to-cn" in t)
        wait_until(both_seen, timeout=10, interval=0.3, what=f"tail output:\n{tail_text()}")

        proxy2 = restart()
        mark = len(tail_text())

        def seen_after_restart():
            self.connect_through(proxy2, "HK", "CN", cn)[0].close()
            return "action=block rule=hk-to-cn" in tail_text()[mark:]
        wait_until(seen_after_restart, timeout=15, interval=0.3,
                   what=f"tail output after the restart:\n{tail_text()}")
        self.assertIn("reconnecting", tail_text())
        tail.send_signal(signal.SIGINT)
        self.assertEqual(tail.wait(timeout=10), 0)

    def connect_through(self, proxy, src_cc, dst_cc, server, data=b"hello"):
        sock, reply = socks5_open(proxy.port, server.host, server.port,
                                  source=client_addr(src_cc))
        self.track(sock)
        if reply[0] == 0:
            sock.sendall(data)
            self.assertEqual(recv_exact(sock, len(data)), data)
        return sock, reply[0]


class Status(AdminBase):
    def test_status_json_and_text(self):
        proxy = self.start()
        status, body = http(self.admin_port, "/status")
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertEqual(doc["policy"]["generation"], 1)
        self.assertEqual(doc["policy"]["rules"], 2)
        self.assertEqual(doc["listeners"][0]["address"], f"127.0.0.1:{proxy.port}")
        self.assertEqual(doc["geoip"]["country"]["path"], self.db)
        self.assertEqual(doc["geoip"]["country"]["age_days"], 0)
        self.assertIsNone(doc["policy"]["last_reload_error"])
        r = run([geoproxy_bin(), "status", "--admin", f"127.0.0.1:{self.admin_port}"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.decode(), r"policy +generation 1, 2 rule\(s\)")
        status, _ = http(self.admin_port, "/nope")
        self.assertEqual(status, 404)
        status, _ = http(self.admin_port, "/status", method="POST", body="")
        self.assertEqual(status, 405)

    def test_status_cli_without_daemon(self):
        r = run([geoproxy_bin(), "status", "--admin", f"127.0.0.1:{free_port()}"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"cannot reach the admin listener", r.stderr)


class Metrics(AdminBase):
    def test_counts_follow_the_traffic(self):
        proxy = self.start()
        ch = self.start_echo(host=server_addr("CH"))
        cn = self.start_echo(host=server_addr("CN"))
        for _ in range(3):
            sock, rep = self.connect_through(proxy, "HK", "CH", ch, b"x" * 1000)
            self.assertEqual(rep, 0)
            sock.close()
        for _ in range(2):
            sock, rep = self.connect_through(proxy, "HK", "CN", cn)
            self.assertEqual(rep, 2)
            sock.close()
        sock, rep = self.connect_through(proxy, "DE", "CN", cn, b"y" * 500)
        self.assertEqual(rep, 0)
        sock.close()

        text = settled_metrics(lambda: http(self.admin_port, "/metrics"))
        self.assertEqual(metric(text, "geoproxy_connections_total", action="pass", rule="rest"), 4)
        self.assertEqual(metric(text, "geoproxy_connections_total", action="block",
                                rule="hk-to-cn"), 2)
        self.assertEqual(metric(text, "geoproxy_client_connections_total", country="HK"), 5)
        self.assertEqual(metric(text, "geoproxy_client_connections_total", country="DE"), 1)
        self.assertEqual(metric(text, "geoproxy_destination_connections_total", country="CN"), 3)
        self.assertEqual(metric(text, "geoproxy_destination_connections_total", country="CH"), 3)
        self.assertEqual(metric(text, "geoproxy_client_region_connections_total", region="EU"), 1)
        self.assertEqual(metric(text, "geoproxy_bytes_total", action="pass", direction="up"),
                         3 * 1000 + 500)
        self.assertEqual(metric(text, "geoproxy_bytes_total", action="pass", direction="down"),
                         3 * 1000 + 500)
        self.assertEqual(metric(text, "geoproxy_handshake_seconds_count"), 6)
        self.assertEqual(metric(text, "geoproxy_policy_generation"), 1)
        self.assertNotIn("127.0.", text.replace(f"127.0.0.1:{proxy.port}", ""))
        if PROMTOOL is None:
            self.skipTest("promtool (Debian package prometheus) is not installed")
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode())
        self.assertEqual((r.stdout + r.stderr).strip(), b"", "promtool found problems")


class Events(AdminBase):
    def test_events_show_blocked_and_passed_decisions(self):
        proxy = self.start()
        ch = self.start_echo(host=server_addr("CH"))
        cn = self.start_echo(host=server_addr("CN"))
        everything = EventStream(self.admin_port)
        blocks = EventStream(self.admin_port, "?action=block")
        sse = EventStream(self.admin_port, "?format=sse")
        self.addCleanup(everything.close)
        self.addCleanup(blocks.close)
        self.addCleanup(sse.close)
        self.connect_through(proxy, "HK", "CH", ch)[0].close()
        self.connect_through(proxy, "HK", "CN", cn)[0].close()

        lines = everything.lines_until(
            lambda ls: sum(1 for l in ls if '"event":"decision"' in l) >= 2)
        decisions = [json.loads(l) for l in lines if '"event":"decision"' in l]
        self.assertEqual([(d["action"], d["rule"], d["from"], d["to"]) for d in decisions],
                         [("pass", "rest", "HK", "CH"), ("block", "hk-to-cn", "HK", "CN")])
        self.assertEqual(decisions[1]["reason"], "no traffic from HK to CN")
        lines = blocks.lines_until(lambda ls: any('"event":"close"' in l for l in ls))
        self.assertTrue(all('"action":"block"' in l for l in lines), lines)
        self.assertIn(b"text/event-stream", sse.head)
        lines = sse.lines_until(lambda ls: sum(1 for l in ls if l.startswith("data: {")) >= 4)
        self.assertTrue(all(json.loads(l[6:]) for l in lines if l.startswith("data: ")))

    def test_tail_follows_and_survives_a_restart(self):
        proxy = self.start()

        def restart():  # the daemon again on the same admin port
            self.assertEqual(proxy.stop(), 0)
            time.sleep(0.3)
            return self.start_proxy(rules=self.RULES, tag="second",
                                    extra=[f"geoip country {self.db}",
                                           f"admin 127.0.0.1:{self.admin_port}"])
        self.check_tail(proxy, f"127.0.0.1:{self.admin_port}", restart)


class Control(AdminBase):
    def test_reload_and_dry_run(self):
        proxy = self.start()
        ch = self.start_echo(host=server_addr("CH"))
        cn = self.start_echo(host=server_addr("CN"))
        live_ch = self.connect_through(proxy, "DE", "CH", ch)[0]
        live_cn = self.connect_through(proxy, "DE", "CN", cn)[0]
        status, body = http(self.admin_port, "/connections")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["count"], 2)

        # A candidate that would block destinations in CH: only that connection would change.
        candidate = os.path.join(self.workdir(), "candidate.conf")
        with open(candidate, "w") as f:
            f.write("\n".join(proxy.head_lines + ["rule no-ch block to CH", "rule rest pass"]))
        status, body = http(self.admin_port, "/dry-run", method="POST", body=candidate)
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertEqual(doc["connections_checked"], 2)
        self.assertEqual([(c["to"], c["new_action"], c["new_rule"]) for c in doc["would_change"]],
                         [("CH", "block", "no-ch")])
        r = run([geoproxy_bin(), "dry-run", "-c", candidate, "--admin",
                 f"127.0.0.1:{self.admin_port}"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b'"new_rule":"no-ch"', r.stdout)
        # The dry run changed nothing.
        for sock in (live_ch, live_cn):
            sock.sendall(b"still")
            self.assertEqual(recv_exact(sock, 5), b"still")

        # A broken candidate: its errors, positioned.
        with open(candidate, "a") as f:
            f.write("\nrule oops blok\n")
        status, body = http(self.admin_port, "/dry-run", method="POST", body=candidate)
        self.assertEqual(status, 422)
        self.assertRegex(json.loads(body)["errors"][0], r"candidate\.conf:\d+:\d+: unknown action")

        # POST /reload answers with the outcome; so does the CLI.
        status, body = http(self.admin_port, "/reload", method="POST", body="")
        self.assertEqual((status, json.loads(body)["generation"]), (200, 2), body)
        r = run([geoproxy_bin(), "reload", "--admin", f"127.0.0.1:{self.admin_port}"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["generation"], 3)
        with open(proxy.config_path, "a") as f:
            f.write("rule broken blok\n")
        status, body = http(self.admin_port, "/reload", method="POST", body="")
        self.assertEqual(status, 422, body)
        self.assertRegex(json.loads(body)["error"], r"geoproxy\.conf:\d+:\d+: unknown action")
        r = run([geoproxy_bin(), "reload", "--admin", f"127.0.0.1:{self.admin_port}"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"unknown action", r.stderr)
        _, body = http(self.admin_port, "/status")
        self.assertRegex(json.loads(body)["policy"]["last_reload_error"], "unknown action")


class Token(ProxyTestCase):
    def test_token_required_when_configured(self):
        token = "s3cret-token-0123456789"
        path = os.path.join(self.workdir(), "admin.token")
        with open(path, "w") as f:
            f.write(token + "\n")
        os.chmod(path, 0o600)
        port = free_port()
        self.start_proxy(extra=[f"admin 127.0.0.1:{port} token {path}"])
        self.assertEqual(http(port, "/status")[0], 401)
        self.assertEqual(http(port, "/status", token="wrong-token-0123456789")[0], 401)
        self.assertEqual(http(port, "/status", token=token)[0], 200)
        r = run([geoproxy_bin(), "status", "--admin", f"127.0.0.1:{port}", "--token-file", path])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_reload_cannot_take_the_token_away(self):
        """The admin listener is bound at start with its token; a policy without the token line
        is refused on reload (the listener would be left open), one that rotates the token file's
        content is taken."""
        token, rotated = "s3cret-token-0123456789", "rotated-token-9876543210"
        path = os.path.join(self.workdir(), "admin.token")
        with open(path, "w") as f:
            f.write(token + "\n")
        os.chmod(path, 0o600)
        port = free_port()
        proxy = self.start_proxy(extra=[f"admin 127.0.0.1:{port} token {path}"])
        with open(proxy.config_path, encoding="utf-8") as f:
            with_token = f.read()
        start = proxy.log_size()
        with open(proxy.config_path, "w", encoding="utf-8") as f:
            f.write(with_token.replace(f" token {path}", ""))
        wait_until(lambda: "restart geoproxy to apply this" in proxy.log_text()[start:],
                   timeout=5, what="the reload without a token refused")
        self.assertIn("the admin line changed", proxy.log_text()[start:])
        self.assertEqual(http(port, "/status")[0], 401, "still asks for the token")
        self.assertEqual(http(port, "/status", token=token)[0], 200)
        with open(proxy.config_path, "w", encoding="utf-8") as f:
            f.write(with_token)
        tmp = path + ".new"
        with open(tmp, "w") as f:
            f.write(rotated + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        wait_until(lambda: http(port, "/status", token=rotated)[0] == 200, timeout=5,
                   what="the rotated token in force")
        self.assertEqual(http(port, "/status", token=token)[0], 401, "the old token")

    def test_group_readable_token_refused(self):
        path = os.path.join(self.workdir(), "admin.token")
        with open(path, "w") as f:
            f.write("s3cret-token-0123456789\n")
        os.chmod(path, 0o640)
        conf = os.path.join(self.workdir(), "t.conf")
        with open(conf, "w") as f:
            f.write(f"listen mixed 127.0.0.1:1080\nadmin 127.0.0.1:9 token {path}\n"
                    "rule all pass\n")
        r = run([geoproxy_bin(), "check", "-c", conf])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"refusing a token file that group or others can access (mode 0640)",
                      r.stderr)


class Privacy(AdminBase):
    """Everything an operator can see, after traffic, with the default log level (meta)."""

    def collect(self, proxy, stream):
        texts = [proxy.log_text()]
        for path in ("/status", "/metrics", "/connections"):
            texts.append(http(self.admin_port, path)[1].decode())
        texts.append(stream.buf.decode(errors="replace"))
        return "\n".join(texts)

    def traffic(self, proxy, dns):
        jp = self.start_origin(host=server_addr("JP"))
        r = run(["curl", "-sS", "--max-time", "10", "--interface", client_addr("HK"), "-x",
                 f"http://127.0.0.1:{proxy.port}", f"http://jp.geo.test:{jp.port}/bytes/100",
                 "-o", "/dev/null", "-w", "%{http_code}"])
        self.assertEqual(r.stdout, b"200", r.stderr)
        r = run(["curl", "-sS", "--max-time", "10", "--interface", client_addr("DE"),
                 "--socks5-hostname", f"127.0.0.1:{proxy.port}",
                 f"http://jp.geo.test:{jp.port}/bytes/100", "-o", "/dev/null"])
        self.assertEqual(r.returncode, 0, r.stderr)

    def run_case(self, rules):
        dns = self.start_dns()
        proxy = self.start(rules=rules, dns=dns)
        stream = EventStream(self.admin_port)
        self.addCleanup(stream.close)
        self.traffic(proxy, dns)
        stream.lines_until(lambda ls: sum(1 for l in ls if '"event":"close"' in l) >= 2)
        return self.collect(proxy, stream)

    def test_default_level_shows_no_address_and_no_host_name(self):
        seen = self.run_case(["rule rest pass"])
        for secret in (client_addr("HK"), client_addr("DE"), "jp.geo.test", server_addr("JP")):
            self.assertNotIn(secret, seen)
        self.assertRegex(seen, r'"client_id":"c-[0-9a-f]{12}"')

    def test_log_full_shows_them(self):
        seen = self.run_case(["rule rest pass log full"])
        for shown in (client_addr("HK"), client_addr("DE"), "jp.geo.test"):
            self.assertIn(shown, seen)


if __name__ == "__main__":
    unittest.main()

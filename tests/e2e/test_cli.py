"""The command line: check, run, passwd, --help, --version, exit codes, signals, log format."""

import json
import os
import re
import signal
import socket
import subprocess
import unittest

from harness import (MIB, WAIT, ProxyTestCase, can_connect, free_port, geoproxy_bin,
                     payload, recv_until_eof, run, sha256, socks5_open, socks5_roundtrip,
                     wait_closed, wait_until)

PASSWD_LINE = re.compile(r"^([^:\s]+):\$pbkdf2-sha256\$(\d+)\$([A-Za-z0-9+/=._-]+)"
                         r"\$([A-Za-z0-9+/=._-]+)$")


class Cli(ProxyTestCase):
    def write(self, name, text):
        path = os.path.join(self.workdir(), name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def check(self, path):
        return run([geoproxy_bin(), "check", "-c", path])

    # -- informational commands

    def test_help(self):
        r = run([geoproxy_bin(), "--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        for command in ("run", "check", "passwd"):
            self.assertRegex(out, rf"\b{command}\b", f"--help does not list '{command}'")

    def test_version(self):
        r = run([geoproxy_bin(), "--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode().strip(), "geoproxy 0.1.0")

    def test_unknown_command_is_usage_error(self):
        r = run([geoproxy_bin(), "frobnicate"])
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr.decode(), r"(?i)usage")
        self.assertEqual(r.stdout, b"")

    def test_no_command_is_usage_error(self):
        r = run([geoproxy_bin()])
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr.decode(), r"(?i)usage")

    def test_default_config_is_valid_and_documented_default(self):
        r = run([geoproxy_bin(), "default-config"])
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout.decode()
        self.assertRegex(text, r"(?m)^\s*listen mixed 127\.0\.0\.1:1080\b")
        self.assertRegex(text, r"(?m)^\s*rule default pass\b")
        path = self.write("default.conf", text)
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stderr.decode())

    # -- check

    def test_check_valid_config(self):
        path = self.write("good.conf", "# a comment\n"
                                       f"listen mixed 127.0.0.1:{free_port()} name main\n"
                                       f"listen socks5 [::1]:{free_port(socket.AF_INET6)}\n"
                                       "resolver 127.0.0.1:53\n"
                                       "timeout handshake 250ms\n"
                                       "timeout idle 5m\n"
                                       "timeout connect 2s\n"
                                       "limit connections 100\n"
                                       "limit header-bytes 8192\n"
                                       "rule ok pass\n")
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertNotRegex(r.stderr.decode(), r":\d+:\d+: error")

    def test_check_unknown_directive_line_and_column(self):
        path = self.write("bad.conf", "# line 1\n"
                                      "listen mixed 127.0.0.1:1080\n"
                                      "frobnicate yes\n"
                                      "rule default pass\n")
        r = self.check(path)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr.decode(), rf"(?m)^{re.escape(path)}:3:1: .*frobnicate")

    def test_check_bad_value_points_at_value(self):
        path = self.write("bad.conf", "listen mixed 127.0.0.1:1080\n"
                                      "rule default pass\n"
                                      "timeout handshake banana\n")
        r = self.check(path)
        self.assertEqual(r.returncode, 1)
        #                    timeout handshake banana
        #                    1       9         19
        self.assertRegex(r.stderr.decode(), rf"(?m)^{re.escape(path)}:3:19: ")

    def test_check_bad_port_and_kind(self):
        # The column is the offending word, or the part of it that is wrong (the port).
        for line, cols in (("listen mixed 127.0.0.1:99999", "24"),
                           ("listen gopher 127.0.0.1:80", "8")):
            with self.subTest(line):
                path = self.write("bad.conf", line + "\nrule default pass\n")
                r = self.check(path)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertRegex(r.stderr.decode(), rf"(?m)^{re.escape(path)}:1:{cols}: ")

    def test_check_reports_problems_of_several_lines(self):
        path = self.write("bad.conf", "listen mixed 127.0.0.1:1080\n"
                                      "lisen mixed 127.0.0.1:1081\n"
                                      "rule default pass\n"
                                      "timeout idle 5x\n")
        r = self.check(path)
        self.assertEqual(r.returncode, 1)
        err = r.stderr.decode()
        self.assertRegex(err, rf"(?m)^{re.escape(path)}:2:1: .*lisen.*did you mean 'listen'")
        self.assertRegex(err, rf"(?m)^{re.escape(path)}:4:14: .*5x")

    def test_check_no_listener_is_an_error(self):
        path = self.write("nolisten.conf", "rule default pass\n")
        r = self.check(path)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr.decode(), rf"(?m)^{re.escape(path)}: .*no listener")

    def test_check_no_rule_is_a_warning(self):
        path = self.write("norule.conf", "listen mixed 127.0.0.1:1080\n")
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertRegex(r.stderr.decode(), rf"(?m)^{re.escape(path)}: .*no rule")

    def test_check_users_on_socks4_listener_refused(self):
        users = self.users_file({"alice": "pw"})
        path = self.write("s4.conf", f"listen socks4 127.0.0.1:1080 users {users}\n"
                                     "rule default pass\n")
        r = self.check(path)
        self.assertEqual(r.returncode, 1, "users accepted on a socks4 listener")
        self.assertRegex(r.stderr.decode(), rf"(?m)^{re.escape(path)}:1:\d+: ")

    def test_check_error_in_included_file_names_that_file(self):
        inc = self.write("inc.conf", "rule default pass\nlimit connections lots\n")
        path = self.write("main.conf", f"listen mixed 127.0.0.1:1080\ninclude {inc}\n")
        r = self.check(path)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr.decode(), rf"(?m)^{re.escape(inc)}:2:\d+: ")

    def test_check_relative_include(self):
        self.write("rules.conf", "rule default pass\n")
        path = self.write("main.conf", "listen mixed 127.0.0.1:1080\ninclude rules.conf\n")
        r = run([geoproxy_bin(), "check", "-c", path], cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr.decode())

    def test_check_missing_file(self):
        path = os.path.join(self.workdir(), "does-not-exist.conf")
        r = self.check(path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("does-not-exist.conf", r.stderr.decode())

    def test_check_users_file_readable_by_others_refused(self):
        users = self.users_file({"alice": "pw"}, mode=0o644)
        path = self.write("main.conf", f"listen socks5 127.0.0.1:1080 users {users}\n"
                                       "rule default pass\n")
        r = self.check(path)
        self.assertEqual(r.returncode, 1, "a world-readable users file was accepted")
        self.assertIn(users, r.stderr.decode())
        self.assertIn("chmod 600", r.stderr.decode())

    # -- run

    def test_run_bad_config_exits_without_listening(self):
        port = free_port()
        path = self.write("bad.conf", f"listen mixed 127.0.0.1:{port}\n"
                                      "rule default pass\n"
                                      "timeout idle forever\n")
        proc = subprocess.Popen([geoproxy_bin(), "run", "-c", path], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.addCleanup(_kill, proc)
        try:
            out, err = proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.fail("geoproxy run with a bad config did not exit")
        self.assertNotEqual(proc.returncode, 0)
        self.assertRegex(err.decode(), rf"(?m)^{re.escape(path)}:3:\d+: ")
        self.assertFalse(can_connect("127.0.0.1", port), "something listens on the port")

    def test_run_port_in_use_exits_nonzero_naming_address(self):
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        path = self.write("busy.conf", f"listen mixed 127.0.0.1:{port}\nrule default pass\n")
        proc = subprocess.Popen([geoproxy_bin(), "run", "-c", path], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.addCleanup(_kill, proc)
        try:
            _, err = proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.fail("geoproxy run kept running although its port is taken")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(f"127.0.0.1:{port}", err.decode())

    def test_run_logs_listening_per_listener(self):
        proxy = self.start_proxy(listeners=(("mixed", "127.0.0.1"), ("http", "127.0.0.1"),
                                            ("socks5", "::1")))
        for listener in proxy.listeners:
            proxy.wait_log(rf"(?m)^.*listening.*{re.escape(str(listener.port))}", timeout=5)

    def test_sigint_exits_zero(self):
        proxy = self.start_proxy(check_exit=False)
        self.assertEqual(proxy.stop(signal.SIGINT), 0, proxy.log_text())

    def test_sigterm_as_soon_as_port_accepts_exits_zero(self):
        # "Ready" is when the port accepts (the spec's readiness contract), so a SIGTERM sent
        # right then must be handled, not kill the process. Twenty quick starts make a
        # start-up window in which the signal is not yet handled show up.
        path = self.write("quick.conf", "")
        for attempt in range(20):
            port = free_port()
            with open(path, "w", encoding="utf-8") as f:
                f.write(f"listen mixed 127.0.0.1:{port}\nrule default pass\n")
            proc = subprocess.Popen([geoproxy_bin(), "run", "-c", path],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.addCleanup(_kill, proc)
            wait_until(lambda: proc.poll() is not None or can_connect("127.0.0.1", port, 0.5),
                       interval=0.001, what="the port to accept")
            self.assertIsNone(proc.poll(), f"attempt {attempt}: exited during start-up")
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.fail(f"attempt {attempt}: no exit within {WAIT}s of SIGTERM")
            self.assertEqual(proc.returncode, 0,
                             f"attempt {attempt}: SIGTERM right after the port accepted ended "
                             f"geoproxy with status {proc.returncode}; stderr: {err[-500:]!r}")

    def test_sigterm_lets_transfer_in_flight_finish(self):
        data = payload(4 * MIB, seed=61)
        server = self.start_data("gated", data)
        proxy = self.start_proxy(check_exit=False, drain_s=20)
        sock, reply = socks5_open(proxy.port, "127.0.0.1", server.port)
        self.track(sock)
        self.assertSocks5Reply(reply, 0)
        self.assertEqual(server.results.get(timeout=WAIT), "first-half-sent")
        received = bytearray()
        while len(received) < len(data) // 2:  # the first half is through the proxy
            chunk = sock.recv(65536)
            self.assertTrue(chunk, "connection closed before the first half arrived")
            received += chunk
        proxy.send_signal(signal.SIGTERM)
        # It stops accepting new connections ...
        wait_until(lambda: not can_connect("127.0.0.1", proxy.port, timeout=0.5),
                   what="the listener to close after SIGTERM")
        self.assertIsNone(proxy.proc.poll(), "exited with a transfer in flight")
        # ... and the transfer in flight completes.
        server.gate.set()
        received += recv_until_eof(sock)
        self.assertEqual((len(received), sha256(received)), (len(data), sha256(data)))
        self.assertEqual(proxy.wait_exit(WAIT + 20), 0, proxy.log_text())

    def test_sigterm_drain_timeout_ends_stuck_transfer(self):
        # A transfer that never finishes is cut when the drain time is over, and geoproxy
        # still exits with status 0.
        server = self.start_data("gated", payload(MIB, seed=62))  # the gate never opens
        proxy = self.start_proxy(check_exit=False, drain_s=1)
        sock, reply = socks5_open(proxy.port, "127.0.0.1", server.port)
        self.track(sock)
        self.assertSocks5Reply(reply, 0)
        self.assertEqual(server.results.get(timeout=WAIT), "first-half-sent")
        proxy.send_signal(signal.SIGTERM)
        self.assertEqual(proxy.wait_exit(1 + WAIT), 0, proxy.log_text())
        closed, _ = wait_closed(sock, 5)
        self.assertTrue(closed, "client connection open after geoproxy exited")

    def test_json_log_format(self):
        echo = self.start_echo()
        proxy = self.start_proxy(args=["--log-format", "json"], check_exit=False)
        socks5_roundtrip(self, proxy.port, "127.0.0.1", echo.port)
        self.assertEqual(proxy.stop(), 0)
        lines = [l for l in proxy.log_text().splitlines() if l.strip()]
        self.assertTrue(lines, "no log lines at all")
        for line in lines:
            try:
                doc = json.loads(line)
            except ValueError:
                self.fail(f"not a JSON log line: {line!r}")
            self.assertIsInstance(doc, dict, line)
        self.assertTrue(any("listening" in l for l in lines), "no 'listening' line")

    def test_bad_log_format_rejected(self):
        path = self.write("ok.conf", f"listen mixed 127.0.0.1:{free_port()}\nrule default pass\n")
        proc = subprocess.Popen([geoproxy_bin(), "run", "-c", path, "--log-format", "xml"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(_kill, proc)
        try:
            _, err = proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.fail("geoproxy run --log-format xml kept running")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("xml", err.decode())

    # -- passwd

    def passwd(self, user, password):
        return run([geoproxy_bin(), "passwd", user], input=(password + "\n").encode())

    def test_passwd_line_format_and_salt(self):
        a = self.passwd("alice", "same password")
        b = self.passwd("alice", "same password")
        self.assertEqual((a.returncode, b.returncode), (0, 0), a.stderr + b.stderr)
        line_a, line_b = a.stdout.decode().strip(), b.stdout.decode().strip()
        self.assertEqual(len(a.stdout.decode().strip().splitlines()), 1)
        self.assertRegex(line_a, PASSWD_LINE)
        self.assertEqual(PASSWD_LINE.match(line_a).group(1), "alice")
        self.assertNotEqual(line_a, line_b, "two hashes of one password are equal: no salt")
        self.assertNotIn("same password", line_a)

    def test_passwd_output_verifies_in_users_file(self):
        echo = self.start_echo()
        users = self.users_file({"carol": "p4ss w0rd with spaces"})
        proxy = self.start_proxy(listeners=(("socks5", "127.0.0.1", {"users": users}),))
        socks5_roundtrip(self, proxy.port, "127.0.0.1", echo.port,
                         auth=("carol", "p4ss w0rd with spaces"))
        with self.assertRaises(AssertionError):
            sock, _ = socks5_open(proxy.port, "127.0.0.1", echo.port,
                                  auth=("carol", "p4ss w0rd with space"))
            sock.close()


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=WAIT)
    for f in (proc.stdout, proc.stderr):
        if f:
            f.close()


if __name__ == "__main__":
    unittest.main()

"""Logs: a blocked connection is logged with the rule that blocked it, and at the default log
level the client's address appears in no log line (privacy default).

Clients bind 127.0.3.77, an address used by nothing else, so that "the client address" can be
searched for in the log text without matching listener or destination addresses."""

import unittest

from harness import (ProxyTestCase, connect, http_connect_open, http_response, run,
                     socks4_open, socks5_open, socks5_roundtrip, wait_closed)

CLIENT = "127.0.3.77"


class BlockLogging(ProxyTestCase):
    def setUp(self):
        self.echo = self.start_echo()

    def check_block_logged(self, args=()):
        proxy = self.start_proxy(rules=['rule quarantine-7 block reason "test block"'],
                                 args=args)
        start = proxy.log_size()
        sock, reply = socks5_open(proxy.port, "127.0.0.1", self.echo.port, source=CLIENT)
        self.track(sock)
        self.assertSocks5Reply(reply, 0x02)
        match = proxy.wait_log(r"[^\n]*quarantine-7[^\n]*", start=start)
        line = match.group(0)
        self.assertNotIn(CLIENT, line, f"the client address is in the block line: {line}")
        return proxy, start

    def test_blocked_connection_names_rule(self):
        self.check_block_logged()

    def test_blocked_connection_names_rule_json(self):
        self.check_block_logged(args=["--log-format", "json"])

    def test_blocked_http_request_names_rule(self):
        proxy = self.start_proxy(rules=["rule http-quarantine block"])
        start = proxy.log_size()
        sock = self.track(connect("127.0.0.1", proxy.port, source=CLIENT))
        sock.sendall(f"GET http://127.0.0.1:{self.echo.port}/ HTTP/1.1\r\nHost: x\r\n\r\n"
                     .encode())
        status, _, body, _ = http_response(sock)
        self.assertEqual(status, 403)
        proxy.wait_log(r"http-quarantine", start=start)


class ClientAddressPrivacy(ProxyTestCase):
    """Many kinds of connections from CLIENT, then the whole log is searched for CLIENT."""

    def run_traffic(self, proxy, closed_port):
        origin = self.start_origin()
        # successes over each protocol
        socks5_roundtrip(self, proxy.port, "127.0.0.1", self.echo.port, source=CLIENT)
        socks5_roundtrip(self, proxy.port, "origin.test", self.echo.port, source=CLIENT)
        sock, reply = socks4_open(proxy.port, "127.0.0.1", self.echo.port, source=CLIENT)
        self.track(sock)
        self.assertEqual(reply[1], 0x5A)
        sock.close()
        r = run(["curl", "-sS", "--max-time", "20", "--interface", CLIENT, "-x",
                 f"http://127.0.0.1:{proxy.port}", f"http://origin.test:{origin.port}/bytes/10"])
        self.assertEqual(r.returncode, 0, r.stderr)
        sock, status, _ = http_connect_open(proxy.port, f"127.0.0.1:{self.echo.port}",
                                            source=CLIENT)
        self.track(sock)
        self.assertEqual(status, 200)
        sock.close()
        # failures: refused, DNS, protocol errors, a handshake timeout
        sock, reply = socks5_open(proxy.port, "127.0.0.1", closed_port, source=CLIENT)
        self.track(sock)
        sock, reply = socks5_open(proxy.port, "nx.test", 80, source=CLIENT)
        self.track(sock)
        for junk in (b"\x05\x00", b"\x00garbage", b"BREW coffee HTCPCP/1.0\r\n\r\n"):
            sock = self.track(connect("127.0.0.1", proxy.port, source=CLIENT))
            sock.sendall(junk)
            wait_closed(sock, 5)
        stalled = self.track(connect("127.0.0.1", proxy.port, source=CLIENT))
        stalled.sendall(b"\x05")
        self.assertTrue(wait_closed(stalled, 5)[0], "handshake timeout did not close")

    def test_default_level_never_logs_client_address(self):
        self.echo = self.start_echo()
        dns = self.start_dns()
        proxy = self.start_proxy(dns=dns, extra=["timeout handshake 500ms"], check_exit=False)
        self.run_traffic(proxy, self.closed_port())
        self.assertEqual(proxy.stop(), 0)
        log = proxy.log_text()
        offending = [l for l in log.splitlines() if CLIENT in l]
        self.assertEqual(offending, [], "log lines with the client address at the default level")

    def test_default_level_never_logs_client_address_json(self):
        self.echo = self.start_echo()
        dns = self.start_dns()
        proxy = self.start_proxy(dns=dns, extra=["timeout handshake 500ms"],
                                 args=["--log-format", "json"], check_exit=False)
        self.run_traffic(proxy, self.closed_port())
        self.assertEqual(proxy.stop(), 0)
        offending = [l for l in proxy.log_text().splitlines() if CLIENT in l]
        self.assertEqual(offending, [], "log lines with the client address at the default level")

    def test_blocked_line_has_no_client_address(self):
        self.echo = self.start_echo()
        proxy = self.start_proxy(rules=["rule privacy-block block"], check_exit=False)
        for _ in range(3):
            sock, reply = socks5_open(proxy.port, "127.0.0.1", self.echo.port, source=CLIENT)
            self.track(sock)
            self.assertSocks5Reply(reply, 0x02)
        proxy.wait_log("privacy-block")
        self.assertEqual(proxy.stop(), 0)
        offending = [l for l in proxy.log_text().splitlines() if CLIENT in l]
        self.assertEqual(offending, [])

    def test_control_log_full_does_show_client_address(self):
        # The control for the tests above: a rule with "log full" logs addresses, so searching
        # the log text for CLIENT is a method that finds it when it is there.
        self.echo = self.start_echo()
        proxy = self.start_proxy(rules=["rule everything pass log full"], check_exit=False)
        socks5_roundtrip(self, proxy.port, "127.0.0.1", self.echo.port, source=CLIENT)
        self.assertEqual(proxy.stop(), 0)
        self.assertIn(CLIENT, proxy.log_text(), "a 'log full' rule did not log the client")


if __name__ == "__main__":
    unittest.main()

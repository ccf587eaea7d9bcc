"""SOCKS5 (RFC 1928) end to end: real clients (curl, netcat) and exact reply codes.

Reply codes and how they are produced on loopback:
  0x00 success          CONNECT to a local server (IPv4, IPv6, name)
  0x01 general failure  the proxy out of file descriptors (RLIMIT_NOFILE lowered with prlimit
                        so that the accepted client takes the last descriptor and the outbound
                        socket() fails with EMFILE)
  0x02 not allowed      a "rule ... block" configuration
  0x03 net unreachable  TCP connect to a multicast address (224.0.0.1) fails with ENETUNREACH on
                        Linux whatever the routes are; the test checks that first and is skipped
                        where the kernel does otherwise. An "unroutable" unicast address such as
                        2001:db8::1 is NOT used: whether it is unreachable depends on the host's
                        routes (this sandbox has an IPv6 default route and answers EHOSTUNREACH).
  0x04 host unreach.    a name the test DNS server says does not exist, and a DNS server that is
                        down (nothing on its port)
  0x05 refused          a closed loopback port
  0x06 TTL expired /    a connect timeout: a listening socket whose accept queue is full makes
       timeout          the kernel drop SYNs (checked first, skipped where it does not)
  0x07 cmd not supp.    BIND and UDP ASSOCIATE
  0x08 atyp not supp.   ATYP 0x05
"""

import errno
import json
import os
import resource
import socket
import time
import unittest

from harness import (ProxyTestCase, SOCKS5_ATYP_IPV4, SOCKS5_BIND, SOCKS5_UDP, connect,
                     free_port, payload, recv_exact, run, sha256, socks5_open,
                     socks5_read_reply, socks5_request_bytes, socks5_roundtrip, wait_until)


class Socks5Clients(ProxyTestCase):
    """Real clients through a mixed listener (the default kind) and a socks5-only listener."""

    def setUp(self):
        self.dns = self.start_dns()
        self.origin = self.start_origin("A")
        self.proxy = self.start_proxy(listeners=(("socks5", "127.0.0.1"),), dns=self.dns)

    def test_curl_socks5_with_ip_resolved_by_curl(self):
        r = self.curl("--socks5", f"127.0.0.1:{self.proxy.port}",
                      f"http://127.0.0.1:{self.origin.port}/bytes/200000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256(r.stdout), sha256(payload(200000)))

    def test_curl_socks5_hostname_resolved_by_proxy_via_resolver(self):
        r = self.curl("--socks5-hostname", f"127.0.0.1:{self.proxy.port}",
                      f"http://origin.test:{self.origin.port}/bytes/300000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256(r.stdout), sha256(payload(300000)))
        # The name was resolved by the configured resolver (curl cannot resolve .test itself).
        self.assertIn("origin.test", self.dns.queries())

    def test_curl_socks5_chunked_response_and_post_body(self):
        r = self.curl("--socks5-hostname", f"127.0.0.1:{self.proxy.port}",
                      f"http://origin.test:{self.origin.port}/chunked/150000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, payload(150000))
        body = payload(500000, seed=7)
        r = run(["curl", "-sS", "--max-time", "30", "--socks5-hostname",
                 f"127.0.0.1:{self.proxy.port}", "--data-binary", "@-",
                 f"http://origin.test:{self.origin.port}/echo"], input=body)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f'"body_sha256": "{sha256(body)}"', r.stdout.decode())

    def test_netcat_one_mib_each_way(self):
        self.assertNetcatRelaysMibEachWay("5", "origin.test", seeds=(11, 12))

    def test_curl_socks5_hostname_localhost_answered_without_dns(self):
        # RFC 6761 §6.3: "localhost" and names under it are loopback; the proxy answers them
        # itself and never asks the DNS server (which does not know them here).
        r = self.curl("--socks5-hostname", f"127.0.0.1:{self.proxy.port}",
                      f"http://app.localhost:{self.origin.port}/echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual((doc["origin"], doc["target"]), ("A", "/echo"))
        # A name the DNS server does know, asked afterwards: once it is in the query log, the
        # log is complete up to it, so a localhost query would be there too.
        r = self.curl("--socks5-hostname", f"127.0.0.1:{self.proxy.port}",
                      f"http://origin.test:{self.origin.port}/bytes/10")
        self.assertEqual((r.returncode, r.stdout), (0, payload(10)), r.stderr)
        wait_until(lambda: "origin.test" in self.dns.queries(), what="origin.test in the DNS log")
        self.assertNotIn("localhost", self.dns.queries(), "a localhost name was sent to DNS")


class Socks5Raw(ProxyTestCase):
    """Exact reply bytes with a raw client."""

    def setUp(self):
        self.dns = self.start_dns()
        self.proxy = self.start_proxy(dns=self.dns, extra=["timeout connect 2s", "timeout dns 2s"])

    def request(self, host, port, **kw):
        sock, reply = socks5_open(self.proxy.port, host, port, **kw)
        self.track(sock)
        return sock, reply

    def test_ipv4_connect_reports_bound_address(self):
        echo = self.start_echo()
        sock, reply = self.request("127.0.0.1", echo.port)
        self.assertSocks5Reply(reply, 0x00, "CONNECT 127.0.0.1")
        # BND.ADDR/BND.PORT is the proxy's end of the upstream connection: exactly the peer
        # address the server saw.
        peer = echo.peers.get(timeout=5)
        self.assertEqual((reply[1], reply[2], reply[3]), (SOCKS5_ATYP_IPV4, peer[0], peer[1]))
        sock.sendall(b"hello")
        self.assertEqual(recv_exact(sock, 5), b"hello")

    def test_data_sent_with_the_request_is_relayed(self):
        # Greeting, request and first payload in one write, before any reply (optimistic data,
        # as Tor Browser sends it): the payload must reach the server after the connect.
        echo = self.start_echo()
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        early = b"early bytes sent before the reply"
        sock.sendall(b"\x05\x01\x00" + socks5_request_bytes("127.0.0.1", echo.port) + early)
        self.assertEqual(recv_exact(sock, 2), b"\x05\x00")
        self.assertSocks5Reply(socks5_read_reply(sock), 0x00, "pipelined CONNECT")
        self.assertEqual(recv_exact(sock, len(early)), early)

    def test_ipv6_literal_connect(self):
        echo = self.start_echo(socket.AF_INET6)
        sock, reply = self.request("::1", echo.port)
        self.assertSocks5Reply(reply, 0x00, "CONNECT [::1]")
        peer = echo.peers.get(timeout=5)
        self.assertEqual((reply[1], reply[2], reply[3]), (4, "::1", peer[1]))
        data = payload(100000)
        sock.sendall(data)
        self.assertEqual(recv_exact(sock, len(data)), data)

    def test_name_with_only_ipv6_address(self):
        echo = self.start_echo(socket.AF_INET6)
        socks5_roundtrip(self, self.proxy.port, "v6.test", echo.port)

    def test_name_with_both_families(self):
        # dual.test has A and AAAA; only the IPv4 address listens: the proxy must fall back.
        echo = self.start_echo(socket.AF_INET)
        socks5_roundtrip(self, self.proxy.port, "dual.test", echo.port)

    def test_curl_to_ipv6_origin(self):
        origin = self.start_origin("v6", socket.AF_INET6)
        r = self.curl("--socks5", f"127.0.0.1:{self.proxy.port}",
                      f"http://[::1]:{origin.port}/bytes/70000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, payload(70000))

    def test_0x04_name_does_not_exist(self):
        _, reply = self.request("nx.test", 80)
        self.assertSocks5Reply(reply, 0x04, "CONNECT nx.test (NXDOMAIN)")

    def test_0x05_connection_refused(self):
        _, reply = self.request("127.0.0.1", self.closed_port())
        self.assertSocks5Reply(reply, 0x05, "CONNECT to a closed port")

    def test_0x05_connection_refused_by_name(self):
        _, reply = self.request("origin.test", self.closed_port())
        self.assertSocks5Reply(reply, 0x05, "CONNECT origin.test to a closed port")

    def test_0x07_bind_not_supported(self):
        echo = self.start_echo()
        _, reply = self.request("127.0.0.1", echo.port, cmd=SOCKS5_BIND)
        self.assertSocks5Reply(reply, 0x07, "BIND")

    def test_0x07_udp_associate_not_supported(self):
        _, reply = self.request("0.0.0.0", 0, cmd=SOCKS5_UDP)
        self.assertSocks5Reply(reply, 0x07, "UDP ASSOCIATE")

    def test_0x08_unknown_address_type(self):
        _, reply = self.request("", 80, atyp=0x05, addr=b"\x7f\x00\x00\x01")
        self.assertSocks5Reply(reply, 0x08, "ATYP 0x05")

    def test_0x03_network_unreachable(self):
        probe = socket.socket()
        probe.settimeout(2)
        try:
            probe.connect(("224.0.0.1", 80))
            outcome = 0
        except OSError as e:
            outcome = e.errno
        finally:
            probe.close()
        if outcome != errno.ENETUNREACH:
            self.skipTest(f"connect to 224.0.0.1 gives errno {outcome} here, not ENETUNREACH")
        _, reply = self.request("224.0.0.1", 80)
        self.assertSocks5Reply(reply, 0x03, "CONNECT 224.0.0.1 (ENETUNREACH)")

    def test_0x06_connect_timeout(self):
        bh = self.blackhole()
        _, reply = self.request(bh.host, bh.port, timeout=15)
        self.assertSocks5Reply(reply, 0x06, "CONNECT to an address that drops SYNs")

    def test_proxy_serves_after_every_failure(self):
        echo = self.start_echo()
        for host, port in (("nx.test", 80), ("127.0.0.1", self.closed_port())):
            self.request(host, port)
        socks5_roundtrip(self, self.proxy.port, "origin.test", echo.port)


class Socks5Failures(ProxyTestCase):
    """Reply codes that need a configuration of their own."""

    def test_0x02_blocked_by_rule(self):
        echo = self.start_echo()
        proxy = self.start_proxy(rules=['rule no-exit block reason "closed for the test"'])
        sock, reply = socks5_open(proxy.port, "127.0.0.1", echo.port)
        self.track(sock)
        self.assertSocks5Reply(reply, 0x02, "CONNECT under a block rule")
        self.assertClosedWithin(sock, 5, "connection after a 0x02 reply")
        self.assertTrue(echo.peers.empty(), "a blocked CONNECT reached the server")

    def test_0x02_no_rule_fails_closed(self):
        echo = self.start_echo()
        proxy = self.start_proxy(rules=[])  # accepted with a warning; nothing may pass
        sock, reply = socks5_open(proxy.port, "127.0.0.1", echo.port)
        self.track(sock)
        self.assertSocks5Reply(reply, 0x02, "CONNECT with no rule at all")
        self.assertTrue(echo.peers.empty(), "a connection passed without any rule")

    def test_0x04_dns_server_down(self):
        # The resolver points at a UDP port where nothing listens.
        dead = free_port(socket.AF_INET, socket.SOCK_DGRAM)
        proxy = self.start_proxy(extra=[f"resolver 127.0.0.1:{dead}", "timeout dns 1s",
                                        "timeout connect 3s"])
        sock, reply = socks5_open(proxy.port, "origin.test", 80, timeout=15)
        self.track(sock)
        self.assertSocks5Reply(reply, 0x04, "CONNECT origin.test with the DNS server down")

    def test_0x01_general_failure_when_out_of_descriptors(self):
        echo = self.start_echo()
        proxy = self.start_proxy(extra=["timeout connect 2s"])
        # Warm up (first connection may open lazily created descriptors), then let it settle.
        socks5_roundtrip(self, proxy.port, "127.0.0.1", echo.port)
        fds = wait_until(lambda: _stable_fds(proxy), what="a stable descriptor count")
        # A soft limit that leaves exactly one free descriptor number below it: the accepted
        # client gets it and the outbound socket() fails with EMFILE.
        free = [n for n in range(max(fds) + 3) if n not in fds]
        limit = free[1]
        old = resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (limit, old[1]))
        try:
            sock, reply = socks5_open(proxy.port, "127.0.0.1", echo.port)
            self.track(sock)
            self.assertSocks5Reply(reply, 0x01, "CONNECT while the proxy has no descriptor left")
        finally:
            resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, old)
        socks5_roundtrip(self, proxy.port, "127.0.0.1", echo.port)


def _stable_fds(proxy, samples=3):
    """The proxy's open descriptor numbers if they did not change over a few reads, else None."""
    seen = []
    for _ in range(samples):
        seen.append(sorted(int(n) for n in os.listdir(f"/proc/{proxy.pid}/fd")))
        if len(seen) > 1 and seen[-1] != seen[-2]:
            return None
        time.sleep(0.1)
    return set(seen[-1])


class Socks5Listeners(ProxyTestCase):
    def test_ipv6_listener(self):
        echo = self.start_echo()
        proxy = self.start_proxy(listeners=(("socks5", "::1"),))
        socks5_roundtrip(self, proxy.port, "127.0.0.1", echo.port, proxy_host="::1")
        r = self.curl("--socks5", f"[::1]:{proxy.port}",
                      f"http://127.0.0.1:{self.start_origin().port}/bytes/1000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, payload(1000))

    def test_two_listeners_one_process(self):
        echo = self.start_echo()
        proxy = self.start_proxy(listeners=(("socks5", "127.0.0.1", {"name": "first"}),
                                            ("mixed", "127.0.0.1", {"name": "second"})))
        for listener in proxy.listeners:
            socks5_roundtrip(self, listener.port, "127.0.0.1", echo.port)

    def test_socks5_listener_does_not_speak_http(self):
        proxy = self.start_proxy(listeners=(("socks5", "127.0.0.1"),))
        origin = self.start_origin()
        r = self.curl("--max-time", "10", "-x", f"http://127.0.0.1:{proxy.port}",
                      f"http://127.0.0.1:{origin.port}/bytes/10")
        self.assertNotEqual(r.returncode, 0, "an HTTP request succeeded on a socks5 listener")
        self.assertTrue(origin.peers.empty(), "the request reached the origin")


if __name__ == "__main__":
    unittest.main()

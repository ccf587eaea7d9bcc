"""SOCKS4 and SOCKS4a end to end: curl, netcat and exact reply bytes (VN 0, CD 0x5A / 0x5B)."""

import unittest

from harness import (ProxyTestCase, connect, payload, recv_exact, sha256,
                     socks4_open, socks4_read_reply, socks4_request_bytes, wait_closed)

GRANTED, REJECTED = 0x5A, 0x5B


class Socks4(ProxyTestCase):
    def setUp(self):
        self.dns = self.start_dns()
        self.proxy = self.start_proxy(listeners=(("socks4", "127.0.0.1"),), dns=self.dns,
                                      extra=["timeout connect 2s", "timeout dns 2s"])

    def request(self, host, port, **kw):
        sock, reply = socks4_open(self.proxy.port, host, port, **kw)
        self.track(sock)
        return sock, reply

    def assertReply(self, reply, cd, what):
        self.assertEqual((reply[0], reply[1]), (0, cd),
                         f"{what}: SOCKS4 reply VN={reply[0]} CD={reply[1]:#04x}, "
                         f"expected VN=0 CD={cd:#04x}")

    def test_curl_socks4a_by_name(self):
        origin = self.start_origin()
        r = self.curl("--socks4a", f"127.0.0.1:{self.proxy.port}",
                      f"http://origin.test:{origin.port}/bytes/250000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256(r.stdout), sha256(payload(250000)))
        self.assertIn("origin.test", self.dns.queries())

    def test_curl_socks4_by_address(self):
        origin = self.start_origin()
        r = self.curl("--socks4", f"127.0.0.1:{self.proxy.port}",
                      f"http://127.0.0.1:{origin.port}/chunked/90000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, payload(90000))

    def test_netcat_one_mib_each_way(self):
        self.assertNetcatRelaysMibEachWay("4", "127.0.0.1", seeds=(21, 22))

    def test_granted_and_relays(self):
        echo = self.start_echo()
        sock, reply = self.request("127.0.0.1", echo.port)
        self.assertReply(reply, GRANTED, "CONNECT 127.0.0.1")
        sock.sendall(b"socks4 payload")
        self.assertEqual(recv_exact(sock, 14), b"socks4 payload")

    def test_socks4a_granted(self):
        echo = self.start_echo()
        sock, reply = self.request("origin.test", echo.port)
        self.assertReply(reply, GRANTED, "SOCKS4a CONNECT origin.test")
        sock.sendall(b"4a")
        self.assertEqual(recv_exact(sock, 2), b"4a")

    def test_rejected_when_refused(self):
        sock, reply = self.request("127.0.0.1", self.closed_port())
        self.assertReply(reply, REJECTED, "CONNECT to a closed port")
        closed, _ = wait_closed(sock, 5)
        self.assertTrue(closed, "connection still open after a 0x5B reply")

    def test_rejected_when_name_does_not_exist(self):
        _, reply = self.request("nx.test", 80)
        self.assertReply(reply, REJECTED, "SOCKS4a CONNECT nx.test")

    def test_bind_rejected(self):
        echo = self.start_echo()
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(socks4_request_bytes("127.0.0.1", echo.port, cmd=2))
        self.assertReply(socks4_read_reply(sock), REJECTED, "SOCKS4 BIND")

    def test_socks4_listener_refuses_socks5(self):
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(b"\x05\x01\x00")
        closed, data = wait_closed(sock, 5)
        self.assertTrue(closed, "a SOCKS5 greeting on a socks4 listener was left open")
        self.assertNotEqual(data[:2], b"\x05\x00", "a socks4 listener accepted SOCKS5")


class Socks4Policy(ProxyTestCase):
    def test_rejected_by_block_rule(self):
        echo = self.start_echo()
        proxy = self.start_proxy(rules=["rule nothing-allowed block"])
        sock, reply = socks4_open(proxy.port, "127.0.0.1", echo.port)
        self.track(sock)
        self.assertEqual((reply[0], reply[1]), (0, REJECTED))
        self.assertTrue(echo.peers.empty(), "a blocked CONNECT reached the server")

    def test_socks4_on_mixed_listener(self):
        echo = self.start_echo()
        proxy = self.start_proxy()  # mixed
        sock, reply = socks4_open(proxy.port, "127.0.0.1", echo.port)
        self.track(sock)
        self.assertEqual((reply[0], reply[1]), (0, GRANTED))
        sock.sendall(b"mixed")
        self.assertEqual(recv_exact(sock, 5), b"mixed")


if __name__ == "__main__":
    unittest.main()

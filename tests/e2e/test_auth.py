"""Authentication: RFC 1929 user/password on SOCKS5, Basic Proxy-Authorization on HTTP, with the
users file made by `geoproxy passwd`."""

import json
import unittest

from harness import (ProxyTestCase, basic_auth, connect, header_values, http_connect_open,
                     http_response, payload, socks4_open, socks5_greet, socks5_request_bytes,
                     socks5_roundtrip, socks5_userpass, wait_closed)

USER, PASSWORD = "alice", "correct horse battery"


class Socks5Auth(ProxyTestCase):
    def setUp(self):
        self.dns = self.start_dns()
        users = self.users_file({USER: PASSWORD, "bob": "other"})
        self.proxy = self.start_proxy(listeners=(("socks5", "127.0.0.1", {"users": users}),),
                                      dns=self.dns)
        self.echo = self.start_echo()

    def greet(self, methods):
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        return sock, socks5_greet(sock, methods)

    def test_raw_success(self):
        socks5_roundtrip(self, self.proxy.port, "origin.test", self.echo.port,
                         auth=(USER, PASSWORD))

    def test_raw_wrong_password_status_0x01_and_close(self):
        sock, method = self.greet((0x00, 0x02))
        self.assertEqual(method, 0x02, "server did not choose username/password")
        self.assertEqual(socks5_userpass(sock, USER, "wrong"), 0x01)
        closed, data = wait_closed(sock, 5)
        self.assertTrue(closed, "connection still open after a failed authentication")
        self.assertEqual(data, b"", "bytes after the failure status")
        self.assertTrue(self.echo.peers.empty())

    def test_raw_unknown_user_status_0x01(self):
        sock, method = self.greet((0x02,))
        self.assertEqual(method, 0x02)
        self.assertEqual(socks5_userpass(sock, "mallory", PASSWORD), 0x01)
        self.assertTrue(wait_closed(sock, 5)[0], "connection still open after a failed auth")

    def test_raw_other_users_password_fails(self):
        sock, _ = self.greet((0x02,))
        self.assertEqual(socks5_userpass(sock, "bob", PASSWORD), 0x01)

    def test_raw_no_acceptable_method_0xff(self):
        sock, method = self.greet((0x00,))
        self.assertEqual(method, 0xFF, "an auth listener accepted 'no authentication'")
        self.assertTrue(wait_closed(sock, 5)[0], "connection still open after 0xFF")

    def test_raw_request_without_auth_is_not_relayed(self):
        # A client that skips the sub-negotiation and sends a request right away.
        sock, method = self.greet((0x02,))
        sock.sendall(socks5_request_bytes("127.0.0.1", self.echo.port))
        closed, data = wait_closed(sock, 5)
        self.assertTrue(closed)
        self.assertNotEqual(data[:2], b"\x01\x00", "treated a request as a valid login")
        self.assertTrue(self.echo.peers.empty(), "an unauthenticated request was relayed")

    def test_curl_success(self):
        origin = self.start_origin()
        r = self.curl("--socks5-hostname", f"127.0.0.1:{self.proxy.port}",
                      "--proxy-user", f"{USER}:{PASSWORD}",
                      f"http://origin.test:{origin.port}/bytes/33333")
        self.assertEqual((r.returncode, r.stdout), (0, payload(33333)), r.stderr)

    def test_curl_wrong_password_fails(self):
        origin = self.start_origin()
        r = self.curl("--socks5-hostname", f"127.0.0.1:{self.proxy.port}",
                      "--proxy-user", f"{USER}:nope",
                      f"http://origin.test:{origin.port}/bytes/10")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"")
        self.assertTrue(origin.peers.empty())

    def test_socks4_cannot_bypass_auth_on_mixed_listener(self):
        # SOCKS4 has no password: a listener with a users file must not relay it.
        users = self.users_file({USER: PASSWORD}, name="users-mixed")
        proxy = self.start_proxy(listeners=(("mixed", "127.0.0.1", {"users": users}),),
                                 tag="mixed")
        try:
            sock, reply = socks4_open(proxy.port, "127.0.0.1", self.echo.port)
            self.track(sock)
            self.assertEqual(reply[1], 0x5B, "SOCKS4 granted on a listener that needs a login")
        except AssertionError as e:
            if "connection closed" not in str(e):  # a close without reply is a refusal too
                raise
        self.assertTrue(self.echo.peers.empty(), "SOCKS4 bypassed authentication")


class HttpAuth(ProxyTestCase):
    def setUp(self):
        self.dns = self.start_dns()
        users = self.users_file({USER: PASSWORD})
        self.proxy = self.start_proxy(listeners=(("http", "127.0.0.1", {"users": users}),),
                                      dns=self.dns)
        self.origin = self.start_origin()
        self.url = f"http://origin.test:{self.origin.port}"

    def get(self, auth_header=None):
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        extra = f"Proxy-Authorization: {auth_header}\r\n" if auth_header else ""
        sock.sendall(f"GET {self.url}/echo HTTP/1.1\r\nHost: origin.test\r\n{extra}\r\n"
                     .encode())
        status, headers, body, _ = http_response(sock)
        return status, headers, body

    def assert407(self, status, headers):
        self.assertEqual(status, 407)
        challenges = header_values(headers, "Proxy-Authenticate")
        self.assertTrue(any(c.lower().startswith("basic") for c in challenges),
                        f"Proxy-Authenticate {challenges!r} offers no Basic challenge")
        self.assertTrue(header_values(headers, "Proxy-Status"), "407 without Proxy-Status")
        self.assertTrue(self.origin.peers.empty(), "an unauthenticated request was forwarded")

    def test_missing_credentials_407(self):
        status, headers, _ = self.get()
        self.assert407(status, headers)

    def test_wrong_password_407(self):
        status, headers, _ = self.get(basic_auth(USER, "wrong"))
        self.assert407(status, headers)

    def test_malformed_credentials_407(self):
        status, headers, _ = self.get("Basic !!!not-base64!!!")
        self.assertIn(status, (400, 407))
        self.assertTrue(self.origin.peers.empty())

    def test_connect_without_credentials_407(self):
        sock, status, headers = http_connect_open(self.proxy.port, f"127.0.0.1:{self.origin.port}")
        self.track(sock)
        self.assert407(status, headers)

    def test_success_and_credentials_not_forwarded(self):
        status, headers, body = self.get(basic_auth(USER, PASSWORD))
        self.assertEqual(status, 200, body)
        names = [k.lower() for k, _ in json.loads(body)["headers"]]
        self.assertNotIn("proxy-authorization", names, "credentials leaked to the origin")

    def test_curl_proxy_user(self):
        r = self.curl("-x", f"http://127.0.0.1:{self.proxy.port}", "--proxy-user",
                      f"{USER}:{PASSWORD}", f"{self.url}/bytes/4096")
        self.assertEqual((r.returncode, r.stdout), (0, payload(4096)), r.stderr)

    def test_curl_proxytunnel_proxy_user(self):
        r = self.curl("-p", "-x", f"http://127.0.0.1:{self.proxy.port}", "--proxy-user",
                      f"{USER}:{PASSWORD}", f"{self.url}/bytes/4097")
        self.assertEqual((r.returncode, r.stdout), (0, payload(4097)), r.stderr)

    def test_curl_wrong_password_sees_407(self):
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", "-x",
                      f"http://127.0.0.1:{self.proxy.port}", "--proxy-user", f"{USER}:bad",
                      f"{self.url}/bytes/10")
        self.assertEqual(r.stdout, b"407")


if __name__ == "__main__":
    unittest.main()

"""HTTP proxy end to end: CONNECT tunnels, absolute-form forwarding, hop-by-hop headers, Via,
request bodies, persistent client connections, and proxy-generated errors with Proxy-Status
(RFC 9209)."""

import http.client
import json
import socket
import unittest
import urllib.error
import urllib.request

from harness import (MIB, ProxyTestCase, connect, header_values, http_connect_open,
                     http_response, payload, read_http_head, read_response, recv_exact, recv_until_eof, run,
                     sha256)

def echoed_headers(doc):
    """{lower-case name: [values]} from the origin's /echo document."""
    out = {}
    for k, v in doc["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


class HttpProxy(ProxyTestCase):
    def setUp(self):
        self.dns = self.start_dns()
        self.origin = self.start_origin("A")
        self.proxy = self.start_proxy(listeners=(("http", "127.0.0.1"),), dns=self.dns,
                                      extra=["timeout connect 2s", "timeout dns 2s"])
        self.proxy_url = f"http://127.0.0.1:{self.proxy.port}"

    def raw_request(self, text, body=b"", method="GET"):
        """Sends a request head (CRLFs added) and body on a new connection; returns
        (status, headers, body)."""
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(text.replace("\n", "\r\n").encode() + body)
        status, headers, body, _ = http_response(sock, method)
        return status, headers, body

    # -- real clients

    def test_curl_forward_by_name(self):
        r = self.curl("-x", self.proxy_url, f"http://origin.test:{self.origin.port}/bytes/400000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256(r.stdout), sha256(payload(400000)))
        self.assertIn("origin.test", self.dns.queries())

    def test_curl_proxytunnel_by_name(self):
        r = self.curl("-p", "-x", self.proxy_url,
                      f"http://origin.test:{self.origin.port}/chunked/300000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256(r.stdout), sha256(payload(300000)))

    def test_curl_proxytunnel_to_ipv6_literal(self):
        origin6 = self.start_origin("v6", socket.AF_INET6)
        r = self.curl("-p", "-x", self.proxy_url, f"http://[::1]:{origin6.port}/bytes/5000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, payload(5000))

    def test_curl_forward_to_ipv6_name(self):
        origin6 = self.start_origin("v6", socket.AF_INET6)
        r = self.curl("-x", self.proxy_url, f"http://v6.test:{origin6.port}/bytes/5000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, payload(5000))

    def test_urllib_through_proxy(self):
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": self.proxy_url}))
        with opener.open(f"http://origin.test:{self.origin.port}/bytes/123456",
                         timeout=20) as resp:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), payload(123456))
        with opener.open(f"http://origin.test:{self.origin.port}/echo",
                         data=b"form=1&x=2", timeout=20) as resp:
            doc = json.load(resp)
        self.assertEqual((doc["method"], doc["body_len"]), ("POST", 10))
        self.assertEqual(doc["target"], "/echo", "origin got the absolute-form, not origin-form")

    def test_urllib_sees_502_for_refused(self):
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": self.proxy_url}))
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            opener.open(f"http://127.0.0.1:{self.closed_port()}/", timeout=20)
        self.assertEqual(ctx.exception.code, 502)
        ctx.exception.close()

    def test_netcat_connect_one_mib_each_way(self):
        down, up = payload(MIB, seed=31), payload(MIB, seed=32)
        server = self.start_data("send_and_hash", down)
        r = run(["nc", "-N", "-w", "20", "-X", "connect", "-x", f"127.0.0.1:{self.proxy.port}",
                 "origin.test", str(server.port)], input=up)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((len(r.stdout), sha256(r.stdout)), (MIB, sha256(down)))
        self.assertEqual(server.results.get(timeout=10), (MIB, sha256(up)))

    # -- CONNECT on a raw socket

    def test_connect_reply_is_200_connection_established(self):
        echo = self.start_echo()
        sock, status, headers = http_connect_open(self.proxy.port, f"origin.test:{echo.port}")
        self.track(sock)
        self.assertEqual(status, 200)
        sock.sendall(b"tunnelled bytes")
        self.assertEqual(recv_exact(sock, 15), b"tunnelled bytes")

    def test_connect_status_line_text(self):
        echo = self.start_echo()
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\n"
                     f"Host: 127.0.0.1:{echo.port}\r\n\r\n".encode())
        line = b""
        while not line.endswith(b"\r\n") and len(line) < 200:
            line += recv_exact(sock, 1)
        self.assertRegex(line, rb"^HTTP/1\.[01] 200 Connection established\r\n$")

    def test_connect_with_data_in_the_same_write(self):
        # Bytes that follow the CONNECT head in the same segment belong to the tunnel.
        echo = self.start_echo()
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        early = b"first tunnel bytes, sent with the CONNECT head"
        sock.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     .encode() + early)
        status, _, _ = read_http_head(sock)
        self.assertEqual(status, 200)
        self.assertEqual(recv_exact(sock, len(early)), early)

    def test_connect_refused_is_502(self):
        sock, status, headers = http_connect_open(self.proxy.port,
                                                  f"127.0.0.1:{self.closed_port()}")
        self.track(sock)
        self.assertEqual(status, 502)
        self.assertProxyStatus(headers, "connection_refused")

    # -- forwarding semantics

    def test_hop_by_hop_headers_removed_and_via_added(self):
        status, headers, body = self.raw_request(
            f"GET http://origin.test:{self.origin.port}/echo HTTP/1.1\n"
            f"Host: origin.test:{self.origin.port}\n"
            "Connection: X-Hop-Secret, Keep-Alive\n"
            "X-Hop-Secret: must-not-leave-the-proxy\n"
            "Keep-Alive: timeout=5\n"
            "Proxy-Connection: keep-alive\n"
            "Proxy-Authorization: Basic Zm9vOmJhcg==\n"
            "TE: trailers\n"
            "Trailer: X-Checksum\n"
            "Upgrade: h2c\n"
            "X-End-To-End: kept\n"
            "\n")
        self.assertEqual(status, 200, body)
        got = echoed_headers(json.loads(body))
        for name in ["x-hop-secret", "keep-alive", "proxy-connection", "proxy-authorization",
                     "te", "trailer", "upgrade"]:
            self.assertNotIn(name, got, f"hop-by-hop header {name} was forwarded: {got}")
        for value in got.get("connection", []):
            self.assertNotIn("x-hop-secret", value.lower(), "client's Connection forwarded")
        self.assertEqual(got.get("x-end-to-end"), ["kept"])
        self.assertEqual(got.get("via"), ["1.1 geoproxy"])
        self.assertEqual(got.get("host"), [f"origin.test:{self.origin.port}"])

    def test_via_appended_to_existing(self):
        status, headers, body = self.raw_request(
            f"GET http://origin.test:{self.origin.port}/echo HTTP/1.1\n"
            f"Host: origin.test:{self.origin.port}\n"
            "Via: 1.0 upstream-cache\n"
            "\n")
        self.assertEqual(status, 200, body)
        via = ", ".join(echoed_headers(json.loads(body)).get("via", []))
        self.assertEqual([v.strip() for v in via.split(",")], ["1.0 upstream-cache",
                                                               "1.1 geoproxy"])

    def test_post_content_length_body_intact(self):
        body = payload(2 * MIB, seed=41)
        r = run(["curl", "-sS", "--max-time", "30", "-x", self.proxy_url, "--data-binary", "@-",
                 "-H", "Content-Type: application/octet-stream",
                 f"http://origin.test:{self.origin.port}/echo"], input=body)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual((doc["method"], doc["body_len"], doc["body_sha256"]),
                         ("POST", len(body), sha256(body)))

    def test_post_chunked_body_intact(self):
        body = payload(MIB + 12345, seed=42)
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=20)
        self.addCleanup(conn.close)
        chunks = (body[i:i + 65000] for i in range(0, len(body), 65000))
        conn.request("POST", f"http://origin.test:{self.origin.port}/echo", body=chunks,
                     encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        doc = json.loads(resp.read())
        self.assertEqual(resp.status, 200)
        self.assertEqual((doc["body_len"], doc["body_sha256"]), (len(body), sha256(body)))

    def test_persistent_client_connection_two_origins(self):
        origin_b = self.start_origin("B")
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=20)
        self.addCleanup(conn.close)
        conn.connect()
        first_sock = conn.sock
        conn.auto_open = 0  # a closed connection must raise, not silently reconnect
        plan = [
            (f"http://origin.test:{self.origin.port}/echo", "A"),
            (f"http://127.0.0.1:{origin_b.port}/echo", "B"),
            (f"http://origin.test:{self.origin.port}/chunked/20000", None),
            (f"http://origin2.test:{origin_b.port}/echo", "B"),
        ]
        for url, origin_name in plan:
            conn.request("GET", url)
            resp = conn.getresponse()
            body = resp.read()
            self.assertEqual(resp.status, 200, f"{url}: {body[:200]!r}")
            if origin_name:
                self.assertEqual(json.loads(body)["origin"], origin_name, url)
            else:
                self.assertEqual(body, payload(20000), url)
            self.assertIs(conn.sock, first_sock, f"the proxy closed the connection after {url}")

    def test_body_delimited_by_origin_close(self):
        r = self.curl("-x", self.proxy_url, f"http://origin.test:{self.origin.port}/eof/300000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((len(r.stdout), sha256(r.stdout)), (300000, sha256(payload(300000))))

    def test_head_then_get_on_one_connection(self):
        # A HEAD response announces a length but has no body; the next response must not be
        # taken for it.
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=20)
        self.addCleanup(conn.close)
        conn.connect()
        conn.auto_open = 0
        conn.request("HEAD", f"http://origin.test:{self.origin.port}/bytes/5000")
        resp = conn.getresponse()
        self.assertEqual((resp.status, resp.getheader("Content-Length"), resp.read()),
                         (200, "5000", b""))
        conn.request("GET", f"http://origin.test:{self.origin.port}/bytes/6000")
        resp = conn.getresponse()
        self.assertEqual((resp.status, resp.read()), (200, payload(6000)))

    def test_pipelined_requests_answered_in_order(self):
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        host = f"origin.test:{self.origin.port}"
        sock.sendall((f"GET http://{host}/bytes/1000 HTTP/1.1\r\nHost: {host}\r\n\r\n"
                      f"GET http://{host}/bytes/2000 HTTP/1.1\r\nHost: {host}\r\n\r\n").encode())
        f = sock.makefile("rb")
        for n in (1000, 2000):
            status, _, body = read_response(f)
            self.assertEqual((status, len(body), body), (200, n, payload(n)), f"response {n}")

    def test_http10_client(self):
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(f"GET http://origin.test:{self.origin.port}/bytes/777 HTTP/1.0\r\n\r\n"
                     .encode())
        data = recv_until_eof(sock)  # HTTP/1.0 without keep-alive: the proxy closes after it
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertRegex(head, rb"^HTTP/1\.[01] 200 ")
        self.assertEqual(body, payload(777))

    def test_forward_to_ipv6_literal(self):
        origin6 = self.start_origin("v6", socket.AF_INET6)
        r = self.curl("-x", self.proxy_url, f"http://[::1]:{origin6.port}/echo")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual((doc["origin"], doc["target"]), ("v6", "/echo"))
        self.assertEqual(echoed_headers(doc).get("host"), [f"[::1]:{origin6.port}"])

    def test_absolute_form_rewritten_to_origin_form(self):
        status, headers, body = self.raw_request(
            f"GET http://origin.test:{self.origin.port}/echo?q=1 HTTP/1.1\n"
            f"Host: origin.test:{self.origin.port}\n\n")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["target"], "/echo?q=1")

    # -- proxy-generated errors

    def test_502_connection_refused(self):
        status, headers, body = self.raw_request(
            f"GET http://127.0.0.1:{self.closed_port()}/ HTTP/1.1\nHost: x\n\n")
        self.assertEqual(status, 502)
        self.assertProxyStatus(headers, "connection_refused")

    def test_502_dns_error(self):
        status, headers, body = self.raw_request(
            "GET http://nx.test/ HTTP/1.1\nHost: nx.test\n\n")
        self.assertEqual(status, 502)
        self.assertProxyStatus(headers, "dns_error")

    def test_504_connect_timeout(self):
        bh = self.blackhole()
        status, headers, body = self.raw_request(
            f"GET http://127.0.0.1:{bh.port}/ HTTP/1.1\nHost: x\n\n")
        self.assertEqual(status, 504)
        self.assertProxyStatus(headers, "connection_timeout")

    def test_400_garbage(self):
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(b"THIS IS NOT HTTP AT ALL\r\n\r\n")
        status, headers, body, _ = http_response(sock)
        self.assertEqual(status, 400)
        self.assertTrue(header_values(headers, "Proxy-Status"), "400 without Proxy-Status")

    def test_400_origin_form_request(self):
        # A proxy is asked with absolute-form; an origin-form GET names no destination.
        status, headers, body = self.raw_request("GET /echo HTTP/1.1\nHost: origin.test\n\n")
        self.assertEqual(status, 400)
        self.assertTrue(header_values(headers, "Proxy-Status"), "400 without Proxy-Status")

    def test_errors_keep_proxy_usable(self):
        self.raw_request("GET http://nx.test/ HTTP/1.1\nHost: nx.test\n\n")
        r = self.curl("-x", self.proxy_url, f"http://origin.test:{self.origin.port}/bytes/10")
        self.assertEqual((r.returncode, r.stdout), (0, payload(10)), r.stderr)


class HttpPolicy(ProxyTestCase):
    def setUp(self):
        self.origin = self.start_origin()
        self.proxy = self.start_proxy(
            rules=['rule embargo-zone block reason "destination embargoed"'])

    def test_403_for_block_rule_names_rule(self):
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(f"GET http://127.0.0.1:{self.origin.port}/echo HTTP/1.1\r\n"
                     f"Host: 127.0.0.1\r\n\r\n".encode())
        status, headers, body, _ = http_response(sock)
        self.assertEqual(status, 403)
        self.assertProxyStatus(headers, "http_request_denied")
        self.assertIn(b"embargo-zone", body)
        self.assertTrue(self.origin.peers.empty(), "a blocked request reached the origin")

    def test_403_for_blocked_connect(self):
        sock, status, headers = http_connect_open(self.proxy.port, f"127.0.0.1:{self.origin.port}")
        self.track(sock)
        self.assertEqual(status, 403)
        self.assertProxyStatus(headers, "http_request_denied")
        self.assertTrue(self.origin.peers.empty(), "a blocked CONNECT reached the origin")

    def test_curl_reports_403(self):
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", "-x",
                      f"http://127.0.0.1:{self.proxy.port}",
                      f"http://127.0.0.1:{self.origin.port}/bytes/10")
        self.assertEqual(r.stdout, b"403")


class HttpMixed(ProxyTestCase):
    def test_http_on_mixed_listener(self):
        origin = self.start_origin()
        proxy = self.start_proxy()
        r = self.curl("-x", f"http://127.0.0.1:{proxy.port}",
                      f"http://127.0.0.1:{origin.port}/bytes/65536")
        self.assertEqual((r.returncode, r.stdout), (0, payload(65536)), r.stderr)
        r = self.curl("-p", "-x", f"http://127.0.0.1:{proxy.port}",
                      f"http://127.0.0.1:{origin.port}/bytes/65537")
        self.assertEqual((r.returncode, r.stdout), (0, payload(65537)), r.stderr)


if __name__ == "__main__":
    unittest.main()

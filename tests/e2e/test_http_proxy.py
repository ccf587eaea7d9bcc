"""HTTP proxy end to end: CONNECT tunnels, absolute-form forwarding, hop-by-hop headers, Via,
request bodies, persistent client connections, and proxy-generated errors with Proxy-Status
(RFC 9209)."""

import concurrent.futures
import http.client
import json
import queue
import re
import socket
import threading
import time
import unittest
import urllib.error
import urllib.request

from harness import (MIB, WAIT, ProxyTestCase, PushingServer, UploadRefusingServer,
                     close_listener, connect, header_values, http_connect_open, http_response,
                     payload, pushing, read_http_head, read_response, recv_exact, recv_until_eof,
                     reset_on_close, run, send_ignoring_reset, sha256, tcp_queues, wait_end,
                     wait_until)


def _proxy_has_read(client_port, proxy_port):
    """True when every byte the client sent has been read by the proxy: nothing unacknowledged
    in the client's socket, nothing unread in the proxy's."""
    mine, its = tcp_queues(client_port, proxy_port), tcp_queues(proxy_port, client_port)
    return mine is not None and its is not None and mine[0] == 0 and its[1] == 0


def send_then_shut_down(test, sock, data):
    """Sends data on a thread, then shuts down the write side, while the test reads. Returns a
    Future: result() is None when everything was sent, else the error."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    test.addCleanup(pool.shutdown)

    def send():
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            return e
        return None
    return pool.submit(send)


def echoed_headers(doc):
    """{lower-case name: [values]} from the origin's /echo document."""
    out = {}
    for k, v in doc["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


class KeepAliveOrigin:
    """An HTTP origin that answers each request on a connection with ANSWER, keeping it open;
    .connections counts the connections, .ends gets how each ended ("eof" or "reset")."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.ends = queue.Queue()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # stopped
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn, self.connections),
                             daemon=True).start()

    def serve(self, conn, number):
        with conn:
            conn.settimeout(WAIT)
            try:
                while conn.recv(65536):
                    conn.sendall(self.ANSWER)
                self.ends.put("eof")
            except ConnectionResetError:
                self.ends.put("reset")
            except OSError as e:
                self.ends.put(repr(e))

    def stop(self):
        close_listener(self.sock)


class IdleResetOrigin(KeepAliveOrigin):
    """A KeepAliveOrigin whose first connection answers one request, then resets when told to
    (reset()), as a server ending an idle connection."""

    def __init__(self):
        self.resetting, self.was_reset = threading.Event(), threading.Event()
        super().__init__()

    def reset(self):
        """Has the first connection reset; False if it had not within WAIT."""
        self.resetting.set()
        return self.was_reset.wait(WAIT)

    def serve(self, conn, number):
        if number > 1:
            super().serve(conn, number)
            return
        with conn:
            conn.settimeout(WAIT)
            conn.recv(65536)
            conn.sendall(self.ANSWER)
            self.resetting.wait(WAIT)
            reset_on_close(conn)
        self.was_reset.set()


class AnswerOnceOrigin(KeepAliveOrigin):
    """A KeepAliveOrigin that closes each connection after its first answer, without saying
    so: the answer announces nothing, and its end of file leaves in the same segment (corked),
    as a server whose keep-alive limit is one request. .requests gets what each connection
    received."""

    def __init__(self):
        self.requests = queue.Queue()
        super().__init__()

    def serve(self, conn, number):
        with conn:
            conn.settimeout(WAIT)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            self.requests.put(self.read_request(conn))
            conn.sendall(self.ANSWER)
        # closing the corked socket sends the answer and the end of file together

    @staticmethod
    def read_request(conn):
        """One request: its head and the body its Content-Length announces."""
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(65536)
            if not chunk:
                return request
            request += chunk
        length = re.search(rb"(?im)^content-length: *(\d+)\r$", request)
        head_len = request.index(b"\r\n\r\n") + 4
        if length:
            request += recv_exact(conn, head_len + int(length.group(1)) - len(request))
        return request


class SecondRequestDropOrigin(AnswerOnceOrigin):
    """An AnswerOnceOrigin that keeps each connection after its first answer, reads the next
    request and closes without answering it."""

    def serve(self, conn, number):
        with conn:
            conn.settimeout(WAIT)
            self.requests.put(self.read_request(conn))
            conn.sendall(self.ANSWER)
            self.requests.put(self.read_request(conn))


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

    def answered_by(self, answer, version="1.1"):
        """GETs through the proxy from an origin that answers with 'answer' once the request is
        in, then resets; returns the client's socket."""
        origin = UploadRefusingServer(answer)
        self.addCleanup(origin.stop)
        host = f"127.0.0.1:{origin.port}"
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(f"GET http://{host}/ HTTP/{version}\r\nHost: {host}\r\n\r\n".encode())
        wait_until(lambda: origin.received > 0, what="the request reaching the origin")
        self.assertTrue(origin.refuse(), "the origin did not answer")
        return sock

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
        self.assertNetcatRelaysMibEachWay("connect", "origin.test", seeds=(31, 32))

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

    def test_400_chunk_data_not_followed_by_crlf(self):
        # "3\r\nabc\n10\r\n...": a 3-byte chunk, then a bare LF where CRLF must be. A server
        # that takes the LF for CRLF reads a 16-byte chunk next, so it and the proxy would end
        # the body in different places; the proxy refuses it before any of it goes on.
        origin = UploadRefusingServer(b"")  # records what it receives, never answers
        self.addCleanup(origin.stop)
        host = f"127.0.0.1:{origin.port}"
        head = (f"POST http://{host}/ HTTP/1.1\nHost: {host}\n"
                "Transfer-Encoding: chunked\n\n")
        status, headers, body = self.raw_request(head, b"3\r\nabc\n10\r\n\r\n")
        self.assertEqual(status, 400, body)
        self.assertIn(b"malformed chunked body", body)
        self.assertIn("error=http_request_error",
                      " ".join(header_values(headers, "Proxy-Status")))

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

    # -- an origin that answers before it has read the request body

    def start_chunked_upload(self, sock, origin):
        """Sends the head of a chunked POST through the proxy to origin (an "http_early_reply"
        DataServer, which reads nothing after it). Returns send(data): sends body bytes, waits
        until the proxy has read them, and returns how many body bytes the proxy then holds in
        its own write queue: neither in its socket towards the origin nor in the origin's
        (tcp_queues sees both)."""
        sock.sendall((f"POST http://127.0.0.1:{origin.port}/upload HTTP/1.1\r\n"
                      f"Host: 127.0.0.1:{origin.port}\r\nTransfer-Encoding: chunked\r\n\r\n")
                     .encode())
        head_extra, origin_port, proxy_port = origin.results.get(timeout=10)
        self.assertEqual(head_extra, 0, "body bytes reached the origin with the head")
        me, sent = sock.getsockname()[1], [0]

        def send(data):
            sock.sendall(data)
            sent[0] += len(data)
            wait_until(lambda: _proxy_has_read(me, self.proxy.port), timeout=10,
                       interval=0.002, what="the proxy to read what the client sent")
            towards = tcp_queues(proxy_port, origin_port)
            at_origin = tcp_queues(origin_port, proxy_port)
            self.assertTrue(towards and at_origin, "the connection to the origin was closed")
            return sent[0] - at_origin[1] - towards[0]
        return send

    def fill_write_queue(self, send):
        """Sends 64 KiB chunks until the proxy keeps some of them in its write queue."""
        chunk = b"10000\r\n" + payload(65536, seed=44) + b"\r\n"
        for i in range(1, 32 * MIB // len(chunk)):
            if send(chunk) > 0:
                time.sleep(0.1)  # the kernel may still grow the proxy's send buffer
                if send(b"") > 0:
                    return
        self.fail(f"precondition: {i} chunks sent and none waits in the proxy's write queue")

    def test_early_response_with_close_keeps_client_connection(self):
        # The origin answers "Connection: close" while the end of the request body is still
        # queued in the proxy for it. The proxy drops that upstream connection and the writes
        # queued for it; the client must get the whole response, and its persistent connection
        # must carry the next request.
        answer = payload(100000, seed=45)
        origin = self.start_data("http_early_reply", (
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n").encode() + answer)
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        send = self.start_chunked_upload(sock, origin)
        self.fill_write_queue(send)
        self.assertGreater(send(b"0\r\n\r\n"), 0, "precondition: the end of the body is queued")
        origin.gate.set()
        f = self.track(sock.makefile("rb"))
        status, headers, got = read_response(f)
        self.assertEqual((status, len(got), sha256(got)), (200, len(answer), sha256(answer)))
        sock.sendall(f"GET http://origin.test:{self.origin.port}/bytes/1000 HTTP/1.1\r\n"
                     f"Host: origin.test:{self.origin.port}\r\n\r\n".encode())
        try:
            status, _, got = read_response(f)
        except (AssertionError, OSError) as e:
            self.fail(f"no answer to the next request on the same connection: {e!r}")
        self.assertEqual((status, got), (200, payload(1000)))

    def test_early_error_response_then_clean_close(self):
        # The origin refuses an upload before reading its body (413, Connection: close) while
        # part of the body is queued in the proxy for it. The proxy passes the response on,
        # drops the upstream connection and what was queued for it, and ends the client
        # connection the lingering way: it reads and drops what the client still sends, so
        # the client sees an orderly end of file after the response, not a reset.
        answer = b"geoproxy test origin: request too large\n"
        origin = self.start_data("http_early_reply", (
            "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n").encode() + answer)
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        self.fill_write_queue(self.start_chunked_upload(sock, origin))
        origin.gate.set()
        status, headers, got = read_response(self.track(sock.makefile("rb")))
        self.assertEqual((status, got), (413, answer))
        # The client had not seen the response before sending more: the rest of its body.
        sent = send_ignoring_reset(sock, b"10000\r\n" + payload(65536) + b"\r\n0\r\n\r\n")
        self.assertTrue(sent, "the connection was reset while the client sent its body")
        sock.shutdown(socket.SHUT_WR)
        self.assertEqual(wait_end(sock, 10)[0], "eof", "the connection did not end cleanly")

    def refused_upload(self, answer, end_first=False):
        """POSTs a body without end through the proxy to an origin that takes a MiB of it, then
        sends 'answer' and resets the connection (ending its side first with end_first). The
        proxy is paused meanwhile, so that its next write to the origin fails before it has read
        the answer. Returns what the client received and how its connection ended ("eof" or
        "reset")."""
        origin = UploadRefusingServer(answer, end_first=end_first)
        self.addCleanup(origin.stop)
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(f"POST http://127.0.0.1:{origin.port}/upload HTTP/1.1\r\n"
                     f"Host: 127.0.0.1:{origin.port}\r\nContent-Length: {1 << 40}\r\n\r\n"
                     .encode())
        ends = pushing(sock)  # the body, without pause, while reading what comes back
        wait_until(lambda: origin.received >= MIB, what="the body reaching the origin")
        self.addCleanup(self.proxy.resume)
        self.proxy.pause()
        self.assertTrue(origin.refuse(), "the origin did not answer")
        self.proxy.resume()
        return ends.get(timeout=WAIT + 5)

    def test_early_error_response_then_origin_reset(self):
        # The origin refuses an upload (413) and resets the connection at once; the proxy meets
        # the reset writing the body, before it has read the answer. The answer still reaches
        # the client, then an orderly end of file.
        answer = b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        got, end = self.refused_upload(answer)
        self.assertEqual(got.split(b"\r\n")[0], b"HTTP/1.1 413 Content Too Large", got)
        self.assertEqual(end, "eof", "how the client's connection ended")

    def test_early_answer_until_close_then_end_and_reset(self):
        # The refusal's body runs until the origin's close; the origin ends its side, then its
        # close with the upload unread resets. Its answer ended in order (the end came first):
        # the client gets all of it and an orderly end, not a reset that would pass it off as cut.
        got, end = self.refused_upload(b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\n"
                                       b"\r\nrefused: too large\n", end_first=True)
        self.assertEqual(got.split(b"\r\n")[0], b"HTTP/1.1 413 Content Too Large", got)
        self.assertTrue(got.endswith(b"\r\n\r\nrefused: too large\n"), got)
        self.assertEqual(end, "eof", "how the client's connection ended")

    def test_origin_reset_during_upload_is_502(self):
        # The same origin without an answer: the client hears why, not a bare reset.
        got, end = self.refused_upload(b"")
        self.assertEqual(got.split(b"\r\n")[0], b"HTTP/1.1 502 Bad Gateway", got)
        self.assertIn(b"Proxy-Status: geoproxy; error=connection_terminated", got)
        self.assertEqual(end, "eof", "how the client's connection ended")

    def test_client_reset_during_a_download_ends_the_origin_connection(self):
        # The client resets while the proxy is busy passing an endless download on (paused):
        # the proxy meets the reset writing to the client, and must end the origin's connection
        # at once, not keep downloading for nobody until the idle timeout.
        origin = PushingServer(answer_head=b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        self.addCleanup(origin.stop)
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(f"GET http://127.0.0.1:{origin.port}/ HTTP/1.1\r\n"
                     f"Host: 127.0.0.1:{origin.port}\r\n\r\n".encode())
        sock.recv(65536)  # the download runs
        self.addCleanup(self.proxy.resume)
        self.proxy.pause()
        reset_on_close(sock)
        sock.close()
        self.proxy.resume()
        _, end = origin.results.get(timeout=WAIT + 5)
        self.assertNotEqual(end, "open",
                            "the origin's connection stayed open after the client's reset")
        self.proxy.wait_log(r"close conn=\d+ .*end=client-\S+ ")

    def test_kept_connection_reset_by_the_origin_is_retried(self):
        # The proxy keeps the origin's connection for the client's next request; the origin
        # resets it, idle, just as that request goes out (the proxy is paused, so that it
        # meets the reset writing the request or reading for the answer). The request went
        # nowhere, so the proxy sends it again on a new connection: the client sees its answer.
        origin = IdleResetOrigin()
        self.addCleanup(origin.stop)
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        request = (f"GET http://127.0.0.1:{origin.port}/ HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{origin.port}\r\n\r\n").encode()
        sock.sendall(request)
        self.assertEqual(http_response(sock)[:3:2], (200, b"ok"), "the first answer")
        self.addCleanup(self.proxy.resume)
        self.proxy.pause()
        sock.sendall(request)
        self.assertTrue(origin.reset(), "the origin did not reset its first connection")
        self.proxy.resume()
        self.assertEqual(http_response(sock)[:3:2], (200, b"ok"), "the second answer")
        self.assertEqual(origin.connections, 2, "connections the origin took")

    def test_pipelined_upload_after_an_answer_and_its_end(self):
        # The origin answers the first request without "Connection: close" and closes: its end
        # of file comes with the answer. The client's next request, an upload, is already
        # waiting in the proxy (pipelined); it must go on a new connection, not on the one
        # that just ended (where it would get a 502: an upload is never sent twice).
        origin = AnswerOnceOrigin()
        self.addCleanup(origin.stop)
        host = f"127.0.0.1:{origin.port}"
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall((f"GET http://{host}/first HTTP/1.1\r\nHost: {host}\r\n\r\n"
                      f"POST http://{host}/second HTTP/1.1\r\nHost: {host}\r\n"
                      f"Content-Length: 5\r\n\r\nhello").encode())
        f = sock.makefile("rb")
        for which in ("first", "second"):
            status, _, body = read_response(f)
            self.assertEqual((status, body), (200, b"ok"), f"the {which} answer")
        first = origin.requests.get(timeout=WAIT)
        second = origin.requests.get(timeout=WAIT)
        self.assertTrue(first.startswith(b"GET /first "), first)
        self.assertTrue(second.startswith(b"POST /second ") and second.endswith(b"\r\n\r\nhello"),
                        second)
        self.assertEqual(origin.connections, 2, "connections the origin took")

    def test_post_on_a_kept_connection_that_ends_is_not_sent_again(self):
        # The origin takes a POST on the kept connection and closes without answering: it may
        # have acted on it. The proxy must not send it again (RFC 9112 §9.3.1.1): the client
        # gets a 502 and decides; a GET in the same place is sent again (the test above).
        origin = SecondRequestDropOrigin()
        self.addCleanup(origin.stop)
        host = f"127.0.0.1:{origin.port}"
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        f = sock.makefile("rb")
        sock.sendall(f"GET http://{host}/first HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        self.assertEqual(read_response(f)[::2], (200, b"ok"), "the first answer")
        sock.sendall(f"POST http://{host}/transfer HTTP/1.1\r\nHost: {host}\r\n"
                     "Content-Length: 0\r\n\r\n".encode())
        status, headers, _ = read_response(f)
        self.assertEqual(status, 502)
        self.assertIn("connection_terminated", " ".join(header_values(headers, "Proxy-Status")))
        posts = [r for r in (origin.requests.get(timeout=WAIT) for _ in range(2))
                 if r.startswith(b"POST")]
        self.assertEqual(len(posts), 1, "POSTs the origin received")
        self.assertEqual(origin.connections, 1, "connections the origin took")

    def test_origin_reset_in_a_body_until_close_resets_the_client(self):
        # A body delimited by the origin's close, cut by a reset: an orderly end of file would
        # tell the client it has it all. The reset is passed on.
        sock = self.answered_by(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial")
        end, _ = wait_end(sock, WAIT)
        self.assertEqual(end, "reset", "how the client's connection ended")
        self.proxy.wait_log(r"close conn=\d+ .*end=upstream-reset ")

    def test_504_when_the_origin_does_not_answer_before_the_idle_timeout(self):
        # The origin takes the request and stays silent: at the idle deadline the client hears
        # why (504, RFC 9209's http_response_timeout), not a bare end of file.
        proxy = self.start_proxy(listeners=(("http", "127.0.0.1"),), tag="idle",
                                 extra=["timeout idle 1s"])
        origin = UploadRefusingServer(b"")  # reads, never answers
        self.addCleanup(origin.stop)
        sock = self.track(connect("127.0.0.1", proxy.port))
        host = f"127.0.0.1:{origin.port}"
        sock.sendall(f"GET http://{host}/slow HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, headers, body, _ = http_response(sock)
        self.assertEqual(status, 504, body)
        self.assertIn("error=http_response_timeout",
                      " ".join(header_values(headers, "Proxy-Status")))
        self.assertEqual(wait_end(sock, WAIT)[0], "eof", "how the connection ended")

    def test_idle_client_reset_ends_the_kept_origin_connection_in_order(self):
        # A client resets its kept connection between requests (no exchange is cut): the
        # proxy's kept connection to the origin ends with an orderly end of file, not a reset
        # that would look like a failure to the origin.
        origin = KeepAliveOrigin()
        self.addCleanup(origin.stop)
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(f"GET http://127.0.0.1:{origin.port}/ HTTP/1.1\r\n"
                     f"Host: 127.0.0.1:{origin.port}\r\n\r\n".encode())
        self.assertEqual(http_response(sock)[:3:2], (200, b"ok"), "the answer")
        reset_on_close(sock)
        sock.close()
        self.assertEqual(origin.ends.get(timeout=WAIT), "eof", "how the origin's connection ended")
        self.proxy.wait_log(r"close conn=\d+ .*end=client-reset ")

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

    def test_pipelined_requests_then_half_close_all_answered(self):
        # printf 'GET ...GET ...GET ...' | nc -N: the client ends its side after three
        # requests; each is answered, the last with Connection: close, then the proxy ends.
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        host = f"origin.test:{self.origin.port}"
        sock.sendall(b"".join(f"GET http://{host}/bytes/{n} HTTP/1.1\r\nHost: {host}\r\n\r\n"
                              .encode() for n in (1000, 2000, 3000)))
        sock.shutdown(socket.SHUT_WR)
        f = sock.makefile("rb")
        for n in (1000, 2000, 3000):
            status, headers, body = read_response(f)
            self.assertEqual((status, len(body), body), (200, n, payload(n)), f"response {n}")
        self.assertEqual(header_values(headers, "Connection"), ["close"], "the last response")
        self.assertEqual(f.read(), b"", "bytes after the last response")

    def test_half_close_after_a_cut_upload_still_gets_the_whole_answer(self):
        # A GET, then an upload whose body the client never finishes, then its end of file; it
        # reads slowly, so the GET's answer waits in the proxy. The answer must arrive whole,
        # with Connection: close (the upload is not started: it would reach the origin cut).
        n = 3 * MIB
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", self.proxy.port))
        self.track(sock)
        host = f"origin.test:{self.origin.port}"
        sock.sendall(f"GET http://{host}/bytes/{n} HTTP/1.1\r\nHost: {host}\r\n\r\n"
                     f"POST http://{host}/echo HTTP/1.1\r\nHost: {host}\r\n"
                     "Content-Length: 100\r\n\r\nonly part of it".encode())
        sock.shutdown(socket.SHUT_WR)
        time.sleep(1.0)  # a slow reader: most of the answer waits in the proxy
        f = sock.makefile("rb")
        status, headers, body = read_response(f)
        self.assertEqual((status, len(body), sha256(body)), (200, n, sha256(payload(n))))
        self.assertEqual(header_values(headers, "Connection"), ["close"])
        self.assertEqual(f.read(), b"", "bytes after the answer")

    def test_chunked_answer_to_an_http10_request_is_502(self):
        # An HTTP/1.0 client cannot read chunks (RFC 9112 §6.1): an origin that sends them
        # anyway gets the client a 502, not a body with the chunk framing inside.
        sock = self.answered_by(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"5\r\nhello\r\n0\r\n\r\n", version="1.0")
        status, headers, body, _ = http_response(sock)
        self.assertEqual(status, 502, body)
        self.assertIn("error=http_protocol_error",
                      " ".join(header_values(headers, "Proxy-Status")))

    def test_502_names_a_response_head_too_large(self):
        sock = self.answered_by(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 +
                                b"\r\nContent-Length: 0\r\n\r\n")
        status, headers, body, _ = http_response(sock)
        self.assertEqual(status, 502, body)
        self.assertIn("error=http_response_header_section_size",
                      " ".join(header_values(headers, "Proxy-Status")))

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

    def test_400_transfer_encoding_without_a_coding(self):
        # "Transfer-Encoding:" with no coding next to a Content-Length: a server that takes the
        # field for chunked would read the "body" below as an end and a second request of the
        # client's choosing. The proxy refuses it instead of framing it by the length.
        body = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        status, headers, _ = self.raw_request(
            f"POST http://origin.test:{self.origin.port}/echo HTTP/1.1\n"
            f"Host: origin.test:{self.origin.port}\nTransfer-Encoding: \n"
            f"Content-Length: {len(body)}\n\n", body)
        self.assertEqual(status, 400)
        self.assertIn("http_request_error", " ".join(header_values(headers, "Proxy-Status")))

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

    def test_403_complete_while_request_body_unread(self):
        # The request head and a 1 MiB body in one go: the proxy refuses after reading the head,
        # with most of the body still unread. It must close the lingering way (read and drop
        # the rest, then close), not with a reset that can destroy the reply.
        body = payload(MIB, seed=43)
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sending = send_then_shut_down(self, sock, (
            f"POST http://127.0.0.1:{self.origin.port}/echo HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.origin.port}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        status, headers, reply = read_response(self.track(sock.makefile("rb")))
        self.assertEqual(status, 403)
        self.assertProxyStatus(headers, "http_request_denied")
        self.assertIn(b"embargo-zone", reply)
        self.assertEqual(int(header_values(headers, "Content-Length")[0]), len(reply))
        self.assertEqual(sending.result(timeout=30), None,
                         "the client could not send its whole request")
        self.assertEqual(wait_end(sock, 10)[0], "eof", "the connection did not end cleanly")
        self.assertTrue(self.origin.peers.empty(), "a blocked request reached the origin")

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

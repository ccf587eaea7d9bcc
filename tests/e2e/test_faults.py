"""Faults, each seen from the outside: the origin resets mid-transfer, the client resets
mid-transfer (its last bytes still reach the origin), the origin answers an upload and resets
it (the answer still reaches the client), the DNS server is slow (never answers), the policy
file is deleted, and SIGTERM arrives during 100 transfers (all finish intact within the drain
time). After every fault the proxy keeps serving. (The GeoIP database replaced with garbage is
in test_geo.py; a full log disk in test_log_file.py; a DNS server that is down in
test_socks5.py.)"""

import os
import signal
import socket
import threading
import time
import unittest

from harness import (WAIT, ProxyTestCase, PushingServer, UploadRefusingServer, close_listener,
                     payload, pushing, recv_exact, recv_until_eof, reset_on_close,
                     send_then_reset, sha256, socks5_open, wait_end, wait_until)
from geo_fixtures import replace_file_atomically

MIB = 1024 * 1024


class ResettingServer:
    """Accepts connections; for each, waits for one byte from the client, sends 'first' bytes,
    then resets the connection (RST), as a server that crashes mid-response does."""

    def __init__(self, first=b"x" * 65536):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.first = first
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.settimeout(10)
            try:
                conn.recv(1)
                conn.sendall(self.first)
            except OSError:
                pass
            reset_on_close(conn)
            conn.close()  # with linger 0: RST

    def close(self):
        close_listener(self.sock)


class Faults(ProxyTestCase):
    def assert_still_serving(self, proxy):
        echo = self.start_echo()
        sock, reply = socks5_open(proxy.port, echo.host, echo.port)
        with sock:
            self.assertSocks5Reply(reply, 0, "a new connection after the fault")
            sock.sendall(b"still here")
            self.assertEqual(recv_exact(sock, 10), b"still here")

    def test_origin_resets_mid_transfer(self):
        origin = ResettingServer()
        self.addCleanup(origin.close)
        proxy = self.start_proxy()
        sock, reply = socks5_open(proxy.port, "127.0.0.1", origin.port)
        self.track(sock)
        self.assertSocks5Reply(reply, 0)
        sock.sendall(b"g")  # the origin answers part of it, then resets
        started = time.monotonic()
        end, got = wait_end(sock, 5)
        self.assertEqual(end, "reset", "the origin's reset is passed on as a reset (an end of "
                                       "file would make the cut answer look complete)")
        self.assertLess(time.monotonic() - started, 5, "the client was not told promptly")
        self.assertLessEqual(len(got), 65536)
        proxy.wait_log(r"close conn=\d+ .*end=\S+")
        self.assert_still_serving(proxy)

    def test_client_resets_mid_transfer(self):
        server = PushingServer()
        self.addCleanup(server.stop)
        proxy = self.start_proxy()
        sock, reply = socks5_open(proxy.port, "127.0.0.1", server.port)
        self.assertSocks5Reply(reply, 0)
        last_words = b"some bytes before the reset"
        sock.recv(65536)  # the download runs
        # The client's last bytes and its reset reach the proxy together, while it is busy
        # passing the download on (on a loaded machine, this is how they arrive): the bytes
        # still go to the origin, and then the reset.
        self.addCleanup(proxy.resume)
        proxy.pause()
        send_then_reset(sock, last_words)  # in the middle of the download
        proxy.resume()
        received, end = server.results.get(timeout=WAIT + 5)
        self.assertEqual(received, last_words, "what the client sent before its reset")
        self.assertEqual(end, "reset", "the client's reset is passed on as a reset")
        proxy.wait_log(rf"close conn=\d+ .*end=client-reset bytes_up={len(last_words)} ")
        self.assert_still_serving(proxy)

    def test_origin_answers_then_resets_an_upload(self):
        answer = b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\n\r\n"
        origin = UploadRefusingServer(answer)
        self.addCleanup(origin.stop)
        proxy = self.start_proxy()
        sock, reply = socks5_open(proxy.port, "127.0.0.1", origin.port)
        self.track(sock)
        self.assertSocks5Reply(reply, 0)
        ends = pushing(sock)  # the client uploads without pause and reads what comes back
        wait_until(lambda: origin.received >= MIB, what="the upload reaching the origin")
        # The origin answers and resets while the client's upload keeps the proxy writing to
        # it: the answer still reaches the client, and then the reset.
        self.addCleanup(proxy.resume)
        proxy.pause()
        self.assertTrue(origin.refuse(), "the origin did not answer")
        proxy.resume()
        got, end = ends.get(timeout=WAIT + 5)
        self.assertEqual(got, answer, "the origin's answer before its reset")
        self.assertEqual(end, "reset", "the origin's reset is passed on as a reset")
        proxy.wait_log(rf"close conn=\d+ .*end=upstream-reset .*bytes_down={len(answer)} ")
        self.assert_still_serving(proxy)

    def test_dns_server_that_never_answers(self):
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))  # receives queries, answers none
        self.addCleanup(silent.close)
        proxy = self.start_proxy(extra=[f"resolver 127.0.0.1:{silent.getsockname()[1]}",
                                        "timeout dns 500ms"])
        started = time.monotonic()
        sock, reply = socks5_open(proxy.port, "origin.test", 80)
        self.track(sock)
        elapsed = time.monotonic() - started
        self.assertSocks5Reply(reply, 0x04, "a name the DNS server never answers")
        self.assertLess(elapsed, 5, f"the DNS timeout took {elapsed:.1f} s")
        # HTTP says so too.
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        self.track(s)
        s.sendall(b"GET http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\n\r\n")
        head = s.recv(4096).decode(errors="replace")
        self.assertRegex(head, r"^HTTP/1\.1 504 ")
        self.assertRegex(head, r"(?im)^Proxy-Status: .*error=dns_timeout")
        self.assert_still_serving(proxy)

    def test_policy_file_deleted(self):
        proxy = self.start_proxy(rules=["rule only pass"])
        with open(proxy.config_path, "rb") as f:
            text = f.read()
        start = proxy.log_size()
        os.unlink(proxy.config_path)
        proxy.wait_log(r"reload \(file change\) failed: keeping policy generation 1", start=start)
        self.assertIn("No such file or directory", proxy.log_text()[start:])
        self.assert_still_serving(proxy)
        start = proxy.log_size()
        replace_file_atomically(proxy.config_path, text)
        proxy.wait_log(r"policy generation 2 loaded \(file change\)", start=start)
        self.assert_still_serving(proxy)

    def test_sigterm_during_100_transfers(self):
        data = payload(256 * 1024, seed=100)
        server = self.start_data("gated", data)
        proxy = self.start_proxy(check_exit=False, drain_s=30,
                                 extra=["limit connections 1000"])
        socks = []
        for _ in range(100):
            sock, reply = socks5_open(proxy.port, "127.0.0.1", server.port)
            socks.append(self.track(sock))
            self.assertSocks5Reply(reply, 0)
        for _ in range(100):
            self.assertEqual(server.results.get(timeout=WAIT), "first-half-sent")
        proxy.send_signal(signal.SIGTERM)
        proxy.wait_log(r"no longer accepting")
        self.assertIsNone(proxy.proc.poll(), "exited with 100 transfers in flight")
        server.gate.set()
        received = [None] * 100

        def read(i):
            received[i] = recv_until_eof(socks[i])
        readers = [threading.Thread(target=read, args=(i,)) for i in range(100)]
        for t in readers:
            t.start()
        for t in readers:
            t.join(timeout=60)
        whole = sum(1 for r in received if r is not None and len(r) == len(data) and
                    sha256(r) == sha256(data))
        self.assertEqual(whole, 100, "transfers cut or altered by the drain")
        self.assertEqual(proxy.wait_exit(30 + WAIT), 0, proxy.log_text()[-2000:])


if __name__ == "__main__":
    unittest.main()

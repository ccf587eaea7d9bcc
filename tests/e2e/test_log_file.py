"""Logging to a file: --log-file appends there; after logrotate moves the file, SIGUSR1 makes
geoproxy write to a new one under the old name, losing no line; and a log disk that is full
(/dev/full) costs lines, counted in the metrics, never the service."""

import os
import re
import signal
import unittest
import urllib.request

from harness import (ProxyTestCase, free_port, geoproxy_bin, recv_exact, run, socks5_open,
                     wait_until)


class LogFile(ProxyTestCase):
    def echo_once(self, proxy, echo, data=b"ping"):
        sock, reply = socks5_open(proxy.port, echo.host, echo.port)
        with sock:
            self.assertSocks5Reply(reply, 0, "through the proxy")
            sock.sendall(data)
            self.assertEqual(recv_exact(sock, len(data)), data)

    def test_sigusr1_reopens_after_rotation(self):
        path = os.path.join(self.workdir(), "rotating.log")
        echo = self.start_echo()
        proxy = self.start_proxy(args=("--log-file", path))

        def read(p):
            with open(p, encoding="utf-8", errors="replace") as f:
                return f.read()
        # Each step moves a different number of bytes, which its close event shows.
        self.echo_once(proxy, echo, b"1" * 11)
        wait_until(lambda: "bytes_up=11 " in read(path), what="step 1 in the log file")
        self.assertEqual(proxy.log_text(), "", "lines went to stderr as well")

        os.rename(path, path + ".1")  # what logrotate does
        self.echo_once(proxy, echo, b"2" * 22)  # still written to the moved file
        wait_until(lambda: "bytes_up=22 " in read(path + ".1"), what="step 2 in the old file")
        proxy.send_signal(signal.SIGUSR1)
        wait_until(lambda: os.path.exists(path) and "reopened" in read(path),
                   what="the reopened log file")
        self.echo_once(proxy, echo, b"3" * 33)
        wait_until(lambda: "bytes_up=33 " in read(path), what="step 3 in the new file")
        self.assertNotIn("bytes_up=33 ", read(path + ".1"))
        self.assertNotIn("bytes_up=22 ", read(path))

    def test_unwritable_log_file_stops_the_start(self):
        conf = os.path.join(self.workdir(), "t.conf")
        with open(conf, "w") as f:
            f.write("listen mixed 127.0.0.1:1\nrule r pass\n")
        r = run([geoproxy_bin(), "run", "-c", conf, "--log-file", "/nonexistent/dir/g.log"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"cannot open log file /nonexistent/dir/g.log: No such file or directory",
                      r.stderr)

    def test_full_log_disk_is_counted_and_service_goes_on(self):
        admin = free_port()
        echo = self.start_echo()
        proxy = self.start_proxy(args=("--log-file", "/dev/full"),
                                 extra=[f"admin 127.0.0.1:{admin}"])
        for _ in range(5):
            self.echo_once(proxy, echo)

        def errors():
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
                m = re.search(r"^geoproxy_log_write_errors_total (\d+)$", r.read().decode(),
                              re.M)
            return int(m.group(1)) if m and int(m.group(1)) >= 10 else None
        self.assertGreaterEqual(wait_until(errors, what="log write errors counted"), 10)
        self.echo_once(proxy, echo, b"still serving")


if __name__ == "__main__":
    unittest.main()

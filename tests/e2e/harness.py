"""Shared fixtures for geoproxy's end-to-end tests.

Everything runs on loopback: the real binary (GEOPROXY_BIN) on ephemeral ports, dnsmasq as the
DNS server for the test names, and small servers on threads of the test process. Every wait is
bounded (WAIT seconds unless told otherwise), every socket has a timeout, and every process or
thread a test starts is stopped by a cleanup registered with addCleanup, so a failing test still
leaves nothing behind and ctest entries can run in parallel.

Names served by the test DNS server (start_dns):
    origin.test, origin2.test -> 127.0.0.1 (no AAAA: NODATA)
    v6.test                   -> ::1       (no A: NODATA)
    dual.test                 -> 127.0.0.1 and ::1
    <cc>.geo.test, split.geo.test -> loopback addresses "in" countries (geo_fixtures.py)
    anything else under .test -> NXDOMAIN

Sanitizer builds (GEOPROXY_SANITIZE): every geoproxy process a test starts writes its ASan, LSan
and UBSan reports to files in SANITIZER_DIR, whatever its exit status, and the test fails with
their text. Exit statuses alone would miss them where a test expects a failure: ASan's status is
1, the same as "configuration not valid".

Helpers live in three modules; tests import everything from this one:
    clients.py  socket helpers, raw SOCKS and HTTP clients
    servers.py  in-process servers (echo, data, HTTP origin, blackhole)
    harness.py  dnsmasq and geoproxy processes, and ProxyTestCase
"""

import atexit
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from clients import *  # noqa: F401,F403 (re-exported for the tests)
from clients import (CMD_TIMEOUT, WAIT, can_connect, free_port, free_port_tcp_udp,
                     geoproxy_bin, header_values, hostport, recv_exact, run, socks5_open,
                     wait_closed, wait_until)
from servers import *  # noqa: F401,F403 (re-exported for the tests)
from servers import Blackhole, DataServer, EchoServer, HttpOrigin

import geo_fixtures

DNSMASQ = "/usr/sbin/dnsmasq"

# ---------------------------------------------------------------------------------------------
# Sanitizer reports

SANITIZER_DIR = tempfile.mkdtemp(prefix="geoproxy-e2e-sanitizer-")
atexit.register(shutil.rmtree, SANITIZER_DIR, True)
for _var in ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"):
    _current = os.environ.get(_var, "")
    if "log_path=" not in _current:  # else the caller chose; exit statuses catch most
        os.environ[_var] = ":".join(filter(None, [_current, f"log_path={SANITIZER_DIR}/report"]))


def take_sanitizer_reports():
    """The sanitizer reports written since the last call, as text (the files are removed)."""
    reports = []
    for name in sorted(os.listdir(SANITIZER_DIR)):
        path = os.path.join(SANITIZER_DIR, name)
        with open(path, encoding="utf-8", errors="replace") as f:
            reports.append(f"--- {name}\n{f.read()}")
        os.unlink(path)
    return reports


# ---------------------------------------------------------------------------------------------
# Processes: dnsmasq and geoproxy


class Dnsmasq:
    """dnsmasq on 127.0.0.1:<free port>, authoritative for the .test names (see module doc),
    answering nothing else (no upstream). Queries are logged to .log_path (<tag>.log in the
    workdir, so that several can run side by side). extra_records: more --host-record values
    ("name,address[,address]"), for names only this server knows."""

    def __init__(self, workdir, tag="dnsmasq", extra_records=()):
        self.log_path = os.path.join(workdir, f"{tag}.log")
        self.proc = None
        errors = []
        for _ in range(5):
            self.port = free_port_tcp_udp()
            argv = [
                DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--no-poll", "--pid-file=", "--user=root", "--group=root",
                f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                "--local=/test/",  # .test is ours: unknown names are NXDOMAIN, not forwarded
                "--host-record=origin.test,127.0.0.1",
                "--host-record=origin2.test,127.0.0.1",
                "--host-record=v6.test,::1",
                "--host-record=dual.test,127.0.0.1,::1",
                *(f"--host-record={rec}" for rec in geo_fixtures.dns_host_records()),
                *(f"--host-record={rec}" for rec in extra_records),
                "--log-queries", f"--log-facility={self.log_path}",
            ]
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_ready():
                return
            self.stop()
            errors.append(f"port {self.port}: exit {self.proc.returncode}: {self._stderr!r}")
        raise AssertionError("dnsmasq did not start (5 attempts): " + "; ".join(errors))

    def _query(self, name, qtype=1, timeout=0.5):
        q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
        q += struct.pack(">HH", qtype, 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(q, ("127.0.0.1", self.port))
            return s.recv(512)

    def _wait_ready(self):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                reply = self._query("origin.test", timeout=0.1)
                if reply[3] & 0x0F == 0 and struct.unpack(">H", reply[6:8])[0] == 1:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def queries(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=WAIT)
        self._stderr = b""
        if self.proc and self.proc.stderr:
            if self.proc.poll() is not None:
                self._stderr = self.proc.stderr.read()[-500:]
            self.proc.stderr.close()


class Listener:
    def __init__(self, kind, host, port, name=None, users=None, options=None):
        self.kind, self.host, self.port, self.name, self.users = kind, host, port, name, users
        self.options = options  # more words for the line, as written ("cert F key F ca F")

    def line(self):
        s = f"listen {self.kind} {hostport(self.host, self.port)}"
        if self.options:
            s += f" {self.options}"
        if self.name:
            s += f" name {self.name}"
        if self.users:
            s += f" users {self.users}"
        return s


class Proxy:
    """A running geoproxy. .port is the first listener's port, .listeners all of them; stderr
    goes to .log_path. stop() sends SIGTERM and returns the exit status."""

    def __init__(self, workdir, config_text, listeners, args=(), drain_s=5.0, tag="geoproxy",
                 config_path=None):
        self.workdir = workdir
        self.listeners = listeners
        self.config_path = config_path or os.path.join(workdir, f"{tag}.conf")
        self.log_path = os.path.join(workdir, f"{tag}.log")
        self.drain_s = drain_s
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(config_text)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([geoproxy_bin(), "run", "-c", self.config_path, *args],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log)
        self.pid = self.proc.pid
        self.returncode = None

    @property
    def port(self):
        return self.listeners[0].port

    @property
    def host(self):
        return self.listeners[0].host

    def wait_ready(self, timeout=WAIT):
        """True when every listener accepts; False when the process exited first."""
        deadline = time.monotonic() + timeout
        pending = list(self.listeners)
        for _ in range(int(timeout / 0.05) + 2):
            if self.proc.poll() is not None:
                return False
            pending = [l for l in pending if not can_connect(l.host, l.port, timeout=0.5)]
            if not pending:
                return True
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        raise AssertionError(f"geoproxy did not accept on {[l.port for l in pending]} within "
                             f"{timeout}s; log:\n{self.log_text()}")

    def pause(self):
        """Stops the process (SIGSTOP) until resume(): what its peers do meanwhile reaches it all
        at once, as on a loaded machine. Returns once every thread has stopped (kill() returns
        before, and a thread may still handle events it had collected). Pair it with
        addCleanup(proxy.resume)."""
        os.kill(self.pid, signal.SIGSTOP)
        wait_until(self._stopped, what=f"geoproxy (pid {self.pid}) to stop")

    def _stopped(self):
        """True when no thread of the process is running (each stopped, state T, or gone)."""
        try:
            tasks = os.listdir(f"/proc/{self.pid}/task")
        except FileNotFoundError:
            return True  # exited
        for task in tasks:
            try:
                with open(f"/proc/{self.pid}/task/{task}/stat", encoding="ascii") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue  # that thread ended
            if state not in ("T", "t"):
                return False
        return True

    def resume(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_size(self):
        return len(self.log_text())

    def wait_log(self, pattern, start=0, timeout=5.0):
        """Waits for a regex to appear in the log after offset 'start'; returns the match."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log_text()[start:]), timeout=timeout,
                          what=f"log line matching {pattern!r}; log:\n{self.log_text()[start:]}")

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def send_signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
            raise AssertionError(f"geoproxy did not exit within {timeout:.0f}s after the "
                                 f"signal; killed. log:\n{self.log_text()}")
        return self.returncode

    def stop(self, sig=signal.SIGTERM):
        """Sends sig (if still running) and waits for the exit; returns the exit status."""
        if self.returncode is None:
            self.send_signal(sig)
            self.wait_exit(self.drain_s + WAIT)
        self._log.close()
        return self.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        self._log.close()


# ---------------------------------------------------------------------------------------------
# The test case base class


class ProxyTestCase(unittest.TestCase):
    """Base class: creates fixtures and registers their cleanup."""

    maxDiff = 4000

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The first cleanup runs last: after every process the test started has ended.
        self.addCleanup(self._check_sanitizer_reports)

    def _check_sanitizer_reports(self):
        reports = take_sanitizer_reports()
        if reports:
            self.fail("geoproxy wrote sanitizer reports:\n" + "\n".join(r[:8000] for r in reports))

    def workdir(self):
        if not hasattr(self, "_workdir"):
            self._workdir = tempfile.mkdtemp(prefix=f"geoproxy-e2e-{self._testMethodName}-")
            self.addCleanup(shutil.rmtree, self._workdir, ignore_errors=True)
        return self._workdir

    def track(self, sock):
        """Closes a client socket at cleanup (before the proxy is stopped)."""
        self.addCleanup(sock.close)
        return sock

    # -- servers

    def start_dns(self, tag="dnsmasq", extra_records=()):
        """A Dnsmasq (see there); give each one a test starts its own tag."""
        dns = Dnsmasq(self.workdir(), tag, extra_records)
        self.addCleanup(dns.stop)
        return dns

    def start_echo(self, family=socket.AF_INET, host=None):
        srv = EchoServer(family, host)
        self.addCleanup(srv.stop)
        return srv

    def start_data(self, mode, data, family=socket.AF_INET, host=None):
        srv = DataServer(mode, data, family, host)
        self.addCleanup(srv.stop)
        return srv

    def start_origin(self, name="origin", family=socket.AF_INET, host=None):
        srv = HttpOrigin(name, family, host)
        self.addCleanup(srv.stop)
        return srv

    def blackhole(self):
        bh = Blackhole.make()
        if bh is None:
            self.skipTest("this kernel does not drop SYNs to a full accept queue; "
                          "no deterministic connect timeout on loopback")
        self.addCleanup(bh.close)
        return bh

    def closed_port(self):
        """A loopback port with nothing listening (connections are refused)."""
        return free_port()

    # -- geoproxy

    def geo_db(self, blocks=None, name="geo.mmdb"):
        """A country database in the workdir mapping loopback blocks to countries
        (geo_fixtures.BLOCKS by default); returns its path for a "geoip country" line."""
        return geo_fixtures.build_geodb(self, os.path.join(self.workdir(), name), blocks)

    def users_file(self, users, mode=0o600, name="users"):
        """A users file made with `geoproxy passwd` for {user: password}."""
        lines = []
        for user, password in users.items():
            r = run([geoproxy_bin(), "passwd", user], input=(password + "\n").encode())
            self.assertEqual(r.returncode, 0, f"geoproxy passwd failed: {r.stderr!r}")
            lines.append(r.stdout.decode().strip())
        path = os.path.join(self.workdir(), name)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, mode)
        return path

    def start_proxy(self, *, listeners=(("mixed", "127.0.0.1"),), dns=None, rules=None,
                    extra=(), args=(), drain_s=5.0, tag="geoproxy", check_exit=True,
                    config_path=None):
        """Writes a config and starts geoproxy; returns a ready Proxy.

        listeners: tuples (kind, host[, dict of name=/users=/options=]); ports are picked here
        (options: more words for the listen line, such as a tunnel listener's certificates).
        dns: a Dnsmasq (adds "resolver"); rules: config lines (default "rule default pass");
        extra: more config lines (timeouts, limits). config_path: where the config is written
        (default <workdir>/<tag>.conf). At cleanup the proxy gets SIGTERM and the test fails
        unless it exits with status 0 (check_exit=False for tests that stop it themselves with
        other expectations). proxy.head_lines holds the lines before the rules, for tests that
        rewrite the rules."""
        last_log = ""
        for _attempt in range(3):
            lst = []
            for spec in listeners:
                kind, host = spec[0], spec[1]
                opts = spec[2] if len(spec) > 2 else {}
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                lst.append(Listener(kind, host, free_port(family), opts.get("name"),
                                    opts.get("users"), opts.get("options")))
            lines = [l.line() for l in lst]
            if dns is not None:
                lines.append(f"resolver 127.0.0.1:{dns.port}")
            if not any(e.startswith("timeout drain") for e in extra):
                lines.append(f"timeout drain {int(drain_s * 1000)}ms")
            lines.extend(extra)
            head = list(lines)
            lines.extend(rules if rules is not None else ["rule default pass"])
            proxy = Proxy(self.workdir(), "\n".join(lines) + "\n", lst, args=args,
                          drain_s=drain_s, tag=tag, config_path=config_path)
            proxy.head_lines = head
            try:
                ready = proxy.wait_ready()
            except BaseException:
                proxy.kill()
                raise
            if ready:
                if check_exit:
                    self.addCleanup(self._stop_and_check, proxy)
                else:
                    self.addCleanup(proxy.kill)
                return proxy
            proxy.kill()
            last_log = proxy.log_text()
            if "in use" not in last_log.lower():  # a port race: pick new ports and retry
                break
        raise AssertionError(f"geoproxy exited during start-up (status {proxy.proc.returncode})"
                             f"; config:\n{open(proxy.config_path).read()}\nlog:\n{last_log}")

    def _stop_and_check(self, proxy):
        if proxy.returncode is not None:
            proxy._log.close()
            return
        rc = proxy.stop()
        self.assertEqual(rc, 0, f"geoproxy exited with status {rc} after SIGTERM; log:\n"
                                f"{proxy.log_text()[-3000:]}")

    # -- assertions

    def assertSocks5Reply(self, reply, rep, what=""):
        self.assertEqual(reply[0], rep, f"{what}: SOCKS5 REP {reply[0]:#04x}, expected {rep:#04x}"
                                        f" (full reply {reply})")

    def assertClosedWithin(self, sock, timeout=5.0, what="connection"):
        closed, data = wait_closed(sock, timeout)
        self.assertTrue(closed, f"{what}: still open after {timeout}s (received {data[:64]!r})")
        return data

    def assertProxyStatus(self, headers, error):
        values = header_values(headers, "Proxy-Status")
        shown = list(headers.items()) if hasattr(headers, "items") else headers
        self.assertTrue(values, f"no Proxy-Status header in {shown}")
        joined = ", ".join(values)
        self.assertRegex(joined, rf'(^|;)\s*error="?{re.escape(error)}"?\s*(;|,|$)',
                         f"Proxy-Status {joined!r} does not name error={error}")

    def assertNetcatRelaysMibEachWay(self, nc_proxy_type, host, seeds):
        """netcat (-X nc_proxy_type) through self.proxy to a send_and_hash server at host: one MiB
        each way arrives intact (seeds picks the two payloads: server's, then client's)."""
        down, up = payload(MIB, seed=seeds[0]), payload(MIB, seed=seeds[1])
        server = self.start_data("send_and_hash", down)
        r = run(["nc", "-N", "-w", "20", "-X", nc_proxy_type, "-x", f"127.0.0.1:{self.proxy.port}",
                 host, str(server.port)], input=up)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((len(r.stdout), sha256(r.stdout)), (MIB, sha256(down)),
                         "bytes server -> client through the proxy")
        self.assertEqual(server.results.get(timeout=10), (MIB, sha256(up)),
                         "bytes client -> server through the proxy")

    def curl(self, *args, timeout=CMD_TIMEOUT):
        """Runs curl (silent, errors shown, bounded) and returns the CompletedProcess."""
        return run(["curl", "-sS", "--max-time", "30", *args], timeout=timeout)


def socks5_roundtrip(test, proxy_port, host, port, data=b"ping through geoproxy\n", **kw):
    """SOCKS5 CONNECT to an echo server and one echo round trip; returns the reply tuple."""
    sock, reply = socks5_open(proxy_port, host, port, **kw)
    test.track(sock)
    test.assertSocks5Reply(reply, 0, f"CONNECT {host}:{port}")
    sock.sendall(data)
    test.assertEqual(recv_exact(sock, len(data)), data)
    sock.close()
    return reply

"""The admin listener on a unix socket ("admin unix:PATH"), end to end: the socket file and its
mode, the same endpoints as on TCP (/status, /metrics, /events, POST /reload) spoken over the
socket, `geoproxy status|reload|tail --admin unix:PATH`, the file removed at SIGTERM, a stale
socket replaced at start, and a path that is a regular file or a live socket refused."""

import http.client
import json
import os
import socket
import stat

from harness import free_port, geoproxy_bin, run
from geo_fixtures import server_addr
from test_admin import AdminBase, EventStream, metric, settled_metrics

TOKEN = "unix-socket-token-0123456789"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket: the host name only fills the Host header."""

    def __init__(self, socket_path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        self.sock = unix_connect(self.socket_path, self.timeout)


def unix_connect(path, timeout=10):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    return sock


def unix_http(path, target, method="GET", body=None, token=None):
    """(status, body bytes) from the admin listener at the socket path."""
    conn = UnixHTTPConnection(path)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request(method, target, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class UnixAdmin(AdminBase):
    def start(self, mode=None, token_path=None, tag="geoproxy"):
        """geoproxy with "admin unix:admin.sock": relative, so in the config's directory."""
        self.sock_path = os.path.join(self.workdir(), "admin.sock")
        line = "admin unix:admin.sock"
        if token_path is not None:
            line += f" token {token_path}"
        if mode is not None:
            line += f" mode {mode}"
        return self.start_proxy(rules=self.RULES, tag=tag,
                                extra=[f"geoip country {self.geo()}", line])

    def geo(self):
        """The test's country database, built once (a rebuild would reload a running proxy)."""
        if not hasattr(self, "db"):
            self.db = self.geo_db()
        return self.db

    def assertSocketMode(self, mode):
        st = os.lstat(self.sock_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode), oct(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), mode, oct(st.st_mode))
        self.assertEqual(st.st_uid, os.geteuid())

    def cli(self, *args):
        return run([geoproxy_bin(), *args, "--admin", f"unix:{self.sock_path}"])


class Endpoints(UnixAdmin):
    def test_status_metrics_and_reload_over_the_socket(self):
        proxy = self.start(mode="0660")
        self.assertSocketMode(0o660)
        self.assertIn(f"admin listener on unix:{self.sock_path} (mode 0660", proxy.log_text())

        status, body = unix_http(self.sock_path, "/status")
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertEqual(doc["policy"]["generation"], 1)
        self.assertEqual(doc["listeners"][0]["address"], f"127.0.0.1:{proxy.port}")

        ch = self.start_echo(host=server_addr("CH"))
        self.connect_through(proxy, "HK", "CH", ch)[0].close()

        text = settled_metrics(lambda: unix_http(self.sock_path, "/metrics"))
        self.assertEqual(metric(text, "geoproxy_connections_total", action="pass", rule="rest"), 1)
        self.assertEqual(unix_http(self.sock_path, "/nope")[0], 404)

        stream = EventStream(None, "?action=block", sock=unix_connect(self.sock_path))
        self.addCleanup(stream.close)
        cn = self.start_echo(host=server_addr("CN"))
        self.connect_through(proxy, "HK", "CN", cn)[0].close()
        lines = stream.lines_until(lambda ls: any('"event":"decision"' in l for l in ls))
        decision = json.loads(next(l for l in lines if '"event":"decision"' in l))
        self.assertEqual((decision["action"], decision["rule"]), ("block", "hk-to-cn"))

        r = self.cli("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.decode(), r"policy +generation 1, 2 rule\(s\)")
        r = self.cli("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["generation"], 2)
        status, body = unix_http(self.sock_path, "/reload", method="POST", body="")
        self.assertEqual((status, json.loads(body)["generation"]), (200, 3), body)

    def test_token_on_a_socket_everyone_may_open(self):
        token_path = os.path.join(self.workdir(), "admin.token")
        with open(token_path, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_path, 0o600)
        self.start(mode="0666", token_path=token_path)
        self.assertSocketMode(0o666)
        self.assertEqual(unix_http(self.sock_path, "/status")[0], 401)
        self.assertEqual(unix_http(self.sock_path, "/status", token=TOKEN)[0], 200)
        r = self.cli("status", "--token-file", token_path)
        self.assertEqual(r.returncode, 0, r.stderr)


class Tail(UnixAdmin):
    def test_tail_over_the_socket_and_the_file_goes_at_sigterm(self):
        proxy = self.start()
        self.assertSocketMode(0o600)  # the default

        def restart():  # SIGTERM removes the socket file; the next daemon makes it again
            self.assertEqual(proxy.stop(), 0)
            self.assertFalse(os.path.lexists(self.sock_path), "the socket file outlived geoproxy")
            return self.start(tag="second")
        self.check_tail(proxy, f"unix:{self.sock_path}", restart)


class SocketPath(UnixAdmin):
    def run_refused(self):
        """geoproxy run with "admin unix:admin.sock" that must not start; its stderr."""
        conf = os.path.join(self.workdir(), "refused.conf")
        with open(conf, "w") as f:
            f.write(f"listen mixed 127.0.0.1:{free_port()}\ngeoip country {self.geo()}\n"
                    "admin unix:admin.sock\nrule all pass\n")
        r = run([geoproxy_bin(), "run", "-c", conf])
        self.assertEqual(r.returncode, 1, r.stderr)
        return r.stderr.decode()

    def test_stale_socket_is_replaced(self):
        self.sock_path = os.path.join(self.workdir(), "admin.sock")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.sock_path)  # bound, never listened on, closed: what a crash leaves
        stale.close()
        proxy = self.start()
        self.assertIn(f"replaced the stale socket {self.sock_path}", proxy.log_text())
        self.assertSocketMode(0o600)
        self.assertEqual(unix_http(self.sock_path, "/status")[0], 200)

    def test_regular_file_is_refused(self):
        path = os.path.join(self.workdir(), "admin.sock")
        with open(path, "w") as f:
            f.write("not a socket\n")
        err = self.run_refused()
        self.assertIn(f"admin listener: cannot listen on unix:{path}: the path exists and is not "
                      "a socket (remove it, or choose another path)", err)
        with open(path) as f:
            self.assertEqual(f.read(), "not a socket\n")

    def test_live_socket_is_refused_and_left_alone(self):
        self.start()
        err = self.run_refused()
        self.assertIn(f"cannot listen on unix:{self.sock_path}: another process is listening on "
                      "it", err)
        self.assertSocketMode(0o600)
        self.assertEqual(unix_http(self.sock_path, "/status")[0], 200)

    def test_cli_without_daemon(self):
        path = os.path.join(self.workdir(), "nobody.sock")
        r = run([geoproxy_bin(), "status", "--admin", f"unix:{path}"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"cannot reach the admin listener at unix:{path}".encode(), r.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()

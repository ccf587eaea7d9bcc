"""`user NAME`: geoproxy binds as root, then every thread runs as that user, cannot become root
again, and still serves and reloads (files it reads belong to that user). A user that does not
exist, a secret file that user could not read on reload, and a non-root start asked to switch
accounts all refuse to start with a message. Needs root (CI runs as root)."""

import os
import pwd
import re
import shutil
import signal
import subprocess
import unittest

from harness import (Listener, Proxy, ProxyTestCase, free_port, recv_exact,
                     socks5_open, socks5_roundtrip)
from clients import geoproxy_bin

try:
    NOBODY = pwd.getpwnam("nobody")
except KeyError:
    NOBODY = None


@unittest.skipUnless(os.geteuid() == 0 and NOBODY is not None, "needs root and a 'nobody' user")
class PrivilegeDrop(ProxyTestCase):
    def setUp(self):
        os.chmod(self.workdir(), 0o755)  # mkdtemp's 0700 would hide the config from nobody

    def nobody_file(self, path):
        os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
        return path

    def ids_of_threads(self, pid):
        """{(Uid fields, Gid fields)} over every thread of pid: real, effective, saved, fs."""
        ids = set()
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status", encoding="ascii") as f:
                status = f.read()
            ids.add(tuple(tuple(re.search(rf"^{key}:\s+(.*)$", status, re.M).group(1).split())
                          for key in ("Uid", "Gid")))
        return ids

    def start_refused(self, lines, tag):
        """Starts geoproxy on a config that must be refused; returns its log."""
        port = free_port()
        proxy = Proxy(self.workdir(), "\n".join([f"listen mixed 127.0.0.1:{port}", *lines,
                                                 "rule default pass"]) + "\n",
                      [Listener("mixed", "127.0.0.1", port)], tag=tag)
        self.addCleanup(proxy.kill)
        self.assertEqual(proxy.wait_exit(10), 1, proxy.log_text())
        return proxy.log_text()

    def test_runs_as_nobody_serves_and_reloads(self):
        echo = self.start_echo()
        users = self.nobody_file(self.users_file({"alice": "correct horse"}))
        proxy = self.start_proxy(
            listeners=(("mixed", "127.0.0.1"), ("socks5", "127.0.0.1", {"users": users})),
            # the default database may sit in a build directory nobody cannot enter
            extra=["user nobody", "geoip country none", f"admin 127.0.0.1:{free_port()}"])
        self.nobody_file(proxy.config_path)
        proxy.wait_log(r"running as user nobody \(uid %d, gid %d\)"
                       % (NOBODY.pw_uid, NOBODY.pw_gid))
        uid, gid = str(NOBODY.pw_uid), str(NOBODY.pw_gid)
        self.assertGreater(len(os.listdir(f"/proc/{proxy.pid}/task")), 1, "worker threads")
        self.assertEqual(self.ids_of_threads(proxy.pid), {((uid,) * 4, (gid,) * 4)},
                         "every thread runs as nobody")
        with open(f"/proc/{proxy.pid}/status", encoding="ascii") as f:
            self.assertRegex(f.read(), rf"(?m)^Groups:\s*({gid}\s*)?$", "supplementary groups")

        socks5_roundtrip(self, proxy.port, "127.0.0.1", echo.port)
        sock, reply = socks5_open(proxy.listeners[1].port, "127.0.0.1", echo.port,
                                  auth=("alice", "correct horse"))
        self.track(sock)
        self.assertSocks5Reply(reply, 0, "login read from the users file")
        sock.sendall(b"z")
        self.assertEqual(recv_exact(sock, 1), b"z")

        # A reload, as nobody: the config and the users file are read again.
        start = proxy.log_size()
        with open(proxy.config_path, "w", encoding="utf-8") as f:
            f.write("\n".join(proxy.head_lines + [
                f'rule no-echo block to 127.0.0.1 :{echo.port} reason "reloaded"',
                "rule default pass"]) + "\n")
        proxy.send_signal(signal.SIGHUP)
        proxy.wait_log(r"policy generation \d+ loaded .*2 rule\(s\)", start=start)
        _, reply = socks5_open(proxy.port, "127.0.0.1", echo.port)
        self.assertSocks5Reply(reply, 2, "the rule added by the reload")
        self.assertNotIn("failed", proxy.log_text()[start:])

    def test_unknown_user_refused(self):
        log = self.start_refused(["user no-such-geoproxy-user"], "unknown")
        self.assertIn("user no-such-geoproxy-user: no such user on this system", log)
        self.assertIn("not started", log)

    def test_secret_the_user_cannot_read_refused(self):
        users = self.users_file({"alice": "correct horse"})  # root's, mode 0600
        log = self.start_refused([f"listen socks5 127.0.0.1:{free_port()} users {users}",
                                  "user nobody"], "unreadable")
        self.assertIn(f"user nobody cannot read {users}, which every reload reads", log)
        self.assertIn(f"chown nobody {users}", log)

    @unittest.skipUnless(shutil.which("setpriv"), "needs setpriv (util-linux)")
    def test_non_root_cannot_switch(self):
        port = free_port()
        path = os.path.join(self.workdir(), "daemon.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"listen mixed 127.0.0.1:{port}\nuser daemon\nrule default pass\n")
        r = subprocess.run(["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}",
                            "--clear-groups", geoproxy_bin(), "run", "-c", path],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"not as root, and cannot switch accounts", r.stderr)


if __name__ == "__main__":
    unittest.main()

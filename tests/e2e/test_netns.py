"""The operator's local network stays closed to clients outside it, seen from a real non-local
client: a network namespace joined to this host by a veth pair with documentation addresses
(198.51.100.0/24, TEST-NET-2, in none of geoproxy's local ranges). geoproxy listens on the
host's end of the pair (a non-loopback listener, so with a users file); clients run inside the
namespace (`nsenter --net`) and log in.

  - a destination on the host's loopback, by address or by a name that resolves there, is
    refused with SOCKS5 0x02 by rule "(local destination)", though a catch-all rule passed it,
    and the origin sees no connection;
  - the host's own veth address, which is no local range, is reached;
  - a rule that names local destinations (`to local`) opens the loopback origin.

Needs root and iproute2 (scripts/install-deps.sh); a kernel or container that refuses network
namespaces or veth pairs skips the tests, saying what was refused."""

import json
import os
import random
import re
import shutil
import subprocess
import sys
import unittest

from harness import ProxyTestCase, run

SOCKS5_OK, SOCKS5_NOT_ALLOWED = 0x00, 0x02
USER, PASSWORD = "alice", "correct horse"
HERE = os.path.dirname(os.path.abspath(__file__))

# Run inside the namespace: one SOCKS5 CONNECT with user and password, then GET /peer when it
# is granted. Prints {"rep": N, "status": S, "body": "..."}.
CLIENT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from clients import http_response, socks5_open
proxy_host, proxy_port, host, port, user, password = sys.argv[2:8]
sock, reply = socks5_open(int(proxy_port), host, int(port), proxy_host=proxy_host,
                          auth=(user, password), timeout=10)
out = {"rep": reply[0], "status": None, "body": None}
if reply[0] == 0:
    sock.sendall(f"GET /peer HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    status, _, body, _ = http_response(sock)
    out["status"], out["body"] = status, body.decode("utf-8", "replace")
sock.close()
print(json.dumps(out))
"""

_count = 0


def decision_line(text):
    """The first decision line in a log excerpt, or None."""
    m = re.search(r"decision conn=\d+ [^\n]*", text)
    return m.group(0) if m else None


def rule_of(line):
    m = re.search(r"rule=(\"[^\"]*\"|\S+)", line)
    return m.group(1).strip('"') if m else None


class NonLocalClient(ProxyTestCase):
    def setUp(self):
        if shutil.which("ip") is None:
            self.fail("'ip' is not installed: run scripts/install-deps.sh (iproute2)")
        global _count
        _count += 1
        tag = f"{os.getpid() % 100000}{_count}"
        self.ns = f"geoproxy-e2e-{tag}"
        host_if, ns_if = f"gpv{tag}h", f"gpv{tag}n"  # at most 15 bytes
        # A /30 of our own in 198.51.100.0/24, so that two runs side by side do not clash.
        base = 4 * random.randrange(64)
        self.host_addr, self.ns_addr = f"198.51.100.{base + 1}", f"198.51.100.{base + 2}"

        r = self.ip("netns", "add", self.ns, check=False)
        if r.returncode != 0:
            raise unittest.SkipTest(f"cannot create a network namespace here (ip netns add: "
                                    f"{r.stderr.decode(errors='replace').strip()})")
        self.addCleanup(self.ip, "netns", "del", self.ns, check=False)
        r = self.ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, check=False)
        if r.returncode != 0:
            raise unittest.SkipTest(f"cannot create a veth pair here (ip link add: "
                                    f"{r.stderr.decode(errors='replace').strip()})")
        # Deleting the namespace deletes its end and so the pair; this is for a failure before.
        self.addCleanup(self.ip, "link", "del", host_if, check=False)
        self.ip("link", "set", ns_if, "netns", self.ns)
        self.ip("addr", "add", f"{self.host_addr}/30", "dev", host_if)
        self.ip("link", "set", host_if, "up")
        self.ip_in_ns("addr", "add", f"{self.ns_addr}/30", "dev", ns_if)
        self.ip_in_ns("link", "set", ns_if, "up")
        self.ip_in_ns("link", "set", "lo", "up")

        self.dns = self.start_dns()  # origin.test -> 127.0.0.1
        self.loopback = self.start_origin("loopback")  # 127.0.0.1, local to this host
        self.public = self.start_origin("public", host=self.host_addr)  # no local range
        self.users = self.users_file({USER: PASSWORD})

    def in_ns(self):
        """The command prefix that runs a program in the namespace's network only. nsenter, not
        `ip netns exec` / `ip -n`: those also remount /sys, which fails in a chroot."""
        return ["nsenter", f"--net=/run/netns/{self.ns}"]

    def ip_in_ns(self, *args):
        r = run([*self.in_ns(), "ip", *args])
        self.assertEqual(r.returncode, 0, f"ip {' '.join(args)} in {self.ns}: {r.stderr!r}")

    def ip(self, *args, check=True):
        r = run(["ip", *args])
        if check:
            self.assertEqual(r.returncode, 0, f"ip {' '.join(args)}: {r.stderr!r}")
        return r

    def start(self, rules):
        return self.start_proxy(listeners=(("mixed", self.host_addr, {"users": self.users}),),
                                dns=self.dns, rules=rules)

    def connect_from_namespace(self, proxy, host, port):
        """SOCKS5 CONNECT from inside the namespace -> (reply, HTTP status, body, decision line
        in the proxy's log)."""
        start = proxy.log_size()
        r = run([*self.in_ns(), sys.executable, "-c", CLIENT, HERE,
                 proxy.host, str(proxy.port), host, str(port), USER, PASSWORD])
        self.assertEqual(r.returncode, 0, f"the client in the namespace failed: {r.stderr!r}")
        out = json.loads(r.stdout)
        proxy.wait_log(r"decision conn=\d+ ", start=start)
        line = decision_line(proxy.log_text()[start:])
        self.assertNotIn(" from=local", line, "the proxy took the namespace's client for a "
                                              f"local one: {line}")
        return out["rep"], out["status"], out["body"], line

    def assertRefusedAsLocal(self, proxy, host, origin):
        seen = origin.peers.qsize()
        rep, _, _, line = self.connect_from_namespace(proxy, host, origin.port)
        self.assertEqual((rep, rule_of(line)), (SOCKS5_NOT_ALLOWED, "(local destination)"),
                         f"{host}:{origin.port} from {self.ns_addr}: reply {rep:#04x}, {line}")
        self.assertEqual(origin.peers.qsize(), seen, f"{host}: the refused CONNECT reached "
                                                     "the origin")

    def assertReached(self, proxy, host, origin, rule):
        rep, status, body, line = self.connect_from_namespace(proxy, host, origin.port)
        self.assertEqual((rep, status, rule_of(line)), (SOCKS5_OK, 200, rule),
                         f"{host}:{origin.port} from {self.ns_addr}: {line}")
        self.assertTrue(body, f"{host}: empty /peer answer")

    def test_local_destinations_refused_to_a_catch_all(self):
        proxy = self.start(["rule everyone pass"])
        self.assertRefusedAsLocal(proxy, "127.0.0.1", self.loopback)
        self.assertRefusedAsLocal(proxy, "origin.test", self.loopback)  # resolves to 127.0.0.1
        self.assertReached(proxy, self.host_addr, self.public, "everyone")

    def test_a_rule_naming_local_opens_it(self):
        proxy = self.start(["rule lan pass to local", "rule everyone pass"])
        self.assertReached(proxy, "127.0.0.1", self.loopback, "lan")
        self.assertReached(proxy, "origin.test", self.loopback, "lan")
        self.assertReached(proxy, self.host_addr, self.public, "everyone")


if __name__ == "__main__":
    unittest.main()

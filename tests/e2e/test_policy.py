"""Regional policy end to end (issue 4): rules decide every connection, refusals are honest
(SOCKS5 0x02, SOCKS4 0x5B, HTTP 403 with Proxy-Status naming the rule), names are resolved only
when a rule needs the address (counted in dnsmasq's query log), `on-reload reevaluate` closes
exactly the live connections a new policy blocks, and `geoproxy check` reports what it should.

Geography on loopback: the fixture database (geo_fixtures.py) puts 127.0.N.0/24 blocks in
countries; a client binds client_addr(cc) (127.0.N.5) and servers listen on server_addr(cc)
(127.0.N.9). Which rule decided a connection is read from its "decision" log line.

Helpers written here rather than in the shared modules: dns_answer (an A query parsed down to
its addresses, to check the fixture's answer order), start_dns_with_split_names (dnsmasq whose
split names really have two A records; see SplitName) and PortTrap (a bare listening socket
that can tell, without racing, whether anyone ever connected to it).
"""

import os
import re
import socket
import struct
import unittest

import geo_fixtures
from geo_fixtures import UNMAPPED_CLIENT, client_addr, replace_file_atomically, server_addr
from harness import (ProxyTestCase, basic_auth, connect, free_port, geoproxy_bin,
                     http_connect_open, http_response, payload, recv_exact, run, socks4_open,
                     socks5_open, wait_end, wait_until)

SOCKS5_NOT_ALLOWED = 0x02
SOCKS5_HOST_UNREACHABLE = 0x04
SOCKS4_GRANTED, SOCKS4_REJECTED = 0x5A, 0x5B
NO_RULE = "(no rule)"

# Public documentation addresses: no database places them, so they are "unknown". Tests only
# send them to rules that refuse them, so nothing ever leaves the machine.
PUBLIC_V4 = "198.51.100.7"
PUBLIC_V6 = "2001:db8::7"


# ---------------------------------------------------------------------------------------------
# Local helpers


def dns_answer(port, name, timeout=1.0):
    """The IPv4 addresses a DNS server on 127.0.0.1:port answers for name, in answer order."""
    query = struct.pack(">HHHHHH", 0x5151, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query += struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(query, ("127.0.0.1", port))
        reply = s.recv(1500)
    ancount = struct.unpack(">H", reply[6:8])[0]
    pos = len(query)  # the question is echoed as sent
    addrs = []
    for _ in range(ancount):
        if reply[pos] & 0xC0 == 0xC0:  # compressed name
            pos += 2
        else:
            while reply[pos]:
                pos += 1 + reply[pos]
            pos += 1
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", reply[pos:pos + 10])
        pos += 10
        if rtype == 1:
            addrs.append(socket.inet_ntoa(reply[pos:pos + rdlen]))
        pos += rdlen
    return addrs


def query_count(dns, name, qtype="A"):
    """How many queries of qtype for name dnsmasq has logged."""
    return len(re.findall(rf"query\[{qtype}\] {re.escape(name)} from", dns.queries(),
                          flags=re.IGNORECASE))


class PortTrap:
    """A listening socket that never accepts by itself. connected() says, without waiting,
    whether any TCP connection reached it: the kernel completes the handshake into the accept
    queue, so a non-blocking accept finds every connection ever made."""

    def __init__(self, host, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.host, self.port = self.sock.getsockname()
        self.accepted = 0

    def connected(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return self.accepted
            conn.close()
            self.accepted += 1

    def close(self):
        self.sock.close()


def decision_rule(text):
    """The rule named in the first decision line of a log excerpt (quotes removed)."""
    m = re.search(r"decision conn=\d+ [^\n]*?rule=(\"[^\"]*\"|\S+)", text)
    return m.group(1).strip('"') if m else None


def parse_curl_head(out):
    """curl -i output -> (status, [(lower-case name, value)], body)."""
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return status, headers, body


class PolicyTestCase(ProxyTestCase):
    """Starts geoproxy with the fixture country database and asks it for decisions."""

    def start_policy(self, rules, *, dns=None, listeners=(("mixed", "127.0.0.1"),), extra=()):
        if not hasattr(self, "_db"):
            self._db = self.geo_db()
        return self.start_proxy(listeners=listeners, dns=dns, rules=rules,
                                extra=[f"geoip country {self._db}", *extra])

    def decision_of(self, proxy, start):
        """Waits for the decision line of the connection that followed log offset 'start'."""
        proxy.wait_log(r"decision conn=\d+ ", start=start)
        return decision_rule(proxy.log_text()[start:])

    def socks5(self, proxy, host, port, *, source=None, auth=None, listener=0):
        """SOCKS5 CONNECT -> (reply code, rule that decided, socket)."""
        start = proxy.log_size()
        sock, reply = socks5_open(proxy.listeners[listener].port, host, port, source=source,
                                  auth=auth)
        self.track(sock)
        return reply[0], self.decision_of(proxy, start), sock

    def assertPasses(self, proxy, host, echo, rule, *, source=None, auth=None, listener=0,
                     what=None):
        """SOCKS5 to an echo server: granted by 'rule', and bytes come back intact."""
        what = what or f"{source or 'client'} -> {host}:{echo.port}"
        rep, decided, sock = self.socks5(proxy, host, echo.port, source=source, auth=auth,
                                         listener=listener)
        self.assertEqual((rep, decided), (0, rule), f"{what}: reply {rep:#04x} by rule "
                                                    f"{decided!r}, expected 0x00 by {rule!r}")
        data = payload(4096, seed=len(what))
        sock.sendall(data)
        self.assertEqual(recv_exact(sock, len(data)), data, f"{what}: bytes altered")
        sock.close()

    def assertBlocked(self, proxy, host, port, rule, *, source=None, auth=None, listener=0,
                      server=None, what=None):
        """SOCKS5 refused with 0x02 by 'rule', and (if given) the server saw no connection."""
        what = what or f"{source or 'client'} -> {host}:{port}"
        seen = server.peers.qsize() if server is not None else 0
        rep, decided, sock = self.socks5(proxy, host, port, source=source, auth=auth,
                                         listener=listener)
        self.assertEqual((rep, decided), (SOCKS5_NOT_ALLOWED, rule),
                         f"{what}: reply {rep:#04x} by rule {decided!r}, expected 0x02 by "
                         f"{rule!r}")
        end, data = wait_end(sock, 5)
        self.assertNotEqual(end, "open", f"{what}: connection left open after the refusal")
        self.assertEqual(data, b"", f"{what}: bytes after the refusal")
        if server is not None:
            self.assertEqual(server.peers.qsize(), seen,
                             f"{what}: a refused CONNECT reached the server")


# ---------------------------------------------------------------------------------------------
# 1. A client in HK is refused a destination in CN; other pairs pass


class GeoRefusal(PolicyTestCase):
    REASON = "no traffic from HK to CN"

    def setUp(self):
        self.dns = self.start_dns()
        self.proxy = self.start_policy(
            [f'rule hk-to-cn block from HK to CN reason "{self.REASON}"', "rule others pass"],
            dns=self.dns)
        self.cn = self.start_origin("cn-origin", host=server_addr("CN"))
        self.ch = self.start_origin("ch-origin", host=server_addr("CH"))

    def curl_from(self, cc, *args):
        return self.curl("--interface", client_addr(cc), *args)

    def test_curl_socks5_shows_not_allowed_by_ruleset(self):
        r = self.curl_from("HK", "--socks5", f"127.0.0.1:{self.proxy.port}",
                           f"http://{self.cn.authority}/bytes/100")
        # curl 7.88 maps SOCKS5 REP 0x02 to CURLE_PROXY (97) and prints the REP code.
        self.assertEqual(r.returncode, 97, r.stderr)
        self.assertRegex(r.stderr.decode(), r"Can't complete SOCKS5 connection to 127\.0\.3\.9\."
                                            r" \(2\)")
        self.assertEqual(r.stdout, b"")
        self.assertTrue(self.cn.peers.empty(), "a refused connection reached the CN origin")
        line = self.proxy.wait_log(r"decision conn=\d+ [^\n]*rule=hk-to-cn[^\n]*").group(0)
        self.assertIn("action=block", line)
        self.assertIn(f'reason="{self.REASON}"', line)

    def test_curl_socks5_hostname_refused_by_country_of_name(self):
        r = self.curl_from("HK", "--socks5-hostname", f"127.0.0.1:{self.proxy.port}",
                           f"http://cn.geo.test:{self.cn.port}/bytes/100")
        self.assertEqual(r.returncode, 97, r.stderr)
        self.assertRegex(r.stderr.decode(), r"Can't complete SOCKS5 connection to cn\.geo\.test"
                                            r"\. \(2\)")
        self.assertTrue(self.cn.peers.empty(), "a refused connection reached the CN origin")

    def test_curl_http_forward_gets_403_naming_rule_and_reason(self):
        r = self.curl_from("HK", "-i", "-x", f"http://127.0.0.1:{self.proxy.port}",
                           f"http://{self.cn.authority}/bytes/100")
        self.assertEqual(r.returncode, 0, r.stderr)
        status, headers, body = parse_curl_head(r.stdout)
        self.assertEqual(status, 403, r.stdout)
        self.assertProxyStatus(headers, "http_request_denied")
        self.assertRegex(", ".join(v for k, v in headers if k == "proxy-status"), r"hk-to-cn",
                         "Proxy-Status does not name the rule")
        self.assertIn(b"hk-to-cn", body, "403 body does not name the rule")
        self.assertIn(self.REASON.encode(), body, "403 body does not give the reason")
        self.assertTrue(self.cn.peers.empty(), "a refused request reached the CN origin")

    def test_curl_http_connect_gets_403(self):
        r = self.curl_from("HK", "-p", "-x", f"http://127.0.0.1:{self.proxy.port}",
                           f"http://{self.cn.authority}/bytes/100")
        self.assertEqual(r.returncode, 56, r.stderr)
        self.assertIn(b"CONNECT tunnel failed, response 403", r.stderr)
        self.assertTrue(self.cn.peers.empty(), "a refused CONNECT reached the CN origin")

    def test_raw_socks5_reply_0x02(self):
        self.assertBlocked(self.proxy, self.cn.host, self.cn.port, "hk-to-cn",
                           source=client_addr("HK"), server=self.cn)

    def test_raw_socks4_reply_0x5b_and_socks4a(self):
        for host in (self.cn.host, "cn.geo.test"):
            with self.subTest(host):
                sock, (vn, cd, _, _) = socks4_open(self.proxy.port, host, self.cn.port,
                                                   source=client_addr("HK"))
                self.track(sock)
                self.assertEqual((vn, cd), (0, SOCKS4_REJECTED))
                self.assertNotEqual(wait_end(sock, 5)[0], "open", "open after a 0x5B reply")
        sock, (vn, cd, _, _) = socks4_open(self.proxy.port, self.ch.host, self.ch.port,
                                           source=client_addr("HK"))
        self.track(sock)
        self.assertEqual((vn, cd), (0, SOCKS4_GRANTED), "HK -> CH over SOCKS4")
        self.assertTrue(self.cn.peers.empty(), "a refused CONNECT reached the CN origin")

    def test_other_pairs_pass_with_bytes_intact(self):
        n = 300_001
        socks, http = f"127.0.0.1:{self.proxy.port}", f"http://127.0.0.1:{self.proxy.port}"
        for cc, to, origin in (("HK", "CH", self.ch), ("DE", "CN", self.cn),
                               ("CN", "CN", self.cn)):
            name = f"{to.lower()}.geo.test"
            for how in (("--socks5", socks, origin.host), ("--socks5-hostname", socks, name),
                        ("-x", http, name), ("-px", http, origin.host)):
                with self.subTest(client=cc, to=to, how=how[0]):
                    r = self.curl_from(cc, how[0], how[1], f"http://{how[2]}:{origin.port}"
                                                           f"/bytes/{n}")
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(r.stdout, payload(n), "bytes altered")
        self.assertNotIn("rule=hk-to-cn", self.proxy.log_text())


# ---------------------------------------------------------------------------------------------
# 2. The matchers


class DomainRules(PolicyTestCase):
    def setUp(self):
        self.dns = self.start_dns()
        self.proxy = self.start_policy(['rule exact block to example.test reason "exact"',
                                        "rule suffix pass to .geo.test",
                                        'rule rest block reason "rest"'], dns=self.dns)
        self.ch = self.start_echo(host=server_addr("CH"))

    def test_exact_name(self):
        for name in ("example.test", "EXAMPLE.Test", "example.test."):
            with self.subTest(name):
                self.assertBlocked(self.proxy, name, 80, "exact")
        for name in ("www.example.test", "example.test.geo"):
            with self.subTest(name):
                self.assertBlocked(self.proxy, name, 80, "rest")

    def test_suffix(self):
        self.assertPasses(self.proxy, "ch.geo.test", self.ch, "suffix")
        self.assertPasses(self.proxy, "Ch.GEO.test", self.ch, "suffix")
        # The suffix covers the name itself (which does not exist: 0x04 after the decision).
        rep, rule, _ = self.socks5(self.proxy, "geo.test", self.ch.port)
        self.assertEqual((rep, rule), (SOCKS5_HOST_UNREACHABLE, "suffix"))
        for name in ("xgeo.test", "geo.test.example"):
            with self.subTest(name):
                self.assertBlocked(self.proxy, name, self.ch.port, "rest", server=self.ch)

    def test_domain_never_matches_an_address(self):
        self.assertBlocked(self.proxy, self.ch.host, self.ch.port, "rest", server=self.ch)

    def test_curl_http_by_name(self):
        origin = self.start_origin(host=server_addr("CH"))
        url = f"http://127.0.0.1:{self.proxy.port}"
        r = self.curl("-x", url, f"http://ch.geo.test:{origin.port}/bytes/5000")
        self.assertEqual((r.returncode, r.stdout), (0, payload(5000)), r.stderr)
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", "-x", url,
                      f"http://example.test:{origin.port}/bytes/5000")
        self.assertEqual(r.stdout, b"403", r.stderr)


class PortRules(PolicyTestCase):
    def test_single_port_range_and_several_values(self):
        one, ranged, other, outside = (self.start_echo() for _ in range(4))
        lo, hi = ranged.port - 3, ranged.port + 3
        for e in (one, other, outside):  # keep the range around 'ranged' only
            if lo <= e.port <= hi:
                lo, hi = (e.port + 1, hi) if e.port < ranged.port else (lo, e.port - 1)
        self.assertTrue(lo <= ranged.port <= hi)
        proxy = self.start_policy([f"rule single pass to :{one.port}",
                                   f"rule ranged pass to :{lo}-{hi}",
                                   f"rule several pass to :1 :{other.port} :65535",
                                   'rule rest block reason "rest"'])
        self.assertPasses(proxy, "127.0.0.1", one, "single")
        self.assertPasses(proxy, "127.0.0.1", ranged, "ranged")
        self.assertPasses(proxy, "127.0.0.1", other, "several")
        self.assertBlocked(proxy, "127.0.0.1", outside.port, "rest", server=outside)

    def test_negated_port(self):
        allowed, refused = self.start_echo(), self.start_echo()
        proxy = self.start_policy([f'rule not-that-port block to !:{allowed.port} reason "port"',
                                   "rule rest pass"])
        self.assertBlocked(proxy, "127.0.0.1", refused.port, "not-that-port", server=refused)
        self.assertPasses(proxy, "127.0.0.1", allowed, "rest")

    def test_name_and_port_must_both_hold(self):
        dns = self.start_dns()
        web = self.start_echo(host=server_addr("CH"))
        other = self.start_echo(host=server_addr("CH"))
        proxy = self.start_policy([f"rule geo-web pass to .geo.test :{web.port}",
                                   'rule rest block reason "rest"'], dns=dns)
        self.assertPasses(proxy, "ch.geo.test", web, "geo-web")
        self.assertBlocked(proxy, "ch.geo.test", other.port, "rest", server=other)
        self.assertBlocked(proxy, server_addr("CH"), web.port, "rest")


class NetworkRules(PolicyTestCase):
    def setUp(self):
        self.dns = self.start_dns()
        self.proxy = self.start_policy(['rule from-net block from 127.0.1.0/24 reason "client"',
                                        'rule to-net block to 127.0.3.0/24 reason "destination"',
                                        "rule six pass to ::1/128",
                                        f"rule one-host pass to {server_addr('CH')}",
                                        'rule rest block reason "rest"'], dns=self.dns)

    def test_ipv4_networks_and_address(self):
        ch, cn = self.start_echo(host=server_addr("CH")), self.start_echo(host=server_addr("CN"))
        self.assertBlocked(self.proxy, ch.host, ch.port, "from-net", source=client_addr("HK"),
                           server=ch)
        self.assertBlocked(self.proxy, cn.host, cn.port, "to-net", source=client_addr("DE"),
                           server=cn)
        self.assertBlocked(self.proxy, "cn.geo.test", cn.port, "to-net", server=cn)
        self.assertPasses(self.proxy, ch.host, ch, "one-host", source=client_addr("DE"))
        self.assertPasses(self.proxy, "ch.geo.test", ch, "one-host")
        local = self.start_echo()
        self.assertBlocked(self.proxy, "127.0.0.1", local.port, "rest", server=local)

    def test_ipv6_network(self):
        six = self.start_echo(family=socket.AF_INET6)
        self.assertPasses(self.proxy, "::1", six, "six", source=client_addr("DE"))
        self.assertPasses(self.proxy, "v6.test", six, "six")


class UserRules(PolicyTestCase):
    def setUp(self):
        users = self.users_file({"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"})
        self.proxy = self.start_policy(["rule staff pass user alice carol",
                                        'rule others block reason "staff only"'],
                                       listeners=(("mixed", "127.0.0.1", {"users": users}),))
        self.echo = self.start_echo()

    def test_socks5_user_password(self):
        self.assertPasses(self.proxy, "127.0.0.1", self.echo, "staff", auth=("alice", "alice-pw"))
        self.assertPasses(self.proxy, "127.0.0.1", self.echo, "staff", auth=("carol", "carol-pw"))
        self.assertBlocked(self.proxy, "127.0.0.1", self.echo.port, "others",
                           auth=("bob", "bob-pw"), server=self.echo)

    def test_http_basic_proxy_authorization(self):
        origin = self.start_origin()
        url = f"http://127.0.0.1:{self.proxy.port}"
        r = self.curl("-x", url, "--proxy-user", "alice:alice-pw",
                      f"http://{origin.authority}/bytes/7000")
        self.assertEqual((r.returncode, r.stdout), (0, payload(7000)), r.stderr)
        seen = origin.peers.qsize()  # alice's connection
        # A raw request with the header, as curl sends it, for bob.
        sock = self.track(connect("127.0.0.1", self.proxy.port))
        sock.sendall(f"GET http://{origin.authority}/bytes/10 HTTP/1.1\r\n"
                     f"Host: {origin.authority}\r\n"
                     f"Proxy-Authorization: {basic_auth('bob', 'bob-pw')}\r\n\r\n".encode())
        status, headers, body, _ = http_response(sock)
        self.assertEqual(status, 403)
        self.assertProxyStatus(headers, "http_request_denied")
        self.assertIn(b"others", body)
        self.assertIn(b"staff only", body)
        self.assertEqual(origin.peers.qsize(), seen, "bob's request reached the origin")


class ListenerRules(PolicyTestCase):
    def test_rules_by_listener_name(self):
        echo = self.start_echo()
        proxy = self.start_policy(["rule back-door pass listener back",
                                   'rule front-desk block listener front reason "closed"',
                                   "rule rest pass"],
                                  listeners=(("mixed", "127.0.0.1", {"name": "front"}),
                                             ("socks5", "127.0.0.1", {"name": "back"})))
        self.assertBlocked(proxy, "127.0.0.1", echo.port, "front-desk", listener=0, server=echo)
        self.assertPasses(proxy, "127.0.0.1", echo, "back-door", listener=1)


class NegationRules(PolicyTestCase):
    def test_from_not_hk(self):
        ch = self.start_echo(host=server_addr("CH"))
        proxy = self.start_policy(["rule outside pass from !HK !CN",
                                   'rule rest block reason "rest"'])
        for cc in ("DE", "JP"):
            self.assertPasses(proxy, ch.host, ch, "outside", source=client_addr(cc))
        for cc in ("HK", "CN"):
            self.assertBlocked(proxy, ch.host, ch.port, "rest", source=client_addr(cc), server=ch)

    def test_to_not_suffix(self):
        dns = self.start_dns()
        local, ch = self.start_echo(), self.start_echo(host=server_addr("CH"))
        proxy = self.start_policy(["rule geo-not-cn pass to .geo.test !CN",
                                   "rule off-geo pass to !.geo.test",
                                   'rule rest block reason "rest"'], dns=dns)
        self.assertPasses(proxy, "origin.test", local, "off-geo")
        self.assertPasses(proxy, "127.0.0.1", local, "off-geo")  # an address is under no name
        self.assertPasses(proxy, "ch.geo.test", ch, "geo-not-cn")
        self.assertBlocked(proxy, "cn.geo.test", ch.port, "rest")


class RegionRules(PolicyTestCase):
    def test_builtin_and_defined_regions(self):
        dns = self.start_dns()
        de, jp = self.start_echo(host=server_addr("DE")), self.start_echo(host=server_addr("JP"))
        ch = self.start_echo(host=server_addr("CH"))
        proxy = self.start_policy(["rule to-eu pass to EU",
                                   'rule from-asia block from Asia reason "asia"',
                                   "rule to-asia pass to ASIA",
                                   'rule rest block reason "rest"'],
                                  dns=dns, extra=["region asia = HK CN JP"])
        self.assertPasses(proxy, de.host, de, "to-eu", source=client_addr("HK"))
        self.assertPasses(proxy, "de.geo.test", de, "to-eu", source=client_addr("US"))
        self.assertBlocked(proxy, ch.host, ch.port, "from-asia", source=client_addr("JP"),
                           server=ch)
        self.assertPasses(proxy, jp.host, jp, "to-asia", source=client_addr("US"))
        self.assertBlocked(proxy, ch.host, ch.port, "rest", source=client_addr("US"), server=ch)


class LocalAndUnknown(PolicyTestCase):
    def test_local_and_unknown(self):
        ch = self.start_echo(host=server_addr("CH"))
        unmapped = self.start_echo(host=UNMAPPED_CLIENT.rsplit(".", 1)[0] + ".9")
        proxy = self.start_policy(['rule unknown-dest block to unknown reason "country unknown"',
                                   "rule lan pass from local to local",
                                   'rule rest block reason "rest"'])
        # Loopback addresses are local even where the database gives them a country, and an
        # address it does not map is local, not unknown.
        self.assertPasses(proxy, ch.host, ch, "lan", source=client_addr("HK"))
        self.assertPasses(proxy, unmapped.host, unmapped, "lan", source=UNMAPPED_CLIENT)
        # Public addresses the database does not know (refused before any connection attempt).
        self.assertBlocked(proxy, PUBLIC_V4, 80, "unknown-dest")
        self.assertBlocked(proxy, PUBLIC_V6, 80, "unknown-dest")


class Ordering(PolicyTestCase):
    def test_first_match_wins(self):
        cn = self.start_echo(host=server_addr("CN"))
        ch = self.start_echo(host=server_addr("CH"))
        proxy = self.start_policy(['rule hk-cn block from HK to CN reason "first"',
                                   "rule to-cn pass to CN",
                                   "rule from-hk pass from HK",
                                   'rule last block reason "last"'])
        self.assertBlocked(proxy, cn.host, cn.port, "hk-cn", source=client_addr("HK"), server=cn)
        self.assertPasses(proxy, cn.host, cn, "to-cn", source=client_addr("DE"))
        self.assertPasses(proxy, ch.host, ch, "from-hk", source=client_addr("HK"))
        self.assertBlocked(proxy, ch.host, ch.port, "last", source=client_addr("DE"), server=ch)

    def test_same_rules_other_order(self):
        cn = self.start_echo(host=server_addr("CN"))
        proxy = self.start_policy(["rule to-cn pass to CN",
                                   'rule hk-cn block from HK to CN reason "first"'])
        self.assertPasses(proxy, cn.host, cn, "to-cn", source=client_addr("HK"))

    def test_no_matching_rule_is_blocked(self):
        cn = self.start_origin(host=server_addr("CN"))
        proxy = self.start_policy(["rule only-ch pass to CH"])
        self.assertBlocked(proxy, cn.host, cn.port, NO_RULE, server=cn)
        sock, (vn, cd, _, _) = socks4_open(proxy.port, cn.host, cn.port)
        self.track(sock)
        self.assertEqual((vn, cd), (0, SOCKS4_REJECTED))
        r = self.curl("-i", "-x", f"http://127.0.0.1:{proxy.port}",
                      f"http://{cn.authority}/bytes/10")
        status, headers, body = parse_curl_head(r.stdout)
        self.assertEqual(status, 403, r.stdout)
        self.assertProxyStatus(headers, "http_request_denied")
        self.assertIn(NO_RULE.encode(), body)
        self.assertTrue(cn.peers.empty(), "a connection no rule allowed reached the server")

    def test_no_rule_at_all_blocks_everything(self):
        echo = self.start_echo()
        proxy = self.start_policy([])
        self.assertBlocked(proxy, "127.0.0.1", echo.port, NO_RULE, server=echo)
        self.assertIn("no rule: every connection will be blocked", proxy.log_text())


class BuiltinRefusals(PolicyTestCase):
    def test_unspecified_destinations_are_refused_even_to_a_catch_all(self):
        echo = self.start_echo()
        proxy = self.start_policy(["rule everyone pass"])
        for host in ("0.0.0.0", "::"):
            with self.subTest(host):
                self.assertBlocked(proxy, host, echo.port, "(unspecified destination)",
                                   server=echo)
        self.assertEqual(echo.peers.qsize(), 0)
        self.assertIn("they would reach the proxy's own machine", proxy.log_text())


# ---------------------------------------------------------------------------------------------
# 3. Lazy resolution: names go to the resolver only when a rule needs their address


class LazyResolution(PolicyTestCase):
    def setUp(self):
        self.dns = self.start_dns()

    def settle(self):
        """Makes sure dnsmasq has logged every query the proxy sent so far: sends it a query of
        our own and waits for it in the log (dnsmasq answers and logs queries in order). Call it
        once the connections under test have their replies."""
        self.sentinels = getattr(self, "sentinels", 0) + 1
        name = f"settle-{self.sentinels}.test"
        dns_answer(self.dns.port, name)
        wait_until(lambda: query_count(self.dns, name) >= 1, timeout=5,
                   what=f"dnsmasq to log the query for {name}")

    def assertQueries(self, name, a, aaaa_max=1):
        log = self.dns.queries()
        self.assertEqual(query_count(self.dns, name, "A"), a,
                         f"A queries for {name} (dnsmasq log:\n{log})")
        self.assertLessEqual(query_count(self.dns, name, "AAAA"), aaaa_max,
                             f"AAAA queries for {name} (dnsmasq log:\n{log})")
        if a == 0:
            self.assertNotIn(name, log.lower(), f"{name} reached the resolver")

    def test_name_blocked_by_domain_rule_is_never_resolved(self):
        cn = self.start_origin(host=server_addr("CN"))
        proxy = self.start_policy(['rule geo block to .geo.test reason "geo names"',
                                   "rule rest pass"], dns=self.dns)
        self.assertBlocked(proxy, "cn.geo.test", cn.port, "geo", server=cn)
        sock, (vn, cd, _, _) = socks4_open(proxy.port, "jp.geo.test", cn.port)
        self.track(sock)
        self.assertEqual(cd, SOCKS4_REJECTED)
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", "-x",
                      f"http://127.0.0.1:{proxy.port}", f"http://de.geo.test:{cn.port}/")
        self.assertEqual(r.stdout, b"403", r.stderr)
        self.settle()
        for name in ("cn.geo.test", "jp.geo.test", "de.geo.test"):
            self.assertQueries(name, 0, 0)

    def test_name_decided_by_port_needs_no_extra_query(self):
        web = self.start_echo(host=server_addr("CH"))
        smtp = self.start_echo(host=server_addr("CH"))
        proxy = self.start_policy([f'rule no-smtp block to :25 :{smtp.port} reason "smtp"',
                                   f"rule web pass to :{web.port}",
                                   "rule cn block to CN", "rule rest pass"], dns=self.dns)
        self.assertBlocked(proxy, "ch.geo.test", smtp.port, "no-smtp", server=smtp)
        # A pass by port resolves once: for the connection, not again for the decision.
        rep, rule, sock = self.socks5(proxy, "ch.geo.test", web.port)
        self.assertEqual((rep, rule), (0, "web"))
        sock.close()
        self.settle()
        self.assertQueries("ch.geo.test", 1)

    def test_country_rule_resolves_exactly_once(self):
        cn = self.start_echo(host=server_addr("CN"))
        jp = self.start_echo(host=server_addr("JP"))
        proxy = self.start_policy(["rule cn block to CN", "rule rest pass"], dns=self.dns)
        self.assertBlocked(proxy, "cn.geo.test", cn.port, "cn", server=cn)
        self.assertPasses(proxy, "jp.geo.test", jp, "rest")
        self.settle()
        self.assertQueries("cn.geo.test", 1)
        self.assertQueries("jp.geo.test", 1)

    def test_no_resolve_skips_the_rule_without_a_query(self):
        cn = self.start_echo(host=server_addr("CN"))
        proxy = self.start_policy(["rule cn-ok pass to CN no-resolve",
                                   'rule geo block to .geo.test reason "geo names"',
                                   "rule rest pass"], dns=self.dns)
        self.assertBlocked(proxy, "cn.geo.test", cn.port, "geo", server=cn)
        # With the address given, the rule applies as usual.
        self.assertPasses(proxy, cn.host, cn, "cn-ok")
        self.settle()
        self.assertQueries("cn.geo.test", 0, 0)

    def test_no_resolve_rule_applies_once_a_later_rule_resolved(self):
        cn = self.start_echo(host=server_addr("CN"))
        jp = self.start_echo(host=server_addr("JP"))
        proxy = self.start_policy(['rule cn block to CN no-resolve reason "cn"',
                                   "rule asia pass to HK CN JP",
                                   'rule rest block reason "rest"'], dns=self.dns)
        self.assertBlocked(proxy, "cn.geo.test", cn.port, "cn", server=cn)
        self.assertPasses(proxy, "jp.geo.test", jp, "asia")
        self.settle()
        self.assertQueries("cn.geo.test", 1)
        self.assertQueries("jp.geo.test", 1)


class SplitName(PolicyTestCase):
    """A name with two addresses in two countries, and "block to CN". The proxy decides once
    per resolved address; whatever the verdict, the CN address must never be connected to.

    The fixture names split.geo.test (CH, CN) and split-cn-first.geo.test (CN, CH) have their
    answers in both orders.

    The verdict is the first address the policy lets through, whatever order the resolver
    gives them in, so both names are relayed through CH by 'rest'; only the addresses that
    rule decides are tried, so the CN address never sees a connection."""

    NAMES = {"split.geo.test": ("CH", "CN"), "split-cn-first.geo.test": ("CN", "CH")}

    def start_dns_with_split_names(self):
        return self.start_dns()

    def test_fixture_split_name_has_both_addresses(self):
        dns = self.start_dns()
        self.assertEqual(sorted(dns_answer(dns.port, "split.geo.test")),
                         [server_addr("CH"), server_addr("CN")],
                         "geo_fixtures: split.geo.test should resolve to a CH and a CN address")

    def test_split_name_goes_through_the_allowed_country_only(self):
        dns = self.start_dns_with_split_names()
        for name, order in self.NAMES.items():
            self.assertEqual(dns_answer(dns.port, name), [server_addr(cc) for cc in order],
                             f"test DNS answer order for {name}")
        ch = self.start_echo(host=server_addr("CH"))
        trap = PortTrap(server_addr("CN"), ch.port)  # same port, CN address
        self.addCleanup(trap.close)
        proxy = self.start_policy(['rule block-cn block to CN reason "cn"', "rule rest pass"],
                                  dns=dns)
        for name in self.NAMES:
            with self.subTest(name):
                start = proxy.log_size()
                rep, rule, sock = self.socks5(proxy, name, ch.port)
                self.assertEqual((rep, rule), (0, "rest"))
                sock.sendall(b"split")
                self.assertEqual(recv_exact(sock, 5), b"split")
                sock.close()
                proxy.wait_log(r"close conn=\d+ ", start=start)
                self.assertEqual(trap.connected(), 0,
                                 f"{name}: the proxy connected to the CN address "
                                 f"(verdict {rep:#04x} by {rule!r})")


# ---------------------------------------------------------------------------------------------
# 4. Reload with live connections


class ReloadLiveConnections(PolicyTestCase):
    BLOCK_CN = ['rule no-cn block to CN reason "CN closed"', "rule all pass"]

    def open_live(self, proxy):
        """Live relaying connections: to CN (SOCKS5 by address and by name, HTTP CONNECT) and to
        CH (SOCKS5, SOCKS4, HTTP CONNECT). Returns {label: socket}, each checked by a round
        trip."""
        self.ch = self.start_echo(host=server_addr("CH"))
        self.cn = self.start_echo(host=server_addr("CN"))
        src = client_addr("DE")
        live = {}
        for label, host, echo in (("cn-socks5", self.cn.host, self.cn),
                                  ("cn-socks5-name", "cn.geo.test", self.cn),
                                  ("ch-socks5", self.ch.host, self.ch),
                                  ("ch-socks5-name", "ch.geo.test", self.ch)):
            sock, reply = socks5_open(proxy.port, host, echo.port, source=src)
            self.assertSocks5Reply(reply, 0, label)
            live[label] = self.track(sock)
        sock, (_, cd, _, _) = socks4_open(proxy.port, self.ch.host, self.ch.port, source=src)
        self.assertEqual(cd, SOCKS4_GRANTED)
        live["ch-socks4"] = self.track(sock)
        for label, echo in (("cn-http-connect", self.cn), ("ch-http-connect", self.ch)):
            sock, status, _ = http_connect_open(proxy.port, echo.authority, source=src)
            self.track(sock)
            self.assertEqual(status, 200, label)
            live[label] = sock
        for label, sock in live.items():
            self.roundtrip(label, sock)
        return live

    def roundtrip(self, label, sock):
        data = f"still relaying {label}\n".encode()
        try:
            sock.sendall(data)
            got = recv_exact(sock, len(data))
        except (OSError, AssertionError) as e:
            self.fail(f"{label}: the live connection no longer relays: {e!r}")
        self.assertEqual(got, data, f"{label}: bytes altered")

    def reload(self, proxy, rules):
        start = proxy.log_size()
        replace_file_atomically(proxy.config_path,
                                ("\n".join(proxy.head_lines + rules) + "\n").encode())
        proxy.wait_log(r"policy generation 2 loaded", start=start)
        return start

    def test_reevaluate_closes_exactly_the_newly_blocked(self):
        dns = self.start_dns()
        proxy = self.start_policy(["rule all pass"], dns=dns, extra=["on-reload reevaluate"])
        live = self.open_live(proxy)
        start = self.reload(proxy, self.BLOCK_CN)
        for label, sock in live.items():
            if label.startswith("cn-"):
                end, data = wait_end(sock, 5)
                self.assertEqual((end, data), ("eof", b""),
                                 f"{label}: a connection the new policy blocks was not closed")
        # Each worker logs how many of its connections it decided again and closed: once the
        # counts cover every live connection, the survivors have been judged too.
        def counts():
            found = re.findall(r"worker \d+: policy generation 2 reevaluated (\d+) "
                               r"connection\(s\), closed (\d+)", proxy.log_text()[start:])
            checked, closed = (sum(int(f[i]) for f in found) for i in (0, 1))
            return (checked, closed) if checked >= len(live) else None

        self.assertEqual(wait_until(counts, timeout=5, what="reevaluation of every connection"),
                         (len(live), 3), "(connections reevaluated, closed)")
        for label, sock in live.items():
            if label.startswith("ch-"):
                self.roundtrip(label, sock)
        closed = re.findall(r"close conn=\d+ [^\n]*end=policy-reload[^\n]*",
                            proxy.log_text()[start:])
        self.assertEqual(len(closed), 3, "\n".join(closed))
        self.assertTrue(all("rule=no-cn" in line for line in closed), "\n".join(closed))
        self.assertBlocked(proxy, self.cn.host, self.cn.port, "no-cn", source=client_addr("DE"))

    def check_keep(self, extra):
        dns = self.start_dns()
        proxy = self.start_policy(["rule all pass"], dns=dns, extra=extra)
        live = self.open_live(proxy)
        start = self.reload(proxy, self.BLOCK_CN)
        # The new policy is in force for new connections ...
        self.assertBlocked(proxy, self.cn.host, self.cn.port, "no-cn", source=client_addr("DE"))
        # ... and the old ones keep relaying, whichever country.
        for label, sock in live.items():
            self.roundtrip(label, sock)
        for label, sock in live.items():
            self.assertEqual(wait_end(sock, 0.05)[0], "open", f"{label} was closed")
        self.assertNotIn("policy-reload", proxy.log_text()[start:])
        self.assertNotIn("reevaluated", proxy.log_text()[start:])

    def test_keep_is_the_default(self):
        self.check_keep(extra=[])

    def test_keep_explicit(self):
        self.check_keep(extra=["on-reload keep"])


# ---------------------------------------------------------------------------------------------
# 5. geoproxy check


class Check(ProxyTestCase):
    def write(self, lines):
        path = os.path.join(self.workdir(), "policy.conf")
        head = [f"listen mixed 127.0.0.1:{free_port()}", f"geoip country {self.geo_db()}"]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(head + lines) + "\n")
        self.first_rule_line = len(head) + 1
        return path

    def check(self, lines):
        path = self.write(lines)
        r = run([geoproxy_bin(), "check", "-c", path])
        return path, r.returncode, r.stdout.decode() + r.stderr.decode()

    def line_of(self, n):
        return self.first_rule_line + n

    def explain(self, path, *args):
        r = run([geoproxy_bin(), "explain", "-c", path, *args])
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def test_explain_shows_each_rule_tried_and_the_verdict(self):
        path = self.write(['rule hk-to-cn block from HK to CN reason "not from HK to CN"',
                           "rule web pass to :80 :443", "rule rest block"])
        one, two = self.line_of(0), self.line_of(1)
        rc, out, err = self.explain(path, "--from", client_addr("HK"), "--to",
                                    f"{server_addr('CN')}:443")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, rf"client +{re.escape(client_addr('HK'))}: country HK \(a local")
        self.assertRegex(out, r"destination +127\.0\.3\.9: country CN")
        self.assertRegex(out, rf"policy\.conf:{one} +hk-to-cn +MATCH")
        self.assertIn(f"verdict: block by rule 'hk-to-cn' (", out)
        self.assertIn(f"policy.conf:{one}): not from HK to CN", out)
        # A country code as the client, a name decided by its port: no DNS needed.
        rc, out, err = self.explain(path, "--from", "DE", "--to", "www.example.test:443")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, rf"policy\.conf:{one} +hk-to-cn +no match")
        self.assertRegex(out, rf"policy\.conf:{two} +web +MATCH")
        self.assertNotIn("resolving", out)
        # Bad arguments are usage errors.
        for args in (["--from", "DE", "--to", "no-port"], ["--from", "DE"],
                     ["--from", "nowhere", "--to", "1.2.3.4:80"]):
            rc, out, err = self.explain(path, *args)
            self.assertIn(rc, (1, 2), args)
            self.assertTrue(err, args)

    def test_clean_policy(self):
        path, rc, out = self.check(['rule hk-to-cn block from HK to CN reason "no"',
                                    "rule rest pass"])
        self.assertEqual(rc, 0, out)
        self.assertNotIn("warning", out)

    def test_unreachable_rules_warned(self):
        path, rc, out = self.check(["rule web pass to .example.test :443",
                                    "rule www block to www.example.test :443",
                                    "rule all pass",
                                    "rule late block to CN"])
        self.assertEqual(rc, 0, out)
        p = re.escape(path)
        self.assertRegex(out, rf"(?m)^{p}:{self.line_of(1)}:1: warning: rule 'www' can never "
                              rf"match: rule 'web' \({p}:{self.line_of(0)}\) before it matches "
                              rf"every connection it could match$")
        self.assertRegex(out, rf"(?m)^{p}:{self.line_of(3)}:1: warning: rule 'late' can never "
                              rf"match: rule 'all' \({p}:{self.line_of(2)}\) before it matches "
                              rf"every connection$")

    def test_last_rule_not_catch_all_warned(self):
        path, rc, out = self.check(['rule hk-to-cn block from HK to CN reason "no"'])
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, rf"(?m)^{re.escape(path)}:{self.line_of(0)}:1: warning: last rule "
                              r"'hk-to-cn' is not a catch-all: connections it does not match "
                              r"will be blocked \(fail closed\)$")

    def test_no_resolve_without_address_value_warned(self):
        path, rc, out = self.check(["rule names pass to .example.test no-resolve", "rule r pass"])
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, rf"(?m)^{re.escape(path)}:{self.line_of(0)}:\d+: warning: .*"
                              r"no-resolve")

    def test_errors_with_line_and_column(self):
        lines = ["rule a block to fiveeyes",
                 "rule b block from 10.1.0.0/8",
                 "rule c pass to example.test:443",
                 "rule d blok",
                 "rule e pass log loud",
                 "rule f tunnel via exit-ch",
                 "rule rest pass"]
        path, rc, out = self.check(lines)
        self.assertEqual(rc, 1, out)
        p = re.escape(path)

        def at(i, word):
            return rf"(?m)^{p}:{self.line_of(i)}:{lines[i].index(word) + 1}: "

        self.assertRegex(out, at(0, "fiveeyes") + r".*'fiveeyes'.*did you mean 'FIVE_EYES'")
        self.assertRegex(out, at(1, "10.1") + r".*did you mean 10\.0\.0\.0/8")
        self.assertRegex(out, at(2, "example") + r".*'example\.test:443'")
        self.assertRegex(out, at(3, "blok") + r".*did you mean 'block'")
        self.assertRegex(out, at(4, "loud") + r".*'loud'")
        self.assertRegex(out, at(5, "exit-ch") + r".*unknown upstream 'exit-ch'")
        self.assertNotIn("warning", out, "warnings for a configuration with errors")


if __name__ == "__main__":
    unittest.main()

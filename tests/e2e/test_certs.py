"""`geoproxy certs init-ca|issue|show`: the CLI end to end, then the real `openssl` and `curl`
judging what it made: `openssl verify` accepts the chain, `openssl x509 -text` shows the names and
usages, the pin `certs show` prints is the one openssl computes and the one curl's --pinnedpubkey
accepts, and a TLS 1.3 handshake with mutual authentication works between openssl s_server and
s_client using the certificates, while a client of another CA, an expired one or none at all is
refused.

The interoperability tests need the `openssl` command (Debian package openssl); they are skipped,
saying so, when it is missing."""

import base64
import os
import re
import shutil
import signal
import stat
import subprocess
import time
import unittest

from harness import WAIT, ProxyTestCase, free_port, geoproxy_bin, run

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
NEEDS_OPENSSL = unittest.skipUnless(OPENSSL, "the openssl command is not installed")

SHOW_KEYS = ["file", "subject", "issuer", "serial", "ca", "sans", "usage", "not_before",
             "not_after", "days_left", "status", "key_type", "pin"]
SHOW_LINE = re.compile(r"^([a-z_]+): (\S.*)$")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
PIN = re.compile(r"^sha256//[A-Za-z0-9+/]{43}=$")


def certs(*args):
    return run([geoproxy_bin(), "certs", *args])


def text(data):
    return data.decode("utf-8", "replace")


class OpensslServer:
    """`openssl s_server` on a free loopback port, its output in a file. Started with stdin a pipe
    held open (s_server stops at EOF on stdin); stop() ends it."""

    def __init__(self, workdir, args):
        self.out_path = os.path.join(workdir, f"s_server-{time.monotonic_ns()}.out")
        self.proc = None
        for _ in range(5):
            self.port = free_port()
            self.out = open(self.out_path, "wb")
            self.proc = subprocess.Popen(
                [OPENSSL, "s_server", "-accept", f"127.0.0.1:{self.port}", *args],
                stdin=subprocess.PIPE, stdout=self.out, stderr=subprocess.STDOUT)
            if self._wait_accepting():
                return
            self.stop()  # most likely the port was taken meanwhile: another one
        raise AssertionError(f"openssl s_server did not start: {self.output()[-2000:]}")

    def _wait_accepting(self):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if "ACCEPT" in self.output():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def output(self):
        with open(self.out_path, "rb") as f:
            return text(f.read())

    def wait_exit(self, timeout=WAIT):
        """Waits for a -naccept server to finish; returns its output."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"s_server still running after {timeout}s: {self.output()}")
        return self.output()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=WAIT)
        if self.proc is not None and self.proc.stdin:
            self.proc.stdin.close()
        self.out.close()


class CertsTestCase(ProxyTestCase):
    def path(self, *parts):
        return os.path.join(self.workdir(), *parts)

    def init_ca(self, name="ca", *extra):
        res = certs("init-ca", self.path(name), *extra)
        self.assertEqual(res.returncode, 0, text(res.stderr))
        return self.path(name)

    def issue(self, ca, name, *extra):
        res = certs("issue", "--ca", ca, name, *extra)
        self.assertEqual(res.returncode, 0, text(res.stderr))
        return text(res.stdout)

    def show(self, path):
        """`certs show` as a dict, checking the output's form: every line 'key: value', the keys
        in the documented order, each once."""
        res = certs("show", path)
        self.assertEqual(res.returncode, 0, text(res.stderr))
        self.assertEqual(res.stderr, b"")
        fields = {}
        lines = text(res.stdout).splitlines()
        for line in lines:
            m = SHOW_LINE.match(line)
            self.assertIsNotNone(m, f"not a 'key: value' line: {line!r}")
            self.assertNotIn(m.group(1), fields, f"key twice: {line!r}")
            fields[m.group(1)] = m.group(2)
        self.assertEqual(list(fields), SHOW_KEYS)
        return fields

    def start_s_server(self, *args):
        srv = OpensslServer(self.workdir(), args)
        self.addCleanup(srv.stop)
        return srv

    def s_client(self, port, *args, data=b"hello through mutual TLS\n"):
        return run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-brief",
                    "-verify_return_error", *args], input=data, timeout=WAIT)

    def openssl(self, *args, input=None):
        res = run([OPENSSL, *args], input=input, timeout=WAIT)
        self.assertEqual(res.returncode, 0, f"openssl {' '.join(args)}: {text(res.stderr)}")
        return res.stdout


class CliTest(CertsTestCase):
    def test_init_issue_show(self):
        ca = self.init_ca()
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(ca, "ca.key")).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(ca).st_mode), 0o700)
        out = self.issue(ca, "exit1.test", "--san", "exit1.test", "--san", "127.0.0.1",
                         "--san", "::1", "--out", self.path("nodes"))
        node_pem = self.path("nodes", "exit1.test.pem")
        node_key = self.path("nodes", "exit1.test.key")
        self.assertIn(f"{node_pem}: 'CN=exit1.test'", out)
        self.assertEqual(stat.S_IMODE(os.stat(node_key).st_mode), 0o600)
        with open(node_key, encoding="ascii") as f:
            self.assertTrue(f.read().startswith("-----BEGIN PRIVATE KEY-----\n"))
        with open(node_pem, encoding="ascii") as f:
            self.assertEqual(f.read().count("-----BEGIN"), 1)

        node = self.show(node_pem)
        ca_info = self.show(os.path.join(ca, "ca.pem"))
        self.assertEqual(node["file"], node_pem)
        self.assertEqual(node["subject"], "CN=exit1.test")
        self.assertRegex(ca_info["subject"], r"^CN=geoproxy CA [0-9a-f]{8}$")
        self.assertEqual(node["issuer"], ca_info["subject"])
        self.assertEqual(ca_info["issuer"], ca_info["subject"])
        self.assertEqual(node["sans"], "DNS:exit1.test, IP:127.0.0.1, IP:::1")
        self.assertEqual(node["usage"], "serverAuth, clientAuth")
        self.assertEqual((node["ca"], ca_info["ca"]), ("no", "yes"))
        self.assertEqual((ca_info["sans"], ca_info["usage"]), ("-", "-"))
        self.assertRegex(node["not_before"], ISO_UTC)
        self.assertRegex(node["not_after"], ISO_UTC)
        self.assertEqual(node["days_left"], "824")  # 825 days from an hour ago
        self.assertEqual(ca_info["days_left"], "3649")
        self.assertEqual(node["status"], "valid")
        self.assertEqual(node["key_type"], "EC P-256")
        self.assertRegex(node["pin"], PIN)
        self.assertIn(f"pin: {node['pin']}\n", out)  # issue prints the same pin
        self.assertNotEqual(node["pin"], ca_info["pin"])
        self.assertRegex(node["serial"], r"^[0-9A-F]{1,32}$")

        # A client: Ed25519, short-lived, in the CA directory; "alice_1" is no host name.
        self.issue(ca, "alice_1", "--ed25519", "--days", "30")
        alice = self.show(os.path.join(ca, "alice_1.pem"))
        self.assertEqual((alice["key_type"], alice["sans"], alice["days_left"]),
                         ("Ed25519", "-", "29"))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(ca, "alice_1.key")).st_mode), 0o600)

        ed_ca = self.init_ca("edca", "--ed25519", "--days", "100")
        self.assertEqual(self.show(os.path.join(ed_ca, "ca.pem"))["key_type"], "Ed25519")

    def test_refusals(self):
        ca = self.init_ca()
        with open(os.path.join(ca, "ca.pem"), "rb") as f:
            ca_pem = f.read()
        # No overwriting: the CA, and a certificate issued twice.
        res = certs("init-ca", ca)
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"{ca}/ca.pem: already exists; refusing to overwrite", text(res.stderr))
        with open(os.path.join(ca, "ca.pem"), "rb") as f:
            self.assertEqual(f.read(), ca_pem)
        self.issue(ca, "exit1")
        res = certs("issue", "--ca", ca, "exit1")
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"{ca}/exit1.pem: already exists; refusing to overwrite", text(res.stderr))

        # A CA key others can read: refused, naming the file and the mode; nothing issued.
        os.chmod(os.path.join(ca, "ca.key"), 0o644)
        res = certs("issue", "--ca", ca, "exit2")
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"{ca}/ca.key: refusing a private key that group or others can access "
                      f"(mode 0644): run 'chmod 600 {ca}/ca.key'", text(res.stderr))
        self.assertFalse(os.path.exists(os.path.join(ca, "exit2.pem")))
        os.chmod(os.path.join(ca, "ca.key"), 0o600)

        # Bad names and addresses, validity past the CA's, a missing CA, a missing file.
        failures = [
            (["issue", "--ca", ca, "../x"], "'../x' cannot name a certificate"),
            (["issue", "--ca", ca, "exit2", "--san", "10.0.0.256"],
             "subjectAltName '10.0.0.256' is neither an IP address nor a valid host name"),
            (["issue", "--ca", ca, "exit2", "--days", "4000"], "after its CA expires"),
            (["issue", "--ca", self.path("nope"), "exit2"],
             f"{self.path('nope')}/ca.pem: cannot open"),
            (["show", self.path("nope.pem")], f"{self.path('nope.pem')}: cannot open"),
            (["show", os.path.join(ca, "exit1.key")], "holds a private key, not a certificate"),
        ]
        for args, message in failures:
            with self.subTest(args=args):
                res = certs(*args)
                self.assertEqual(res.returncode, 1, text(res.stderr))
                self.assertIn(message, text(res.stderr))
                self.assertEqual(res.stdout, b"")
        self.assertFalse(os.path.exists(os.path.join(ca, "exit2.pem")))
        self.assertFalse(os.path.exists(os.path.join(ca, "exit2.key")))

    def test_usage_errors(self):
        for args in ([], ["bogus"], ["init-ca"], ["init-ca", "a", "b"],
                     ["init-ca", "x", "--days", "0"], ["init-ca", "x", "--days", "ten"],
                     ["init-ca", "x", "--days", "36501"],
                     ["issue", "exit1"], ["issue", "--ca", "x"], ["issue", "--ca", "x", "a", "b"],
                     ["issue", "--bogus"], ["show"], ["show", "a", "b"]):
            with self.subTest(args=args):
                res = run([geoproxy_bin(), "certs", *args], cwd=self.workdir())
                self.assertEqual(res.returncode, 2, text(res.stderr))
                self.assertIn("usage: geoproxy certs" if "--days" not in args else "--days takes",
                              text(res.stderr))
        self.assertEqual(os.listdir(self.workdir()), [])  # nothing was made
        res = certs("--help")
        self.assertEqual(res.returncode, 0)
        self.assertIn("geoproxy certs init-ca DIR", text(res.stdout))
        res = run([geoproxy_bin(), "--help"])
        self.assertIn("certs init-ca|issue|show", text(res.stdout))


@NEEDS_OPENSSL
class OpensslInteropTest(CertsTestCase):
    def make_pki(self, *key_args):
        ca = self.init_ca("ca", *key_args)
        self.issue(ca, "exit1.test", "--san", "exit1.test", "--san", "127.0.0.1", "--san", "::1",
                   *key_args)
        self.issue(ca, "alice", *key_args)
        return ca

    def test_verify_text_and_pin(self):
        for key_args in ([], ["--ed25519"]):
            with self.subTest(key=key_args or "ec"):
                ca = self.make_pki(*key_args)
                ca_pem = os.path.join(ca, "ca.pem")
                for name in ("exit1.test", "alice"):
                    pem = os.path.join(ca, f"{name}.pem")
                    for purpose in ("sslserver", "sslclient"):
                        out = self.openssl("verify", "-purpose", purpose, "-CAfile", ca_pem, pem)
                        self.assertEqual(text(out).strip(), f"{pem}: OK")

                node_text = text(self.openssl("x509", "-noout", "-text", "-in",
                                              os.path.join(ca, "exit1.test.pem")))
                self.assertRegex(node_text, r"Subject Alternative Name: *\n *DNS:exit1\.test, "
                                            r"IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1")
                self.assertRegex(node_text, r"Basic Constraints: critical\n *CA:FALSE")
                self.assertRegex(node_text, r"Extended Key Usage: *\n *TLS Web Server "
                                            r"Authentication, TLS Web Client Authentication")
                self.assertIn("Authority Key Identifier", node_text)
                ca_text = text(self.openssl("x509", "-noout", "-text", "-in", ca_pem))
                self.assertRegex(ca_text, r"Basic Constraints: critical\n *CA:TRUE")
                self.assertRegex(ca_text, r"Key Usage: critical\n *Certificate Sign, CRL Sign")
                self.assertIn("Subject Key Identifier", ca_text)

                # The pin, computed by openssl from the key file, is the one certs show prints.
                for name in ("exit1.test", "alice"):
                    pub = self.openssl("pkey", "-in", os.path.join(ca, f"{name}.key"), "-pubout")
                    der = self.openssl("pkey", "-pubin", "-outform", "der", input=pub)
                    digest = self.openssl("dgst", "-sha256", "-binary", input=der)
                    b64 = run(["base64"], input=digest).stdout.decode("ascii").strip()
                    self.assertEqual(b64, base64.b64encode(digest).decode("ascii"))
                    shown = self.show(os.path.join(ca, f"{name}.pem"))["pin"]
                    self.assertEqual(shown, "sha256//" + b64)
                shutil.rmtree(ca)

        # A certificate of another CA does not verify.
        ca = self.make_pki()
        other = self.init_ca("other")
        self.issue(other, "mallory")
        res = run([OPENSSL, "verify", "-CAfile", os.path.join(ca, "ca.pem"),
                   os.path.join(other, "mallory.pem")])
        self.assertNotEqual(res.returncode, 0)

    def test_mutual_tls_handshake(self):
        for key_args in ([], ["--ed25519"]):
            with self.subTest(key=key_args or "ec"):
                ca = self.make_pki(*key_args)
                srv = self.start_s_server(
                    "-naccept", "1", "-Verify", "1", "-verify_return_error",
                    "-CAfile", os.path.join(ca, "ca.pem"),
                    "-cert", os.path.join(ca, "exit1.test.pem"),
                    "-key", os.path.join(ca, "exit1.test.key"))
                res = self.s_client(srv.port, "-CAfile", os.path.join(ca, "ca.pem"),
                                    "-cert", os.path.join(ca, "alice.pem"),
                                    "-key", os.path.join(ca, "alice.key"),
                                    "-verify_hostname", "exit1.test", "-verify_ip", "127.0.0.1")
                client_out = text(res.stdout + res.stderr)
                self.assertEqual(res.returncode, 0, client_out)
                self.assertIn("Protocol version: TLSv1.3", client_out)
                self.assertIn("Verification: OK", client_out)
                self.assertIn("Peer certificate: CN = exit1.test", client_out)
                server_out = srv.wait_exit()
                self.assertIn("subject=CN = alice", server_out)  # it verified alice's certificate
                self.assertRegex(server_out, r"\n +1 server accepts that finished")
                self.assertIn("hello through mutual TLS", server_out)
                srv.stop()
                shutil.rmtree(ca)

    def test_handshake_refusals(self):
        ca = self.make_pki()
        other = self.init_ca("other")
        self.issue(other, "mallory")
        expired = self.expired_client(ca)
        server_args = ("-naccept", "1", "-Verify", "1", "-verify_return_error",
                       "-CAfile", os.path.join(ca, "ca.pem"),
                       "-cert", os.path.join(ca, "exit1.test.pem"),
                       "-key", os.path.join(ca, "exit1.test.key"))
        cases = [
            ("no certificate", [], "peer did not return a certificate"),
            ("another CA", ["-cert", os.path.join(other, "mallory.pem"),
                            "-key", os.path.join(other, "mallory.key")],
             "unable to get local issuer certificate"),
            ("expired", ["-cert", expired + ".pem", "-key", expired + ".key"],
             "certificate has expired"),
        ]
        for what, client_args, reason in cases:
            with self.subTest(client=what):
                srv = self.start_s_server(*server_args)
                self.s_client(srv.port, "-CAfile", os.path.join(ca, "ca.pem"), *client_args)
                server_out = srv.wait_exit()
                self.assertIn(reason, server_out)
                self.assertRegex(server_out, r"\n +0 server accepts that finished")
                self.assertNotIn("hello through mutual TLS", server_out)
                srv.stop()

        # The client side: a server of another CA is refused by s_client.
        srv = self.start_s_server("-naccept", "1", "-cert", os.path.join(other, "mallory.pem"),
                                  "-key", os.path.join(other, "mallory.key"))
        res = self.s_client(srv.port, "-CAfile", os.path.join(ca, "ca.pem"))
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("verify error", text(res.stdout + res.stderr))

    def expired_client(self, ca):
        """A client certificate signed by our CA that expired in 2020, made with `openssl ca`
        (certs issue only makes certificates that start now). Returns the path without suffix;
        also checks what `certs show` says of it."""
        d = self.path("oldca")
        os.makedirs(d)
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "openssl.cnf"), "w") as f:
            f.write(f"""[ca]
default_ca = old
[old]
database = {d}/index.txt
new_certs_dir = {d}
rand_serial = yes
default_md = sha256
policy = any
email_in_dn = no
copy_extensions = none
x509_extensions = client
[any]
commonName = supplied
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid:always
""")
        key, csr, pem = (os.path.join(d, "bob." + s) for s in ("key", "csr", "pem"))
        self.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=bob")
        self.openssl("ca", "-batch", "-config", os.path.join(d, "openssl.cnf"),
                     "-cert", os.path.join(ca, "ca.pem"), "-keyfile", os.path.join(ca, "ca.key"),
                     "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
                     "-in", csr, "-out", pem, "-notext")
        info = self.show(pem)
        self.assertEqual(info["status"], "expired")
        self.assertEqual(info["not_after"], "2020-02-01T00:00:00Z")
        self.assertLess(int(info["days_left"]), -365)
        return os.path.join(d, "bob")

    @unittest.skipUnless(CURL, "curl is not installed")
    def test_curl_pinned_pubkey(self):
        """The printed pin is what curl's --pinnedpubkey takes: the right one connects (mutual
        TLS, against s_server -www), another key's pin is refused (curl exit 90)."""
        ca = self.make_pki()
        srv = self.start_s_server("-www", "-Verify", "1", "-verify_return_error",
                                  "-CAfile", os.path.join(ca, "ca.pem"),
                                  "-cert", os.path.join(ca, "exit1.test.pem"),
                                  "-key", os.path.join(ca, "exit1.test.key"))
        exit_pin = self.show(os.path.join(ca, "exit1.test.pem"))["pin"]
        alice_pin = self.show(os.path.join(ca, "alice.pem"))["pin"]

        def curl(pin):
            return run([CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                        "--cacert", os.path.join(ca, "ca.pem"),
                        "--cert", os.path.join(ca, "alice.pem"),
                        "--key", os.path.join(ca, "alice.key"), "--pinnedpubkey", pin,
                        "--resolve", f"exit1.test:{srv.port}:127.0.0.1",
                        f"https://exit1.test:{srv.port}/"])

        res = curl(exit_pin)
        self.assertEqual((res.returncode, res.stdout), (0, b"200"), text(res.stderr))
        res = curl(alice_pin)
        self.assertEqual(res.returncode, 90, text(res.stderr))  # CURLE_SSL_PINNEDPUBKEYNOTMATCH
        # Both pins together (curl's ';' list) work, as when rotating a node's key.
        res = curl(f"{alice_pin};{exit_pin}")
        self.assertEqual(res.returncode, 0, text(res.stderr))


if __name__ == "__main__":
    unittest.main()

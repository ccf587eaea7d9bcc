"""Live policy reload: by editor-style rename, by Kubernetes ConfigMap-style symlink swap, by an
in-place edit of an included file, by SIGHUP; invalid policies are refused with their line
number while the previous one stays in force; and 200 reloads alternating valid and invalid
policies while 50 clients connect continuously fail none of their connections."""

import os
import re
import signal
import threading
import time
import unittest

from harness import ProxyTestCase, recv_exact, socks5_open
from geo_fixtures import replace_file_atomically

RELOADS = 200
CLIENTS = 50


class Reload(ProxyTestCase):
    def write_policy(self, proxy, rules, path=None, atomically=True):
        """Rewrites the proxy's configuration (same listeners and settings, new rules)."""
        text = ("\n".join(proxy.head_lines + list(rules)) + "\n").encode()
        path = path or proxy.config_path
        if atomically:
            replace_file_atomically(path, text)
        else:
            with open(path, "wb") as f:
                f.write(text)

    def rule_of_new_connection(self, proxy, echo):
        start = proxy.log_size()
        sock, reply = socks5_open(proxy.port, echo.host, echo.port)
        with sock:
            self.assertSocks5Reply(reply, 0, "new connection")
        return proxy.wait_log(r"decision conn=\d+ .*rule=(\S+)", start=start).group(1)

    def test_editor_rename_and_invalid_edit(self):
        echo = self.start_echo()
        proxy = self.start_proxy(rules=["rule first pass"])
        self.assertEqual(self.rule_of_new_connection(proxy, echo), "first")

        start = proxy.log_size()
        self.write_policy(proxy, ["rule second pass"])
        proxy.wait_log(r"policy generation 2 loaded \(file change\): 1 rule\(s\)", start=start)
        self.assertEqual(self.rule_of_new_connection(proxy, echo), "second")

        # An invalid edit: refused with file, line and column; generation 2 stays.
        start = proxy.log_size()
        self.write_policy(proxy, ["rule third pass", "rule fourth blok"])
        line_no = len(proxy.head_lines) + 2
        proxy.wait_log(rf"geoproxy\.conf:{line_no}:\d+: unknown action 'blok'", start=start)
        proxy.wait_log(r"reload \(file change\) failed: keeping policy generation 2",
                       start=start)
        self.assertEqual(self.rule_of_new_connection(proxy, echo), "second")

        # A change to the listeners cannot be applied live: refused, said so.
        start = proxy.log_size()
        replace_file_atomically(proxy.config_path, b"listen mixed 127.0.0.1:1\nrule x pass\n")
        proxy.wait_log(r"restart geoproxy to apply this", start=start)
        proxy.wait_log(r"failed: keeping policy generation 2", start=start)
        self.assertEqual(self.rule_of_new_connection(proxy, echo), "second")

    def test_configmap_symlink_swap(self):
        # The layout kubelet makes for a mounted ConfigMap: the visible file is a symlink
        # through "..data", itself a symlink to a timestamped directory swapped by rename.
        cfgdir = os.path.join(self.workdir(), "configmap")
        os.makedirs(os.path.join(cfgdir, "..2026_11_27_01"))
        os.symlink("..2026_11_27_01", os.path.join(cfgdir, "..data"))
        os.symlink("..data/geoproxy.conf", os.path.join(cfgdir, "geoproxy.conf"))
        echo = self.start_echo()
        proxy = self.start_proxy(rules=["rule from-v1 pass"],
                                 config_path=os.path.join(cfgdir, "geoproxy.conf"))
        self.assertEqual(self.rule_of_new_connection(proxy, echo), "from-v1")

        start = proxy.log_size()
        os.makedirs(os.path.join(cfgdir, "..2026_11_27_02"))
        self.write_policy(proxy, ["rule from-v2 pass"],
                          path=os.path.join(cfgdir, "..2026_11_27_02", "geoproxy.conf"),
                          atomically=False)
        os.symlink("..2026_11_27_02", os.path.join(cfgdir, "..data_tmp"))
        os.rename(os.path.join(cfgdir, "..data_tmp"), os.path.join(cfgdir, "..data"))
        proxy.wait_log(r"policy generation 2 loaded \(file change\)", start=start)
        self.assertEqual(self.rule_of_new_connection(proxy, echo), "from-v2")

    def test_included_file_edited_in_place(self):
        incdir = os.path.join(self.workdir(), "conf.d")
        os.makedirs(incdir)
        inc = os.path.join(incdir, "rules.conf")
        with open(inc, "w") as f:
            f.write("rule included-v1 pass\n")
        echo = self.start_echo()
        proxy = self.start_proxy(rules=[f"include {inc}"])
        self.assertEqual(self.rule_of_new_connection(proxy, echo), "included-v1")
        start = proxy.log_size()
        with open(inc, "w") as f:  # in place: same inode
            f.write("rule included-v2 pass\n")
        proxy.wait_log(r"policy generation 2 loaded \(file change\)", start=start)
        self.assertEqual(self.rule_of_new_connection(proxy, echo), "included-v2")

    def test_sighup_reloads_even_unchanged(self):
        echo = self.start_echo()
        proxy = self.start_proxy(rules=["rule only pass"])
        start = proxy.log_size()
        proxy.send_signal(signal.SIGHUP)
        proxy.wait_log(r"policy generation 2 loaded \(SIGHUP\)", start=start)
        self.assertEqual(self.rule_of_new_connection(proxy, echo), "only")
        # Touching a watched directory without changing a source does not reload.
        start = proxy.log_size()
        with open(os.path.join(os.path.dirname(proxy.config_path), "unrelated"), "w") as f:
            f.write("x")
        time.sleep(0.5)
        self.assertNotIn("generation 3", proxy.log_text()[start:])


class ReloadUnderLoad(ProxyTestCase):
    def test_200_reloads_while_50_clients_connect(self):
        echo = self.start_echo()
        probe = self.start_echo()
        # log none: the connections' events would make the log (read on every wait) huge.
        allow = ["rule probe pass log none", "rule everyone pass log none"]
        deny = ["rule probe block to :%d reason \"probe refused\" log none" % probe.port,
                "rule everyone pass log none"]
        broken = ["rule everyone pass log none", "rule oops blok"]
        proxy = self.start_proxy(rules=allow)
        broken_line = len(proxy.head_lines) + 2

        stop = threading.Event()
        failures, successes = [], [0] * CLIENTS

        def client(i):
            while not stop.is_set():
                try:
                    sock, reply = socks5_open(proxy.port, echo.host, echo.port, timeout=10)
                    with sock:
                        if reply[0] != 0:
                            failures.append(f"client {i}: SOCKS5 reply {reply[0]:#04x}")
                            continue
                        sock.sendall(b"0123456789abcdef")
                        if recv_exact(sock, 16) != b"0123456789abcdef":
                            failures.append(f"client {i}: echo altered")
                            continue
                    successes[i] += 1
                except Exception as e:  # noqa: BLE001 (every failure is the finding)
                    failures.append(f"client {i}: {e!r}")

        threads = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        self.addCleanup(lambda: (stop.set(), [t.join(timeout=15) for t in threads]))

        generation, refused = 1, 0
        deadline = time.monotonic() + 240
        for n in range(RELOADS):
            self.assertLess(time.monotonic(), deadline, f"200 reloads took too long (at {n})")
            start = proxy.log_size()
            if n % 2 == 1:
                Reload.write_policy(self, proxy, broken)
                proxy.wait_log(rf"geoproxy\.conf:{broken_line}:\d+: unknown action 'blok'",
                               start=start, timeout=10)
                proxy.wait_log(rf"failed: keeping policy generation {generation}\b",
                               start=start, timeout=10)
                refused += 1
                continue
            rules = deny if n % 4 == 0 else allow
            Reload.write_policy(self, proxy, rules)
            generation += 1
            proxy.wait_log(rf"policy generation {generation} loaded", start=start, timeout=10)
            # The new policy is in force for the next connection.
            sock, reply = socks5_open(proxy.port, probe.host, probe.port)
            with sock:
                expected = 0x02 if rules is deny else 0x00
                self.assertSocks5Reply(reply, expected, f"probe after reload {n}")

        stop.set()
        for t in threads:
            t.join(timeout=15)
        self.assertEqual(failures[:10], [], f"{len(failures)} client connections failed")
        self.assertEqual(refused, RELOADS // 2)
        self.assertEqual(generation, 1 + RELOADS // 2)
        self.assertTrue(all(s > 0 for s in successes), f"some clients never got through: "
                                                        f"{successes}")
        counts = re.findall(r"reload \(file change\) failed", proxy.log_text())
        self.assertEqual(len(counts), RELOADS // 2)


if __name__ == "__main__":
    unittest.main()

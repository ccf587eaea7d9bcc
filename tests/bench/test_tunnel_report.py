"""bench/tunnel.sh's report (bench/stats.awk, bench/tunnel_report.awk) and bench/tunnel_pool.sh
on made-up results.

The set-up goal of issue 5 is read from the round-by-round table: the median of geoproxy's
set-up p50 over ss-libev's in the same round, with a 95 % interval for that median. These tests
feed the report rounds whose ratios are known and check what a reader of the table is told.
"""

import os
import subprocess
import tempfile
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STATS = os.path.join(REPO, "bench", "stats.awk")
REPORT = os.path.join(REPO, "bench", "tunnel_report.awk")
PEERS = "ss-aes256gcm,ss-chacha20,trojan,geoproxy-tunnel,geoproxy-optimistic"


def setup_line(peer, rep, p50_ms, errors=0, digits=3):
    return (
        f"peer={peer} rep={rep} RESULT scenario=setup label={peer} conns=500 measured=500 "
        f"setup_p50_ms={p50_ms:.{digits}f} setup_p99_ms=0.500 reply_p50_ms=0.100 "
        f"cpu_ms_per_conn=0.250 errors={errors}"
    )


def report(ratios, failed_rounds=(), digits=3):
    """The report for rounds where ss-aes256gcm took 0.300 ms and geoproxy-optimistic the
    given multiple of it; in failed_rounds (1-based) geoproxy measured nothing (p50 0, every
    connection an error), as loadgen reports a run that failed."""
    lines = []
    for rep, r in enumerate(ratios, start=1):
        lines.append(setup_line("ss-aes256gcm", rep, 0.300, digits=digits))
        if rep in failed_rounds:
            lines.append(setup_line("geoproxy-optimistic", rep, 0.0, errors=500))
        else:
            lines.append(setup_line("geoproxy-optimistic", rep, 0.300 * r, digits=digits))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    try:
        return subprocess.run(
            ["awk", "-v", "tunnel_status=ok", "-v", f"peer_order={PEERS}", "-f", STATS,
             "-f", REPORT, path],
            check=True, capture_output=True, text=True, timeout=30).stdout
    finally:
        os.unlink(path)


def round_row(text):
    rows = [l for l in text.splitlines()
            if l.startswith("| geoproxy-optimistic / ss-aes256gcm |") and " of " in l]
    assert len(rows) == 1, text
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


class RoundByRound(unittest.TestCase):
    def test_a_wide_interval_over_one_reads_level(self):
        # sorted: 0.80 0.90 0.94 0.96 0.98 1.00 1.05 1.20 1.30; the 2nd and 8th bound the median
        row = round_row(report([1.05, 0.90, 1.30, 0.94, 0.98, 1.20, 0.80, 1.00, 0.96]))
        self.assertEqual(row[1], "0.98 (met)")
        self.assertEqual(row[2], "0.90–1.20")
        self.assertEqual(row[3], "5 of 9")
        self.assertEqual(row[4], "level: no difference these rounds can show")

    def test_rounds_all_below_one_read_faster(self):
        row = round_row(report([0.90, 0.92, 0.95, 0.91, 0.97, 0.93, 0.96, 0.94, 0.99]))
        self.assertEqual(row[1], "0.94 (met)")
        self.assertEqual(row[2], "0.91–0.97")
        self.assertEqual(row[4], "faster")

    def test_rounds_above_one_read_slower_and_missed(self):
        row = round_row(report([1.10, 1.20, 0.95, 1.15, 1.30, 1.12, 1.25, 1.18, 1.40]))
        self.assertEqual(row[1], "1.18 (**missed**)")
        self.assertEqual(row[2], "1.10–1.30")
        self.assertEqual(row[3], "1 of 9")
        self.assertEqual(row[4], "slower")

    def test_a_ratio_that_rounds_to_one_shows_the_decimal_that_decides(self):
        # 0.301 ms against 0.300 in most rounds: 1.0033, which "1.00 (**missed**)" would hide
        row = round_row(report([1.003, 1.003, 0.97, 1.003, 1.003, 1.05, 1.003, 0.99, 1.003]))
        self.assertEqual(row[1], "1.003 (**missed**)")
        self.assertEqual(row[4], "level: no difference these rounds can show")

    def test_interval_bounds_that_round_to_one_show_the_decimals_that_decide(self):
        # every round 0.9996: "1.000–1.000 ... faster" would contradict itself
        row = round_row(report([0.9996] * 9, digits=6))
        self.assertEqual(row[1], "0.9996 (met)")
        self.assertEqual(row[2], "0.9996–0.9996")
        self.assertEqual(row[4], "faster")

    def test_rounds_where_geoproxy_measured_nothing_are_not_counted_as_faster(self):
        row = round_row(report([1.10, 1.20, 1.15, 1.12, 1.26, 1.18, 1.30, 1.05, 1.40],
                               failed_rounds=(1, 2, 3)))
        # the six rounds left: 1.05 1.12 1.18 1.26 1.30 1.40
        self.assertEqual(row[1], "1.22 (**missed**)")
        self.assertEqual(row[3], "0 of 6")
        self.assertEqual(row[4], "slower")

    def test_five_rounds_are_too_few_for_an_interval(self):
        row = round_row(report([0.90, 0.95, 1.00, 1.05, 1.10]))
        self.assertEqual(row[2], "–")
        self.assertEqual(row[4], "too few rounds to tell")


class Pooling(unittest.TestCase):
    """bench/tunnel_pool.sh: the report over the rounds of several kept runs."""

    def test_two_runs_of_five_rounds_pool_into_ten(self):
        ratios = [[0.90, 0.95, 1.00, 1.05, 1.10], [0.92, 0.94, 0.96, 0.98, 0.99]]
        with tempfile.TemporaryDirectory() as top:
            dirs = []
            for run, run_ratios in enumerate(ratios):
                d = os.path.join(top, f"run{run}")
                os.mkdir(d)
                with open(os.path.join(d, "results.txt"), "w") as f:
                    for rep, r in enumerate(run_ratios, start=1):
                        f.write(setup_line("ss-aes256gcm", rep, 0.300) + "\n")
                        f.write(setup_line("geoproxy-optimistic", rep, 0.300 * r) + "\n")
                dirs.append(d)
            out = subprocess.run([os.path.join(REPO, "bench", "tunnel_pool.sh")] + dirs,
                                 check=True, capture_output=True, text=True, timeout=30).stdout
        alone, pooled = out.split("runs pooled")
        # each run alone has too few rounds for an interval
        self.assertEqual(alone.count("too few rounds to tell"), 2, alone)
        row = round_row(pooled)
        # sorted: 0.90 0.92 0.94 0.95 0.96 0.98 0.99 1.00 1.05 1.10: median 0.97, 2nd to 9th
        self.assertEqual(row[1], "0.97 (met)")
        self.assertEqual(row[2], "0.92–1.05")
        self.assertEqual(row[3], "7 of 10")

    def pool(self, *dirs):
        return subprocess.run([os.path.join(REPO, "bench", "tunnel_pool.sh"), *dirs],
                              capture_output=True, text=True, timeout=30)

    def refusal(self, results, twice=False):
        """tunnel_pool.sh's complaint about a directory whose results.txt holds 'results' (None:
        no file), given once or twice; it must exit 2."""
        with tempfile.TemporaryDirectory() as d:
            if results is not None:
                with open(os.path.join(d, "results.txt"), "w") as f:
                    f.write(results)
            run = self.pool(d, d + "/") if twice else self.pool(d)
        self.assertEqual(run.returncode, 2)
        return run.stderr

    def test_a_directory_without_results_is_refused(self):
        self.assertIn("results.txt: missing or empty", self.refusal(None))

    def test_results_without_result_lines_are_refused(self):
        self.assertIn("no result lines", self.refusal("nothing here\n"))

    def test_a_run_given_twice_is_refused(self):
        line = setup_line("ss-aes256gcm", 1, 0.300) + "\n"
        self.assertIn("given twice", self.refusal(line, twice=True))


class ABSummary(unittest.TestCase):
    """bench/tunnel_ab_report.awk: tunnel_ab.sh's summary of "SIDE RUN RATIO" lines."""

    def summary(self, lines):
        return subprocess.run(
            ["awk", "-f", STATS, "-f", os.path.join(REPO, "bench", "tunnel_ab_report.awk")],
            input="".join(f"{l}\n" for l in lines), capture_output=True, text=True, timeout=30)

    def test_each_side_pooled_with_its_interval_and_b_over_a(self):
        a = [f"A {1 + i // 3} {r}" for i, r in enumerate([1.0, 1.1, 0.9, 1.05, 0.95, 1.02])]
        b = [f"B {1 + i // 3} {r}" for i, r in enumerate([0.9, 0.8, 0.85, 0.95, 0.88, 0.92])]
        out = self.summary(a + b)
        self.assertEqual(out.returncode, 0, out.stderr)
        # A sorted: 0.90 0.95 1.00 1.02 1.05 1.10; B: 0.80 0.85 0.88 0.90 0.92 0.95 (n=6: 1st-6th)
        self.assertIn("A: median of all 6 rounds 1.010 (95 % interval 0.900–1.100; "
                      "faster than ss-aes256gcm in 2)", out.stdout)
        self.assertIn("B: median of all 6 rounds 0.890 (95 % interval 0.800–0.950; "
                      "faster than ss-aes256gcm in 6)", out.stdout)
        self.assertIn("B / A: 0.881", out.stdout)
        self.assertIn("| A 2 | 1.020 | 3 |", out.stdout)

    def test_round_ratios_leave_out_rounds_a_peer_did_not_complete(self):
        lines = [setup_line("ss-aes256gcm", rep, 0.300) for rep in (1, 2, 3, 4)]
        lines += [setup_line("geoproxy-optimistic", 1, 0.270),
                  setup_line("geoproxy-optimistic", 2, 0.0, errors=500),  # measured nothing
                  setup_line("geoproxy-optimistic", 3, 0.250, errors=3),  # some failed
                  setup_line("geoproxy-optimistic", 4, 0.330) + " crashed=1"]
        out = subprocess.run(
            ["awk", "-v", "side=B", "-v", "run=2", "-v", "peer=geoproxy-optimistic", "-f", STATS,
             "-f", os.path.join(REPO, "bench", "round_ratios.awk"), "/dev/stdin"],
            input="\n".join(lines) + "\n", check=True, capture_output=True, text=True,
            timeout=30).stdout
        self.assertEqual(out.split(), ["B", "2", "0.9"])

    def test_a_side_without_rounds_fails(self):
        out = self.summary(["A 1 1.0", "A 1 0.9"])
        self.assertEqual(out.returncode, 1)
        self.assertIn("B: no round where both peers made every connection", out.stdout)


class MedianInterval(unittest.TestCase):
    """stats.awk's median_interval against the sign test's published bounds."""

    def bounds(self, count):
        program = ('BEGIN { for (i = 1; i <= %d; i++) add("x", %d - i + 1); '
                   'print median_interval("x") }' % (count, count))
        out = subprocess.run(["awk", "-f", STATS, "-f", "/dev/stdin"], input=program,
                             check=True, capture_output=True, text=True, timeout=30).stdout
        return out.strip()

    def test_known_bounds(self):
        # k-th smallest to k-th largest of 1..n: n=6 k=1, n=9 k=2, n=15 k=4, n=27 k=8, n=36 k=12
        self.assertEqual(self.bounds(5), "")
        self.assertEqual(self.bounds(6), "1 6")
        self.assertEqual(self.bounds(9), "2 8")
        self.assertEqual(self.bounds(15), "4 12")
        self.assertEqual(self.bounds(27), "8 20")
        self.assertEqual(self.bounds(36), "12 25")

    def test_no_interval_past_a_thousand_values(self):
        # 0.5 ^ n underflows past 1,074 values: an interval there would come out reversed
        self.assertEqual(self.bounds(1000), "469 532")
        self.assertEqual(self.bounds(1100), "")


if __name__ == "__main__":
    unittest.main()

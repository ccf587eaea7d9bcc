#!/usr/bin/env bash
# Does watching geoproxy cost anything? Runs bench/run.sh's throughput and connection-rate
# scenarios against geoproxy alternately plain and --observed (admin listener on, /metrics
# scraped every second, `geoproxy tail --json` following every event), ROUNDS times each, and
# prints the medians and the observed/plain ratios. Metrics are always counted; "plain" is
# geoproxy with nobody reading them and no event follower.
#
# usage: bench/observability.sh [ROUNDS]   (default 3; each round runs both modes)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rounds="${1:-3}"
out="$(mktemp -d /tmp/geoproxy-observability.XXXXXX)"
trap 'rm -rf "$out"' EXIT

"$here/run.sh" --peer geoproxy --scenario throughput --reps 1 --duration 1 --no-install \
    >/dev/null 2>&1 || true # builds build-bench/geoproxy once
for round in $(seq "$rounds"); do
    for mode in plain observed; do
        flag=()
        [ "$mode" = observed ] && flag=(--observed)
        "$here/run.sh" --peer geoproxy --scenario throughput,connrate --reps 1 --no-build \
            --no-install "${flag[@]}" >"$out/$mode.$round" 2>&1
        echo "round $round $mode: $(grep -c 'rep 1' "$out/$mode.$round") measurements"
    done
done

# Lines look like: "  geoproxy       rep 1  throughput x8: 1234.5 MB/s, ..." and
# "  geoproxy       rep 1  connrate: 12345 conn/s, ...".
python3 - "$out" <<'PY'
import glob, os, re, statistics, sys
out = sys.argv[1]
rows = {"throughput x1 (MB/s)": r"^  geoproxy +rep 1  throughput x1: ([\d.]+) MB/s",
        "throughput x8 (MB/s)": r"^  geoproxy +rep 1  throughput x8: ([\d.]+) MB/s",
        "connections/s": r"^  geoproxy +rep 1  connrate: ([\d.]+) conn/s"}
values = {}
for path in sorted(glob.glob(os.path.join(out, "*.*"))):
    mode = os.path.basename(path).split(".")[0]
    text = open(path).read()
    for name, rx in rows.items():
        for m in re.finditer(rx, text, re.M):
            values.setdefault((mode, name), []).append(float(m.group(1)))
print(f"{'measure':22s} {'plain':>12s} {'observed':>12s} {'ratio':>7s}   runs plain | observed")
for name in rows:
    p, o = values.get(("plain", name), []), values.get(("observed", name), [])
    if not p or not o:
        print(f"{name:22s} missing")
        continue
    mp, mo = statistics.median(p), statistics.median(o)
    print(f"{name:22s} {mp:12.1f} {mo:12.1f} {mo / mp:7.3f}   {p} | {o}")
PY

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
awk '
FNR == 1 { split(FILENAME, parts, "/"); split(parts[length(parts)], m, "."); mode = m[1] }
/^  geoproxy +rep 1  throughput x1:/ { v[mode, "throughput x1 (MB/s)"] = v[mode, "throughput x1 (MB/s)"] " " $6 }
/^  geoproxy +rep 1  throughput x8:/ { v[mode, "throughput x8 (MB/s)"] = v[mode, "throughput x8 (MB/s)"] " " $6 }
/^  geoproxy +rep 1  connrate:/ { v[mode, "connections/s"] = v[mode, "connections/s"] " " $5 }
function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
    printf "%-22s %12s %12s %8s   (runs plain | observed)\n", "measure", "plain", "observed", "ratio"
    split("throughput x1 (MB/s);throughput x8 (MB/s);connections/s", names, ";")
    for (k = 1; k <= 3; k++) {
        p = median(v["plain", names[k]]); o = median(v["observed", names[k]])
        printf "%-22s %12.1f %12.1f %8.3f   (%s |%s)\n", names[k], p, o, p > 0 ? o / p : 0, v["plain", names[k]], v["observed", names[k]]
    }
}' "$out"/plain.* "$out"/observed.*

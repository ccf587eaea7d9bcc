#!/usr/bin/env bash
# Pools the rounds of several bench/tunnel.sh runs (each kept with --keep DIR) and prints
# tunnel.sh's report over all of them. A round stays a round: its peers ran one after the other
# in one run, so the round-by-round ratios and their 95 % interval are computed as in a single
# run, over more rounds. The interval takes the rounds as independent; if the runs' own
# round-by-round medians (printed first) differ by more than their intervals allow, conditions
# changed between runs and the pooled interval is too narrow. See docs/BENCHMARKS.md, "Tunnel".
#
# usage: bench/tunnel_pool.sh DIR...
set -euo pipefail

bench_dir="$(cd "$(dirname "$0")" && pwd)"
die() {
    echo "tunnel_pool.sh: $*" >&2
    exit 2
}
[ $# -gt 0 ] || die "usage: bench/tunnel_pool.sh DIR... (directories of tunnel.sh --keep runs)"
case "$1" in -h | --help) sed -n '2,8p' "$0"; exit 0 ;; esac
declare -A seen_dir
for dir in "$@"; do
    [ -s "$dir/results.txt" ] ||
        die "$dir/results.txt: missing or empty (not a tunnel.sh --keep directory?)"
    grep -q '^peer=' "$dir/results.txt" || die "$dir/results.txt: no result lines"
    real="$(realpath "$dir")"
    [ -z "${seen_dir[$real]:-}" ] || die "$dir: given twice (its rounds would count twice)"
    seen_dir[$real]=1
done

pooled="$(mktemp)"
phases="$(mktemp -d)"
trap 'rm -rf "$pooled" "$phases"' EXIT
run=0
for dir in "$@"; do
    run=$((run + 1))
    # Run k's round r becomes round k*1000+r: no two runs share a round number.
    awk -v base=$((run * 1000)) '{
        for (i = 1; i <= NF; i++)
            if ($i ~ /^rep=/)
                $i = "rep=" (base + substr($i, 5))
        print
    }' "$dir/results.txt" >>"$pooled"
    for f in "$dir"/phases/*.*.txt; do
        [ -e "$f" ] || continue
        name="$(basename "$f")"
        cat "$f" >>"$phases/${name%%.*}.txt"
    done
done
# Peers in the order the runs measured them.
order="$(grep -o '^peer=[^ ]*' "$pooled" | cut -d= -f2 | awk '!seen[$0]++' | paste -sd, -)"
status=ok
grep -q '^peer=geoproxy-tunnel ' "$pooled" || status="not selected"

report() {
    awk -v tunnel_status="$status" -v peer_order="$order" -f "$bench_dir/stats.awk" \
        -f "$bench_dir/tunnel_report.awk" "$1"
}
for dir in "$@"; do
    echo "$dir alone, set-up round by round:"
    report "$dir/results.txt" | grep '^| geoproxy-[a-z]* / ss-[a-z0-9]* | .* of ' ||
        echo "(no rounds)"
done
echo
echo "tunnel.sh runs pooled ($run): $*"
echo
report "$pooled"
if compgen -G "$phases/*.txt" >/dev/null; then
    echo
    echo "Set-up phases, all pooled connections (µs from connect(): quartiles p25 p50 p75):"
    echo
    awk -f "$bench_dir/phases.awk" "$phases"/*.txt
fi

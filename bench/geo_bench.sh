#!/usr/bin/env bash
# Geo benchmark: times `geoproxy geodb build` on the full Tor data (median of 3 runs, wall
# seconds), reports output size / input size, then runs bench/geo_bench on the result
# (geo_classify + region_list_for_country vs raw MMDB_lookup_sockaddr, single thread, the two
# interleaved in slices so machine noise hits both; and geo_db_open vs MMDB_open time).
#
# usage: bench/geo_bench.sh [-n ADDRESSES] [-r RUNS]
# env:   BUILD_DIR (default build-geobench), TOR_GEOIP / TOR_GEOIP6 (default /usr/share/tor/...),
#        WORK_DIR (default a fresh mktemp -d, removed at the end)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="${BUILD_DIR:-$root/build-geobench}"
geoip="${TOR_GEOIP:-/usr/share/tor/geoip}"
geoip6="${TOR_GEOIP6:-/usr/share/tor/geoip6}"
n=2000000
runs=3
while [[ $# -ge 2 ]]; do
    case "$1" in
    -n) n="$2" ;;
    -r) runs="$2" ;;
    *) echo "usage: $0 [-n ADDRESSES] [-r RUNS]" >&2; exit 2 ;;
    esac
    shift 2
done
work="${WORK_DIR:-}"
cleanup=0
if [[ -z "$work" ]]; then
    work="$(mktemp -d)"
    cleanup=1
fi
trap '[[ $cleanup == 1 ]] && rm -rf "$work"' EXIT

echo "== building (Release) in $build" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 >/dev/null
cc="${CC:-cc}"
"$cc" -std=c11 -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
    -I"$root" -o "$build/geo_bench" "$here/geo_bench.c" "$build/libgeoproxy_geo.a" -lmaxminddb

geoproxy="$build/geoproxy"
[[ -x "$geoproxy" ]] || geoproxy="$(find "$build" -maxdepth 2 -type f -name geoproxy -perm -u+x | head -1)"
db="$work/tor.mmdb"

echo "== timing: geoproxy geodb build -o $db $geoip $geoip6 (3 runs)" >&2
times=()
for i in 1 2 3; do
    rm -f "$db"
    t0=$(date +%s.%N)
    "$geoproxy" geodb build -o "$db" "$geoip" "$geoip6" >"$work/build.out" 2>&1
    t1=$(date +%s.%N)
    t=$(echo "$t1 - $t0" | bc -l)
    echo "   run $i: $(printf '%.3f' "$t") s" >&2
    times+=("$t")
done
build_median=$(printf '%s\n' "${times[@]}" | sort -g | sed -n 2p)
in_size=$(( $(stat -c %s "$geoip") + $(stat -c %s "$geoip6") ))
out_size=$(stat -c %s "$db")
ranges=$(cat "$geoip" "$geoip6" | grep -vc '^\s*\(#\|$\)')
ratio=$(echo "scale=4; $out_size / $in_size" | bc -l)

echo "== geo_bench -n $n -r $runs $db" >&2
"$build/geo_bench" -n "$n" -r "$runs" "$db" | tee "$work/geo_bench.out" >&2
get() { sed -n "s/^$1=\([^ ]*\).*/\1/p" "$work/geo_bench.out"; }
cps=$(get classify_lookups_per_s)
rps=$(get raw_mmdb_lookups_per_s)

verdict() { if [[ $(echo "$1" | bc -l) == 1 ]]; then echo met; else echo missed; fi; }
printf '\n'
printf '| %-44s | %-22s | %-22s | %-6s |\n' "Measure" "Result" "Target" "Status"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..24})" \
    "$(printf -- '-%.0s' {1..24})" "$(printf -- '-%.0s' {1..8})"
printf '| %-44s | %-22s | %-22s | %-6s |\n' "Tor ranges in input (geoip + geoip6)" "$ranges" "~660,000" ""
printf '| %-44s | %-22s | %-22s | %-6s |\n' "geodb build, wall s (median of 3)" \
    "$(printf '%.2f' "$build_median")" "< 10 s" "$(verdict "$build_median < 10")"
printf '| %-44s | %-22s | %-22s | %-6s |\n' "output / input size" \
    "$out_size / $in_size = $(printf '%.2f' "$ratio")" "<= 2.00" "$(verdict "$ratio <= 2")"
printf '| %-44s | %-22s | %-22s | %-6s |\n' "classify + regions, lookups/s (median of $runs)" \
    "$(printf '%.0f' "$cps")" ">= 2,000,000" "$(verdict "$cps >= 2000000")"
printf '| %-44s | %-22s | %-22s | %-6s |\n' "raw MMDB_lookup_sockaddr, lookups/s" "$(printf '%.0f' "$rps")" "(reference)" ""
printf '| %-44s | %-22s | %-22s | %-6s |\n' "classify time / raw lookup time" "$(get classify_over_raw)" "" ""
printf '| %-44s | %-22s | %-22s | %-6s |\n' "geo_db_open, ms (median of 11)" "$(get open_ms)" "" ""
printf '| %-44s | %-22s | %-22s | %-6s |\n' "MMDB_open alone, ms (median of 11)" "$(get mmdb_open_ms)" "(reference)" ""
printf '| %-44s | %-22s | %-22s | %-6s |\n' "share classified as country (all/v4/v6)" \
    "$(get country_share)/$(get country_share_v4)/$(get country_share_v6)" "" ""

#!/usr/bin/env bash
# Policy benchmark: builds a Release tree and runs bench/policy_bench, which times one decision
# (policy_decide over the compiled rules) with 1, 100 and 10,000 rules whose requests match only
# the last rule, against the linear reference evaluator. Target: median <= 1000 ns at 10,000.
#
# usage: bench/policy_bench.sh [-n DECISIONS]
# env:   BUILD_DIR (default build-policybench)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="${BUILD_DIR:-$root/build-policybench}"

echo "== building (Release) in $build" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target geoproxy_policy >/dev/null
cc="${CC:-cc}"
"$cc" -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
    -Wmissing-prototypes -I"$root" -o "$build/policy_bench" "$here/policy_bench.c" \
    "$build/libgeoproxy_policy.a" "$build/libgeoproxy_geo.a" -lmaxminddb -lcrypto

echo "== policy_bench $*" >&2
"$build/policy_bench" "$@" | tee "$build/policy_bench.out"
median=$(sed -n 's/.*median_ns_10000=\([0-9]*\).*/\1/p' "$build/policy_bench.out")
if [[ -n "$median" && "$median" -le 1000 ]]; then
    echo "10,000 rules: median ${median} ns per decision (target <= 1000 ns): met"
else
    echo "10,000 rules: median ${median:-?} ns per decision (target <= 1000 ns): missed"
fi

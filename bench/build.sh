#!/usr/bin/env bash
# Builds the benchmark's load generator and target server with the C compiler directly (they are
# not part of the main CMake build). Output: bench/build/loadgen and bench/build/target.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${BENCH_BUILD_DIR:-$here/build}"
cc="${CC:-cc}"
flags=(-std=c11 -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -Wvla
       -Wmissing-prototypes)
mkdir -p "$out"
"$cc" "${flags[@]}" -o "$out/loadgen" "$here/loadgen.c"
"$cc" "${flags[@]}" -o "$out/target" "$here/target.c"
echo "built $out/loadgen $out/target"

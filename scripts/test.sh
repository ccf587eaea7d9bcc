#!/usr/bin/env bash
# README command (b): install dependencies, build with warnings as errors, run the whole suite;
# then build again with AddressSanitizer and UndefinedBehaviorSanitizer (build-sanitize/) and run
# the whole suite once more: any memory error, leak or undefined behaviour fails it. Last, the
# libFuzzer targets (build-fuzz/, clang): every seed and regression input replayed, then 20 s of
# fuzzing per target; a crash fails the run and names its reproducer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

scripts/build.sh -DGEOPROXY_WERROR=ON
(cd "${GEOPROXY_BUILD_DIR:-build}" && ctest --output-on-failure -j 2 --timeout 300)

GEOPROXY_BUILD_DIR=build-sanitize CMAKE_BUILD_TYPE=Debug \
    scripts/build.sh -DGEOPROXY_WERROR=ON -DGEOPROXY_SANITIZE=ON
(cd build-sanitize && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j 2 --timeout 300)

scripts/fuzz.sh 20

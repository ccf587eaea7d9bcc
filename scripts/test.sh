#!/usr/bin/env bash
# README command (b): install dependencies, build with warnings as errors, run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DGEOPROXY_WERROR=ON
cd "${GEOPROXY_BUILD_DIR:-build}"
ctest --output-on-failure -j 2 --timeout 300

#!/usr/bin/env bash
# README command (a): install dependencies, build, and start geoproxy in the foreground with its
# embedded default configuration (SOCKS4/4a/5 and HTTP on 127.0.0.1:1080). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/geoproxy run "$@"

#!/usr/bin/env bash
# Installs everything geoproxy needs to build, run, test and benchmark on Debian 12.
# Idempotent: apt-get skips what is already installed. Used by the README and by .ci/run.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

packages=(
    # build
    build-essential cmake pkg-config clang clang-format
    # fuzzing (scripts/fuzz.sh): libFuzzer and clang's sanitizer runtimes, only recommended by
    # clang-14 (through libclang-common-14-dev), so --no-install-recommends leaves them out
    libclang-rt-14-dev
    # libraries (see README "Dependencies" for why each one)
    libuv1-dev libssl-dev libmaxminddb-dev libc-ares-dev libcmocka-dev node-llhttp
    # test clients and servers; openssl (the command) checks certificates and TLS handshakes;
    # microsocks is the SOCKS5 upstream the tunnel tests send names to
    python3 curl netcat-openbsd dnsmasq-base mmdb-bin openssl microsocks
    # ip netns and veth pairs: tests/e2e/test_netns.py puts a client outside the local ranges
    iproute2
    # operators' tools the tests check geoproxy against: promtool (in prometheus) reads
    # /metrics, headless chromium loads the admin dashboard
    prometheus chromium
    # real geo data for the embedded default database
    tor-geoipdb
)

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# The tests and the README's examples reach servers on this machine as "localhost", and some of
# them through programs that ask the system resolver (microsocks). Every Debian install has
# /etc/hosts with localhost, but a bare debootstrap chroot has no /etc/hosts at all; give such a
# machine Debian's default lines. A file that names localhost already is never touched.
if ! getent hosts localhost >/dev/null; then
    if [ -f /etc/hosts ] && grep -qw localhost /etc/hosts; then
        echo "install-deps.sh: warning: /etc/hosts names localhost but it does not resolve" \
            "(see /etc/nsswitch.conf); tests that reach servers by that name will fail" >&2
    else
        echo "install-deps.sh: 'localhost' does not resolve;" \
            "adding Debian's default lines to /etc/hosts"
        # a last line without its newline would be joined to ours
        if [ -s /etc/hosts ] && [ -n "$(tail -c 1 /etc/hosts)" ]; then
            echo | $SUDO tee -a /etc/hosts >/dev/null
        fi
        printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' |
            $SUDO tee -a /etc/hosts >/dev/null
        getent hosts localhost >/dev/null ||
            echo "install-deps.sh: warning: localhost still does not resolve" \
                "(see /etc/nsswitch.conf)" >&2
    fi
fi

#!/usr/bin/env bash
# geoproxy tunnel benchmark (issue 5): two-hop SOCKS5 tunnels on loopback, each a local SOCKS5
# entry that encrypts to a remote server that connects to the target, measured with the same
# load in the same run. See docs/BENCHMARKS.md, "Tunnel".
#
# usage: bench/tunnel.sh [--quick] [--peer LIST] [--scenario LIST] [--reps N] [--duration S]
#                        [--setup-reps N] [--setup-conns N] [--setup-gap-ms N] [--port-base P]
#                        [--geoproxy PATH] [--geoproxy-workers N|auto]
#                        [--no-build]
#                        [--no-install] [--keep DIR]
#   Peers (run in this order, round after round):
#     direct           no proxy (the ceiling)
#     geoproxy-1hop    geoproxy as a single-hop SOCKS5 proxy (no tunnel), for reference
#     ss-aes256gcm     shadowsocks-libev: ss-local -> ss-server, aes-256-gcm
#     ss-chacha20      shadowsocks-libev: ss-local -> ss-server, chacha20-ietf-poly1305
#     trojan           trojan client (SOCKS5) -> trojan server (TLS)
#     geoproxy-tunnel  geoproxy entry (listen socks5) -> geoproxy exit (listen tunnel, TLS; the
#                      tunnels are streams of one mux session)
#     geoproxy-optimistic  the same with 'optimistic on': the entry answers the SOCKS5 client
#                      before the exit connected, as ss-libev and trojan do
#   Scenarios: throughput (1 and 8 streams, MB/s and CPU-s/GB over both hops), setup
#   (connection set-up latency p50/p99 over sequential connections).
#   --quick           one round, 2 s windows, 100 sequential connections (about a minute)
#   --reps N          throughput rounds (default 3; the table shows medians)
#   --setup-reps N    set-up rounds (default 27: one run takes a second, and on this shared machine
#                     a run's p50 moves by 10-15 % from one minute to the next; the report gives
#                     the round-by-round ratio's 95 % interval, which 9 rounds left +-20 % wide)
#   --duration S      measured seconds per throughput run (default 5)
#   --setup-conns N   sequential connections measured per set-up run (default 500)
#   --setup-gap-ms N  pause N ms between set-up connections (default 0: back to back, so the
#                     work a peer does after one connection is paid by the next; with a gap,
#                     each connection meets an unloaded peer)
#   --port-base P     target on P..P+3, peers above it (default 23000)
#   --geoproxy PATH   use this binary instead of building build-bench/geoproxy
#   --geoproxy-workers N|auto  each geoproxy process's `workers` (default 1: one event loop per
#                     process, as ss-local, ss-server and both trojan processes run; `auto` is
#                     geoproxy's own default, one per core)
#   --no-build        do not (re)build geoproxy; use build-bench/geoproxy if it is there
#   --no-install      do not apt-get install shadowsocks-libev and trojan when missing
#   --keep DIR        write configs, certificates, logs and raw results to DIR
set -euo pipefail

bench_dir="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"
bench_name=tunnel.sh
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

all_args="$*"
all_peers="direct,geoproxy-1hop,ss-aes256gcm,ss-chacha20,trojan,geoproxy-tunnel"
all_peers="$all_peers,geoproxy-optimistic"
peers=$all_peers
scenarios="throughput,setup"
reps=3
setup_reps=27
duration=5
warmup=0.5
setup_conns=500
setup_warmup=20
setup_gap_ms=0
port_base=23000
geoproxy_bin=""
geoproxy_workers=1
build_geoproxy=1
install=1
keep=""
quick=0
payload=64
# Not a secret: both ends are this script's own processes on loopback.
password="geoproxy-bench"

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1 ;;
    --peer) peers="${2:?}"; shift ;;
    --scenario) scenarios="${2:?}"; shift ;;
    --reps) reps="${2:?}"; shift ;;
    --setup-reps) setup_reps="${2:?}"; shift ;;
    --duration) duration="${2:?}"; shift ;;
    --setup-conns) setup_conns="${2:?}"; shift ;;
    --setup-gap-ms) setup_gap_ms="${2:?}"; shift ;;
    --port-base) port_base="${2:?}"; shift ;;
    --geoproxy) geoproxy_bin="${2:?}"; shift ;;
    --geoproxy-workers) geoproxy_workers="${2:?}"; shift ;;
    --no-build) build_geoproxy=0 ;;
    --no-install) install=0 ;;
    --keep) keep="${2:?}"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
    reps=1
    setup_reps=1
    duration=2
    warmup=0.3
    setup_conns=100
    setup_warmup=10
fi
[[ "$reps" =~ ^[1-9][0-9]?$ ]] || die "--reps wants 1..99"
[[ "$setup_reps" =~ ^[1-9][0-9]?$ ]] || die "--setup-reps wants 1..99"
[[ "$duration" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration wants seconds"
[[ "$setup_conns" =~ ^[1-9][0-9]*$ ]] && [ "$setup_conns" -le 20000 ] ||
    die "--setup-conns wants 1..20000"
[[ "$port_base" =~ ^[1-9][0-9]*$ ]] && [ "$port_base" -le 32000 ] ||
    die "--port-base wants a port below 32000"
[[ "$geoproxy_workers" =~ ^([1-9][0-9]?|auto)$ ]] || die "--geoproxy-workers wants 1..99 or auto"
for s in ${scenarios//,/ }; do
    case "$s" in throughput | setup) ;; *) die "unknown scenario '$s'" ;; esac
done
for p in ${peers//,/ }; do
    [[ ",$all_peers," == *",$p,"* ]] || die "unknown peer '$p' (peers: $all_peers)"
done
want_scenario() { [[ ",$scenarios," == *",$1,"* ]]; }
want_peer() { [[ ",$peers," == *",$1,"* ]]; }

# Ports: the target's four (echo, ping, source, sink), then the peers'. A two-hop peer has its
# SOCKS5 entry on the first port and its server on the next.
geoproxy_port=$((port_base + 10))
ss_aes_port=$((port_base + 20))    # +1: ss-server
ss_chacha_port=$((port_base + 22)) # +1: ss-server
trojan_port=$((port_base + 30))    # +1: trojan server
tunnel_port=$((port_base + 40))    # +1: geoproxy exit

# ---- setup ------------------------------------------------------------------------------------

bench_setup_work tunnel
bench_lock_ports "$port_base" $(seq "$port_base" $((port_base + 3))) "$geoproxy_port" \
    "$ss_aes_port" $((ss_aes_port + 1)) "$ss_chacha_port" $((ss_chacha_port + 1)) \
    "$trojan_port" $((trojan_port + 1)) "$tunnel_port" $((tunnel_port + 1))
bench_raise_nofile 1024

if [ "$install" = 1 ]; then
    missing=()
    if { want_peer ss-aes256gcm || want_peer ss-chacha20; } && ! command -v ss-server >/dev/null
    then
        missing+=(shadowsocks-libev)
    fi
    want_peer trojan && ! command -v trojan >/dev/null && missing+=(trojan)
    bench_apt_install "${missing[@]}"
fi

bench_build_tools
geoproxy_status="not selected"
tunnel_status="not selected"
if want_peer geoproxy-1hop || want_peer geoproxy-tunnel || want_peer geoproxy-optimistic; then
    bench_build_geoproxy
    tunnel_status=$geoproxy_status
fi

# ---- configurations and certificates -----------------------------------------------------------

# trojan's server certificate: a self-signed one from openssl, so that trojan runs even when
# geoproxy does not build. The client checks it (verify, verify_hostname) against itself.
make_trojan_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$work/trojan.key" -out "$work/trojan.pem" >"$work/openssl.log" 2>&1
}

# trojan's documented example configurations (/usr/share/doc/trojan/examples), on loopback.
write_trojan_configs() {
    local ciphers tls13
    ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
    ciphers="$ciphers:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
    ciphers="$ciphers:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    tls13="TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"
    cat >"$work/trojan-server.json" <<EOF
{
    "run_type": "server",
    "local_addr": "127.0.0.1",
    "local_port": $((trojan_port + 1)),
    "remote_addr": "127.0.0.1",
    "remote_port": $port_base,
    "password": ["$password"],
    "log_level": 1,
    "ssl": {
        "cert": "$work/trojan.pem",
        "key": "$work/trojan.key",
        "key_password": "",
        "cipher": "$ciphers",
        "cipher_tls13": "$tls13",
        "prefer_server_cipher": true,
        "alpn": ["http/1.1"],
        "reuse_session": true,
        "session_ticket": false,
        "session_timeout": 600,
        "plain_http_response": "",
        "curves": "",
        "dhparam": ""
    },
    "tcp": {
        "prefer_ipv4": false,
        "no_delay": true,
        "keep_alive": true,
        "reuse_port": false,
        "fast_open": false,
        "fast_open_qlen": 20
    },
    "mysql": {"enabled": false}
}
EOF
    cat >"$work/trojan-client.json" <<EOF
{
    "run_type": "client",
    "local_addr": "127.0.0.1",
    "local_port": $trojan_port,
    "remote_addr": "127.0.0.1",
    "remote_port": $((trojan_port + 1)),
    "password": ["$password"],
    "log_level": 1,
    "ssl": {
        "verify": true,
        "verify_hostname": true,
        "cert": "$work/trojan.pem",
        "cipher": "$ciphers",
        "cipher_tls13": "$tls13",
        "sni": "localhost",
        "alpn": ["h2", "http/1.1"],
        "reuse_session": true,
        "session_ticket": false,
        "curves": ""
    },
    "tcp": {
        "no_delay": true,
        "keep_alive": true,
        "reuse_port": false,
        "fast_open": false,
        "fast_open_qlen": 20
    }
}
EOF
}

write_geoproxy_configs() {
    cat >"$work/geoproxy.conf" <<EOF
listen socks5 127.0.0.1:$geoproxy_port
rule default pass
workers $geoproxy_workers
EOF
    cat >"$work/exit.conf" <<EOF
listen tunnel 127.0.0.1:$((tunnel_port + 1)) cert $work/pki/exit.pem key $work/pki/exit.key ca $work/pki/ca/ca.pem
rule default pass
workers $geoproxy_workers
EOF
    cat >"$work/entry.conf" <<EOF
listen socks5 127.0.0.1:$tunnel_port
upstream exit tls 127.0.0.1:$((tunnel_port + 1)) ca $work/pki/ca/ca.pem cert $work/pki/entry.pem key $work/pki/entry.key server-name exit
rule all tunnel via exit
workers $geoproxy_workers
EOF
    sed 's/ server-name exit$/ server-name exit optimistic on/' "$work/entry.conf" \
        >"$work/entry-optimistic.conf"
}

# The tunnel's certificates, from geoproxy's own CA commands: the exit's names are both the
# server-name the entry asks for and its address.
make_tunnel_certs() {
    mkdir -p "$work/pki"
    {
        "$geoproxy_bin" certs init-ca "$work/pki/ca" &&
            "$geoproxy_bin" certs issue --ca "$work/pki/ca" exit --san exit --san 127.0.0.1 \
                --out "$work/pki" &&
            "$geoproxy_bin" certs issue --ca "$work/pki/ca" entry --out "$work/pki"
    } >"$work/certs.log" 2>&1
}

# Sets tunnel_status: "ok" when both configurations pass `geoproxy check` and both ends start,
# else why not. The others are measured either way.
probe_tunnel() {
    if ! make_tunnel_certs; then
        tunnel_status="not available: geoproxy certs failed ($(tail -n 1 "$work/certs.log"))"
        return 0
    fi
    if ! { "$geoproxy_bin" check -c "$work/exit.conf" && "$geoproxy_bin" check -c \
        "$work/entry.conf" && "$geoproxy_bin" check -c "$work/entry-optimistic.conf"; } \
        >"$work/tunnel-check.log" 2>&1; then
        tunnel_status="tunnel not available in this build ($(grep -m 1 ': ' \
            "$work/tunnel-check.log" | sed "s|$work/||"))"
        return 0
    fi
    if ! start_peer geoproxy-tunnel; then
        tunnel_status="tunnel not available in this build (it did not start; see"
        tunnel_status="$tunnel_status $work/geoproxy-exit.log and geoproxy-entry.log)"
    fi
    stop_peer
}

# ---- peers (hooks for measure) ----------------------------------------------------------------

# Starts a fresh instance of a peer: the server hop first, then the SOCKS5 entry.
start_peer() {
    case "$1" in
    direct) return 0 ;;
    geoproxy-1hop)
        spawn geoproxy "$geoproxy_port" "$geoproxy_bin" run -c "$work/geoproxy.conf" ;;
    ss-aes256gcm) start_ss aes "$ss_aes_port" aes-256-gcm ;;
    ss-chacha20) start_ss chacha "$ss_chacha_port" chacha20-ietf-poly1305 ;;
    trojan)
        spawn trojan-server $((trojan_port + 1)) trojan -c "$work/trojan-server.json" &&
            spawn trojan-client "$trojan_port" trojan -c "$work/trojan-client.json" ;;
    geoproxy-tunnel)
        spawn geoproxy-exit $((tunnel_port + 1)) "$geoproxy_bin" run -c "$work/exit.conf" &&
            spawn geoproxy-entry "$tunnel_port" "$geoproxy_bin" run -c "$work/entry.conf" ;;
    geoproxy-optimistic)
        spawn geoproxy-exit $((tunnel_port + 1)) "$geoproxy_bin" run -c "$work/exit.conf" &&
            spawn geoproxy-entry "$tunnel_port" "$geoproxy_bin" run -c \
                "$work/entry-optimistic.conf" ;;
    esac
}

# start_ss TAG PORT METHOD: ss-server on PORT+1, ss-local (SOCKS5) on PORT, with TCP_NODELAY as
# the others have it.
start_ss() {
    spawn "ss-server-$1" $(($2 + 1)) ss-server -s 127.0.0.1 -p $(($2 + 1)) -k "$password" \
        -m "$3" --no-delay &&
        spawn "ss-local-$1" "$2" ss-local -s 127.0.0.1 -p $(($2 + 1)) -b 127.0.0.1 -l "$2" \
            -k "$password" -m "$3" --no-delay
}

# loadgen arguments that reach target port base+OFF through a peer.
route() {
    local port
    case "$1" in
    direct)
        echo "--proto none --hop 127.0.0.1:$((port_base + $2))"
        return 0
        ;;
    geoproxy-1hop) port=$geoproxy_port ;;
    ss-aes256gcm) port=$ss_aes_port ;;
    ss-chacha20) port=$ss_chacha_port ;;
    trojan) port=$trojan_port ;;
    geoproxy-tunnel | geoproxy-optimistic) port=$tunnel_port ;;
    esac
    echo "--proto socks5 --hop 127.0.0.1:$port --target 127.0.0.1:$((port_base + $2))"
}

# ---- run --------------------------------------------------------------------------------------

bench_start_target "$port_base" 3600
started=$(date +%s)
echo "geoproxy tunnel bench: scenarios=$scenarios peers=$peers reps=$reps setup_reps=$setup_reps" \
    "duration=${duration}s" \
    "setup_conns=$setup_conns setup_gap_ms=$setup_gap_ms geoproxy_workers=$geoproxy_workers" \
    "work=$work"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  host: $(nproc) cores, $(uname -r)"
echo "command: bench/tunnel.sh $all_args"
if [ "$geoproxy_status" != "not selected" ]; then
    bench_print_geoproxy
fi
versions=""
command -v ss-server >/dev/null &&
    versions="$versions ss-libev $(ss-server -h 2>&1 | sed -n 's/^ *shadowsocks-libev //p' | head -n 1);"
command -v trojan >/dev/null &&
    versions="$versions trojan $(trojan --version 2>&1 | sed -n 's/^Welcome to trojan //p');"
echo "peer versions:${versions:- none installed}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

run_peers=()
for name in ${all_peers//,/ }; do
    want_peer "$name" || continue
    case "$name" in
    geoproxy-1hop)
        if [ "$geoproxy_status" != ok ]; then
            echo "geoproxy-1hop: $geoproxy_status"
            continue
        fi
        write_geoproxy_configs
        ;;
    geoproxy-tunnel | geoproxy-optimistic)
        if [ "$geoproxy_status" = ok ] && [ -z "${tunnel_probed:-}" ]; then
            tunnel_probed=1
            write_geoproxy_configs
            probe_tunnel
        fi
        if [ "$tunnel_status" != ok ]; then
            echo "geoproxy: $tunnel_status"
            continue
        fi
        ;;
    ss-*)
        if ! command -v ss-server >/dev/null || ! command -v ss-local >/dev/null; then
            echo "$name: shadowsocks-libev not installed, skipped"
            continue
        fi
        ;;
    trojan)
        if ! command -v trojan >/dev/null; then
            echo "trojan: not installed, skipped"
            continue
        fi
        if ! make_trojan_cert; then
            echo "trojan: openssl could not make its certificate (see $work/openssl.log), skipped"
            continue
        fi
        write_trojan_configs
        ;;
    esac
    run_peers+=("$name")
done

# Rounds go round all peers, so that a burst of load from elsewhere on this shared machine hits
# one round of every peer rather than all the runs of one. The set-up rounds come first: a set-up
# run right after a bulk transfer measures what the kernel and the target are still doing about
# it, and the more so the faster the peer's own transfer was (docs/BENCHMARKS.md, session 9).
mkdir -p "$work/phases"
if want_scenario setup; then
    for rep in $(seq "$setup_reps"); do
        for name in "${run_peers[@]}"; do
            measure "$name" "$name" "$rep" socks5 --scenario setup --conns "$setup_conns" \
                --warmup-conns "$setup_warmup" --gap-ms "$setup_gap_ms" --setup-limit 120 \
                --phases "$work/phases/$name.$rep.txt"
        done
    done
fi
if want_scenario throughput; then
    for rep in $(seq "$reps"); do
        for name in "${run_peers[@]}"; do
            for streams in 1 8; do
                measure "$name" "$name" "$rep" socks5 --scenario throughput \
                    --streams "$streams" --duration "$duration" --warmup "$warmup"
            done
        done
    done
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "finished in $(($(date +%s) - started)) s"

# ---- table ------------------------------------------------------------------------------------

echo
awk -v tunnel_status="$tunnel_status" -v peer_order="$all_peers" -f "$bench_dir/stats.awk" \
    -f "$bench_dir/tunnel_report.awk" "$results"

# Where each peer's set-up time goes: every measured connection of every round, by phase.
phase_files=()
for name in "${run_peers[@]}"; do
    compgen -G "$work/phases/$name.*.txt" >/dev/null || continue
    cat "$work/phases/$name".*.txt >"$work/phases/$name.txt"
    phase_files+=("$work/phases/$name.txt")
done
if [ "${#phase_files[@]}" -gt 0 ]; then
    echo
    echo "Set-up phases, all rounds' connections (µs from connect(): quartiles p25 p50 p75;"
    echo "method: to the SOCKS5 method reply; request: from it to the SOCKS5 reply):"
    echo
    awk -f "$bench_dir/phases.awk" "${phase_files[@]}"
fi
if [ -n "$keep" ]; then
    echo
    echo "raw results: $results"
fi

#!/usr/bin/env bash
# geoproxy benchmark: the same load against direct (no proxy), geoproxy, haproxy (plain TCP
# relay), microsocks and dante, all on loopback. See docs/BENCHMARKS.md.
#
# usage: bench/run.sh [--quick] [--scenario LIST] [--peer LIST] [--reps N] [--duration S]
#                     [--idle-conns N] [--port-base P] [--geoproxy PATH] [--no-build]
#                     [--no-install] [--keep DIR] [--observed]
#   LIST is comma-separated. Scenarios: throughput, connrate, idle.
#   Peers (always run in this order, dante last: see docs/BENCHMARKS.md): direct, haproxy,
#   geoproxy, microsocks, dante.
#   --quick           one repetition, 2 s windows, 1,000 idle connections (about a minute)
#   --reps N          repetitions of throughput and connrate (default 3; the table shows medians)
#   --duration S      measured seconds per throughput/connrate run (default 5)
#   --idle-conns N    idle connections held open (default 5000)
#   --port-base P     target on P..P+3, proxies above it (default 21000; below the ephemeral
#                     range)
#   --geoproxy PATH   use this binary instead of building build-bench/geoproxy
#   --no-build        do not (re)build geoproxy; use build-bench/geoproxy if it is there
#   --no-install      do not apt-get install missing peers
#   --keep DIR        write configs, logs and raw results to DIR (default: a temp dir, removed)
#   --observed        geoproxy runs with its admin listener while a scraper reads /metrics every
#                     second and `geoproxy tail --json` follows every event (bench/observability.sh
#                     compares this with the plain runs)
set -euo pipefail

bench_dir="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"
bench_name=run.sh
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

all_args="$*"
scenarios="throughput,connrate,idle"
peers="direct,haproxy,geoproxy,microsocks,dante"
reps=3
duration=5
warmup=0.5
idle_conns=5000
port_base=21000
geoproxy_bin=""
build_geoproxy=1
install=1
keep=""
quick=0
observed=0

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1 ;;
    --scenario) scenarios="${2:?}"; shift ;;
    --peer) peers="${2:?}"; shift ;;
    --reps) reps="${2:?}"; shift ;;
    --duration) duration="${2:?}"; shift ;;
    --idle-conns) idle_conns="${2:?}"; shift ;;
    --port-base) port_base="${2:?}"; shift ;;
    --geoproxy) geoproxy_bin="${2:?}"; shift ;;
    --no-build) build_geoproxy=0 ;;
    --no-install) install=0 ;;
    --keep) keep="${2:?}"; shift ;;
    --observed) observed=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
    reps=1
    duration=2
    warmup=0.3
    idle_conns=1000
fi
[[ "$reps" =~ ^[1-9][0-9]?$ ]] || die "--reps wants 1..99"
[[ "$duration" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration wants seconds"
[[ "$idle_conns" =~ ^[1-9][0-9]*$ ]] && [ "$idle_conns" -le 20000 ] ||
    die "--idle-conns wants 1..20000"
[[ "$port_base" =~ ^[1-9][0-9]*$ ]] && [ "$port_base" -le 32000 ] ||
    die "--port-base wants a port below 32000"
for s in ${scenarios//,/ }; do
    case "$s" in throughput | connrate | idle) ;; *) die "unknown scenario '$s'" ;; esac
done
for p in ${peers//,/ }; do
    case "$p" in direct | haproxy | geoproxy | microsocks | dante) ;; *) die "unknown peer '$p'" ;; esac
done
want_scenario() { [[ ",$scenarios," == *",$1,"* ]]; }
want_peer() { [[ ",$peers," == *",$1,"* ]]; }

# Ports: the target's four (echo, ping, source, sink), then one per proxy; haproxy gets one
# frontend per target port because it relays to a fixed backend.
geoproxy_port=$((port_base + 10))
microsocks_port=$((port_base + 20))
dante_port=$((port_base + 30))
haproxy_port=$((port_base + 40)) # +0 echo, +1 ping, +2 source, +3 sink
payload=64

# ---- setup --------------------------------------------------------------------------------

bench_setup_work bench
# Every port this run uses; the target's four, then the proxies'.
bench_lock_ports "$port_base" $(seq "$port_base" $((port_base + 3))) "$geoproxy_port" \
    "$microsocks_port" "$dante_port" $(seq "$haproxy_port" $((haproxy_port + 3)))
# Descriptors: the proxy holds two per idle connection, the loadgen and target one each.
bench_raise_nofile $((2 * idle_conns + 200))

if [ "$install" = 1 ]; then
    missing=()
    want_peer dante && ! command -v danted >/dev/null && missing+=(dante-server)
    want_peer microsocks && ! command -v microsocks >/dev/null && missing+=(microsocks)
    want_peer haproxy && ! command -v haproxy >/dev/null && missing+=(haproxy)
    bench_apt_install "${missing[@]}"
fi

bench_build_tools
geoproxy_status="not selected"
if want_peer geoproxy; then
    bench_build_geoproxy
fi

# ---- peers ------------------------------------------------------------------------------------

write_configs() {
    # haproxy asks for two descriptors per connection up front and refuses to start when the
    # limit is lower, so size maxconn to what this shell may open.
    local fds haproxy_maxconn
    fds="$(ulimit -n)"
    [ "$fds" = unlimited ] && fds=65536
    haproxy_maxconn=$(((fds - 100) / 2))
    [ "$haproxy_maxconn" -gt 30000 ] && haproxy_maxconn=30000
    cat >"$work/geoproxy.conf" <<EOF
listen mixed 127.0.0.1:$geoproxy_port
rule default pass
limit connections 20000
limit per-client-connections 0
EOF
    if [ "$observed" = 1 ]; then
        echo "admin 127.0.0.1:$((geoproxy_port + 5))" >>"$work/geoproxy.conf"
    fi
    # Dante forks; as root it needs the privileged and unprivileged users named.
    cat >"$work/danted.conf" <<EOF
logoutput: $work/danted.log
internal: 127.0.0.1 port = $dante_port
external: 127.0.0.1
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
}
socks pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
}
EOF
    {
        cat <<EOF
global
    maxconn $haproxy_maxconn
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
EOF
        local i
        for i in 0 1 2 3; do
            cat <<EOF
listen relay$i
    bind 127.0.0.1:$((haproxy_port + i))
    server target 127.0.0.1:$((port_base + i))
EOF
        done
    } >"$work/haproxy.cfg"
}

# Starts a fresh instance of a peer (nothing for direct), and for --observed its watchers.
start_peer() {
    case "$1" in
    direct) return 0 ;;
    geoproxy) spawn geoproxy "$geoproxy_port" "$geoproxy_bin" run -c "$work/geoproxy.conf" ;;
    dante) spawn dante "$dante_port" danted -f "$work/danted.conf" ;;
    microsocks) spawn microsocks "$microsocks_port" microsocks -i 127.0.0.1 -p "$microsocks_port" ;;
    haproxy) spawn haproxy $((haproxy_port + 3)) haproxy -db -f "$work/haproxy.cfg" ;;
    esac || return 1
    if [ "$1" = geoproxy ] && [ "$observed" = 1 ]; then
        local admin="127.0.0.1:$((geoproxy_port + 5))" watched=${peer_pids[0]}
        "$geoproxy_bin" tail --json --admin "$admin" >/dev/null 2>&1 9>&- &
        peer_helper_pids+=("$!")
        (while kill -0 "$watched" 2>/dev/null; do
            curl -s -o /dev/null "http://$admin/metrics"
            sleep 1
        done) 9>&- &
        peer_helper_pids+=("$!")
    fi
}

# loadgen arguments that say how to reach target port offset $2 through peer $1.
route() {
    local name=$1 off=$2
    case "$name" in
    direct) echo "--proto none --hop 127.0.0.1:$((port_base + off))" ;;
    haproxy) echo "--proto none --hop 127.0.0.1:$((haproxy_port + off))" ;;
    geoproxy) echo "--proto ${3:-socks5} --hop 127.0.0.1:$geoproxy_port" \
        "--target 127.0.0.1:$((port_base + off))" ;;
    microsocks) echo "--proto socks5 --hop 127.0.0.1:$microsocks_port" \
        "--target 127.0.0.1:$((port_base + off))" ;;
    dante) echo "--proto socks5 --hop 127.0.0.1:$dante_port" \
        "--target 127.0.0.1:$((port_base + off))" ;;
    esac
}

# ---- run --------------------------------------------------------------------------------------

write_configs
bench_start_target "$port_base" 1800

started=$(date +%s)
echo "geoproxy bench: scenarios=$scenarios peers=$peers reps=$reps duration=${duration}s" \
    "idle_conns=$idle_conns work=$work"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  host: $(nproc) cores, $(uname -r)"
echo "command: bench/run.sh $all_args"
if want_peer geoproxy; then
    bench_print_geoproxy
fi
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$observed" = 1 ]; then
    echo "observed: admin listener on, /metrics scraped every second, geoproxy tail --json" \
        "following every event"
fi

# Peers that can run here, in the fixed order (dante last: see docs/BENCHMARKS.md).
run_peers=()
for name in direct haproxy geoproxy microsocks dante; do
    want_peer "$name" || continue
    if [ "$name" = geoproxy ] && [ "$geoproxy_status" != ok ]; then
        echo "geoproxy: $geoproxy_status"
        continue
    fi
    case "$name" in
    dante) bin=danted ;;
    haproxy | microsocks) bin=$name ;;
    *) bin=true ;;
    esac
    if ! command -v "$bin" >/dev/null; then
        echo "$name: not installed, skipped"
        continue
    fi
    run_peers+=("$name")
done

# Repetitions go round all peers, so that a burst of load from elsewhere on this shared machine
# hits one round of every peer rather than all the runs of one.
for rep in $(seq "$reps"); do
    for name in "${run_peers[@]}"; do
        echo "$name (round $rep): $(ss -Htan state time-wait | wc -l) sockets in TIME_WAIT"
        if want_scenario throughput; then
            for streams in 1 8; do
                measure "$name" "$name" "$rep" socks5 --scenario throughput \
                    --streams "$streams" --duration "$duration" --warmup "$warmup"
            done
        fi
        if want_scenario connrate; then
            measure "$name" "$name" "$rep" socks5 --scenario connrate --clients 50 \
                --duration "$duration" --warmup "$warmup"
            if [ "$name" = geoproxy ]; then
                measure "$name" geoproxy-http "$rep" http --scenario connrate --clients 50 \
                    --duration "$duration" --warmup "$warmup"
            fi
        fi
    done
done
if want_scenario idle; then
    for name in "${run_peers[@]}"; do
        [ "$name" != direct ] || continue
        measure "$name" "$name" 1 socks5 --scenario idle --conns "$idle_conns" \
            --concurrency 100 --settle 1 --setup-limit 120
    done
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "finished in $(($(date +%s) - started)) s"

# ---- table ------------------------------------------------------------------------------------

echo
awk -v geoproxy_status="$geoproxy_status" -f "$bench_dir/stats.awk" -f "$bench_dir/report.awk" \
    "$results"
if [ -n "$keep" ]; then
    echo
    echo "raw results: $results"
fi

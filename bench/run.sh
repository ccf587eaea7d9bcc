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
observer_pids=()

die() {
    echo "run.sh: $*" >&2
    exit 2
}

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
target_port=$port_base
ping_port=$((port_base + 1))
source_port=$((port_base + 2))
geoproxy_port=$((port_base + 10))
microsocks_port=$((port_base + 20))
dante_port=$((port_base + 30))
haproxy_port=$((port_base + 40)) # +0 echo, +1 ping, +2 source, +3 sink
payload=64

# ---- setup --------------------------------------------------------------------------------

if [ -n "$keep" ]; then
    mkdir -p "$keep"
    work="$(cd "$keep" && pwd)"
else
    work="$(mktemp -d /tmp/geoproxy-bench.XXXXXX)"
fi
results="$work/results.txt"
: >"$results"

started_pids=()
cleanup() {
    local pid
    for pid in "${started_pids[@]}"; do
        stop_pid "$pid"
    done
    if [ -z "$keep" ]; then
        rm -rf "$work"
    fi
}

# All descendants of a process, deepest last (dante forks helpers; they are ended by PID).
descendants() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null || true); do
        echo "$child"
        descendants "$child"
    done
}

# Ends one process we started, and whatever it forked: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1 kids i
    kill -0 "$pid" 2>/dev/null || return 0
    kids="$(descendants "$pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for i in $kids; do
        kill -KILL "$i" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
trap 'exit 141' PIPE

# One run at a time on these ports, and nothing else listening on them: a stale target or proxy
# from an earlier, killed run would silently take this run's connections.
exec 9>"/tmp/geoproxy-bench-$port_base.lock"
flock -n 9 || die "another bench/run.sh is running on ports $port_base+ (lock" \
    "/tmp/geoproxy-bench-$port_base.lock); wait for it or use --port-base"
busy=""
for p in $(seq "$port_base" $((port_base + 3))) "$geoproxy_port" "$microsocks_port" \
    "$dante_port" $(seq "$haproxy_port" $((haproxy_port + 3))); do
    if ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
        busy="$busy $p"
    fi
done
[ -z "$busy" ] || die "ports already in use:$busy (ss -ltnp shows by whom); stop that" \
    "process or pick another --port-base"

# Descriptors: the proxy holds two per idle connection, the loadgen and target one each.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((2 * idle_conns + 200)) ]; then
    echo "run.sh: warning: ulimit -n is $(ulimit -n); $idle_conns idle connections need" \
        "$((2 * idle_conns + 200)) in the proxy" >&2
fi

if [ "$install" = 1 ]; then
    missing=()
    want_peer dante && ! command -v danted >/dev/null && missing+=(dante-server)
    want_peer microsocks && ! command -v microsocks >/dev/null && missing+=(microsocks)
    want_peer haproxy && ! command -v haproxy >/dev/null && missing+=(haproxy)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} (the packages' own services are not used)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >"$work/apt.log" 2>&1 ||
            { apt-get update >>"$work/apt.log" 2>&1 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" \
                    >>"$work/apt.log" 2>&1; } ||
            echo "run.sh: warning: apt-get install failed, see $work/apt.log" >&2
    fi
fi

"$bench_dir/build.sh" >/dev/null
loadgen="$bench_dir/build/loadgen"
target="$bench_dir/build/target"

geoproxy_status="not selected"
if want_peer geoproxy; then
    if [ -n "$geoproxy_bin" ]; then
        geoproxy_status="ok"
    else
        geoproxy_bin="$repo/build-bench/geoproxy"
        geoproxy_status="ok"
        if [ "$build_geoproxy" = 1 ]; then
            echo "building geoproxy (Release) in build-bench/"
            if ! { cmake -S "$repo" -B "$repo/build-bench" -DCMAKE_BUILD_TYPE=Release &&
                cmake --build "$repo/build-bench" --target geoproxy -j 2; } \
                >"$work/geoproxy-build.log" 2>&1; then
                geoproxy_status="pending: the build failed (tail of the log below)"
                tail -n 15 "$work/geoproxy-build.log" >&2
            fi
        fi
    fi
    if [ "$geoproxy_status" = ok ] && [ ! -x "$geoproxy_bin" ]; then
        geoproxy_status="pending: no binary at $geoproxy_bin"
    fi
fi

# ---- peers ------------------------------------------------------------------------------------

# Waits until something listens on 127.0.0.1:PORT (at most 10 s) while PID lives.
wait_listen() {
    local port=$1 pid=$2 i
    for i in $(seq 100); do
        if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

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

# Starts a fresh instance of a peer; sets peer_pid (0 for direct).
start_peer() {
    local name=$1 port
    peer_pid=0
    case "$name" in
    direct) return 0 ;;
    geoproxy)
        "$geoproxy_bin" run -c "$work/geoproxy.conf" >>"$work/geoproxy.log" 2>&1 9>&- &
        port=$geoproxy_port
        ;;
    dante)
        danted -f "$work/danted.conf" >>"$work/danted.out" 2>&1 9>&- &
        port=$dante_port
        ;;
    microsocks)
        microsocks -i 127.0.0.1 -p "$microsocks_port" >>"$work/microsocks.log" 2>&1 9>&- &
        port=$microsocks_port
        ;;
    haproxy)
        haproxy -db -f "$work/haproxy.cfg" >>"$work/haproxy.log" 2>&1 9>&- &
        port=$((haproxy_port + 3))
        ;;
    esac
    peer_pid=$!
    started_pids+=("$peer_pid")
    if ! wait_listen "$port" "$peer_pid"; then
        echo "run.sh: $name did not start listening on port $port; see $work/$name.*" >&2
        stop_peer
        peer_pid=-1
        return 1
    fi
    if [ "$name" = geoproxy ] && [ "$observed" = 1 ]; then
        local admin="127.0.0.1:$((geoproxy_port + 5))" watched=$peer_pid
        "$geoproxy_bin" tail --json --admin "$admin" >/dev/null 2>&1 9>&- &
        observer_pids+=("$!")
        (while kill -0 "$watched" 2>/dev/null; do
            curl -s -o /dev/null "http://$admin/metrics"
            sleep 1
        done) 9>&- &
        observer_pids+=("$!")
    fi
}

stop_peer() {
    local kept=() p
    for p in "${observer_pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    observer_pids=()
    if [ "$peer_pid" -gt 0 ]; then
        stop_pid "$peer_pid"
        # Forget it, so that the exit handler never signals a PID the system has reused.
        for p in "${started_pids[@]}"; do
            [ "$p" = "$peer_pid" ] || kept+=("$p")
        done
        started_pids=("${kept[@]}")
    fi
    peer_pid=0
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

# Runs one loadgen measurement against a fresh peer and appends its RESULT line.
# measure PEER LABEL REP PROTO SCENARIO-ARGS...
measure() {
    local name=$1 label=$2 rep=$3 proto=$4 off line rc=0
    shift 4
    case "$*" in
    *throughput*) off=2 ;;
    *) off=1 ;;
    esac
    kill -0 "$target_pid" 2>/dev/null || die "the target server exited; see $work/target.err"
    start_peer "$name" || {
        echo "peer=$label rep=$rep RESULT failed=start" >>"$results"
        return 0
    }
    local pid_arg=()
    [ "$peer_pid" -gt 0 ] && pid_arg=(--pid "$peer_pid")
    # shellcheck disable=SC2046
    line="$(timeout 300 "$loadgen" $(route "$name" "$off" "$proto") --label "$label" \
        --payload "$payload" --target-pid "$target_pid" "${pid_arg[@]}" "$@" \
        2>>"$work/loadgen.err")" || rc=$?
    if [ "$peer_pid" -gt 0 ] && ! kill -0 "$peer_pid" 2>/dev/null; then
        echo "run.sh: $label exited during the run (see $work/$name.log)" >&2
        line="$line crashed=1"
    fi
    stop_peer
    line="$(printf '%s\n' "$line" | grep '^RESULT' | tail -n 1)"
    [ -n "$line" ] || line="RESULT failed=loadgen-rc$rc"
    echo "peer=$label rep=$rep $line" >>"$results"
    printf '  %-14s rep %s  %s\n' "$label" "$rep" "$(summarize_line "$line")"
}

summarize_line() {
    local l=" $1 "
    get() { local v="${l#* $1=}"; [ "$v" = "$l" ] && echo "-" || echo "${v%% *}"; }
    case "$l" in
    *scenario=throughput*)
        echo "throughput x$(get streams): $(get mbytes_per_s) MB/s, $(get cpu_s_per_gb) CPU-s/GB," \
            "errors $(get errors)" ;;
    *scenario=connrate*)
        echo "connrate: $(get conn_per_s) conn/s, p50 $(get p50_ms) ms, p99 $(get p99_ms) ms," \
            "errors $(get errors)" ;;
    *scenario=idle*)
        echo "idle: $(get held)/$(get conns) held, $(get kib_per_conn) KiB/conn RSS," \
            "$(get pss_kib_per_conn) KiB/conn PSS, errors $(get errors)" ;;
    *) echo "$1" ;;
    esac
}

# ---- run --------------------------------------------------------------------------------------

write_configs
"$target" -p "$port_base" -b "$payload" -t 1800 >"$work/target.out" 2>"$work/target.err" 9>&- &
target_pid=$!
started_pids+=("$target_pid")
wait_listen "$((port_base + 3))" "$target_pid" || die "the target server did not start"

started=$(date +%s)
echo "geoproxy bench: scenarios=$scenarios peers=$peers reps=$reps duration=${duration}s" \
    "idle_conns=$idle_conns work=$work"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  host: $(nproc) cores, $(uname -r)"
echo "command: bench/run.sh $all_args"
if want_peer geoproxy; then
    dirty="$(git -C "$repo" status --porcelain -- proxy policy geo certs CMakeLists.txt \
        2>/dev/null | wc -l)"
    echo "geoproxy commit: $(git -C "$repo" log -1 --format=%h 2>/dev/null || echo unknown)" \
        "(uncommitted source files: $dirty)  binary: $geoproxy_bin"
    # With --no-build or --geoproxy the binary may predate the checkout: say so, with its date.
    if [ "$build_geoproxy" = 0 ] || [ "$geoproxy_bin" != "$repo/build-bench/geoproxy" ]; then
        echo "warning: this run did not build geoproxy; the commit above is the checkout's, not" \
            "necessarily the binary's (binary modified $(date -u -r "$geoproxy_bin" \
            '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo '?'))"
    fi
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
awk -v geoproxy_status="$geoproxy_status" -f "$bench_dir/report.awk" "$results"
if [ -n "$keep" ]; then
    echo
    echo "raw results: $results"
fi

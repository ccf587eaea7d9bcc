# shellcheck shell=bash disable=SC2154 # bench_name, bench_dir, repo, payload... come from the sourcing script
# Shell helpers shared by bench/run.sh and bench/tunnel.sh: the work directory, starting and
# stopping processes by PID, the port lock, installing peers, building the tools and geoproxy,
# and one loadgen measurement against a fresh peer. Sourced, never run.
#
# The sourcing script sets, before it calls anything here:
#   bench_name       the script's name, for messages ("run.sh")
#   bench_dir, repo  where bench/ and the checkout are
#   keep             a directory to keep (empty: a temporary one, removed on exit)
#   payload          the ping payload (the target's -b)
# and defines two hooks for measure():
#   start_peer NAME        start a fresh instance of peer NAME with spawn (nothing for direct);
#                          return 1 when it did not start
#   route NAME OFF PROTO   print the loadgen arguments that reach target port base+OFF
# Globals kept here: work, results, started_pids (everything started, stopped on exit),
# peer_pids (the peer under test, measured), peer_helper_pids (started with the peer, stopped
# with it, not measured), target_pid, loadgen, target.

started_pids=()
peer_pids=()
peer_helper_pids=()

die() {
    echo "$bench_name: $*" >&2
    exit 2
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

# Forgets a PID once it is stopped, so that the exit handler never signals a PID the system has
# reused.
forget_pid() {
    local kept=() p
    for p in "${started_pids[@]}"; do
        [ "$p" = "$1" ] || kept+=("$p")
    done
    started_pids=("${kept[@]}")
}

bench_cleanup() {
    local pid
    for pid in "${started_pids[@]}"; do
        stop_pid "$pid"
    done
    if [ -z "$keep" ]; then
        rm -rf "$work"
    fi
}

# Makes the work directory (DIR from --keep, else a temporary one) and sets the exit handlers:
# every process started is stopped on exit, Ctrl-C, SIGTERM or a broken pipe.
bench_setup_work() {
    if [ -n "$keep" ]; then
        mkdir -p "$keep"
        work="$(cd "$keep" && pwd)"
    else
        work="$(mktemp -d "/tmp/geoproxy-$1.XXXXXX")"
    fi
    results="$work/results.txt"
    : >"$results"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM HUP
    trap 'exit 141' PIPE
}

# One run at a time on these ports, and nothing else listening on them: a stale target or proxy
# from an earlier, killed run would silently take this run's connections.
# bench_lock_ports PORT_BASE PORT...
bench_lock_ports() {
    local base=$1 busy="" p
    shift
    exec 9>"/tmp/geoproxy-bench-$base.lock"
    flock -n 9 || die "another benchmark is running on ports $base+ (lock" \
        "/tmp/geoproxy-bench-$base.lock); wait for it or use --port-base"
    for p in "$@"; do
        if ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
            busy="$busy $p"
        fi
    done
    [ -z "$busy" ] || die "ports already in use:$busy (ss -ltnp shows by whom); stop that" \
        "process or pick another --port-base"
}

# Raises the descriptor limit; warns when it stays below NEED.
bench_raise_nofile() {
    local need=$1
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
        echo "$bench_name: warning: ulimit -n is $(ulimit -n), below the $need this run needs" >&2
    fi
}

# apt-get installs PACKAGE... (apt-get update once if the first attempt fails). The packages'
# own services are never used.
bench_apt_install() {
    [ $# -gt 0 ] || return 0
    echo "installing $* (the packages' own services are not used)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$work/apt.log" 2>&1 ||
        { apt-get update >>"$work/apt.log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$work/apt.log" 2>&1; } ||
        echo "$bench_name: warning: apt-get install failed, see $work/apt.log" >&2
}

# Builds bench/build/loadgen and bench/build/target.
bench_build_tools() {
    "$bench_dir/build.sh" >/dev/null
    loadgen="$bench_dir/build/loadgen"
    target="$bench_dir/build/target"
}

# Sets geoproxy_bin and geoproxy_status ("ok" or why not). Uses geoproxy_bin when the script
# was given --geoproxy; else builds build-bench/geoproxy (Release) unless build_geoproxy=0.
bench_build_geoproxy() {
    geoproxy_status="ok"
    if [ -n "$geoproxy_bin" ]; then
        :
    else
        geoproxy_bin="$repo/build-bench/geoproxy"
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
}

# Prints which geoproxy is measured, and warns when this run did not build it.
bench_print_geoproxy() {
    local dirty
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
}

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

# Starts the target server on PORT_BASE..+3 for at most SECONDS; sets target_pid.
bench_start_target() {
    "$target" -p "$1" -b "$payload" -t "$2" >"$work/target.out" 2>"$work/target.err" 9>&- &
    target_pid=$!
    started_pids+=("$target_pid")
    wait_listen "$(($1 + 3))" "$target_pid" || die "the target server did not start"
}

# spawn NAME PORT COMMAND...: runs COMMAND in the background (output appended to
# $work/NAME.log) as one of the peer's measured processes, and waits until PORT listens.
spawn() {
    local name=$1 port=$2 pid
    shift 2
    "$@" >>"$work/$name.log" 2>&1 9>&- &
    pid=$!
    started_pids+=("$pid")
    peer_pids+=("$pid")
    if ! wait_listen "$port" "$pid"; then
        echo "$bench_name: $name did not start listening on port $port; see $work/$name.log" >&2
        return 1
    fi
}

# Stops the peer's helpers and processes, and forgets them.
stop_peer() {
    local p
    for p in "${peer_helper_pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    peer_helper_pids=()
    for p in "${peer_pids[@]}"; do
        stop_pid "$p"
        forget_pid "$p"
    done
    peer_pids=()
}

# Runs one loadgen measurement against a fresh instance of a peer and appends its RESULT line to
# $results. Throughput goes to the target's source port, everything else to its ping port.
# measure PEER LABEL REP PROTO SCENARIO-ARGS...
measure() {
    local name=$1 label=$2 rep=$3 proto=$4 off line rc=0 p
    shift 4
    case "$*" in
    *throughput*) off=2 ;;
    *) off=1 ;;
    esac
    kill -0 "$target_pid" 2>/dev/null || die "the target server exited; see $work/target.err"
    if ! start_peer "$name"; then
        stop_peer
        echo "peer=$label rep=$rep RESULT failed=start" >>"$results"
        printf '  %-14s rep %s  did not start\n' "$label" "$rep"
        return 0
    fi
    local pid_args=()
    for p in "${peer_pids[@]}"; do
        pid_args+=(--pid "$p")
    done
    # shellcheck disable=SC2046
    line="$(timeout 300 "$loadgen" $(route "$name" "$off" "$proto") --label "$label" \
        --payload "$payload" --target-pid "$target_pid" "${pid_args[@]}" "$@" \
        2>>"$work/loadgen.err")" || rc=$?
    for p in "${peer_pids[@]}"; do
        if ! kill -0 "$p" 2>/dev/null; then
            echo "$bench_name: $label exited during the run (see $work/$name*.log)" >&2
            line="$line crashed=1"
            break
        fi
    done
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
    *scenario=setup*)
        echo "setup: $(get measured) sequential, p50 $(get setup_p50_ms) ms, p99" \
            "$(get setup_p99_ms) ms (SOCKS5 reply p50 $(get reply_p50_ms) ms), errors $(get errors)" ;;
    *scenario=idle*)
        echo "idle: $(get held)/$(get conns) held, $(get kib_per_conn) KiB/conn RSS," \
            "$(get pss_kib_per_conn) KiB/conn PSS, errors $(get errors)" ;;
    *) echo "$1" ;;
    esac
}

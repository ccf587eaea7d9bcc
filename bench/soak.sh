#!/usr/bin/env bash
# Soak: 10,000 concurrent connections through geoproxy (SOCKS5) held for a while, most of them
# idle (bench/loadgen's idle scenario) and a sample carrying a trickle of traffic
# (bench/soak_trickle.py: a few bytes each second on each, echoes checked). Samples geoproxy's
# RSS and descriptor count every second, and checks that everything closes at the end: the
# descriptors back to their baseline, RSS near it. Not run in CI (it takes minutes and 20,000
# descriptors); figures go to docs/BENCHMARKS.md ("Soak").
#
# usage: bench/soak.sh [--conns N] [--sample N] [--hold S] [--port-base P] [--geoproxy PATH]
#                      [--no-build] [--keep DIR] [--timeout S]
#   --conns N       concurrent connections in all (default 10000), sample included
#   --sample N      of which carry the trickle (default 100)
#   --hold S        seconds all of them are held open (default 60, at most 600)
#   --port-base P   target on P..P+3, geoproxy on P+10 (default 47100)
#   --geoproxy PATH measure this binary (default: build-bench/geoproxy, built in Release)
#   --no-build      do not build geoproxy (use build-bench/geoproxy as it is)
#   --keep DIR      keep the work directory (configs, logs, samples) in DIR
#   --timeout S     loadgen's per-connection no-progress timeout (default 5; bench/soak_vm.sh
#                   raises it under software emulation, where closing 10,000 takes seconds)
#
# All connections come from 127.0.0.1, so the configuration turns the per-client cap off
# (limit per-client-connections 0); 'limit connections' is raised above --conns. geoproxy needs
# two descriptors per connection: 10,000 need a hard 'ulimit -n' above 20,000 (the script raises
# the soft limit to 65536 when the hard limit allows; it warns when it cannot).
# Exit status: 0 when every connection was held and closed cleanly and the descriptors came back.
set -euo pipefail

bench_name=soak.sh
bench_dir="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"
# shellcheck source=bench/lib.sh disable=SC2034 # bench_name, repo, build_geoproxy: used by lib.sh
. "$bench_dir/lib.sh"

conns=10000
sample=100
hold=60
port_base=47100
geoproxy_bin=""
build_geoproxy=1
keep=""
conn_timeout=5
payload=64
all_args="$*"

while [ $# -gt 0 ]; do
    case "$1" in
    --conns) conns="${2:?}"; shift ;;
    --sample) sample="${2:?}"; shift ;;
    --hold) hold="${2:?}"; shift ;;
    --port-base) port_base="${2:?}"; shift ;;
    --geoproxy) geoproxy_bin="${2:?}"; shift ;;
    --no-build) build_geoproxy=0 ;;
    --keep) keep="${2:?}"; shift ;;
    --timeout) conn_timeout="${2:?}"; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[[ "$conns" =~ ^[1-9][0-9]*$ ]] && [ "$conns" -le 30000 ] || die "--conns wants 1..30000"
[[ "$sample" =~ ^[0-9]+$ ]] && [ "$sample" -lt "$conns" ] || die "--sample wants 0..conns-1"
[[ "$hold" =~ ^[1-9][0-9]*$ ]] && [ "$hold" -le 600 ] || die "--hold wants 1..600 seconds"
[[ "$conn_timeout" =~ ^[1-9][0-9]*$ ]] && [ "$conn_timeout" -le 600 ] ||
    die "--timeout wants 1..600 seconds"
idle=$((conns - sample))
geoproxy_port=$((port_base + 10))

bench_setup_work soak
bench_lock_ports "$port_base" $(seq "$port_base" $((port_base + 3))) "$geoproxy_port"
# geoproxy holds two descriptors per connection, the target and the clients one each.
bench_raise_nofile $((2 * conns + 1000))
bench_build_tools
bench_build_geoproxy
[ "$geoproxy_status" = ok ] || die "geoproxy: $geoproxy_status"

cat >"$work/geoproxy.conf" <<EOF
listen socks5 127.0.0.1:$geoproxy_port
limit connections $((conns + 1000))
limit per-client-connections 0
timeout idle 1h
rule default pass
EOF

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

echo "geoproxy soak: conns=$conns (idle $idle, trickle $sample) hold=${hold}s work=$work"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  host: $(nproc) cores, $(uname -r)," \
    "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "command: bench/soak.sh $all_args"
bench_print_geoproxy
echo "ulimit -n: $(ulimit -n)"

bench_start_target "$port_base" $((hold + 900))
spawn geoproxy "$geoproxy_port" "$geoproxy_bin" run -c "$work/geoproxy.conf" ||
    die "geoproxy did not start"
gp=${peer_pids[0]}
sleep 1
rss0=$(rss_kib "$gp")
fds0=$(fd_count "$gp")

# One sample a second: seconds, RSS KiB, descriptors.
(
    t=0
    while kill -0 "$gp" 2>/dev/null; do
        echo "$t $(rss_kib "$gp") $(fd_count "$gp")"
        sleep 1
        t=$((t + 1))
    done
) >"$work/samples.txt" 9>&- &
sampler=$!
started_pids+=("$sampler")

trickle_pid=""
if [ "$sample" -gt 0 ]; then
    python3 "$bench_dir/soak_trickle.py" --proxy "127.0.0.1:$geoproxy_port" \
        --target "127.0.0.1:$port_base" --conns "$sample" >"$work/trickle.out" \
        2>"$work/trickle.err" 9>&- &
    trickle_pid=$!
    started_pids+=("$trickle_pid")
    for _ in $(seq 100); do
        grep -q "connections open" "$work/trickle.err" 2>/dev/null && break
        sleep 0.1
    done
fi

# The idle connections: set up 200 at a time, held --hold seconds, then closed cleanly.
rc=0
line="$(timeout $((hold + 600)) "$bench_dir/build/loadgen" --scenario idle --proto socks5 \
    --hop "127.0.0.1:$geoproxy_port" --target "127.0.0.1:$((port_base + 1))" \
    --payload "$payload" --conns "$idle" --concurrency 200 --settle "$hold" --setup-limit 300 \
    --timeout "$conn_timeout" --label geoproxy --pid "$gp" 2>>"$work/loadgen.err" | grep '^RESULT' | tail -n 1)" || rc=$?

trickle="TRICKLE none"
if [ -n "$trickle_pid" ]; then
    kill -TERM "$trickle_pid" 2>/dev/null || true
    wait "$trickle_pid" 2>/dev/null || true
    forget_pid "$trickle_pid"
    trickle="$(grep '^TRICKLE' "$work/trickle.out" || echo "TRICKLE failed=1")"
fi
sleep 3 # let the proxy see every close and free what it can
rss_end=$(rss_kib "$gp")
fds_end=$(fd_count "$gp")
alive=1
kill -0 "$gp" 2>/dev/null || alive=0
stop_peer
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true

get() { local l=" $1 " v; v="${l#* "$2"=}"; [ "$v" = "$l" ] && echo "-" || echo "${v%% *}"; }
peak="$(awk 'BEGIN { r = 0; f = 0 } { if ($2 > r) r = $2; if ($3 > f) f = $3 } END { print r, f }' \
    "$work/samples.txt")"
rss_peak=${peak% *}
fds_peak=${peak#* }
held=$(get "$line" held)
errors=$(get "$line" errors)
t_errors=$(get "$trickle" errors)
warnings=$(grep -c ' warn \| error ' "$work/geoproxy.log" || true)

echo
echo "loadgen: ${line:-RESULT failed=loadgen-rc$rc}"
echo "trickle: $trickle"
echo
printf '%-34s %s\n' "connections held" "$held idle + $(get "$trickle" open_at_end) trickle of $conns, for ${hold}s"
printf '%-34s %s\n' "set-up time (idle connections)" "$(get "$line" setup_s) s"
printf '%-34s %s\n' "RSS start / peak / end" "$((rss0 / 1024)) / $((rss_peak / 1024)) / $((rss_end / 1024)) MiB"
if [ "$held" != - ] && [ "$held" -gt 0 ]; then
    printf '%-34s %s\n' "RSS per held connection" \
        "$(awk -v a="$rss_peak" -v b="$rss0" -v n="$conns" 'BEGIN { printf "%.1f KiB", (a - b) / n }')"
fi
printf '%-34s %s\n' "descriptors start / peak / end" "$fds0 / $fds_peak / $fds_end"
printf '%-34s %s\n' "errors (loadgen, trickle)" "$errors, $t_errors ($(get "$trickle" rounds) trickle rounds, $(get "$trickle" bytes) bytes echoed)"
printf '%-34s %s\n' "geoproxy warn/error log lines" "$warnings"
printf '%-34s %s\n' "geoproxy still running at the end" "$([ "$alive" = 1 ] && echo yes || echo NO)"

ok=1
[ "$held" = "$idle" ] || ok=0
[ "$errors" = 0 ] || ok=0
[ "$sample" = 0 ] || [ "$t_errors" = 0 ] || ok=0
[ "$alive" = 1 ] || ok=0
[ "$fds_end" -le "$fds0" ] || ok=0
if [ "$ok" = 1 ]; then
    echo "soak: PASS"
else
    echo "soak: FAIL (see $work; --keep DIR keeps it)"
    exit 1
fi

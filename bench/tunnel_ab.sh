#!/usr/bin/env bash
# A/B of two geoproxy builds (or one build under two environments) in tunnel.sh's own set-up
# conditions: runs of bench/tunnel.sh --scenario setup alternate between A and B, each run
# measuring ss-aes256gcm and the geoproxy peer round by round, every measurement against fresh
# processes. Prints each run's median of the rounds' ratios (geoproxy / ss-aes256gcm) and the
# rounds pooled per side. See docs/BENCHMARKS.md, "Tunnel".
#
# usage: bench/tunnel_ab.sh --a PATH --b PATH [--a-env 'VAR=VALUE ...'] [--b-env '...']
#                           [--runs N] [--setup-reps N] [--peer NAME] [--workers N|auto]
#                           [--keep DIR]
#   --a, --b       geoproxy binaries (the same path twice to compare two environments)
#   --a-env, --b-env  environment assignments for that side's runs (a throwaway build may read
#                  its experiment's switch from there)
#   --runs N       runs per side (default 3), alternating A B, B A, ...
#   --setup-reps N rounds per run (default 15)
#   --peer NAME    geoproxy-optimistic (default) or geoproxy-tunnel
#   --workers N|auto  passed to tunnel.sh as --geoproxy-workers (default: tunnel.sh's, 1)
#   --keep DIR     keep every run's tunnel.sh directory under DIR (default: a temporary one)
#
# Why not one long interleaved run of both builds: a process's placement on this 2-vCPU machine
# holds for its life, so rounds of one run share it; and ss-libev's pace differs between
# long-lived and fresh processes. Comparing runs of tunnel.sh compares what it reports.
set -euo pipefail

bench_dir="$(cd "$(dirname "$0")" && pwd)"
die() {
    echo "tunnel_ab.sh: $*" >&2
    exit 2
}

a_bin="" b_bin="" a_env="" b_env="" runs=3 setup_reps=15 peer=geoproxy-optimistic keep=""
workers=1
while [ $# -gt 0 ]; do
    case "$1" in
    --a) a_bin="${2:?}"; shift ;;
    --b) b_bin="${2:?}"; shift ;;
    --a-env) a_env="${2?}"; shift ;;
    --b-env) b_env="${2?}"; shift ;;
    --runs) runs="${2:?}"; shift ;;
    --setup-reps) setup_reps="${2:?}"; shift ;;
    --peer) peer="${2:?}"; shift ;;
    --workers) workers="${2:?}"; shift ;;
    --keep) keep="${2:?}"; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[ -x "$a_bin" ] || die "--a wants an executable geoproxy ('$a_bin' is not)"
[ -x "$b_bin" ] || die "--b wants an executable geoproxy ('$b_bin' is not)"
[[ "$runs" =~ ^[1-9][0-9]?$ ]] || die "--runs wants 1..99"
[[ "$setup_reps" =~ ^[1-9][0-9]?$ ]] || die "--setup-reps wants 1..99"
[[ "$workers" =~ ^([1-9][0-9]?|auto)$ ]] || die "--workers wants 1..99 or auto"
if ! { command -v ss-server && command -v ss-local; } >/dev/null; then
    die "ss-server and ss-local are needed (bench/tunnel.sh installs shadowsocks-libev)"
fi
case "$peer" in geoproxy-optimistic | geoproxy-tunnel) ;; *) die "--peer: '$peer'?" ;; esac
read -r -a a_env_words <<<"$a_env"
read -r -a b_env_words <<<"$b_env"
for assignment in "${a_env_words[@]}" "${b_env_words[@]}"; do
    [[ "$assignment" =~ ^[A-Za-z_][A-Za-z0-9_]*=.*$ ]] || die "not VAR=VALUE: '$assignment'"
done
kept=1
if [ -z "$keep" ]; then
    keep="$(mktemp -d /tmp/tunnel_ab.XXXXXX)"
    kept=0
    trap 'rm -rf "$keep"' EXIT
fi
mkdir -p "$keep"

# run SIDE N: one tunnel.sh set-up run of that side, its raw results kept as SIDE.N. On failure
# the directory stays, for its logs.
run() {
    local side=$1 n=$2 bin dir="$keep/$1.$2" words=()
    if [ "$side" = A ]; then
        bin=$a_bin words=("${a_env_words[@]}")
    else
        bin=$b_bin words=("${b_env_words[@]}")
    fi
    rm -rf "$dir"
    if ! env "${words[@]}" "$bench_dir/tunnel.sh" --no-install --no-build --geoproxy "$bin" \
        --geoproxy-workers "$workers" --scenario setup --setup-reps "$setup_reps" \
        --peer "ss-aes256gcm,$peer" --keep "$dir" >"$dir.out" 2>&1; then
        trap - EXIT
        die "tunnel.sh failed for $side run $n: see $dir.out"
    fi
}

echo "tunnel_ab: A=$a_bin${a_env:+ ($a_env)} B=$b_bin${b_env:+ ($b_env)}"
echo "  $runs runs per side of $setup_reps rounds, $peer (workers $workers) against" \
    "ss-aes256gcm; load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
for n in $(seq "$runs"); do
    if [ $((n % 2)) -eq 1 ]; then run A "$n" && run B "$n"; else run B "$n" && run A "$n"; fi
done

# Each round's ratio of set-up p50s (a round counts only if both peers made every connection),
# then each run's median and each side's median over all its rounds (round_ratios.awk,
# tunnel_ab_report.awk).
for side in A B; do
    for n in $(seq "$runs"); do
        awk -v side="$side" -v run="$n" -v peer="$peer" -f "$bench_dir/stats.awk" \
            -f "$bench_dir/round_ratios.awk" "$keep/$side.$n/results.txt"
    done
done | awk -f "$bench_dir/stats.awk" -f "$bench_dir/tunnel_ab_report.awk"
if [ "$kept" = 1 ]; then
    echo "tunnel.sh output and raw results: $keep"
fi

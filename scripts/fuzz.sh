#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang into build-fuzz/ (or
# $GEOPROXY_FUZZ_BUILD_DIR), replays every seed and regression input, then fuzzes each target for
# SECONDS (default 20). New corpus entries and crash reproducers go to a temporary directory,
# never into the repository; it is removed when nothing failed. Exits non-zero on any crash,
# leak, timeout (-timeout=5) or memory blow-up (-rss_limit_mb=2048), naming the target and the
# reproducer. Needs no standard input.
#
#   scripts/fuzz.sh [SECONDS]
#   GEOPROXY_FUZZ_TARGETS="config http" scripts/fuzz.sh 300   # some targets, 5 minutes each
#
# A reproducer replays with: build-fuzz/tests/fuzz/fuzz_NAME FILE (see tests/fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS]   (SECONDS: a whole number of seconds per target)" >&2
    exit 2
fi
build_dir="${GEOPROXY_FUZZ_BUILD_DIR:-build-fuzz}"
targets=(${GEOPROXY_FUZZ_TARGETS:-socks http socks_client http_client config geodb_input userdb mux event_filter})
fuzz_dir=tests/fuzz

# Options per target: the HTTP parser takes heads up to 16 KiB (and a 431 past that); a config
# line may be 4 KiB. Others keep libFuzzer's default (the largest seed, at least 4 KiB).
target_options() {
    case "$1" in
    http | http_client) echo "-max_len=20000" ;;
    config) echo "-max_len=8192" ;;
    *) echo "" ;;
    esac
}

# Every file of the target's seed corpus and regression directories.
target_inputs() {
    find "$fuzz_dir/corpus/$1" "$fuzz_dir/regressions/$1" -type f ! -name 'README*' \
        2>/dev/null | LC_ALL=C sort
}

CC="${GEOPROXY_FUZZ_CC:-clang}" cmake -S . -B "$build_dir" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEOPROXY_FUZZ=ON -DGEOPROXY_WERROR=ON >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

work="$(mktemp -d "${TMPDIR:-/tmp}/geoproxy-fuzz.XXXXXX")"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
failed=0

# Prints what a failed run left behind and how to replay it.
report_failure() {
    local name="$1" what="$2" log="$3"
    echo "fuzz: FAILED: fuzz_$name ($what); log: $log" >&2
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|INITED|RELOAD)' "$log" | tail -n 40 |
        sed 's/^/    /' >&2
    sed -n 's/^Running: \(.*\)/\1/p' "$log" | tail -n 1 |
        while read -r input; do echo "fuzz: fuzz_$name failed on stored input: $input" >&2; done
    for artifact in "$work/artifacts/$name"/*; do
        [ -e "$artifact" ] || continue
        echo "fuzz: fuzz_$name reproducer: $artifact" >&2
        echo "fuzz:   replay: $build_dir/tests/fuzz/fuzz_$name $artifact" >&2
    done
    failed=1
}

for name in "${targets[@]}"; do
    binary="$build_dir/tests/fuzz/fuzz_$name"
    mkdir -p "$work/corpus/$name" "$work/artifacts/$name"
    mapfile -t inputs < <(target_inputs "$name")
    if [ "${#inputs[@]}" -eq 0 ]; then
        echo "fuzz: fuzz_$name has no seed in $fuzz_dir/corpus/$name/" >&2
        failed=1
        continue
    fi

    # 1. Replay: each seed and regression input once, exactly as stored.
    log="$work/$name.replay.log"
    if ! "$binary" -timeout=5 -rss_limit_mb=2048 -artifact_prefix="$work/artifacts/$name/" \
        "${inputs[@]}" >"$log" 2>&1; then
        report_failure "$name" "replaying ${#inputs[@]} seed and regression inputs" "$log"
        continue
    fi

    # 2. Fuzz for $seconds, starting from the seeds and regressions; new inputs go to $work.
    dirs=("$fuzz_dir/corpus/$name")
    if [ -d "$fuzz_dir/regressions/$name" ]; then
        dirs+=("$fuzz_dir/regressions/$name")
    fi
    dict=()
    if [ -f "$fuzz_dir/$name.dict" ]; then
        dict=(-dict="$fuzz_dir/$name.dict")
    fi
    log="$work/$name.fuzz.log"
    # shellcheck disable=SC2046 # target_options is a list of words
    if ! "$binary" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
        -artifact_prefix="$work/artifacts/$name/" -print_final_stats=1 "${dict[@]}" \
        $(target_options "$name") "$work/corpus/$name" "${dirs[@]}" >"$log" 2>&1; then
        report_failure "$name" "fuzzing" "$log"
        continue
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' <<<"$done_line")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$done_line")
    echo "fuzz: fuzz_$name ok: ${#inputs[@]} inputs replayed; ${seconds}s: ${runs:-?} runs," \
        "${rate:-?} exec/s, coverage ${cov:-?} edges, corpus ${corp:-?} inputs"
done

if [ "$failed" -ne 0 ]; then
    echo "fuzz: failures above; everything is kept in $work" >&2
    exit 1
fi
rm -rf "$work"
echo "fuzz: ${#targets[@]} passed, 0 failed"

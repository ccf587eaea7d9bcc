#!/usr/bin/env bash
# Runs inside the VM of bench/soak_vm.sh, chrooted in the host's root filesystem (read-only), from
# /tmp/soak-vm (the run's read-write share, where bench/soak_vm.sh copies it). Reads env (repo,
# soak_args), raises the descriptor limit (root in the VM may), runs bench/soak.sh there, and
# leaves its output in soak.out and its exit status in soak.rc. Never run on the host.
#
# usage (by the VM's /init only): bash /tmp/soak-vm/guest.sh
set -euo pipefail

share=/tmp/soak-vm
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
# soak.sh runs bench/build.sh, which writes bench/build/: here the checkout is read-only, so it
# builds into the VM's /tmp and soak.sh uses the tools the host built from the same sources.
export BENCH_BUILD_DIR=/tmp/bench-build
# shellcheck source=/dev/null # written by bench/soak_vm.sh: repo, soak_args
. "$share/env"

[ "$(cat /proc/sys/fs/nr_open)" -ge 65536 ] || echo 1048576 >/proc/sys/fs/nr_open
ulimit -Hn 65536
ulimit -Sn 65536
echo "guest: kernel $(uname -r), $(nproc) CPUs," \
    "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)," \
    "ulimit -n $(ulimit -n) (hard $(ulimit -Hn)), fs.nr_open $(cat /proc/sys/fs/nr_open)"

cd "$repo"
rc=0
bench/soak.sh "${soak_args[@]}" 2>&1 | tee "$share/soak.out" || rc=$?
echo "$rc" >"$share/soak.rc"
sync
exit "$rc"

#!/usr/bin/env bash
# Soak in a virtual machine: runs bench/soak.sh (10,000 connections through geoproxy by default)
# inside qemu-system-x86_64, for hosts whose hard 'ulimit -n' is below the two descriptors per
# connection that soak.sh needs and cannot be raised there. The VM boots Debian's kernel (the one
# package linux-image-amd64 depends on: downloaded with apt-get and unpacked, never installed)
# with a busybox initramfs (bench/soak_vm/init) that mounts the host's root filesystem read-only
# over 9p, so the VM runs the host's geoproxy binary, tools and libraries as they are
# (bench/soak_vm/guest.sh raises the limit and runs soak.sh); the results come back through a
# second, read-write 9p share. All traffic stays on the VM's loopback. Not run in CI; figures go
# to docs/BENCHMARKS.md ("Soak").
#
# usage: bench/soak_vm.sh [--conns N] [--sample N] [--hold S] [--geoproxy PATH] [--no-build]
#                         [--keep DIR] [--mem MIB] [--cpus N] [--accel kvm|tcg] [--timeout S]
#                         [--conn-timeout S]
#   --conns N        bench/soak.sh's --conns (default 10000)
#   --sample N       bench/soak.sh's --sample (default 100)
#   --hold S         bench/soak.sh's --hold (default 60)
#   --geoproxy PATH  measure this binary (default: build-bench/geoproxy, built in Release)
#   --no-build       do not build geoproxy (use build-bench/geoproxy as it is)
#   --keep DIR       keep the work directory in DIR (console.log, share/soak.out, share/soak/:
#                    soak.sh's configs, logs and samples)
#   --mem MIB        the VM's memory (default 4096)
#   --cpus N         its virtual CPUs (default 2)
#   --accel A        kvm or tcg (software emulation); default: kvm when /dev/kvm opens and a
#                    probe VM boots under it (30 s at most), else tcg
#   --timeout S      the VM is killed after S seconds (default: hold + 1500)
#   --conn-timeout S bench/soak.sh's --timeout, loadgen's per-connection no-progress timeout
#                    (default 5 under KVM as on a host; 30 under TCG, where the 10,000 closes at
#                    the end take 3 to 5 s and one of them overran 5 s in one run of two)
#
# Needs root: apt-get installs qemu-system-x86 and busybox-static when missing, and qemu must
# read the whole root filesystem. The kernel package is kept in /var/cache/geoproxy-soak-vm.
# Exit status: soak.sh's in the VM (0: PASS), 2 when the VM did not get to run it.
set -euo pipefail

bench_name=soak_vm.sh
bench_dir="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$bench_dir/.." && pwd)"
# shellcheck source=bench/lib.sh disable=SC2034 # bench_name, repo, build_geoproxy: used by lib.sh
. "$bench_dir/lib.sh"

# shellcheck disable=SC2034 # keep and build_geoproxy are read by lib.sh
conns=10000
sample=100
hold=60
geoproxy_bin=""
build_geoproxy=1
keep=""
mem=4096
cpus=2
accel=""
vm_timeout=""
conn_timeout=""
kcache=/var/cache/geoproxy-soak-vm
all_args="$*"

while [ $# -gt 0 ]; do
    case "$1" in
    --conns) conns="${2:?}"; shift ;;
    --sample) sample="${2:?}"; shift ;;
    --hold) hold="${2:?}"; shift ;;
    --geoproxy) geoproxy_bin="${2:?}"; shift ;;
    --no-build) build_geoproxy=0 ;;
    --keep) keep="${2:?}"; shift ;;
    --mem) mem="${2:?}"; shift ;;
    --cpus) cpus="${2:?}"; shift ;;
    --accel) accel="${2:?}"; shift ;;
    --timeout) vm_timeout="${2:?}"; shift ;;
    --conn-timeout) conn_timeout="${2:?}"; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
# The same checks as soak.sh's, here so that a typo fails before the VM boots.
[[ "$conns" =~ ^[1-9][0-9]*$ ]] && [ "$conns" -le 30000 ] || die "--conns wants 1..30000"
[[ "$sample" =~ ^[0-9]+$ ]] && [ "$sample" -lt "$conns" ] || die "--sample wants 0..conns-1"
[[ "$hold" =~ ^[1-9][0-9]*$ ]] && [ "$hold" -le 600 ] || die "--hold wants 1..600 seconds"
[[ "$mem" =~ ^[1-9][0-9]*$ ]] && [ "$mem" -ge 1024 ] || die "--mem wants at least 1024 (MiB)"
[[ "$cpus" =~ ^[1-9][0-9]*$ ]] || die "--cpus wants a positive number"
vm_timeout="${vm_timeout:-$((hold + 1500))}"
[[ "$vm_timeout" =~ ^[1-9][0-9]*$ ]] || die "--timeout wants seconds"
[[ "$conn_timeout" =~ ^([1-9][0-9]*)?$ ]] || die "--conn-timeout wants seconds"
case "$accel" in
"" | kvm | tcg) ;;
*) die "--accel wants kvm or tcg" ;;
esac
[ "$(id -u)" = 0 ] || die "run as root (apt-get, and qemu reads the whole root filesystem)"

bench_setup_work soak-vm
share="$work/share"
mkdir -p "$share"

# --- What the host needs: qemu, a static busybox for the initramfs, objcopy (binutils).
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v objcopy >/dev/null || need+=(binutils)
bench_apt_install "${need[@]}"
command -v qemu-system-x86_64 >/dev/null || die "no qemu-system-x86_64 (see $work/apt.log)"
[ -x /bin/busybox ] || die "no /bin/busybox (see $work/apt.log)"

# --- The kernel: Debian's current one, as linux-image-amd64 names it, unpacked here only.
kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
kpkg="$(kernel_pkg)"
if [ -z "$kpkg" ]; then
    apt-get update >>"$work/apt.log" 2>&1 || true
    kpkg="$(kernel_pkg)"
fi
[ -n "$kpkg" ] || die "apt-cache names no kernel for linux-image-amd64 (see $work/apt.log)"
kver="${kpkg#linux-image-}"
mkdir -p "$kcache"
deb="$(find "$kcache" -maxdepth 1 -name "${kpkg}_*.deb" | sort | tail -n 1)"
if [ -z "$deb" ]; then
    echo "downloading $kpkg into $kcache"
    # apt-get download writes into the current directory (as root here: apt warns that its
    # sandbox user cannot, and goes on).
    (cd "$kcache" && apt-get download "$kpkg" >>"$work/apt.log" 2>&1) ||
        die "apt-get download $kpkg failed (see $work/apt.log)"
    deb="$(find "$kcache" -maxdepth 1 -name "${kpkg}_*.deb" | sort | tail -n 1)"
fi
[ -n "$deb" ] || die "no $kpkg package in $kcache"
kdir="$work/kernel"
dpkg-deb -x "$deb" "$kdir"
cp "$kdir/boot/vmlinuz-$kver" "$work/vmlinuz"
kmods="$kdir/lib/modules/$kver"

# --- The initramfs: busybox, /init, and the modules for 9p over virtio with their
# dependencies (read from each module's .modinfo), dependencies first.
declare -A mod_path=() mod_seen=()
mod_order=()
while IFS= read -r f; do
    n="$(basename "$f" .ko)"
    mod_path[${n//-/_}]="$f"
done < <(find "$kmods" -name '*.ko')
[ "${#mod_path[@]}" -gt 0 ] || die "no modules (*.ko) in $deb"
mod_depends() {
    objcopy -O binary --only-section=.modinfo "$1" "$work/modinfo" 2>/dev/null || return 0
    tr '\0' '\n' <"$work/modinfo" | sed -n 's/^depends=//p' | tr ',' ' '
}
add_module() {
    local n="${1//-/_}" d
    [ -z "${mod_seen[$n]:-}" ] || return 0
    mod_seen[$n]=1
    if [ -z "${mod_path[$n]:-}" ]; then
        grep -q "/${n//_/[-_]}\.ko$" "$kmods/modules.builtin" ||
            die "module $n is neither in $kpkg's modules nor built in"
        return 0
    fi
    for d in $(mod_depends "${mod_path[$n]}"); do
        add_module "$d"
    done
    mod_order+=("$n")
}
for m in virtio_pci 9pnet_virtio 9p; do
    add_module "$m"
done
ird="$work/initramfs"
mkdir -p "$ird/bin" "$ird/proc" "$ird/sys" "$ird/dev" "$ird/lib/modules" "$ird/newroot"
cp /bin/busybox "$ird/bin/busybox"
cp "$bench_dir/soak_vm/init" "$ird/init"
chmod 755 "$ird/init"
: >"$ird/modules.list"
for m in "${mod_order[@]}"; do
    cp "${mod_path[$m]}" "$ird/lib/modules/$m.ko"
    echo "$m.ko" >>"$ird/modules.list"
done
(cd "$ird" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initramfs.cpio.gz"
rm -rf "$kdir" "$ird" "$work/modinfo"

# --- The accelerator: KVM when /dev/kvm opens and a probe boot reaches /init under it (a nested
# /dev/kvm can exist and still hang or refuse the CPU model), else software emulation (TCG).
# run_vm SECONDS LOG ACCEL CMDLINE-EXTRA [QEMU-ARGS...]
run_vm() {
    local secs=$1 log=$2 acc=$3 extra=$4 cpu=max
    shift 4
    [ "$acc" = kvm ] && cpu=host
    : >"$log"
    timeout --kill-after=10 "$secs" qemu-system-x86_64 -nodefaults -no-user-config \
        -machine q35 -accel "$acc" -cpu "$cpu" -smp "$cpus" -m "$mem" \
        -kernel "$work/vmlinuz" -initrd "$work/initramfs.cpio.gz" \
        -append "console=ttyS0 panic=-1 quiet$extra" -no-reboot \
        -display none -monitor none -serial "file:$log" "$@" </dev/null 9>&-
}
if [ -z "$accel" ]; then
    accel=tcg
    if [ -c /dev/kvm ] && (: <>/dev/kvm) 2>/dev/null; then
        echo "probing KVM (a VM that only boots, at most 30 s)"
        run_vm 30 "$work/probe.log" kvm " soakvm.probe" >"$work/probe-qemu.log" 2>&1 || true
        if grep -q "probe ok" "$work/probe.log"; then
            accel=kvm
        else
            echo "KVM did not boot the VM (/dev/kvm is there; qemu said:" \
                "$(grep -m 1 '^qemu-system' "$work/probe-qemu.log" || echo "nothing, and no boot in 30 s")):" \
                "software emulation (TCG)"
        fi
    fi
fi

if [ -z "$conn_timeout" ]; then
    conn_timeout=5
    [ "$accel" = tcg ] && conn_timeout=30
fi

# --- geoproxy and the tools, built on the host as soak.sh builds them; the VM runs a copy of
# the binary from the share (the host's /tmp is not the VM's).
bench_build_tools
bench_build_geoproxy
[ "$geoproxy_status" = ok ] || die "geoproxy: $geoproxy_status"
cp -p "$geoproxy_bin" "$share/geoproxy"
cp "$bench_dir/soak_vm/guest.sh" "$share/guest.sh"
soak_args=(--conns "$conns" --sample "$sample" --hold "$hold" --timeout "$conn_timeout"
    --geoproxy /tmp/soak-vm/geoproxy --keep /tmp/soak-vm/soak)
{
    printf 'repo=%q\n' "$repo"
    printf 'soak_args=('
    printf '%q ' "${soak_args[@]}"
    printf ')\n'
} >"$share/env"

echo "geoproxy soak in a VM: conns=$conns sample=$sample hold=${hold}s" \
    "conn-timeout=${conn_timeout}s work=$work"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  host: $(nproc) cores, $(uname -r)"
echo "command: bench/soak_vm.sh $all_args"
bench_print_geoproxy
echo "binary sha256: $(sha256sum "$geoproxy_bin" | cut -d' ' -f1)"
echo "VM: $(qemu-system-x86_64 --version | head -n 1), accel $accel," \
    "$cpus vCPUs, $mem MiB; kernel $kpkg ($(dpkg-deb -f "$deb" Version))"
echo

: >"$work/console.log"
run_vm "$vm_timeout" "$work/console.log" "$accel" "" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$share,mount_tag=soakshare,security_model=none,multidevs=remap" \
    >"$work/qemu.log" 2>&1 &
qemu_pid=$!
started_pids+=("$qemu_pid")
tail -n +1 -f --pid="$qemu_pid" "$work/console.log" 9>&- &
tail_pid=$!
started_pids+=("$tail_pid")
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
forget_pid "$qemu_pid"
wait "$tail_pid" 2>/dev/null || true
forget_pid "$tail_pid"

if [ ! -s "$share/soak.rc" ]; then
    echo "$bench_name: the VM did not run soak.sh to its end (qemu/timeout exit status $qemu_rc;" \
        "124: killed after ${vm_timeout}s); qemu said:" >&2
    tail -n 10 "$work/qemu.log" >&2
    exit 2
fi
rc="$(cat "$share/soak.rc")"
echo
echo "soak.sh in the VM exited with status $rc (its output: $share/soak.out)"
exit "$rc"

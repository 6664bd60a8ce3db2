#!/bin/sh
# /init of the vm-test initramfs (busybox sh). Sets up a machine as a systemd host would have
# it, runs the integration tests its plan names (/vmtest/plan), one at a time, and powers off.
#
# The console (ttyS0) gets the kernel's log and progress lines; the results go to ttyS1, which
# the host captures in a file of its own, as lines the host parses:
#   @@vmtest info KEY VALUE...
#   @@vmtest hooks-begin LABEL / (stderr of `tool --debug -d 1`) / @@vmtest hooks-end LABEL rc=N
#   @@vmtest list SUITE TEST                      every test, before any runs
#   @@vmtest test-begin SUITE TEST / (its output) / @@vmtest test-end SUITE TEST rc=N secs=S
#   @@vmtest done

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export LANG=C.UTF-8

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run

. /vmtest/config.sh

R=/dev/ttyS1
[ -c "$R" ] || R=/dev/console
say() {
    echo "@@vmtest $*" >"$R"
    echo "vmtest: $*" >/dev/console
}
info() { echo "@@vmtest info $*" >"$R"; }

# Kernel modules the disk needs (virtio_blk and what it depends on), in load order.
if [ -f /vmtest/modules/order ]; then
    while read -r m; do
        insmod "/vmtest/modules/$m" 2>/dev/console || echo "vmtest: insmod $m failed" >/dev/console
    done </vmtest/modules/order
fi

mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null

# Memory cgroups: the unified hierarchy with the memory controller delegated to children, as
# systemd sets it up; cgroup v1's memory hierarchy where v2 has no memory controller.
cgroups=none
if mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; then
    if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        echo +memory >/sys/fs/cgroup/cgroup.subtree_control && cgroups=v2
    else
        umount /sys/fs/cgroup
    fi
fi
if [ "$cgroups" = none ] && mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup 2>/dev/null; then
    mkdir -p /sys/fs/cgroup/memory
    mount -t cgroup -o memory memory /sys/fs/cgroup/memory 2>/dev/null && cgroups=v1
fi

# /tmp (std::env::temp_dir()): a disk, so that the 3 GiB fill file is page cache that reclaim can
# drop and `dd iflag=nocache` can evict, as on a host. tmpfs only when there is no disk.
# What the initramfs holds under /tmp (the tools and workload, when the workspace is a clone
# under /tmp, as CI's may be) must stay where the tests look for it: set aside, copied back.
if [ -n "$(ls -A /tmp 2>/dev/null)" ]; then
    mkdir -p /run/initramfs-tmp && cp -a /tmp/. /run/initramfs-tmp/
fi
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if [ -b /dev/vda ] && mount -t ext4 -o discard /dev/vda /tmp; then
    tmpfs="ext4 on /dev/vda (virtio-blk)"
else
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    tmpfs="tmpfs (no disk: page cache is not reclaimable as on a host)"
fi
chmod 1777 /tmp
if [ -d /run/initramfs-tmp ]; then
    cp -a /run/initramfs-tmp/. /tmp/ && rm -rf /run/initramfs-tmp
fi
# Age the memory as a machine that has run for a while has it: two page-cache files read at
# once interleave in physical memory; removing one leaves its pages as small free holes
# between the other's. Without this a fresh VM's free memory is a few huge blocks, and huge
# pages come from reclaim alone, without the direct compaction the tests wait for. vm-test
# puts both files on the disk (written on the host: a guest writes about 30 MB/s under
# emulation, which took 96 s here); without them they are written here.
uptime_s() { cut -d' ' -f1 /proc/uptime; }
secs_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }
buddy() { awk '$4 == "Normal" { o = ""; for (i = 5; i <= NF; i++) o = o " " $i; print o }' /proc/buddyinfo; }
if [ "${AGE_MIB:-0}" -gt 0 ] && [ -b /dev/vda ]; then
    info buddyinfo-normal-before "$(buddy)"
    aging_t0=$(uptime_s)
    for f in /tmp/vmtest-age-a /tmp/vmtest-age-b; do
        if [ "$(stat -c %s "$f" 2>/dev/null)" = $((AGE_MIB << 20)) ]; then
            dd if="$f" of=/dev/null bs=64k 2>/dev/null &
        else
            dd if=/dev/zero of="$f" bs=64k count=$((AGE_MIB * 16)) 2>/dev/null &
        fi
    done
    wait
    sync
    rm -f /tmp/vmtest-age-b
    info aged "$AGE_MIB MiB of page cache kept, $AGE_MIB MiB freed in holes, in $(secs_since "$aging_t0") s"
    info buddyinfo-normal-after "$(buddy)"
fi
ip link set lo up 2>/dev/null
hostname vmtest

info release "$(uname -r)"
info ready-after "$(uptime_s) s of uptime"
info version "$(cat /proc/version)"
info memtotal "$(grep MemTotal /proc/meminfo)"
info cpus "$(grep -c ^processor /proc/cpuinfo)"
info tmp "$tmpfs"
info cgroups "$cgroups"
if [ -e /sys/kernel/btf/vmlinux ]; then info btf yes; else info btf no; fi
info thp "$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"

# What this guest runs (/vmtest/plan, from the host: vm-test's plan.rs): `hooks` for the hooks
# summary, `host-only SUITE TEST` for tests left to the host, `test SUITE TEST` for each test.
# A kernel's tests may be split over several guests; the first one runs the hooks summary.
PLAN=/vmtest/plan

# The hooks each tool chooses here, and how long a one-second run takes in all (start-up:
# BTF, verifier, kallsyms for -K).
hooks() {
    label=$1
    shift
    say hooks-begin "$label"
    t0=$(uptime_s)
    timeout -s KILL 120 "$@" --debug -d 1 >/dev/null 2>/tmp/vmtest-hooks.err
    rc=$?
    t1=$(uptime_s)
    cat /tmp/vmtest-hooks.err >"$R"
    echo >"$R"
    say hooks-end "$label" rc=$rc secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
    rm -f /tmp/vmtest-hooks.err
}
if grep -qx hooks "$PLAN"; then
    hooks compactsnoop "$BIN_DIR/compactsnoop"
    hooks "compactsnoop -K -e" "$BIN_DIR/compactsnoop" -K -e
    hooks "compactsnoop -x" "$BIN_DIR/compactsnoop" -x
    hooks "compactsnoop -x -s 1" "$BIN_DIR/compactsnoop" -x -s 1
    hooks drsnoop "$BIN_DIR/drsnoop"
    hooks "drsnoop -m" "$BIN_DIR/drsnoop" -m
    hooks "drsnoop -v -K" "$BIN_DIR/drsnoop" -v -K
fi

export TRACER_REQUIRE_KERNEL=1 TRACER_BIN_DIR="$BIN_DIR" RUST_BACKTRACE=0
# The tests' fill file, made on the host (test_kit::workload::PREMADE_FILL): read, not written.
if [ -f /tmp/vmtest-fill ]; then
    export TRACER_FILL_FILE=/tmp/vmtest-fill
    info fill "/tmp/vmtest-fill, $(stat -c %s /tmp/vmtest-fill) bytes, made on the host"
fi
cd /

# Every test first, so that a VM that stops early leaves the rest marked as not run.
sed -n 's/^host-only //p' "$PLAN" | while read -r suite t; do say host-only "$suite" "$t"; done
sed -n 's/^test //p' "$PLAN" | while read -r suite t; do say list "$suite" "$t"; done

sed -n 's/^test //p' "$PLAN" >/vmtest/tests.sel
while read -r suite t; do
    say test-begin "$suite" "$t"
    dmesg -c >/dev/null 2>&1
    start=$(date +%s)
    timeout -s KILL "$TEST_TIMEOUT" "/vmtest/tests/$suite" --exact "$t" --test-threads=1 --nocapture \
        </dev/null >"$R" 2>&1
    rc=$?
    end=$(date +%s)
    echo >"$R"
    say test-end "$suite" "$t" rc=$rc secs=$((end - start))
    # The kernel's whole log of a failed test (the console shows only warnings and worse:
    # an OOM kill there is one line, without the memory figures that explain it).
    if [ "$rc" != 0 ]; then
        echo "--- kernel log during $suite $t ---" >"$R"
        dmesg >"$R" 2>&1
        echo "--- end of kernel log ---" >"$R"
    fi
    # Whatever a killed test left behind.
    echo 0 >/proc/sys/vm/nr_hugepages
    rm -rf /tmp/tracer-tests-* 2>/dev/null
done </vmtest/tests.sel

say done
sync
umount /tmp 2>/dev/null
sleep 1
poweroff -f

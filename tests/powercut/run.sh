#!/usr/bin/env bash
# Power-cut lab for rebound: boots a real Linux kernel (Debian 6.1, QEMU TCG), runs
# `rebound boot` in the guest's boot path as a device would, runs a workload of
# commits, updates and vendor-style app upgrades, cuts the power again and again and
# checks after every cut that no committed data was lost. See docs/powercut.md.
#
# Usage:
#   tests/powercut/run.sh --quick              # CI: tens of cuts per filesystem
#   tests/powercut/run.sh --cuts 2000          # soak: 2000 cuts per filesystem
#   tests/powercut/run.sh --quick --broken     # build that skips fsync: MUST fail
#   tests/powercut/run.sh --quick --arch armv7 # Debian's ARM kernel (armmp), armv7 rebound
# Options:
#   --arch A         x86_64 (default), armv7 (linux-image-armmp, qemu-system-arm -M virt,
#                    ext4/vfat/ubifs) or aarch64 (linux-image-arm64, qemu-system-aarch64
#                    -M virt -cpu cortex-a57; ext4/vfat: that kernel has no nandsim)
#   --quick          bounded run for CI: 20 cuts per filesystem (default without it: 200)
#   --cuts N         power cuts per filesystem
#   --fs LIST        comma-separated subset of ext4,vfat,ubifs (default: all three)
#   --jobs N         QEMU instances in parallel (default: number of CPUs)
#   --seed S         random seed (default: from the clock; printed, so a run replays)
#   --broken         run rebound with REBOUND_FAULT_SKIP_SYNC=1; the lab must report
#                    violations (exit 0 if it did, 1 if the broken build went unnoticed)
#   --no-install     do not apt-get anything (everything must already be there)
#   --vfat-opts O    extra vfat mount options (e.g. dirsync; see docs/powercut.md)
#   --replay N       ext4/vfat: record every write and flush with QEMU's blklogwrites
#                    and check N more crash states per cycle rebuilt from the log
#                    (a drive that loses its write cache)
#
# Exit status: 0 no violation (or, with --broken, violations were found as they must
# be); 1 violations (the failing cycles' logs are kept under tests/powercut/work/);
# 2 setup error.
#
# Needs root (apt-get) on a Debian 12 machine; everything it downloads is cached under
# tests/powercut/work/ (git-ignored).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=tests/lib/debian-kernel.sh
. "$REPO/tests/lib/debian-kernel.sh"

ARCH=x86_64
CUTS=""
QUICK=0
FSLIST=""
JOBS="$(nproc)"
SEED="$(date +%s)"
BROKEN=0
INSTALL=1
VFAT_OPTS=""
REPLAY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --arch) ARCH="$2"; shift ;;
        --cuts) CUTS="$2"; shift ;;
        --fs) FSLIST="$2"; shift ;;
        --jobs) JOBS="$2"; shift ;;
        --seed) SEED="$2"; shift ;;
        --broken) BROKEN=1 ;;
        --no-install) INSTALL=0 ;;
        --vfat-opts) VFAT_OPTS="$2"; shift ;;
        --replay) REPLAY="$2"; shift ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
# Per architecture: Debian kernel flavour and architecture, QEMU, the rebound target.
case "$ARCH" in
    x86_64) KFLAVOUR=amd64; DEBARCH=amd64; QEMU_PKG=qemu-system-x86; QEMU_BIN=qemu-system-x86_64
            DEFAULT_FS="ext4,vfat,ubifs"; WORK="$HERE/work" ;;
    armv7) KFLAVOUR=armmp; DEBARCH=armhf; QEMU_PKG=qemu-system-arm; QEMU_BIN=qemu-system-arm
           DEFAULT_FS="ext4,vfat,ubifs"; WORK="$HERE/work/armv7" ;;
    aarch64) KFLAVOUR=arm64; DEBARCH=arm64; QEMU_PKG=qemu-system-arm; QEMU_BIN=qemu-system-aarch64
             DEFAULT_FS="ext4,vfat"; WORK="$HERE/work/aarch64" ;;
    *) echo "run.sh: unknown --arch $ARCH (x86_64, armv7, aarch64)" >&2; exit 2 ;;
esac
FSLIST="${FSLIST:-$DEFAULT_FS}"
if [ "$ARCH" = aarch64 ] && [[ ",$FSLIST," == *,ubifs,* ]]; then
    echo "run.sh: no UBIFS on aarch64: Debian's arm64 kernel has no nandsim (CONFIG_MTD_NAND_NANDSIM is not set); use --arch armv7 or x86_64" >&2
    exit 2
fi
mkdir -p "$WORK"

if [ -z "$CUTS" ]; then
    if [ "$QUICK" = 1 ]; then CUTS=20; else CUTS=200; fi
fi

log() { printf '== %s\n' "$*"; }

# ---------------------------------------------------------------------------------
# 1. Host packages. The kernel comes from the Debian archive as a .deb that is only
#    unpacked (never installed); everything else is an ordinary package.
# ---------------------------------------------------------------------------------
PKGS="$QEMU_PKG busybox-static kmod cpio mtd-utils dosfstools squashfs-tools e2fsprogs binutils"
need_install() {
    local c
    for c in "$QEMU_BIN" busybox depmod cpio ubiattach mkfs.fat fsck.fat mksquashfs mke2fs readelf; do
        command -v "$c" >/dev/null 2>&1 || return 0
    done
    # busybox must be the static one: it is copied into the guest as is.
    file -L "$(command -v busybox)" | grep -q 'statically linked' || return 0
    return 1
}
if need_install; then
    if [ "$INSTALL" = 1 ]; then
        [ "$(id -u)" = 0 ] || { echo "run.sh: need root to apt-get install $PKGS" >&2; exit 2; }
        log "installing $PKGS"
        export DEBIAN_FRONTEND=noninteractive
        apt_update_tolerant
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $PKGS file >/dev/null
    else
        echo "run.sh: missing tools and --no-install given ($PKGS)" >&2; exit 2
    fi
fi

# ---------------------------------------------------------------------------------
# 2. Kernel: linux-image-6.1.0-*-<flavour> (the version linux-image-<flavour> points
#    at; amd64, armmp or arm64), downloaded and unpacked with dpkg-deb -x, cached in
#    work/kernel (work/<arch>/kernel for ARM).
# ---------------------------------------------------------------------------------
KDIR="$WORK/kernel"
debian_kernel "$KDIR" "$KFLAVOUR" "$DEBARCH" "$INSTALL" run.sh
log "kernel $KVER ($(basename "$VMLINUZ"))"

# ---------------------------------------------------------------------------------
# 3. The rebound binary: static, with the test-only fault-injection feature (pause at
#    the k-th mutation; skip every fsync with REBOUND_FAULT_SKIP_SYNC=1). Own target
#    directory so it never fights over target/ with other builds.
# ---------------------------------------------------------------------------------
log "building rebound for $ARCH (static, fault-injection)"
RUNNER=""
if [ "$ARCH" = x86_64 ]; then
    (cd "$REPO" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release \
        -p rebound-cli --features fault-injection --target x86_64-unknown-linux-gnu \
        --target-dir "$WORK/target")
else
    # Debian's cross toolchain (tools/cross.sh installs it as root), the same features
    # as the release build of that target (tools/dist.sh) plus fault-injection.
    if [ "$INSTALL" = 1 ]; then "$REPO/tools/cross.sh" setup "$ARCH"; else "$REPO/tools/cross.sh" setup --no-install "$ARCH"; fi
    FEATS=fault-injection
    [ "$ARCH" = armv7 ] && FEATS="$FEATS,neon"
    # The repository's target/, where .ci/run builds the same binary for the
    # integration tests on ARM: one build serves both.
    (cd "$REPO" && nice "$REPO/tools/cross.sh" cargo "$ARCH" build --quiet --release -p rebound-cli \
        --features "$FEATS")
    RUNNER="$("$REPO/tools/cross.sh" runner "$ARCH")"
fi
TDIR="$WORK/target"
[ "$ARCH" = x86_64 ] || TDIR="$REPO/target"
REBOUND="$TDIR/$("$REPO/tools/cross.sh" triple "$ARCH")/release/rebound"
! readelf -lW "$REBOUND" | grep -q INTERP \
    || { echo "run.sh: $REBOUND is not statically linked" >&2; exit 2; }

# ---------------------------------------------------------------------------------
# 4. The initramfs: busybox, mtd-utils / e2fsprogs / dosfstools binaries with their
#    shared libraries, the kernel modules the lab needs, rebound, busybox init with
#    the lab's inittab and rc scripts (guest/) and dist/init.d/S05rebound.
# ---------------------------------------------------------------------------------
log "packing the initramfs"
IR="$WORK/initramfs"
rm -rf "$IR"
mkdir -p "$IR"/{bin,sbin,etc,proc,sys,dev,tmp,ctl,bak,usrapp,usrdata,lib64,lib/x86_64-linux-gnu}
TOOLS="ubiattach ubidetach ubimkvol ubirmvol ubiupdatevol ubinfo mke2fs e2fsck fsck.fat mkfs.fat"
if [ "$ARCH" = x86_64 ]; then
    BUSYBOX="$(command -v busybox)"
else
    # The guest's userland comes from Debian's packages of the guest's architecture,
    # downloaded and unpacked (never installed) into work/<arch>/userland.
    UL="$WORK/userland"
    UPKGS="busybox-static libc6 mtd-utils e2fsprogs dosfstools libext2fs2 libcom-err2 libblkid1 libuuid1"
    if [ ! -f "$UL/.done" ]; then
        debian_add_arch "$DEBARCH" "$INSTALL" run.sh
        log "downloading the $DEBARCH userland ($UPKGS)"
        rm -rf "$UL"; mkdir -p "$UL/debs" "$UL/root"
        # shellcheck disable=SC2046
        (cd "$UL/debs" && apt-get download $(printf "%s:$DEBARCH " $UPKGS) 2>&1 \
            | grep -v '^W: Download is performed unsandboxed' || true)
        for deb in "$UL"/debs/*.deb; do dpkg-deb -x "$deb" "$UL/root"; done
        touch "$UL/.done"
    fi
    BUSYBOX="$UL/root/bin/busybox"
    [ -x "$BUSYBOX" ] || { echo "run.sh: no busybox in $UL (delete it and rerun)" >&2; exit 2; }
fi
cp "$BUSYBOX" "$IR/bin/busybox"
# The applet list, from the binary itself (under the emulator for a foreign one).
for a in $($RUNNER "$IR/bin/busybox" --list); do
    [ -e "$IR/bin/$a" ] || ln -s busybox "$IR/bin/$a"
done
# Debian's busybox runs its own applets in preference to $PATH: guest/lab calls the
# real tools below by absolute path (/sbin/...).
# Dynamically linked tools: copy each with the libraries it needs.
copy_with_libs() {
    local bin="$1" lib
    cp "$bin" "$IR/sbin/$(basename "$bin")"
    for lib in $(ldd "$bin" | awk '/=>/ {print $3} $1 ~ /^\/lib/ {print $1}'); do
        [ -f "$lib" ] || continue
        mkdir -p "$IR$(dirname "$lib")"
        cp -L "$lib" "$IR$lib"
    done
}
# A foreign binary: its interpreter and its NEEDED libraries, recursively, looked up in
# the unpacked packages (readelf reads any ELF; ldd would have to run it).
copy_foreign() {
    local bin="$1" interp lib found d
    cp "$bin" "$IR/sbin/$(basename "$bin")"
    interp="$(readelf -lW "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')"
    if [ -n "$interp" ] && [ ! -e "$IR$interp" ]; then
        mkdir -p "$IR$(dirname "$interp")"
        cp -L "$UL/root$interp" "$IR$interp"
    fi
    for lib in $(readelf -dW "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        found=""
        for d in lib/arm-linux-gnueabihf lib/aarch64-linux-gnu usr/lib/arm-linux-gnueabihf usr/lib/aarch64-linux-gnu; do
            if [ -e "$UL/root/$d/$lib" ]; then found="$d/$lib"; break; fi
        done
        [ -n "$found" ] || { echo "run.sh: $(basename "$bin") needs $lib, not in $UPKGS" >&2; exit 2; }
        # Libraries go to /lib/<multiarch>, where the guest's loader looks.
        found="lib/${found#*lib/}"
        [ -e "$IR/$found" ] && continue
        mkdir -p "$IR/$(dirname "$found")"
        cp -L "$UL/root/${found}" "$IR/$found" 2>/dev/null || cp -L "$UL/root/usr/$found" "$IR/$found"
        copy_foreign_lib "$IR/$found"
    done
}
copy_foreign_lib() { # the dependencies of a library already copied
    local so="$1" lib d
    for lib in $(readelf -dW "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        for d in lib/arm-linux-gnueabihf lib/aarch64-linux-gnu; do
            if [ -e "$UL/root/$d/$lib" ] || [ -e "$UL/root/usr/$d/$lib" ]; then
                [ -e "$IR/$d/$lib" ] && break
                mkdir -p "$IR/$d"
                cp -L "$UL/root/$d/$lib" "$IR/$d/$lib" 2>/dev/null || cp -L "$UL/root/usr/$d/$lib" "$IR/$d/$lib"
                copy_foreign_lib "$IR/$d/$lib"
                break
            fi
        done
    done
}
for t in $TOOLS; do
    if [ "$ARCH" = x86_64 ]; then
        copy_with_libs "$(command -v "$t")"
    else
        p=""
        for d in sbin usr/sbin bin usr/bin; do [ -x "$UL/root/$d/$t" ] && { p="$UL/root/$d/$t"; break; }; done
        [ -n "$p" ] || { echo "run.sh: $t not found in the $DEBARCH packages" >&2; exit 2; }
        copy_foreign "$p"
    fi
done
cp /etc/mke2fs.conf "$IR/etc/" 2>/dev/null || true
cp "$REBOUND" "$IR/bin/rebound"
cp "$HERE/rebound.toml" "$IR/etc/rebound.toml"
# The guest boots like a device: /init is busybox init, which reads /etc/inittab and runs
# the lab's sysinit, find_partitions.sh, then rcS with the real dist/init.d/S05rebound
# (copied verbatim) and the application as S50lab-app. See guest/lab.
ln -s bin/busybox "$IR/init"
mkdir -p "$IR/etc/init.d" "$IR/etc/default" "$IR/run"
cp "$HERE/guest/inittab" "$IR/etc/inittab"
cp "$HERE/guest/lab" "$HERE/guest/rcS" "$HERE/guest/find_partitions.sh" "$HERE/guest/S50lab-app" "$IR/etc/init.d/"
cp "$REPO/dist/init.d/S05rebound" "$IR/etc/init.d/S05rebound"
cp "$HERE/guest/rebound.default" "$IR/etc/default/rebound.lab"
chmod +x "$IR"/etc/init.d/*

# Modules and everything they depend on, found through modules.dep.
MODS="virtio_pci virtio_blk crc32c_generic ext4 vfat nls_cp437 nls_ascii nls_utf8 squashfs nandsim ubi ubifs zstd deflate"
# nandsim only where UBIFS is tested (the arm64 kernel has none): optional otherwise.
MODLIST=""
for m in $MODS; do
    if [ "$m" = nandsim ] && [[ ",$FSLIST," != *,ubifs,* ]]; then m="nandsim?"; fi
    MODLIST="$MODLIST $m"
done
# shellcheck disable=SC2086
debian_modules "$IR" "$KDIR" "$KVER" run.sh $MODLIST
INITRD="$WORK/initrd.cpio.gz"
(cd "$IR" && find . | cpio -o -H newc --quiet | gzip -1 > "$INITRD")

# ---------------------------------------------------------------------------------
# 5. The golden image: the factory configuration files sealed by `rebound seal` into
#    a directory, packed read-only as squashfs. The manifest holds relative paths
#    only, so sealing on the host is the same as sealing on the device.
# ---------------------------------------------------------------------------------
log "sealing the golden copy"
GB="$WORK/golden-build"
rm -rf "$GB"
mkdir -p "$GB"
python3 "$HERE/lab.py" factory --out "$GB/factory"
mkdir -p "$GB/live" "$GB/bak" "$GB/copy"
cp -a "$GB/factory/cfg/." "$GB/live/"
cat > "$GB/seal.toml" <<EOF
[[set]]
name = "config"
mode = "golden"
live = "$GB/live"
golden = "$GB/bak"
copies = ["$GB/copy"]
include = ["apn_cfg.json", "system_config.json", "app/**"]
EOF
$RUNNER "$REBOUND" -c "$GB/seal.toml" seal config >/dev/null
rm -f "$WORK/golden.sqfs"
mksquashfs "$GB/bak" "$WORK/golden.sqfs" -quiet -no-progress -all-root -noappend >/dev/null

# ---------------------------------------------------------------------------------
# 6. The lab itself (host-side driver and checker).
# ---------------------------------------------------------------------------------
ARGS=(run --arch "$ARCH" --work "$WORK" --kernel "$VMLINUZ" --initrd "$INITRD" --golden "$WORK/golden.sqfs"
      --factory "$GB/factory" --cuts "$CUTS" --fs "$FSLIST" --jobs "$JOBS" --seed "$SEED")
[ "$BROKEN" = 1 ] && ARGS+=(--broken)
[ -n "$VFAT_OPTS" ] && ARGS+=(--vfat-opts "$VFAT_OPTS")
[ "$REPLAY" != 0 ] && ARGS+=(--replay "$REPLAY")
log "power-cut lab ($ARCH, kernel $KVER): cuts per filesystem $CUTS, filesystems $FSLIST, seed $SEED, jobs $JOBS$([ "$BROKEN" = 1 ] && echo ', BROKEN build (skips fsync)')"
exec python3 "$HERE/lab.py" "${ARGS[@]}"

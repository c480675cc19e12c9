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
# Options:
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
WORK="$HERE/work"
mkdir -p "$WORK"

CUTS=""
QUICK=0
FSLIST="ext4,vfat,ubifs"
JOBS="$(nproc)"
SEED="$(date +%s)"
BROKEN=0
INSTALL=1
VFAT_OPTS=""
REPLAY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --cuts) CUTS="$2"; shift ;;
        --fs) FSLIST="$2"; shift ;;
        --jobs) JOBS="$2"; shift ;;
        --seed) SEED="$2"; shift ;;
        --broken) BROKEN=1 ;;
        --no-install) INSTALL=0 ;;
        --vfat-opts) VFAT_OPTS="$2"; shift ;;
        --replay) REPLAY="$2"; shift ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$CUTS" ]; then
    if [ "$QUICK" = 1 ]; then CUTS=20; else CUTS=200; fi
fi

log() { printf '== %s\n' "$*"; }

# ---------------------------------------------------------------------------------
# 1. Host packages. The kernel comes from the Debian archive as a .deb that is only
#    unpacked (never installed); everything else is an ordinary package.
# ---------------------------------------------------------------------------------
PKGS="qemu-system-x86 busybox-static kmod cpio mtd-utils dosfstools squashfs-tools e2fsprogs"
need_install() {
    local c
    for c in qemu-system-x86_64 busybox depmod cpio ubiattach mkfs.fat fsck.fat mksquashfs mke2fs; do
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
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $PKGS file >/dev/null
    else
        echo "run.sh: missing tools and --no-install given ($PKGS)" >&2; exit 2
    fi
fi

# ---------------------------------------------------------------------------------
# 2. Kernel: linux-image-6.1.0-*-amd64 (the version linux-image-amd64 points at),
#    downloaded and unpacked with dpkg-deb -x, cached in work/kernel.
# ---------------------------------------------------------------------------------
KDIR="$WORK/kernel"
mkdir -p "$KDIR"
KPKG="$(ls "$KDIR"/linux-image-6.1.0-*-amd64_*.deb 2>/dev/null | head -n1 || true)"
if [ -z "$KPKG" ]; then
    kname() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1\.0-.*-amd64/ {print $2; exit}'; }
    KNAME="$(kname)"
    if [ -z "$KNAME" ] && [ "$INSTALL" = 1 ]; then apt-get update -qq; KNAME="$(kname)"; fi
    [ -n "$KNAME" ] || { echo "run.sh: cannot find the linux-image-6.1.0-*-amd64 package name (apt-get update?)" >&2; exit 2; }
    log "downloading $KNAME"
    (cd "$KDIR" && apt-get download "$KNAME" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    KPKG="$(ls "$KDIR"/linux-image-6.1.0-*-amd64_*.deb | head -n1)"
fi
if [ ! -d "$KDIR/root/lib/modules" ]; then
    rm -rf "$KDIR/root"
    dpkg-deb -x "$KPKG" "$KDIR/root"
fi
KVER="$(ls "$KDIR/root/lib/modules" | head -n1)"
VMLINUZ="$KDIR/root/boot/vmlinuz-$KVER"
[ -f "$KDIR/root/lib/modules/$KVER/modules.dep" ] || depmod -b "$KDIR/root" "$KVER"
# Decompressing an xz bzImage takes seconds under TCG at every boot. The kernel has
# CONFIG_PVH, so QEMU can start the uncompressed ELF vmlinux directly: unpack it once.
VMLINUX="$KDIR/vmlinux-$KVER"
if [ ! -s "$VMLINUX" ]; then
    python3 - "$VMLINUZ" "$VMLINUX.tmp" <<'PY'
import lzma, sys
data = open(sys.argv[1], "rb").read()
at = data.find(b"\xfd7zXZ\x00")
if at < 0:
    sys.exit(0)  # not xz: keep booting the bzImage
elf = lzma.LZMADecompressor().decompress(data[at:])
if elf[:4] == b"\x7fELF":
    open(sys.argv[2], "wb").write(elf)
PY
    [ -s "$VMLINUX.tmp" ] && mv "$VMLINUX.tmp" "$VMLINUX"
fi
[ -s "$VMLINUX" ] && VMLINUZ="$VMLINUX"
log "kernel $KVER ($(basename "$VMLINUZ"))"

# ---------------------------------------------------------------------------------
# 3. The rebound binary: static, with the test-only fault-injection feature (pause at
#    the k-th mutation; skip every fsync with REBOUND_FAULT_SKIP_SYNC=1). Own target
#    directory so it never fights over target/ with other builds.
# ---------------------------------------------------------------------------------
log "building rebound (static, fault-injection)"
(cd "$REPO" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release \
    -p rebound-cli --features fault-injection --target x86_64-unknown-linux-gnu \
    --target-dir "$WORK/target")
REBOUND="$WORK/target/x86_64-unknown-linux-gnu/release/rebound"
file "$REBOUND" | grep -Eq 'static(-pie)? linked|statically linked' \
    || { echo "run.sh: $REBOUND is not statically linked" >&2; exit 2; }

# ---------------------------------------------------------------------------------
# 4. The initramfs: busybox, mtd-utils / e2fsprogs / dosfstools binaries with their
#    shared libraries, the kernel modules the lab needs, rebound, /init.
# ---------------------------------------------------------------------------------
log "packing the initramfs"
IR="$WORK/initramfs"
rm -rf "$IR"
mkdir -p "$IR"/{bin,sbin,etc,proc,sys,dev,tmp,ctl,bak,usrapp,usrdata,lib64,lib/x86_64-linux-gnu}
cp "$(command -v busybox)" "$IR/bin/busybox"
for a in $("$IR/bin/busybox" --list); do
    [ -e "$IR/bin/$a" ] || ln -s busybox "$IR/bin/$a"
done
# Debian's busybox runs its own applets in preference to $PATH: init.sh calls the
# real tools below by absolute path (/sbin/...).
# Dynamically linked tools: copy each with the libraries ldd names.
copy_with_libs() {
    local bin="$1" lib
    cp "$bin" "$IR/sbin/$(basename "$bin")"
    for lib in $(ldd "$bin" | awk '/=>/ {print $3} $1 ~ /^\/lib/ {print $1}'); do
        [ -f "$lib" ] || continue
        mkdir -p "$IR$(dirname "$lib")"
        cp -L "$lib" "$IR$lib"
    done
}
for t in ubiattach ubidetach ubimkvol ubirmvol ubiupdatevol ubinfo mke2fs e2fsck fsck.fat mkfs.fat; do
    copy_with_libs "$(command -v "$t")"
done
cp /etc/mke2fs.conf "$IR/etc/" 2>/dev/null || true
cp "$REBOUND" "$IR/bin/rebound"
cp "$HERE/init.sh" "$IR/init"
cp "$HERE/rebound.toml" "$IR/etc/rebound.toml"
chmod +x "$IR/init"

# Modules and everything they depend on, found through modules.dep.
MODS="virtio_pci virtio_blk crc32c_generic ext4 vfat nls_cp437 nls_ascii nls_utf8 squashfs nandsim ubi ubifs zstd"
MDIR="$KDIR/root/lib/modules/$KVER"
declare -A SEEN=()
add_mod() {
    local name="$1" path dep
    path="$(awk -F: -v m="$name" '{ n=$1; sub(/.*\//, "", n); sub(/\.ko.*$/, "", n); gsub(/-/, "_", n); if (n == m) { print $1; exit } }' "$MDIR/modules.dep")"
    [ -n "$path" ] || { echo "run.sh: module $name not found in $KVER" >&2; exit 2; }
    [ -z "${SEEN[$path]:-}" ] || return 0
    SEEN[$path]=1
    mkdir -p "$IR/lib/modules/$KVER/$(dirname "$path")"
    cp "$MDIR/$path" "$IR/lib/modules/$KVER/$path"
    for dep in $(awk -F: -v p="$path" '$1 == p { print $2 }' "$MDIR/modules.dep"); do
        dep="${dep##*/}"; dep="${dep%%.ko*}"; add_mod "${dep//-/_}"
    done
}
for m in $MODS; do add_mod "$m"; done
cp "$MDIR"/modules.{order,builtin} "$IR/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$IR" "$KVER" 2>&1 | grep -v 'modules.builtin.modinfo' >&2 || true
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
"$REBOUND" -c "$GB/seal.toml" seal config >/dev/null
rm -f "$WORK/golden.sqfs"
mksquashfs "$GB/bak" "$WORK/golden.sqfs" -quiet -no-progress -all-root -noappend >/dev/null

# ---------------------------------------------------------------------------------
# 6. The lab itself (host-side driver and checker).
# ---------------------------------------------------------------------------------
ARGS=(run --work "$WORK" --kernel "$VMLINUZ" --initrd "$INITRD" --golden "$WORK/golden.sqfs"
      --factory "$GB/factory" --cuts "$CUTS" --fs "$FSLIST" --jobs "$JOBS" --seed "$SEED")
[ "$BROKEN" = 1 ] && ARGS+=(--broken)
[ -n "$VFAT_OPTS" ] && ARGS+=(--vfat-opts "$VFAT_OPTS")
[ "$REPLAY" != 0 ] && ARGS+=(--replay "$REPLAY")
log "power-cut lab: cuts per filesystem $CUTS, filesystems $FSLIST, seed $SEED, jobs $JOBS$([ "$BROKEN" = 1 ] && echo ', BROKEN build (skips fsync)')"
exec python3 "$HERE/lab.py" "${ARGS[@]}"

# shellcheck shell=bash
# Debian's 6.1 kernel (and foreign architectures) for the QEMU tests (tests/powercut/run.sh, tests/systemd/run.sh):
# linux-image-6.1.0-*-<flavour>, the version linux-image-<flavour> points at, downloaded
# as a .deb (never installed), unpacked with dpkg-deb -x and cached. Sourced, not run.
#
# debian_kernel KDIR FLAVOUR DEBARCH INSTALL WHO
#   KDIR     cache directory (the .deb, root/ unpacked, vmlinux-<version>)
#   FLAVOUR  amd64, armmp or arm64;  DEBARCH  amd64, armhf or arm64
#   INSTALL  1: may run apt-get update and dpkg --add-architecture (as root)
#   WHO      the calling script's name, for messages
# Sets KVER (the kernel version) and VMLINUZ (what QEMU boots: for amd64 the
# uncompressed ELF vmlinux, unpacked once, since decompressing the xz bzImage takes
# seconds under TCG at every boot and the kernel has CONFIG_PVH). Exits 2 on failure.

# apt_update_tolerant: a mirror caught mid-sync fails an index now and then ("File has
# unexpected size ... Mirror sync in progress?"): retry once after 30 s, then go on with
# the lists there are (a download or install that needs a missing list fails by itself,
# naming the package).
apt_update_tolerant() {
    apt-get update -qq || { sleep 30; apt-get update -qq; } ||
        echo "WARNING: apt-get update failed twice; using the package lists there are" >&2
}

# debian_add_arch DEBARCH INSTALL WHO: a foreign architecture's packages can be
# downloaded only once dpkg knows it; adds it (as root, INSTALL=1) or exits 2 saying how.
debian_add_arch() {
    local debarch="$1" install="$2" who="$3"
    [ "$debarch" = "$(dpkg --print-architecture)" ] && return 0
    # Not grep -q: under pipefail its early exit can kill dpkg with SIGPIPE and read as
    # "not known".
    dpkg --print-foreign-architectures | grep -x "$debarch" >/dev/null && return 0
    if [ "$install" != 1 ] || [ "$(id -u)" != 0 ]; then
        echo "$who: dpkg does not know architecture $debarch: run as root (dpkg --add-architecture $debarch && apt-get update)" >&2
        exit 2
    fi
    dpkg --add-architecture "$debarch"
    apt_update_tolerant
}

debian_kernel() {
    local kdir="$1" flavour="$2" debarch="$3" install="$4" who="$5"
    local kpkg kname vmlinux
    mkdir -p "$kdir"
    kpkg="$(ls "$kdir"/linux-image-6.1.0-*-"$flavour"_*.deb 2>/dev/null | head -n1 || true)"
    if [ -z "$kpkg" ]; then
        debian_add_arch "$debarch" "$install" "$who"
        kname() {
            apt-cache depends "linux-image-$flavour:$debarch" 2>/dev/null \
                | awk -v f="$flavour" '$1 == "Depends:" && $2 ~ ("^linux-image-6\\.1\\.0-.*-" f) {print $2; exit}'
        }
        kname="$(kname)"
        if [ -z "$kname" ] && [ "$install" = 1 ]; then apt_update_tolerant; kname="$(kname)"; fi
        if [ -z "$kname" ]; then
            echo "$who: cannot find the linux-image-6.1.0-*-$flavour package name (apt-get update?)" >&2
            exit 2
        fi
        kname="${kname%%:*}:$debarch"
        printf '== downloading %s\n' "$kname"
        (cd "$kdir" && apt-get download "$kname" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
        kpkg="$(ls "$kdir"/linux-image-6.1.0-*-"$flavour"_*.deb 2>/dev/null | head -n1 || true)"
        if [ -z "$kpkg" ]; then
            echo "$who: apt-get download $kname left no .deb in $kdir (network? apt-get update?)" >&2
            exit 2
        fi
    fi
    if [ ! -d "$kdir/root/lib/modules" ]; then
        rm -rf "$kdir/root"
        dpkg-deb -x "$kpkg" "$kdir/root"
    fi
    KVER="$(ls "$kdir/root/lib/modules" | head -n1)"
    VMLINUZ="$kdir/root/boot/vmlinuz-$KVER"
    [ -f "$kdir/root/lib/modules/$KVER/modules.dep" ] || depmod -b "$kdir/root" "$KVER"
    [ "$flavour" = amd64 ] || return 0
    vmlinux="$kdir/vmlinux-$KVER"
    if [ ! -s "$vmlinux" ]; then
        python3 - "$VMLINUZ" "$vmlinux.tmp" <<'PY'
import lzma, sys
data = open(sys.argv[1], "rb").read()
at = data.find(b"\xfd7zXZ\x00")
if at < 0:
    sys.exit(0)  # not xz: keep booting the bzImage
elf = lzma.LZMADecompressor().decompress(data[at:])
if elf[:4] == b"\x7fELF":
    open(sys.argv[2], "wb").write(elf)
PY
        if [ -s "$vmlinux.tmp" ]; then mv "$vmlinux.tmp" "$vmlinux"; else rm -f "$vmlinux.tmp"; fi
    fi
    if [ -s "$vmlinux" ]; then VMLINUZ="$vmlinux"; fi
    return 0
}

# debian_modules IR KDIR KVER WHO MODULE...: copies each module (named as modprobe names
# it) and every module it depends on (modules.dep) from the kernel unpacked in KDIR into
# the initramfs tree IR, with modules.order and modules.builtin, then runs depmod there.
# A module built into this kernel (modules.builtin) needs nothing; a name written NAME?
# is optional (left out when this kernel has no such module); any other missing one
# exits 2.
debian_modules() {
    local ir="$1" kdir="$2" kver="$3" who="$4"
    shift 4
    local mdir="$kdir/root/lib/modules/$kver" m
    local -A seen=()
    # The name of a module file as modprobe takes it: a-b.ko.xz -> a_b.
    local norm='{ n=$1; sub(/.*\//, "", n); sub(/\.ko.*$/, "", n); gsub(/-/, "_", n) }'
    _debian_add_mod() { # NAME OPTIONAL
        local name="$1" optional="$2" path dep
        path="$(awk -F: -v m="$name" "$norm"' n == m { print $1; exit }' "$mdir/modules.dep")"
        if [ -z "$path" ]; then
            awk -v m="$name" "$norm"' n == m { f=1 } END { exit !f }' \
                "$mdir/modules.builtin" 2>/dev/null && return 0
            [ "$optional" = 1 ] && return 0
            echo "$who: module $name not found in $kver" >&2
            exit 2
        fi
        [ -z "${seen[$path]:-}" ] || return 0
        seen[$path]=1
        mkdir -p "$ir/lib/modules/$kver/$(dirname "$path")"
        cp "$mdir/$path" "$ir/lib/modules/$kver/$path"
        for dep in $(awk -F: -v p="$path" '$1 == p { print $2 }' "$mdir/modules.dep"); do
            dep="${dep##*/}"
            dep="${dep%%.ko*}"
            _debian_add_mod "${dep//-/_}" 0
        done
    }
    for m in "$@"; do
        case "$m" in
            *\?) _debian_add_mod "${m%\?}" 1 ;;
            *) _debian_add_mod "$m" 0 ;;
        esac
    done
    cp "$mdir"/modules.{order,builtin} "$ir/lib/modules/$kver/" 2>/dev/null || true
    depmod -b "$ir" "$kver" 2>&1 | grep -v 'modules.builtin.modinfo' >&2 || true
}

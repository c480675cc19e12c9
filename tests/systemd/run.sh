#!/usr/bin/env bash
# systemd integration test for rebound: dist/systemd/rebound-boot.service, its generator
# and the stop-boot drop-in, checked by systemd itself.
#
#   Stage 1 (seconds): `systemd-analyze verify` of the unit alone and with both drop-ins
#     (the generator's and stop-boot-on-lost.conf) in a staged root; the generator run
#     by busybox sh and dash with a good, a bad and a missing configuration.
#   Stage 2 (minutes): a minimal Debian 12 with systemd (debootstrap) booted under QEMU
#     (TCG) with Debian's 6.1 kernel; the protected files on their own partition (vdb,
#     /data in /etc/fstab, `nofail`), sealed on the host, then damaged on the host:
#     one file healable (apn_cfg.json, live copy corrupt), one lost (system_config.json,
#     live and golden copy corrupt).
#     Boot 1, the shipped unit (default policy): rebound-boot ran after data.mount (the
#     generator's RequiresMountsFor= in effect), healed apn_cfg.json (journal + hash),
#     named the lost file in the journal, exit status 3 counted as success, and finished
#     before app.service started, which saw the healed file; the boot went on.
#     Boot 2, plus stop-boot-on-lost.conf: the unit failed with status 3, the system is
#     in emergency.target, app.service never started, /data stayed mounted.
#     Boot 3, the shipped unit without /etc/rebound.toml: the generator wrote no drop-in
#     and said why in the kernel log, the unit failed (status 2), the boot went on.
#     Boot 4, stop-boot-on-lost.conf and a blank /data disk: data.mount failed, rebound
#     never ran (dependency), OnFailure= stopped the boot all the same.
#   The guest writes its findings to a raw results disk; this script checks them.
#
# Usage: tests/systemd/run.sh [--no-install] [--stage1-only]
#   --no-install   never apt-get (everything must be there)
#   --stage1-only  systemd-analyze verify and the generator checks only
# Environment: REBOUND_DEB=the Debian package (tests/deb/run.sh builds it: .ci/run
# passes it): the guest gets it with `dpkg -i` in its root, and the host-side checks use
# its binary, unit, generator and drop-in (unpacked with dpkg-deb -x). Without it:
# REBOUND_BIN=path of a built `rebound` (default: cargo build --release -p rebound-cli,
# target/release/rebound) and the files of dist/systemd, copied to the packaged paths.
#
# Needs root (apt-get, debootstrap, device nodes in the image); without root it says so
# and exits 0 (skipped). Downloads are cached: the Debian root as a tarball under
# tests/systemd/work/ (git-ignored), the kernel .deb where tests/powercut/run.sh keeps
# it (tests/powercut/work/kernel). Exit status: 0 passed (or skipped), 1 a check
# failed, 2 setup error.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=tests/lib/debian-kernel.sh
. "$REPO/tests/lib/debian-kernel.sh"
WORK="$HERE/work"
DIST="$REPO/dist/systemd"

INSTALL=1
STAGE1_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --no-install) INSTALL=0 ;;
        --stage1-only) STAGE1_ONLY=1 ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "tests/systemd/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

T0=$SECONDS
log() { printf '== [%3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { echo "tests/systemd/run.sh: $*" >&2; exit 2; }
FAILS=0
pass() { printf '   ok   %s\n' "$*"; }
fail() { printf '   FAIL %s\n' "$*"; FAILS=$((FAILS + 1)); }
check() { # check "what" command...
    local what="$1"; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

if [ "$(id -u)" != 0 ]; then
    echo "tests/systemd/run.sh: SKIPPED: needs root (apt-get, debootstrap, device nodes in the guest image); run it as root on Debian 12"
    exit 0
fi
mkdir -p "$WORK"

# ---------------------------------------------------------------------------------
# 1. Host packages (Debian 12).
# ---------------------------------------------------------------------------------
PKGS="systemd debootstrap qemu-system-x86 busybox-static dash e2fsprogs kmod cpio python3 file"
missing() {
    local c
    for c in systemd-analyze systemctl debootstrap qemu-system-x86_64 busybox dash mkfs.ext4 debugfs depmod cpio python3 file; do
        command -v "$c" >/dev/null 2>&1 || return 0
    done
    file -L "$(command -v busybox)" | grep -q 'statically linked' || return 0
    return 1
}
if missing; then
    [ "$INSTALL" = 1 ] || die "missing tools and --no-install given (need: $PKGS)"
    log "installing $PKGS"
    export DEBIAN_FRONTEND=noninteractive
    apt_update_tolerant
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
fi

# ---------------------------------------------------------------------------------
# 2. rebound itself (x86_64: the guest is an amd64 Debian).
# ---------------------------------------------------------------------------------
DEB="${REBOUND_DEB:-}"
if [ -n "$DEB" ]; then
    [ -f "$DEB" ] || die "REBOUND_DEB=$DEB: no such file (build it with tests/deb/run.sh)"
    DEB="$(cd "$(dirname "$DEB")" && pwd)/$(basename "$DEB")"
    log "the package: $DEB"
    rm -rf "$WORK/deb-x"
    dpkg-deb -x "$DEB" "$WORK/deb-x"
    REBOUND="$WORK/deb-x/usr/bin/rebound"
    # The unit and generator as packaged; the drop-in from the package's examples.
    DIST="$WORK/deb-x/dist-systemd"
    mkdir -p "$DIST"
    cp "$WORK/deb-x/usr/lib/systemd/system/rebound-boot.service" \
        "$WORK/deb-x/usr/lib/systemd/system-generators/rebound-generator" \
        "$WORK/deb-x/usr/share/doc/rebound/examples/systemd/stop-boot-on-lost.conf" "$DIST/"
elif [ -n "${REBOUND_BIN:-}" ]; then
    REBOUND="$REBOUND_BIN"
else
    log "building rebound (cargo build --release -p rebound-cli)"
    (cd "$REPO" && cargo build --quiet --release -p rebound-cli)
    REBOUND="$REPO/target/release/rebound"
fi
[ -x "$REBOUND" ] || die "no rebound binary at $REBOUND"

# The one place that puts rebound into a root file system, as the package would.
# (To test the Debian package instead: dpkg -x/--root it here, and keep the enable.)
install_rebound() { # ROOT
    local root="$1"
    if [ -n "$DEB" ] && [ -x "$root/usr/bin/dpkg" ]; then
        # A Debian root (the guest's): the package as an image build installs it, its
        # postinst included (it only prints a note), then the administrator's enable.
        cp "$DEB" "$root/tmp/rebound.deb"
        chroot "$root" dpkg -i /tmp/rebound.deb > "$WORK/dpkg-i.log" 2>&1 \
            || { cat "$WORK/dpkg-i.log" >&2; die "dpkg -i rebound.deb in the guest root failed"; }
        rm -f "$root/tmp/rebound.deb"
        systemctl --root="$root" --quiet enable rebound-boot.service
        return
    fi
    install -D -m 0755 "$REBOUND" "$root/usr/bin/rebound"
    install -D -m 0644 "$DIST/rebound-boot.service" "$root/usr/lib/systemd/system/rebound-boot.service"
    install -D -m 0755 "$DIST/rebound-generator" "$root/usr/lib/systemd/system-generators/rebound-generator"
    systemctl --root="$root" --quiet enable rebound-boot.service
}

# ---------------------------------------------------------------------------------
# 3. Stage 1: systemd-analyze verify, the generator on the host.
# ---------------------------------------------------------------------------------
log "stage 1: systemd-analyze verify and the generator"
S1="$WORK/stage1"
rm -rf "$S1"
mkdir -p "$S1"
# `verify` loads the unit with the host's systemd (no running systemd needed) from a
# root directory; --man=no: no man pages here. It prints warnings (an unknown key, a
# bad value) but exits 0 for them: any output at all fails this stage.
verify_root() { # ROOT UNIT LOG -> 0 if clean
    local out rc=0
    out="$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no --root="$1" "$2" 2>&1)" || rc=$?
    printf '%s\n' "$out" > "$3"
    [ "$rc" = 0 ] && [ -z "$out" ] && return 0
    printf '        %s\n' "systemd-analyze verify exit status $rc:" "$out"
    return 1
}
R1="$S1/root"
mkdir -p "$R1/etc"
install_rebound "$R1"
check "systemd-analyze verify rebound-boot.service" verify_root "$R1" rebound-boot.service "$S1/verify-unit.log"
check "systemctl --root enable: linked into sysinit.target.wants" test -L "$R1/etc/systemd/system/sysinit.target.wants/rebound-boot.service"

# The generator, with the device's shells (busybox ash, dash), against a configuration
# whose roots need quoting.
GENCONF="$S1/rebound.toml"
cat > "$GENCONF" <<'EOF'
[[set]]
name = "config"
mode = "golden"
live = "/data/live"
golden = "/factory/golden 1"
include = ["**"]
EOF
gen() { # "SHELL" CONFIG OUTDIR [BIN]: the generator's stderr goes to OUTDIR.err
    rm -rf "$3"; mkdir -p "$3"
    # shellcheck disable=SC2086
    # REBOUND_GENERATOR_KMSG: not the host's kernel log (the boots check /dev/kmsg).
    REBOUND_GENERATOR_BIN="${4:-$REBOUND}" REBOUND_GENERATOR_CONFIG="$2" REBOUND_GENERATOR_KMSG=/nonexistent \
        timeout 20 $1 "$DIST/rebound-generator" "$3" "$3.early" "$3.late" 2> "$3.err"
}
only_dropin() { # OUTDIR: the drop-in and nothing else, no message
    [ "$(cd "$1" && find . -mindepth 1 | sort | tr '\n' ' ')" = "./rebound-boot.service.d ./rebound-boot.service.d/50-mounts.conf " ] \
        && [ ! -s "$1.err" ]
}
nothing_but_message() { # OUTDIR PATTERN: nothing written, the message on stderr
    [ -z "$(ls -A "$1")" ] && grep -q "$2" "$1.err"
}
printf 'not toml\n' > "$S1/bad.toml"
for sh in "busybox sh" dash; do
    d="$S1/gen-${sh// /-}"
    check "generator ($sh): exit 0 with a good configuration" gen "$sh" "$GENCONF" "$d"
    check "generator ($sh): the drop-in names every root, quoted" \
        grep -qx 'RequiresMountsFor=/data/live "/factory/golden 1"' "$d/rebound-boot.service.d/50-mounts.conf"
    check "generator ($sh): the drop-in starts with the generator's name" \
        grep -qx '# Written by rebound-generator .*' <<< "$(head -n1 "$d/rebound-boot.service.d/50-mounts.conf")"
    check "generator ($sh): nothing else written, no message" only_dropin "$d"
    check "generator ($sh): bad configuration: exit 0" gen "$sh" "$S1/bad.toml" "$d"
    check "generator ($sh): bad configuration: nothing written, stderr names the file" \
        nothing_but_message "$d" "^rebound-generator: .*$S1/bad.toml"
    check "generator ($sh): missing configuration: exit 0" gen "$sh" "$S1/none.toml" "$d"
    check "generator ($sh): missing configuration: nothing written, stderr says so" \
        nothing_but_message "$d" "^rebound-generator: $S1/none.toml does not exist"
    check "generator ($sh): no rebound binary: exit 0" \
        gen "$sh" "$GENCONF" "$d" /nonexistent
    check "generator ($sh): no rebound binary: nothing written, stderr says so" \
        nothing_but_message "$d" "^rebound-generator: /nonexistent not found"
done
# The unit with both drop-ins, as systemd loads it. `verify` reads no generator
# directory (it runs no generator): the generator writes into /etc here; the boot test
# checks the real place, /run/systemd/generator.
R2="$S1/root-dropins"
mkdir -p "$R2/etc/systemd/system"
install_rebound "$R2"
gen dash "$GENCONF" "$S1/gen-final"
cp -r "$S1/gen-final/rebound-boot.service.d" "$R2/etc/systemd/system/"
cp "$DIST/stop-boot-on-lost.conf" "$R2/etc/systemd/system/rebound-boot.service.d/"
check "systemd-analyze verify with both drop-ins" verify_root "$R2" rebound-boot.service "$S1/verify-dropins.log"
SYSTEMD_LOG_LEVEL=debug systemd-analyze verify --man=no --root="$R2" rebound-boot.service > "$S1/dump.log" 2>&1 || true
for want in "DropIn Path: $R2/etc/systemd/system/rebound-boot.service.d/50-mounts.conf" \
            "DropIn Path: $R2/etc/systemd/system/rebound-boot.service.d/stop-boot-on-lost.conf" \
            "RequiresMountsFor: /data/live" "RequiresMountsFor: /factory/golden 1" \
            "OnFailure: emergency.target" "OnFailureJobMode: replace-irreversibly" "TimeoutStartSec: 15min"; do
    check "loaded unit: $want" grep -qF "$want" "$S1/dump.log"
done
if [ "$STAGE1_ONLY" = 1 ]; then
    log "stage 1 done: $FAILS failed check(s)"
    [ "$FAILS" = 0 ] || exit 1
    exit 0
fi

# ---------------------------------------------------------------------------------
# 4. Kernel: Debian's linux-image-6.1.0-*-amd64, downloaded and unpacked (never
#    installed) by the function tests/powercut/run.sh uses, into the same cache.
# ---------------------------------------------------------------------------------
KDIR="$REPO/tests/powercut/work/kernel"
debian_kernel "$KDIR" amd64 amd64 "$INSTALL" tests/systemd/run.sh
log "kernel $KVER ($(basename "$VMLINUZ"))"

# ---------------------------------------------------------------------------------
# 5. The initramfs: static busybox, virtio + ext4 modules, guest/initramfs-init.
# ---------------------------------------------------------------------------------
IR="$WORK/initramfs"
rm -rf "$IR"
mkdir -p "$IR"/{bin,proc,sys,dev,newroot}
cp "$(command -v busybox)" "$IR/bin/busybox"
for a in sh mount umount modprobe sleep mkdir poweroff switch_root; do ln -s busybox "$IR/bin/$a"; done
cp "$HERE/guest/initramfs-init" "$IR/init"
debian_modules "$IR" "$KDIR" "$KVER" tests/systemd/run.sh virtio_pci virtio_blk ext4 crc32c_generic
INITRD="$WORK/initrd.cpio.gz"
(cd "$IR" && find . | cpio -o -H newc --quiet | gzip -1 > "$INITRD")

# ---------------------------------------------------------------------------------
# 6. The Debian 12 root: debootstrap once, cached as a tarball.
# ---------------------------------------------------------------------------------
INCLUDE="systemd-sysv,udev,e2fsprogs"
TARBALL="$WORK/rootfs-bookworm-minbase-${INCLUDE//,/+}.tar"
if [ ! -s "$TARBALL" ]; then
    log "debootstrap bookworm (minbase + $INCLUDE): once, then cached in $(basename "$TARBALL")"
    rm -rf "$WORK/debootstrap"
    debootstrap --variant=minbase --include="$INCLUDE" bookworm "$WORK/debootstrap" \
        http://deb.debian.org/debian > "$WORK/debootstrap.log" 2>&1 \
        || die "debootstrap failed: see $WORK/debootstrap.log"
    rm -rf "$WORK/debootstrap/var/cache/apt/archives/"*.deb "$WORK/debootstrap/var/lib/apt/lists/"*
    tar -C "$WORK/debootstrap" -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$WORK/debootstrap"
fi
log "staging the guest root"
ROOT="$WORK/root"
rm -rf "$ROOT"
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$TARBALL"
echo rebound-test > "$ROOT/etc/hostname"
# /data: its own partition, `nofail` (a broken data partition must not stop the boot).
# local-fs.target does not wait for a nofail mount: only the generator's
# RequiresMountsFor= orders rebound-boot.service after it.
cat > "$ROOT/etc/fstab" <<'EOF'
/dev/vda  /      ext4  rw,errors=remount-ro  0 0
/dev/vdb  /data  ext4  rw,nofail             0 2
EOF
mkdir -p "$ROOT/data"
cat > "$ROOT/etc/rebound.toml" <<'EOF'
[[set]]
name = "config"
mode = "golden"
live = "/data/live"
golden = "/data/golden"
include = ["apn_cfg.json", "system_config.json", "app/**"]
EOF
install_rebound "$ROOT"
cp "$ROOT/etc/rebound.toml" "$WORK/guest-rebound.toml"
install -m 0644 "$HERE/guest/app.service" "$HERE/guest/report.service" "$ROOT/etc/systemd/system/"
install -D -m 0755 "$HERE/guest/app.sh" "$ROOT/usr/local/sbin/app.sh"
install -D -m 0755 "$HERE/guest/report.sh" "$ROOT/usr/local/sbin/report.sh"
systemctl --root="$ROOT" --quiet enable app.service report.service
# Nothing the test does not need (timers, a login prompt on the console).
systemctl --root="$ROOT" --quiet mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer fstrim.timer e2scrub_reap.service getty@tty1.service serial-getty@ttyS0.service

# ---------------------------------------------------------------------------------
# 7. The data partition: sealed on the host (a configuration naming the staging
#    directories; manifests hold relative paths), then damaged.
# ---------------------------------------------------------------------------------
log "sealing and damaging the data partition"
DATA="$WORK/data"
rm -rf "$DATA"
mkdir -p "$DATA/live/app" "$DATA/golden"
printf '{"apn": "iot.example", "user": "", "auth": 0}\n' > "$DATA/live/apn_cfg.json"
printf '{"log_level": 2, "watchdog": true}\n' > "$DATA/live/system_config.json"
printf 'print("app")\n' > "$DATA/live/app/main.py"
cat > "$WORK/seal.toml" <<EOF
[[set]]
name = "config"
mode = "golden"
live = "$DATA/live"
golden = "$DATA/golden"
include = ["apn_cfg.json", "system_config.json", "app/**"]
EOF
"$REBOUND" -c "$WORK/seal.toml" seal > "$WORK/seal.log" 2>&1 || die "seal failed: see $WORK/seal.log"
APN_SHA="$(sha256sum "$DATA/live/apn_cfg.json" | cut -d' ' -f1)"
echo "$APN_SHA" > "$ROOT/etc/app-expected.sha256"
printf '{"apn": "iot.exampl\x00", "user": "", "auth": 0}\n' > "$DATA/live/apn_cfg.json"   # healable
printf '{"log_level": 9, "watchdog": true}\n' > "$DATA/live/system_config.json"          # lost:
printf '{"log_level": 7, "watchdog": true}\n' > "$DATA/golden/system_config.json"        # both bad
"$REBOUND" -c "$WORK/seal.toml" verify > "$WORK/verify-before.log" 2>&1 && die "verify found no damage after damaging (see $WORK/verify-before.log)"
mkfs.ext4 -q -F -L data -d "$DATA" "$WORK/data.img" 64M > /dev/null

# ---------------------------------------------------------------------------------
# 8. Boots.
# ---------------------------------------------------------------------------------
QBOOT=/usr/share/qemu/qboot.rom
boot() { # NAME: boots root.img + data.img, results in $WORK/NAME.results
    local name="$1" t
    truncate -s 0 "$WORK/results.img"
    truncate -s 1M "$WORK/results.img"
    local bios=()
    [ -f "$QBOOT" ] && bios=(-bios "$QBOOT")
    t=$SECONDS
    timeout 900 qemu-system-x86_64 -machine pc "${bios[@]}" -accel tcg -m 768 -smp 1 \
        -nodefaults -display none -no-reboot -monitor none \
        -serial "file:$WORK/$name.console.log" -kernel "$VMLINUZ" -initrd "$INITRD" \
        -append "console=ttyS0 no_timer_check panic=-1 mitigations=off loglevel=4" \
        -drive "if=none,id=d0,file=$WORK/root.img,format=raw,cache=unsafe" -device virtio-blk-pci,drive=d0,addr=0x4 \
        -drive "if=none,id=d1,file=$WORK/data.img,format=raw,cache=unsafe" -device virtio-blk-pci,drive=d1,addr=0x5 \
        -drive "if=none,id=d2,file=$WORK/results.img,format=raw,cache=unsafe" -device virtio-blk-pci,drive=d2,addr=0x6 \
        < /dev/null > "$WORK/$name.qemu.log" 2>&1 || echo "   (qemu exit status $?: see $WORK/$name.qemu.log)"
    tr -d '\0' < "$WORK/results.img" > "$WORK/$name.results"
    log "$name: guest ran $((SECONDS - t)) s (console: $WORK/$name.console.log)"
    declare -gA R=()
    local k v
    while IFS='=' read -r k v; do
        case "$k" in journal:*|kmsg:*|chain:*|"") ;; *) R[$k]="$v" ;; esac
    done < "$WORK/$name.results"
    if ! grep -qx END "$WORK/$name.results"; then
        fail "$name: the guest wrote no complete report (see $WORK/$name.console.log)"
        return 1
    fi
}
r() { printf '%s' "${R[$1]:-}"; }
lt() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" -gt 0 ] && [ "$1" -lt "$2" ]; }
le() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" -gt 0 ] && [ "$1" -le "$2" ]; }
journal_has() { grep -q "^journal: .*$2" "$WORK/$1.results"; }

make_root_img() {
    rm -f "$WORK/root.img"
    mkfs.ext4 -q -F -L root -d "$ROOT" "$WORK/root.img" 1G > /dev/null
}

log "boot 1: the shipped unit, default policy"
make_root_img
if boot boot1; then
    check "boot 1: generator drop-in in effect (DropInPaths)" \
        grep -q '/run/systemd/generator/rebound-boot.service.d/50-mounts.conf' <<< "$(r rebound-boot.service.DropInPaths)"
    check "boot 1: RequiresMountsFor = /data/golden /data/live (systemd's order varies)" \
        test "$(r rebound-boot.service.RequiresMountsFor | tr ' ' '\n' | sort | tr '\n' ' ')" = "/data/golden /data/live "
    check "boot 1: rebound-boot requires data.mount" grep -qw data.mount <<< "$(r rebound-boot.service.Requires)"
    check "boot 1: rebound-boot started after data.mount was up" \
        lt "$(r data.mount.ActiveEnterTimestampMonotonic)" "$(r rebound-boot.service.ExecMainStartTimestampMonotonic)"
    check "boot 1: rebound-boot finished before app.service started" \
        le "$(r rebound-boot.service.ExecMainExitTimestampMonotonic)" "$(r app.service.ExecMainStartTimestampMonotonic)"
    check "boot 1: exit status 3 (a file lost), unit active (continue policy)" \
        test "$(r rebound-boot.service.ExecMainStatus)/$(r rebound-boot.service.ActiveState)/$(r rebound-boot.service.Result)" = "3/active/success"
    check "boot 1: journal: apn_cfg.json restored from the golden copy" \
        journal_has boot1 'done: restore /data/live/apn_cfg.json from /data/golden/apn_cfg.json'
    check "boot 1: journal names the lost file" journal_has boot1 'LOST: system_config.json'
    check "boot 1: the healed file's hash, in the guest" test "$(r sha_apn)" = "$APN_SHA"
    check "boot 1: app.service saw the file intact" test "$(r app_saw)" = intact
    check "boot 1: the boot went on (app.service and multi-user.target active)" \
        test "$(r app.service.ActiveState)/$(r multi-user.target.ActiveState)" = "active/active"
    check "boot 1: the healed file's hash, read from data.img on the host" \
        test "$(debugfs -R 'cat /live/apn_cfg.json' "$WORK/data.img" 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$APN_SHA"
fi

log "boot 2: plus stop-boot-on-lost.conf, the same data partition (a file still lost)"
install -D -m 0644 "$DIST/stop-boot-on-lost.conf" "$ROOT/etc/systemd/system/rebound-boot.service.d/stop-boot-on-lost.conf"
make_root_img
if boot boot2; then
    check "boot 2: stop-boot drop-in in effect (DropInPaths)" \
        grep -q '/etc/systemd/system/rebound-boot.service.d/stop-boot-on-lost.conf' <<< "$(r rebound-boot.service.DropInPaths)"
    check "boot 2: exit status 3, unit failed" \
        test "$(r rebound-boot.service.ExecMainStatus)/$(r rebound-boot.service.ActiveState)" = "3/failed"
    check "boot 2: journal names the lost file" journal_has boot2 'LOST: system_config.json'
    check "boot 2: in emergency.target, sysinit.target and multi-user.target not reached" \
        test "$(r emergency.target.ActiveState)/$(r sysinit.target.ActiveState)/$(r multi-user.target.ActiveState)" = "active/inactive/inactive"
    check "boot 2: app.service never started" \
        test "$(r app.service.ActiveState)/$(r app.service.ExecMainStartTimestampMonotonic)/$(r app_saw)" = "inactive/0/none"
    check "boot 2: no start job left pending" test "$(r jobs_left)" = 0
    check "boot 2: what was up stays up for the emergency shell (data.mount active)" \
        test "$(r data.mount.ActiveState)" = active
fi

log "boot 3: no /etc/rebound.toml (the default policy again)"
rm -f "$ROOT/etc/systemd/system/rebound-boot.service.d/stop-boot-on-lost.conf" "$ROOT/etc/rebound.toml"
make_root_img
if boot boot3; then
    check "boot 3: the generator said so in the kernel log" \
        grep -q '^kmsg: .*rebound-generator: /etc/rebound.toml does not exist' "$WORK/boot3.results"
    check "boot 3: no generator drop-in" test -z "$(r rebound-boot.service.DropInPaths)"
    check "boot 3: exit status 2, unit failed" \
        test "$(r rebound-boot.service.ExecMainStatus)/$(r rebound-boot.service.ActiveState)" = "2/failed"
    check "boot 3: the journal names the missing file" journal_has boot3 '/etc/rebound.toml'
    check "boot 3: the boot went on (app.service and multi-user.target active)" \
        test "$(r app.service.ActiveState)/$(r multi-user.target.ActiveState)" = "active/active"
fi

log "boot 4: stop-boot-on-lost.conf, /data cannot be mounted (a blank disk)"
install -D -m 0644 "$DIST/stop-boot-on-lost.conf" "$ROOT/etc/systemd/system/rebound-boot.service.d/stop-boot-on-lost.conf"
cp "$WORK/guest-rebound.toml" "$ROOT/etc/rebound.toml"
make_root_img
truncate -s 0 "$WORK/data.img"
truncate -s 64M "$WORK/data.img"
if boot boot4; then
    check "boot 4: data.mount failed" test "$(r data.mount.ActiveState)" = failed
    check "boot 4: rebound boot never ran (its start job failed: dependency)" \
        test "$(r rebound-boot.service.ExecMainStartTimestampMonotonic)" = 0
    check "boot 4: journal: dependency failed, OnFailure= triggered" \
        eval "journal_has boot4 'Dependency failed for rebound-boot.service' && journal_has boot4 'Triggering OnFailure= dependencies'"
    check "boot 4: in emergency.target, sysinit.target and multi-user.target not reached" \
        test "$(r emergency.target.ActiveState)/$(r sysinit.target.ActiveState)/$(r multi-user.target.ActiveState)" = "active/inactive/inactive"
    check "boot 4: app.service never started" \
        test "$(r app.service.ActiveState)/$(r app.service.ExecMainStartTimestampMonotonic)/$(r app_saw)" = "inactive/0/none"
fi

log "done in $((SECONDS - T0)) s: $FAILS failed check(s)"
[ "$FAILS" = 0 ] || exit 1

#!/usr/bin/env bash
# OTA hooks of dist/rauc, dist/swupdate and dist/mender, driven by the real update tools
# of Debian 12 (docs/integration.md, sections "RAUC", "SWUpdate" and "Mender"):
#
#   RAUC 1.8       `rauc service` on a private D-Bus system bus (its own dbus-daemon, not
#                  the machine's), bootloader=noop, two ext4-image slots (loop-mounted by
#                  RAUC itself), bundles signed with a throwaway key; `rauc install`
#                  calls the slot hook (rebound-hook) and the post-install handler.
#   SWUpdate       the `swupdate` daemon, each .swu sent with `swupdate-client` (Debian's
#   2022.12        build insists on signed images: CMS, throwaway certificate); the
#                  archive handler unpacks the set's files, the shellscript handler calls
#                  rebound.sh preinst / postinst. (Not `swupdate -i`: see swupdate_tests.)
#   Mender 3.4     `mender install ARTIFACT` (standalone) in a private mount namespace
#                  whose /etc/mender is a test directory; a `directory` update-module
#                  Artifact made by mender-artifact carries ArtifactInstall_Leave_50_rebound.
#
# Each tool updates a small golden-mode set (live, golden, one extra copy) in a temporary
# directory; the test checks the new content landed in every copy and `rebound verify`
# exits 0, and that a refused update (file outside the set, unknown set, broken
# configuration) makes the tool report failure with rebound's message in its log and
# leaves the old files intact. The device-side scripts that are run directly (Mender's
# idempotent rerun and lock case, the inventory script) run under busybox sh with only
# busybox applets on PATH.
#
# Usage: tests/ota/run.sh [--no-install]
#   REBOUND_BIN=PATH  the rebound binary to test (default: target/release/rebound, built
#                     with `cargo build --release -p rebound-cli` if missing or stale)
# Needs root (apt-get, loop mounts, a mount namespace); without root it says so and
# exits 0. Downloads (.deb files) are cached under tests/ota/work/apt (git-ignored).
# Exit status: 0 every check passed (or skipped: not root); 1 a check failed; 2 setup error.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WORK="$HERE/work"
INSTALL=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-install) INSTALL=0 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "tests/ota/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$(id -u)" != 0 ]; then
    echo "SKIP tests/ota: needs root (apt-get for rauc/swupdate/mender-client, loop mounts for RAUC's slots, a mount namespace for Mender); run tests/ota/run.sh as root"
    exit 0
fi

T0=$(date +%s)
log() { echo "[ota $(( $(date +%s) - T0 ))s] $*"; }
die() { echo "tests/ota/run.sh: $*" >&2; exit 2; }

# ---------------------------------------------------------------------------------
# Packages (cached under work/apt) and binaries.
# ---------------------------------------------------------------------------------
PKGS="rauc rauc-service dbus-daemon swupdate mender-client mender-artifact e2fsprogs squashfs-tools openssl cpio util-linux python3"
need_install() {
    local c
    for c in rauc dbus-daemon swupdate mender mender-artifact mkfs.ext4 mksquashfs openssl cpio unshare flock python3 busybox; do
        command -v "$c" >/dev/null 2>&1 || return 0
    done
    [ -e /usr/share/dbus-1/system.d/de.pengutronix.rauc.conf ] || return 0
    return 1
}
if need_install; then
    [ "$INSTALL" = 1 ] || die "missing tools and --no-install given (need: $PKGS busybox)"
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: install $PKGS and busybox(-static) by hand"
    log "installing $PKGS"
    mkdir -p "$WORK/apt/partial"
    export DEBIAN_FRONTEND=noninteractive
    # A mirror caught mid-sync fails an index now and then: retry once, then go on
    # with the lists there are (the install below fails if a package is missing).
    apt-get update -qq || { sleep 30; apt-get update -qq; } ||
        echo "WARNING: apt-get update failed twice; using the package lists there are" >&2
    BB_PKG=""
    command -v busybox >/dev/null 2>&1 || BB_PKG=busybox-static
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends -o Dir::Cache::archives="$WORK/apt/" \
        $PKGS $BB_PKG >/dev/null
fi

if [ -n "${REBOUND_BIN:-}" ]; then
    REB="$REBOUND_BIN"
else
    log "cargo build --release -p rebound-cli"
    (cd "$REPO" && cargo build --release -q -p rebound-cli) || die "cargo build failed"
    REB="$REPO/target/release/rebound"
fi
[ -x "$REB" ] || die "$REB: not an executable (set REBOUND_BIN)"

RUN="$WORK/run"
# unmount_run: anything still mounted under $RUN (RAUC unmounts what it mounts; a killed
# run may leave its slot or bundle mounted), deepest first.
unmount_run() {
    awk -v p="$RUN/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}
unmount_run
rm -rf "$RUN"
mkdir -p "$RUN/bin" "$RUN/bb"
ln -s "$REB" "$RUN/bin/rebound"
# busybox applets only: the device-side scripts run with this PATH (plus rebound).
BUSYBOX="$(command -v busybox)"
"$BUSYBOX" --list > "$RUN/bb.list"
for a in sh awk sed grep mktemp ls cat rm head sleep tr cut; do
    grep -qx "$a" "$RUN/bb.list" || die "busybox at $BUSYBOX has no $a applet"
    ln -s "$BUSYBOX" "$RUN/bb/$a"
done
export PATH="$RUN/bin:$PATH"
BBPATH="$RUN/bb:$RUN/bin"

# ---------------------------------------------------------------------------------
# Checks and cleanup.
# ---------------------------------------------------------------------------------
FAILS=0
pass() { echo "  ok: $*"; }
fail() { echo "  FAIL: $*"; FAILS=$((FAILS + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what="$1"; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
has() { grep -qF -- "$2" "$1"; }        # has FILE TEXT
content_is() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    unmount_run
}
trap cleanup EXIT

# device DIR: a golden-mode set `config` (live, golden, one extra copy) under DIR,
# files a.conf and b.conf, sealed; configuration DIR/rebound.toml.
device() {
    local d="$1"
    mkdir -p "$d/live" "$d/golden" "$d/copy"
    echo "a1" > "$d/live/a.conf"
    echo "b1" > "$d/live/b.conf"
    cat > "$d/rebound.toml" <<EOF
[[set]]
name = "config"
mode = "golden"
live = "$d/live"
golden = "$d/golden"
copies = ["$d/copy"]
include = ["*.conf"]
EOF
    rebound -c "$d/rebound.toml" seal >/dev/null || die "rebound seal failed in $d"
}
# landed DIR FILE CONTENT: FILE holds CONTENT in the live copy and the extra copy.
landed() { content_is "$1/live/$2" "$3" && content_is "$1/copy/$2" "$3"; }
verify_ok() { rebound -c "$1/rebound.toml" verify >/dev/null 2>&1; }
generation() {
    rebound -c "$1/rebound.toml" status --json | python3 -c '
import json, sys
sets = json.load(sys.stdin)
print(max(r["generation"] for r in sets[0]["replicas"] if r["role"] == "writable"))'
}

# ---------------------------------------------------------------------------------
# RAUC
# ---------------------------------------------------------------------------------
rauc_tests() {
    local R="$RUN/rauc" D="$RUN/rauc/dev" f0=$FAILS
    log "RAUC $(rauc --version | awk '{print $2}'): bundles through rauc service on a private bus"
    mkdir -p "$R/mnt" "$R/data"
    device "$D"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$R/key.pem" -out "$R/cert.pem" -days 30 \
        -subj "/O=rebound test/CN=rebound-ota-rauc" >/dev/null 2>&1 || die "openssl: cannot make RAUC's test key"
    truncate -s 8M "$R/slotA.img" "$R/slotB.img"
    mkfs.ext4 -q -F "$R/slotA.img" && mkfs.ext4 -q -F "$R/slotB.img"
    install -m 0755 "$REPO/dist/rauc/rebound-post-install" "$R/rebound-post-install"
    cat > "$R/system.conf" <<EOF
[system]
compatible=rebound-ota-test
bootloader=noop
mountprefix=$R/mnt
data-directory=$R/data

[keyring]
path=$R/cert.pem

[handlers]
post-install=$R/rebound-post-install

[slot.rootfs.0]
device=$R/slotA.img
type=ext4
bootname=A

[slot.rootfs.1]
device=$R/slotB.img
type=ext4
bootname=B
EOF
    cat > "$R/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$R/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
    dbus-daemon --config-file="$R/bus.conf" --nofork > "$R/bus.log" 2>&1 &
    PIDS+=("$!")
    export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$R/bus.sock"

    for _ in $(seq 50); do [ -S "$R/bus.sock" ] && break; sleep 0.1; done
    [ -S "$R/bus.sock" ] || die "dbus-daemon did not start (see $R/bus.log)"
    # The service's environment is the hooks' environment: the device's rebound
    # configuration and PATH. The slot hook and the handler use their default settings.
    REBOUND_CONFIG="$D/rebound.toml" rauc service --conf="$R/system.conf" \
        --override-boot-slot=A > "$R/service.log" 2>&1 &
    PIDS+=("$!")
    # (rauc status aborts with SIGTRAP while the service is not on the bus yet: subshell)
    for _ in $(seq 100); do (rauc status >/dev/null 2>&1) 2>/dev/null && break; sleep 0.1; done
    (rauc status >/dev/null 2>&1) 2>/dev/null || die "rauc service did not start (see $R/service.log)"

    # bundle NAME: bundle from $R/NAME/rootfs (the slot image) and $R/NAME/extra (more
    # bundle content); slot hook if $R/NAME/hook exists.
    bundle() {
        local b="$R/$1" dir="$R/$1/bundle"
        mkdir -p "$dir" "$b/rootfs"
        echo "slot image of $1" > "$b/rootfs/os-release"
        truncate -s 4M "$dir/rootfs.ext4"
        mkfs.ext4 -q -F -d "$b/rootfs" "$dir/rootfs.ext4"
        [ -d "$b/extra" ] && cp -a "$b/extra/." "$dir/"
        {
            printf '[update]\ncompatible=rebound-ota-test\nversion=%s\n\n' "$1"
            if [ -e "$b/hook" ]; then
                cp "$REPO/dist/rauc/rebound-hook" "$dir/rebound-hook"
                chmod 0755 "$dir/rebound-hook"
                printf '[hooks]\nfilename=rebound-hook\n\n'
                printf '[image.rootfs]\nfilename=rootfs.ext4\nhooks=post-install\n'
            else
                printf '[image.rootfs]\nfilename=rootfs.ext4\n'
            fi
        } > "$dir/manifest.raucm"
        rauc bundle --cert="$R/cert.pem" --key="$R/key.pem" "$dir" "$b.raucb" > "$b.bundle.log" 2>&1 \
            || die "rauc bundle $1 failed (see $b.bundle.log)"
    }
    install_bundle() { # install_bundle NAME: rauc install's exit status, output in NAME.log
        local rc=0
        cp "$R/service.log" "$R/service.log.before"
        rauc install "$R/$1.raucb" > "$R/$1.log" 2>&1 || rc=$?
        # this installation's part of the service log
        tail -c +"$(( $(stat -c %s "$R/service.log.before") + 1 ))" "$R/service.log" > "$R/$1.service.log"
        return "$rc"
    }

    # 1. slot hook: the new slot carries rebound/config/a.conf.
    mkdir -p "$R/slot-ok/rootfs/rebound/config" && touch "$R/slot-ok/hook"
    echo "a2 from the RAUC slot" > "$R/slot-ok/rootfs/rebound/config/a.conf"
    bundle slot-ok
    local rc=0
    install_bundle slot-ok || rc=$?
    check "rauc install (slot hook) succeeds" [ "$rc" = 0 ]
    check "slot hook: a.conf landed in live and copy" landed "$D" a.conf "a2 from the RAUC slot"
    check "slot hook: b.conf untouched" landed "$D" b.conf "b1"
    check "slot hook: rebound verify exits 0" verify_ok "$D"
    check "slot hook: rebound's report in RAUC's log" has "$R/slot-ok.service.log" "installed: $D/live/a.conf"
    check "post-install handler: no rebound/ in this bundle, says so" \
        has "$R/slot-ok.service.log" "rebound-post-install: the bundle has no rebound/config"
    [ "$FAILS" = "$f0" ] || { sed 's/^/    | /' "$R/slot-ok.log" "$R/slot-ok.service.log"; }

    # 2. post-install handler: the bundle itself carries rebound/config/b.conf.
    mkdir -p "$R/handler-ok/extra/rebound/config"
    echo "b2 from the RAUC bundle" > "$R/handler-ok/extra/rebound/config/b.conf"
    bundle handler-ok
    rc=0; install_bundle handler-ok || rc=$?
    check "rauc install (post-install handler) succeeds" [ "$rc" = 0 ]
    check "handler: b.conf landed in live and copy" landed "$D" b.conf "b2 from the RAUC bundle"
    check "handler: rebound verify exits 0" verify_ok "$D"

    # 3. slot hook refused: the slot's files include one the set does not select.
    mkdir -p "$R/slot-bad/rootfs/rebound/config" && touch "$R/slot-bad/hook"
    echo "a3 must not land" > "$R/slot-bad/rootfs/rebound/config/a.conf"
    echo "not in the set" > "$R/slot-bad/rootfs/rebound/config/extra.bin"
    bundle slot-bad
    rc=0; install_bundle slot-bad || rc=$?
    check "rauc install fails when rebound refuses the slot's files (exit $rc)" [ "$rc" != 0 ]
    check "refused slot: old a.conf intact in live and copy" landed "$D" a.conf "a2 from the RAUC slot"
    check "refused slot: rebound verify exits 0" verify_ok "$D"
    check "refused slot: the hook's message in RAUC's log" \
        has "$R/slot-bad.service.log" "rebound-hook: rebound update config failed (exit 2"
    check "refused slot: rebound's error in RAUC's log" has "$R/slot-bad.service.log" "extra.bin"
    check "refused slot: RAUC left the new slot non-bootable" \
        bash -c "! grep -qF 'Marking target slot rootfs.1 as bootable' '$R/slot-bad.service.log'"

    # 4. handler refused: same, files in the bundle.
    mkdir -p "$R/handler-bad/extra/rebound/config"
    echo "b3 must not land" > "$R/handler-bad/extra/rebound/config/b.conf"
    echo "not in the set" > "$R/handler-bad/extra/rebound/config/extra.bin"
    bundle handler-bad
    rc=0; install_bundle handler-bad || rc=$?
    check "rauc install fails when rebound refuses the bundle's files (exit $rc)" [ "$rc" != 0 ]
    check "refused bundle: old b.conf intact" landed "$D" b.conf "b2 from the RAUC bundle"
    check "refused bundle: rebound verify exits 0" verify_ok "$D"
    check "refused bundle: the handler's message in RAUC's log" \
        has "$R/handler-bad.service.log" "rebound-post-install: rebound update config failed (exit 2"

    # 5. directly (busybox sh): other hook names are no-ops, even with a slot mounted.
    rc=0
    RAUC_SLOT_MOUNT_POINT="$R/slot-bad/rootfs" PATH="$BBPATH" \
        "$RUN/bb/sh" "$REPO/dist/rauc/rebound-hook" slot-pre-install > "$R/other-hook.log" 2>&1 || rc=$?
    check "rebound-hook slot-pre-install exits 0 and does nothing" \
        bash -c "[ $rc = 0 ] && [ ! -s '$R/other-hook.log' ] && $(declare -f landed content_is); landed '$D' a.conf 'a2 from the RAUC slot'"
    unset DBUS_SYSTEM_BUS_ADDRESS
}

# ---------------------------------------------------------------------------------
# SWUpdate
# ---------------------------------------------------------------------------------
swupdate_tests() {
    local S="$RUN/swupdate" D="$RUN/swupdate/dev"
    log "SWUpdate $(dpkg-query -W -f '${Version}' swupdate): signed .swu files sent to the swupdate daemon with swupdate-client"
    mkdir -p "$S/tmp"
    device "$D"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$S/key.pem" -out "$S/cert.pem" -days 30 \
        -subj "/O=rebound test/CN=rebound-ota-swupdate" \
        -addext "extendedKeyUsage=emailProtection" -addext "keyUsage=digitalSignature" \
        >/dev/null 2>&1 || die "openssl: cannot make SWUpdate's test certificate"

    # swu NAME SET: $S/NAME.swu from the files in $S/NAME/files, staged at $S/stage/NAME.
    swu() {
        local n="$1" set="$2" d="$S/$1"
        tar -cf "$d/rebound-config.tar" -C "$d/files" .
        cp "$REPO/dist/swupdate/rebound.sh" "$d/rebound.sh"
        cat > "$d/sw-description" <<EOF
software =
{
    version = "1.0.0";
    hardware-compatibility: [ "1.0" ];
    images: ( {
        filename = "rebound-config.tar";
        type = "archive";
        path = "$S/stage/$n";
        properties: { create-destination = "true"; };
        installed-directly = true;
        sha256 = "$(sha256sum "$d/rebound-config.tar" | cut -d' ' -f1)";
    } );
    scripts: ( {
        filename = "rebound.sh";
        type = "shellscript";
        data = "$set $S/stage/$n";
        sha256 = "$(sha256sum "$d/rebound.sh" | cut -d' ' -f1)";
    } );
}
EOF
        openssl cms -sign -in "$d/sw-description" -out "$d/sw-description.sig" -signer "$S/cert.pem" \
            -inkey "$S/key.pem" -outform DER -nosmimecap -binary || die "openssl cms -sign failed"
        (cd "$d" && printf '%s\n' sw-description sw-description.sig rebound-config.tar rebound.sh |
            cpio -o -H crc --quiet > "$S/$n.swu")
    }
    # SWUpdate runs as a daemon (as on a device) and each .swu is sent with
    # swupdate-client; the verdict is the daemon's own line, "SWUPDATE successful !" or
    # "Installation failed !". Not `swupdate -i`: in 2022.12 its client half polls the
    # installer's state and may return before the installation has finished (seen
    # here: exit 1 with the log cut off in the middle of the postinst, or exit 1 after
    # "SWUPDATE successful"), and `swupdate-client`'s exit status has the same race.
    TMPDIR="$S/tmp" REBOUND_CONFIG="$D/rebound.toml" \
        swupdate -v -H rebound-test:1.0 -k "$S/cert.pem" > "$S/daemon.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do [ -S "$S/tmp/sockinstctrl" ] && break; sleep 0.1; done
    [ -S "$S/tmp/sockinstctrl" ] || die "swupdate did not start (see $S/daemon.log)"
    # install_swu NAME: the daemon's log of this installation in NAME.log, the client's
    # exit status in SWU_RC (reported, not judged).
    install_swu() {
        local from=$(( $(stat -c %s "$S/daemon.log") + 1 ))
        SWU_RC=0
        TMPDIR="$S/tmp" swupdate-client "$S/$1.swu" > "$S/$1.client.log" 2>&1 || SWU_RC=$?
        for _ in $(seq 600); do
            tail -c +"$from" "$S/daemon.log" > "$S/$1.log"
            if grep -qF -e "SWUPDATE successful !" -e "Installation failed !" "$S/$1.log"; then
                break
            fi
            sleep 0.1
        done
        # back to idle before the next one
        for _ in $(seq 100); do
            tail -c +"$from" "$S/daemon.log" | grep -qF "Waiting for requests" && break
            sleep 0.1
        done
        tail -c +"$from" "$S/daemon.log" > "$S/$1.log"
    }
    swu_succeeded() { has "$S/$1.log" "SWUPDATE successful !" && ! has "$S/$1.log" "Installation failed !"; }
    swu_failed() { has "$S/$1.log" "Installation failed !" && ! has "$S/$1.log" "SWUPDATE successful !"; }

    # 1. the update lands.
    mkdir -p "$S/ok/files" && echo "a2 from SWUpdate" > "$S/ok/files/a.conf"
    swu ok config
    install_swu ok
    check "SWUpdate installs the .swu (its log says so; swupdate-client exit status $SWU_RC)" swu_succeeded ok
    check "a.conf landed in live and copy" landed "$D" a.conf "a2 from SWUpdate"
    check "rebound verify exits 0" verify_ok "$D"
    check "preinst dry run in SWUpdate's log" has "$S/ok.log" "rebound.sh: checking: rebound update config"
    check "rebound's report in SWUpdate's log" has "$S/ok.log" "installed: $D/live/a.conf"
    check "staging directory removed after the update" [ ! -e "$S/stage/ok" ]
    swu_succeeded ok || sed 's/^/    | /' "$S/ok.log"

    # 2. unknown set: preinst refuses, nothing written.
    mkdir -p "$S/noset/files" && echo "a3 must not land" > "$S/noset/files/a.conf"
    swu noset nosuch
    install_swu noset
    check "SWUpdate fails the update for an unknown set (its log says so; swupdate-client exit status $SWU_RC)" swu_failed noset
    check "unknown set: old a.conf intact" landed "$D" a.conf "a2 from SWUpdate"
    check "unknown set: rebound verify exits 0" verify_ok "$D"
    check "unknown set: refused at preinst, rebound's error in SWUpdate's log" \
        has "$S/noset.log" "rebound.sh: rebound cannot apply this update to set nosuch (exit 2"
    check "unknown set: postinst never ran" bash -c "! grep -qF 'rebound.sh: rebound update nosuch' '$S/noset.log'"

    # 3. a file outside the set: preinst refuses, nothing written.
    mkdir -p "$S/outside/files" && echo "a4 must not land" > "$S/outside/files/a.conf"
    echo "not in the set" > "$S/outside/files/extra.bin"
    swu outside config
    install_swu outside
    check "SWUpdate fails the update for a file outside the set (its log says so; swupdate-client exit status $SWU_RC)" swu_failed outside
    check "file outside the set: old a.conf intact" landed "$D" a.conf "a2 from SWUpdate"
    check "file outside the set: rebound verify exits 0" verify_ok "$D"
    check "file outside the set: rebound names it in SWUpdate's log" has "$S/outside.log" "extra.bin"
    check "file outside the set: staging directory removed" [ ! -e "$S/stage/outside" ]

    # 4. directly (busybox sh): postfailure never removes a protected copy named as DIR.
    local rc=0
    PATH="$BBPATH" "$RUN/bb/sh" "$REPO/dist/swupdate/rebound.sh" postfailure config "$D/live" \
        > "$S/postfailure.log" 2>&1 || rc=$?
    check "postfailure exits 0" [ "$rc" = 0 ]
    check "postfailure leaves a directory holding .rebound/ alone" landed "$D" a.conf "a2 from SWUpdate"
}

# ---------------------------------------------------------------------------------
# Mender
# ---------------------------------------------------------------------------------
mender_tests() {
    local M="$RUN/mender" D="$RUN/mender/dev" f0=$FAILS
    log "Mender $(dpkg-query -W -f '${Version}' mender-client): mender install (standalone) in a mount namespace"
    mkdir -p "$M/etc" "$M/data"
    device "$D"
    echo "artifact_name=factory" > "$M/etc/artifact_info"
    echo "device_type=rebound-ota-test" > "$M/data/device_type"
    cat > "$M/etc/mender.conf" <<EOF
{
  "ServerURL": "https://127.0.0.1:1",
  "StateScriptRetryIntervalSeconds": 1,
  "StateScriptRetryTimeoutSeconds": 30
}
EOF
    # artifact NAME: directory update-module Artifact of $M/NAME/files, dest_dir $M/stage,
    # carrying the state script as shipped.
    artifact() {
        local d="$M/$1"
        tar -cf "$d/update.tar" -C "$d/files" .
        echo "$M/stage" > "$d/dest_dir"
        cp "$REPO/dist/mender/ArtifactInstall_Leave_50_rebound" "$d/"
        (cd "$d" && mender-artifact write module-image -T directory -n "$1" -t rebound-ota-test \
            -o "$M/$1.mender" -f update.tar -f dest_dir -s ArtifactInstall_Leave_50_rebound \
            > "$d/artifact.log" 2>&1) || die "mender-artifact write $1 failed (see $d/artifact.log)"
    }
    # mender_run LOG ARGS...: mender with /etc/mender from $M/etc; exit status of mender.
    mender_run() {
        local out="$1"; shift
        # shellcheck disable=SC2016 # expanded by the inner sh
        unshare -m sh -c 'mount --bind "$1" /etc/mender && shift && exec mender --no-syslog -d "$MDATA" "$@"' \
            sh "$M/etc" "$@" > "$out" 2>&1
    }
    export MDATA="$M/data" REBOUND_SET=config REBOUND_FROM="$M/stage"

    # 1. the update lands; mender commit.
    mkdir -p "$M/ok/files" && echo "a2 from Mender" > "$M/ok/files/a.conf"
    artifact ok
    local rc=0
    REBOUND_CONFIG="$D/rebound.toml" mender_run "$M/ok.log" install "$M/ok.mender" || rc=$?
    check "mender install succeeds" [ "$rc" = 0 ]
    rc=0; mender_run "$M/ok.commit.log" commit || rc=$?
    check "mender commit succeeds" [ "$rc" = 0 ]
    check "a.conf landed in live and copy" landed "$D" a.conf "a2 from Mender"
    check "rebound verify exits 0" verify_ok "$D"
    check "rebound's report in Mender's log (stderr of the state script)" has "$M/ok.log" "installed: $D/live/a.conf"
    [ "$FAILS" = "$f0" ] || sed 's/^/    | /' "$M/ok.log"

    # 2. rerun after a power loss: the same script again (busybox sh, busybox applets):
    #    a success that writes nothing.
    local gen_before gen_after out="$M/rerun.log"
    gen_before="$(generation "$D")"
    rc=0
    PATH="$BBPATH" REBOUND_CONFIG="$D/rebound.toml" \
        "$RUN/bb/sh" "$REPO/dist/mender/ArtifactInstall_Leave_50_rebound" > "$out" 2>&1 || rc=$?
    gen_after="$(generation "$D")"
    check "rerun of the state script exits 0" [ "$rc" = 0 ]
    check "rerun writes no new generation ($gen_before -> $gen_after)" [ "$gen_before" = "$gen_after" ]
    check "rerun: rebound says the content is already recorded" has "$out" "already committed"
    check "rerun: a.conf unchanged, verify exits 0" bash -c "$(declare -f landed content_is verify_ok); landed '$D' a.conf 'a2 from Mender' && verify_ok '$D'"

    # 3. the lock is held by another rebound run: exit 21 (retry later) ...
    echo "a3 behind a lock" > "$M/stage/a.conf"
    flock -o "$D/live" sleep 2 &
    local holder=$!
    PIDS+=("$holder")
    sleep 0.3
    rc=0
    PATH="$BBPATH" REBOUND_CONFIG="$D/rebound.toml" REBOUND_WAIT=0 \
        "$RUN/bb/sh" "$REPO/dist/mender/ArtifactInstall_Leave_50_rebound" > "$M/locked.log" 2>&1 || rc=$?
    check "lock held: the state script exits 21 (retry later), got $rc" [ "$rc" = 21 ]
    check "lock held: a.conf unchanged" landed "$D" a.conf "a2 from Mender"
    wait "$holder" 2>/dev/null || true
    #    ... and Mender retries it until the lock is free: the lock is held for 3 s
    #    while `mender install` runs the script (REBOUND_WAIT=0, retry every 1 s).
    mkdir -p "$M/retry/files" && echo "a4 after a retry" > "$M/retry/files/a.conf"
    artifact retry
    flock -o "$D/live" sleep 3 &
    holder=$!
    PIDS+=("$holder")
    sleep 0.3
    rc=0
    REBOUND_CONFIG="$D/rebound.toml" REBOUND_WAIT=0 mender_run "$M/retry.log" install "$M/retry.mender" || rc=$?
    wait "$holder" 2>/dev/null || true
    check "mender retried the state script after exit 21 and the install succeeded (exit $rc)" [ "$rc" = 0 ]
    check "retry: the script asked for a retry at least once" has "$M/retry.log" "retry later (Mender exit 21)"
    rc=0; mender_run "$M/retry.commit.log" commit || rc=$?
    check "retry: mender commit succeeds" [ "$rc" = 0 ]
    check "retry: a.conf landed" landed "$D" a.conf "a4 after a retry"
    check "retry: rebound verify exits 0" verify_ok "$D"
    [ "$FAILS" = "$f0" ] || sed 's/^/    | /' "$M/retry.log"

    # 4. broken configuration: exit 1, Mender rolls back and reports failure.
    printf '[[set]]\nname = "config"\nmode = "golden"\nlive = 3\n' > "$M/broken.toml"
    mkdir -p "$M/bad/files" && echo "a5 must not land" > "$M/bad/files/a.conf"
    artifact bad
    rc=0
    REBOUND_CONFIG="$M/broken.toml" mender_run "$M/bad.log" install "$M/bad.mender" || rc=$?
    check "mender install fails with a broken configuration (exit $rc)" [ "$rc" != 0 ]
    check "broken configuration: the script's message in Mender's log" \
        has "$M/bad.log" "aborting the update (Mender exit 1)"
    check "broken configuration: rebound names the file in Mender's log" has "$M/bad.log" "$M/broken.toml"
    check "broken configuration: Mender rolled back" grep -q "Rolling back Artifact" "$M/bad.log"
    check "broken configuration: old a.conf intact, verify exits 0" \
        bash -c "$(declare -f landed content_is verify_ok); landed '$D' a.conf 'a4 after a retry' && verify_ok '$D'"

    # 5. the inventory script (busybox sh, busybox applets).
    inv() { PATH="$BBPATH" REBOUND_CONFIG="$1" "$RUN/bb/sh" "$REPO/dist/mender/mender-inventory-rebound"; }
    local version gen
    version="$(rebound --version | awk '{print $2}')"
    gen="$(generation "$D")"
    rc=0; inv "$D/rebound.toml" > "$M/inv1.txt" 2>&1 || rc=$?
    check "inventory exits 0" [ "$rc" = 0 ]
    check "inventory: rebound_version=$version" grep -qx "rebound_version=$version" "$M/inv1.txt"
    check "inventory: rebound_set_config_generation=$gen" grep -qx "rebound_set_config_generation=$gen" "$M/inv1.txt"
    check "inventory: rebound_set_config_state=intact" grep -qx "rebound_set_config_state=intact" "$M/inv1.txt"
    check "inventory: only name=value lines" bash -c "! grep -vqE '^[a-z_]+=' '$M/inv1.txt'"
    echo "damaged" > "$D/copy/b.conf"
    inv "$D/rebound.toml" > "$M/inv2.txt" 2>&1 || true
    check "inventory: a damaged copy gives rebound_set_config_state=damaged" \
        grep -qx "rebound_set_config_state=damaged" "$M/inv2.txt"
    rebound -c "$D/rebound.toml" boot >/dev/null 2>&1 || fail "rebound boot did not repair the damage"
    # The counters from the set's history: the repair just made is counted.
    local repairs0 repairs1
    repairs0="$(sed -n 's/^rebound_set_config_repairs=//p' "$M/inv1.txt")"
    inv "$D/rebound.toml" > "$M/inv4.txt" 2>&1 || true
    repairs1="$(sed -n 's/^rebound_set_config_repairs=//p' "$M/inv4.txt")"
    check "inventory: rebound_set_config_repairs counts the boot's repair ($repairs0 -> $repairs1)" \
        [ "$repairs1" = "$(( ${repairs0:-1000000} + 1 ))" ]
    check "inventory: rebound_set_config_boots= and _suspect_files=0" \
        bash -c "grep -qE '^rebound_set_config_boots=[1-9][0-9]*$' '$M/inv4.txt' && grep -qx 'rebound_set_config_suspect_files=0' '$M/inv4.txt'"
    rc=0; inv "$M/broken.toml" > "$M/inv3.txt" 2>&1 || rc=$?
    check "inventory with a broken configuration exits 0" [ "$rc" = 0 ]
    check "inventory with a broken configuration: rebound_error= names the file" \
        grep -q "^rebound_error=configuration $M/broken.toml" "$M/inv3.txt"
    [ "$FAILS" = "$f0" ] || sed 's/^/    | /' "$M"/inv*.txt
    unset MDATA REBOUND_SET REBOUND_FROM
}

# POSIX sh syntax of every device-side script, under busybox sh.
for f in "$REPO"/dist/rauc/rebound-hook "$REPO"/dist/rauc/rebound-post-install \
         "$REPO"/dist/swupdate/rebound.sh "$REPO"/dist/mender/*; do
    "$RUN/bb/sh" -n "$f" || fail "busybox sh -n $f"
    [ -x "$f" ] || fail "$f is not executable"
done

rauc_tests
swupdate_tests
mender_tests

log "done: $FAILS failed check(s); logs under $RUN"
[ "$FAILS" = 0 ] || exit 1

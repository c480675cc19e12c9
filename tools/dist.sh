#!/usr/bin/env bash
# Release artifacts for rebound: static, stripped `rebound` binaries for the devices' own
# CPUs, each packed with the example configurations, the man pages (man/), the bash,
# zsh and fish completions (completions/), the integration files of dist/ (integration/:
# systemd unit and generator, busybox/SysV init script, RAUC, SWUpdate and Mender hooks;
# docs/integration.md) and the license texts, as
#   target/artifacts/rebound-<version>-<triple>.tar.gz
# plus target/artifacts/SHA256SUMS. See README.md, "Installing on a device".
#
# Each tarball also carries the C library (crates/librebound, --profile release-lib):
# lib/librebound.a (debug sections stripped), lib/librebound.so.0 (soname
# librebound.so.0) with the link
# lib/librebound.so, and include/rebound.h (README.md, "From an application"). The library is
# built without +crt-static (a shared object cannot be), with the same cross linker.
#
# Usage:
#   tools/dist.sh                    # all three targets
#   tools/dist.sh --targets armv7    # a subset: x86_64, armv7, aarch64 (comma-separated)
#   tools/dist.sh --no-install       # never apt-get; say what is missing instead
#   tools/dist.sh --check            # only check the toolchain (exit 2 if incomplete)
#
# Toolchain: Debian 12's rustc-web/cargo-web (Rust 1.96, /usr/bin/rustc and
# /usr/bin/cargo) with the standard library of every target (libstd-rust-web-dev:armhf,
# :arm64), the cross linkers gcc-arm-linux-gnueabihf / gcc-aarch64-linux-gnu, and
# qemu-user-static to smoke-test each ARM binary. Run as root on Debian 12 and the script
# installs them (adding the armhf/arm64 architectures to dpkg); elsewhere it names what
# is missing and stops. REBOUND_RUSTC / REBOUND_CARGO override the compiler and cargo
# (they must have the targets' standard library). The man pages and completions are
# generated first, on the host, by `cargo xtask all` (crates/xtask, the `cargo` on PATH):
# every tarball carries the same ones, and the script stops if they cannot be made.
#
# Every binary is linked statically (`-C target-feature=+crt-static`): it needs no C
# library on the device, and qemu-user runs it reliably (a dynamically linked armv7
# build crashes under qemu-user at its first thread). The armv7 build enables feature
# `neon` (blake3's NEON code, compiled in without a run-time check: it needs a CPU with
# NEON, as every Cortex-A7/A8/A9-with-NEON/A15/A17 has; see README).
#
# Exit status: 0 artifacts written; 1 a build or check failed; 2 toolchain incomplete.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"

TARGETS="x86_64,armv7,aarch64"
INSTALL=1
CHECK_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --targets) TARGETS="$2"; shift ;;
        --no-install) INSTALL=0 ;;
        --check) CHECK_ONLY=1 ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "dist.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '== %s\n' "$*"; }

IFS=',' read -r -a ARCHES <<< "$TARGETS"
CROSS="$REPO/tools/cross.sh"
features_of() { case "$1" in armv7) echo neon ;; *) echo "" ;; esac; }
strip_of() { case "$1" in armv7) echo arm-linux-gnueabihf-strip ;; aarch64) echo aarch64-linux-gnu-strip ;; *) echo strip ;; esac; }
for a in "${ARCHES[@]}"; do "$CROSS" triple "$a" >/dev/null; done

if [ "$CHECK_ONLY" = 1 ] || [ "$INSTALL" = 0 ]; then
    "$CROSS" setup --no-install "${ARCHES[@]}"
else
    "$CROSS" setup "${ARCHES[@]}"
fi
[ "$CHECK_ONLY" = 1 ] && { log "toolchain complete for $TARGETS"; exit 0; }

VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
[ -n "$VERSION" ] || { echo "dist.sh: no version in Cargo.toml [workspace.package]" >&2; exit 1; }
# Reproducible archives: file times are the last commit's time.
EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
OUT="$REPO/target/artifacts"
TDIR="$REPO/target/dist"
mkdir -p "$OUT"

# The man pages and completions: rendered once on the host from the command line the
# binaries parse (they are text, the same for every CPU), dated like the archives.
log "man pages and completions (cargo xtask all)"
rm -rf "$REPO/target/man" "$REPO/target/completions"
if ! SOURCE_DATE_EPOCH="$EPOCH" nice cargo run --quiet --locked -p xtask -- all >/dev/null; then
    echo "dist.sh: cargo xtask all failed (crates/xtask): the tarballs must carry man/ and completions/; run it to see why" >&2
    exit 1
fi
for extra in man completions; do
    if [ -z "$(ls -A "$REPO/target/$extra" 2>/dev/null)" ]; then
        echo "dist.sh: cargo xtask all wrote nothing into target/$extra" >&2; exit 1
    fi
done
log "  $(find "$REPO/target/man" -name '*.1' | wc -l) man pages, completions: $(cd "$REPO/target/completions" && echo *)"

for a in "${ARCHES[@]}"; do
    t="$("$CROSS" triple "$a")"
    feats="$(features_of "$a")"
    log "building rebound $VERSION for $t (static${feats:+, features $feats})"
    nice "$CROSS" cargo "$a" build --quiet --release --locked -p rebound-cli \
        ${feats:+--features "$feats"} --target-dir "$TDIR"
    bin="$TDIR/$t/release/rebound"
    if readelf -lW "$bin" | grep -q 'INTERP'; then
        echo "dist.sh: $bin is dynamically linked (it must be static)" >&2; exit 1
    fi
    if readelf -SW "$bin" | grep -q '\.symtab'; then
        echo "dist.sh: $bin is not stripped" >&2; exit 1
    fi
    # Run it once, on its own CPU or under the emulator.
    runner="$("$CROSS" runner "$a")"
    got="$($runner "$bin" --version)" || { echo "dist.sh: $bin --version failed${runner:+ under $runner}" >&2; exit 1; }
    log "  $got ($(stat -c %s "$bin") bytes stripped)"

    log "building librebound $VERSION for $t (--profile release-lib${feats:+, features $feats})"
    REBOUND_CROSS_CRT_STATIC=0 nice "$CROSS" cargo "$a" build --quiet --profile release-lib --locked \
        -p librebound ${feats:+--features "$feats"} --target-dir "$TDIR"
    libdir="$TDIR/$t/release-lib"
    for f in librebound.a librebound.so; do
        [ -f "$libdir/$f" ] || { echo "dist.sh: $libdir/$f was not built" >&2; exit 1; }
    done
    dyn="$(readelf -dW "$libdir/librebound.so")"
    grep -q 'SONAME.*\[librebound\.so\.0\]' <<< "$dyn" \
        || { echo "dist.sh: $libdir/librebound.so has no soname librebound.so.0" >&2; exit 1; }
    exported="$(nm -D --defined-only "$libdir/librebound.so")"
    for fn in $(grep -oE '\brebound_[a-z_]+\(' crates/librebound/include/rebound.h | tr -d '(' | sort -u); do
        grep -q " T $fn\$" <<< "$exported" \
            || { echo "dist.sh: $libdir/librebound.so does not export $fn (rebound.h declares it)" >&2; exit 1; }
    done
    log "  librebound.so.0 $(stat -c %s "$libdir/librebound.so") bytes, librebound.a $(stat -c %s "$libdir/librebound.a") bytes"

    name="rebound-$VERSION-$t"
    stage="$TDIR/stage/$name"
    rm -rf "$stage"
    mkdir -p "$stage/examples" "$stage/lib" "$stage/include"
    install -m 0644 "$libdir/librebound.a" "$stage/lib/librebound.a"
    # Debug sections only (half its size); the symbols a program links with stay.
    "$(strip_of "$a")" --strip-debug "$stage/lib/librebound.a"
    install -m 0755 "$libdir/librebound.so" "$stage/lib/librebound.so.0"
    ln -s librebound.so.0 "$stage/lib/librebound.so"
    install -m 0644 crates/librebound/include/rebound.h "$stage/include/rebound.h"
    install -m 0755 "$bin" "$stage/rebound"
    install -m 0644 examples/*.toml "$stage/examples/"
    install -m 0644 README.md docs/integration.md LICENSE-MIT LICENSE-APACHE "$stage/"
    # The integration files, with their modes (scripts 0755): what a Yocto or Buildroot
    # recipe, a RAUC bundle or a Mender artifact copies (docs/integration.md).
    for sub in systemd init.d rauc swupdate mender; do
        [ -d "dist/$sub" ] || { echo "dist.sh: dist/$sub is missing" >&2; exit 1; }
        mkdir -p "$stage/integration/$sub"
        for f in "dist/$sub"/*; do
            if [ -x "$f" ]; then m=0755; else m=0644; fi
            install -m "$m" "$f" "$stage/integration/$sub/"
        done
    done
    # The man pages and shell completions (cargo xtask all, above).
    for extra in man completions; do
        cp -r "$REPO/target/$extra" "$stage/$extra"
        chmod 0644 "$stage/$extra"/*
    done
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
        -C "$TDIR/stage" -cf - "$name" | gzip -9n > "$OUT/$name.tar.gz.tmp"
    mv "$OUT/$name.tar.gz.tmp" "$OUT/$name.tar.gz"
done

# Checksums of every tarball of this version present in target/artifacts/.
(cd "$OUT" && sha256sum "rebound-$VERSION-"*.tar.gz > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
log "target/artifacts/:"
(cd "$OUT" && ls -l rebound-"$VERSION"-*.tar.gz SHA256SUMS | awk '{print "   " $5 "  " $9}')

#!/usr/bin/env bash
# Cross builds and emulated runs of rebound for the devices' CPUs. One place for the
# toolchain facts that tools/dist.sh, tests/powercut/run.sh and .ci/run share.
#
#   tools/cross.sh setup [--no-install] ARCH...   check the toolchain; as root on Debian 12
#                                                 install what is missing, elsewhere name it
#                                                 (exit 2)
#   tools/cross.sh cargo ARCH SUBCOMMAND ARGS...  run cargo for ARCH: adds --target, the
#                                                 cross linker, a static link
#                                                 (+crt-static) and, for `test`/`run`,
#                                                 the qemu-user runner
#   tools/cross.sh triple ARCH                    the Rust target triple
#   tools/cross.sh runner ARCH                    the qemu-user command ("" on x86_64)
#
# ARCH is x86_64, armv7 or aarch64. The toolchain is Debian 12's Rust 1.96 (rustc-web,
# cargo-web: /usr/bin/rustc, /usr/bin/cargo) with libstd-rust-web-dev for each target's
# Debian architecture (armhf, arm64), the cross gcc as linker, and qemu-user-static as
# the runner. The rustup toolchain first on PATH has no ARM standard library, so ARM
# builds always use /usr/bin/cargo with RUSTC=/usr/bin/rustc (override with
# REBOUND_RUSTC / REBOUND_CARGO).
#
# If apt cannot install Debian's Rust for a target (seen: a Debian mirror serving a
# security index that does not match its Release file, so libstd-rust-web-dev:armhf
# 1.96 cannot be had while rustc-web 1.96 can), `setup` installs the linkers and the
# emulator alone and adds the targets to rustup's toolchain instead; every later
# call then uses rustup's toolchain for an ARCH whose standard library Debian's lacks,
# and says so on stderr (WARNING). Cargo.lock's check against Rust 1.96 is then not
# made by that run.
#
# REBOUND_CROSS_CRT_STATIC=0 leaves +crt-static out: for the C library's shared object
# (librebound.so), which a +crt-static build drops ("dropping unsupported crate type
# `cdylib`"). tools/dist.sh uses it for librebound only.
#
# Static binaries: a dynamically linked armv7 program crashes under qemu-user as soon as
# it starts a thread (an emulator + sysroot limitation, not rebound's), and a static one
# needs no C library on the device.
set -euo pipefail

RUSTC="${REBOUND_RUSTC:-/usr/bin/rustc}"
CARGO="${REBOUND_CARGO:-/usr/bin/cargo}"
# The fallback when Debian's toolchain cannot be installed: rustup's (see `setup`).
FALLBACK=0
# Whether find_missing may take rustup's toolchain (setup first tries Debian's).
PICK=1

triple_of() {
    case "$1" in
        x86_64) echo x86_64-unknown-linux-gnu ;;
        armv7) echo armv7-unknown-linux-gnueabihf ;;
        aarch64) echo aarch64-unknown-linux-gnu ;;
        *) echo "cross.sh: unknown ARCH '$1' (x86_64, armv7, aarch64)" >&2; exit 2 ;;
    esac
}
debarch_of() { case "$1" in x86_64) echo amd64 ;; armv7) echo armhf ;; aarch64) echo arm64 ;; esac; }
gcc_of() { case "$1" in x86_64) echo gcc ;; armv7) echo arm-linux-gnueabihf-gcc ;; aarch64) echo aarch64-linux-gnu-gcc ;; esac; }
gccpkgs_of() {
    case "$1" in
        x86_64) echo "gcc libc6-dev" ;;
        armv7) echo "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross" ;;
        aarch64) echo "gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
    esac
}
runner_of() { case "$1" in x86_64) echo "" ;; armv7) echo qemu-arm-static ;; aarch64) echo qemu-aarch64-static ;; esac; }

# Whether the compiler $1 has the standard library of every ARCH that follows.
has_std() {
    local rustc="$1" a libdir
    shift
    [ -x "$rustc" ] || return 1
    for a in "$@"; do
        libdir="$("$rustc" --print target-libdir --target "$(triple_of "$a")" 2>/dev/null || true)"
        [ -n "$libdir" ] && compgen -G "$libdir/libstd-*.rlib" >/dev/null || return 1
    done
}

# Debian's toolchain when it has every ARCH's standard library; otherwise rustup's
# toolchain if it has them (installed by `setup` when Debian's packages could not
# be: a Debian mirror whose security index does not match its Release file has been
# seen to hold back libstd-rust-web-dev:armhf for days). An explicit REBOUND_RUSTC
# is never replaced.
pick_toolchain() {
    local r c
    [ -n "${REBOUND_RUSTC:-}" ] && return 0
    has_std "$RUSTC" "$@" && [ -x "$CARGO" ] && return 0
    command -v rustup >/dev/null 2>&1 || return 0
    r="$(rustup which rustc 2>/dev/null)" || return 0
    c="$(rustup which cargo 2>/dev/null)" || return 0
    has_std "$r" "$@" || return 0
    RUSTC="$r"
    CARGO="$c"
    if [ "$FALLBACK" = 0 ]; then
        FALLBACK=1
        echo "WARNING: cross.sh: Debian's Rust (rustc-web 1.96 with libstd-rust-web-dev for $*) is not installed; using rustup's $("$RUSTC" --version)" >&2
    fi
}

# Sets MISSING_PKGS (Debian packages) and MISSING_WHY (one sentence each) for ARCH...
find_missing() {
    MISSING_PKGS=()
    MISSING_WHY=()
    local a t libdir
    [ "$PICK" = 0 ] || pick_toolchain "$@"
    if [ ! -x "$RUSTC" ] || [ ! -x "$CARGO" ]; then
        MISSING_PKGS+=(rustc-web cargo-web)
        MISSING_WHY+=("$RUSTC and $CARGO: Debian's Rust 1.96 (packages rustc-web cargo-web)")
    fi
    for a in "$@"; do
        t="$(triple_of "$a")"
        libdir=""
        [ -x "$RUSTC" ] && libdir="$("$RUSTC" --print target-libdir --target "$t" 2>/dev/null || true)"
        if [ -z "$libdir" ] || ! compgen -G "$libdir/libstd-*.rlib" >/dev/null; then
            MISSING_PKGS+=("libstd-rust-web-dev:$(debarch_of "$a")")
            MISSING_WHY+=("the Rust standard library for $t (package libstd-rust-web-dev:$(debarch_of "$a"))")
        fi
        if ! command -v "$(gcc_of "$a")" >/dev/null 2>&1; then
            # shellcheck disable=SC2207
            MISSING_PKGS+=($(gccpkgs_of "$a"))
            MISSING_WHY+=("the linker $(gcc_of "$a") (packages $(gccpkgs_of "$a"))")
        fi
        if [ -n "$(runner_of "$a")" ] && ! command -v "$(runner_of "$a")" >/dev/null 2>&1; then
            MISSING_PKGS+=(qemu-user-static)
            MISSING_WHY+=("$(runner_of "$a"), which runs $a programs here (package qemu-user-static)")
        fi
    done
    command -v readelf >/dev/null 2>&1 || { MISSING_PKGS+=(binutils); MISSING_WHY+=("readelf (package binutils)"); }
    return 0
}

setup() {
    local install=1 a d
    if [ "${1:-}" = --no-install ]; then install=0; shift; fi
    [ $# -gt 0 ] || set -- x86_64 armv7 aarch64
    if [ "$install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
        && grep -q '^12' /etc/debian_version 2>/dev/null; then
        # Debian's toolchain first, even where rustup's has the targets: rustup's is
        # only the fallback when apt cannot install Debian's.
        PICK=0
        find_missing "$@"
        PICK=1
        [ "${#MISSING_PKGS[@]}" -eq 0 ] && return 0
        echo "== installing the cross toolchain: $(printf '%s\n' "${MISSING_PKGS[@]}" | sort -u | tr '\n' ' ')"
        for a in "$@"; do
            d="$(debarch_of "$a")"
            [ "$d" = "$(dpkg --print-architecture)" ] && continue
            dpkg --print-foreign-architectures | grep -qx "$d" || dpkg --add-architecture "$d"
        done
        export DEBIAN_FRONTEND=noninteractive
        # A mirror caught mid-sync fails an index now and then: retry once, then go on
        # with the lists there are (the install below fails if a package is missing).
        apt-get update -qq || { sleep 30; apt-get update -qq; } ||
            echo "WARNING: apt-get update failed twice; using the package lists there are" >&2
        mapfile -t pkgs < <(printf '%s\n' "${MISSING_PKGS[@]}" | sort -u)
        if ! apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; then
            # Debian's Rust for the targets could not be had (its packages for a
            # foreign architecture come from an index that failed above, or versions
            # that do not match): the linkers and the emulator alone, and the Rust
            # standard library of each target from rustup, if there is a rustup.
            mapfile -t rest < <(printf '%s\n' "${pkgs[@]}" | grep -v -E '^(rustc-web|cargo-web|libstd-rust-web-dev)(:|$)' || true)
            echo "WARNING: cross.sh: apt-get could not install ${pkgs[*]}; installing ${rest[*]:-nothing} and trying rustup's toolchain" >&2
            [ "${#rest[@]}" -eq 0 ] || apt-get install -y -qq --no-install-recommends "${rest[@]}" >/dev/null
            if command -v rustup >/dev/null 2>&1; then
                for a in "$@"; do
                    [ "$a" = x86_64 ] || rustup target add "$(triple_of "$a")" >&2
                done
            fi
        fi
    fi
    find_missing "$@"
    [ "${#MISSING_PKGS[@]}" -eq 0 ] && return 0
    echo "cross.sh: the toolchain for $* is incomplete; missing:" >&2
    printf '  - %s\n' "${MISSING_WHY[@]}" >&2
    local add=()
    for a in "$@"; do d="$(debarch_of "$a")"; [ "$d" = amd64 ] || add+=("$d"); done
    echo "On Debian 12, as root:" >&2
    [ "${#add[@]}" -gt 0 ] && echo "  $(printf 'dpkg --add-architecture %s && ' "${add[@]}")apt-get update" >&2
    echo "  apt-get install --no-install-recommends $(printf '%s\n' "${MISSING_PKGS[@]}" | sort -u | tr '\n' ' ')" >&2
    echo "(run as root on Debian 12 and this script installs them)" >&2
    exit 2
}

cross_cargo() {
    local a="$1" sub="$2" t T runner
    shift 2
    t="$(triple_of "$a")"
    T="$(echo "$t" | tr 'a-z-' 'A-Z_')"
    runner="$(runner_of "$a")"
    pick_toolchain "$a"
    local envs=(
        "RUSTC=$RUSTC"
        "CARGO_TARGET_${T}_LINKER=$(gcc_of "$a")"
        "CC_${t//-/_}=$(gcc_of "$a")"
    )
    # Target-scoped: build scripts and proc macros (host code) stay dynamic.
    [ "${REBOUND_CROSS_CRT_STATIC:-1}" = 0 ] || envs+=("CARGO_TARGET_${T}_RUSTFLAGS=-C target-feature=+crt-static")
    [ -n "$runner" ] && envs+=("CARGO_TARGET_${T}_RUNNER=$runner")
    exec env -u RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u RUSTC_WRAPPER \
        "${envs[@]}" "$CARGO" "$sub" --target "$t" "$@"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    setup) setup "$@" ;;
    cargo) [ $# -ge 2 ] || { echo "usage: cross.sh cargo ARCH SUBCOMMAND ARGS..." >&2; exit 2; }; cross_cargo "$@" ;;
    triple) triple_of "${1:?ARCH}" ;;
    runner) triple_of "${1:?ARCH}" >/dev/null; runner_of "$1" ;;
    *) sed -n '2,36p' "$0"; [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2 ;;
esac

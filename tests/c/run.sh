#!/usr/bin/env bash
# librebound's C ABI, tested from C and Python against the real libraries:
#   - include/rebound.h is what cbindgen (Debian 12's 0.24.3) makes of src/ffi.rs;
#   - every function the header declares is exported by librebound.a and librebound.so
#     (and the .so exports no rebound_* function the header does not declare); the .so's
#     soname is librebound.so.0;
#   - the header compiles as C99 and as C++ (-Wall -Wextra -Werror);
#   - flow.c (the seed's flow: seal, verify, damage, boot, write, commit, status, lock,
#     error cases) and threads.c (two threads writing through one handle) linked
#     against the static and against the shared library, each run plainly and under
#     valgrind (definite/indirect leaks and memory errors fail; "still reachable" does
#     not); panic.c against a build with feature test-panic (a panic is status 2);
#   - bindings/python/test_rebound.py with pytest, through the shared library.
# With --arch armv7 (or aarch64) instead: the library and the C tests cross-compiled
# (static, tools/cross.sh) and run under qemu-user; no valgrind, no Python there.
#
# Usage: tests/c/run.sh [--arch x86_64|armv7|aarch64]
# As root it installs what it needs (apt: gcc g++ valgrind binutils cbindgen; pip:
# pytest); not as root it skips (exit 0) saying so. Builds are cached under
# tests/c/work/ (git-ignored) and target/. Exit status: 0 passed or skipped, 1 failed.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$REPO/tests/c"
WORK="$HERE/work"
CRATE="$REPO/crates/librebound"
ARCH=x86_64
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH="${2:?--arch needs x86_64, armv7 or aarch64}"; shift ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "tests/c/run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '== c: %s\n' "$*"; }
fail() { echo "tests/c/run.sh: FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
    echo "tests/c/run.sh: skipped: not root (it installs gcc, g++, valgrind, cbindgen and pytest); run it as root, or install them and run as root in a container"
    exit 0
fi

need=()
for t in gcc:gcc g++:g++ valgrind:valgrind nm:binutils readelf:binutils cbindgen:cbindgen; do
    command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A mirror caught mid-sync fails an index now and then: retry once, then go on
    # with the lists there are (the install below fails if a package is missing).
    apt-get update -qq || { sleep 30; apt-get update -qq; } ||
        echo "WARNING: apt-get update failed twice; using the package lists there are" >&2
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$WORK"
CFLAGS=(-std=c99 -Wall -Wextra -Werror -O1 -g -I "$CRATE/include" -I "$HERE")
cargo_build() { (cd "$REPO" && nice cargo build --quiet --locked "$@"); }

# The header: regenerated and compared (cbindgen reads the source, not the build).
log "rebound.h is cbindgen's output for src/ffi.rs"
(cd "$CRATE" && cbindgen --quiet --config cbindgen.toml --output "$WORK/rebound.h")
diff -u "$CRATE/include/rebound.h" "$WORK/rebound.h" \
    || fail "crates/librebound/include/rebound.h is out of date: run (cd crates/librebound && cbindgen --config cbindgen.toml --output include/rebound.h) and commit it"
mapfile -t DECLARED < <(grep -oE '\brebound_[a-z_]+\(' "$CRATE/include/rebound.h" | tr -d '(' | sort -u)
[ "${#DECLARED[@]}" -ge 9 ] || fail "rebound.h declares only ${#DECLARED[@]} functions: ${DECLARED[*]}"

# exports LIB: every declared function is defined in it; for a .so also no extra.
check_exports() {
    local lib="$1" kind="$2" f
    local got
    if [ "$kind" = shared ]; then
        got="$(nm -D --defined-only "$lib" | awk '$2 == "T" && $3 ~ /^rebound_/ { print $3 }' | sort -u)"
    else
        got="$(nm --defined-only "$lib" 2>/dev/null | awk '$2 == "T" && $3 ~ /^rebound_/ { print $3 }' | sort -u)"
    fi
    for f in "${DECLARED[@]}"; do
        grep -qx "$f" <<< "$got" || fail "$lib does not export $f, which rebound.h declares"
    done
    if [ "$kind" = shared ]; then
        local extra
        extra="$(comm -13 <(printf '%s\n' "${DECLARED[@]}") <(printf '%s\n' "$got"))"
        [ -z "$extra" ] || fail "$lib exports $extra, which rebound.h does not declare"
    fi
    log "$(basename "$lib"): exports all ${#DECLARED[@]} functions of rebound.h"
}

STATIC_LIBS=(-lpthread -ldl -lm)

if [ "$ARCH" != x86_64 ]; then
    CROSS="$REPO/tools/cross.sh"
    "$CROSS" setup "$ARCH"
    t="$("$CROSS" triple "$ARCH")"
    runner="$("$CROSS" runner "$ARCH")"
    case "$ARCH" in armv7) cc=arm-linux-gnueabihf-gcc ;; aarch64) cc=aarch64-linux-gnu-gcc ;; *) fail "unknown arch $ARCH" ;; esac
    log "building librebound and rebound for $t (static, --profile release-lib)"
    # (+crt-static: cargo drops the cdylib with a warning; only librebound.a is used here.)
    (cd "$REPO" && nice "$CROSS" cargo "$ARCH" build --quiet --locked --profile release-lib -p librebound -p rebound-cli)
    out="$REPO/target/$t/release-lib"
    check_exports "$out/librebound.a" static
    for prog in flow threads; do
        "$cc" -static "${CFLAGS[@]}" "$HERE/$prog.c" "$out/librebound.a" "${STATIC_LIBS[@]}" -o "$WORK/$prog-$ARCH"
        d="$(mktemp -d "$WORK/run.XXXXXX")"
        log "$prog ($ARCH, static) under $runner"
        "$runner" "$WORK/$prog-$ARCH" "$d" "$out/rebound" "$runner" || fail "$prog ($ARCH) failed"
        rm -rf "$d"
    done
    log "armv7/aarch64 C tests passed ($ARCH)"
    exit 0
fi

# The libraries (one build with the rebound binary the tests seal with), and a second
# library with feature test-panic in its own target dir (features are per build).
log "building librebound and rebound (--profile release-lib)"
cargo_build --profile release-lib -p librebound -p rebound-cli
OUT="$REPO/target/release-lib"
REBOUND="$OUT/rebound"
log "building librebound with feature test-panic (tests/c/work/target)"
cargo_build --profile release-lib -p librebound --features test-panic --target-dir "$WORK/target"

dyn="$(readelf -d "$OUT/librebound.so")"
grep -q 'SONAME.*\[librebound\.so\.0\]' <<< "$dyn" \
    || fail "$OUT/librebound.so has no soname librebound.so.0: $(grep -i soname <<< "$dyn" || echo none)"
log "librebound.so: soname librebound.so.0"
check_exports "$OUT/librebound.a" static
check_exports "$OUT/librebound.so" shared

# As installed: lib/librebound.so.0 and the development symlink lib/librebound.so.
LIB="$WORK/lib"
rm -rf "$LIB" && mkdir -p "$LIB"
cp "$OUT/librebound.so" "$LIB/librebound.so.0"
ln -s librebound.so.0 "$LIB/librebound.so"

log "rebound.h as C99 and as C++ (-Wall -Wextra -Werror)"
g++ -std=c++11 -Wall -Wextra -Werror -I "$CRATE/include" "$HERE/cxx.cpp" -L "$LIB" -lrebound -o "$WORK/cxx"

for prog in flow threads; do
    gcc "${CFLAGS[@]}" "$HERE/$prog.c" "$OUT/librebound.a" "${STATIC_LIBS[@]}" -o "$WORK/$prog-static"
    gcc "${CFLAGS[@]}" "$HERE/$prog.c" -L "$LIB" -lrebound -lpthread -o "$WORK/$prog-shared"
done
grep -q 'NEEDED.*\[librebound\.so\.0\]' <<< "$(readelf -d "$WORK/flow-shared")" \
    || fail "flow-shared does not need librebound.so.0"
if grep -q 'NEEDED.*librebound' <<< "$(readelf -d "$WORK/flow-static")"; then
    fail "flow-static needs a shared librebound"
fi

# shellcheck disable=SC2054 # the commas are in option values
VG=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --error-exitcode=1)
run() { # NAME COMMAND...: in a fresh directory
    local name="$1" d
    shift
    d="$(mktemp -d "$WORK/run.XXXXXX")"
    log "$name"
    LD_LIBRARY_PATH="$LIB" "$@" "$d" "$REBOUND" || fail "$name"
    rm -rf "$d"
}
for prog in flow threads; do
    for link in static shared; do
        run "$prog ($link)" "$WORK/$prog-$link"
        run "$prog ($link) under valgrind" "${VG[@]}" "$WORK/$prog-$link"
    done
done

PLIB="$WORK/target/release-lib"
gcc "${CFLAGS[@]}" "$HERE/panic.c" "$PLIB/librebound.a" "${STATIC_LIBS[@]}" -o "$WORK/panic"
d="$(mktemp -d "$WORK/run.XXXXXX")"
printf '[[set]]\nname = "s"\nmode = "golden"\nlive = "%s/l"\ngolden = "%s/g"\ninclude = ["*"]\n' "$d" "$d" > "$d/rebound.toml"
log "panic: a panic inside the library is status 2 (release-lib profile)"
"$WORK/panic" "$d/rebound.toml" 2>"$d/stderr" || { cat "$d/stderr" >&2; fail "panic"; }
rm -rf "$d"

log "Python bindings (pytest)"
python3 -c 'import pytest' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check pytest
REBOUND_LIB="$LIB/librebound.so.0" REBOUND_BIN="$REBOUND" \
    python3 -m pytest -q -p no:cacheprovider "$REPO/bindings/python/test_rebound.py" || fail "Python bindings"
log "C and Python tests of librebound passed"

#!/usr/bin/env bash
# The Debian package `rebound`, built and installed for real (docs/integration.md, "The
# Debian package, man pages and shell completions"):
#
#   1. the man pages and completions (cargo xtask all), then the .deb with cargo-deb
#      (static x86_64 binary: -C target-feature=+crt-static);
#   2. a clean Debian 12 chroot (debootstrap --variant=minbase bookworm, plus man-db and
#      systemd so that `man -w` and `systemctl is-enabled` answer), unpacked fresh from a
#      cached tarball for every run;
#   3. in the chroot: dpkg -i, the postinst note (no configuration / valid / invalid),
#      rebound --version, man -w, rebound demo, rebound check-config on an installed
#      example, the bash completion, the unit installed but not enabled; then dpkg -r
#      (no file of the package left), an enabled unit's link removed by dpkg --purge;
#   4. lintian on the .deb: every tag printed, an error (E:) fails the run.
#
# Needs root (debootstrap, chroot, mount) and apt-get; elsewhere it says so and exits 0.
# It installs what it needs: debootstrap and lintian (apt), cargo-deb $CARGO_DEB_VERSION
# (cargo install --locked, built from source: about 2.5 minutes once).
#
# Cache (git-ignored): tests/deb/work/, or $REBOUND_DEB_CACHE (a directory that outlives
# the clone, e.g. for CI): cargo-deb and the chroot tarball. REBOUND_DEB_MIRROR: a
# Debian mirror for debootstrap (default: debootstrap's own).
#
# Exit status: 0 every check passed (or skipped: not root); 1 a check failed; 2 setup
# failed (a tool could not be installed, a file the package ships is missing).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$REPO"
CARGO_DEB_VERSION=3.8.0
SUITE=bookworm
CACHE="${REBOUND_DEB_CACHE:-$REPO/tests/deb/work}"
WORK="$REPO/tests/deb/work"
TARBALL="$CACHE/$SUITE-minbase-man-db-systemd.tar"

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "SKIP tests/deb/run.sh: needs root and apt-get (debootstrap, chroot, dpkg in a chroot); run it as root on Debian 12"
    exit 0
fi

T0=$(date +%s)
phase() { printf '== [%3ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
die() { echo "tests/deb/run.sh: $*" >&2; exit 2; }

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }
# check DESCRIPTION COMMAND...: the command must exit 0.
check() { local what="$1"; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

mkdir -p "$WORK" "$CACHE"

# --- tools -----------------------------------------------------------------------
phase "host tools: debootstrap, lintian (apt), cargo-deb $CARGO_DEB_VERSION"
need=()
for p in debootstrap lintian binutils; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # A mirror caught mid-sync fails an index now and then: retry once, then go on
    # with the lists there are (the install below fails if a package is missing).
    apt-get update -qq || { sleep 30; apt-get update -qq; } ||
        echo "WARNING: apt-get update failed twice; using the package lists there are" >&2
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
        || die "apt-get install ${need[*]} failed"
fi
CARGO_DEB="$CACHE/cargo/bin/cargo-deb"
if [ "$("$CARGO_DEB" --version 2>/dev/null || true)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    echo "   building cargo-deb $CARGO_DEB_VERSION from source into $CACHE/cargo (once; a few minutes)"
    nice cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION" --root "$CACHE/cargo" \
        || die "cargo install cargo-deb $CARGO_DEB_VERSION failed"
fi
export PATH="$CACHE/cargo/bin:$PATH"

# --- the package -------------------------------------------------------------------
phase "files the package ships"
missing=()
while read -r src; do
    compgen -G "crates/rebound-cli/$src" >/dev/null || missing+=("${src#../../}")
done < <(sed -n '/^\[package.metadata.deb\]/,/^\[/ s/^ *\["\([^"]*\)".*/\1/p' crates/rebound-cli/Cargo.toml \
         | grep -v '^target/release/\|^\.\./\.\./target/')
[ "${#missing[@]}" = 0 ] || die "missing, named in crates/rebound-cli/Cargo.toml [package.metadata.deb] assets: ${missing[*]}"
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
top="$(sed -n '1s/^rebound (\([^)]*\)).*/\1/p' dist/debian/changelog)"
[ "$top" = "$VERSION-1" ] \
    || die "dist/debian/changelog's first entry is $top, the package is $VERSION-1: add an entry for $VERSION-1 (dch -v $VERSION-1)"

phase "man pages and completions (cargo xtask all)"
rm -rf target/man target/completions
nice cargo run -q --locked -p xtask -- all >/dev/null

phase "cargo deb (static x86_64)"
DEB="$WORK/rebound_${VERSION}-1_amd64.deb"
rm -f "$DEB"
RUSTFLAGS='-C target-feature=+crt-static' nice cargo deb --locked -p rebound-cli \
    --target x86_64-unknown-linux-gnu --output "$DEB" >/dev/null
[ -f "$DEB" ] || die "cargo deb wrote no $DEB"
echo "   $(stat -c %s "$DEB") bytes  $DEB"

X="$WORK/extract"
rm -rf "$X"
dpkg-deb -x "$DEB" "$X"
check "the binary is static (no program interpreter)" \
    bash -c "! readelf -lW '$X/usr/bin/rebound' | grep -q INTERP"
check "Depends names no package" \
    bash -c "[ -z \"\$(dpkg-deb -f '$DEB' Depends)\" ]"
check "Section admin, Priority optional" \
    bash -c "[ \"\$(dpkg-deb -f '$DEB' Section Priority | tr '\n' ' ')\" = 'Section: admin Priority: optional ' ]"
pages=$(find "$X/usr/share/man/man1" -name 'rebound*.1.gz' | wc -l)
subs=$("$X/usr/bin/rebound" --help \
       | sed -n '/^Commands:/,/^$/ s/^  \([a-z][a-z-]*\) .*/\1/p' | grep -vc '^help$')
check "a gzipped man page for rebound and each of its $subs subcommands ($pages)" [ "$pages" = "$((subs + 1))" ]
for f in usr/share/bash-completion/completions/rebound usr/share/zsh/vendor-completions/_rebound \
         usr/share/fish/vendor_completions.d/rebound.fish usr/share/doc/rebound/examples/device.toml \
         usr/share/doc/rebound/changelog.Debian.gz usr/share/doc/rebound/copyright; do
    check "ships /$f" [ -f "$X/$f" ]
done
check "the generator is executable" [ -x "$X/usr/lib/systemd/system-generators/rebound-generator" ]
check "the RAUC post-install handler is executable where system.conf names it" [ -x "$X/usr/lib/rebound/rauc-post-install" ]
check "nothing in /etc/init.d (sysv-generator would make it a second unit)" [ ! -e "$X/etc/init.d" ]

# --- a clean bookworm -------------------------------------------------------------------
if [ ! -s "$TARBALL" ]; then
    phase "debootstrap --variant=minbase $SUITE (+ man-db, systemd), cached as $TARBALL"
    B="$WORK/bootstrap"
    rm -rf "$B"
    debootstrap --variant=minbase --include=man-db,systemd "$SUITE" "$B" ${REBOUND_DEB_MIRROR:+"$REBOUND_DEB_MIRROR"} \
        > "$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
    tar -C "$B" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$B"
fi
phase "fresh chroot from $TARBALL"
CH="$WORK/chroot"
cleanup() {
    if mountpoint -q "$CH/proc" 2>/dev/null; then umount "$CH/proc" || umount -l "$CH/proc" || true; fi
    if mountpoint -q "$CH/proc" 2>/dev/null; then
        echo "tests/deb/run.sh: $CH/proc is still mounted: not removing $CH (umount it by hand)" >&2
    else
        rm -rf "$CH"
    fi
    rm -rf "$X"
}
trap cleanup EXIT
cleanup
mkdir -p "$CH"
tar -C "$CH" -xf "$TARBALL"
mount -t proc proc "$CH/proc"
cp "$DEB" "$CH/tmp/rebound.deb"
# in_chroot SCRIPT: a bash script in the chroot, with a plain environment.
in_chroot() { chroot "$CH" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 bash -c "$1"; }

phase "dpkg -i in the chroot"
out="$(in_chroot 'dpkg -i /tmp/rebound.deb' 2>&1)" || { echo "$out"; bad "dpkg -i rebound.deb"; }
echo "$out" | sed 's/^/   | /'
check "dpkg -i: the package is installed" \
    bash -c "[ \"\$(chroot '$CH' dpkg-query -W -f='\${Status}' rebound)\" = 'install ok installed' ]"
check "postinst: no configuration, says to copy an example" \
    grep -q "no configuration at /etc/rebound.toml. Copy an example" <<< "$out"
check "postinst: says how to enable rebound-boot.service" \
    grep -q "systemctl enable rebound-boot.service" <<< "$out"
check "rebound --version is $VERSION" \
    bash -c "[ \"\$(chroot '$CH' rebound --version)\" = 'rebound $VERSION' ]"
check "man -w rebound" in_chroot 'man -w rebound | grep -qx /usr/share/man/man1/rebound.1.gz'
check "man -w rebound-boot" in_chroot 'man -w rebound-boot | grep -qx /usr/share/man/man1/rebound-boot.1.gz'
check "man rebound-boot shows EXIT STATUS and --dry-run" \
    in_chroot 'MANWIDTH=80 man -P cat rebound-boot 2>/dev/null | grep -q "^EXIT STATUS" && MANWIDTH=80 man -P cat rebound-boot 2>/dev/null | grep -q -- "--dry-run"'
check "rebound demo exits 0" in_chroot 'cd /tmp && rebound demo >/tmp/demo.out 2>&1'
# shellcheck disable=SC2016 # expanded by the chroot's bash
check "bash completion offers the subcommands" \
    in_chroot 'source /usr/share/bash-completion/completions/rebound; COMP_WORDS=(rebound ""); COMP_CWORD=1; _rebound rebound "" rebound; printf "%s\n" "${COMPREPLY[@]}" | grep -qx check-config'
check "rebound check-config accepts the installed example device.toml" \
    in_chroot 'rebound -c /usr/share/doc/rebound/examples/device.toml check-config >/dev/null'

phase "postinst with a configuration in place (dpkg -i again)"
in_chroot 'cp /usr/share/doc/rebound/examples/device.toml /etc/rebound.toml'
out="$(in_chroot 'dpkg -i /tmp/rebound.deb' 2>&1)" || bad "dpkg -i over a valid configuration"
check "postinst: runs rebound check-config and says the configuration is valid" \
    grep -q "/etc/rebound.toml is valid (rebound check-config)" <<< "$out"
in_chroot 'printf "this is = = not toml\n" > /etc/rebound.toml'
rc=0; out="$(in_chroot 'dpkg -i /tmp/rebound.deb' 2>&1)" || rc=$?
check "postinst: an invalid configuration does not fail the installation (dpkg exit $rc)" [ "$rc" = 0 ]
check "postinst: says the configuration is NOT valid" \
    grep -q "/etc/rebound.toml is NOT valid (rebound check-config exit status 2)" <<< "$out"
echo "$out" | grep 'NOT valid' -A2 | sed 's/^/   | /'

phase "the unit: installed, not enabled, not started"
check "rebound-boot.service is installed" [ -f "$CH/usr/lib/systemd/system/rebound-boot.service" ]
st="$(chroot "$CH" systemctl is-enabled rebound-boot.service 2>&1 || true)"
check "systemctl is-enabled rebound-boot.service: disabled ($st)" [ "$st" = disabled ]
check "no link to the unit under /etc/systemd" \
    bash -c "[ -z \"\$(find '$CH/etc/systemd' -name 'rebound*' -print)\" ]"

phase "dpkg -r, then dpkg --purge"
chroot "$CH" dpkg-query -L rebound > "$WORK/files.list"
check "the package owns files ($(wc -l < "$WORK/files.list") paths)" [ -s "$WORK/files.list" ]
in_chroot 'systemctl enable rebound-boot.service' >/dev/null 2>&1 || true
check "systemctl enable (as an administrator would) made a link" \
    bash -c "[ -n \"\$(find '$CH/etc/systemd/system' -type l -name rebound-boot.service)\" ]"
if out="$(in_chroot 'dpkg -r rebound' 2>&1)"; then ok "dpkg -r rebound"; else echo "$out"; bad "dpkg -r rebound"; fi
left=()
while read -r p; do
    if [ -z "$p" ] || [ "$p" = "/." ]; then continue; fi
    if [ -e "$CH$p" ] && [ ! -d "$CH$p" ]; then left+=("$p"); fi
done < "$WORK/files.list"
check "no file of the package is left after dpkg -r (${left[*]:-none})" [ "${#left[@]}" = 0 ]
for d in /usr/share/rebound /usr/lib/rebound /usr/share/doc/rebound /usr/share/mender; do
    check "$d is gone" [ ! -e "$CH$d" ]
done
if out="$(in_chroot 'dpkg --purge rebound' 2>&1)"; then ok "dpkg --purge rebound"; else echo "$out"; bad "dpkg --purge rebound"; fi
check "dpkg knows no rebound after --purge" \
    bash -c "! chroot '$CH' dpkg-query -W rebound >/dev/null 2>&1 && ! ls '$CH'/var/lib/dpkg/info/rebound.* >/dev/null 2>&1"
check "purge removed the administrator's link to the unit" \
    bash -c "[ -z \"\$(find '$CH/etc/systemd' -name 'rebound*' -print)\" ]"
check "purge left the administrator's /etc/rebound.toml" [ -f "$CH/etc/rebound.toml" ]

# --- lintian -------------------------------------------------------------------------
phase "lintian --pedantic (an E: tag fails; W/I/P are reported)"
lint="$(lintian --pedantic -I "$DEB" 2>&1 | grep -v '^running with root privileges' || true)"
echo "${lint:-   (no tags)}" | sed 's/^/   | /'
check "lintian: no error tag" bash -c "! grep -q '^E: ' <<< \"\$1\"" _ "$lint"

phase "done: $PASS passed, $FAIL failed"
echo "deb package: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ] || exit 1

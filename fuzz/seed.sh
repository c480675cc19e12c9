#!/bin/sh
# Seeds the fuzz corpora from the real binary's own files (fuzz/README.md).
#
# Runs `rebound` through seal, boot, damage, repair, commit, write and update on a
# scratch device (a golden set with an extra copy, a mirror set with a version tag,
# a changed_only set with a stat cache, SHA-256 and CRC-32 sets), then copies what it
# wrote -- manifests, golden manifests, stat caches, boot counters, event logs, version
# tags, the metrics file -- plus the test suite's configurations and manifest fixtures
# into fuzz/seeds/<target>/, one file per distinct content (named by its BLAKE3, or
# its sha256 if b3sum is not installed). history_load seeds are the four history
# slots of a copy joined by NUL bytes, as that target splits its input.
#
# Usage: fuzz/seed.sh [PATH-TO-REBOUND]   (default: target/debug/rebound, built if
# missing with `cargo build -p rebound-cli`).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
bin=${1:-$top/target/debug/rebound}
if [ ! -x "$bin" ]; then
    cargo build -q -p rebound-cli
fi
seeds=$top/fuzz/seeds
work=$(mktemp -d "${TMPDIR:-/tmp}/rebound-seed.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
d=$work/dev
mkdir -p "$d/usr/app/lib" "$d/bak" "$d/data" "$d/m1/apps/lib" "$d/m2" "$d/cache/etc" \
    "$d/sha/f" "$d/crc/f" "$d/upd/app" "$d/prom"

cat > "$d/rebound.toml" <<TOML
metrics_file = "$d/prom/rebound.prom"
events_kept = 5

[[set]]
name = "config"
mode = "golden"
live = "$d/usr"
golden = "$d/bak"
copies = ["$d/data/usr-copy"]
include = ["apn_cfg.json", "system_config.json", "app/**"]

[[set]]
name = "apps"
mode = "mirror"
replicas = ["$d/m1", "$d/m2"]
include = ["apps/**"]
version_file = "app_ver.txt"

[[set]]
name = "etc"
mode = "mirror"
replicas = ["$d/cache/etc", "$d/cache/etc-copy"]
include = ["**"]
changed_only = true
full_check_every = 3

[[set]]
name = "sha"
mode = "mirror"
replicas = ["$d/sha/f", "$d/sha/g"]
include = ["**"]
hash = "sha256"
changed_only = true

[[set]]
name = "crc"
mode = "mirror"
replicas = ["$d/crc/f", "$d/crc/g"]
include = ["**"]
hash = "crc32"
TOML

printf '{"apn": "factory"}\n' > "$d/usr/apn_cfg.json"
printf '{"volume": 5}\n' > "$d/usr/system_config.json"
printf "print('v1')\n" > "$d/usr/app/main.py"
printf 'def f(): return 1\n' > "$d/usr/app/lib/util.py"
printf 'odd name\n' > "$d/usr/app/with space %.py"
printf 'application v1\n' > "$d/m1/apps/app.bin"
printf 'baud=115200\n' > "$d/m1/apps/params.cfg"
printf 'VERSION = 1\n' > "$d/m1/apps/lib/mod.py"
printf '1\n' > "$d/m1/app_ver.txt"
for f in hosts passwd "caf$(printf '\303\251').conf"; do
    printf '%s\n' "$f" > "$d/cache/etc/$f"
    printf '%s\n' "$f" > "$d/sha/f/$f"
    printf '%s\n' "$f" > "$d/crc/f/$f"
done
printf 'app v2\n' > "$d/upd/app/main.py"

# Each run in a boot of its own (REBOUND_BOOT_ID), so that the boot counters count.
n=0
r() {
    n=$((n + 1))
    REBOUND_BOOT_ID=seed-boot-$n "$bin" -c "$d/rebound.toml" "$@" >/dev/null 2>&1 || true
}
r seal
r boot
# The stat cache records only files changed (ctime included) over 3 s before a boot.
sleep 4
r boot
r boot
# Damage: changed content, a deleted file, a deleted copy, a version tag bump.
printf 'corrupt\n' > "$d/usr/apn_cfg.json"
rm -f "$d/usr/app/main.py" "$d/m2/apps/params.cfg" "$d/data/usr-copy/app/lib/util.py"
printf 'x\n' > "$d/cache/etc/hosts"
r boot
sleep 4
r boot
printf 'corrupt again\n' > "$d/usr/apn_cfg.json"
r boot
# Intended changes.
printf '{"volume": 7}\n' > "$d/usr/system_config.json"
r commit
printf 'written\n' | r write "$d/usr/app/lib/util.py"
r update --set config "$d/upd"
printf '2\n' > "$d/m1/app_ver.txt"
printf 'application v2\n' > "$d/m1/apps/app.bin"
r boot
r boot --full

add() { # add TARGET FILE
    [ -f "$2" ] || return 0
    mkdir -p "$seeds/$1"
    if command -v b3sum >/dev/null; then
        h=$(b3sum --no-names "$2")
    else
        h=$(sha256sum "$2" | cut -d' ' -f1)
    fi
    cp "$2" "$seeds/$1/$(printf %.16s "$h")"
}
rm -rf "$seeds"
find "$d" -path '*/.rebound/*' -type f | while read -r f; do
    case $(basename "$f") in
        manifest | manifest.0 | manifest.1) add manifest_decode "$f" ;;
        statcache) add statcache_decode "$f" ;;
        boots.0 | boots.1) add boots_parse "$f" ;;
        events.0 | events.1) add event_log "$f" ;;
    esac
done
find "$d" -name app_ver.txt -type f | while read -r f; do add tag_parse "$f"; done
add metrics_sample "$d/prom/rebound.prom"
for f in "$top"/crates/rebound/tests/fixtures/manifest-v*.txt; do add manifest_decode "$f"; done
for f in "$d/rebound.toml" "$top"/examples/*.toml "$top"/crates/rebound-cli/tests/fixtures/*.toml \
    "$top"/tests/powercut/rebound.toml; do
    add config_parse "$f"
done
# manifest_keyed: format 3 manifests and keyed records (`mac` lines), from a set
# under a device key (keyed live manifests, issue 15).
if grep -q device_key "$bin" 2>/dev/null; then
    k=$work/keyed
    mkdir -p "$k/a/etc" "$k/b"
    printf 'keyed\n' > "$k/a/etc/a.conf"
    head -c 32 /dev/urandom > "$k/device.key"
    chmod 600 "$k/device.key"
    cat > "$k/rebound.toml" <<TOML
device_key = "$k/device.key"

[[set]]
name = "keyed"
mode = "mirror"
replicas = ["$k/a", "$k/b"]
include = ["**"]
changed_only = true
TOML
    for i in 1 2 3; do
        REBOUND_BOOT_ID=keyed-$i "$bin" -c "$k/rebound.toml" "$([ $i = 1 ] && echo seal || echo boot)" \
            >/dev/null 2>&1 || true
        sleep 2
    done
    add config_parse "$k/rebound.toml"
    find "$k" -path '*/.rebound/*' -type f | while read -r f; do
        case $(basename "$f") in
            manifest.0 | manifest.1) add manifest_keyed "$f" ;;
            statcache) add statcache_decode "$f" ;;
            boots.0 | boots.1) add boots_parse "$f" ;;
            events.0 | events.1) add event_log "$f" ;;
        esac
    done
fi

# sign_files: a key pair from `rebound keygen` and the signature `seal --sign-key`
# writes beside a golden manifest (signed golden manifests, issue 15).
if "$bin" keygen --help >/dev/null 2>&1; then
    s=$work/signed
    mkdir -p "$s/usr/app" "$s/bak"
    printf 'signed\n' > "$s/usr/app/a.conf"
    "$bin" keygen --out "$s/factory" >/dev/null 2>&1 || true
    cat > "$s/rebound.toml" <<TOML
[[set]]
name = "signed"
mode = "golden"
live = "$s/usr"
golden = "$s/bak"
include = ["app/**"]
golden_public_key = "$s/factory.pub"
TOML
    "$bin" -c "$s/rebound.toml" seal --sign-key "$s/factory" >/dev/null 2>&1 || true
    for f in "$s/factory" "$s/factory.pub" "$s/bak/.rebound/signed/manifest.sig"; do
        add sign_files "$f"
    done
    add manifest_decode "$s/bak/.rebound/signed/manifest"
    add config_parse "$s/rebound.toml"
fi
# history_load: boots.0 NUL boots.1 NUL events.0 NUL events.1 of each set's copies,
# renamed to the fuzz target's set `cfg` (the event log names its set).
find "$d" -path '*/.rebound/*' -name events.0 | while read -r f; do
    m=$(dirname "$f")
    set=$(basename "$m")
    {
        for s in boots.0 boots.1 events.0 events.1; do
            [ -f "$m/$s" ] && sed "s/^set $set\$/set cfg/" "$m/$s"
            [ $s = events.1 ] || printf '\000'
        done
    } > "$work/history"
    add history_load "$work/history"
done
# rfc3339_parse: every time the event logs hold, and the forms a user types.
grep -ho '[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9:]*Z' "$seeds"/event_log/* 2>/dev/null \
    | sort -u | head -n 20 | while read -r t; do
    printf '%s' "$t" > "$work/t"
    add rfc3339_parse "$work/t"
done
for t in 2026-12-05 '2026-12-05 07:18:19+02:00' 2026-12-05T05:18:19.123456Z \
    0000-01-01T00:00:00Z 9999-12-31T23:59:60z; do
    printf '%s' "$t" > "$work/t"
    add rfc3339_parse "$work/t"
done
# parity_record: the records of a parity set (issue 16): small files (64-byte blocks),
# a 20 KiB one, an empty one, at 10% and 50% redundancy.
if grep -q parity_redundancy "$bin" 2>/dev/null; then
    p=$work/parity
    mkdir -p "$p/live/d" "$p/par" "$p/par2"
    printf 'baud=115200\n' > "$p/live/small.cfg"
    : > "$p/live/empty"
    head -c 20480 /dev/urandom > "$p/live/d/blob.bin"
    for r in 10 50; do
        cat > "$p/rebound.toml" <<TOML
[[set]]
name = "p$r"
mode = "parity"
live = "$p/live"
parity = "$p/par$([ $r = 50 ] && echo 2)"
parity_redundancy = $r
include = ["**"]
TOML
        "$bin" -c "$p/rebound.toml" boot >/dev/null 2>&1 || true
    done
    add config_parse "$p/rebound.toml"
    find "$p/par" "$p/par2" -path '*/parity/*' -type f | while read -r f; do
        add parity_record "$f"
    done
fi
for t in $(ls "$seeds"); do
    printf '%-18s %3d files %6d bytes\n' "$t" "$(ls "$seeds/$t" | wc -l)" "$(cat "$seeds/$t"/* | wc -c)"
done

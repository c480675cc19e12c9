#!/usr/bin/env bash
# Tests dist/init.d/S05rebound, rebound's busybox/SysV init script, the way a device runs
# it: under busybox ash (busybox is bound over /bin/sh), started with "start" by an rcS
# that does what Buildroot's does (tests/powercut/guest/rcS, the one the power-cut lab's
# guest runs under busybox init), with busybox syslogd listening on /dev/log, and the
# real rebound binary (target/debug/rebound, or REBOUND_BIN=FILE) on a real sealed
# device directory:
#   - start on an intact device, after damage (repaired), with a lost file (exit 3) under
#     REBOUND_ON_LOST=continue and =stop, with a missing configuration (exit 2), with no
#     binary; what reaches the console, syslog and /run/rebound; whether the S-script
#     after it (S50probe) ran;
#   - stop, status, restart, an unknown action; =stop when run by hand (not by an rcS).
# The boot path itself (busybox init, inittab, S05rebound before the application, power
# cuts) is tested by the power-cut lab (tests/powercut/run.sh), whose guest runs this
# same S05rebound.
#
# Needs root (apt-get install busybox-static; a private mount namespace for /etc/init.d,
# /etc/default, /run, /dev and /bin/sh, so nothing on the host changes). Not root: skips.
# Exit status 0 all passed (or skipped), 1 a check failed, 2 setup error.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
W="$HERE/work"

if [ "${1:-}" != --in-namespace ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "tests/initd/run.sh: SKIPPED: needs root (apt-get, and a private mount namespace for /etc/init.d, /etc/default, /run, /dev/log and /bin/sh)"
        exit 0
    fi
    if ! command -v busybox > /dev/null 2>&1 || ! command -v unshare > /dev/null 2>&1; then
        echo "== installing busybox-static util-linux"
        export DEBIAN_FRONTEND=noninteractive
        # A mirror caught mid-sync fails an index now and then: retry once, then go on
        # with the lists there are (the install below fails if a package is missing).
        apt-get update -qq || { sleep 30; apt-get update -qq; } ||
            echo "WARNING: apt-get update failed twice; using the package lists there are" >&2
        apt-get install -y -qq --no-install-recommends busybox-static util-linux > /dev/null
    fi
    if [ -z "${REBOUND_BIN:-}" ]; then
        # The profile and features of `cargo test --workspace --all-features` (.ci/run),
        # so that after it this build reuses what it compiled.
        echo "== cargo build -p rebound-cli --all-features"
        (cd "$REPO" && cargo build --quiet -p rebound-cli --all-features)
        REBOUND_BIN="$REPO/target/debug/rebound"
    fi
    [ -x "$REBOUND_BIN" ] || { echo "tests/initd/run.sh: $REBOUND_BIN is not an executable (REBOUND_BIN?)" >&2; exit 2; }
    REBOUND_BIN="$(realpath "$REBOUND_BIN")"
    for d in /etc/init.d /etc/default /run; do
        [ -d "$d" ] || { echo "tests/initd/run.sh: $d does not exist on this host: it is where the namespace binds the test's own" >&2; exit 2; }
    done
    rm -rf "$W"
    mkdir -p "$W"
    export REBOUND_BIN
    exec unshare --mount --propagation private bash "$0" --in-namespace
fi

# ---------------------------------------------------------------------------------
# In a private mount namespace from here on.
# ---------------------------------------------------------------------------------
BB="$(command -v busybox)"
mkdir -p "$W/init.d" "$W/default" "$W/dev" "$W/dev-ns" "$W/device"
cp "$REPO/dist/init.d/S05rebound" "$REPO/tests/powercut/guest/rcS" "$W/init.d/"
cat > "$W/init.d/S50probe" <<'PROBE'
#!/bin/sh
# What a later S-script (network, application) would be: records that it ran.
echo "S50probe $1" >> /run/probe.log
PROBE
chmod +x "$W/init.d/"*
# /dev: a tmpfs with the host's null and a /dev/log of our own (syslogd below).
mount -t tmpfs tmpfs "$W/dev-ns"
touch "$W/dev-ns/null"
mount --bind /dev/null "$W/dev-ns/null"
ln -s /proc/self/fd "$W/dev-ns/fd"
mount --rbind "$W/dev-ns" /dev
mount --bind "$W/init.d" /etc/init.d
mount --bind "$W/default" /etc/default
mount -t tmpfs tmpfs /run
# /bin/sh is busybox ash, as on a busybox device (S05rebound's #!/bin/sh).
mount --bind "$BB" /bin/sh
"$BB" syslogd -n -O "$W/messages" &
SYSLOGD=$!
trap '{ kill $SYSLOGD; wait $SYSLOGD; } 2> /dev/null || :' EXIT
for _ in $(seq 50); do [ -S /dev/log ] && break; sleep 0.1; done
[ -S /dev/log ] || { echo "tests/initd/run.sh: busybox syslogd did not create /dev/log" >&2; exit 2; }

PASS=0
FAIL=0
check() { # NAME COMMAND...: one check
    local name="$1"
    shift
    if "$@"; then
        PASS=$((PASS + 1))
        echo "ok   $name"
    else
        FAIL=$((FAIL + 1))
        echo "FAIL $name"
        echo "     console: $(tail -n 8 "$W/console" 2> /dev/null | sed 's/^/       /')"
    fi
}
has() { grep -q -- "$2" "$1"; }
hasnt() { ! grep -q -- "$2" "$1"; }
# A line syslogd received since the last boot() (it writes asynchronously: wait a little).
logged() {
    for _ in $(seq 40); do
        tail -n "+$((MARK + 1))" "$W/messages" 2> /dev/null | grep -q -- "$1" && return 0
        sleep 0.05
    done
    return 1
}
rc_is() { [ "$RC" = "$1" ]; }
file_is() { [ "$(cat "$1" 2> /dev/null)" = "$2" ]; }

D="$W/device"
fresh_device() { # a sealed device: live + golden copy, 3 files
    rm -rf "$D"
    mkdir -p "$D/live/sub" "$D/golden"
    echo "apn=internet" > "$D/live/apn.conf"
    echo "mode=1" > "$D/live/system.conf"
    echo "x" > "$D/live/sub/app.conf"
    cat > "$D/rebound.toml" <<TOML
[[set]]
name = "config"
mode = "golden"
live = "$D/live"
golden = "$D/golden"
include = ["**/*.conf"]
TOML
    "$REBOUND_BIN" -c "$D/rebound.toml" seal > /dev/null
}
settings() { # VAR=VALUE...: /etc/default/rebound
    {
        echo "REBOUND=$REBOUND_BIN"
        echo "REBOUND_CONFIG=$D/rebound.toml"
        for kv in "$@"; do echo "$kv"; done
    } > /etc/default/rebound
}
boot() { # the rc sequence, as busybox init's ::sysinit:/etc/init.d/rcS runs it
    rm -f /run/probe.log /run/rebound.failed
    MARK=$(wc -l < "$W/messages" 2> /dev/null || echo 0)
    RC=0
    /etc/init.d/rcS > "$W/console" 2>&1 || RC=$?
}
s05() { # ACTION: the script run by hand
    RC=0
    /etc/init.d/S05rebound "$@" > "$W/console" 2>&1 || RC=$?
}

MARK=0
check "/bin/sh is busybox here" cmp -s /bin/sh "$BB"
echo "== S05rebound under busybox ash, rebound $("$REBOUND_BIN" --version)"

# 1. An intact device: rebound boot exits 0, the rc sequence goes on.
fresh_device
settings
boot
check "intact: rcS went on to S50probe" file_is /run/probe.log "S50probe start"
check "intact: boot.rc is 0" file_is /run/rebound/boot.rc 0
check "intact: report on the console" has "$W/console" "result: intact"
check "intact: result on the console" has "$W/console" "rebound: boot check done: every protected file is intact"
check "intact: report in syslog (tag rebound)" logged "rebound: .*result: intact"
check "intact: report kept in /run/rebound/boot.out" has /run/rebound/boot.out "result: intact"

# 2. status, stop, restart, an unknown action.
s05 status
check "status: exit 0 after a clean boot" rc_is 0
check "status: this boot's result" has "$W/console" "this boot's check exited 0"
check "status: rebound status output" has "$W/console" "set config (golden mode"
s05 stop
check "stop: exit 0" rc_is 0
check "stop: says there is nothing to stop" has "$W/console" "nothing to stop"
echo "damaged" > "$D/live/system.conf"
s05 restart
check "restart: runs the boot check again and repairs (exit 0)" rc_is 0
check "restart: the damaged file is restored" file_is "$D/live/system.conf" "mode=1"
check "restart: the repair is in the report" has "$W/console" "system.conf"
s05 frobnicate
check "unknown action: exit 2" rc_is 2
check "unknown action: usage" has "$W/console" "Usage: /etc/init.d/S05rebound {start|stop|status|restart}"

# 3. Damage at boot: repaired, the rc sequence goes on.
rm "$D/live/apn.conf"
boot
check "damaged: repaired (boot.rc 0)" file_is /run/rebound/boot.rc 0
check "damaged: the file is back" file_is "$D/live/apn.conf" "apn=internet"
check "damaged: rcS went on" file_is /run/probe.log "S50probe start"

# 4. A file with no intact copy (exit 3), REBOUND_ON_LOST=continue (the default).
rm "$D/live/apn.conf" "$D/golden/apn.conf"
settings
boot
check "lost, continue: boot.rc is 3" file_is /run/rebound/boot.rc 3
check "lost, continue: rcS went on to S50probe" file_is /run/probe.log "S50probe start"
check "lost, continue: loud on the console" has "$W/console" "A PROTECTED FILE HAS NO INTACT COPY LEFT"
check "lost, continue: the file is named" has "$W/console" "LOST: apn.conf"
check "lost, continue: says the boot goes on" has "$W/console" "REBOUND_ON_LOST=continue: the boot goes on"
check "lost, continue: in syslog" logged "rebound: A PROTECTED FILE HAS NO INTACT COPY LEFT"
check "lost, continue: no stop marker" test ! -e /run/rebound.failed
s05 status
check "status after a lost file: exit 3" rc_is 3
check "status after a lost file: says so" has "$W/console" "this boot's check exited 3"

# 5. The same with REBOUND_ON_LOST=stop: the rc sequence ends at S05rebound.
settings REBOUND_ON_LOST=stop
boot
check "lost, stop: S50probe did NOT run" test ! -e /run/probe.log
check "lost, stop: marker /run/rebound.failed" has /run/rebound.failed "rebound boot exited 3"
check "lost, stop: the marker names the file" has /run/rebound.failed "apn.conf"
check "lost, stop: says the rc sequence ends" has "$W/console" "REBOUND_ON_LOST=stop: ending the rc sequence"
check "lost, stop: in syslog" logged "rebound: REBOUND_ON_LOST=stop: ending the rc sequence"
check "lost, stop: rcS was ended by a signal (143)" rc_is 143
s05 status
check "status after a stop: mentions the marker" has "$W/console" "the rc sequence was ended at boot: /run/rebound.failed"
# Run by hand with =stop: the caller's shell must survive.
RC=0
sh -c '/etc/init.d/S05rebound start; echo "start exited $?"; echo "caller survived"' > "$W/console" 2>&1 || RC=$?
check "lost, stop, by hand: the caller survives" has "$W/console" "caller survived"
check "lost, stop, by hand: start exits 3" has "$W/console" "start exited 3"
check "lost, stop, by hand: says there is no rc sequence" has "$W/console" "not started by an rcS"

# 6. Configuration error (exit 2): the boot goes on even with =stop.
fresh_device
settings REBOUND_ON_LOST=stop "REBOUND_CONFIG=$D/missing.toml"
boot
check "config error: boot.rc is 2" file_is /run/rebound/boot.rc 2
check "config error: rcS went on (=stop applies to exit 3 only)" file_is /run/probe.log "S50probe start"
check "config error: rebound names the file" has "$W/console" "$D/missing.toml"
check "config error: says nothing was checked" has "$W/console" "protected files were NOT checked or repaired; the boot goes on"
check "config error: in syslog" logged "rebound: rebound boot exited 2"

# 7. No binary where REBOUND says.
settings "REBOUND=$W/no/such/rebound"
boot
check "no binary: boot.rc is 2" file_is /run/rebound/boot.rc 2
check "no binary: names the path and the settings file" has "$W/console" "$W/no/such/rebound is missing or not executable: install rebound there or set REBOUND= in /etc/default/rebound"
check "no binary: rcS went on" file_is /run/probe.log "S50probe start"

# 8. REBOUND_ARGS reach rebound boot; a bad REBOUND_ON_LOST is named and treated as continue.
settings "REBOUND_ARGS='--json --wait 5'" REBOUND_ON_LOST=halt
boot
check "REBOUND_ARGS: JSON report" has /run/rebound/boot.out '"sets"'
check "bad REBOUND_ON_LOST: named" has "$W/console" "REBOUND_ON_LOST=halt in /etc/default/rebound is neither continue nor stop: using continue"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]

#!/bin/sh
# rebound.sh: SWUpdate shellscript that lands an update's protected files with
# `rebound update SET --from DIR`, all or nothing (docs/integration.md, "SWUpdate").
#
# sw-description: the set's files travel as a tar archive that SWUpdate unpacks into a
# staging directory while it reads the .swu (installed-directly, so they are there when
# the scripts run); the script names the set and that directory in `data`:
#   images: ( {
#       filename = "rebound-config.tar";
#       type = "archive";
#       path = "/var/lib/rebound/swupdate/config";
#       properties: { create-destination = "true"; };
#       installed-directly = true;
#   } );
#   scripts: ( {
#       filename = "rebound.sh";
#       type = "shellscript";
#       data = "config /var/lib/rebound/swupdate/config";
#   } );
#
# SWUpdate calls it as `rebound.sh PHASE [SET DIR]` (data split at blanks: no blanks in
# SET or DIR). Without data, REBOUND_SET and REBOUND_FROM from the environment are used.
#   preinst      rebound update SET --from DIR --dry-run: refuse the update before
#                the other images and the postinst run if rebound cannot apply it
#   postinst     rebound update SET --from DIR
#   postfailure  nothing to undo: rebound's update is all or nothing, and a failed one
#                changed no protected file. (SWUpdate 2022.12 calls shellscripts with
#                preinst and postinst only.)
# After a refusal, a failure or a landed update DIR is removed (see remove_stage).
# REBOUND_CONFIG names rebound's configuration (unset: /etc/rebound.toml); REBOUND the
# binary (default: `rebound` on PATH).
#
# Exit status: 0 continue; 1 stop the update (SWUpdate reports it failed). SWUpdate logs
# what the script writes: rebound's report goes to SWUpdate's info stream
# ($SWUPDATE_INFO_FD; standard output, logged as traces, without it) when rebound
# succeeds, and to standard error, logged as errors, when it fails.
set -eu

me="rebound.sh"
phase="${1:-}"
set_name="${2:-${REBOUND_SET:-}}"
from="${3:-${REBOUND_FROM:-}}"
: "${REBOUND:=rebound}"

# The staging directory is removed after the update, landed or refused, so that no
# file of this update is taken for part of the next one. Never a replica: a directory
# with rebound's .rebound/ in it or anywhere below it is left alone, as is a path less
# than two levels deep.
remove_stage() {
    # .rebound/ at DIR or anywhere below it: DIR is (or holds) a protected copy.
    if [ -e "$from/.rebound" ] || [ -n "$(find "$from" -name .rebound 2>/dev/null | head -n 1)" ]; then
        echo "$me: not removing $from: it holds .rebound/ (a protected copy, not a staging directory)" >&2
        return 0
    fi
    case "$from" in
        *//*|*/./*|*/.|*/../*|*/..)
            echo "$me: not removing $from (not a plain path: '.', '..' or '//' in it)" >&2 ;;
        /?*/?*)
            # A cleanup failure must not turn a landed update into a failed one (set -e):
            # SWUpdate would then keep the old system with the new protected files.
            rm -rf -- "$from" || echo "$me: warning: could not remove $from; remove it before the next update" >&2 ;;
        *) echo "$me: not removing $from (not an absolute path two levels deep)" >&2 ;;
    esac
}

# say MESSAGE: a line for SWUpdate's info log.
say() {
    case "${SWUPDATE_INFO_FD:-}" in
        [0-9]) eval 'printf "%s\n" "$me: $1" >&'"$SWUPDATE_INFO_FD" ;;
        *) printf '%s\n' "$me: $1" ;;
    esac
}

# run_rebound ARGS...: rebound's report to the info log if it succeeds, to standard
# error if it fails; returns rebound's exit status.
run_rebound() {
    log="$(mktemp "${TMPDIR:-/tmp}/rebound-swupdate.XXXXXX")" || {
        echo "$me: cannot create a temporary file in ${TMPDIR:-/tmp} for rebound's report" >&2
        return 2
    }
    rc=0
    "$REBOUND" "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        while IFS= read -r line; do say "$line"; done <"$log"
    else
        cat "$log" >&2
    fi
    rm -f "$log"
    return "$rc"
}

need_args() {
    if [ -z "$set_name" ] || [ -z "$from" ]; then
        echo "$me: no set or directory: give both in the script's data in sw-description (data = \"SET DIR\"), or set REBOUND_SET and REBOUND_FROM" >&2
        exit 1
    fi
}

need_files() {
    if [ ! -d "$from" ] || [ -z "$(ls -A "$from")" ]; then
        echo "$me: $from holds no files: the set's archive must be unpacked there before the scripts run (type = \"archive\"; path = \"$from\"; installed-directly = true in sw-description)" >&2
        exit 1
    fi
}

case "$phase" in
    preinst)
        need_args
        need_files
        say "checking: rebound update $set_name --from $from --dry-run"
        rc=0
        run_rebound update "$set_name" --from "$from" --dry-run || rc=$?
        if [ "$rc" -ne 0 ]; then
            echo "$me: rebound cannot apply this update to set $set_name (exit $rc, report above): refusing it before anything is written" >&2
            remove_stage
            exit 1
        fi
        ;;
    postinst)
        need_args
        need_files
        say "rebound update $set_name --from $from"
        rc=0
        run_rebound update "$set_name" --from "$from" || rc=$?
        if [ "$rc" -ne 0 ]; then
            echo "$me: rebound update $set_name failed (exit $rc, report above): the protected files are unchanged; failing the update" >&2
            remove_stage
            exit 1
        fi
        remove_stage
        ;;
    postfailure)
        say "update failed: nothing to undo for rebound (its update is all or nothing; the protected files are as before)"
        if [ -n "$from" ]; then
            remove_stage
        fi
        ;;
    *)
        echo "$me: unknown phase '$phase' (SWUpdate passes preinst, postinst or postfailure)" >&2
        exit 1
        ;;
esac

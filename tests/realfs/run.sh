#!/usr/bin/env bash
# Runs the real-filesystem crash tests (crates/rebound-cli/tests/realfs_crash.rs) and
# prints their tables. Needs root and loop devices; installs nothing.
#
#   tests/realfs/run.sh           bounded run (about ten crash points per scenario)
#   tests/realfs/run.sh --full    every crash point, each cut two ways
#
# Extra environment: REBOUND_REALFS_FS=ext4,xfs (filesystems), REBOUND_REALFS_SCENARIO=text
# (scenarios whose name contains text). See docs/realfs.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" = "--full" ]; then
    export REBOUND_REALFS_FULL=1
fi
exec cargo test -p rebound-cli --features fault-injection --test realfs_crash -- \
    --nocapture --test-threads=1

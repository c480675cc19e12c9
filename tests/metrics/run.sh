#!/usr/bin/env bash
# The metrics file (metrics_file, --metrics-file) read by the Prometheus project's own
# parser (prometheus_client from PyPI, installed here into tests/metrics/work/py): a
# scripted sequence of seals, boots, damage, lost files and verifies on a real device
# directory, the values checked after each step (tests/metrics/check.py).
# Uses target/debug/rebound (built here) or REBOUND_BIN=FILE. Needs python3 and pip (or
# root with apt-get to install python3-pip). Exit status 0 passed, 1 a check failed,
# 2 setup error.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
W="$HERE/work"
mkdir -p "$W"

if ! python3 -m pip --version >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    else
        echo "tests/metrics/run.sh: setup error: no pip for python3 (install python3-pip)" >&2
        exit 2
    fi
fi
if ! PYTHONPATH="$W/py" python3 -c 'import prometheus_client.parser' 2>/dev/null; then
    python3 -m pip install -q --disable-pip-version-check --target "$W/py" 'prometheus_client>=0.17' \
        || python3 -m pip install -q --disable-pip-version-check --break-system-packages --target "$W/py" 'prometheus_client>=0.17'
fi

BIN="${REBOUND_BIN:-}"
if [ -z "$BIN" ]; then
    (cd "$REPO" && cargo build -q -p rebound-cli)
    BIN="$REPO/target/debug/rebound"
fi
PYTHONPATH="$W/py" python3 "$HERE/check.py" "$BIN" "$W/device"

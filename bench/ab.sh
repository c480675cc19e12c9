#!/usr/bin/env bash
# Two builds of rebound compared in one run: `boot`, `verify` and `commit` of one file,
# on the benchmark's corpora, warm cache, hyperfine (`-N -w 1 -r RUNS`).
#
#   bench/ab.sh BASE_REV                 # e.g. bench/ab.sh 0ec521c: that commit vs HEAD
#   RUNS=5 CORPORA="small" bench/ab.sh 0ec521c
#
# It builds both (release, in temporary worktrees' own target directories), generates
# the corpora with `rebound-bench gen` under BENCH_DIR (default /var/tmp), seals each
# once (golden set, blake3, include = ["**"]), and times the two binaries side by side
# on the same tree. `commit` changes one file before each run (hyperfine --prepare), so
# every timed commit records a new generation. Nothing here is a test: the figures
# depend on the machine and its load; read them as ratios of the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BASE_REV=${1:?usage: bench/ab.sh BASE_REV}
RUNS=${RUNS:-10}
CORPORA=${CORPORA:-"small tiny"}
BENCH_DIR=${BENCH_DIR:-/var/tmp}

command -v hyperfine >/dev/null || {
    echo "hyperfine is needed (apt-get install hyperfine)" >&2
    exit 2
}
work=$(mktemp -d "$BENCH_DIR/rebound-ab.XXXXXX")
trap 'git -C "$REPO" worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

echo "== building $BASE_REV and HEAD ($(git rev-parse --short HEAD))"
git worktree add -q --detach "$work/base" "$BASE_REV"
(cd "$work/base" && CARGO_TARGET_DIR="$work/base/target" cargo build -q --release -p rebound-cli)
cargo build -q --release -p rebound-cli
cargo build -q --release --manifest-path bench/Cargo.toml
base="$work/base/target/release/rebound"
new="${CARGO_TARGET_DIR:-$REPO/target}/release/rebound"
gen="${CARGO_TARGET_DIR:-$REPO/target}/release/rebound-bench"
[ -x "$gen" ] || gen="$REPO/bench/target/release/rebound-bench"

for corpus in $CORPORA; do
    d="$work/$corpus"
    mkdir -p "$d/golden"
    "$gen" gen "$corpus" "$d/live" >/dev/null
    cat >"$d/rebound.toml" <<EOF
[[set]]
name = "bench"
mode = "golden"
live = "$d/live"
golden = "$d/golden"
include = ["**"]
hash = "blake3"
EOF
    "$new" -c "$d/rebound.toml" seal >/dev/null
    one=$(find "$d/live" -type f -not -path '*/.rebound/*' -print -quit)
    for threads in 2 1; do
        echo "== $corpus, $threads thread(s)"
        hyperfine -N -w 1 -r "$RUNS" --style basic \
            -n "boot base" "$base -c $d/rebound.toml --threads $threads boot" \
            -n "boot new" "$new -c $d/rebound.toml --threads $threads boot" \
            -n "verify base" "$base -c $d/rebound.toml --threads $threads verify" \
            -n "verify new" "$new -c $d/rebound.toml --threads $threads verify"
        hyperfine -N -w 1 -r "$RUNS" --style basic \
            --prepare "sh -c 'date +%s%N >> $one'" \
            -n "commit base" "$base -c $d/rebound.toml --threads $threads commit $one" \
            -n "commit new" "$new -c $d/rebound.toml --threads $threads commit $one"
    done
done

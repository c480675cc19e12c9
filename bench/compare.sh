#!/usr/bin/env bash
# rebound's boot-time performance against the I/O floor and the tools users know.
#
#   bench/compare.sh            # the whole benchmark (about 15-25 minutes on 2 cores)
#   RUNS=3 CORPORA="small" bench/compare.sh    # a quicker look at one corpus
#
# What it does, in one run:
# 1. installs what it needs (Debian: aide, b3sum, hyperfine, time; as root only);
# 2. builds rebound (release) and the benchmark's own helper (bench/src/main.rs);
# 3. generates the corpora under a temporary directory on the same filesystem as
#    BENCH_DIR (default /var/tmp): `small` 10,000 files of 1-64 KiB, `tiny` 100,000
#    files of 1 KiB, `big` one 1 GiB file. Each is a golden set (live + golden copy)
#    sealed once per hash algorithm (four sets over the same two directories). Sealing
#    happens on tmpfs (/dev/shm, where fsync is free) and the result is copied over,
#    because sealing 100,000 files with two fsyncs each takes minutes on a real disk;
# 4. times, warm cache (one warm-up run, then the median of RUNS runs, hyperfine):
#    - the floor: open + read + close of every file, page-aligned reused buffer,
#      1 and 2 threads (bench/src/main.rs), over live + golden and over live alone;
#    - `rebound verify` (reads live + golden) per hash, 1 and 2 threads;
#    - `rebound boot` (reads live only) per hash, 1 and 2 threads;
#    - `find | xargs b3sum` (plain, and `-P2 --no-mmap`), `find | xargs sha256sum`
#      and `aide --check` (sha256 + size + permissions), over live + golden;
#    - the no-change boot of a `changed_only` set (stat cache warm) on `small`;
#    - peak RSS of `boot` on `tiny` (/usr/bin/time -v) and the stripped binary size;
# 5. prints every median and rebound's ratios against the targets of issue 6.
#
# Nothing here is part of the test suite; timings depend on the machine and its load.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RUNS=${RUNS:-5}
CORPORA=${CORPORA:-"small tiny big"}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BENCH_TARGET=${BENCH_TARGET_DIR:-$TARGET/bench}

echo "== installing tools"
need=()
for p in aide:aide b3sum:b3sum hyperfine:hyperfine /usr/bin/time:time; do
    command -v "${p%%:*}" >/dev/null 2>&1 || need+=("${p##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing: ${need[*]} (run as root, or install them)" >&2
        exit 2
    fi
fi

echo "== building"
cargo build --release -q -p rebound-cli
CARGO_TARGET_DIR=$BENCH_TARGET cargo build --release -q --manifest-path bench/Cargo.toml
R=$TARGET/release/rebound
B=$BENCH_TARGET/release/rebound-bench

W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/rebound-bench.XXXXXX")
SHM=$(mktemp -d /dev/shm/rebound-bench.XXXXXX)
trap 'rm -rf "$W" "$SHM"' EXIT
RES=$W/results
mkdir -p "$RES"

# One configuration file per set: the sets share the corpus's two directories, and
# within one configuration a file may belong to one set only (docs/design.md section
# 7), so each set is run through its own file, as five devices would.
SETS="blake3 sha256 crc32 xxh3 changed"
config() { # corpus-dir set -> the configuration of that set alone
    local d=$1 h=$2
    if [ "$h" = changed ]; then
        printf '[[set]]\nname = "changed"\nmode = "golden"\nlive = "%s/live"\ngolden = "%s/golden"\ninclude = ["**"]\nhash = "blake3"\nchanged_only = true\nfull_check_every = 1000000\n' \
            "$d" "$d"
    else
        printf '[[set]]\nname = "%s"\nmode = "golden"\nlive = "%s/live"\ngolden = "%s/golden"\ninclude = ["**"]\nhash = "%s"\n' \
            "$h" "$d" "$d" "$h"
    fi
}

echo "== generating and sealing corpora in $W"
for c in $CORPORA; do
    mkdir -p "$SHM/$c/golden"
    "$B" gen "$c" "$SHM/$c/live"
    for h in $SETS; do
        config "$SHM/$c" "$h" >"$SHM/$c.$h.toml"
        "$R" -c "$SHM/$c.$h.toml" seal >/dev/null
        config "$W/$c" "$h" >"$W/$c.$h.toml"
    done
    cp -a "$SHM/$c" "$W/$c"
    rm -rf "${SHM:?}/$c"
    # AIDE: the same files, content (sha256), size and permissions.
    cat >"$W/$c.aide.conf" <<EOF
database_in=file:$W/$c.aide.db
database_out=file:$W/$c.aide.db
report_url=stdout
Check = p+s+sha256
$W/$c/live Check
$W/$c/golden Check
!$W/$c/live/.rebound
!$W/$c/golden/.rebound
EOF
    aide --init -c "$W/$c.aide.conf" >/dev/null 2>&1 || true
done

# hyperfine, median of RUNS after one warm-up run, exported as JSON per group.
hf() { # group runs -- commands...
    local group=$1 runs=$2
    shift 3
    hyperfine -N -i -w 1 -r "$runs" --export-json "$RES/$group.json" "$@" >>"$RES/hyperfine.log" 2>&1
}

echo "load before timing: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)" >"$RES/load"
for c in $CORPORA; do
    d=$W/$c
    cfg() { echo "$W/$c.$1.toml"; }
    echo "== timing $c"
    cmds=(
        -n "floor 1t (live+golden)" "$B floor --threads 1 $d/live $d/golden"
        -n "floor 2t (live+golden)" "$B floor --threads 2 $d/live $d/golden"
        -n "floor 1t (live)" "$B floor --threads 1 $d/live"
        -n "floor 2t (live)" "$B floor --threads 2 $d/live"
    )
    for h in blake3 sha256 crc32 xxh3; do
        for t in 1 2; do
            cmds+=(-n "rebound verify $h ${t}t" "$R -c $(cfg "$h") --threads $t verify")
            cmds+=(-n "rebound boot $h ${t}t" "$R -c $(cfg "$h") --threads $t boot")
        done
    done
    hf "$c-rebound" "$RUNS" -- "${cmds[@]}"
    tools=(
        -n "find | xargs b3sum" "find $d/live $d/golden -type f -not -path '*/.rebound/*' -print0 | xargs -0 b3sum >/dev/null"
        -n "find | xargs -P2 b3sum --no-mmap" "find $d/live $d/golden -type f -not -path '*/.rebound/*' -print0 | xargs -0 -P2 b3sum --no-mmap >/dev/null"
        -n "find | xargs sha256sum" "find $d/live $d/golden -type f -not -path '*/.rebound/*' -print0 | xargs -0 sha256sum >/dev/null"
    )
    hyperfine -i -w 1 -r "$RUNS" --export-json "$RES/$c-tools.json" "${tools[@]}" >>"$RES/hyperfine.log" 2>&1
    hyperfine -N -i -w 1 -r "$(( RUNS < 3 ? RUNS : 3 ))" --export-json "$RES/$c-aide.json" \
        -n "aide --check" "aide --check -c $W/$c.aide.conf" >>"$RES/hyperfine.log" 2>&1
    if [ "$c" = small ]; then
        # Changed-only: prime the stat cache (files must be older than the racy
        # margin, 3 s), then time the no-change boot. Each such boot still writes its
        # small boot counter durably (two fsyncs).
        sleep 4
        "$R" -c "$(cfg changed)" boot >/dev/null
        "$R" -c "$(cfg changed)" boot >/dev/null
        hf "$c-changed" "$RUNS" -- \
            -n "rebound boot changed-only (no change) 1t" "$R -c $(cfg changed) --threads 1 boot" \
            -n "rebound boot changed-only (no change) 2t" "$R -c $(cfg changed) --threads 2 boot"
    fi
    if [ "$c" = tiny ]; then
        /usr/bin/time -v "$R" -c "$(cfg blake3)" --threads 2 boot 2>"$RES/rss-tiny.txt" >/dev/null || true
        /usr/bin/time -v "$R" -c "$(cfg blake3)" --threads 1 boot 2>"$RES/rss-tiny-1t.txt" >/dev/null || true
    fi
done
stat -c %s "$R" >"$RES/binary-size"
echo "load after timing:  $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/load"

echo
python3 - "$RES" "$CORPORA" "$RUNS" <<'EOF'
import json, os, re, sys
res, corpora, runs = sys.argv[1], sys.argv[2].split(), sys.argv[3]
med, cpu = {}, {}
for f in sorted(os.listdir(res)):
    if f.endswith(".json"):
        c = f.split("-")[0]
        for r in json.load(open(os.path.join(res, f)))["results"]:
            med[(c, r["command"])] = r["median"]
            cpu[(c, r["command"])] = r["user"] + r["system"]

print(f"rebound benchmark: warm page cache, median of {runs} runs after a warm-up")
print("wall = median elapsed time; cpu = mean user+system time (less sensitive to other")
print("load on the machine, which only the wall time of a 2-thread run can show)")
print(open(os.path.join(res, "load")).read().rstrip())
for c in corpora:
    print(f"\n-- {c}: " + {"small": "10,000 files of 1-64 KiB",
                           "tiny": "100,000 files of 1 KiB",
                           "big": "one 1 GiB file"}[c]
          + " (x2: live + golden)")
    for (cc, name), v in med.items():
        if cc != c:
            continue
        ref = None
        m = re.match(r"rebound (verify|boot) \S+ (\d)t", name)
        if m:
            ref = f"floor {m.group(2)}t (" + ("live+golden" if m.group(1) == "verify" else "live") + ")"
        k = (c, name)
        extra = ""
        if ref and (c, ref) in med:
            extra = f"   {v / med[(c, ref)]:5.2f}x floor (cpu {cpu[k] / cpu[(c, ref)]:5.2f}x)"
        print(f"  {name:44s} wall {v:7.3f} s  cpu {cpu[k]:7.3f} s{extra}")

def get(c, n):
    return med.get((c, n))

print("\n-- targets (issue 6), ratios from this run")
def line(desc, val, ok):
    print(f"  [{'ok ' if ok else 'NO '}] {desc}: {val}")
for t in ("1t", "2t"):
    f = get("small", f"floor {t} (live+golden)")
    for h in ("crc32", "xxh3"):
        v = get("small", f"rebound verify {h} {t}")
        if f and v:
            line(f"10k tree, verify {h} {t} within 1.15x of floor", f"{v / f:.2f}x", v / f <= 1.15)
b = get("small", "rebound verify blake3 2t")
for tool, want, desc in (("find | xargs b3sum", 2.5, "at least 2.5x faster than xargs b3sum"),
                         ("find | xargs -P2 b3sum --no-mmap", 1.0, "at least as fast as xargs -P2 b3sum --no-mmap"),
                         ("aide --check", 20.0, "20x faster than AIDE")):
    v = get("small", tool)
    if b and v:
        line(f"10k tree, verify blake3 2t {desc}", f"{v / b:.2f}x faster", v / b >= want)
for t in ("1t", "2t"):
    f = get("tiny", f"floor {t} (live+golden)")
    for h in ("crc32", "xxh3", "blake3"):
        v = get("tiny", f"rebound verify {h} {t}")
        if f and v:
            line(f"100k tree, verify {h} {t} within 1.2x of floor",
                 f"{v / f:.2f}x ({v / 200000 * 1e6:.2f} us/file, floor {f / 200000 * 1e6:.2f})", v / f <= 1.2)
v = get("small", "rebound boot changed-only (no change) 1t")
if v:
    full = get("small", "rebound boot blake3 1t")
    print(f"  [---] 10k tree, no-change boot with changed_only: {v:.3f} s (full blake3 boot: {full:.3f} s)")
for f, label in (("rss-tiny.txt", "2t"), ("rss-tiny-1t.txt", "1t")):
    p = os.path.join(res, f)
    if os.path.exists(p):
        kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(p).read()).group(1))
        line(f"peak RSS of boot on the 100k tree ({label}) under 16 MiB", f"{kb / 1024:.1f} MiB", kb < 16 * 1024)
size = int(open(os.path.join(res, "binary-size")).read())
line("stripped release binary under 3 MiB", f"{size / 1048576:.2f} MiB ({size} bytes)", size < 3 * 1048576)
EOF

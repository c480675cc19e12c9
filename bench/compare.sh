#!/usr/bin/env bash
# rebound's boot-time performance against the I/O floor and the tools users know.
#
#   bench/compare.sh            # the whole benchmark (16 minutes on 2 loaded cores, 2026-12-05)
#   RUNS=3 CORPORA="small" bench/compare.sh    # a quicker look at one corpus
#   COLD=0 bench/compare.sh     # without the cold-cache runs (they need root)
#
# What it does, in one run:
# 1. installs what it needs (Debian: aide, b3sum, hyperfine, time; as root only);
# 2. builds rebound (release) and the benchmark's own helper (bench/src/main.rs);
# 3. generates the corpora under a temporary directory on the same filesystem as
#    BENCH_DIR (default /var/tmp): `small` 10,000 files of 1-64 KiB, `tiny` 100,000
#    files of 1 KiB, `big` one 1 GiB file. Each is a golden set (live + golden copy)
#    sealed once per hash algorithm (four sets over the same two directories); and
#    two small sets, `few20` (20 files of 1-8 KiB) and `few100` (100 such files). Sealing
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
#    - peak RSS of `boot` on `tiny` (/usr/bin/time -v; also of a boot that repairs one
#      file and of `verify`, both observed in full) and the stripped binary size;
#      the RSS rows also for the static build tools/dist.sh ships (+crt-static);
#    - (issue 17) the read+hash floor: the floor over the live tree and the set's
#      metadata directory (what `boot` reads), each file also hashed with the crates
#      and buffer rebound uses (crc32, xxh3, blake3; 1 and 2 threads), against
#      `rebound boot` at the same thread count;
#    - (issue 17) on `big`: `b3sum` (mmap + its own threads) and
#      `b3sum --num-threads 1|2` over the live file, against `rebound boot` blake3;
#    - (issue 17) the small sets: `/bin/true`, the read+hash floor and `rebound boot`
#      on 20 files; where `boot` spends its time before the first file is read
#      (strace -f -ttt and -c); peak RSS of `boot` on 20 and 100 files;
# 5. (issue 17, COLD=1, the default as root) cold cache: before each run `sync` and
#    `echo 3 > /proc/sys/vm/drop_caches`; times the floor, the read+hash floor and
#    `rebound boot` blake3 at 2 threads over the live tree, and reads `read_bytes` of
#    /proc/PID/io of each once it exits (the helper's `io`, before reaping), against
#    the blocks the files occupy (st_blocks * 512);
# 6. prints every median and rebound's ratios against the targets of issues 6 and 17.
#
# Nothing here is part of the test suite; timings depend on the machine and its load.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RUNS=${RUNS:-5}
CORPORA=${CORPORA:-"small tiny big few20 few100"}
COLD=${COLD:-1}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BENCH_TARGET=${BENCH_TARGET_DIR:-$TARGET/bench}

echo "== installing tools"
need=()
for p in aide:aide b3sum:b3sum hyperfine:hyperfine /usr/bin/time:time strace:strace; do
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
# The form tools/dist.sh ships (static, +crt-static), for the memory rows: a static
# binary maps only the C library code it uses, so its resident set is smaller.
HOST=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -q -p rebound-cli --target "$HOST"
RS=$TARGET/$HOST/release/rebound
B=$BENCH_TARGET/release/rebound-bench

W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/rebound-bench.XXXXXX")
SHM=$(mktemp -d /dev/shm/rebound-bench.XXXXXX)
trap 'rm -rf "$W" "$SHM"' EXIT
RES=$W/results
mkdir -p "$RES"

# Cold-cache runs: only where the page cache may be dropped (root, a writable
# /proc/sys/vm/drop_caches; a container may refuse it).
if [ "$COLD" != 0 ]; then
    if "$B" drop 2>"$RES/cold-refused"; then
        COLD=1
    else
        echo "cold cache: cannot drop the page cache ($(cat "$RES/cold-refused")); skipping the cold runs" | tee "$RES/cold-skipped" >&2
        COLD=0
    fi
fi

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
    case $c in
    few*) "$B" gen few "${c#few}" "$SHM/$c/live" ;;
    *) "$B" gen "$c" "$SHM/$c/live" ;;
    esac
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
    case $c in few*)
        # Small sets (issue 17, item 5): process start against boot. Milliseconds
        # each, so many runs; hyperfine without a shell.
        if [ "$c" = few20 ]; then
            hyperfine -N -i -w 5 -r $(( RUNS * 20 )) --export-json "$RES/$c-start.json" \
                -n "/bin/true" "/bin/true" \
                -n "floor+hash blake3 1t (live)" "$B floor --threads 1 --hash blake3 --skip-meta $d/live $d/live/.rebound/blake3" \
                -n "rebound boot blake3 1t" "$R -c $(cfg blake3) --threads 1 boot" \
                -n "rebound boot blake3 (default threads)" "$R -c $(cfg blake3) boot" \
                >>"$RES/hyperfine.log" 2>&1
            # Where the time goes before the first file is read: every system call
            # with its start and duration (-ttt -T) and a summary of wall time per
            # call (-c -w). strace slows each call, so the phases are read as
            # shares, not as times.
            strace -f -ttt -T -o "$RES/$c-strace.txt" "$R" -c "$(cfg blake3)" --threads 1 boot >/dev/null || true
            strace -f -c -w -o "$RES/$c-strace-c.txt" "$R" -c "$(cfg blake3)" --threads 1 boot >/dev/null || true
        fi
        /usr/bin/time -v "$R" -c "$(cfg blake3)" --threads 1 boot 2>"$RES/rss-$c-1t.txt" >/dev/null || true
        /usr/bin/time -v "$R" -c "$(cfg blake3)" --threads 2 boot 2>"$RES/rss-$c.txt" >/dev/null || true
        /usr/bin/time -v "$RS" -c "$(cfg blake3)" --threads 1 boot 2>"$RES/rss-$c-1t-static.txt" >/dev/null || true
        /usr/bin/time -v "$RS" -c "$(cfg blake3)" --threads 2 boot 2>"$RES/rss-$c-static.txt" >/dev/null || true
        /usr/bin/time -v "$B" floor --threads 1 --hash blake3 --skip-meta "$d/live" "$d/live/.rebound/blake3" 2>"$RES/rss-$c-floor.txt" >/dev/null || true
        continue
        ;;
    esac
    cmds=(
        -n "floor 1t (live+golden)" "$B floor --threads 1 $d/live $d/golden"
        -n "floor 2t (live+golden)" "$B floor --threads 2 $d/live $d/golden"
        -n "floor 1t (live)" "$B floor --threads 1 $d/live"
        -n "floor 2t (live)" "$B floor --threads 2 $d/live"
    )
    # The read+hash floor of a boot (issue 17): the live tree without rebound's
    # metadata, plus the metadata directory of the one set the boot reads (its two
    # manifest slots, event log, boot counter: a boot reads them all).
    for h in crc32 xxh3 blake3; do
        for t in 1 2; do
            cmds+=(-n "floor+hash $h ${t}t (live)" "$B floor --threads $t --hash $h --skip-meta $d/live $d/live/.rebound/$h")
        done
    done
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
    if [ "$c" = big ]; then
        # Issue 17, item 4: b3sum over the live file only (what boot reads). Its
        # default memory-maps the file and hashes it on all CPUs (rayon).
        hf "$c-b3" "$RUNS" -- \
            -n "b3sum (live, mmap, all CPUs)" "b3sum $d/live/big.bin" \
            -n "b3sum --num-threads 1 (live)" "b3sum --num-threads 1 $d/live/big.bin" \
            -n "b3sum --num-threads 2 (live)" "b3sum --num-threads 2 $d/live/big.bin" \
            -n "b3sum --no-mmap (live)" "b3sum --no-mmap $d/live/big.bin"
    fi
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
        /usr/bin/time -v "$RS" -c "$(cfg blake3)" --threads 2 boot 2>"$RES/rss-tiny-static.txt" >/dev/null || true
        /usr/bin/time -v "$RS" -c "$(cfg blake3)" --threads 1 boot 2>"$RES/rss-tiny-1t-static.txt" >/dev/null || true
        # The full observation's memory: a boot that repairs one file (the streaming
        # boot gives up at it and the set is observed in full; the repair restores
        # the file from golden, so every set over this tree is intact again), and
        # verify (always in full).
        victim=$(find "$d/live" -type f -not -path '*/.rebound/*' -print -quit)
        printf 'damaged' >"$victim"
        /usr/bin/time -v "$R" -c "$(cfg blake3)" --threads 2 boot 2>"$RES/rss-tiny-repair.txt" >/dev/null || true
        # The runs after this one (cold cache) need the tree intact again.
        if ! cmp -s "$victim" "$d/golden/${victim#"$d/live/"}"; then
            echo "the repair boot did not restore $victim; restored by copying it from golden" >&2
            cp -p "$d/golden/${victim#"$d/live/"}" "$victim"
        fi
        /usr/bin/time -v "$R" -c "$(cfg blake3)" --threads 2 verify 2>"$RES/rss-tiny-verify.txt" >/dev/null || true
    fi
    if [ "$COLD" = 1 ]; then
        # Issue 17, item 3: cold cache. Every run starts with the page cache,
        # dentries and inodes dropped (the binaries' pages too). Then one more run
        # of each under the helper's `io`, which copies /proc/PID/io at exit.
        echo "== cold cache $c"
        meta=$d/live/.rebound/blake3
        hyperfine -N -i -r "$(( RUNS < 3 ? RUNS : 3 ))" --prepare "$B drop" --export-json "$RES/$c-cold.json" \
            -n "cold floor 2t (live)" "$B floor --threads 2 --skip-meta $d/live $meta" \
            -n "cold floor+hash blake3 2t (live)" "$B floor --threads 2 --hash blake3 --skip-meta $d/live $meta" \
            -n "cold rebound boot blake3 2t" "$R -c $(cfg blake3) --threads 2 boot" \
            >>"$RES/hyperfine.log" 2>&1
        "$B" drop
        "$B" io "$RES/$c-io-floor.txt" -- "$B" floor --threads 2 --skip-meta "$d/live" "$meta" >/dev/null
        "$B" drop
        "$B" io "$RES/$c-io-boot.txt" -- "$R" -c "$(cfg blake3)" --threads 2 boot >/dev/null || true
        "$B" du --skip-meta "$d/live" >"$RES/$c-du-live.txt"
        "$B" du "$meta" >"$RES/$c-du-meta.txt"
        "$B" du "$d/golden" >"$RES/$c-du-golden.txt"
    fi
done
stat -c %s "$R" >"$RES/binary-size"
stat -c %s "$B" >"$RES/helper-size"
echo "load after timing:  $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/load"

echo
python3 - "$RES" "$CORPORA" "$RUNS" "$W" <<'EOF'
import json, os, re, sys
res, corpora, runs, work = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
med, cpu, spread = {}, {}, {}
for f in sorted(os.listdir(res)):
    if f.endswith(".json"):
        c = f.split("-")[0]
        for r in json.load(open(os.path.join(res, f)))["results"]:
            med[(c, r["command"])] = r["median"]
            cpu[(c, r["command"])] = r["user"] + r["system"]
            spread[(c, r["command"])] = (r["min"], r["max"])

print(f"rebound benchmark: warm page cache, median of {runs} runs after a warm-up")
print("wall = median elapsed time; cpu = mean user+system time (less sensitive to other")
print("load on the machine, which only the wall time of a 2-thread run can show)")
print(open(os.path.join(res, "load")).read().rstrip())
for c in corpora:
    print(f"\n-- {c}: " + {"small": "10,000 files of 1-64 KiB",
                           "tiny": "100,000 files of 1 KiB",
                           "big": "one 1 GiB file",
                           "few20": "20 files of 1-8 KiB",
                           "few100": "100 files of 1-8 KiB"}[c]
          + " (x2: live + golden)")
    for (cc, name), v in med.items():
        if cc != c:
            continue
        ref = None
        m = re.match(r"rebound (verify|boot) \S+ (\d)t", name)
        m2 = re.match(r"floor\+hash \S+ (\d)t", name)
        if m:
            ref = f"floor {m.group(2)}t (" + ("live+golden" if m.group(1) == "verify" else "live") + ")"
        elif m2:
            ref = f"floor {m2.group(1)}t (live)"
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
for f, label in (("rss-tiny.txt", "2t"), ("rss-tiny-1t.txt", "1t"),
                 ("rss-tiny-static.txt", "2t, static"), ("rss-tiny-1t-static.txt", "1t, static")):
    p = os.path.join(res, f)
    if os.path.exists(p):
        kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(p).read()).group(1))
        line(f"peak RSS of boot on the 100k tree ({label}) under 16 MiB", f"{kb / 1024:.1f} MiB", kb < 16 * 1024)
for f, label in (("rss-tiny-repair.txt", "a boot that repairs one file (observed in full), 2t"),
                 ("rss-tiny-verify.txt", "verify (observed in full), 2t")):
    p = os.path.join(res, f)
    if os.path.exists(p):
        kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(p).read()).group(1))
        print(f"  [---] peak RSS on the 100k tree of {label}: {kb / 1024:.1f} MiB")
size = int(open(os.path.join(res, "binary-size")).read())
line("stripped release binary under 3 MiB", f"{size / 1048576:.2f} MiB ({size} bytes)", size < 3 * 1048576)

print("\n-- targets (issue 17), ratios from this run")
print("  read+hash floor: the live tree and the set's metadata directory, each file read")
print("  through a page-aligned 256 KiB buffer and hashed with rebound's crates, N threads")
for c, label in (("small", "10k"), ("tiny", "100k")):
    for h in ("crc32", "xxh3", "blake3"):
        for t in ("1t", "2t"):
            f = get(c, f"floor+hash {h} {t} (live)")
            v = get(c, f"rebound boot {h} {t}")
            if f and v:
                fk, vk = (c, f"floor+hash {h} {t} (live)"), (c, f"rebound boot {h} {t}")
                line(f"{label} tree, boot {h} {t} within 1.10x of the read+hash floor",
                     f"{v / f:.2f}x ({v:.3f} s vs {f:.3f} s; cpu {cpu[vk] / cpu[fk]:.2f}x)", v / f <= 1.10)

v = get("big", "rebound boot blake3 2t")
for ref, desc in (("b3sum --num-threads 2 (live)", "b3sum --num-threads 2"),
                  ("b3sum (live, mmap, all CPUs)", f"b3sum's default (mmap, {os.cpu_count()} CPUs)")):
    b = get("big", ref)
    if v and b:
        line(f"1 GiB file, boot blake3 2t within 1.10x of {desc}", f"{v / b:.2f}x ({v:.3f} s vs {b:.3f} s)", v / b <= 1.10)
for ref in ("b3sum --num-threads 1 (live)", "b3sum --no-mmap (live)", "floor+hash blake3 1t (live)"):
    b = get("big", ref)
    if v and b:
        print(f"  [---] 1 GiB file, boot blake3 2t against {ref}: {v / b:.2f}x ({b:.3f} s)")

def readkv(p):
    out = {}
    if os.path.exists(p):
        toks = open(p).read().replace(":", " ").split()
        for k, val in zip(toks[::2], toks[1::2]):
            out[k] = int(val)
    return out

if os.path.exists(os.path.join(res, "cold-skipped")):
    print("  [---] cold cache: " + open(os.path.join(res, "cold-skipped")).read().strip())
helper = int(open(os.path.join(res, "helper-size")).read())
for c, label in (("small", "10k"), ("tiny", "100k"), ("big", "1 GiB")):
    boot = readkv(os.path.join(res, f"{c}-io-boot.txt"))
    if not boot:
        continue
    fl = readkv(os.path.join(res, f"{c}-io-floor.txt"))
    live = readkv(os.path.join(res, f"{c}-du-live.txt"))
    meta = readkv(os.path.join(res, f"{c}-du-meta.txt"))
    gold = readkv(os.path.join(res, f"{c}-du-golden.txt"))
    tb, tf = get(c, "cold rebound boot blake3 2t"), get(c, "cold floor 2t (live)")
    th = get(c, "cold floor+hash blake3 2t (live)")
    data = live["alloc"] + meta["alloc"]
    # The slack: what the floor program read beyond the files' blocks (inode tables,
    # directory blocks, its own binary and libc pages; same tree, same cold cache),
    # plus rebound's binary (exec faults in up to all of it), plus 1 MiB for what only
    # boot opens: the configuration, the golden root, its metadata directory and
    # `sealed` marker (each inode read may read ahead 32 blocks, 128 KiB, of inode
    # table). Any golden content read is far beyond it: golden is as large as live.
    over = max(fl.get("read_bytes", 0) - data, 0)
    slack = over + size + 1048576
    mib = lambda b: f"{b / 1048576:.1f} MiB"
    if tb and th:
        line(f"{label} cold, boot blake3 2t within 1.10x of the cold read+hash floor 2t",
             f"{tb / th:.2f}x ({tb:.3f} s vs {th:.3f} s; read-only floor {tf or 0:.3f} s)", tb / th <= 1.10)
    line(f"{label} cold, boot reads each live byte once and no golden byte",
         f"read_bytes {mib(boot['read_bytes'])} <= live blocks {mib(live['alloc'])} + set metadata "
         f"{mib(meta['alloc'])} + slack {mib(slack)} (floor program read {mib(fl.get('read_bytes', 0))}; "
         f"golden {mib(gold['alloc'])}; live bytes {mib(live['bytes'])})",
         boot["read_bytes"] <= data + slack)
    print(f"        boot read {mib(boot['read_bytes'] - fl.get('read_bytes', 0))} more than the floor program "
          f"(rebound's binary is {mib(size)}, the helper's {mib(helper)})")

def rss(f):
    p = os.path.join(res, f)
    if os.path.exists(p):
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(p).read())
        if m:
            return int(m.group(1))
    return None
for f, label in (("rss-few100.txt", "2t"), ("rss-few100-1t.txt", "1t"),
                 ("rss-few100-static.txt", "2t, static as shipped"), ("rss-few100-1t-static.txt", "1t, static as shipped")):
    kb = rss(f)
    if kb:
        line(f"peak RSS of boot on 100 files ({label}) under 4 MiB", f"{kb / 1024:.1f} MiB", kb < 4 * 1024)
for f, label in (("rss-few20-1t.txt", "boot on 20 files, 1t"), ("rss-few100-floor.txt", "the read+hash floor program on 100 files")):
    kb = rss(f)
    if kb:
        print(f"  [---] peak RSS of {label}: {kb / 1024:.1f} MiB")

t, fl, b1, bd = (get("few20", n) for n in ("/bin/true", "floor+hash blake3 1t (live)",
                                         "rebound boot blake3 1t", "rebound boot blake3 (default threads)"))
if t and fl and b1:
    print(f"  [---] 20 files: boot 1t {b1 * 1e3:.2f} ms, default threads {bd * 1e3:.2f} ms; "
          f"/bin/true {t * 1e3:.2f} ms; read+hash floor 1t {fl * 1e3:.2f} ms")
    lo, hi = spread[("few20", "rebound boot blake3 1t")]
    print(f"        boot 1t ranged {lo * 1e3:.2f}-{hi * 1e3:.2f} ms over {runs}x20 runs")
    print(f"        boot is {b1 / t:.1f}x process start and {b1 / fl:.2f}x the read+hash floor "
          f"(boot minus floor: {(b1 - fl) * 1e3:.2f} ms)")

p = os.path.join(res, "few20-strace.txt")
if os.path.exists(p):
    live = os.path.join(work, "few20", "live")
    calls = []
    for l in open(p):
        m = re.match(r"(\d+)\s+(\d+\.\d+) (\w+)\((.*?)(?:\s+<(\d+\.\d+)>)?$", l.rstrip())
        if m:
            calls.append((float(m.group(2)), m.group(3), m.group(4), float(m.group(5) or 0)))
    if calls:
        t0 = calls[0][0]
        # The first protected file opened: openat(dir, "f....bin") below live/dNNNN.
        first = next((i for i, c in enumerate(calls)
                      if c[1] == "openat" and re.match(r'\d+, "f\d+\.bin"', c[2])), None)
        last = max((i for i, c in enumerate(calls)
                    if c[1] == "openat" and re.match(r'\d+, "f\d+\.bin"', c[2])), default=None)
        end = calls[-1][0]
        if first is not None:
            def phase(i, j):
                names = {}
                for c in calls[i:j]:
                    n, d = names.get(c[1], (0, 0.0))
                    names[c[1]] = (n + 1, d + c[3])
                top = sorted(names.items(), key=lambda x: -x[1][1])[:5]
                return ", ".join(f"{k} x{n} {d * 1e3:.2f} ms" for k, (n, d) in top)
            def mark(pred):
                return next((i for i, c in enumerate(calls) if pred(c)), None)
            print(f"  [---] 20 files under strace -f (times inflated by strace; read them as shares):")
            print(f"        {len(calls)} system calls, {(end - t0) * 1e3:.2f} ms; the first protected file "
                  f"opened at {(calls[first][0] - t0) * 1e3:.2f} ms (call {first}), the last at "
                  f"{(calls[last][0] - t0) * 1e3:.2f} ms")
            # Phases, each from the first call that marks it.
            after = lambda i, pred: next((k for k in range(i, len(calls)) if pred(calls[k])), None)
            # The change journal's inotify instance: its close waits for an SRCU
            # grace period of the kernel (fsnotify), which depends on the load.
            ino = next((c[2].rsplit("= ", 1)[-1] for c in calls if c[1] == "inotify_init1"), None)
            inoclose = after(last, lambda c: ino is not None and c[1] == "close" and c[2].startswith(ino + ")"))
            marks = [
                ("exec, dynamic loader, Rust runtime", 0),
                ("read the configuration", after(0, lambda c: ".toml" in c[2])),
                ("CPU quota (cgroup) for the thread count", after(0, lambda c: "/proc/self/cgroup" in c[2])),
                ("open and lock the roots, check their parents", after(0, lambda c: c[2].startswith(f'"{live}"'))),
                ("the set's metadata: stage dir, displaced/, seal marker (a full boot: both manifest slots)", after(0, lambda c: '".rebound"' in c[2])),
                ("watch and walk the live tree (inotify, getdents; streamed: manifest slot 0 opened)", after(0, lambda c: c[1] == "inotify_init1")),
                ("open, read and hash the files (streamed: manifest slot 0 read along)", first),
                ("streamed: manifest slot 1; boot counter (written once per kernel boot id) and event log", after(last, lambda c: '".rebound"' in c[2])),
                ("close the change journal (the inotify instance)", inoclose),
                ("report, close, exit", after(last, lambda c: c[1] == "write" and c[2].startswith("1,"))),
                ("", len(calls) - 1),
            ]
            marks = sorted((m for m in marks if m[1] is not None), key=lambda m: m[1])
            args = lambda a: re.sub(r"\)\s+= .*$", "", a)[:40]
            # The slowest single call, and which call made its file descriptor.
            k = max(range(len(calls)), key=lambda k: calls[k][3])
            what = ""
            fd = re.match(r"(\d+)[,)]", calls[k][2])
            if fd:
                src = next((c for c in reversed(calls[:k])
                            if re.search(r"= " + fd.group(1) + r"$", c[2])), None)
                if src:
                    what = f" (fd {fd.group(1)} from {src[1]}({args(src[2])}))"
            print(f"        slowest call: {calls[k][1]}({args(calls[k][2])}) {calls[k][3] * 1e3:.2f} ms{what}")
            for (name, i), (_, j) in zip(marks, marks[1:]):
                if j <= i:
                    continue
                print(f"        {(calls[i][0] - t0) * 1e3:6.2f} ms +{(calls[j][0] - calls[i][0]) * 1e3:5.2f} ms  "
                      f"{name}: {j - i} calls ({phase(i, j)})")
p = os.path.join(res, "few20-strace-c.txt")
if os.path.exists(p):
    rows = [l.split() for l in open(p) if re.match(r"\s*\d+\.\d+\s", l)]
    rows = [r for r in rows if len(r) >= 5 and r[-1] != "total"]
    top = sorted(rows, key=lambda r: -float(r[0]))[:6]
    print("        strace -c, most time: " + ", ".join(f"{r[-1]} {r[0]}% ({r[3]} calls)" for r in top))
EOF

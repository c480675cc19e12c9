#!/usr/bin/env bash
# rebound's parity (issue 16) against par2 at the same redundancy.
#
#   bench/parity.sh                  # 1 MiB, 64 MiB, 1 GiB files and a 10,000-file tree
#                                    # (about 30 min on 2 loaded cores: par2 on the 4 KiB
#                                    # grid of the 64 MiB file is 11 of them;
#                                    # PAR2_FINE_MAX=1048576 leaves it out)
#   SKIP_BIG=1 bench/parity.sh       # without the 1 GiB file
#   QUICK=1 bench/parity.sh          # 1 MiB, 64 MiB and a 1,000-file tree (about 15 min)
#
# What it does, in one run (one run per figure: ratios, not assertions):
# 1. installs what it needs (Debian: par2, time; as root only) and builds rebound
#    (release) and the benchmark's helper (bench/src/main.rs);
# 2. generates the corpora under BENCH_DIR (default /var/tmp), pseudo-random content
#    from a fixed seed: `file1m` (SMALL_BYTES), `file64m` (MID_BYTES), `file1g`
#    (BIG_BYTES, not with SKIP_BIG=1 or QUICK=1) and `tree` (TREE_FILES files of
#    1-64 KiB in directories of 100, as compare.sh's `small`);
# 3. one copy of the corpus per tool variant, each with its own parity data:
#    - `rebound`: a parity set (parity_redundancy = REDUNDANCY, block 4096, smaller
#      blocks for files under 128 KiB). Creation = the boot that rewrites every record
#      after the records directory was deleted (the first boot, which also adopts the
#      files and writes the manifest, and a plain verify are in the log);
#    - `par2 4K` (one file up to 128 MiB): par2 on rebound's grid, -s4096 and -c with
#      rebound's recovery block count (the same redundancy, the same block size; par2
#      allows 32,768 blocks per set, so not for the 1 GiB file);
#    - `par2 def`: par2's own choice, -r REDUNDANCY (2000 blocks);
#    - `par2 file` (tree): one par2 set per file, as a firmware engineer scripting
#      par2 would: rebound's block size and recovery count for that file, -n1 -t1,
#      files handed to JOBS parallel par2 processes (creation and repair);
#    - `par2 -R` (tree): one recursive set over the tree, -r REDUNDANCY, -b of at
#      least 2000 and twice the number of files (par2 needs a block per file); by
#      default only up to 2,000 files (PAR2_TREE_R=1/0 forces it on/off: on 10,000
#      files its creation alone takes minutes);
# 4. per damage pattern (DAMAGES, bench/parity_damage.py, positions on rebound's
#    block grid, the same bytes damaged in every copy): `flip5`/`flip10` one bit in
#    ceil(5%/10% of the blocks) of every window, `zero5` a zeroed range of 5% of the
#    size, `flip15` beyond capacity; the tree gets the pattern in TREE_DAMAGED files.
#    Repair = `rebound boot` / `par2 repair` (each also checks every intact file);
#    "repaired" only when every file is byte-identical to the original afterwards;
#    then the copy is restored from the original for the next pattern;
# 5. prints one table (corpus, damage, tool, create s, repair s, parity space,
#    repaired) and writes it to OUT (default target/parity-bench.txt).
#
# Warm page cache throughout (the corpora were just written); par2 uses every core
# (its default), rebound its default thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
QUICK=${QUICK:-0}
SKIP_BIG=${SKIP_BIG:-$QUICK}
SMALL_BYTES=${SMALL_BYTES:-$((1 << 20))}
MID_BYTES=${MID_BYTES:-$((64 << 20))}
BIG_BYTES=${BIG_BYTES:-$((1 << 30))}
if [ "$QUICK" = 1 ]; then TREE_FILES=${TREE_FILES:-1000}; else TREE_FILES=${TREE_FILES:-10000}; fi
TREE_DAMAGED=${TREE_DAMAGED:-$(( TREE_FILES / 100 > 10 ? TREE_FILES / 100 : 10 ))}
DAMAGES=${DAMAGES:-"flip5 flip10 zero5 flip15"}
REDUNDANCY=${REDUNDANCY:-10}
PAR2_TREE_R=${PAR2_TREE_R:-$(( TREE_FILES <= 2000 ))}
PAR2_FINE_MAX=${PAR2_FINE_MAX:-$((128 << 20))}
PAR2_TIMEOUT=${PAR2_TIMEOUT:-900}
JOBS=${JOBS:-$(nproc)}
SEED=${SEED:-16}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BENCH_TARGET=${BENCH_TARGET_DIR:-$TARGET/bench}
OUT=${OUT:-$TARGET/parity-bench.txt}
CORPORA=${CORPORA:-"file1m file64m $([ "$SKIP_BIG" = 1 ] || echo file1g) tree"}
DMG="python3 $REPO/bench/parity_damage.py"

echo "== installing tools"
need=()
for p in par2:par2 /usr/bin/time:time; do
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

W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/rebound-parity.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$W"' EXIT
RES=$W/results
mkdir -p "$RES"
ROWS=$RES/rows.tsv
: >"$ROWS"

# timed LOG CMD... : runs CMD, output to LOG; sets T (wall seconds), CPU (user + system
# seconds of CMD and its children: less sensitive to other load on the machine) and RC.
timed() {
    local log=$1 t0 t1
    shift
    t0=$(date +%s%N)
    set +e
    /usr/bin/time -o "$log.time" -f "%U %S" "$@" >"$log" 2>&1
    RC=$?
    set -e
    t1=$(date +%s%N)
    T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    CPU=$(tail -1 "$log.time" | awk '{ printf "%.3f", $1 + $2 }')
}
# space DIR FILTER... : apparent bytes and disk KiB of the files under DIR.
space() {
    local d=$1
    shift
    SPACE_B=$(find "$d" -type f "$@" -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    SPACE_K=$(find "$d" -type f "$@" -printf '%k\n' | awk '{ s += $1 } END { print s + 0 }')
}
row() { # corpus damage tool create create_cpu repair repair_cpu space_b space_k repaired detail
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"
}

# The tools' variants of a corpus.
variants() { # corpus
    case $1 in
        tree)
            echo rebound par2-file
            [ "$PAR2_TREE_R" = 1 ] && echo par2-R
            ;;
        *)
            echo rebound
            [ "$(stat -c %s "$W/$1/orig/file.bin")" -le "$PAR2_FINE_MAX" ] && echo par2-4K
            echo par2-def
            ;;
    esac
    return 0
}

# create CORPUS VARIANT: writes the parity data of the variant's copy; sets CREATE_T,
# CREATE_NOTE and the space.
create() {
    local c=$1 v=$2 d=$W/$1/$2 log=$RES/$1.$2.create.log
    mkdir -p "$d/par"
    CREATE_NOTE=
    case $v in
        rebound)
            printf '[[set]]\nname = "data"\nmode = "parity"\nlive = "%s/live"\nparity = "%s/par"\nparity_redundancy = %s\ninclude = ["**"]\n' \
                "$d" "$d" "$REDUNDANCY" >"$d/rebound.toml"
            timed "$RES/$c.$v.first-boot.log" "$R" -c "$d/rebound.toml" boot
            local first=$T
            [ "$RC" = 0 ] || CREATE_NOTE="first boot exit $RC; "
            timed "$RES/$c.$v.verify-intact.log" "$R" -c "$d/rebound.toml" verify
            local ver=$T
            [ "$RC" = 0 ] || CREATE_NOTE+="verify of the intact set exit $RC; "
            rm -rf "$d/par/.rebound/data/parity"
            timed "$log" "$R" -c "$d/rebound.toml" boot
            [ "$RC" = 0 ] || CREATE_NOTE+="rewrite boot exit $RC; "
            CREATE_T=$T CREATE_CPU=$CPU
            CREATE_NOTE+="first boot ${first} s, verify intact ${ver} s"
            space "$d/par/.rebound/data/parity"
            ;;
        par2-4K)
            local size block blocks win
            size=$(stat -c %s "$d/live/file.bin")
            read -r block blocks win < <($DMG layout "$size")
            # rebound's recovery count: ceil(k * R / 100) per window of `win` blocks.
            local count
            count=$(awk -v n="$blocks" -v w="$win" -v r="$REDUNDANCY" 'BEGIN {
                t = 0; for (f = 0; f < n; f += w) { k = (n - f < w) ? n - f : w; m = int((k * r + 99) / 100); if (m < 1) m = 1; t += m }; print t }')
            timed "$log" timeout "$PAR2_TIMEOUT" par2 c -q -q -s"$block" -c"$count" -B "$d/live" "$d/par/set.par2" "$d/live/file.bin"
            CREATE_T=$T CREATE_CPU=$CPU
            CREATE_NOTE="-s$block -c$count"
            [ "$RC" = 0 ] || CREATE_NOTE+=" (exit $RC)"
            space "$d/par" -name '*.par2'
            ;;
        par2-def)
            timed "$log" timeout "$PAR2_TIMEOUT" par2 c -q -q -r"$REDUNDANCY" -B "$d/live" "$d/par/set.par2" "$d/live/file.bin"
            CREATE_T=$T CREATE_CPU=$CPU
            CREATE_NOTE="-r$REDUNDANCY"
            [ "$RC" = 0 ] || CREATE_NOTE+=" (exit $RC)"
            space "$d/par" -name '*.par2'
            ;;
        par2-file)
            # Job list (untimed): relative path, rebound's block size and recovery count.
            $DMG jobs "$d/live" "$REDUNDANCY" >"$d/jobs"
            (cd "$d/live" && find . -type d -printf '%P\n') | while read -r sub; do mkdir -p "$d/par/$sub"; done
            timed "$log" xargs -P "$JOBS" -n 3 sh -c \
                'par2 c -q -q -t1 -s"$2" -c"$3" -n1 -B "$0/live/$(dirname "$1")" "$0/par/$1.par2" "$0/live/$1"' "$d" <"$d/jobs"
            CREATE_T=$T CREATE_CPU=$CPU
            CREATE_NOTE="one set per file, rebound's block and count, -n1 -t1, $JOBS jobs"
            [ "$RC" = 0 ] || CREATE_NOTE+=" (exit $RC)"
            space "$d/par" -name '*.par2'
            ;;
        par2-R)
            local nb=$(( TREE_FILES * 2 > 2000 ? TREE_FILES * 2 : 2000 ))
            timed "$log" timeout "$PAR2_TIMEOUT" par2 c -q -q -R -r"$REDUNDANCY" -b"$nb" -B "$d/live" "$d/par/set.par2" "$d/live"
            CREATE_T=$T CREATE_CPU=$CPU
            CREATE_NOTE="-R -r$REDUNDANCY -b$nb"
            [ "$RC" = 0 ] || CREATE_NOTE+=" (exit $RC)"
            space "$d/par" -name '*.par2'
            ;;
    esac
}

# repair CORPUS VARIANT DAMAGE: sets REPAIR_T, REPAIR_NOTE.
repair() {
    local c=$1 v=$2 k=$3 d=$W/$1/$2 log=$RES/$1.$2.$3.repair.log
    case $v in
        rebound)
            set +e
            "$R" -c "$d/rebound.toml" verify >"$RES/$c.$v.$k.verify.log" 2>&1
            local vrc=$?
            set -e
            timed "$log" "$R" -c "$d/rebound.toml" boot
            local n ok
            n=$(grep -c 'parity: .* blocks damaged' "$RES/$c.$v.$k.verify.log" || true)
            ok=$(grep -c 'parity: .* damaged, repairable' "$RES/$c.$v.$k.verify.log" || true)
            REPAIR_NOTE="verify exit $vrc: $ok of $n damaged files repairable; boot exit $RC"
            if [ "$n" = 1 ]; then
                REPAIR_NOTE+="; $(grep -o 'parity: .*' "$RES/$c.$v.$k.verify.log" | head -1 | sed 's/)$//')"
            fi
            ;;
        par2-4K | par2-def)
            timed "$log" timeout "$PAR2_TIMEOUT" par2 r -q -B "$d/live" "$d/par/set.par2"
            REPAIR_NOTE="par2 exit $RC"
            ;;
        par2-file)
            timed "$log" xargs -P "$JOBS" -n 3 sh -c \
                'par2 r -q -q -t1 -B "$0/live/$(dirname "$1")" "$0/par/$1.par2" || echo "failed: $1"' "$d" <"$d/jobs"
            REPAIR_NOTE="$(grep -c '^failed:' "$log" || true) par2 runs failed"
            ;;
        par2-R)
            timed "$log" timeout "$PAR2_TIMEOUT" par2 r -q -B "$d/live" "$d/par/set.par2"
            REPAIR_NOTE="par2 exit $RC"
            ;;
    esac
    REPAIR_T=$T REPAIR_CPU=$CPU
}

echo "== work directory $W"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)" >"$RES/load"
for c in $CORPORA; do
    echo "== $c: generating"
    case $c in
        file1m) "$B" gen file "$SMALL_BYTES" "$W/$c/orig" ;;
        file64m) "$B" gen file "$MID_BYTES" "$W/$c/orig" ;;
        file1g) "$B" gen file "$BIG_BYTES" "$W/$c/orig" ;;
        tree) "$B" gen tree "$TREE_FILES" "$W/$c/orig" ;;
        *) echo "unknown corpus $c" >&2; exit 2 ;;
    esac
    nfiles=
    [ "$c" = tree ] && nfiles=$TREE_DAMAGED
    for v in $(variants "$c"); do
        mkdir -p "$W/$c/$v"
        cp -a "$W/$c/orig" "$W/$c/$v/live"
        echo "== $c: $v: creating"
        create "$c" "$v"
        ct=$CREATE_T cc=$CREATE_CPU cn=$CREATE_NOTE sb=$SPACE_B sk=$SPACE_K
        echo "   $ct s, $sb bytes ($cn)"
        for k in $DAMAGES; do
            $DMG apply "$k" "$SEED" "$W/$c/$v/live" $nfiles >"$RES/$c.$v.$k.damage"
            repair "$c" "$v" "$k"
            # Byte-identical to the original? Then restore for the next pattern.
            verdict=$($DMG same "$W/$c/orig" "$W/$c/$v/live" $nfiles)
            echo "   $k: $(cat "$RES/$c.$v.$k.damage"); repair $REPAIR_T s: $verdict ($REPAIR_NOTE)"
            row "$c" "$k" "$v" "$ct" "$cc" "$REPAIR_T" "$REPAIR_CPU" "$sb" "$sk" "$verdict" "$REPAIR_NOTE; create: $cn; damage: $(cat "$RES/$c.$v.$k.damage")"
            $DMG restore "$W/$c/orig" "$W/$c/$v/live" >/dev/null
        done
        [ "$v" = rebound ] || rm -rf "$W/$c/$v"
    done
    rm -rf "${W:?}/$c"
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/load"

commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo "+dirty")
python3 - "$ROWS" "$RES/load" "$commit" "$(par2 -V 2>&1 | head -1)" >"$RES/table.txt" <<'EOF'
import sys, datetime, platform
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print(f"rebound parity vs par2, {datetime.date.today()}, rebound {sys.argv[3]}, {sys.argv[4]}, "
      f"{platform.machine()}, one run per figure, warm page cache")
print(open(sys.argv[2]).read().rstrip())
print()
print("create/repair: wall seconds (cpu = user + system seconds); parity: apparent size")
print("of the parity data (rebound: the records directory; par2: every .par2 file), and on disk")
hdr = ("corpus", "damage", "tool", "create s (cpu)", "repair s (cpu)", "parity MiB", "on disk", "repaired")
w = [7, 6, 9, 15, 15, 10, 8, 0]
print("  ".join(h.ljust(n) for h, n in zip(hdr, w)).rstrip())
for r in rows:
    c, k, v, ct, cc, rt, rc, sb, sk, ok, note = r
    print("  ".join(x.ljust(n) for x, n in zip(
        (c, k, v, f"{float(ct):.2f} ({float(cc):.2f})", f"{float(rt):.2f} ({float(rc):.2f})",
         f"{int(sb) / 1048576:.2f}", f"{int(sk) / 1024:.2f}", ok.split(" [")[0]), w)).rstrip())
print()
print("notes per row:")
for r in rows:
    extra = (" [" + r[9].split(" [", 1)[1]) if " [" in r[9] else ""
    print(f"  {r[0]} {r[1]} {r[2]}: {r[10]}{extra}")
EOF
mkdir -p "$(dirname "$OUT")"
cp "$RES/table.txt" "$OUT"
cat "$OUT"
echo "(written to $OUT; logs in $RES$([ "${KEEP:-0}" = 1 ] || echo ', removed on exit: KEEP=1 keeps them'))"

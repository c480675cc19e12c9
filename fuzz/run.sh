#!/bin/bash
# Runs fuzz targets one after the other (ONE job at a time, nice 19: the machine is
# shared) and prints one table row per target from libFuzzer's final lines.
#
# Usage: fuzz/run.sh SECONDS [TARGET...]   (default: every target in Cargo.toml)
# Each run: RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run T corpus/T seeds/T --
#   -max_total_time=SECONDS -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
# New inputs go to fuzz/corpus/T (not checked in), crashes to fuzz/artifacts/T; the
# whole log to fuzz/logs/T-<utc>.log. The CPU time is the run's user+sys (GNU time
# style, from bash's `times` of the child).
set -u
cd "$(dirname "$0")"
secs=${1:?usage: run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v rebound-fuzz)
fi
mkdir -p logs
RUSTC_BOOTSTRAP=1 cargo fuzz build >/dev/null 2>&1 || {
    echo "cargo fuzz build failed" >&2
    exit 1
}
printf '| target | seconds | CPU s | executions | exec/s | cov | ft | corpus | crashes |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    log=logs/$t-$(date -u +%Y%m%dT%H%M%S).log
    before=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
    RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        >"$log" 2>&1
    rc=$?
    after=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
    cpu=$(( (after - before) / $(getconf CLK_TCK) ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(ls "corpus/$t" | wc -l)
    crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
    printf '| `%s` | %s | %s | %s | %s | %s | %s | %s | %s%s |\n' "$t" "$secs" "$cpu" \
        "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corp" "$crashes" \
        "$([ $rc -eq 0 ] || echo " (exit $rc, $log)")"
done

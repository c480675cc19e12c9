"""Checks rebound's metrics file with prometheus_client's parser after each step of a
scripted sequence (tests/metrics/run.sh). Every metric the issue names must be there
with HELP and TYPE, the counters must count what happened and survive a missing metrics
file (they live in the set's history, not in the metrics file)."""

import os
import shutil
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

BIN, ROOT = sys.argv[1], sys.argv[2]
shutil.rmtree(ROOT, ignore_errors=True)
LIVE, GOLD, PROM = f"{ROOT}/live", f"{ROOT}/golden", f"{ROOT}/textfile"
for d in (LIVE, GOLD, PROM):
    os.makedirs(d)
FILES = {"a.conf": "a=1\n", "b.conf": "b=2\n", "sub/c.conf": "c=3\n"}
for name, text in FILES.items():
    os.makedirs(os.path.dirname(f"{LIVE}/{name}"), exist_ok=True)
    with open(f"{LIVE}/{name}", "w") as f:
        f.write(text)
CONFIG = f"{ROOT}/rebound.toml"
with open(CONFIG, "w") as f:
    f.write(f"""metrics_file = "{PROM}/rebound.prom"
suspect_repairs = 3
suspect_boots = 10

[[set]]
name = "cfg"
mode = "golden"
live = "{LIVE}"
golden = "{GOLD}"
include = ["**/*.conf"]
""")

failures = []
boot_no = 0


def run(*args, code=0, boot_id=None):
    env = dict(os.environ)
    if boot_id is not None:
        env["REBOUND_BOOT_ID"] = boot_id
    r = subprocess.run([BIN, "-c", CONFIG, *args], env=env, capture_output=True, text=True)
    if r.returncode != code:
        sys.exit(f"FAIL: rebound {' '.join(args)} exited {r.returncode}, want {code}\n{r.stdout}{r.stderr}")
    return r


def boot(code=0):
    global boot_no
    boot_no += 1
    return run("boot", code=code, boot_id=f"boot-{boot_no}")


def metrics():
    with open(f"{PROM}/rebound.prom") as f:
        text = f.read()
    fams = {fam.name: fam for fam in text_string_to_metric_families(text)}
    for line in text.splitlines():
        if line and not line.startswith("#") and "rebound_" not in line.split("{")[0]:
            failures.append(f"a sample that is not rebound's: {line}")
    return fams, text


def value(fams, name, **labels):
    # prometheus_client strips _total from a counter's family name.
    fam = fams.get(name) or fams.get(name.removesuffix("_total"))
    if fam is None:
        return None
    for s in fam.samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def expect(step, name, want, **labels):
    fams, text = metrics()
    got = value(fams, name, **labels)
    if got != want:
        failures.append(f"{step}: {name}{labels} = {got}, want {want}\n{text}")


def damage(name, text="rot\n"):
    with open(f"{LIVE}/{name}", "w") as f:
        f.write(text)


# 1. Seal, then an intact boot.
run("seal")
boot()
fams, text = metrics()
REQUIRED = {
    "rebound_protected_files": "gauge",
    "rebound_repairs": "counter",  # rebound_repairs_total
    "rebound_lost_files": "gauge",
    "rebound_golden_damaged": "gauge",
    "rebound_generation": "gauge",
    "rebound_last_run_timestamp_seconds": "gauge",
    "rebound_last_run_duration_seconds": "gauge",
    "rebound_suspect_files": "gauge",
}
for name, kind in REQUIRED.items():
    fam = fams.get(name)
    if fam is None:
        failures.append(f"missing metric family {name}\n{text}")
    elif fam.type != kind:
        failures.append(f"{name} is a {fam.type}, want {kind}")
    elif not fam.documentation:
        failures.append(f"{name} has no HELP")
for name in REQUIRED:
    real = name + "_total" if name == "rebound_repairs" else name
    if f"# HELP {real} " not in text or f"# TYPE {real} " not in text:
        failures.append(f"no HELP/TYPE line for {real}")
expect("intact boot", "rebound_protected_files", 3, set="cfg")
expect("intact boot", "rebound_lost_files", 0, set="cfg")
expect("intact boot", "rebound_generation", 1, set="cfg")
expect("intact boot", "rebound_repairs_total", 0, set="cfg", kind="file_from_golden")
expect("intact boot", "rebound_suspect_files", 0, set="cfg")
expect("intact boot", "rebound_last_run_exit_status", 0, command="boot")
ts = value(fams, "rebound_last_run_timestamp_seconds", command="boot")
if not ts or ts < 1.6e9:
    failures.append(f"boot timestamp {ts} is not seconds since the epoch")
dur = value(fams, "rebound_last_run_duration_seconds", command="boot")
if dur is None or not 0 <= dur < 60:
    failures.append(f"boot duration {dur}")

# 2. Damage repaired from golden, at three boots of ten: counted, then suspect.
for i in range(3):
    damage("a.conf")
    boot()
    expect(f"repair {i + 1}", "rebound_repairs_total", i + 1, set="cfg", kind="file_from_golden")
    expect(f"repair {i + 1}", "rebound_suspect_files", 1 if i == 2 else 0, set="cfg")
expect("repairs", "rebound_boots_total", 4, set="cfg")
# The same kernel boot again: not a new boot.
run("boot", boot_id=f"boot-{boot_no}")
expect("same boot", "rebound_boots_total", 4, set="cfg")

# 3. A commit, then verify: both commands' last runs are kept side by side.
damage("b.conf", "b=22\n")
run("commit", f"{LIVE}/b.conf")
expect("commit", "rebound_generation", 2, set="cfg")
expect("commit", "rebound_last_run_exit_status", 0, command="commit")
expect("commit", "rebound_last_run_exit_status", 0, command="boot")

# 4. Golden damaged: verify sees it (exit 1).
with open(f"{GOLD}/sub/c.conf", "w") as f:
    f.write("golden rot\n")
run("verify", code=1)
expect("golden damaged", "rebound_golden_damaged", 1, set="cfg")
expect("golden damaged", "rebound_last_run_exit_status", 1, command="verify")

# 5. A file lost (live and golden both damaged): exit 3, lost 1.
damage("sub/c.conf")
boot(code=3)
expect("lost", "rebound_lost_files", 1, set="cfg")
expect("lost", "rebound_last_run_exit_status", 3, command="boot")
# Fixed by hand and committed: lost goes back to 0.
damage("sub/c.conf", "c=3\n")
run("commit", f"{LIVE}/sub/c.conf")
boot()
expect("fixed", "rebound_lost_files", 0, set="cfg")
# A boot does not read the golden copy when nothing needs it: the golden damage that
# verify measured stays until a run that reads golden says otherwise.
expect("golden still damaged after a boot", "rebound_golden_damaged", 1, set="cfg")

# 5b. A foreign line in the file (another exporter's, a hand edit) is dropped, never
#     kept: one bad label would make the collector refuse the whole file.
with open(f"{PROM}/rebound.prom", "a") as f:
    f.write('rebound_last_run_exit_status{command="verify",x-y="1"} 0\n')
    f.write('rebound_last_run_exit_status{command="zzz"} 0\n')
    f.write('node_load1 3\n')
run("commit", f"{LIVE}/sub/c.conf")
fams, text = metrics()
for bad in ("x-y", "zzz", "node_load1"):
    if bad in text:
        failures.append(f"a foreign sample was kept: {bad}\n{text}")

# 6. The counters live in the set's history: a metrics file on a tmpfs that the
#    reboot emptied comes back with them.
os.remove(f"{PROM}/rebound.prom")
boot()
expect("after the metrics file was lost", "rebound_repairs_total", 3, set="cfg", kind="file_from_golden")
expect("after the metrics file was lost", "rebound_boots_total", boot_no, set="cfg")

# 7. --metrics-file on the command line, and no temporary file left behind.
run("--metrics-file", f"{PROM}/other.prom", "verify", code=1)
if not os.path.exists(f"{PROM}/other.prom"):
    failures.append("--metrics-file wrote nothing")
left = [n for n in os.listdir(PROM) if not n.endswith(".prom")]
if left:
    failures.append(f"left in the textfile directory: {left}")

if failures:
    print("\n".join(f"FAIL: {f}" for f in failures))
    sys.exit(1)
print(f"tests/metrics: OK: {boot_no} boots, every value as expected (prometheus_client parser)")

#!/usr/bin/env python3
"""Host side of rebound's power-cut lab: plans the workload, runs QEMU boot after boot,
reads what the guest recorded and checks the invariant after every power cut.

Subcommands (run.sh calls both):
  factory --out DIR   write the factory files (the golden content and the app, tag 1)
  run ...             the lab itself; prints a summary, exit 1 on any violation

The oracle (docs/powercut.md explains it at length): the workload is a list of steps,
each with content derived from its step number. The guest writes "done K" to a raw
results disk, with fsync, after step K's command returned 0 and before step K+1
starts. So after a cut, with D the last step recorded done, every set must hold
exactly the state after step D, or the state after step D+1 (the one in flight),
in every replica, and nothing else. Standard library only.
"""

import argparse
import base64
import hashlib
import io
import json
import os
import random
import re
import copy
import shutil
import struct
import subprocess
import sys
import tarfile
import threading
import time

# ---------------------------------------------------------------------------------
# The simulated device's protected files
# ---------------------------------------------------------------------------------
CFG_BASE = ["apn_cfg.json", "system_config.json", "app/main.py", "app/lib/util.py", "app/data.bin"]
CFG_EXTRA = ["app/plugins/p1.py", "app/plugins/p2.py", "app/plugins/p3.py"]
APPS_BASE = ["apps/app.bin", "apps/app.ini", "apps/lib/libfoo.so", "apps/scripts/start.sh"]
APPS_EXTRA = ["apps/extra/e1.dat", "apps/extra/e2.dat"]
# Set "data", parity mode: one copy (live) and its parity records, no second copy.
DATA_BASE = ["db/store.bin", "log/events.dat", "settings.json", "cal/calib.json"]
DATA_EXTRA = ["db/index.bin", "cal/extra.json"]
BIG = {"app/data.bin", "apps/app.bin", "apps/lib/libfoo.so", "apps/extra/e1.dat"}
# Files of a fixed size range (bytes, head included). store.bin is 60-64 blocks of
# 4 KiB (6 or 7 recovery blocks at 10%): its rebuilds are real multi-block rebuilds.
# Smaller files get about 32 smaller blocks (parity.rs, Layout::new).
SIZED = {"db/store.bin": (60 * 4096, 64 * 4096), "log/events.dat": (40_000, 120_000),
         "db/index.bin": (20_000, 60_000)}

SETS = ("config", "apps", "data")
ROOTS = {
    "config": ["/usrapp/cfg", "/usrdata/cfgcopy"],
    "apps": ["/usrapp/apprun", "/usrdata/appbackup"],
    "data": ["/usrapp/data"],
}
BASE = {"config": CFG_BASE, "apps": APPS_BASE, "data": DATA_BASE}
EXTRA = {"config": CFG_EXTRA, "apps": APPS_EXTRA, "data": DATA_EXTRA}
# The factory directory of each set (lab.py factory) and in the guest's /ctl/factory.
FACTORY_DIR = {"config": "cfg", "apps": "apps", "data": "data"}
SIDE_ROOT = {"system": "/usrapp/apprun", "usrdata": "/usrdata/appbackup"}
VERSION_FILE = "app_ver.txt"
PART_SIZE = 64 << 20
RESULTS_SIZE = 32 << 20
QBOOT = "/usr/share/qemu/qboot.rom"
# How much slower than an x86_64 guest a guest of each architecture runs under TCG on
# an x86_64 host (timeouts only; the cut moments are learnt from the guest's own speed).
SLOWER = {"x86_64": 1, "armv7": 3, "aarch64": 3}
# Replay mode: one disk, MBR, three partitions (start sector, sectors).
PARTS = {"system": (2048, PART_SIZE // 512), "usrdata": (2048 + PART_SIZE // 512, PART_SIZE // 512),
         "results": (2048 + 2 * PART_SIZE // 512, RESULTS_SIZE // 512)}
DEV_SIZE = (2048 * 512) + 2 * PART_SIZE + RESULTS_SIZE
UBIFS_BATCH = 20  # cycles per QEMU run on simulated NAND (the NAND starts empty each run)


def content(version, rel):
    """Deterministic content of file `rel` at `version` ("factory" or "s<step>").
    Big files span many pages, so a torn write shows."""
    r = random.Random(f"{version}:{rel}")
    head = f"rebound power-cut lab: {rel} version {version}\n".encode()
    if rel in SIZED:
        lo, hi = SIZED[rel]
        return head + r.randbytes(r.randint(lo, hi) - len(head))
    if rel in BIG:
        return head + r.randbytes(r.randint(20_000, 300_000))
    return head + base64.b64encode(r.randbytes(r.randint(30, 2_000))) + b"\n"


def digest(data):
    return hashlib.sha256(data).hexdigest()


def factory_files():
    """Every set's factory files: {set: {rel: bytes}}."""
    return {name: {rel: content("factory", rel) for rel in BASE[name]} for name in SETS}


def factory_digests(name):
    return {rel: digest(data) for rel, data in factory_files()[name].items()}


def write_factory(out):
    for name, files in factory_files().items():
        sub = FACTORY_DIR[name]
        for rel, data in files.items():
            p = os.path.join(out, sub, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
    with open(os.path.join(out, "apps", VERSION_FILE), "w") as f:
        f.write("1\n")


# ---------------------------------------------------------------------------------
# Device state model and the plan
# ---------------------------------------------------------------------------------
class State:
    """Committed content of every protected file (digests) and the app version tag."""

    def __init__(self, sets, tag):
        self.sets = {name: dict(sets[name]) for name in SETS}
        self.tag = tag

    @staticmethod
    def factory():
        return State({name: factory_digests(name) for name in SETS}, 1)

    def copy(self):
        return State(self.sets, self.tag)

    def apply(self, step):
        s = self.copy()
        for rel in step["files"]:
            s.sets[step["set"]][rel] = digest(content(f"s{step['k']}", rel))
        if step["kind"] == "upgrade":
            s.tag += 1
        return s

    def key(self):
        return tuple(tuple(sorted(self.sets[name].items())) for name in SETS) + (self.tag,)

    def describe_diff(self, other):
        out = []
        for name in SETS:
            a, b = self.sets[name], other.sets[name]
            for rel in sorted(set(a) | set(b)):
                if a.get(rel) != b.get(rel):
                    out.append(f"{name}:{rel} {str(a.get(rel))[:12]} vs {str(b.get(rel))[:12]}")
        if self.tag != other.tag:
            out.append(f"tag {self.tag} vs {other.tag}")
        return out


class Planner:
    """Deterministic plan for every cycle, from (seed, filesystem, cycle number)."""

    def __init__(self, seed, fs, broken):
        self.seed, self.fs, self.broken = seed, fs, broken
        self.step = 0
        self.step_cs = 60.0  # estimated centiseconds per step under TCG; learned

    @staticmethod
    def erase_at(c):
        if c < 4:
            return "none"
        return {5: "system", 0: "usrdata"}.get(c % 10, "none")

    def cycle(self, c, first_of_run):
        r = random.Random(f"{self.seed}:{self.fs}:{c}")
        erase = "none" if first_of_run else self.erase_at(c)
        quiet_before_erase = self.erase_at(c + 1) != "none"
        steps = []
        # Methods 5/6 erase a partition "after normal operation": the cycle before an
        # erase only boots (rebound brings every copy up to date) and is then cut, with
        # nothing in flight. Erasing right after a cut mid-write would destroy the only
        # intact copy of the file being written: a double fault, not a test of rebound.
        for _ in range(0 if quiet_before_erase else r.randint(3, 8)):
            self.step += 1
            # write: `rebound write` (issue part 9), the new content replaced and
            # committed as one change; commit: the application rewrites the file in
            # place (as the vendor's applications do), then `rebound commit`.
            # The parity set ("data") has one copy: an in-place edit cut before its
            # commit has no other copy to come back from (beyond the redundancy it is
            # lost, by design), so its application writes through `rebound write`.
            kind = r.choices(["commit-config", "commit-apps", "write-config", "write-apps",
                              "update-config", "update-apps", "write-data", "update-data"],
                             [18, 15, 12, 10, 15, 15, 14, 10])[0]
            kind, set_name = kind.split("-")
            base, extra = BASE[set_name], EXTRA[set_name]
            if kind in ("commit", "write"):
                files = [r.choice(base)]
            else:
                files = r.sample(base, r.randint(2, 3))
                if r.random() < 0.3:
                    files.append(r.choice(extra))
            steps.append({"k": self.step, "kind": kind, "set": set_name, "files": files})
        # The vendor's upgrade flow ends the plan: the device reboots after an upgrade.
        if not quiet_before_erase and r.random() < 0.25:
            self.step += 1
            side = "system" if r.random() < 0.7 else "usrdata"
            steps.append({"k": self.step, "kind": "upgrade", "set": "apps", "side": side,
                          "files": r.sample(APPS_BASE, r.randint(1, 3))})
        pause = 0
        if not quiet_before_erase:
            if erase != "none" and r.random() < 0.6:
                pause = r.randint(1, 120)
            elif r.random() < 0.3:
                pause = r.randint(1, 40)
        # Cut at a uniformly random moment of the (estimated) workload, a little past
        # its end sometimes, so that completed plans are cut too.
        cut_at = int(r.uniform(0, 1.15) * max(1, len(steps)) * self.step_cs) + 1
        # A media fault on top of the previous cut, in half the cycles that erase
        # nothing: before rebound boot, the guest flips a byte in each of `blocks`
        # blocks of one file of the parity set (at most 10% of its blocks; guest/lab,
        # media_fault), and the boot must rebuild it from its intact blocks and parity.
        fault = None
        if not first_of_run and erase == "none" and r.random() < 0.5:
            fault = {"file": r.choices(DATA_BASE, [6, 2, 1, 1])[0], "blocks": r.randint(1, 6),
                     "salt": r.randrange(1 << 30)}
        return {"cycle": c, "steps": steps, "pause": pause, "cut_at": cut_at, "erase": erase,
                "fault": fault}

    def learn(self, cy, plan):
        """Adapt the estimated step duration (which spreads the cut moments over the
        workload) to this machine, from the times in the guest's records."""
        times = []
        for r in cy["records"]:
            if r[0] == "line" and r[1].split()[0] in ("workload", "done"):
                times.append(int(r[1].split()[-1]))
        for a, b in zip(times, times[1:]):
            if 0 < b - a < 3000:
                self.step_cs = 0.8 * self.step_cs + 0.2 * (b - a)
        if len(times) == 1 and plan["steps"] and plan["cut_at"] > 2 * self.step_cs:
            self.step_cs *= 1.3  # cut long after the start, yet no step done: too slow a guess


def build_control(path, fs, run_id, cycles, broken, factory_dir, vfat_opts="", extra="", flash=False):
    """The control disk: a tar archive the guest unpacks into /ctl. factory_dir: the
    factory files, for the factory flash of the first cycle (`flash`) or the parity
    set's reflash after a system erase."""
    def add_bytes(tf, name, data, mode=0o644):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.mtime = 0
        tf.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        add_bytes(tf, "params.sh", (f"FS={fs}\nRUN={run_id}\nNCYCLES={len(cycles)}\n"
                                    f"BROKEN={1 if broken else 0}\nFACTORY={1 if flash else 0}\n"
                                    f"VFAT_OPTS='{vfat_opts}'\n{extra}").encode())
        if factory_dir:
            tf.add(factory_dir, arcname="factory")
        for i, cy in enumerate(cycles, 1):
            fault = cy.get("fault") or {"file": "", "blocks": 0, "salt": 0}
            add_bytes(tf, f"cycles/{i}/params",
                      (f"PAUSE_AT={cy['pause']}\nCUT_AT={cy['cut_at']}\nERASE={cy['erase']}\n"
                       f"FAULT_FILE='{fault['file']}'\nFAULT_BLOCKS={fault['blocks']}\n"
                       f"FAULT_SALT={fault['salt']}\n").encode())
            lines = []
            for st in cy["steps"]:
                if st["kind"] in ("commit", "write"):
                    lines.append(f"{st['k']} {st['kind']} {st['set']} {st['files'][0]}")
                elif st["kind"] == "update":
                    lines.append(f"{st['k']} update {st['set']}")
                else:
                    lines.append(f"{st['k']} upgrade {st['side']}")
                for rel in st["files"]:
                    add_bytes(tf, f"data/{st['k']}/{rel}", content(f"s{st['k']}", rel))
            add_bytes(tf, f"cycles/{i}/plan", ("\n".join(lines) + "\n").encode())
    # A disk must be a whole number of sectors (tarfile pads to 10 KiB already).
    size = os.path.getsize(path)
    if size % 512:
        with open(path, "ab") as f:
            f.write(b"\0" * (512 - size % 512))


# ---------------------------------------------------------------------------------
# Results disk parsing
# ---------------------------------------------------------------------------------
def make_partitioned_disk(path):
    """The replay-mode disk: an MBR with the three partitions of PARTS."""
    with open(path, "wb") as f:
        f.truncate(DEV_SIZE)
        mbr = bytearray(512)
        for i, name in enumerate(("system", "usrdata", "results")):
            start, count = PARTS[name]
            e = 446 + 16 * i
            mbr[e:e + 16] = bytes([0, 0xfe, 0xff, 0xff, 0x83, 0xfe, 0xff, 0xff]) + start.to_bytes(4, "little") + count.to_bytes(4, "little")
        mbr[510:512] = b"\x55\xaa"
        f.write(mbr)


def zero_range(path, start, length):
    with open(path, "r+b") as f:
        f.seek(start)
        chunk = b"\0" * (1 << 20)
        left = length
        while left > 0:
            f.write(chunk[:min(left, len(chunk))])
            left -= len(chunk)


def read_log(path):
    """Entries of a QEMU blklogwrites log (the dm-log-writes format): a list of
    (sector, data or None, flags), in the order the writes and flushes completed."""
    entries = []
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 512:
        return entries
    magic, _version, nr, secsize = struct.unpack_from("<QQQI", data, 0)
    if magic != 0x6a736677736872:
        raise RuntimeError(f"{path}: not a blklogwrites log")
    off = secsize
    for _ in range(nr):
        sector, nsec, flags, _dlen = struct.unpack_from("<QQQQ", data, off)
        off += secsize
        payload = data[off:off + nsec * secsize] if nsec and not flags & 4 else None
        off += nsec * secsize
        entries.append((sector * secsize // 512, payload, flags))
    return entries


def parse_results(path, start=0, end=None, first_sector=0):
    """Records in order: ("line", text) or ("block", name, text). start/end/first_sector
    (in sectors) select part of the file: a partition, or a partition's tail."""
    with open(path, "rb") as f:
        f.seek(start * 512)
        data = f.read(None if end is None else (end - start) * 512)
    data = data[first_sector * 512:].replace(b"\0", b"")
    text = data.decode("utf-8", "replace")
    out = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("BEGIN "):
            name = ln[6:]
            body = []
            i += 1
            while i < len(lines) and lines[i] != f"END {name}":
                body.append(lines[i])
                i += 1
            out.append(("block", name, "\n".join(body)))
        elif ln.strip():
            out.append(("line", ln))
        i += 1
    return out


def split_cycles(records):
    """Group the records of one QEMU run by cycle."""
    head, cycles, cur = [], [], None
    for rec in records:
        if rec[0] == "line" and rec[1].startswith("cycle "):
            cur = {"records": [], "start": int(rec[1].split()[2])}
            cycles.append(cur)
        elif cur is None:
            head.append(rec)
        else:
            cur["records"].append(rec)
    return head, cycles


def parse_dump(text):
    files, tags, noroot = {}, {}, []
    for ln in text.splitlines():
        parts = ln.split()
        if not parts:
            continue
        if parts[0] == "f" and len(parts) == 4:
            files.setdefault(parts[1], {})[parts[2]] = parts[3]
        elif parts[0] == "t":
            tags[parts[1]] = parts[2] if len(parts) > 2 else ""
        elif parts[0] == "noroot":
            noroot.append(parts[1])
    return files, tags, noroot


def restores(boot_json):
    """The restores a boot's report says succeeded: (set, path, source) with source
    "parity", "staged", "golden" or "copy"."""
    try:
        rep = json.loads(boot_json)
    except ValueError:
        return []
    out = []
    for s in rep.get("sets", []):
        for o in s.get("outcomes", []) or []:
            a = o.get("action", {})
            if a.get("action") == "restore" and not o.get("error"):
                src = a.get("from") or {}
                kind = next((k for k in ("parity", "staged", "golden") if src.get(k)), "copy")
                out.append((s.get("set"), a.get("path"), kind))
    return out


def count_repairs(boot_json):
    return len(restores(boot_json))


# What `rebound boot` sends to the kernel log (log_to = "kmsg" in rebound.toml): the
# facility (user) and the severities of crates/rebound-cli/src/announce.rs.
KMSG_USER = 1 * 8
ERR, WARNING, NOTICE, INFO = 3, 4, 5, 6
KMSG_DETAILS = 8  # detail lines per set before "... and N more"


def check_kmsg(boot_json, kmsg):
    """The kernel log (the guest's `dmesg -r` since the cycle's marker) must hold, for
    every set of the boot's report, exactly one summary line with the right priority,
    and one warning line per repair (all of them while a set's details fit in its 9
    lines). Returns (violations, repair lines seen)."""
    try:
        rep = json.loads(boot_json)
    except ValueError:
        return [], 0  # no report: a violation of its own already
    recs = []
    for ln in kmsg.splitlines():
        m = re.match(r"<(\d+)>(?:\[[^\]]*\]\s*)?rebound: (.*)$", ln)
        if m:
            recs.append((int(m.group(1)), m.group(2)))
    v, seen = [], 0
    for s in rep.get("sets", []):
        name = s.get("set")
        head = f"boot: set `{name}`: "
        mine = [(p, t[len(head):]) for p, t in recs if t.startswith(head)]
        got = "; ".join(f"<{p}>{t}" for p, t in mine) or "nothing"
        if s.get("error"):
            if not any(p == KMSG_USER + ERR and t.startswith("error: ") for p, t in mine):
                v.append(f"kernel log: no <{KMSG_USER + ERR}> error line for set {name} (got {got})")
            continue
        plan = s.get("plan") or {}
        outcomes = s.get("outcomes") or []
        failed = sum(1 for o in outcomes if o.get("error"))
        # What rebound counts as a repair (plan.rs, Action::is_cleanup): everything but
        # the removal of junk, of staged content and of stale parity records.
        repairs = sum(1 for o in outcomes if not o.get("error")
                      and o.get("action", {}).get("action") not in ("remove_junk", "remove_staged",
                                                                    "remove_parity"))
        lost = len(plan.get("lost") or [])
        gen = f"generation {plan.get('generation')}"
        if lost or failed or repairs:
            sev = ERR if lost or failed else NOTICE
            text = f"{repairs} repaired, {lost} lost"
        else:
            golden_bad = any(f.get("problem") == "golden_damaged" for f in plan.get("findings") or [])
            sev = WARNING if golden_bad else INFO
            text = f"intact, {plan.get('files')} files"
        summaries = [t for p, t in mine if p == KMSG_USER + sev and t.startswith(text) and gen in t]
        if len(summaries) != 1:
            v.append(f"kernel log: {len(summaries)} <{KMSG_USER + sev}> summaries \"{text}, ... {gen}\" "
                     f"for set {name}, want 1 (got {got})")
        shown = sum(1 for p, t in mine if p == KMSG_USER + WARNING and t.startswith("repaired: "))
        seen += shown
        details = lost + failed + repairs + len(s.get("suspects") or [])
        want = repairs if details <= KMSG_DETAILS + 1 else None
        if (want is not None and shown != want) or (want is None and repairs and not shown):
            v.append(f"kernel log: {shown} <{KMSG_USER + WARNING}> repair lines for set {name}, "
                     f"want {repairs if want is not None else 'some'} (got {got})")
    return v, seen


# ---------------------------------------------------------------------------------
# The checker: one per filesystem, fed cycle after cycle
# ---------------------------------------------------------------------------------
class Checker:
    def __init__(self, fs):
        self.fs = fs
        self.reset()
        self.fsro_last = False
        self.stats = {"cuts": 0, "workload_cuts": 0, "boot_cuts": 0, "boots": 0, "repairs": 0,
                      "reformats": 0, "erases": 0, "fsck_fixes": 0, "fs_ro": 0, "steps_done": 0,
                      "inflight_new": 0, "inflight_old": 0, "violations": 0,
                      "kmsg_boots": 0, "kmsg_repair_lines": 0, "faults": 0, "fault_blocks": 0,
                      "fault_skips": 0, "parity_rebuilds": 0, "reflashes": 0}

    def reset(self):
        self.candidates = [State.factory()]  # acceptable states at the next check
        self.factory_pending = True

    def check_dump(self, files, tags, noroot):
        """Returns (problems, matched state or None)."""
        problems = []
        obs_sets = {}
        for name, roots in ROOTS.items():
            views = []
            for root in roots:
                if root in noroot:
                    problems.append(f"{root}: directory missing")
                got = dict(files.get(root, {}))
                if name == "apps":
                    got.pop(VERSION_FILE, None)
                views.append(got)
            for root, v in zip(roots[1:], views[1:]):
                if v != views[0]:
                    diff = sorted(k for k in set(v) | set(views[0]) if v.get(k) != views[0].get(k))
                    problems.append(f"set {name}: {root} differs from {roots[0]} in {', '.join(diff)}")
            obs_sets[name] = views[0]
        tagvals = [tags.get(r, "") for r in ROOTS["apps"]]
        if tagvals[0] != tagvals[1]:
            problems.append(f"version tags differ: {tagvals}")
        try:
            tag = int(tagvals[0])
        except ValueError:
            problems.append(f"version tag unreadable: {tagvals[0]!r}")
            tag = -1
        observed = State(obs_sets, tag)
        match = next((c for c in self.candidates if c.key() == observed.key()), None)
        if match is None:
            exp = " | ".join(f"candidate {i}: " + "; ".join(c.describe_diff(observed)) for i, c in enumerate(self.candidates))
            problems.append(f"state is neither the last committed one nor the in-flight one ({exp})")
        return problems, observed, match

    def feed_cycle(self, cy, planned, golden_ok):
        """Check one cycle's records against the model. Returns a list of violations."""
        recs = cy["records"]
        lines = [r[1] for r in recs if r[0] == "line"]
        blocks = {r[1]: r[2] for r in recs if r[0] == "block"}
        v = []
        if not golden_ok:
            v.append("golden image checksum changed")
        for ln in lines:
            if ln.startswith("fatal"):
                v.append(f"guest: {ln}")
            elif ln.startswith("reformat"):
                self.stats["reformats"] += 1
            elif ln.startswith("erase"):
                self.stats["erases"] += 1
            elif ln.startswith("fsck"):
                self.stats["fsck_fixes"] += 1
        if any(ln.startswith("factory") for ln in lines):
            self.reset()
        # A system erase took the parity set's only copy and the guest flashed its
        # factory files again (guest/lab, reflash_data): from here on it is at factory.
        if any(ln.startswith("reflash data") for ln in lines):
            self.stats["reflashes"] += 1
            fd = factory_digests("data")
            self.candidates = [State({**c.sets, "data": fd}, c.tag) for c in self.candidates]
        # A media fault on top of the cut: the guest damaged a file of the parity set
        # before the boot (guest/lab, media_fault). The state check below requires it
        # old or new, undamaged, after the boot; the report must show the repair.
        faults = [ln.split() for ln in lines if ln.startswith("fault data ")]
        for f in faults:
            self.stats["faults"] += 1
            self.stats["fault_blocks"] += len(f[4].split(","))
        self.stats["fault_skips"] += sum(1 for ln in lines if ln.startswith("fault-skip"))
        # A partition the kernel turned read-only (it found its own metadata corrupt; see
        # fs_went_ro in guest/lab): the guest power-cycled at once. Not rebound's fault, but
        # the next boot must succeed: the same partition read-only twice in a row means
        # the device's fsck did not repair it and nothing was checked.
        fsro = [ln for ln in lines if ln.startswith("fsro")]
        if fsro:
            self.stats["fs_ro"] += 1
            if self.fsro_last:
                v.append("a partition went read-only in two cycles in a row: " + fsro[0])
        self.fsro_last = bool(fsro)
        if any(ln.startswith(("fsro boot", "fsro verify")) for ln in lines):
            self.stats["cuts"] += 1
            self.stats["boots"] += 1
            return v  # like a cut during boot: the same candidates hold at the next boot
        if any(ln.startswith("bootcut") for ln in lines):
            self.stats["cuts"] += 1
            self.stats["boot_cuts"] += 1
            self.stats["boots"] += 1
            return v  # no dump: the same candidates hold at the next boot
        boot_rc = next((ln.split()[1] for ln in lines if ln.startswith("boot_rc")), None)
        if boot_rc is None:
            v.append("no boot result recorded (guest crashed or hung?)")
            return v
        self.stats["boots"] += 1
        done_restores = restores(blocks.get("boot-json", ""))
        self.stats["repairs"] += len(done_restores)
        self.stats["parity_rebuilds"] += sum(1 for r in done_restores if r[2] == "parity")
        for f in faults:
            if not any(r[0] == "data" and r[1] == f[2] for r in done_restores):
                v.append(f"media fault in data:{f[2]} (blocks {f[4]} of {f[6]}): the boot's report "
                         f"shows no restore of it")
        kv, klines = check_kmsg(blocks.get("boot-json", ""), blocks.get("kmsg", ""))
        v.extend(kv)
        self.stats["kmsg_boots"] += 1
        self.stats["kmsg_repair_lines"] += klines
        if boot_rc != "0":
            v.append(f"rebound boot exited {boot_rc}" + (" (a file has no intact copy left)" if boot_rc == "3" else ""))
        verify_rc = next((ln.split()[1] for ln in lines if ln.startswith("verify_rc")), None)
        if verify_rc != "0":
            v.append(f"rebound verify after boot exited {verify_rc}")
        if "dump" not in blocks:
            v.append("no state dump recorded")
            return v
        problems, observed, match = self.check_dump(*parse_dump(blocks["dump"]))
        v.extend(problems)
        if match is not None and len(self.candidates) == 2:
            self.stats["inflight_new" if match is self.candidates[1] else "inflight_old"] += 1
        base = match if match is not None else observed
        # The workload of this cycle: which steps completed, which one was in flight.
        done = set()
        cut_cs = None
        for ln in lines:
            p = ln.split()
            if p[0] == "done":
                done.add(int(p[1]))
            elif p[0] == "cut":
                cut_cs = int(p[2])
        for ln in lines:
            p = ln.split()
            if p[0] == "fail":
                if any(f.startswith(f"fsro step {p[1]} ") for f in fsro):
                    continue  # failed because the partition went read-only (above)
                t = int(p[3]) if len(p) > 3 else 0
                # On UBIFS the cut makes later commands fail (EROFS): not a violation.
                if not (cut_cs is not None and t >= cut_cs - 2):
                    v.append(f"step {p[1]} failed without a power cut ({' '.join(p[2:])}): "
                             + blocks.get(f"step-{p[1]}", "")[-400:])
        state = base
        inflight = None
        for st in planned["steps"]:
            if st["k"] in done:
                state = state.apply(st)
                self.stats["steps_done"] += 1
            else:
                inflight = st
                break
        self.candidates = [state] + ([state.apply(inflight)] if inflight else [])
        self.stats["cuts"] += 1
        self.stats["workload_cuts"] += 1
        return v


def is_data_loss(violation):
    """Whether a violation is protected data lost or left wrong (as opposed to the lab
    or the guest failing): what a build that skips fsync must be caught doing."""
    return (violation.startswith(("state is neither", "set ", "version tag", "rebound boot exited 3"))
            or violation.endswith("directory missing"))


# ---------------------------------------------------------------------------------
# Running QEMU
# ---------------------------------------------------------------------------------
class Lab:
    def __init__(self, a):
        self.a = a
        self.slots = threading.Semaphore(a.jobs)
        self.print_lock = threading.Lock()
        self.results = {}
        with open(a.golden, "rb") as f:
            self.golden_sum = digest(f.read())

    def say(self, fs, msg):
        with self.print_lock:
            print(f"[{time.strftime('%H:%M:%S')}] {fs:5} {msg}", flush=True)

    def qemu(self, fs, d, timeout, disk=None, log=None):
        """One boot. disk: replay mode's partitioned disk (logged with blklogwrites
        into `log` when given)."""
        drives = [("control.tar", "on"), ("results.img", "off"), ("golden.sqfs", "off")]
        if disk:
            drives.append((disk, "log" if log else "off"))
        elif fs != "ubifs":
            drives += [("system.img", "off"), ("usrdata.img", "off")]
        common = ["-accel", "tcg", "-m", "512", "-smp", "1", "-nodefaults",
                  "-display", "none", "-no-reboot", "-monitor", "none",
                  "-serial", f"file:{os.path.join(d, 'console.log')}",
                  "-kernel", self.a.kernel, "-initrd", self.a.initrd]
        append = "quiet loglevel=3 log_buf_len=16M panic=-1 oops=panic mitigations=off"
        if self.a.arch == "x86_64":
            # qboot (shipped with QEMU) starts a -kernel much faster than SeaBIOS.
            bios = ["-bios", QBOOT] if os.path.exists(QBOOT) else []
            # no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check
            # can miss its ticks and panic before /init ("IO-APIC + timer doesn't work!",
            # seen once in a --quick run while other builds shared the cores). The check
            # tests the emulator, not rebound; virtual machines routinely skip it.
            cmd = ["qemu-system-x86_64", "-machine", "pc", *bios, *common,
                   "-append", "console=ttyS0 no_timer_check " + append]
        elif self.a.arch == "armv7":
            # Debian's armmp kernel on QEMU's generic board (a Cortex-A15, the default
            # CPU of -M virt for 32-bit ARM; the console is its PL011 UART).
            cmd = ["qemu-system-arm", "-machine", "virt,highmem=off", "-cpu", "cortex-a15", *common,
                   "-append", "console=ttyAMA0 " + append]
        else:
            cmd = ["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57", *common,
                   "-append", "console=ttyAMA0 " + append]
        # Explicit PCI slots: the guest's vda, vdb, ... follow them.
        for i, (name, ro) in enumerate(drives):
            path = os.path.join(d, name)
            if ro == "log":
                spec = (f"driver=blklogwrites,file.driver=file,file.filename={path},"
                        f"log.driver=file,log.filename={os.path.join(d, log)},cache.no-flush=off")
            else:
                spec = f"file={path},format=raw,cache=unsafe,readonly={ro}"
            cmd += ["-drive", f"if=none,id=d{i},{spec}", "-device", f"virtio-blk-pci,drive=d{i},addr={4 + i:#x}"]
        with self.slots:
            t0 = time.time()
            try:
                subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(d, "qemu.err"), "wb"), timeout=timeout, check=False)
                hung = False
            except subprocess.TimeoutExpired:
                hung = True
            return time.time() - t0, hung

    def keep_failure(self, fs, d, c, violations):
        dest = os.path.join(self.a.work, "failures", fs, f"cycle-{c:05d}")
        if os.path.exists(dest):
            shutil.rmtree(dest)
        os.makedirs(dest)
        for name in os.listdir(d):
            src = os.path.join(d, name)
            if os.path.isfile(src):
                subprocess.run(["cp", "--sparse=always", src, dest], check=False)
        prev = os.path.join(os.path.dirname(d), "prev")
        if os.path.isdir(prev):
            shutil.copytree(prev, os.path.join(dest, "previous-cycle"))
        with open(os.path.join(dest, "VIOLATIONS.txt"), "w") as f:
            f.write("\n".join(violations) + "\n")
        return dest

    def replay(self, fs, d, checker_before, plan, rnd, golden_ok):
        """Replay mode: crash states of the last run rebuilt from its blklogwrites log,
        as a drive that loses its volatile write cache leaves them: every write up to a
        random flush, and half of the time also a random subset of the writes between
        that flush and the next. Each state is booted (rebound boot, verify, dump) and
        checked like a real cut. Returns (violations, states checked)."""
        entries = read_log(os.path.join(d, "dev.log"))
        flushes = [i for i, e in enumerate(entries) if e[2] & 1]
        if not flushes:
            return [], 0
        rd = os.path.join(d, "replay")
        shutil.rmtree(rd, ignore_errors=True)
        os.makedirs(rd)
        shutil.copy(os.path.join(d, "golden.sqfs"), rd)
        with open(os.path.join(rd, "results.img"), "wb") as f:
            f.truncate(1 << 20)
        res_start, res_count = PARTS["results"]
        quiet = {"cycle": 0, "steps": [], "pause": 0, "cut_at": 1, "erase": "none"}
        violations, checked = [], 0
        for _ in range(self.a.replay):
            fi = rnd.choice(flushes)
            nxt = next((x for x in flushes if x > fi), len(entries))
            extra = set()
            if rnd.random() < 0.5:
                extra = {x for x in range(fi + 1, nxt) if entries[x][1] is not None and rnd.random() < 0.5}
            img = os.path.join(rd, "dev.img")
            subprocess.run(["cp", "--sparse=always", os.path.join(d, "before-boot-dev.img"), img], check=True)
            with open(img, "r+b") as f:
                for x, (sector, payload, _flags) in enumerate(entries):
                    if payload is not None and (x <= fi or x in extra):
                        f.seek(sector * 512)
                        f.write(payload)
            with open(img, "rb") as f:
                f.seek(res_start * 512)
                raw = f.read(res_count * 512)
            used = len(raw.rstrip(b"\0"))
            res_off = (used + 511) // 512
            pre = parse_results(img, res_start, res_start + res_count)
            build_control(os.path.join(rd, "control.tar"), fs, "replay", [quiet], self.a.broken, None,
                          self.a.vfat_opts, self.disk_params + f"RES_OFF={res_off}\n")
            self.qemu(fs, rd, 150 * SLOWER[self.a.arch], disk="dev.img")
            post = parse_results(img, res_start, res_start + res_count, first_sector=res_off)
            ck = copy.deepcopy(checker_before)
            _, pre_cycles = split_cycles(pre)
            if pre_cycles and any(r[0] == "line" and r[1].startswith("boot_rc") for r in pre_cycles[0]["records"]):
                ck.feed_cycle(pre_cycles[0], plan, True)  # checked by the main line already
            _, post_cycles = split_cycles(post)
            v = ck.feed_cycle(post_cycles[0], quiet, golden_ok) if post_cycles else ["no records from the replay boot"]
            checked += 1
            if v:
                what = f"replayed crash state: flush {flushes.index(fi) + 1}/{len(flushes)}" + \
                       (f" + {len(extra)} of the {nxt - fi - 1} later writes" if extra else "")
                violations += [f"{what}: {x}" for x in v]
                keep = os.path.join(d, f"replay-failure-{len(violations)}")
                shutil.rmtree(keep, ignore_errors=True)
                shutil.copytree(rd, keep)
                with open(os.path.join(keep, "WHAT.txt"), "w") as f:
                    f.write(what + "\n" + "\n".join(v) + "\n")
                break
        return violations, checked

    def run_fs(self, fs):
        a = self.a
        base = os.path.join(a.work, "runs", fs)
        shutil.rmtree(base, ignore_errors=True)
        d = os.path.join(base, "cur")
        os.makedirs(d)
        planner = Planner(a.seed, fs, a.broken)
        checker = Checker(fs)
        checker.stats["replays"] = 0
        rnd = random.Random(f"{a.seed}:{fs}:replay")
        replay = a.replay > 0 and fs != "ubifs"
        self.disk_params = "RES_DEV=/dev/vdd3\nSYS_DEV=/dev/vdd1\nDATA_DEV=/dev/vdd2\n"
        kept = 0
        all_violations = []
        t_start = time.time()
        c = 1
        if replay:
            make_partitioned_disk(os.path.join(d, "dev.img"))
        else:
            for img in ("system.img", "usrdata.img"):
                with open(os.path.join(d, img), "wb") as f:
                    f.truncate(PART_SIZE)
        shutil.copy(a.golden, os.path.join(d, "golden.sqfs"))
        while c <= a.cuts:
            n = 1 if fs != "ubifs" else min(UBIFS_BATCH, a.cuts - c + 1)
            factory = fs == "ubifs" or c == 1
            cycles = [planner.cycle(c + i, factory and i == 0) for i in range(n)]
            # ext4/vfat: "erase by fastboot" zeroes the whole partition here.
            if fs != "ubifs" and cycles[0]["erase"] != "none":
                checker.stats["erases"] += 1
                if replay:
                    start, count = PARTS[cycles[0]["erase"]]
                    zero_range(os.path.join(d, "dev.img"), start * 512, count * 512)
                else:
                    with open(os.path.join(d, cycles[0]["erase"] + ".img"), "r+b") as f:
                        f.truncate(0)
                        f.truncate(PART_SIZE)
            need_factory = factory or any(cy["erase"] == "system" for cy in cycles)
            build_control(os.path.join(d, "control.tar"), fs, c, cycles, a.broken,
                          a.factory if need_factory else None, a.vfat_opts,
                          self.disk_params if replay else "", flash=factory)
            with open(os.path.join(d, "results.img"), "wb") as f:
                f.truncate(RESULTS_SIZE)
            if replay:
                start, count = PARTS["results"]
                zero_range(os.path.join(d, "dev.img"), start * 512, count * 512)
                open(os.path.join(d, "dev.log"), "wb").close()
            # The disks as the power cut left them: for diagnosis, and replay's base.
            for img in (["dev.img"] if replay else ["system.img", "usrdata.img"] if fs != "ubifs" else []):
                subprocess.run(["cp", "--sparse=always", os.path.join(d, img),
                                os.path.join(d, "before-boot-" + img)], check=True)
            timeout = (150 if fs != "ubifs" else 90 + 25 * n) * SLOWER[a.arch]
            if replay:
                secs, hung = self.qemu(fs, d, timeout, disk="dev.img", log="dev.log")
                start, count = PARTS["results"]
                records = parse_results(os.path.join(d, "dev.img"), start, start + count)
            else:
                secs, hung = self.qemu(fs, d, timeout)
                records = parse_results(os.path.join(d, "results.img"))
            with open(os.path.join(d, "golden.sqfs"), "rb") as f:
                golden_ok = digest(f.read()) == self.golden_sum
            with open(os.path.join(d, "records.txt"), "w") as f:
                for r in records:
                    f.write(r[1] + "\n" if r[0] == "line" else f"BEGIN {r[1]}\n{r[2]}\nEND {r[1]}\n")
            with open(os.path.join(d, "plan.json"), "w") as f:
                json.dump(cycles, f, indent=1)
            checker_before = copy.deepcopy(checker) if replay and c > 1 else None
            head, got = split_cycles(records)
            stop = False
            for i, cy_plan in enumerate(cycles):
                cc = c + i
                if i >= len(got):
                    v = [f"cycle {cc}: no records (guest {'hung' if hung else 'stopped'}; see console.log)"]
                else:
                    cy = got[i]
                    v = checker.feed_cycle(cy, cy_plan, golden_ok)
                    planner.learn(cy, cy_plan)
                # Replay mode: more crash states of this same run, from its write log.
                if not v and checker_before is not None and not hung:
                    rv, nchecked = self.replay(fs, d, checker_before, cy_plan, rnd, golden_ok)
                    checker.stats["replays"] += nchecked
                    v = rv
                if v:
                    checker.stats["violations"] += len(v)
                    checker.stats["data_loss"] = checker.stats.get("data_loss", 0) + sum(map(is_data_loss, v))
                    all_violations += [f"cycle {cc}: {x}" for x in v]
                    where = ""
                    if kept < 5:
                        where = self.keep_failure(fs, d, cc, v)
                        kept += 1
                    self.say(fs, f"cycle {cc}: VIOLATION: {v[0]}" + (f" (logs: {where})" if where else ""))
                    if not a.broken or len(v) and any("no records" in x or "guest" in x for x in v):
                        stop = True
                        break
                if hung:
                    stop = True
                    break
            if stop:
                break
            # The previous cycle's files help to diagnose the next one's failure.
            prev = os.path.join(base, "prev")
            shutil.rmtree(prev, ignore_errors=True)
            os.makedirs(prev)
            for name in ("console.log", "records.txt", "plan.json"):
                shutil.copy(os.path.join(d, name), prev)
            c += n
            s = checker.stats
            self.say(fs, f"cycles {c - 1}/{a.cuts}: cuts {s['cuts']} (boot {s['boot_cuts']}), "
                         + (f"replayed states {s['replays']}, " if replay else "")
                         + f"repairs {s['repairs']} (kernel log lines {s['kmsg_repair_lines']}), "
                         + f"reformats {s['reformats']}, media faults {s['faults']} "
                         + f"(parity rebuilds {s['parity_rebuilds']}), violations {s['violations']} "
                         f"[{secs:.1f}s/run]")
        checker.stats["seconds"] = int(time.time() - t_start)
        self.results[fs] = (checker.stats, all_violations)

    def main(self):
        threads = [threading.Thread(target=self.run_fs, args=(fs,)) for fs in self.a.fs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print()
        print(f"== power-cut lab summary ({self.a.arch})" + (" (BROKEN build: REBOUND_FAULT_SKIP_SYNC=1)" if self.a.broken else ""))
        hdr = (f"{'fs':6} {'cuts':>6} {'boot-cuts':>9} {'boots':>6} {'steps':>6} {'repairs':>8} {'reformats':>9} "
               f"{'erases':>6} {'fs-ro':>5} {'inflight new/old':>16} {'faults':>6} {'par-rebuilds':>12} "
               f"{'violations':>10} {'time':>6}")
        print(hdr)
        total_v = 0
        total_loss = 0
        for fs in self.a.fs:
            if fs not in self.results:
                print(f"{fs:6} (did not finish)")
                total_v += 1
                continue
            s, _ = self.results[fs]
            total_v += s["violations"]
            total_loss += s.get("data_loss", 0)
            print(f"{fs:6} {s['cuts']:>6} {s['boot_cuts']:>9} {s['boots']:>6} {s['steps_done']:>6} {s['repairs']:>8} "
                  f"{s['reformats']:>9} {s['erases']:>6} {s['fs_ro']:>5} {str(s['inflight_new']) + '/' + str(s['inflight_old']):>16} "
                  f"{s['faults']:>6} {s['parity_rebuilds']:>12} {s['violations']:>10} {s['seconds']:>5}s")
        with open(os.path.join(self.a.work, "summary.json"), "w") as f:
            json.dump({"seed": self.a.seed, "broken": self.a.broken, "arch": self.a.arch,
                       "results": {k: {"stats": s, "violations": v[:50]} for k, (s, v) in self.results.items()}}, f, indent=1)
        if self.a.broken:
            # Only lost or wrong data counts as catching it: a guest that crashed, hung or
            # failed to set up says nothing about the build.
            if total_loss:
                print(f"broken build detected: {total_loss} of {total_v} violations are lost or wrong data, as expected")
                return 0
            print(f"BROKEN BUILD WENT UNNOTICED: no lost or wrong data found ({total_v} other violations)")
            return 1
        if total_v:
            print(f"FAILED: {total_v} violations; logs under {os.path.join(self.a.work, 'failures')}")
            return 1
        print("OK: no violation")
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("factory")
    f.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--arch", default="x86_64", choices=["x86_64", "armv7", "aarch64"])
    r.add_argument("--work", required=True)
    r.add_argument("--kernel", required=True)
    r.add_argument("--initrd", required=True)
    r.add_argument("--golden", required=True)
    r.add_argument("--factory", required=True)
    r.add_argument("--cuts", type=int, default=24)
    r.add_argument("--fs", default="ext4,vfat,ubifs")
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--seed", default="1")
    r.add_argument("--broken", action="store_true")
    r.add_argument("--vfat-opts", default="", help="extra vfat mount options, e.g. dirsync")
    r.add_argument("--replay", type=int, default=0,
                   help="ext4/vfat: per cycle, also check N crash states rebuilt from a blklogwrites log")
    a = ap.parse_args()
    if a.cmd == "factory":
        write_factory(a.out)
        return 0
    a.fs = [x for x in a.fs.split(",") if x]
    for x in a.fs:
        if x not in ("ext4", "vfat", "ubifs"):
            ap.error(f"unknown filesystem {x}")
    shutil.rmtree(os.path.join(a.work, "failures"), ignore_errors=True)
    return Lab(a).main()


if __name__ == "__main__":
    sys.exit(main())

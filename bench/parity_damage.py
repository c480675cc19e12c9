#!/usr/bin/env python3
"""Damage for bench/parity.sh, the same on every copy of a corpus.

    parity_damage.py layout SIZE [BLOCK]          # rebound's layout of a SIZE-byte file
    parity_damage.py apply PATTERN SEED ROOT [NFILES]
    parity_damage.py jobs ROOT REDUNDANCY         # per file: path, block, recovery count
    parity_damage.py same ORIG COPY [NFILES]      # "yes" if every file is identical
    parity_damage.py restore ORIG COPY            # copy back what differs, drop extras

`apply` damages the regular files under ROOT (every file, or NFILES of them chosen by
SEED; `.rebound` and `*.par2` are skipped, names are sorted), each from its own random
stream seeded by SEED, PATTERN and the file's path relative to ROOT: two copies of a
corpus get exactly the same damage. Positions follow rebound's block grid
(crates/rebound/src/parity.rs, Layout::new: block = size/32 rounded up to 64 bytes,
at most 4096; windows of 8 MiB of data, ceil(k * 10%) recovery blocks per window):

    flipP   one bit flipped in ceil(P% of the blocks) of EVERY window, positions random
            inside the window (so P <= 10 stays within rebound's capacity by design);
    scatP   one bit flipped in ceil(P% of all blocks), positions uniform over the whole
            file (windows may get more than their share);
    zeroP   one contiguous range of ceil(P% of the size) bytes zeroed, random start.

Prints one line: files damaged, blocks hit (rebound's grid), bytes changed.
"""
import math
import os
import random
import sys

MIN_BLOCK = 64
TARGET_BLOCKS = 32
WINDOW_BYTES = 8 << 20
MAX_WINDOW = 32768


def layout(size, block=4096):
    """(block, blocks, window) as rebound's Layout::new."""
    configured = max(MIN_BLOCK, min(block, 1 << 24)) // MIN_BLOCK * MIN_BLOCK
    small = math.ceil(math.ceil(size / TARGET_BLOCKS) / MIN_BLOCK) * MIN_BLOCK
    b = max(MIN_BLOCK, min(small, configured))
    window = min(max(WINDOW_BYTES // b, 1), MAX_WINDOW)
    return b, math.ceil(size / b), window


def files_under(root):
    out = []
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x != ".rebound")
        for n in sorted(names):
            if n.endswith(".par2"):
                continue
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(os.path.relpath(p, root))
    return sorted(out)


def flip(f, off, rng):
    f.seek(off)
    b = f.read(1)[0]
    f.seek(off)
    f.write(bytes([b ^ (1 << rng.randrange(8))]))


def damage(path, kind, pct, rng):
    size = os.path.getsize(path)
    if size == 0:
        return 0, 0
    block, blocks, window = layout(size)
    hit = []
    with open(path, "r+b") as f:
        if kind in ("flip", "scat"):
            if kind == "flip":
                for w in range(math.ceil(blocks / window)):
                    first = w * window
                    k = min(window, blocks - first)
                    hit += [first + i for i in rng.sample(range(k), min(k, math.ceil(k * pct / 100)))]
            else:
                hit = rng.sample(range(blocks), min(blocks, math.ceil(blocks * pct / 100)))
            for i in hit:
                start = i * block
                flip(f, start + rng.randrange(min(block, size - start)), rng)
            return len(hit), len(hit)
        n = min(size, math.ceil(size * pct / 100))
        start = rng.randrange(size - n + 1)
        f.seek(start)
        f.write(bytes(n))
        return (start + n - 1) // block - start // block + 1, n


def recovery(blocks, window, redundancy):
    t = 0
    for first in range(0, blocks, window):
        k = min(window, blocks - first)
        t += max(1, math.ceil(k * redundancy / 100))
    return t


def identical(a, b):
    try:
        if os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as x, open(b, "rb") as y:
            while True:
                p, q = x.read(1 << 20), y.read(1 << 20)
                if p != q:
                    return False
                if not p:
                    return True
    except OSError:
        return False


def main():
    a = sys.argv[1:]
    if len(a) == 3 and a[0] == "jobs":
        for rel in files_under(a[1]):
            size = os.path.getsize(os.path.join(a[1], rel))
            b, n, w = layout(size)
            print(rel, b, recovery(n, w, int(a[2])))
        return 0
    if len(a) in (3, 4) and a[0] == "same":
        orig, copy = a[1], a[2]
        names = files_under(orig)
        bad = [r for r in names if not identical(os.path.join(orig, r), os.path.join(copy, r))]
        extra = sorted(set(files_under(copy)) - set(names))
        damaged = int(a[3]) if len(a) == 4 else len(names)
        if not bad:
            v = "yes" if damaged == 1 else f"yes ({damaged}/{damaged} files)"
        else:
            v = "no" if damaged == 1 else f"no ({damaged - len(bad)}/{damaged} files)"
        if extra:
            v += f" [{len(extra)} extra files]"
        print(v)
        return 0
    if len(a) == 3 and a[0] == "restore":
        import shutil
        orig, copy = a[1], a[2]
        names = files_under(orig)
        n = 0
        for r in names:
            if not identical(os.path.join(orig, r), os.path.join(copy, r)):
                shutil.copy2(os.path.join(orig, r), os.path.join(copy, r))
                n += 1
        for r in sorted(set(files_under(copy)) - set(names)):
            os.remove(os.path.join(copy, r))
            n += 1
        print(f"{n} files restored or removed")
        return 0
    if len(a) in (2, 3) and a[0] == "layout":
        b, n, w = layout(int(a[1]), int(a[2]) if len(a) == 3 else 4096)
        print(b, n, w)
        return 0
    if len(a) not in (4, 5) or a[0] != "apply":
        print(__doc__, file=sys.stderr)
        return 2
    pattern, seed, root = a[1], a[2], a[3]
    kind, pct = pattern[:4], int(pattern[4:])
    if kind not in ("flip", "scat", "zero"):
        print(f"unknown pattern {pattern}", file=sys.stderr)
        return 2
    names = files_under(root)
    if len(a) == 5:
        names = sorted(random.Random(f"{seed}:files").sample(names, min(len(names), int(a[4]))))
    blocks = changed = 0
    for rel in names:
        b, c = damage(os.path.join(root, rel), kind, pct, random.Random(f"{seed}:{pattern}:{rel}"))
        blocks += b
        changed += c
    print(f"{len(names)} files damaged, {blocks} blocks hit (rebound's grid), {changed} bytes changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

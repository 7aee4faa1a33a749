#!/usr/bin/env python3
"""Inclusive instructions per request, per function, for several bench/profile.sh runs side by
side (one column per OUT directory), from `callgrind_annotate --inclusive=yes`.

usage: bench/cgfunctions.py REGEX DIR [DIR...]     (TOP=60: how many rows)
e.g.   bench/cgfunctions.py 'portcullis::|sha2::' /tmp/prof-plain /tmp/prof-apikey

Functions that LTO inlined have no row of their own; their cost is in their caller's.
"""
import os
import re
import subprocess
import sys


def load(directory):
    wrk = open(f"{directory}/wrk.txt").read()
    requests = int(re.search(r"(\d+) requests in", wrk).group(1))
    out = subprocess.run(
        # Instructions only, also for CACHE_SIM=1 runs (which record more events).
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--show=Ir",
         f"{directory}/callgrind.out"],
        capture_output=True, text=True, check=True,
    ).stdout
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if re.search(r"Ir\s+file:function", l)) + 2
    costs = {}
    for line in lines[start:]:
        if not line.strip():
            break
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*?)(?: \[.*\])?$", line)
        if not m:
            continue
        name = m.group(2).split(":", 1)[1] if ":" in m.group(2) else m.group(2)
        cost = int(m.group(1).replace(",", "")) / requests
        costs[name] = max(costs.get(name, 0), cost)
    return costs


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    pattern, dirs = re.compile(sys.argv[1]), sys.argv[2:]
    runs = [load(d) for d in dirs]
    names = [n for n in set().union(*runs) if pattern.search(n)]
    names.sort(key=lambda n: -max(r.get(n, 0) for r in runs))
    print(" ".join("%9s" % os.path.basename(d.rstrip("/"))[:9] for d in dirs))
    for n in names[: int(os.environ.get("TOP", 60))]:
        print(" ".join("%9.0f" % r.get(n, 0) for r in runs), " ", n[:150])


if __name__ == "__main__":
    main()

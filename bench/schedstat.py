#!/usr/bin/env python3
"""schedstat.py — who ran on one CPU, for how long, and why each run ended.

Reads `perf script` output of `sched:sched_switch` (and `sched:sched_wakeup`) events recorded
on one CPU (`perf record -e sched:sched_switch,sched:sched_wakeup -C 0`; bench/profile.sh does
this with NATIVE=1 SCHED=1) and prints, per task, its runs on that CPU split by how they ended:
`preempted` (switched out still runnable, prev_state R) or `slept` (it blocked, prev_state S),
with count, total time and median / p90 length; then the wakeups, waker -> wakee.

On the yardstick's layout (proxy and upstream pinned to CPU 0) this shows the ping-pong: each
request the proxy sends wakes the upstream, which preempts the proxy at once.

usage: perf script -i perf.sched.data | bench/schedstat.py [CPU]
"""
import collections
import re
import sys

cpu = int(sys.argv[1]) if len(sys.argv) > 1 else 0
event = re.compile(r"^\s*(.+?)\s+(\d+)\s+\[0*(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)$")
switch = re.compile(r"prev_comm=(.+?) prev_pid=\d+ .*prev_state=(\S+) ==> next_comm=(.+?) next_pid")
woken = re.compile(r"comm=(.+?) pid=")

runs = collections.defaultdict(list)
wakeups = collections.Counter()
current, since, first, last = None, None, None, None
for line in sys.stdin:
    m = event.match(line)
    if not m or int(m.group(3)) != cpu:
        continue
    comm, _, _, t, kind, rest = m.groups()
    t = float(t)
    first = t if first is None else first
    last = t
    if kind == "sched_switch":
        s = switch.search(rest)
        if not s:
            continue
        prev, state, nxt = s.groups()
        if current == prev and since is not None:
            ended = "preempted" if state.startswith("R") else "slept"
            runs[(prev, ended)].append(t - since)
        current, since = nxt, t
    elif kind == "sched_wakeup":
        w = woken.search(rest)
        if w:
            wakeups[(comm.strip(), w.group(1))] += 1

span = (last - first) if first is not None and last > first else 0.0
print(f"CPU {cpu}: {span:.3f} s of events")
print(f"{'task':<22} {'run ended':<10} {'runs':>8} {'total s':>8} {'median us':>10} {'p90 us':>8}")
for (task, ended), v in sorted(runs.items(), key=lambda kv: -sum(kv[1])):
    if sum(v) < 0.001:
        continue
    v.sort()
    n = len(v)
    print(f"{task:<22} {ended:<10} {n:>8} {sum(v):>8.3f} {v[n // 2] * 1e6:>10.1f} {v[int(n * 0.9)] * 1e6:>8.1f}")
print("wakeups (waker -> wakee):")
for (waker, wakee), n in wakeups.most_common(6):
    print(f"  {waker} -> {wakee}: {n}")

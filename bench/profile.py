"""Where a command's milliseconds go: run it N times with
PADDOCK_TRACE_TIMING pointing at a trace file, and report, for each step
paddock marks (client, supervisor, pid 1, the exec template, the command
before its execve, all on one clock), its median time since the client's
`main` and the median time since the step before it.

Usage: profile.py OUT.json RUNS TRACE_FILE CMD...
The trace file must be the one the processes write to (for a session, the
one its supervisor was started with). Runs are told apart by the client's
`main` mark. The wall time of each run (process start to exit, measured
here) is reported too: what lies before `main` is the binary's start.
"""
import json
import os
import statistics
import subprocess
import sys
import time

out, runs, trace, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
# The setup sequence marks every step (sequence.rs); these stand for the
# stretches between them (the report would otherwise list each mount).
SEQUENCE_STEPS = {
    "sethostname": "pid 1: hostname (UTS namespace)",
    "loopback-up": "pid 1: loopback up",
    "make-mounts-slave": "pid 1: mounts made slave",
    "mount-root-tmpfs": "pid 1: host sources opened and cloned, root tmpfs",
    "chdir-root": "pid 1: system folders, /dev, /proc, /tmp, home, workspace and protected paths attached",
    "root-read-only": "pid 1: pivot_root, old root detached, root read-only",
    "landlock-ruleset": "pid 1: Landlock ruleset built",
    "set-non-dumpable": "pid 1: own Landlock scope, non-dumpable",
    "reset-signals": "command: signals reset",
    "landlock-restrict": "command: Landlock domain",
    "drop-capabilities": "command: capabilities dropped (template: once)",
    "seccomp-audit-handoff": "command: observing filter (JIT) and its listener handed to pid 1",
}
env = dict(os.environ, PADDOCK_TRACE_TIMING=trace)
walls, before_main = [], []
start_at = os.path.getsize(trace) if os.path.exists(trace) else 0
for _ in range(runs + 3):  # three warm-ups, dropped below
    t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    walls.append((time.clock_gettime(time.CLOCK_MONOTONIC) - t0) * 1e3)
    before_main.append(t0 * 1e3)
time.sleep(0.3)  # late lines (a supervisor's sweep) land
lines = open(trace).read()[start_at:].splitlines()
events = []
for l in lines:
    parts = l.split(" ", 3)
    if len(parts) == 4 and parts[0] == "paddock-timing":
        what = parts[3]
        if what.startswith(("main", "host:", "pid 1:", "command:", "client:", "supervisor:")):
            events.append((float(parts[1]), what))
        elif what in SEQUENCE_STEPS:
            events.append((float(parts[1]), SEQUENCE_STEPS[what]))
events.sort()
per_run, cur = [], None
for t, what in events:
    if what == "main":
        cur = [(t, what)]
        per_run.append(cur)
    elif cur is not None:
        cur.append((t, what))
per_run = per_run[3:]
starts = before_main[3:]
walls = walls[3:]
offsets, before = {}, []
for run, t_start in zip(per_run, starts):
    t_main = run[0][0]
    before.append(t_main - t_start)
    seen = {}
    for t, what in run:
        # A step that repeats (a poll, a clone per mount) keeps its last time.
        seen[what] = t - t_main
    for what, off in seen.items():
        offsets.setdefault(what, []).append(off)
steps = sorted((statistics.median(v), k) for k, v in offsets.items() if len(v) >= len(per_run) // 2)
rows, prev = [], 0.0
for off, what in steps:
    rows.append({"step": what, "at_ms": round(off, 3), "delta_ms": round(off - prev, 3)})
    prev = off
json.dump({
    "runs": len(per_run),
    "wall_ms": round(statistics.median(walls), 3),
    "before_main_ms": round(statistics.median(before), 3),
    "steps": rows,
}, open(out, "w"), indent=1)

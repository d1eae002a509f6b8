"""Run commands round-robin, N rounds, and write hyperfine-style JSON.

File-system state (dirty pages, journal, freed inodes) drifts while a
benchmark runs; hyperfine measures one command's runs back to back, so a
drift lands on whichever command came last. Alternating spreads it over all
of them alike.

Usage: alternate.py OUT.json ROUNDS NAME CMD [NAME CMD ...]   (CMD via sh -c)
"""
import json
import statistics
import subprocess
import sys
import time

out, rounds, pairs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
cmds = list(zip(pairs[::2], pairs[1::2]))
times = {name: [] for name, _ in cmds}
for r in range(rounds + 1):  # round 0 warms up
    for name, cmd in cmds:
        t = time.perf_counter()
        p = subprocess.run(["sh", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(f"alternate.py: `{name}` failed ({p.returncode}): {cmd}")
        if r > 0:
            times[name].append(dt)
json.dump({"results": [
    {"command": n, "median": statistics.median(t), "mean": statistics.mean(t),
     "stddev": statistics.pstdev(t), "times": t} for n, t in times.items()
]}, open(out, "w"))

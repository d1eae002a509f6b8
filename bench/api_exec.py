"""Warm exec through the control socket's JSON API (docs/api.md), from a
Python client, against native fork+exec from the same Python: N runs of
`true` each, alternating, medians in ms.

Usage: api_exec.py CONTROL_SOCK RUNS   -> {"api_ms": .., "native_ms": ..}
"""
import json
import os
import socket
import statistics
import sys
import time

sock, runs = sys.argv[1], int(sys.argv[2])


def api():
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(json.dumps({"op": "exec", "argv": ["true"], "capture": True}).encode())
    f = s.makefile()
    for line in f:
        ev = json.loads(line)
        if ev.get("event") in ("exited", "failed"):
            break
    else:
        sys.exit("api_exec.py: the connection closed before the command ended")
    if ev.get("event") != "exited" or ev.get("code") != 0:
        sys.exit(f"api_exec.py: {ev}")
    s.close()


def native():
    pid = os.fork()
    if pid == 0:
        try:
            os.execv("/bin/true", ["true"])
        finally:
            os._exit(127)
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0


a, n = [], []
for i in range(runs + 10):
    for f, acc in ((api, a), (native, n)):
        t = time.perf_counter()
        f()
        if i >= 10:
            acc.append((time.perf_counter() - t) * 1e3)
print(json.dumps({"api_ms": statistics.median(a), "native_ms": statistics.median(n)}))

"""Render bench/run's measurements: bench/out/report.md always, and
BENCHMARKS.md at the top of the repository for a full run.

Usage: report.py WORK_DIR REPO PADDOCK_BIN SRT_BIN_OR_EMPTY QUICK(0|1)
"""
import glob
import json
import os
import platform
import subprocess
import sys

WHY = {
    "cold start": """- **Cold start.** The profile below shows where it goes; against bubblewrap's
  whole start, paddock pays on top: its binary's start before `main` (exec,
  10 MB of pages, the dynamic loader, Rust start-up: about 1.7 ms, against a
  small C program's; `paddock --version` takes about 180 page faults against
  /bin/true's 49, a quarter of them the loader writing relocations into the
  position-independent binary's data, 14 % the heap; packed relative
  relocations save 5 of them, so only a non-PIE link, which gives up
  address randomisation, would remove that quarter), the planning on the host (policy layers, the isolation
  level, the filesystem plan: about 0.9 ms), more mounts (every protected
  path is a mount of its own: about 35 against bubblewrap's dozen, and each
  is torn down again when the sandbox ends), the command's own confinement
  (Landlock, capabilities, four seccomp filters, each checked; the two
  large ones, 153 and about 180 instructions, are written at build time as
  a tree of system call numbers, because the kernel compiles every
  instruction and runs each new filter once per system call number to
  cache what it always allows; see the profile) and
  the observed execve, which bubblewrap does not do. As root, paddock also
  puts the sandbox in cgroup v1 pids and memory groups (moving pid 1 waits
  for an RCU grace period, overlapped with the filesystem's build). In a
  large workspace the start's walk for protected names dominates (the
  second cold-start table); the sweep after the command reads only the
  folders that changed.""",
    "warm exec ≤": """- **Warm exec through the CLI.** The `paddock exec` client is a process of its
  own: `paddock --version` alone is the floor (row above), against a native
  `true`. The session side of an exec is what the JSON API row measures.""",
    "JSON API": """- **Warm exec through the JSON API.** See the warm exec profile: the command is
  forked by the session's exec template, takes its own Landlock domain and its
  own observing filter (its records are its exec's), and the supervisor sweeps
  the workspace for protected names before it answers.""",
    "≤ 8 MiB": """- **Idle session RSS.** RSS counts the paddock binary's pages in each of a
  session's three processes (supervisor, pid 1, exec template); they are shared
  with every other session and the page cache. The per-process table shows
  what is the session's own (anonymous) memory.""",
    "≤ 3 MiB": "",
    "of direct": """- **Inspected throughput against direct.** Inspection decrypts and
  encrypts again: every byte crosses TLS twice more, on the same two cores as
  the client and the server. On a machine whose direct loopback TLS runs near
  2 GB/s this is the bound; the tunnel row (no decryption) shows the proxy's
  own relay cost.""",
    "default level": """- **File-heavy workloads at the default audit level.** Every observed file
  change is a synchronous round trip to the sandbox's pid 1 (seccomp user
  notification; the only unprivileged way to attribute an action to a process),
  and every run includes the sandbox's start (see cold start; as root, the
  cgroup move too). Compile-like work stays within 10 %; creating thousands of
  small files, or many short runs, do not. The observer's own work per event
  is now small (its protected-name matcher is built once per sandbox, records
  reach the supervisor in batches at most 20 ms late, a caller's cwd is read
  through its `/proc/PID` folder kept open); what remains is mostly the
  kernel's notification round trip. `audit.level = "off"` or `"denied"`
  trades the record for speed.""",
}

work, repo, paddock, srt, quick = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"


def load(name):
    return json.load(open(os.path.join(work, name)))


def medians(name):
    return {r["command"]: r["median"] * 1000 for r in load(name)["results"]}


def ver(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception:
        return "unavailable"


def verdict(ok):
    return "met" if ok else "MISSED"


def mib(kb):
    return kb / 1024


cpu = "unknown"
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except Exception:
    pass
L = [
    "# paddock benchmarks",
    "",
    ("Smoke run (`bench/run --quick`): few repetitions, numbers are indicative." if quick
     else "Full run of `bench/run`; every figure below was measured in this one run."),
    "",
    f"- machine: {platform.machine()}, {os.cpu_count()} cores ({cpu}), kernel {platform.release()}",
    f"- paddock: {ver([paddock, '--version'])} (release build)",
    f"- bubblewrap: {ver(['bwrap', '--version'])}",
    f"- srt: {ver([srt, '--version']) if srt else 'not installed'} (npm @anthropic-ai/sandbox-runtime)",
    f"- hyperfine: {ver(['hyperfine', '--version'])}",
    "",
    "## Targets",
    "",
]
targets = []

# Cold start.
cold = medians("cold.json")
sec = ["## Cold start of `true`", "",
       "| command | median (ms) | vs native | vs bwrap |", "|---|---:|---:|---:|"]
for c, m in cold.items():
    sec.append(f"| {c} | {m:.2f} | {m / cold['native']:.1f}× | {m / cold['bwrap']:.2f}× |")
r = cold["paddock"] / cold["bwrap"]
targets.append(("cold start ≤ 1.0× bwrap (root)", f"{r:.2f}×", r <= 1.0))
if os.path.exists(os.path.join(work, "cold-user.json")):
    cu = medians("cold-user.json")
    ru = cu["paddock"] / cu["bwrap"]
    targets.append(("cold start ≤ 1.0× bwrap (unprivileged user)", f"{ru:.2f}×", ru <= 1.0))
if "srt" in cold:
    f = cold["srt"] / cold["paddock"]
    targets.append(("cold start ≥ 20× faster than srt", f"{f:.0f}× faster", f >= 20))


def vs_bwrap(title, ms):
    """A table of medians against bubblewrap's, under `title`."""
    rows = ["", title, "", "| command | median (ms) | vs bwrap |", "|---|---:|---:|"]
    return rows + [f"| {c_} | {m_:.2f} | {m_ / ms['bwrap']:.2f}× |" for c_, m_ in ms.items()]


if os.path.exists(os.path.join(work, "cold-user.json")):
    sec += vs_bwrap("As an unprivileged user (no cgroup v1 groups: desktop users are not root), same flags:", cu)
sec += ["", "bwrap runs with the flags closest to paddock's defaults (all namespaces, "
        "read-only system folders, fresh /proc, /dev, /tmp and home, the current folder "
        "read-write, die-with-parent, new session). paddock additionally applies Landlock, "
        "its seccomp deny list, the audit observer and writes a run record."]
if os.path.exists(os.path.join(work, "cold-big.json")):
    sec += vs_bwrap("In a workspace of 50,000 files in 2,550 folders, unchanged for a second before "
                    "(as a checkout is), same flags:", medians("cold-big.json"))
    sec += ["", "paddock walks the workspace before the start (every protected name in it is made "
            "read-only: about 18 µs a folder here, five system calls each) and once the sandbox "
            "is gone reads only the folders whose status changed (a snapshot of device, inode "
            "and ctime: one call a folder); bwrap does neither."]
if os.path.exists(os.path.join(work, "oci.json")):
    oc = medians("oci.json")
    sec += ["", "Container start under Debian's podman (`podman run --rm --network none IMAGE "
            "/bin/true`, a static busybox image), the same engine with each runtime:", "",
            "| runtime | median (ms) | vs runc |", "|---|---:|---:|"]
    sec += [f"| {c_} | {m_:.2f} | {m_ / oc['runc']:.2f}× |" for c_, m_ in oc.items()]
S = [sec]

# Warm exec.
warm = medians("warm.json")
w = warm["paddock exec"] / warm["native"]
targets.append(("warm exec ≤ 2× native (`paddock exec`)", f"{w:.1f}×", w <= 2))
api = load("api.json")
api_off = load("api-off.json")
wa = api["api_ms"] / api["native_ms"]
targets.append(("warm exec ≤ 1.5× native (JSON API, Python client)", f"{wa:.1f}×", wa <= 1.5))
S.append(["## Warm exec", "",
          f"`true` in a live session, {'30' if quick else '100'} runs each.", "",
          "| how | median (ms) | vs native |", "|---|---:|---:|",
          f"| native `/bin/true` (hyperfine) | {warm['native']:.2f} | 1.0× |",
          f"| `paddock exec S -- true` | {warm['paddock exec']:.2f} | {w:.1f}× |",
          f"| `paddock --version` (the client's start alone) | {warm['paddock --version']:.2f} | {warm['paddock --version'] / warm['native']:.1f}× |",
          f"| native fork+exec from Python | {api['native_ms']:.2f} | 1.0× |",
          f"| JSON API `exec` with `capture`, from the same Python (audit default) | {api['api_ms']:.2f} | {wa:.1f}× |",
          f"| the same, audit off | {api_off['api_ms']:.2f} | {api_off['api_ms'] / api_off['native_ms']:.1f}× |",
          "", "A session's commands are forked by its exec template, which took the steps that do not "
          "depend on the command once (docs/sandbox.md); each command still takes its own Landlock domain, "
          "its own observing filter and every check."])

# Memory.
m = load("sessions.json")
per = (m["total_kb"] - m["one_kb"]) / max(1, m["sessions"] - 1)
pss_per = m["total_pss_kb"] / max(1, m["sessions"])
targets.append(("idle live session ≤ 8 MiB RSS", f"{mib(m['one_kb']):.1f} MiB", m["one_kb"] <= 8 * 1024))
targets.append((f"idle live session ≤ 3 MiB PSS (each of {m['sessions']})", f"{mib(pss_per):.1f} MiB", pss_per <= 3 * 1024))
mem = ["## Memory", "",
       "| what | RSS |", "|---|---:|",
       f"| one idle live session (supervisor + sandbox), RSS | {mib(m['one_kb']):.1f} MiB |",
       f"| of which anonymous (not shared with anything) | {mib(m['one_anon_kb']):.1f} MiB |",
       f"| {m['sessions']} idle live sessions, RSS | {mib(m['total_kb']):.1f} MiB |",
       f"| {m['sessions']} idle live sessions, PSS (shared pages split) | {mib(m['total_pss_kb']):.1f} MiB |",
       f"| growth per session, RSS | {mib(per):.1f} MiB |",
       f"| growth per session, PSS | {mib(m['total_pss_kb'] / max(1, m['sessions'])):.1f} MiB |",
       f"| no session: paddock processes left | {m['left_after_rm']} |"]
if m.get("srt_kb"):
    mem.append(f"| srt running `sleep` (node + bwrap + proxies) | {mib(m['srt_kb']):.1f} MiB |")
mem += ["", "RSS counts every page a process maps, including the paddock binary's own code, which "
        "all sessions share with each other and with the page cache; PSS splits shared pages among "
        "their users and is closer to what each session really costs. Most of a session's RSS is "
        "that shared code (the binary is the supervisor and, forked, the sandbox's pid 1)."]
targets.append(("no session → zero processes", str(m["left_after_rm"]), m["left_after_rm"] == 0))
if os.path.exists(os.path.join(work, "one-session.json")):
    mem += ["", "One idle session, process by process:", "",
            "| process | threads | RSS | PSS | anonymous (its own) | shared clean | private clean |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for r_ in load("one-session.json"):
        mem.append(f"| {r_['comm']} | {r_['threads']} | {mib(r_['rss_kb']):.1f} MiB | {mib(r_['pss_kb']):.1f} MiB | "
                   f"{mib(r_['anon_kb']):.1f} MiB | {mib(r_['shared_clean_kb']):.1f} MiB | {mib(r_['private_clean_kb']):.1f} MiB |")
    mem += ["", "Anonymous memory is each process's heap, stacks and written data; the clean pages are "
            "the paddock binary's code and read-only data, mapped from one file by every paddock process "
            "(`paddock-init` is pid 1, `paddock-exec` the exec template; both are forks of the supervisor, "
            "so most of their pages are the supervisor's own, shared copy-on-write)."]
S.append(mem)

# Profiles.
for name, title, what in [("prof-cold.json", "Where a cold start's time goes", "`paddock run -- true`"),
                          ("prof-warm.json", "Where a warm exec's time goes", "`paddock exec S -- true`")]:
    if not os.path.exists(os.path.join(work, name)):
        continue
    pr = load(name)
    t = [f"## {title}", "",
         f"{what}, {pr['runs']} runs with `PADDOCK_TRACE_TIMING` (bench/profile.py): every paddock process "
         "marks the end of each step on one clock; medians since the client's `main`. "
         f"Median wall time {pr['wall_ms']:.2f} ms, of which {pr['before_main_ms']:.2f} ms before `main` "
         "(exec, dynamic loader, Rust start-up). Marks cost a little themselves.", "",
         "| step ends | at (ms) | since the previous (ms) |", "|---|---:|---:|"]
    for r_ in pr["steps"]:
        t.append(f"| {r_['step']} | {r_['at_ms']:.2f} | {r_['delta_ms']:.2f} |")
    S.append(t)

# Proxy.
p = load("proxy.json")
d = p["direct"]
px = ["## Egress proxy", "",
      "A Python client makes requests on fresh TLS connections to a local HTTPS server "
      "(latency), then one large download (throughput).", "",
      "| path | median latency (ms) | added (ms) | p90 (ms) | throughput (MiB/s) | vs direct |",
      "|---|---:|---:|---:|---:|---:|"]
names = [("direct", "direct"), ("plain", "paddock, tunnel (`inspect = false`)"), ("inspected", "paddock, inspected HTTP/1.1 (the default)")]
if p.get("viaproxy") and p.get("transparent"):
    names.append(("viaproxy", "paddock, inspected, to the host's address through the proxy variables"))
    names.append(("transparent", "paddock, inspected, to the host's address with no proxy variables (TUN, user-space stack)"))
if p.get("srt"):
    names.append(("srt", "srt's proxy, CONNECT"))
for k, label in names:
    x = p[k]
    px.append(f"| {label} | {x['median_ms']:.2f} | {x['median_ms'] - d['median_ms']:+.2f} | {x['p90_ms']:.2f} | "
              f"{x['mib_per_s']:.0f} | {x['mib_per_s'] / d['mib_per_s']:.0%} |")
ins = p["inspected"]["mib_per_s"] / d["mib_per_s"]
targets.append(("proxy inspected throughput ≥ 50% of direct", f"{ins:.0%}", ins >= 0.5))
if p.get("viaproxy") and p.get("transparent"):
    # The same inspection either way: what the TUN device and the
    # user-space stack add is the difference from the proxy-variable path.
    tr = p["transparent"]["mib_per_s"] / p["viaproxy"]["mib_per_s"]
    targets.append(("transparent path throughput ≥ 75% of the proxy-variable path", f"{tr:.0%}", tr >= 0.75))
    added = p["transparent"]["median_ms"] - p["viaproxy"]["median_ms"]
    targets.append(("transparent path latency ≤ proxy path + 1 ms", f"{added:+.2f} ms", added <= 1.0))
if p.get("direct_h2") and p.get("inspected_h2"):
    dh, ih = p["direct_h2"], p["inspected_h2"]
    px += ["", "HTTP/2: curl --http2 against Node's http2 server, a fresh connection (and a fresh curl) "
           "per request, then three large downloads (their median); paddock speaks h2 with both sides.", "",
           "| path | HTTP version | median latency (ms) | added (ms) | p90 (ms) | throughput (MiB/s) | vs direct |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for x, label in [(dh, "direct"), (ih, "paddock, inspected HTTP/2")]:
        px.append(f"| {label} | {x.get('http_version', '?')} | {x['median_ms']:.2f} | {x['median_ms'] - dh['median_ms']:+.2f} | "
                  f"{x['p90_ms']:.2f} | {x['mib_per_s']:.0f} | {x['mib_per_s'] / dh['mib_per_s']:.0%} |")
    h2r = ih["mib_per_s"] / dh["mib_per_s"]
    targets.append(("proxy inspected HTTP/2 throughput ≥ 50% of direct", f"{h2r:.0%}", h2r >= 0.5))
px += ["", "Client, server and proxy share the machine's cores, so throughput figures are noisy."]
S.append(px)

# File-heavy workloads.
fw = ["## File-heavy workloads and audit levels", "",
      "Each workload runs natively and under `paddock run` at each audit level (the default is "
      "`writes`), in the same folder on the same disk, the variants alternating round by round "
      "(bench/alternate.py) so that the disk's drift does not favour one. Medians in ms; ratio to "
      "native in parentheses.", "",
      "| workload | native | off | denied | writes (default) | all |", "|---|---:|---:|---:|---:|---:|"]
labels = {
    "unpack_grep": "unpack 2000 text files, `grep -r`, delete",
    "git_status": "10 × `git status` on a 5000-file repository",
    "git_commit": "unpack 2000 files, `git init`, `add`, `commit`",
    "compile": "unpack 60 C files, `cc -O1 -c` each",
}
for w_, label in labels.items():
    res = medians(f"audit-{w_}.json")
    n = res["native"]
    cells = [f"{n:.0f}"] + [f"{res[l]:.0f} ({res[l] / n:.2f}×)" for l in ["off", "denied", "writes", "all"]]
    fw.append(f"| {label} | " + " | ".join(cells) + " |")
    rw = res["writes"] / n
    targets.append((f"{label}: default level ≤ 1.1× native", f"{rw:.2f}×", rw <= 1.1))
ev = load("audit-events.json")["git_commit_events"]
fw += ["", f"One default-level run of the git commit workload records {ev} audit events.", "",
       "Each run includes starting the sandbox (see cold start). Why write-heavy work costs more: every observed call (an open for writing, unlink, rename, "
       "mkdir, exec, connect) is a round trip to the sandbox's pid 1 (seccomp user notification): pid 1 "
       "reads the path from the caller's memory, resolves it against the caller's cwd, decides, answers "
       "(three ioctls, a context switch each way) and queues the record. On tmpfs, where the disk adds "
       "nothing, 24,000 creates and deletes cost about 23 µs each on this machine (about 55 µs before "
       "the observer's matcher was built once per sandbox and its records batched); reads are not "
       "observed below level `all`. Workloads that create thousands of small files pay it thousands of "
       "times; `off` removes the observer entirely. See docs/audit.md."]
S.append(fw)

# Disk.
dk = load("disk.json")
disk = ["## Disk footprint", "", "| what | size |", "|---|---:|",
        f"| paddock binary (release: LTO, stripped, panic=abort) | {dk['binary_bytes'] / 2**20:.1f} MiB |",
        f"| one session's state after one command (record, summary, audit trail) | {m['state_one_bytes'] / 1024:.0f} KiB |"]
if dk.get("deb_bytes"):
    disk.append(f"| paddock .deb (binary, completions, man pages, AppArmor profile; xz) | {dk['deb_bytes'] / 2**20:.1f} MiB |")
if dk.get("srt_bytes"):
    disk.append(f"| srt's npm install (without bubblewrap, socat, ripgrep, Node) | {dk['srt_bytes'] / 2**20:.1f} MiB |")
S.append(disk)

# Criterion.
crit = ["## In-process figures (criterion)", "", "| benchmark | median |", "|---|---:|"]
for est in sorted(glob.glob(os.path.join(repo, "target/criterion/*/new/estimates.json"))):
    name = json.load(open(os.path.join(os.path.dirname(est), "benchmark.json")))["title"]
    ns = json.load(open(est))["median"]["point_estimate"]
    crit.append(f"| {name} | {ns / 1000:.2f} µs |" if ns >= 1000 else f"| {name} | {ns:.0f} ns |")
S.append(crit)

L += ["| target | measured | |", "|---|---:|---|"]
L += [f"| {t} | {v} | {verdict(ok)} |" for t, v, ok in targets]
missed = [t for t, _, ok in targets if not ok]
reasons = [text for key, text in WHY.items() if text and any(key in t for t in missed)]
if reasons:
    L += ["", "Where a target is missed, why:", ""] + reasons
for s in S:
    L += [""] + s
text = "\n".join(L) + "\n"
os.makedirs(os.path.join(repo, "bench/out"), exist_ok=True)
open(os.path.join(repo, "bench/out/report.md"), "w").write(text)
if not quick:
    open(os.path.join(repo, "BENCHMARKS.md"), "w").write(text)
print(text)

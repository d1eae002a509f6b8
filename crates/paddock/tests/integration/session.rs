//! Sessions: lazy start, warm execs in one sandbox, idle timeout, crash
//! safety and garbage collection, contained fork bombs.

use std::process::Output;
use std::time::Duration;

use crate::util::*;

pub(crate) struct S {
    pub(crate) ws: Ws,
}

impl S {
    pub(crate) fn new() -> S {
        S { ws: Ws::new() }
    }
    pub(crate) fn paddock(&self, args: &[&str]) -> Output {
        self.ws
            .paddock()
            .env("PADDOCK_HOME", self.ws.root.join("state"))
            .args(args)
            .output()
            .unwrap()
    }
    /// `paddock ARGS` as [`S::paddock`], and with `no_landlock` as on a
    /// host without Landlock (level landlock-unavailable).
    pub(crate) fn paddock_at(&self, no_landlock: bool, args: &[&str]) -> Output {
        let mut c = self.ws.paddock();
        c.env("PADDOCK_HOME", self.ws.root.join("state"));
        if no_landlock {
            c.env("PADDOCK_TEST_NO_LANDLOCK", "1");
        }
        c.args(args).output().unwrap()
    }
    pub(crate) fn start(&self, extra: &[&str]) -> String {
        let mut args = vec!["session", "start"];
        args.extend(extra);
        let o = self.paddock(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    }
    pub(crate) fn exec(&self, id: &str, script: &str) -> Output {
        self.paddock(&["exec", id, "--", "sh", "-c", script])
    }
    fn list(&self) -> serde_json::Value {
        serde_json::from_slice(&self.paddock(&["session", "list", "--json"]).stdout).unwrap()
    }
    pub(crate) fn state(&self, id: &str) -> String {
        self.list()
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }
    fn supervisor(&self, id: &str) -> Option<u32> {
        self.list()
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .and_then(|s| s["supervisor_pid"].as_u64())
            .and_then(|p| u32::try_from(p).ok())
    }
    /// A running session with a background process tagged `tag`: (id,
    /// supervisor pid, the marker to look for on the host).
    fn with_background_process(&self, tag: &str) -> (String, u32, String) {
        let id = self.start(&[]);
        let marker = format!("{tag}-{}", std::process::id());
        self.exec(
            &id,
            &format!("sh -c 'sleep 300; true' {marker} >/dev/null 2>&1 & echo started"),
        );
        assert!(wait_until(Duration::from_secs(5), || !host_processes_with(
            &marker
        )
        .is_empty()));
        let sup = self
            .supervisor(&id)
            .expect("running session has a supervisor");
        (id, sup, marker)
    }

    pub(crate) fn policy(&self, text: &str) -> String {
        let p = self.ws.root.join("policy.toml");
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }
}

impl Drop for S {
    fn drop(&mut self) {
        for s in self.list().as_array().cloned().unwrap_or_default() {
            if let Some(id) = s["id"].as_str() {
                let _ = self.paddock(&["session", "rm", id]);
            }
        }
    }
}

#[test]
fn start_creates_no_process_first_exec_starts_the_sandbox_second_reuses_it() {
    let s = S::new();
    let id = s.start(&[]);
    assert_eq!(s.state(&id), "created");
    assert!(
        host_processes_with(&format!("__supervise {id}")).is_empty(),
        "session start must start nothing"
    );
    let a = s.exec(
        &id,
        "readlink /proc/self/ns/pid; sleep 300 >/dev/null 2>&1 & echo bg",
    );
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(s.state(&id), "running");
    let b = s.exec(&id, "readlink /proc/self/ns/pid; cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -o 'sleep 300' | head -1");
    let (a, b) = (stdout(&a), stdout(&b));
    let ns_a = a.lines().next().unwrap();
    let ns_b = b.lines().next().unwrap();
    assert!(ns_a.starts_with("pid:["), "{a}");
    assert_eq!(ns_a, ns_b, "the second exec runs in the same sandbox");
    assert!(
        b.contains("sleep 300"),
        "the background process of the first exec is visible: {b}"
    );
    // Host tools can attribute sandbox processes to the session.
    assert_eq!(stdout(&s.exec(&id, "echo $PADDOCK_SESSION")).trim(), id);
    // /tmp is shared between execs too.
    s.exec(&id, "echo kept > /tmp/note");
    assert_eq!(stdout(&s.exec(&id, "cat /tmp/note")).trim(), "kept");
}

#[test]
fn exec_exit_codes_and_signals() {
    let s = S::new();
    let id = s.start(&[]);
    assert_eq!(s.exec(&id, "exit 7").status.code(), Some(7));
    let o = s.paddock(&["exec", &id, "--", "no-such-command-xyz"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("EXEC_NOT_FOUND"), "{}", stderr(&o));
    // A signal sent to the client reaches the command.
    assert_eq!(term_on_first_byte(&s, &id), Some(9));
}

/// `paddock exec` of a command that exits 9 on SIGTERM, sent SIGTERM as
/// soon as the first byte of its output arrives: the client's exit code.
fn term_on_first_byte(s: &S, id: &str) -> Option<i32> {
    let mut child =
        s.ws.paddock()
            .env("PADDOCK_HOME", s.ws.root.join("state"))
            .args(["exec", id, "--", "sh", "-c", SIGNALLED])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let mut buf = [0u8; 1];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut buf).unwrap();
    signal(child.id(), "TERM");
    child.wait().unwrap().code()
}

/// Prints `r`, then waits for SIGTERM and exits 9.
const SIGNALLED: &str = "trap 'exit 9' TERM; echo r; while :; do sleep 0.05; done";

/// The command's output reaches the caller straight from the sandbox, so
/// a caller may signal as soon as it sees the first byte, before the
/// client has read the supervisor's first answer. The signal is the
/// command's all the same, never a kill of the client.
#[test]
fn a_signal_sent_on_the_first_output_byte_reaches_the_command() {
    let s = S::new();
    let id = s.start(&[]);
    for round in 0..8 {
        assert_eq!(term_on_first_byte(&s, &id), Some(9), "round {round}");
    }
}

/// The same through a terminal: the client relays it with threads of its
/// own, none of which may take the signal's default action.
#[test]
fn a_signal_reaches_the_command_of_an_exec_on_a_terminal() {
    let s = S::new();
    let id = s.start(&[]);
    let driver = r#"
import os, pty, signal, sys
for round in range(5):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.argv[1], sys.argv[1:])
    seen = b""
    while b"r" not in seen:
        seen += os.read(fd, 100)
    os.kill(pid, signal.SIGTERM)
    while True:
        try:
            if not os.read(fd, 100):
                break
        except OSError:
            break
    _, status = os.waitpid(pid, 0)
    print(round, os.waitstatus_to_exitcode(status), flush=True)
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(driver)
        .arg(paddock_bin())
        .args(["exec", &id, "--", "sh", "-c", SIGNALLED])
        .current_dir(&s.ws.proj)
        .env("HOME", &s.ws.home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("PADDOCK_HOME", s.ws.root.join("state"))
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "0 9\n1 9\n2 9\n3 9\n4 9\n", "{}", stderr(&o));
}

#[test]
fn idle_timeout_ends_the_sandbox_and_keeps_the_record() {
    let s = S::new();
    let p = s.policy("version = 1\n[session]\nidle_timeout = \"1s\"\n");
    let id = s.start(&["--policy", &p]);
    let o = s.exec(&id, "echo hi");
    assert_eq!(stdout(&o).trim(), "hi", "{}", stderr(&o));
    assert!(
        wait_until(Duration::from_secs(10), || s.state(&id) == "stopped"),
        "still {}",
        s.state(&id)
    );
    assert!(host_processes_with(&format!("__supervise {id}")).is_empty());
    // The next exec starts a fresh sandbox.
    assert_eq!(stdout(&s.exec(&id, "echo again")).trim(), "again");
}

/// kill -9 of the supervisor: its sandbox dies with it (pid 1's parent-death
/// signal), the session is detected as dead, and gc removes it; a dry run
/// lists exactly what the real run removes.
#[test]
fn killed_supervisor_leaves_no_process_and_gc_removes_the_session() {
    let s = S::new();
    let (id, sup, marker) = s.with_background_process("paddock-session-marker");
    signal(sup, "KILL");
    assert!(
        wait_until(Duration::from_secs(5), || host_processes_with(&marker)
            .is_empty()),
        "left behind: {:?}",
        host_processes_with(&marker)
    );
    assert_eq!(s.state(&id), "dead");
    let dry: serde_json::Value =
        serde_json::from_slice(&s.paddock(&["gc", "--dry-run", "--json"]).stdout).unwrap();
    let real: serde_json::Value =
        serde_json::from_slice(&s.paddock(&["gc", "--json"]).stdout).unwrap();
    assert_eq!(dry["removed"], real["removed"]);
    assert!(dry["removed"].to_string().contains(&id), "{dry}");
    assert!(!s.ws.root.join("state/sessions").join(&id).exists());
}

/// SIGTERM to the supervisor (kill, logout, a service manager) stops the
/// session cleanly: record stopped, sandbox gone, the stop in the trail.
#[test]
fn terminated_supervisor_stops_the_session_cleanly() {
    let s = S::new();
    let (id, sup, marker) = s.with_background_process("paddock-term-marker");
    signal(sup, "TERM");
    assert!(
        wait_until(Duration::from_secs(10), || s.state(&id) == "stopped"),
        "state: {}",
        s.state(&id)
    );
    assert!(wait_until(Duration::from_secs(5), || host_processes_with(
        &marker
    )
    .is_empty()));
    let o = s.paddock(&["audit", "tail", "--session", &id, "--json"]);
    let last: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "session.stop");
    assert_eq!(last["data"]["reason"], "terminated by a signal");
}

/// Fork bomb (the classic `:(){ :|:& };:` denial of service): the pids
/// limit (RLIMIT_NPROC, counted in the sandbox's own user namespace) stops
/// it inside; the host keeps spawning processes.
#[test]
fn fork_bomb_is_contained() {
    let s = S::new();
    let p = s.policy("version = 1\n[process.limits]\npids = 64\n");
    // The bomb runs in a subshell that dies when fork fails; the count that
    // follows uses shell builtins only (no fork is left to spare).
    let script = "( i=0; while [ $i -lt 5000 ]; do sleep 20 >/dev/null 2>&1 & i=$((i+1)); done ) 2>/dev/null; \
                  n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n";
    let o =
        s.ws.paddock()
            .args(["run", "--policy", &p, "--", "sh", "-c", script])
            .output()
            .unwrap();
    let n: u32 = stdout(&o).trim().parse().unwrap_or(u32::MAX);
    assert!(n <= 64, "the sandbox holds {n} processes: {}", stderr(&o));
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success(),
        "the host still forks"
    );
    // In a session too.
    let id = s.start(&["--policy", &p]);
    let o = s.exec(&id, script);
    let n: u32 = stdout(&o).trim().parse().unwrap_or(u32::MAX);
    assert!(
        n < 64,
        "the bomb made {n} processes in a session: {}",
        stderr(&o)
    );
}

#[test]
fn session_start_validates_and_creates_nothing_on_error() {
    let s = S::new();
    let o = s.paddock(&["session", "start", "--mount", "/nonexistent-xyz:ro"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("MOUNT_SOURCE_MISSING"),
        "{}",
        stderr(&o)
    );
    assert_eq!(s.list().as_array().unwrap().len(), 0);
    let o = s.paddock(&["exec", "nope", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("SESSION_NOT_FOUND"));
}

/// A `cow` workspace in a session: the real folder is untouched while the
/// agent works; `diff` shows the change set, `apply` writes it — refusing a
/// file the host changed meanwhile — and `discard` throws it away.
#[test]
fn cow_diff_apply_discard_with_a_host_side_conflict() {
    let s = S::new();
    let p = &s.ws.proj;
    std::fs::write(p.join("keep.txt"), "original\n").unwrap();
    std::fs::write(p.join("contested.txt"), "v1\n").unwrap();
    std::fs::write(p.join("old.txt"), "bye\n").unwrap();
    let id = s.start(&["--mount", ".:cow"]);
    let o = s.exec(&id, "echo edited > keep.txt; echo sandbox > contested.txt; rm old.txt; mkdir -p new/dir; echo fresh > new/dir/f.txt");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(p.join("keep.txt")).unwrap(),
        "original\n",
        "cow: untouched"
    );
    assert!(p.join("old.txt").exists() && !p.join("new").exists());

    let stat = stdout(&s.paddock(&["diff", &id, "--stat"]));
    for line in ["M ", "D ", "A "] {
        assert!(stat.contains(line), "{stat}");
    }
    let d = stdout(&s.paddock(&["diff", &id]));
    assert!(
        d.contains("-original") && d.contains("+edited") && d.contains("+fresh"),
        "{d}"
    );

    // Apply refuses while the sandbox runs.
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("SESSION_RUNNING"));
    assert_eq!(s.paddock(&["session", "stop", &id]).status.code(), Some(0));

    // The host edits one file meanwhile: that one is refused, the rest applied.
    std::fs::write(p.join("contested.txt"), "host edit\n").unwrap();
    let o = s.paddock(&["apply", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("APPLY_CONFLICT") && stderr(&o).contains("contested.txt"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(p.join("keep.txt")).unwrap(),
        "edited\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.join("new/dir/f.txt")).unwrap(),
        "fresh\n"
    );
    assert!(!p.join("old.txt").exists());
    assert_eq!(
        std::fs::read_to_string(p.join("contested.txt")).unwrap(),
        "host edit\n",
        "nothing lost"
    );

    // What is left is only the refused file; discard drops it.
    let stat = stdout(&s.paddock(&["diff", &id, "--stat"]));
    assert!(
        stat.contains("1 change(s)") && stat.contains("contested.txt"),
        "{stat}"
    );
    assert_eq!(s.paddock(&["discard", &id]).status.code(), Some(0));
    assert!(stdout(&s.paddock(&["diff", &id, "--stat"])).contains("0 change(s)"));
    assert_eq!(
        std::fs::read_to_string(p.join("contested.txt")).unwrap(),
        "host edit\n"
    );
}

/// `export` copies an artifact out of a live sandbox (here from its private
/// /tmp, which the host cannot see), and never overwrites.
#[test]
fn export_copies_artifacts_out_of_a_live_session() {
    let s = S::new();
    let id = s.start(&[]);
    s.exec(
        &id,
        "mkdir -p /tmp/out/sub && echo built > /tmp/out/sub/artifact && echo one > /tmp/single",
    );
    let dest = s.ws.outside.join("exported");
    std::fs::create_dir(&dest).unwrap();
    let o = s.paddock(&["export", &id, "/tmp/out", dest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(dest.join("out/sub/artifact")).unwrap(),
        "built\n"
    );
    let file = s.ws.outside.join("single.txt");
    assert_eq!(
        s.paddock(&["export", &id, "/tmp/single", file.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "one\n");
    let o = s.paddock(&["export", &id, "/tmp/single", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("EXPORT_EXISTS"));
}

/// `paddock exec` from a terminal gives the command a terminal of its own,
/// as its controlling terminal (foreground process group: `+` in ps), so
/// shells get job control; the user's own terminal is relayed, never passed
/// into the sandbox.
#[test]
fn exec_from_a_terminal_gets_a_controlling_terminal() {
    let s = S::new();
    let id = s.start(&[]);
    let cmd = format!(
        "{} exec {id} -- sh -c 'test -t 0 && echo IS-A-TTY; ps -o stat= -p $$'",
        paddock_bin().display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(&s.ws.proj)
        .env("HOME", &s.ws.home)
        .env("PADDOCK_HOME", s.ws.root.join("state"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(out.contains("IS-A-TTY"), "{out} {}", stderr(&o));
    assert!(
        out.lines()
            .any(|l| l.trim().starts_with('S') && l.contains('+')),
        "not the foreground of its terminal: {out}"
    );
}

/// Every command and its outcome is an audit event with session identity,
/// the policy hash and the caller's tool call id; refusals carry their
/// reason code, and `audit tail --denied` shows only those.
#[test]
fn execs_are_audited_with_tool_call_ids_and_reason_codes() {
    let s = S::new();
    let id = s.start(&[]);
    let o =
        s.ws.paddock()
            .env("PADDOCK_HOME", s.ws.root.join("state"))
            .env("PADDOCK_AGENT", "test-agent")
            .args([
                "exec",
                "--tool-call-id",
                "toolu_01",
                &id,
                "--",
                "sh",
                "-c",
                "exit 3",
            ])
            .output()
            .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        s.paddock(&["exec", &id, "--", "no-such-command-xyz"])
            .status
            .code(),
        Some(127)
    );
    let o = s.paddock(&["audit", "tail", "--session", &id, "--json"]);
    let evs: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = evs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["session.start", "exec.start", "exec.exit", "exec.exit"],
        "{evs:?}"
    );
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e["seq"], i + 1);
        assert_eq!(e["session"], id.as_str());
        assert!(e["policy_hash"].as_str().unwrap().starts_with("sha256:"));
    }
    assert_eq!(evs[1]["tool_call_id"], "toolu_01");
    assert_eq!(evs[1]["agent"], "test-agent");
    assert_eq!(evs[1]["data"]["argv"][0], "sh");
    assert!(evs[1]["data"]["pid"].as_i64().unwrap() > 1);
    assert_eq!(evs[2]["data"]["exit_code"], 3);
    assert_eq!(evs[3]["reason_code"], "EXEC_NOT_FOUND");
    let o = s.paddock(&["audit", "tail", "--session", &id, "--json", "--denied"]);
    let out = stdout(&o);
    let denied: Vec<&str> = out.lines().collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(denied[0].contains("EXEC_NOT_FOUND"));
}

/// Processes on the host whose environment names this session (the
/// sandbox's commands carry PADDOCK_SESSION) or whose command line is its
/// supervisor.
fn processes_of(id: &str) -> Vec<u32> {
    let mut out = host_processes_with(&format!("__supervise\0{id}"));
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env
            .split(|&b| b == 0)
            .any(|v| v == format!("PADDOCK_SESSION={id}").as_bytes())
        {
            out.push(pid);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// 20 parallel first `exec`s on a fresh session: one supervisor starts,
/// every exec runs in it (none fails with "Address already in use"), and
/// after parallel `session stop`s nothing of the session is left running.
#[test]
fn parallel_first_execs_start_one_supervisor_and_stop_leaves_nothing() {
    let s = S::new();
    let id = s.start(&[]);
    let outs: Vec<Output> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..20)
            .map(|i| {
                let s = &s;
                let id = &id;
                sc.spawn(move || {
                    s.paddock(&[
                        "exec",
                        id,
                        "--",
                        "sh",
                        "-c",
                        &format!("echo run-{i}; echo $PPID"),
                    ])
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(o.status.code(), Some(0), "exec {i}: {}", stderr(o));
        assert!(stdout(o).contains(&format!("run-{i}")));
    }
    // The supervisor and the sandbox's pid 1 (a clone of it) share the
    // command line: count those whose parent is not one of them.
    let all = host_processes_with(&format!("__supervise\0{id}"));
    let ppid = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u32>()
                    .ok()
            })
    };
    let sups: Vec<u32> = all
        .iter()
        .copied()
        .filter(|p| ppid(*p).is_none_or(|pp| !all.contains(&pp)))
        .collect();
    assert_eq!(sups.len(), 1, "one supervisor: {sups:?} of {all:?}");
    let stops: Vec<Output> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|_| sc.spawn(|| s.paddock(&["session", "stop", &id])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &stops {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    }
    assert!(
        wait_until(Duration::from_secs(10), || processes_of(&id).is_empty()),
        "left running: {:?}",
        processes_of(&id)
    );
    assert_eq!(s.state(&id), "stopped");
}

/// What a command's confinement is judged by: each probe's exit code and
/// output. `outside` is a host folder no mount shows.
fn confinement_battery(outside: &std::path::Path) -> Vec<Vec<String>> {
    let planted = outside.join("planted").display().to_string();
    [
        vec!["status"],
        vec!["limits"],
        vec!["unshare-user"],
        vec!["unshare-mount"],
        vec!["mount-tmpfs", "/tmp"],
        vec!["umount", "/usr"],
        vec!["kill", "1", "15"],
        vec!["ptrace", "1"],
        vec!["bpf"],
        vec!["keyctl"],
        vec!["userfaultfd"],
        vec!["shmget"],
        vec!["tiocsti"],
        vec!["udp"],
        vec!["connect", "10.0.0.1:80"],
        vec!["read", "/etc/shadow"],
        vec!["write", "/usr/bin/paddock-planted"],
        vec!["write", planted.as_str()],
        vec!["interfaces"],
    ]
    .into_iter()
    .map(|a| a.into_iter().map(str::to_string).collect())
    .collect()
}

/// A session's commands are forked by its exec template, which took part
/// of the confinement steps once: each command must end up exactly as
/// confined as one `paddock run` starts from scratch. Every probe of the
/// battery gives the same answer both ways, at audit levels off and
/// writes, with and without Landlock; the template is really what started
/// them; a command can neither signal nor trace it; and killed, it is
/// replaced at the next exec.
#[test]
fn a_command_from_the_exec_template_is_confined_like_a_cold_one() {
    let probe = probe_bin();
    let mount = format!("{}:ro", probe.display());
    let probe_s = probe.display().to_string();
    for (no_landlock, audit) in [(false, "writes"), (false, "off"), (true, "writes")] {
        let s = S::new();
        let pol = s.policy(&format!("version = 1\n[audit]\nlevel = \"{audit}\"\n"));
        let pd = |args: &[&str]| s.paddock_at(no_landlock, args);
        let o = pd(&["session", "start", "--policy", &pol, "--mount", &mount]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let id = stdout(&o).trim().to_string();
        for action in confinement_battery(&s.ws.outside) {
            // Without Landlock's signal scope a command can signal pid 1:
            // `run` forwards a SIGTERM to the command, a session ends. Not
            // a property of how the command was forked.
            if no_landlock && action[0] == "kill" {
                continue;
            }
            let mut cold = vec!["run", "--policy", &pol, "--mount", &mount, "--", &probe_s];
            cold.extend(action.iter().map(String::as_str));
            let mut warm = vec!["exec", &id, "--", &probe_s];
            warm.extend(action.iter().map(String::as_str));
            let (c, w) = (pd(&cold), pd(&warm));
            assert_eq!(
                (c.status.code(), stdout(&c)),
                (w.status.code(), stdout(&w)),
                "{action:?} (audit {audit}, landlock {}): cold stderr {} / warm stderr {}",
                !no_landlock,
                stderr(&c),
                stderr(&w)
            );
        }
        assert!(!s.ws.outside.join("planted").exists());

        // The template exists, in the sandbox and on the host.
        let find = "for f in /proc/[0-9]*; do [ \"$(cat $f/comm 2>/dev/null)\" = paddock-exec ] && echo ${f#/proc/}; done";
        let o = pd(&["exec", &id, "--", "sh", "-c", find]);
        let inside = stdout(&o).trim().to_string();
        assert!(!inside.is_empty() && !inside.contains('\n'), "{inside:?}");
        // A command cannot end it (Landlock's signal scope), at full level.
        let o = pd(&["exec", &id, "--", &probe_s, "kill", &inside, "9"]);
        if !no_landlock {
            assert!(stdout(&o).starts_with("err EPERM"), "{}", stdout(&o));
            let o = pd(&["exec", &id, "--", &probe_s, "ptrace", &inside]);
            assert!(stdout(&o).starts_with("err E"), "{}", stdout(&o));
        }
        // Killed from outside, it is replaced and execs go on.
        // On the host: below the session's supervisor (as any user may
        // see it: it is non-dumpable, so its environment is not readable).
        let sup = s.supervisor(&id).expect("a running supervisor");
        let host: Vec<u32> = descendants(sup)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "paddock-exec")
            })
            .collect();
        if let [pid] = host[..] {
            signal(pid, "KILL");
            let o = pd(&["exec", &id, "--", "sh", "-c", "echo again"]);
            assert_eq!(stdout(&o).trim(), "again", "{}", stderr(&o));
            let o = pd(&["exec", &id, "--", "sh", "-c", find]);
            let again = stdout(&o).trim().to_string();
            assert!(
                !again.is_empty() && again != inside,
                "{again:?} after {inside:?}"
            );
        } else {
            panic!("one template on the host expected: {host:?}");
        }
        let _ = pd(&["session", "rm", &id]);
    }
}

/// Every process below `pid` (through /proc/PID/task/TID/children).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        for t in std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids
                .split_whitespace()
                .filter_map(|k| k.parse::<u32>().ok())
            {
                out.push(k);
                stack.push(k);
            }
        }
    }
    out
}

/// Without Landlock's signal scope a command can send pid 1 a SIGTERM;
/// pid 1 ends the session only for one from outside the sandbox's pid
/// namespace (the supervisor), so one command cannot end the session
/// under the next: the next exec runs in the same sandbox.
#[test]
fn a_command_cannot_end_its_session_by_signalling_pid_1() {
    let s = S::new();
    let pd = |args: &[&str]| s.paddock_at(true, args);
    let o = pd(&["session", "start"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let o = pd(&[
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "echo $$ > /tmp/first; kill -TERM 1; echo sent=$?",
    ]);
    assert!(stdout(&o).contains("sent="), "{}{}", stdout(&o), stderr(&o));
    let o = pd(&[
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "cat /tmp/first >/dev/null && echo same-session",
    ]);
    assert_eq!(stdout(&o), "same-session\n", "{}", stderr(&o));
    let o = pd(&["session", "stop", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

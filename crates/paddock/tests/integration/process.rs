//! The process boundary: pid namespace, signals, lifetime, exit codes.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// Reconnaissance of host processes (reading other programs' command
/// lines and environments leaks secrets): /proc lists only the sandbox.
#[test]
fn proc_shows_only_sandbox_processes() {
    let ws = Ws::new();
    let o = ws.probe(&[], &["pids"]);
    assert_ok(&o);
    let out = stdout(&o);
    let pids: Vec<&str> = out.lines().filter(|l| *l != "ok").collect();
    assert!(pids.len() <= 2, "only init and the probe: {pids:?}");
    assert!(pids.iter().any(|l| l.starts_with("1 ")), "{pids:?}");
    let me = std::env::current_exe().unwrap();
    let me = me.file_name().unwrap().to_string_lossy();
    assert!(
        !out.contains(me.as_ref()),
        "the test runner is visible: {out}"
    );
}

/// Killing or tracing host processes (an agent "fixing" a stuck build by
/// killing everything, or attaching to a credential helper): host pids do
/// not exist inside, `kill -1` reaches only the sandbox, and paddock's own
/// pid 1 can be neither signalled (Landlock signal scope) nor ptraced
/// (seccomp).
#[test]
fn host_processes_cannot_be_signalled_or_ptraced() {
    let ws = Ws::new();
    let mut victim = Command::new("sleep").arg("60").spawn().unwrap();
    let vpid = victim.id().to_string();
    assert_refused(&ws.probe(&[], &["kill", &vpid, "9"]), "ESRCH");
    assert_refused(&ws.probe(&[], &["ptrace", &vpid]), "EPERM");
    assert_refused(&ws.probe(&[], &["kill", "1", "9"]), "EPERM");
    assert_refused(&ws.probe(&[], &["ptrace", "1"]), "EPERM");
    let o = ws.probe(&[], &["kill", "-1", "9"]);
    let _ = o;
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the host process survived kill -1"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
}

/// A sandbox that outlives its supervisor is a process nobody watches
/// (bubblewrap's --die-with-parent exists for this). SIGKILL to paddock
/// takes every sandbox process with it, daemonised ones included.
#[test]
fn sigkill_of_paddock_leaves_no_sandbox_process() {
    let ws = Ws::new();
    let marker = format!("paddock-orphan-marker-{}", std::process::id());
    // A background child, a daemon in its own session, and the foreground
    // shell; each carries the marker as its $0 so the host can find it.
    let script = format!(
        "sh -c 'sleep 300; true' {marker}-bg & setsid sh -c 'sleep 301; true' {marker}-daemon & sleep 302; true"
    );
    let mut child = ws
        .paddock()
        .args(["run", "--", "sh", "-c", &script, &format!("{marker}-main")])
        .spawn()
        .unwrap();
    // paddock, pid 1 (same command line), main, bg and daemon.
    assert!(
        wait_until(Duration::from_secs(10), || host_processes_with(&marker)
            .len()
            >= 5),
        "sandbox processes did not start: {:?}",
        host_processes_with(&marker)
    );
    signal(child.id(), "KILL");
    child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || host_processes_with(&marker)
            .is_empty()),
        "left behind: {:?}",
        host_processes_with(&marker)
    );
}

/// Exit codes: the command's own, 127 not found, 126 not executable,
/// 128+N when killed by signal N.
#[test]
fn exit_codes_propagate() {
    let ws = Ws::new();
    assert_eq!(ws.sh(&[], "exit 42").status.code(), Some(42));
    assert_eq!(ws.sh(&[], "exit 0").status.code(), Some(0));
    assert_eq!(ws.sh(&[], "kill -TERM $$").status.code(), Some(143));
    let o = ws
        .paddock()
        .args(["run", "--", "no-such-command-xyz"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("EXEC_NOT_FOUND"), "{}", stderr(&o));
    std::fs::write(ws.proj.join("noexec.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let o = ws
        .paddock()
        .args(["run", "--", "./noexec.sh"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(126));
    assert!(stderr(&o).contains("EXEC_NOT_EXECUTABLE"), "{}", stderr(&o));
}

/// Signals sent to paddock reach the command (a supervisor's SIGTERM must
/// let the agent shut down cleanly).
#[test]
fn signals_sent_to_paddock_are_forwarded() {
    for (sig, code) in [("TERM", 7), ("INT", 8), ("HUP", 9)] {
        let ws = Ws::new();
        let script = format!("trap 'exit {code}' {sig}; echo ready; while :; do sleep 0.05; done");
        let mut child = ws
            .paddock()
            .args(["run", "--", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 6];
        std::io::Read::read_exact(&mut out, &mut buf).unwrap();
        assert_eq!(&buf, b"ready\n");
        signal(child.id(), sig);
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(code), "SIG{sig}");
    }
}

/// Pipes in and out work.
#[test]
fn stdin_and_stdout_pipes_work() {
    let ws = Ws::new();
    let mut child = ws
        .paddock()
        .args(["run", "--", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello sandbox\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "HELLO SANDBOX\n");
}

/// An interactive terminal works inside (a shell sees a tty).
#[test]
fn terminal_is_usable_inside() {
    let ws = Ws::new();
    if Command::new("script").arg("--version").output().is_err() {
        panic!("`script` (util-linux) is needed for the terminal test");
    }
    let cmd = format!(
        "{} run -- sh -c 'test -t 0 && test -t 1 && echo IS-A-TTY; stty size'",
        paddock_bin().display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(&ws.proj)
        .env("HOME", &ws.home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("IS-A-TTY"),
        "{} {}",
        stdout(&o),
        stderr(&o)
    );
}

/// Host secrets in the environment (API keys) never enter unless named.
#[test]
fn environment_is_scrubbed() {
    let ws = Ws::new();
    let o = ws
        .paddock()
        .env("ANTHROPIC_API_KEY", "sk-host-secret")
        .env("LC_SECRET_TOKEN", "lc-host-secret")
        .env("LC_TIME", "C.UTF-8")
        .env("NAMED_VAR", "passed")
        .args([
            "run",
            "--env",
            "NAMED_VAR",
            "--env",
            "SET_VAR=v",
            "--",
            "env",
        ])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(!out.contains("sk-host-secret"), "{out}");
    // Only real locale categories pass, not anything named LC_*.
    assert!(
        !out.contains("lc-host-secret") && out.contains("LC_TIME=C.UTF-8"),
        "{out}"
    );
    assert!(
        out.contains("NAMED_VAR=passed") && out.contains("SET_VAR=v"),
        "{out}"
    );
}

/// Zombies re-parented to pid 1 are reaped (a sandbox that piles up
/// zombies exhausts the pid space of long agent sessions).
#[test]
fn orphaned_children_are_reaped_by_init() {
    let ws = Ws::new();
    let script = "for i in 1 2 3 4 5; do (sleep 0.05 & exec true); done; sleep 0.5; \
                  cat /proc/[0-9]*/stat | awk '{print $3}' | sort | uniq -c";
    let o = ws.sh(&[], script);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).contains(" Z"), "zombies left: {}", stdout(&o));
}

/// `--verbose` reports what was enforced, Landlock ABI included.
#[test]
fn verbose_reports_landlock_abi() {
    let ws = Ws::new();
    let o = ws.sh(&["--verbose"], "true");
    assert!(stderr(&o).contains("Landlock ABI "), "{}", stderr(&o));
}

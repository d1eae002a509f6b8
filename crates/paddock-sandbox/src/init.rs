//! The sandbox's pid 1, and the last steps before the command runs.
//!
//! The process paddock clones into the new namespaces becomes pid 1 of the
//! new pid namespace. It:
//!
//! - dies with paddock: `PR_SET_PDEATHSIG(SIGKILL)` is its first act, and it
//!   then waits for paddock's go-ahead on a pipe, which reads end-of-file if
//!   paddock died in between. When pid 1 of a pid namespace dies, the kernel
//!   kills every process in it, so `kill -9 paddock` leaves nothing behind;
//! - builds the filesystem ([`crate::setup`]) and prepares Landlock and
//!   seccomp;
//! - forks the command, which drops everything before `execve`;
//! - reaps every zombie re-parented to it, forwards SIGINT, SIGTERM, SIGHUP,
//!   SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH when they were *sent* to it
//!   (a terminal's Ctrl-C already reaches the command directly, being in the
//!   same process group, and is not doubled);
//! - exits as soon as the command exits, which makes the kernel kill
//!   everything still running in the sandbox.
//!
//! It reports what happened to paddock as JSON lines on a pipe.

use std::ffi::{CStr, CString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use paddock_sys::{self as sys, Forked, SigSet};
use serde::{Deserialize, Serialize};

use crate::landlock_rules::{self, LandlockReport};
use crate::prepare::Prepared;
use crate::seccomp;
use crate::setup;

/// Messages from the sandbox to paddock.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub(crate) enum Msg {
    /// A setup step failed; nothing ran.
    SetupFailed { step: String, detail: String },
    /// Restrictions in force, sent by the command process just before exec.
    Enforced { landlock: LandlockReport },
    /// execve failed.
    ExecFailed { program: String, errno: i32 },
    /// The command ended.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// The signals pid 1 and paddock forward to the command.
pub(crate) const FORWARDED: &[i32] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Forwarded signals plus SIGCHLD: what pid 1 and paddock wait on.
pub(crate) fn waited_signals() -> SigSet {
    let mut v = FORWARDED.to_vec();
    v.push(libc::SIGCHLD);
    SigSet::of(&v)
}

fn send(out: &mut std::io::PipeWriter, msg: &Msg) {
    let mut line = serde_json::to_vec(msg).unwrap_or_default();
    line.truncate(3500);
    line.push(b'\n');
    // One write under PIPE_BUF is atomic; nothing useful to do on failure
    // (paddock is gone and we are about to be killed).
    let _ = out.write_all(&line);
}

/// Entry point of the cloned process. Never returns.
pub(crate) fn main(
    p: &Prepared,
    mut go: std::io::PipeReader,
    mut out: std::io::PipeWriter,
    fds: std::os::unix::net::UnixStream,
) -> ! {
    // First: die with paddock, then make sure paddock did not die before
    // that took effect (the go-ahead pipe then reads EOF).
    if sys::set_parent_death_signal(libc::SIGKILL).is_err() {
        sys::exit_now(125);
    }
    let mut byte = [0u8; 1];
    if go.read(&mut byte).map(|n| n != 1).unwrap_or(true) {
        sys::exit_now(125);
    }
    drop(go);

    match run(p, &mut out, fds) {
        Ok(code) => sys::exit_now(code),
        Err((step, detail)) => {
            send(
                &mut out,
                &Msg::SetupFailed {
                    step: step.to_string(),
                    detail,
                },
            );
            sys::exit_now(125)
        }
    }
}

type StepResult<T> = Result<T, (&'static str, String)>;

fn run(
    p: &Prepared,
    out: &mut std::io::PipeWriter,
    fds: std::os::unix::net::UnixStream,
) -> StepResult<i32> {
    use std::os::fd::AsFd;
    let e = |step: &'static str| move |err: std::io::Error| (step, err.to_string());

    // The hostname is the sandbox's own (UTS namespace).
    sys::sethostname(&p.hostname).map_err(e("sethostname"))?;
    // A new network namespace has only `lo`, and it is down.
    sys::loopback_up().map_err(e("loopback-up"))?;
    // The way out: a listening socket on the sandbox's own loopback, whose
    // accepting end is paddock's proxy outside. The socket stays in this
    // network namespace (it was created here); only its fd travels.
    if let Some(port) = p.proxy_port {
        let l = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(e("proxy-listen"))?;
        sys::send_fd(fds.as_fd(), l.as_fd()).map_err(e("proxy-handoff"))?;
    }
    drop(fds);
    setup::build_root(p).map_err(|se| (se.step, se.detail))?;
    std::env::set_current_dir(&p.workdir)
        .map_err(|err| ("chdir-workdir", format!("{}: {err}", p.workdir.display())))?;
    let ruleset = landlock_rules::ruleset(p).map_err(|d| ("landlock-ruleset", d))?;

    // pid 1 itself is not dumpable: the command (same uid) cannot open
    // /proc/1/mem or similar to take it over.
    sys::set_non_dumpable().map_err(e("set-non-dumpable"))?;

    let cmd = match sys::fork().map_err(e("fork-command"))? {
        Forked::Child => exec_command(p, ruleset, out),
        Forked::Parent { pid, .. } => pid,
    };
    // pid 1 needs no privilege from here on.
    sys::drop_all_capabilities().map_err(e("drop-capabilities-init"))?;

    let set = waited_signals();
    loop {
        let sig = sys::wait_signal(&set).map_err(e("wait-signal"))?;
        if sig.signo == libc::SIGCHLD {
            loop {
                match sys::waitpid(-1, true) {
                    Ok(Some((pid, st))) if pid == cmd => {
                        let (code, signal) = match st {
                            sys::ExitStatus::Exited(c) => (Some(c), None),
                            sys::ExitStatus::Signaled(s) => (None, Some(s)),
                        };
                        send(out, &Msg::Exited { code, signal });
                        return Ok(st.code());
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => return Ok(125),
                }
            }
        } else if sig.from_process {
            let _ = sys::kill(cmd, sig.signo);
        }
    }
}

/// In the forked command process: shed every privilege, then execve.
/// Never returns.
fn exec_command(
    p: &Prepared,
    ruleset: landlock::RulesetCreated,
    out: &mut std::io::PipeWriter,
) -> ! {
    let fail = |out: &mut std::io::PipeWriter, step: &str, detail: String| -> ! {
        send(
            out,
            &Msg::SetupFailed {
                step: step.to_string(),
                detail,
            },
        );
        sys::exit_now(125)
    };
    // A fresh program expects default signal handling and an empty mask.
    if let Err(err) = sys::reset_signals() {
        fail(out, "reset-signals", err.to_string());
    }
    // Nothing paddock inherited (beyond stdin/out/err) crosses execve: an
    // fd to a host folder would be a way out.
    if let Err(err) = sys::cloexec_from(3) {
        fail(out, "close-fds", err.to_string());
    }
    // no_new_privs: setuid binaries and file capabilities grant nothing
    // from here on; required for Landlock and seccomp without privilege.
    if let Err(err) = sys::set_no_new_privs() {
        fail(out, "no-new-privs", err.to_string());
    }
    let landlock = match landlock_rules::restrict(ruleset) {
        Ok(r) => r,
        Err(d) => fail(out, "landlock-restrict", d),
    };
    // All capabilities go, bounding set included, and securebits are locked
    // so that even uid 0 regains none on execve.
    if let Err(err) = sys::drop_all_capabilities() {
        fail(out, "drop-capabilities", err.to_string());
    }
    // Seccomp is the last thing before execve: the filter denies calls the
    // steps above still needed.
    if let Err(d) = seccomp::install(&p.seccomp) {
        fail(out, "seccomp", d);
    }
    send(out, &Msg::Enforced { landlock });

    let program = p.argv[0].clone();
    let errno = exec_search(&program, &p.argv, &p.env, &p.path_dirs);
    send(
        out,
        &Msg::ExecFailed {
            program: program.to_string_lossy().into_owned(),
            errno,
        },
    );
    sys::exit_now(if errno == libc::ENOENT { 127 } else { 126 })
}

/// execvp semantics on the sandbox's PATH. Returns the errno to report.
fn exec_search(
    program: &CStr,
    argv: &[CString],
    env: &[CString],
    path: &[std::path::PathBuf],
) -> i32 {
    if program.to_bytes().contains(&b'/') {
        return sys::execve(program, argv, env)
            .raw_os_error()
            .unwrap_or(libc::ENOENT);
    }
    let mut seen_eacces = false;
    for dir in path {
        let full = dir.join(Path::new(std::ffi::OsStr::from_bytes(program.to_bytes())));
        let Ok(c) = CString::new(full.as_os_str().as_bytes()) else {
            continue;
        };
        let err = sys::execve(&c, argv, env)
            .raw_os_error()
            .unwrap_or(libc::ENOENT);
        match err {
            libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG => {}
            libc::EACCES => seen_eacces = true,
            other => return other,
        }
    }
    if seen_eacces {
        libc::EACCES
    } else {
        libc::ENOENT
    }
}

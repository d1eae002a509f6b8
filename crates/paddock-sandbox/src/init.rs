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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use paddock_sys::{self as sys, Forked, SigSet};
use serde::{Deserialize, Serialize};

use crate::calls::Linux;
use crate::landlock_rules::LandlockReport;
use crate::observe::{AuditRecord, Watch};
use crate::prepare::Prepared;
use crate::sequence::{self, at, StepError};
use paddock_reasons::Reason;

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
    /// Session mode: the sandbox is built and serves exec requests.
    Ready,
}

/// The signals pid 1 and paddock forward to the command.
pub const FORWARDED: &[i32] = &[
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
    sys::mark("pid 1: go");

    let result = run(p, go, &mut out, fds);
    // Level no-userns: no pid namespace ends the command's descendants when
    // this process exits, so it ends them itself (it is their subreaper).
    if !p.level.namespaces() {
        kill_descendants();
    }
    match result {
        Ok(code) => sys::exit_now(code),
        Err(StepError { step, detail }) => {
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

type StepResult<T> = Result<T, StepError>;

fn run(
    p: &Prepared,
    mut go: std::io::PipeReader,
    out: &mut std::io::PipeWriter,
    fds: std::os::unix::net::UnixStream,
) -> StepResult<i32> {
    use std::os::fd::AsFd;

    // Everything up to the first command, in order (sequence.rs).
    let pid1 = if p.level.namespaces() {
        sequence::start_pid1(&Linux, p, &fds)?
    } else {
        sequence::start_pid1_on_host(&Linux, p, &fds)?
    };
    // paddock has put pid 1 in the sandbox's cgroups (set up while the
    // steps above ran): only now may it fork, so that every process is
    // inside the limits. End-of-file: paddock died.
    let mut byte = [0u8; 1];
    if go.read(&mut byte).map(|n| n != 1).unwrap_or(true) {
        return Err(StepError::new(
            "wait-for-limits",
            "paddock ended before the limits were set",
        ));
    }
    sys::mark("pid 1: limits in place");
    drop(go);
    let sequence::Pid1 {
        ruleset,
        host_view,
        covers,
    } = pid1;
    let p: &Prepared = host_view.as_ref().unwrap_or(p);
    // In session mode the same socket pair carries exec requests afterwards,
    // and in both modes the audit observer's records.
    let fds_ctl = if p.serve_execs || p.audit_filter.is_some() {
        Some(fds)
    } else {
        drop(fds);
        None
    };

    if p.serve_execs {
        send(out, &Msg::Ready);
        return serve(
            p,
            ruleset,
            &covers,
            fds_ctl.ok_or_else(|| StepError::new("control-channel", "missing"))?,
        );
    }
    let handoff = at("audit-handoff", handoff_pair(p))?;
    let cmd = match at("fork-command", sys::fork())? {
        Forked::Child => exec_command(p, ruleset, out, handoff.map(|(_, c)| c)),
        Forked::Parent { pid, .. } => pid,
    };
    // pid 1 needs no privilege from here on.
    at("drop-capabilities-init", drop_init_capabilities(p))?;
    let set = waited_signals();
    let sfd = at("signalfd", sys::signalfd(&set))?;
    // The command's audit listener arrives before its execve (which is
    // itself a notification, answered in the loop below).
    let mut watches: Vec<Watch> = handoff
        .and_then(|(parent, child)| {
            drop(child);
            sys::recv_fd(parent.as_fd()).ok().flatten()
        })
        .map(|fd| Watch::new(fd, 0))
        .into_iter()
        .collect();

    let cover_fd = cover_watch(&covers);
    loop {
        let mut fixed = vec![sfd.as_fd()];
        fixed.extend(cover_fd.as_ref().map(|f| f.as_fd()));
        let n = fixed.len();
        let ready = at(
            "poll",
            poll_with_watches(&fixed, &watches, fds_ctl.as_ref()),
        )?;
        serve_watches(p, &mut watches, &ready[n..], fds_ctl.as_ref());
        if let Some(f) = &cover_fd {
            if ready[1] != 0 && sys::inotify_drain(f.as_fd()) {
                watch_cover_folders(f.as_fd(), &covers);
                if let Err(why) = sequence::covers_hold(&Linux, &covers) {
                    end_for_changed_cover(&why);
                    send(
                        out,
                        &Msg::Exited {
                            code: Some(125),
                            signal: None,
                        },
                    );
                    return Ok(125);
                }
            }
        }
        if ready[0] == 0 {
            continue;
        }
        while let Some(sig) = at("signalfd-read", sys::read_signalfd(sfd.as_fd()))? {
            if sig.signo == libc::SIGCHLD {
                loop {
                    match sys::waitpid(-1, true) {
                        Ok(Some((pid, st))) if pid == cmd => {
                            let (code, signal) = match st {
                                sys::ExitStatus::Exited(c) => (Some(c), None),
                                sys::ExitStatus::Signaled(s) => (None, Some(s)),
                            };
                            if let Some(ctl) = &fds_ctl {
                                for w in &mut watches {
                                    report_leftovers(ctl, w);
                                }
                                flush(ctl);
                            }
                            send(out, &Msg::Exited { code, signal });
                            sys::mark("pid 1: command reaped, exit sent");
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
}

/// An inotify watch on every folder above each path `filesystem.deny`
/// covers: a creation, rename or removal there (by the host; the command
/// cannot rename them) wakes pid 1, which checks the covers again at once
/// rather than only before the next exec. None when nothing is covered or
/// inotify is not available (the per-exec check still holds).
fn cover_watch(covers: &[sequence::Covered]) -> Option<OwnedFd> {
    if covers.is_empty() {
        return None;
    }
    let fd = sys::inotify_init().ok()?;
    watch_cover_folders(fd.as_fd(), covers);
    Some(fd)
}

/// Watch the folders now at each path above a covered one. Called again
/// after every event, before the covers are checked: a folder the host
/// made anew (after renaming the old one away) is watched from then on,
/// and what was made in it before the watch is seen by that check.
fn watch_cover_folders(fd: std::os::fd::BorrowedFd<'_>, covers: &[sequence::Covered]) {
    let mask = libc::IN_CREATE
        | libc::IN_MOVED_TO
        | libc::IN_MOVED_FROM
        | libc::IN_DELETE
        | libc::IN_MOVE_SELF
        | libc::IN_DELETE_SELF;
    let mut seen: Vec<&std::path::Path> = Vec::new();
    for c in covers {
        let mut cur = c.inside.parent();
        while let Some(d) = cur {
            if d.parent().is_none() || seen.contains(&d) {
                break;
            }
            seen.push(d);
            let _ = sys::inotify_watch_dir(fd, d, mask);
            cur = d.parent();
        }
    }
}

/// The covers no longer hold: what a command could now read is not
/// hidden, so every process of the sandbox ends (a background process of
/// an earlier exec included) and pid 1 with them.
fn end_for_changed_cover(why: &str) {
    eprintln!(
        "paddock: error[{}]: {why}; every process of the sandbox was ended",
        Reason::FS_DENY_CHANGED.code()
    );
    kill_descendants();
}

/// End every descendant: kill the children, reap them, and repeat, since
/// each death re-parents that process's own children to us (we are their
/// subreaper). Bounded, so a pathological tree cannot hold us forever.
fn kill_descendants() {
    let me = sys::getpid();
    for _ in 0..100_000 {
        let kids: Vec<i32> = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        for k in &kids {
            let _ = sys::kill(*k, libc::SIGKILL);
        }
        match sys::waitpid(-1, false) {
            Ok(Some(_)) => continue,
            _ if kids.is_empty() => return,
            _ => continue,
        }
    }
}

/// When auditing, a socket pair on which a forked command hands pid 1 its
/// seccomp listener.
fn handoff_pair(p: &Prepared) -> std::io::Result<Option<(OwnedFd, OwnedFd)>> {
    if p.audit_filter.is_none() {
        return Ok(None);
    }
    sys::seqpacket_pair().map(Some)
}

/// Poll `fixed` and every watch's listener; returns the revents, fixed
/// fds first. Queued records are sent once the oldest has waited
/// [`OUTBOX_WAIT`], or sooner when nothing else arrives meanwhile: a
/// command's file activity is a stream of calls made one at a time, and
/// one message per record would cost the supervisor a wake-up each.
fn poll_with_watches(
    fixed: &[BorrowedFd<'_>],
    watches: &[Watch],
    ctl: Option<&UnixStream>,
) -> std::io::Result<Vec<i16>> {
    let mut fds: Vec<BorrowedFd<'_>> = fixed.to_vec();
    fds.extend(watches.iter().map(|w| w.fd.as_fd()));
    if let Some(since) = OUTBOX_SINCE.with(std::cell::Cell::get) {
        let left = OUTBOX_WAIT.saturating_sub(since.elapsed());
        if !left.is_zero() {
            let ms = i32::try_from(left.as_millis()).unwrap_or(0) + 1;
            let rev = sys::poll_revents(&fds, ms)?;
            if rev.iter().any(|r| *r != 0) {
                return Ok(rev);
            }
        }
        if let Some(ctl) = ctl {
            flush(ctl);
        }
    }
    sys::poll_revents(&fds, -1)
}

/// How long a queued record waits for others to share its message at
/// most: the live audit trail lags by no more than this.
const OUTBOX_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// Answer the notifications that are ready, report what they recorded,
/// and forget listeners whose processes are all gone (POLLHUP).
fn serve_watches(
    p: &Prepared,
    watches: &mut Vec<Watch>,
    revents: &[i16],
    ctl: Option<&UnixStream>,
) {
    let mut gone = Vec::new();
    for (i, (w, r)) in watches.iter_mut().zip(revents).enumerate() {
        if r & libc::POLLIN != 0 {
            if let Some(record) = w.handle(p) {
                if let Some(ctl) = ctl {
                    report(ctl, w.exec_id, record);
                }
            }
        } else if r & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            gone.push(i);
        }
    }
    for i in gone.into_iter().rev() {
        let mut w = watches.swap_remove(i);
        if let Some(ctl) = ctl {
            report_leftovers(ctl, &mut w);
        }
    }
}

/// Queue an observer record (sent by [`flush`]).
fn report(ctl: &UnixStream, id: u64, record: AuditRecord) {
    queue(
        ctl,
        &ExecEvent::Audit {
            id,
            record: Box::new(record),
        },
    );
}

/// Queue the denials `w` counted but has not recorded yet (its commands
/// are gone, or the sandbox ends).
fn report_leftovers(ctl: &UnixStream, w: &mut Watch) {
    for record in w.leftovers() {
        report(ctl, w.exec_id, record);
    }
}

/// The most one message to the supervisor carries (it reads 64 KiB).
const OUTBOX_MAX: usize = 48 * 1024;

thread_local! {
    /// JSON lines waiting to be sent, in order.
    static OUTBOX: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// When the oldest of them was queued.
    static OUTBOX_SINCE: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

fn queue(ctl: &UnixStream, ev: &ExecEvent) {
    let mut line = serde_json::to_vec(ev).unwrap_or_default();
    line.push(b'\n');
    if line.len() > OUTBOX_MAX {
        return; // cannot happen: records are capped well below this
    }
    let full = OUTBOX.with(|o| o.borrow().len() + line.len() > OUTBOX_MAX);
    if full {
        flush(ctl);
    }
    OUTBOX.with(|o| o.borrow_mut().extend_from_slice(&line));
    OUTBOX_SINCE.with(|t| {
        if t.get().is_none() {
            t.set(Some(std::time::Instant::now()));
        }
    });
}

/// Send what is queued, as one message.
fn flush(ctl: &UnixStream) {
    OUTBOX_SINCE.with(|t| t.set(None));
    let buf = OUTBOX.with(|o| std::mem::take(&mut *o.borrow_mut()));
    if !buf.is_empty() {
        let _ = (&*ctl).write_all(&buf);
    }
}

/// In the forked command process: shed every privilege, then execve.
/// Never returns.
fn exec_command(
    p: &Prepared,
    ruleset: Option<landlock::RulesetCreated>,
    out: &mut std::io::PipeWriter,
    handoff: Option<OwnedFd>,
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
    let landlock = match sequence::confine(&Linux, p, ruleset, handoff) {
        Ok(l) => l,
        Err(se) => fail(out, se.step, se.detail),
    };
    send(out, &Msg::Enforced { landlock });
    sys::mark("command: confined, execve next");

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
        // A folder without the program is skipped without an execve
        // (each is a round trip to the observer); what exists is tried,
        // so the errno reported is execve's own.
        if let Err(e) = sys::path_exists(&c) {
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG)
            ) {
                continue;
            }
        }
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

/// An exec request from the supervisor (a JSON payload sent together with
/// the command's stdin, stdout and stderr).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Request id, echoed in every event about it.
    pub id: u64,
    /// Command and arguments.
    pub argv: Vec<String>,
    /// Extra environment (added to the session's).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox.
    #[serde(default)]
    pub cwd: Option<std::path::PathBuf>,
}

/// What pid 1 reports about exec requests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ExecEvent {
    /// The command runs, as this pid inside the sandbox.
    Started {
        /// Request id.
        id: u64,
        /// pid inside the sandbox's pid namespace.
        pid: i32,
    },
    /// The command could not start.
    Failed {
        /// Request id.
        id: u64,
        /// 126 or 127 (docker convention), 125 for a setup failure.
        code: i32,
        /// Why.
        message: String,
    },
    /// The command ended.
    Exited {
        /// Request id.
        id: u64,
        /// Exit code, or 128 + signal.
        code: i32,
        /// The signal, when killed by one.
        signal: Option<i32>,
    },
    /// The audit observer saw a process of this request act.
    Audit {
        /// Request id (0: the command of `paddock run`).
        id: u64,
        /// What it did.
        record: Box<AuditRecord>,
    },
}

impl ExecEvent {
    /// The reason code of a [`ExecEvent::Failed`]: the one its message
    /// starts with (`CODE: ...`), else the one its exit code means.
    pub fn failure_reason(code: i32, message: &str) -> &'static str {
        if let Some(r) = message
            .split_once(": ")
            .and_then(|(c, _)| Reason::from_code(c))
        {
            return r.code();
        }
        match code {
            127 => Reason::EXEC_NOT_FOUND.code(),
            126 => Reason::EXEC_NOT_EXECUTABLE.code(),
            _ => Reason::SANDBOX_SETUP_FAILED.code(),
        }
    }
}

/// Send `ev` now, after what is queued.
fn reply(ctl: &std::os::unix::net::UnixStream, ev: &ExecEvent) {
    queue(ctl, ev);
    flush(ctl);
}

/// Exec `id` could not start: say why (`code` 125 for paddock's own
/// failures, 126/127 for execve's).
fn reply_failed(ctl: &std::os::unix::net::UnixStream, id: u64, code: i32, message: String) {
    reply(ctl, &ExecEvent::Failed { id, code, message });
}

/// pid 1 keeps one capability, in the sandbox's user namespace only:
/// CAP_SYS_PTRACE, so that it can take the socket of a command that made
/// itself non-dumpable (ssh-agent, some runtimes) and connect it
/// (observe.rs). It grants nothing outside the namespace, and the commands
/// cannot reach pid 1 (non-dumpable, Landlock's ptrace rule). Without
/// namespaces there is nothing to keep.
fn drop_init_capabilities(p: &Prepared) -> std::io::Result<()> {
    if p.level.namespaces() && p.audit_filter.is_some() {
        sys::drop_capabilities_except(&[sys::CAP_SYS_PTRACE])
    } else {
        sys::drop_all_capabilities()
    }
}

/// Session mode: serve exec requests until the supervisor goes away or
/// asks to stop. Background processes started by one exec keep running and
/// are visible to the next; every zombie is reaped here.
fn serve(
    p: &Prepared,
    ruleset: Option<landlock::RulesetCreated>,
    covers: &[sequence::Covered],
    ctl: std::os::unix::net::UnixStream,
) -> StepResult<i32> {
    use std::collections::HashMap;
    use std::os::fd::AsFd;
    at("drop-capabilities-init", drop_init_capabilities(p))?;
    let set = waited_signals();
    let sfd = at("signalfd", sys::signalfd(&set))?;
    let mut running: HashMap<i32, u64> = HashMap::new();
    let mut watches: Vec<Watch> = Vec::new();
    let mut template: Option<Template> = None;
    let mut template_refused = false;
    let cover_fd = cover_watch(covers);
    loop {
        // The template is forked (first, or again after it died) between
        // requests, when pid 1 holds no exec's descriptors (a copy in the
        // template would keep a client's output open, or a verdict pipe
        // from ever ending), and after the signalfd exists, so that its end
        // is never missed.
        if template.is_none() && !template_refused {
            match Template::start(p, ruleset.as_ref()) {
                Ok(t) => template = Some(t),
                Err(refused) => template_refused = refused,
            }
        }
        let mut fixed = vec![sfd.as_fd(), ctl.as_fd()];
        fixed.extend(cover_fd.as_ref().map(|f| f.as_fd()));
        let n = fixed.len();
        let rev = at("poll", poll_with_watches(&fixed, &watches, Some(&ctl)))?;
        serve_watches(p, &mut watches, &rev[n..], Some(&ctl));
        if let Some(f) = &cover_fd {
            if rev[2] != 0 && sys::inotify_drain(f.as_fd()) {
                watch_cover_folders(f.as_fd(), covers);
                if let Err(why) = sequence::covers_hold(&Linux, covers) {
                    let message = format!("{}: {why}", Reason::FS_DENY_CHANGED.code());
                    for id in running.values() {
                        reply_failed(&ctl, *id, 125, message.clone());
                    }
                    end_for_changed_cover(&why);
                    return Ok(125);
                }
            }
        }
        let ready = [rev[0] != 0, rev[1] != 0];
        if ready[0] {
            while let Some(sig) = at("signalfd-read", sys::read_signalfd(sfd.as_fd()))? {
                if sig.signo == libc::SIGCHLD {
                    while let Ok(Some((pid, st))) = sys::waitpid(-1, true) {
                        if template.as_ref().is_some_and(|t| t.pid == pid) {
                            template = None; // forked again before the next request
                        }
                        if let Some(id) = running.remove(&pid) {
                            sys::mark("pid 1: command reaped");
                            let signal = match st {
                                sys::ExitStatus::Signaled(s) => Some(s),
                                sys::ExitStatus::Exited(_) => None,
                            };
                            reply(
                                &ctl,
                                &ExecEvent::Exited {
                                    id,
                                    code: st.code(),
                                    signal,
                                },
                            );
                        }
                    }
                } else if sig.signo == libc::SIGTERM
                    && sig.from_process
                    && (sig.sender == 0 || !p.level.namespaces())
                {
                    // Only from outside the sandbox's pid namespace (the
                    // supervisor; its pid reads 0 here): without Landlock's
                    // signal scope a command can signal pid 1 too, and one
                    // command must not end the session under the next.
                    flush(&ctl);
                    return Ok(0);
                }
            }
        }
        if !ready[1] {
            continue;
        }
        let (payload, fds) = at("control-read", sys::recv_fds(ctl.as_fd(), 256 * 1024))?;
        sys::mark("pid 1: request read");
        if payload.is_empty() {
            return Ok(0); // the supervisor is gone
        }
        if payload == b"stop" {
            // Records still queued (background processes after the last
            // exit) go out first.
            flush(&ctl);
            return Ok(0);
        }
        if let Some(rest) = payload.strip_prefix(b"signal ") {
            // "signal PID SIG": forward to a command this init started;
            // "signal -PID SIG": to its process group (it leads one).
            let text = String::from_utf8_lossy(rest);
            let mut it = text
                .split_whitespace()
                .filter_map(|x| x.parse::<i32>().ok());
            if let (Some(pid), Some(sig)) = (it.next(), it.next()) {
                if running.contains_key(&pid.saturating_abs()) {
                    let _ = sys::kill(pid, sig);
                }
            }
            continue;
        }
        let Ok(req) = serde_json::from_slice::<ExecRequest>(&payload) else {
            continue;
        };
        if fds.len() != 3 || req.argv.is_empty() {
            reply_failed(
                &ctl,
                req.id,
                125,
                "an exec needs a command and three file descriptors".into(),
            );
            continue;
        }
        // What filesystem.deny hides must still be hidden: the host may
        // have replaced or created a denied path since the session started.
        if let Err(why) = sequence::covers_hold(&Linux, covers) {
            let message = format!("{}: {why}", Reason::FS_DENY_CHANGED.code());
            for id in running.values().chain([&req.id]) {
                reply_failed(&ctl, *id, 125, message.clone());
            }
            end_for_changed_cover(&why);
            return Ok(125);
        }
        // The template forks the command (as pid 1's child); when there is
        // none (it died, or could not confine itself), pid 1 forks it and
        // the command takes every step itself.
        let (err_r, err_w) = at("pipe", std::io::pipe())?;
        let (handoff_parent, handoff_child) = match at("audit-handoff", handoff_pair(p))? {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let mut forked = None;
        if let Some(t) = &template {
            match t.fork_command(&payload, &fds, &err_w, handoff_child.as_ref()) {
                Ok(pid) => forked = Some(pid),
                Err(Refused::Said(why)) => {
                    let why = why.strip_prefix("failed ").unwrap_or(&why).to_string();
                    reply_failed(
                        &ctl,
                        req.id,
                        125,
                        format!("the command could not be started: {why}"),
                    );
                    continue;
                }
                Err(refused) => {
                    let sent = matches!(refused, Refused::NoAnswer);
                    let what = if sent {
                        "no answer; the exec fails"
                    } else {
                        "not delivered; pid 1 forks it"
                    };
                    eprintln!(
                        "paddock: the exec template (pid {}) did not fork exec {} ({what})",
                        t.pid, req.id
                    );
                    let _ = sys::kill(t.pid, libc::SIGKILL);
                    template = None;
                    if sent {
                        // It had the request: the command may run, so it
                        // is not started a second time.
                        let why = "the session's exec template ended while starting the command; run it again";
                        reply_failed(&ctl, req.id, 125, why.into());
                        continue;
                    }
                }
            }
        }
        let pid = match forked {
            Some(pid) => pid,
            None => {
                let rs = match ruleset.as_ref().map(|r| r.try_clone()).transpose() {
                    Ok(r) => r,
                    Err(err) => {
                        reply_failed(&ctl, req.id, 125, format!("landlock: {err}"));
                        continue;
                    }
                };
                match sys::fork() {
                    Ok(Forked::Child) => {
                        drop(err_r);
                        let confine = Confine::Whole(rs);
                        exec_in_session(p, confine, &req, &fds, err_w, handoff_child)
                    }
                    Ok(Forked::Parent { pid, .. }) => pid,
                    // A full process limit ends this exec, not the session.
                    Err(e) => {
                        reply_failed(
                            &ctl,
                            req.id,
                            125,
                            format!("the command could not be started: fork: {e}"),
                        );
                        continue;
                    }
                }
            }
        };
        drop(err_w);
        drop(fds);
        drop(handoff_child);
        sys::mark("pid 1: command forked");
        let mut watch = handoff_parent
            .and_then(|parent| sys::recv_fd(parent.as_fd()).ok().flatten())
            .map(|fd| Watch::new(fd, req.id));
        sys::mark("pid 1: listener received");
        let (msg, early) = exec_verdict(p, err_r, watch.as_mut());
        sys::mark("pid 1: execve done");
        watches.extend(watch);
        if msg.is_empty() {
            running.insert(pid, req.id);
            reply(&ctl, &ExecEvent::Started { id: req.id, pid });
            for record in early {
                report(&ctl, req.id, record);
            }
        } else {
            // Reaped by the SIGCHLD loop; report the failure now.
            let (code, message) = msg
                .split_once(' ')
                .map(|(c, m)| (c.parse().unwrap_or(125), m.to_string()))
                .unwrap_or((125, msg.clone()));
            reply_failed(&ctl, req.id, code, message);
        }
    }
}

/// Wait for a forked exec's verdict: end-of-file on `err` (execve
/// succeeded, closing it) or its failure message. Meanwhile answer its
/// audit listener, since the execve itself waits on it; what it records
/// is returned, to be reported after the exec's start.
fn exec_verdict(
    p: &Prepared,
    err: std::io::PipeReader,
    mut watch: Option<&mut Watch>,
) -> (String, Vec<AuditRecord>) {
    let mut msg = Vec::new();
    let mut records = Vec::new();
    loop {
        let mut fds = vec![err.as_fd()];
        if let Some(w) = &watch {
            fds.push(w.fd.as_fd());
        }
        let Ok(rev) = sys::poll_revents(&fds, -1) else {
            break;
        };
        if let (Some(w), Some(r)) = (watch.as_deref_mut(), rev.get(1)) {
            if r & libc::POLLIN != 0 {
                // No `continue`: a busy command must not keep its own
                // exec from being confirmed.
                records.extend(w.handle(p));
            } else if r & libc::POLLHUP != 0 {
                watch = None;
            }
        }
        if rev[0] != 0 {
            let mut buf = [0u8; 512];
            match (&err).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => msg.extend_from_slice(&buf[..n]),
            }
        }
    }
    (String::from_utf8_lossy(&msg).into_owned(), records)
}

/// How a session exec's command is confined: every step in the command
/// (forked by pid 1), or the steps the template did not take.
enum Confine {
    Whole(Option<landlock::RulesetCreated>),
    FromTemplate {
        ruleset: Option<landlock::RulesetCreated>,
        filters: Option<u64>,
    },
}

/// A session's exec template: forked once from pid 1, it has taken the
/// steps every command takes whatever the command
/// ([`sequence::confine_template`]), and forks each command as pid 1's
/// child, which then takes the rest. An exec no longer pays for those
/// steps. It stays in pid 1's Landlock domain, so the commands (each in a
/// domain nested inside) can neither signal it nor trace it, and it is
/// non-dumpable like pid 1. If it dies, the next exec starts another; if
/// it cannot confine itself, pid 1 forks the commands itself.
struct Template {
    pid: i32,
    chan: OwnedFd,
}

/// Why the template did not fork a command.
enum Refused {
    /// The request never reached it (it is gone): pid 1 forks the command.
    NotDelivered,
    /// It had the request and said nothing in time: it is ended, and the
    /// exec fails rather than perhaps run twice.
    NoAnswer,
    /// It answered that it forked nothing, and why; it stays.
    Said(String),
}

/// How long pid 1 waits for the template's answer before ending it.
const TEMPLATE_ANSWER_MS: i32 = 5000;

impl Template {
    /// `Err(true)`: it could not confine itself (pid 1 forks every command
    /// from then on); `Err(false)`: not now (no process or descriptor
    /// left), tried again before the next request.
    fn start(p: &Prepared, ruleset: Option<&landlock::RulesetCreated>) -> Result<Template, bool> {
        let rs = ruleset
            .map(|r| r.try_clone())
            .transpose()
            .map_err(|_| false)?;
        let (mine, theirs) = sys::seqpacket_pair().map_err(|_| false)?;
        match sys::fork().map_err(|_| false)? {
            Forked::Child => {
                drop(mine);
                template_main(p, rs, theirs)
            }
            Forked::Parent { pid, .. } => {
                drop(theirs);
                drop(rs);
                let t = Template { pid, chan: mine };
                match t.answer() {
                    Some(a) if a == "ready" => Ok(t),
                    other => {
                        eprintln!(
                            "paddock: the exec template could not start ({}); pid 1 forks each command",
                            other.unwrap_or_else(|| "no answer".into())
                        );
                        // Reaped with the other children.
                        let _ = sys::kill(pid, libc::SIGKILL);
                        Err(true)
                    }
                }
            }
        }
    }

    fn answer(&self) -> Option<String> {
        let ready = sys::poll_revents(&[self.chan.as_fd()], TEMPLATE_ANSWER_MS).ok()?;
        if ready.first().copied().unwrap_or(0) == 0 {
            return None;
        }
        let (payload, _) = sys::recv_fds(self.chan.as_fd(), 4096).ok()?;
        (!payload.is_empty()).then(|| String::from_utf8_lossy(&payload).into_owned())
    }

    /// Have the template fork the command; its pid, or why not.
    fn fork_command(
        &self,
        request: &[u8],
        stdio: &[OwnedFd],
        err: &std::io::PipeWriter,
        handoff: Option<&OwnedFd>,
    ) -> Result<i32, Refused> {
        let mut fds: Vec<BorrowedFd<'_>> = stdio.iter().map(|f| f.as_fd()).collect();
        fds.push(err.as_fd());
        fds.extend(handoff.map(|h| h.as_fd()));
        sys::send_fds(self.chan.as_fd(), &fds, request).map_err(|_| Refused::NotDelivered)?;
        match self.answer() {
            Some(a) => match a.strip_prefix("pid ").and_then(|n| n.parse().ok()) {
                Some(pid) => Ok(pid),
                // It answered: alive, and it forked nothing (a full
                // process limit, a malformed request).
                None => Err(Refused::Said(a)),
            },
            None => Err(Refused::NoAnswer),
        }
    }
}

/// The template's life: confine itself, say "ready", then fork one command
/// per request (stdin, stdout, stderr, the verdict pipe and, when auditing,
/// the listener's handoff socket come with it) and answer with its pid.
/// Never returns; ends when pid 1 closes the channel.
fn template_main(p: &Prepared, ruleset: Option<landlock::RulesetCreated>, chan: OwnedFd) -> ! {
    let _ = sys::set_process_name("paddock-exec");
    let say = |what: &str| {
        let _ = sys::send_fds(chan.as_fd(), &[], what.as_bytes());
    };
    let filters = match sequence::confine_template(&Linux, p) {
        Ok(f) => f,
        Err(se) => {
            say(&format!("failed {}: {}", se.step, se.detail));
            sys::exit_now(125)
        }
    };
    say("ready");
    loop {
        let Ok((payload, mut fds)) = sys::recv_fds(chan.as_fd(), 256 * 1024) else {
            sys::exit_now(0)
        };
        if payload.is_empty() {
            sys::exit_now(0); // pid 1 is gone
        }
        let req = serde_json::from_slice::<ExecRequest>(&payload);
        let want = if p.audit_filter.is_some() { 5 } else { 4 };
        let (Ok(req), true) = (req, fds.len() == want) else {
            say("failed: a malformed request");
            continue;
        };
        let rs = match ruleset.as_ref().map(|r| r.try_clone()).transpose() {
            Ok(r) => r,
            Err(e) => {
                say(&format!("failed landlock: {e}"));
                continue;
            }
        };
        match sys::fork_sibling() {
            Ok(0) => {
                let handoff = if want == 5 { fds.pop() } else { None };
                let err = std::io::PipeWriter::from(fds.pop().expect("counted above"));
                let confine = Confine::FromTemplate {
                    ruleset: rs,
                    filters,
                };
                exec_in_session(p, confine, &req, &fds, err, handoff)
            }
            Ok(pid) => say(&format!("pid {pid}")),
            Err(e) => say(&format!("failed fork: {e}")),
        }
    }
}

/// The forked child of a session exec. Never returns.
fn exec_in_session(
    p: &Prepared,
    confine: Confine,
    req: &ExecRequest,
    fds: &[std::os::fd::OwnedFd],
    mut err: std::io::PipeWriter,
    handoff: Option<OwnedFd>,
) -> ! {
    use std::os::fd::AsFd;
    let mut fail = |code: i32, message: String| -> ! {
        let _ = err.write_all(format!("{code} {message}").as_bytes());
        sys::exit_now(code)
    };
    // A new session: the command must not share pid 1's.
    let _ = sys::setsid();
    for (i, fd) in (0..).zip(fds.iter()) {
        if let Err(e) = sys::dup2(fd.as_fd(), i) {
            fail(125, format!("stdio: {e}"));
        }
    }
    // A terminal on stdin (the pty `paddock exec` relays) becomes the
    // session's controlling terminal: job control and Ctrl-C work.
    if sys::isatty(0) {
        let _ = sys::set_controlling_tty(0);
    }
    if let Some(cwd) = &req.cwd {
        if let Err(e) = std::env::set_current_dir(cwd) {
            fail(125, format!("working directory {}: {e}", cwd.display()));
        }
    }
    let confined = match confine {
        Confine::Whole(rs) => sequence::confine(&Linux, p, rs, handoff),
        Confine::FromTemplate { ruleset, filters } => {
            sequence::confine_from_template(&Linux, p, ruleset, handoff, filters)
        }
    };
    if let Err(se) = confined {
        fail(125, format!("{}: {}", se.step, se.detail));
    }
    // An argument with a NUL byte cannot be passed as it is: refuse the
    // command rather than run a shorter one.
    let Ok(argv) = req
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<CString>, _>>()
    else {
        fail(125, "an argument contains a NUL byte".into());
    };
    let mut env: Vec<CString> = p.env.clone();
    let mut path_dirs = p.path_dirs.clone();
    for (k, v) in &req.env {
        let prefix = format!("{k}=");
        env.retain(|e| !e.to_bytes().starts_with(prefix.as_bytes()));
        if let Ok(c) = CString::new(format!("{k}={v}")) {
            env.push(c);
        }
        if k == "PATH" {
            path_dirs = std::env::split_paths(v).collect();
        }
    }
    sys::mark("command: confined, execve next");
    let errno = exec_search(&argv[0], &argv, &env, &path_dirs);
    let code = if errno == libc::ENOENT { 127 } else { 126 };
    fail(
        code,
        format!(
            "{}: {}",
            req.argv[0],
            std::io::Error::from_raw_os_error(errno)
        ),
    )
}

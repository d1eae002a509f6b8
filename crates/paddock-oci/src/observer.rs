//! The audit observer of a container under a policy: who did what to
//! which file, and which programs ran, seen from the host.
//!
//! Each process the runtime starts in the container (the first one and
//! every `exec`) installs, last before `execve`, paddock's observing
//! seccomp filter ([`paddock_sandbox::install_container_observer`]) and
//! hands its listener to the container's daemon (the one that serves its
//! egress), then closes every copy it held: the
//! image's program never holds a listener, so it cannot answer its own
//! calls. The daemon reads each watched call from the caller's memory,
//! lets the kernel carry it out, and writes the record into the
//! container's audit log with its container id and pod.
//!
//! The hand-over:
//! - the first process (and the `startContainer` hooks it runs, each
//!   observed as the program is): a seqpacket pair made by `create` before
//!   the clone, one end kept by the container's process until its
//!   `execve` closes it, the other given to the daemon;
//! - `exec`: the daemon listens on `observe.sock` in the container's state
//!   folder (mode 0600: the runtime's user only); `exec` connects there on
//!   the host, before it joins the container's namespaces.
//!
//! A process whose listener cannot be handed over does not start: its
//! calls would go unrecorded.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use paddock_audit::{Caller, Log};
use paddock_sandbox::{AuditLevel, ContainerObserver};

/// The daemon's socket for `exec`'s listeners, in the state folder.
const SOCKET: &str = "observe.sock";

/// What a process hands its listener over with.
const WATCH: &str = "WATCH ";

/// A container process's way to its observer.
pub struct Link {
    /// What its observing filter watches.
    pub level: AuditLevel,
    /// The daemon's end is on the other side (close-on-exec).
    pub to: OwnedFd,
    /// The exec it belongs to (0: the first process).
    pub exec_id: u64,
}

impl Link {
    /// In the container's process, last before `execve`: paddock's
    /// filters with the observing one last, its listener handed to the
    /// daemon and closed here (the link is close-on-exec).
    pub fn install(&self) -> Result<(), String> {
        let listener = paddock_sandbox::install_container_observer(self.level)
            .map_err(|e| format!("seccomp: {e}"))?;
        paddock_sys::send_fds(
            self.to.as_fd(),
            &[listener.as_fd()],
            format!("{WATCH}{}\n", self.exec_id).as_bytes(),
        )
        .map_err(|e| format!("handing the audit observer its listener: {e}"))
    }
}

/// The path of the daemon's socket for container folder `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET)
}

/// `f` on the socket's path as the kernel takes it: through the folder
/// held open (`/proc/self/fd/N/observe.sock`), since the folder's own
/// path (an engine's 64-character ids under a user's runtime folder) may
/// not fit in a socket address.
fn through_dir<T>(dir: &Path, f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    use std::os::fd::AsRawFd;
    let held = paddock_sys::openat2_path(None, dir, libc::O_DIRECTORY, 0)?;
    f(Path::new(&format!(
        "/proc/self/fd/{}/{SOCKET}",
        held.as_raw_fd()
    )))
}

/// For `exec`, on the host: a connection to the daemon of the container
/// whose state folder is `dir`. The exec's start is recorded through it
/// ([`start`]): one writer per log keeps its sequence numbers in order.
pub fn connect(dir: &Path) -> Result<UnixStream, String> {
    through_dir(dir, |p| UnixStream::connect(p)).map_err(|e| {
        format!(
            "the container's daemon ({}): {e}; its commands would go unrecorded, so none is started (is the container still running? `podman logs` and the runtime's --log say why its daemon ended)",
            socket_path(dir).display()
        )
    })
}

/// The link an exec's process hands its listener over on, when the
/// policy audits.
pub fn link(to: &UnixStream, level: AuditLevel, exec_id: u64) -> Result<Link, String> {
    Ok(Link {
        level,
        to: to
            .try_clone()
            .map_err(|e| format!("the container's daemon: {e}"))?
            .into(),
        exec_id,
    })
}

/// Record an exec's start (`data`: its argv, cwd, pid and exec id) in the
/// container's log, through its daemon.
pub fn start(to: &UnixStream, data: &serde_json::Value) -> Result<(), String> {
    use std::io::Write;
    let mut text = format!("{START}{data}\n");
    // What fits in one message; the argv is cut, never the message.
    if text.len() > MESSAGE {
        text = format!(
            "{START}{}\n",
            serde_json::json!({"exec_id": data["exec_id"], "pid": data["pid"], "argv": ["(too long to record)"]})
        );
    }
    (&*to)
        .write_all(text.as_bytes())
        .map_err(|e| format!("the container's daemon: {e}"))
}

/// The largest message on the daemon's socket.
const MESSAGE: usize = 64 * 1024;

/// What an exec's runtime records its start with.
const START: &str = "START ";

/// The daemon's socket, bound where only the runtime's user may connect.
pub fn listen(dir: &Path) -> Result<UnixListener, String> {
    let path = socket_path(dir);
    let _ = std::fs::remove_file(&path);
    // Bound under a umask that leaves the socket 0600: no moment in which
    // another user could connect.
    let old = paddock_sys::set_umask(0o177);
    let l = through_dir(dir, |p| UnixListener::bind(p));
    paddock_sys::set_umask(old);
    l.map_err(|e| format!("the audit observer's socket {}: {e}", path.display()))
}

/// The daemon's loop: take listeners (from `first`, and from `exec`s on
/// `accept`), answer their notifications, record what they saw, until
/// the container's first process has ended (`pidfd` readable). Then what
/// is still counted is recorded.
pub fn serve(
    pidfd: &OwnedFd,
    first: Option<OwnedFd>,
    accept: Option<UnixListener>,
    mut obs: Option<ContainerObserver>,
    log: &Log,
) {
    let record = |exec_id: u64, r: &paddock_sandbox::AuditRecord| {
        paddock_plan::audit::emit_record(log, &Caller::default(), exec_id, r);
    };
    // The records held for exec `id`, written.
    let release = |waiting: &mut std::collections::HashMap<u64, Vec<_>>, id: u64| {
        for r in waiting.remove(&id).unwrap_or_default() {
            record(id, &r);
        }
    };
    // An exec's records wait for its start (which its runtime sends once
    // it knows the pid), so that `exec.start` comes first in the log.
    let mut waiting: std::collections::HashMap<u64, Vec<paddock_sandbox::AuditRecord>> =
        std::collections::HashMap::new();
    // Execs whose start is recorded (it may come before their listener).
    let mut started: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let emit = |waiting: &mut std::collections::HashMap<u64, Vec<_>>,
                recs: Vec<(u64, paddock_sandbox::AuditRecord)>| {
        for (exec_id, r) in recs {
            match waiting.get_mut(&exec_id) {
                Some(held) if held.len() < WAIT_MAX => held.push(r),
                Some(_) => {
                    release(waiting, exec_id);
                    record(exec_id, &r);
                }
                None => record(exec_id, &r),
            }
        }
    };
    let mut pending: Vec<Conn> = first.into_iter().map(Conn::new).collect();
    loop {
        let (rev, np) = {
            let mut fds = vec![pidfd.as_fd()];
            fds.extend(accept.as_ref().map(|a| a.as_fd()));
            fds.extend(pending.iter().map(|c| c.fd.as_fd()));
            if let Some(o) = &obs {
                fds.extend(o.fds());
            }
            match paddock_sys::poll_revents(&fds, -1) {
                Ok(r) => (r, pending.len()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        };
        let ended = rev[0] != 0;
        let mut at = 1;
        if let Some(a) = &accept {
            if rev[at] & libc::POLLIN != 0 {
                if let Ok((s, _)) = a.accept() {
                    pending.push(Conn::new(s.into()));
                }
            }
            at += 1;
        }
        // A message per listener, until the other end is closed (by the
        // program's execve, or as it ended).
        let mut done = Vec::new();
        for (i, r) in rev[at..at + np].iter().enumerate() {
            if *r == 0 {
                continue;
            }
            let c = &mut pending[i];
            let Some(lines) = c.read() else {
                // Closed: an exec whose start never came (its runtime
                // failed) has its records written as they are.
                if let Some(id) = c.exec {
                    release(&mut waiting, id);
                }
                done.push(i);
                continue;
            };
            for said in lines {
                if let Some(n) = said.strip_prefix(WATCH) {
                    // A listener comes with its line (SCM_RIGHTS on it).
                    let fd = c.fds.pop_front();
                    if let (Ok(id), Some(fd), Some(o)) = (n.parse::<u64>(), fd, obs.as_mut()) {
                        o.add(fd, id);
                        c.exec = Some(id);
                        if id != 0 && !started.contains(&id) {
                            waiting.entry(id).or_default();
                        }
                    }
                } else if let Some(json) = said.strip_prefix(START) {
                    let data: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
                    if data.is_object() {
                        let id = data["exec_id"].as_u64().unwrap_or(0);
                        started.insert(id);
                        log.emit(
                            paddock_audit::EventKind::ExecStart,
                            Some(true),
                            None,
                            &Caller::default(),
                            data,
                        );
                        release(&mut waiting, id);
                        // Its records from now on go straight to the log.
                    }
                }
            }
        }
        for i in done.into_iter().rev() {
            pending.swap_remove(i);
        }
        if let Some(o) = obs.as_mut() {
            let recs = o.serve(&rev[at + np..]);
            emit(&mut waiting, recs);
        }
        if ended {
            break;
        }
    }
    if let Some(o) = obs.as_mut() {
        let recs = o.finish();
        emit(&mut waiting, recs);
    }
    // Records of an exec whose start never came (its runtime failed).
    for (id, held) in waiting {
        for r in held {
            record(id, &r);
        }
    }
}

/// One connection to the daemon: the exec it carries a listener of, and
/// what was read of it (messages are lines; the stream may join two in
/// one read or cut one between two).
struct Conn {
    fd: OwnedFd,
    exec: Option<u64>,
    buf: Vec<u8>,
    fds: std::collections::VecDeque<OwnedFd>,
}

impl Conn {
    fn new(fd: OwnedFd) -> Conn {
        Conn {
            fd,
            exec: None,
            buf: Vec::new(),
            fds: std::collections::VecDeque::new(),
        }
    }

    /// Read what is there: the whole lines, or None once it is closed (or
    /// says more in one line than a message may hold).
    fn read(&mut self) -> Option<Vec<String>> {
        let (said, fds) = paddock_sys::recv_fds(self.fd.as_fd(), MESSAGE).ok()?;
        if said.is_empty() && fds.is_empty() {
            return None;
        }
        self.fds.extend(fds);
        self.buf.extend_from_slice(&said);
        let mut lines = Vec::new();
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..end]).into_owned());
        }
        (self.buf.len() <= MESSAGE).then_some(lines)
    }
}

/// Records held for one exec's start, at most.
const WAIT_MAX: usize = 10_000;

/// A number for one `exec`, unique enough to tell its records from
/// another's in one container's log.
pub fn new_exec_id() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Never 0: that is the first process.
    (u64::try_from(t & u128::from(u64::MAX)).unwrap_or(1) ^ u64::from(std::process::id())).max(1)
}

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
//! - the first process: a socket pair made by `create` before the clone,
//!   one end kept by the container's process, the other given to the
//!   daemon;
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
    /// The daemon's end is on the other side.
    pub to: UnixStream,
    /// The exec it belongs to (0: the first process).
    pub exec_id: u64,
}

impl Link {
    /// In the container's process, last before `execve`: paddock's
    /// filters with the observing one last, its listener handed to the
    /// daemon. Both descriptors are closed here.
    pub fn install(self) -> Result<(), String> {
        let listener = paddock_sandbox::install_container_observer(self.level)
            .map_err(|e| format!("seccomp: {e}"))?;
        paddock_sys::send_fds(
            self.to.as_fd(),
            &[listener.as_fd()],
            format!("{WATCH}{}", self.exec_id).as_bytes(),
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

/// For `exec`, on the host: a link to the daemon of the container whose
/// state folder is `dir`.
pub fn connect(dir: &Path, level: AuditLevel, exec_id: u64) -> Result<Link, String> {
    let path = socket_path(dir);
    let to = through_dir(dir, |p| UnixStream::connect(p)).map_err(|e| {
        format!(
            "the container's audit observer ({}): {e}; its commands would go unrecorded, so none is started (is the container's daemon still running? `podman logs` and the runtime's --log say why it ended)",
            path.display()
        )
    })?;
    Ok(Link { level, to, exec_id })
}

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
    first: Option<UnixStream>,
    accept: Option<UnixListener>,
    mut obs: Option<ContainerObserver>,
    log: &Log,
) {
    let emit = |recs: Vec<(u64, paddock_sandbox::AuditRecord)>| {
        for (exec_id, r) in recs {
            paddock_plan::audit::emit_record(log, &Caller::default(), exec_id, &r);
        }
    };
    let mut pending: Vec<UnixStream> = first.into_iter().collect();
    loop {
        let (rev, np) = {
            let mut fds = vec![pidfd.as_fd()];
            fds.extend(accept.as_ref().map(|a| a.as_fd()));
            fds.extend(pending.iter().map(|s| s.as_fd()));
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
                    pending.push(s);
                }
            }
            at += 1;
        }
        // One message per hand-over; a connection that sent it, or gave
        // up, is closed.
        let mut done = Vec::new();
        for (i, r) in rev[at..at + np].iter().enumerate() {
            if *r == 0 {
                continue;
            }
            done.push(i);
            let Ok((said, mut fds)) = paddock_sys::recv_fds(pending[i].as_fd(), 64) else {
                continue;
            };
            let exec_id = std::str::from_utf8(&said)
                .ok()
                .and_then(|s| s.strip_prefix(WATCH))
                .and_then(|n| n.parse::<u64>().ok());
            if let (Some(id), 1, Some(o)) = (exec_id, fds.len(), obs.as_mut()) {
                o.add(fds.remove(0), id);
            }
        }
        for i in done.into_iter().rev() {
            pending.swap_remove(i);
        }
        if let Some(o) = obs.as_mut() {
            emit(o.serve(&rev[at + np..]));
        }
        if ended {
            break;
        }
    }
    if let Some(o) = obs.as_mut() {
        emit(o.finish());
    }
}

/// A number for one `exec`, unique enough to tell its records from
/// another's in one container's log.
pub fn new_exec_id() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Never 0: that is the first process.
    (u64::try_from(t & u128::from(u64::MAX)).unwrap_or(1) ^ u64::from(std::process::id())).max(1)
}

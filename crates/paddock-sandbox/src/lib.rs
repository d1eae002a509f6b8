//! The paddock sandbox: one command, run inside a boundary made of kernel
//! primitives, with no VM and no root.
//!
//! The host side of a run is [`run`]:
//!
//! 1. [`prepare`](crate::prepare) checks the [`SandboxSpec`] against the host
//!    while paddock is still an ordinary process, so a bad request is refused
//!    before anything starts.
//! 2. paddock clones a child into new user, mount, pid, IPC, UTS, network
//!    and cgroup namespaces, writes its uid/gid maps (the invoking user maps
//!    to itself: no privilege is gained on the host), and lets it go.
//! 3. The child is the sandbox's pid 1 ([`init`](crate::init)): it builds the
//!    filesystem ([`setup`](crate::setup)), forks the command, which takes on
//!    Landlock, drops all capabilities and installs seccomp before `execve`.
//! 4. paddock forwards signals it is sent, waits, and returns the command's
//!    status together with what was enforced.
//!
//! ```no_run
//! use paddock_sandbox::{run, MountMode, MountSpec, SandboxSpec};
//! let here = std::env::current_dir().unwrap();
//! let spec = SandboxSpec {
//!     argv: vec!["ls".into(), "-la".into()],
//!     env: vec![("PATH".into(), "/usr/bin:/bin".into())],
//!     workdir: here.clone(),
//!     home: "/home/someone".into(),
//!     mounts: vec![MountSpec { source: here.clone(), target: here, mode: MountMode::Ro, origin: "example".into() }],
//!     protected: vec![".git".into()],
//!     hidden: vec![],
//!     files: vec![],
//!     unix_sockets: vec![],
//!     tmp_size_mib: 64,
//!     hostname: "paddock".into(),
//!     proxy_port: None,
//!     transparent: false,
//!     pids_limit: Some(256),
//!     memory_limit_mib: None,
//!     serve_execs: false,
//!     cow_dir: None,
//!     audit: Default::default(),
//!     label: None,
//!     level: Default::default(),
//!     scratch_dir: None,
//! };
//! let outcome = run(&spec).expect("sandbox started");
//! std::process::exit(outcome.status.code());
//! ```

#![forbid(unsafe_code)]

#[cfg(test)]
mod bpf_compact;
mod calls;
mod error;
pub mod explain;
pub mod guard;
mod init;
mod landlock_rules;
mod limits;
mod observe;
mod oci_seccomp;
mod prepare;
pub mod probe;
mod seccomp;
mod sequence;
pub mod spec;

use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;

use paddock_sys::{self as sys, ns, ExitStatus, Forked};

pub use error::SandboxError;
pub use init::{ExecEvent, ExecRequest, FORWARDED as FORWARDED_SIGNALS};
pub use landlock_rules::{scope_container, LandlockReport};
pub use observe::{AuditRecord, ContainerObserver, ContainerView};
pub use oci_seccomp::{compile_oci_profile, ContainerFilters};
pub use seccomp::{denied_syscalls, install_container_filters, install_container_observer};
pub use spec::{
    AuditLevel, Level, MountMode, MountSpec, SandboxSpec, DEFAULT_PROTECTED, HIDDEN_SYSTEM_PATHS,
};

use init::Msg;

/// The result of a sandboxed command that did start.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How the command ended.
    pub status: ExitStatus,
    /// What Landlock enforced (None if the command never reached exec).
    pub landlock: Option<LandlockReport>,
    /// Protected names (`.git`, `.envrc`, ...) that did not exist in a
    /// writable folder before the run and exist now: the sandbox created
    /// them, and the final sweep moved them aside.
    pub created_protected: Vec<guard::Quarantined>,
}

pub use paddock_sys::ExitStatus as CommandStatus;

/// The namespaces every sandbox gets.
const NAMESPACES: u64 = ns::USER | ns::MOUNT | ns::PID | ns::IPC | ns::UTS | ns::NET | ns::CGROUP;

/// Write the uid/gid maps of `pid`: the invoking user and group map to
/// themselves, and nothing else is mapped. `setgroups` is denied first, as
/// the kernel requires of an unprivileged writer, and so that the sandbox
/// cannot drop a supplementary group used to *deny* it access.
pub(crate) fn write_id_maps(pid: sys::pid_t) -> std::io::Result<()> {
    let uid = sys::getuid();
    let gid = sys::getgid();
    let base = PathBuf::from(format!("/proc/{pid}"));
    std::fs::write(base.join("setgroups"), "deny")?;
    std::fs::write(base.join("uid_map"), format!("{uid} {uid} 1\n"))?;
    std::fs::write(base.join("gid_map"), format!("{gid} {gid} 1\n"))?;
    Ok(())
}

/// A started sandbox: its pid 1, and what it handed out.
pub struct Running {
    pid: sys::pid_t,
    pidfd: std::os::fd::OwnedFd,
    status: std::io::BufReader<std::io::PipeReader>,
    set: sys::SigSet,
    guard: std::sync::Arc<guard::Guard>,
    /// The listening socket on the sandbox's `127.0.0.1:PORT` (when the spec
    /// asked for a proxy port): accept on it to serve the sandbox's egress.
    pub proxy_listener: Option<std::net::TcpListener>,
    /// The sandbox's TUN device (when the spec asked for the transparent
    /// path): read and write IP packets on it to serve every connection
    /// the sandbox makes without the proxy variables.
    pub tun: Option<std::os::fd::OwnedFd>,
    /// Session mode: the channel to pid 1. Send an [`ExecRequest`] as the
    /// payload of `paddock_sys::send_fds` with the command's stdin, stdout
    /// and stderr; `stop` ends the sandbox; [`ExecEvent`]s come back as JSON
    /// lines.
    pub control: Option<std::os::unix::net::UnixStream>,
    /// The limit mechanisms that cover the whole sandbox (cgroup v1 groups);
    /// empty when only per-process rlimits apply.
    pub limits: Vec<&'static str>,
    cgroups: limits::Cgroups,
}

impl Running {
    /// The sweep for protected names this sandbox may create in its rw
    /// mounts (run it after each command and while commands run).
    pub fn guard(&self) -> std::sync::Arc<guard::Guard> {
        self.guard.clone()
    }
}

/// Run `spec`'s command in a new sandbox and wait for it.
///
/// The calling process must be single-threaded. Returns `Err` when paddock
/// could not start the command (bad request, setup failure, command not
/// found); in every case no sandbox process is left running.
pub fn run(spec: &SandboxSpec) -> Result<Outcome, SandboxError> {
    spawn(spec)?.wait()
}

/// Check `spec` against the host without starting anything (the checks
/// [`spawn`] makes first).
pub fn check(spec: &SandboxSpec) -> Result<(), SandboxError> {
    prepare::prepare(spec).map(drop)
}

/// Start `spec`'s command in a new sandbox.
///
/// Must be called while the process is single-threaded (the sandbox is
/// created with a fork-like `clone3`); threads may be started afterwards,
/// for instance to serve [`Running::proxy_listener`]. The signals paddock
/// forwards stay blocked in the calling thread (and in threads it starts)
/// until [`Running::wait`] returns.
pub fn spawn(spec: &SandboxSpec) -> Result<Running, SandboxError> {
    let prepared = prepare::prepare(spec)?;
    sys::mark("host: prepared (sources checked, filters, Landlock rules)");
    let (go_r, mut go_w) = std::io::pipe().map_err(|e| SandboxError::io("creating a pipe", e))?;
    let (st_r, st_w) = std::io::pipe().map_err(|e| SandboxError::io("creating a pipe", e))?;
    // Message-preserving, so that requests sent back to back stay apart.
    let (fd_host, fd_init) = sys::seqpacket_pair()
        .map(|(a, b)| {
            (
                std::os::unix::net::UnixStream::from(a),
                std::os::unix::net::UnixStream::from(b),
            )
        })
        .map_err(|e| SandboxError::io("creating a socket pair", e))?;

    // Block the signals we wait for before the clone, so none is lost in
    // between; the child inherits the mask, which pid 1 also wants.
    let set = init::waited_signals();
    sys::block_signals(&set).map_err(|e| SandboxError::io("blocking signals", e))?;
    sys::ignore_signal(libc::SIGTTOU);

    // Level no-userns: a plain child, in no new namespace.
    let forked = if prepared.level.namespaces() {
        sys::clone_into_namespaces(NAMESPACES)
    } else {
        sys::fork_with_pidfd()
    };
    let (pid, pidfd) = match forked {
        Ok(Forked::Child) => {
            drop(go_w);
            drop(st_r);
            drop(fd_host);
            init::main(&prepared, go_r, st_w, fd_init)
        }
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
        Err(e) => {
            let _ = sys::unblock_signals(&set);
            return Err(SandboxError::UserNamespaceUnavailable(e));
        }
    };
    sys::mark("host: cloned");
    drop(go_r);
    drop(st_w);
    drop(fd_init);
    let pidfd = pidfd.ok_or_else(|| SandboxError::InitDied("no pidfd".into()))?;

    let maps = if prepared.level.namespaces() {
        write_id_maps(pid)
    } else {
        Ok(())
    };
    if let Err(e) = maps {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = sys::waitpid(pid, false);
        let _ = sys::unblock_signals(&set);
        return Err(SandboxError::Setup {
            step: "write-id-maps".into(),
            detail: e.to_string(),
        });
    }
    // pid 1 may build the sandbox now. Meanwhile, on the other core, the
    // limits that cover every process of the sandbox (cgroup v1 groups, see
    // limits.rs): moving a process into one waits for an RCU grace period,
    // milliseconds on an idle machine. The second byte says they are in
    // place; pid 1 forks nothing before it.
    sys::mark("host: id maps");
    let _ = go_w.write_all(b"1");
    let (cgroups, applied) = limits::cgroup_v1(
        pid,
        prepared.label.as_deref(),
        prepared.pids_limit,
        prepared.memory_limit_mib,
    );
    sys::mark("host: cgroups");
    let _ = go_w.write_all(b"2");
    drop(go_w);
    // pid 1 hands over the proxy listener first thing; if it fails before
    // that, the socket closes and the failure arrives on the status pipe.
    let proxy_listener = if prepared.proxy_port.is_some() {
        sys::recv_fd(fd_host.as_fd())
            .ok()
            .flatten()
            .map(std::net::TcpListener::from)
    } else {
        None
    };
    let tun = if prepared.transparent && proxy_listener.is_some() {
        sys::recv_fd(fd_host.as_fd()).ok().flatten()
    } else {
        None
    };
    let control = (prepared.serve_execs || prepared.audit_filter.is_some()).then_some(fd_host);
    Ok(Running {
        pid,
        pidfd,
        status: std::io::BufReader::new(st_r),
        set,
        guard: prepared.guard.clone(),
        proxy_listener,
        tun,
        control,
        limits: applied,
        cgroups,
    })
}

impl Running {
    /// Session mode: wait until pid 1 has built the sandbox and serves
    /// requests, or report why it could not.
    pub fn ready(&mut self) -> Result<(), SandboxError> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.status.read_line(&mut line).unwrap_or(0) == 0 {
                return Err(SandboxError::InitDied(
                    "before the sandbox was ready".into(),
                ));
            }
            match serde_json::from_str::<Msg>(&line) {
                Ok(Msg::Ready) => return Ok(()),
                Ok(Msg::SetupFailed { step, detail }) => {
                    return Err(SandboxError::Setup { step, detail })
                }
                _ => continue,
            }
        }
    }

    /// Wait for the command, forwarding signals sent to paddock, and report
    /// how it ended.
    pub fn wait(self) -> Result<Outcome, SandboxError> {
        let Running {
            pid,
            pidfd,
            status: st_r,
            set,
            guard,
            cgroups,
            ..
        } = self;
        // Wait for pid 1, forwarding signals sent to paddock. A signal that the
        // kernel generated (Ctrl-C on the terminal) reached the command's
        // process group directly and is not forwarded again.
        let init_status = loop {
            let sig = match sys::wait_signal(&set) {
                Ok(s) => s,
                Err(e) => {
                    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                    let _ = sys::waitpid(pid, false);
                    return Err(SandboxError::io("waiting for signals", e));
                }
            };
            if sig.signo == libc::SIGCHLD {
                match sys::waitpid(pid, true) {
                    Ok(Some((_, st))) => break st,
                    Ok(None) => continue,
                    Err(e) => return Err(SandboxError::io("waiting for the sandbox", e)),
                }
            } else if sig.from_process {
                let _ = sys::pidfd_send_signal(pidfd.as_fd(), sig.signo);
            }
        };

        // Signals that arrive from now on are the caller's business again.
        sys::mark("host: pid 1 reaped (namespaces torn down)");
        let _ = sys::unblock_signals(&set);
        // pid 1 is reaped, so every process of the sandbox is gone: its
        // groups can go too.
        drop(cgroups);
        sys::mark("host: cgroups removed");

        let mut landlock = None;
        let mut result: Option<Result<ExitStatus, SandboxError>> = None;
        for line in st_r.lines().map_while(Result::ok) {
            let Ok(msg) = serde_json::from_str::<Msg>(&line) else {
                continue;
            };
            match msg {
                Msg::Enforced { landlock: l } => landlock = Some(l),
                Msg::Ready => {}
                Msg::SetupFailed { step, detail } => {
                    result.get_or_insert(Err(SandboxError::Setup { step, detail }));
                }
                Msg::ExecFailed { program, errno } => {
                    result.get_or_insert(Err(if errno == libc::ENOENT {
                        SandboxError::CommandNotFound(program)
                    } else {
                        SandboxError::CommandNotExecutable {
                            program,
                            detail: std::io::Error::from_raw_os_error(errno).to_string(),
                        }
                    }));
                }
                Msg::Exited { code, signal } => {
                    let st = match (code, signal) {
                        (_, Some(s)) => ExitStatus::Signaled(s),
                        (Some(c), None) => ExitStatus::Exited(c),
                        (None, None) => ExitStatus::Exited(125),
                    };
                    result.get_or_insert(Ok(st));
                }
            }
        }
        // The sandbox is gone: one last sweep for what it created (reading
        // only the folders that changed, where the start kept a snapshot).
        let (created_protected, _) = guard.sweep_final();
        sys::mark("host: final sweep");
        match result {
            Some(Ok(status)) => Ok(Outcome {
                status,
                landlock,
                created_protected,
            }),
            Some(Err(e)) => Err(e),
            None => Err(SandboxError::InitDied(match init_status {
                ExitStatus::Exited(c) => format!("exit code {c}"),
                ExitStatus::Signaled(s) => format!("killed by signal {s}"),
            })),
        }
    }
}

//! Processes: clone into namespaces, fork, wait, signal, exec, pidfds, resource limits.

use super::*;

/// Namespace flags for [`clone_into_namespaces`].
pub mod ns {
    /// New user namespace.
    pub const USER: u64 = libc::CLONE_NEWUSER as u64;
    /// New mount namespace.
    pub const MOUNT: u64 = libc::CLONE_NEWNS as u64;
    /// New pid namespace (the child is its pid 1).
    pub const PID: u64 = libc::CLONE_NEWPID as u64;
    /// New IPC namespace (System V IPC, POSIX message queues).
    pub const IPC: u64 = libc::CLONE_NEWIPC as u64;
    /// New UTS namespace (hostname).
    pub const UTS: u64 = libc::CLONE_NEWUTS as u64;
    /// New network namespace.
    pub const NET: u64 = libc::CLONE_NEWNET as u64;
    /// New cgroup namespace.
    pub const CGROUP: u64 = libc::CLONE_NEWCGROUP as u64;
}

/// Which side of a fork-like call we are on.
#[derive(Debug)]
pub enum Forked {
    /// We are the new process.
    Child,
    /// We are the caller; the child has this pid (in our pid namespace) and,
    /// when asked for, this pidfd.
    Parent {
        /// The child's pid as seen from the caller.
        pid: pid_t,
        /// A pidfd for the child (race-free signalling and waiting).
        pidfd: Option<OwnedFd>,
    },
}

/// The kernel's `struct clone_args` (clone3(2)), version 0 layout.
#[repr(C)]
#[derive(Default)]
pub(crate) struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Fork into new namespaces with `clone3(2)`, fork-style (no new stack), and
/// get a pidfd for the child.
///
/// The caller must be single-threaded: like `fork(2)`, only the calling thread
/// exists in the child, and locks held by other threads would stay held.
pub fn clone_into_namespaces(ns_flags: u64) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: ns_flags | libc::CLONE_PIDFD as u64,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with `stack == 0` duplicates the calling thread like
    // fork(2). `args` is a valid, fully initialised clone_args v0 that lives
    // across the call, and `pidfd` points to a live c_int the kernel writes.
    // The caller guarantees it is single-threaded (documented above).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of!(args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let ret = check(ret)?;
    if ret == 0 {
        return Ok(Forked::Child);
    }
    let pid = pid_t::try_from(ret).expect("pid fits in pid_t");
    Ok(Forked::Parent {
        pid,
        pidfd: Some(owned(libc::c_long::from(pidfd))),
    })
}

/// A child in no new namespace, with a pidfd: `clone3`, or where a
/// container's seccomp profile answers clone3 with ENOSYS (Docker's does,
/// and so does paddock's own sandbox), `fork` followed by `pidfd_open`.
/// The caller must be single-threaded.
pub fn fork_with_pidfd() -> io::Result<Forked> {
    match clone_into_namespaces(0) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => match fork()? {
            Forked::Child => Ok(Forked::Child),
            Forked::Parent { pid, .. } => {
                // SAFETY: pidfd_open takes a pid and flags, no pointers. The
                // child cannot have been reaped yet: only we wait for it.
                let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
                let pidfd = check(fd).ok().map(owned);
                Ok(Forked::Parent { pid, pidfd })
            }
        },
        other => other,
    }
}

/// Become the reaper of orphaned descendants (PR_SET_CHILD_SUBREAPER): a
/// process whose parent dies is re-parented to us rather than to the
/// host's init, so we can find and end it.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag only.
    check_int(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// Plain `fork(2)`. The caller must be single-threaded.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the caller guarantees it is single-threaded, so the child does
    // not inherit locks held by other threads.
    let ret = unsafe { libc::fork() };
    match check_int(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent { pid, pidfd: None }),
    }
}

/// `fork(2)`, but the child's parent is our parent (`clone(CLONE_PARENT)`):
/// it is reaped by, and reports its exit to, the process that started us.
/// The legacy `clone` call, since a sandbox's filter refuses `clone3`.
/// The caller must be single-threaded.
pub fn fork_sibling() -> io::Result<pid_t> {
    let flags = libc::CLONE_PARENT as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: clone with a null stack and no CLONE_VM duplicates the
    // calling thread like fork(2); the other arguments (parent/child tid
    // pointers, tls) are unused without the flags that name them. The
    // caller guarantees it is single-threaded, so no lock is held.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    let ret = check(ret)?;
    Ok(pid_t::try_from(ret).expect("pid fits in pid_t"))
}

/// End the process at once, without running destructors or atexit handlers
/// (the right way to leave a forked child).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Our pid in our own pid namespace.
pub fn getpid() -> pid_t {
    // SAFETY: getpid cannot fail and takes no arguments.
    unsafe { libc::getpid() }
}

/// Real user id.
pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail and takes no arguments.
    unsafe { libc::getuid() }
}

/// Real group id.
pub fn getgid() -> u32 {
    // SAFETY: getgid cannot fail and takes no arguments.
    unsafe { libc::getgid() }
}

/// How a waited-for child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

impl ExitStatus {
    /// The shell convention: the exit code, or 128 + signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// `waitpid(pid, WNOHANG?)`. Returns `None` when nothing has changed state
/// (only with `nohang`) and `Err(ECHILD)` when there is no child left.
pub fn waitpid(pid: pid_t, nohang: bool) -> io::Result<Option<(pid_t, ExitStatus)>> {
    let mut status: libc::c_int = 0;
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        match check_int(ret) {
            Ok(0) => return Ok(None),
            Ok(p) => {
                let st = if libc::WIFEXITED(status) {
                    ExitStatus::Exited(libc::WEXITSTATUS(status))
                } else if libc::WIFSIGNALED(status) {
                    ExitStatus::Signaled(libc::WTERMSIG(status))
                } else {
                    continue;
                };
                return Ok(Some((p, st)));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `kill(2)`.
pub fn kill(pid: pid_t, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    check_int(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `pidfd_send_signal(2)`: signal the process behind `pidfd`, immune to pid reuse.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: the fd is a live descriptor borrowed for the call; a null
    // siginfo asks the kernel to fill in a default one.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    check(ret).map(drop)
}

/// The NULL-terminated array of pointers `execve` takes for `strings`
/// (valid while `strings` lives).
pub(crate) fn exec_array(strings: &[CString]) -> Vec<*const libc::c_char> {
    let mut a: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    a
}

/// `execve(2)`. Only returns on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let (a, e) = (exec_array(argv), exec_array(envp));
    // SAFETY: `path` and every element of `a` and `e` are NUL-terminated
    // strings that outlive the call; both arrays are NULL-terminated.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// Does `path` name something (`faccessat(F_OK)`)? The error when not:
/// what a later `execve` of it would have said (ENOENT, ENOTDIR, ...).
/// Not one of the calls the audit observer watches, so a PATH search
/// costs the sandbox one observed `execve`, not one per folder.
pub fn path_exists(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    check_int(unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::F_OK, 0) }).map(drop)
}

/// `sethostname(2)` (in a new UTS namespace it only changes ours).
pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live byte slice.
    check_int(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// `unshare(2)`.
pub fn unshare(flags: u64) -> io::Result<()> {
    let flags = libc::c_int::try_from(flags)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "clone flags out of range"))?;
    // SAFETY: unshare takes an integer flag set only.
    check_int(unsafe { libc::unshare(flags) }).map(drop)
}

/// `setrlimit(resource, limit, limit)`.
pub fn set_rlimit(resource: u32, limit: u64) -> io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: `r` is a valid rlimit for the duration of the call.
    check_int(unsafe { libc::setrlimit(resource as _, &r) }).map(drop)
}

/// Raise this process's soft limit of open files to its hard limit;
/// returns the new soft limit.
pub fn raise_nofile() -> io::Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit for the duration of the call.
    check_int(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) })?;
    if r.rlim_cur < r.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit for the duration of the call.
        check_int(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) })?;
        r.rlim_cur = r.rlim_max;
    }
    Ok(r.rlim_cur)
}

/// Resource numbers for [`set_rlimit`].
pub mod rlimit {
    /// Processes and threads of the user (counted per user namespace).
    pub const NPROC: u32 = libc::RLIMIT_NPROC;
    /// Address space of one process.
    pub const AS: u32 = libc::RLIMIT_AS;
}

/// `setsid()`.
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid takes no arguments.
    check_int(unsafe { libc::setsid() }).map(drop)
}

/// The start time of a *living* process `pid` (clock ticks since boot,
/// field 22 of /proc/PID/stat): with the pid, it identifies a process
/// across pid reuse. `None` when there is no such process or it is a
/// zombie (dead, not yet reaped).
pub fn process_start_time(pid: pid_t) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Read `buf.len()` bytes at `addr` in process `pid`
/// (`process_vm_readv`); returns how many were read. Needs ptrace access to
/// `pid` (same user, dumpable target).
pub fn read_process_memory(pid: pid_t, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: usize::try_from(addr).map_err(|_| io::Error::from_raw_os_error(libc::EFAULT))?
            as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, writable for its length; `remote` is
    // only interpreted in the other process's address space by the kernel,
    // which checks it.
    let r = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    check(r as libc::c_long).and_then(to_len)
}

/// Set the calling thread's name (`comm`, what `ps` and `top` show; at
/// most 15 bytes are kept).
pub fn set_process_name(name: &str) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes from the pointer, which `c` provides for the call's duration.
    let r = unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr(), 0, 0, 0) };
    check_int(r).map(drop)
}

/// `pidfd_open(pid, 0)`: a descriptor naming exactly this process, even if
/// its pid is reused later.
pub fn pidfd_open(pid: pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers; no memory is passed.
    check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }).map(owned)
}

/// `pidfd_open(tid, PIDFD_THREAD)`: a descriptor naming this one thread
/// (Linux 6.9 and newer; EINVAL before).
pub fn pidfd_open_thread(tid: pid_t) -> io::Result<OwnedFd> {
    // PIDFD_THREAD is O_EXCL.
    // SAFETY: pidfd_open takes two integers; no memory is passed.
    check(unsafe { libc::syscall(libc::SYS_pidfd_open, tid, libc::O_EXCL) }).map(owned)
}

/// `pidfd_getfd(pidfd, fd, 0)`: a duplicate, in this process, of the
/// process's descriptor `fd` (the same open file: for a socket, the same
/// socket). The kernel allows it only where ptrace access is allowed.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes three integers; no memory is passed.
    check(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) }).map(owned)
}

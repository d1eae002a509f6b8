//! The one place in paddock where `unsafe` code lives.
//!
//! Every other crate in the workspace is `#![forbid(unsafe_code)]`. This crate
//! wraps the Linux system calls the sandbox needs into small, safe functions
//! that take Rust types and return [`std::io::Result`]. Each wrapper keeps the
//! kernel's semantics (no retries, no policy): the *order* in which they are
//! called, and why, lives in `paddock-sandbox`.
//!
//! Every `unsafe` block carries a `// SAFETY:` comment saying which invariant
//! of the call makes it sound.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

pub use libc::pid_t;

/// Turn a `-1` return into the thread's `errno` as an [`io::Error`].
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`check`] for calls that return `c_int`.
fn check_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains a NUL byte"))
}

/// Wrap a raw fd returned by a successful system call.
fn owned(fd: libc::c_long) -> OwnedFd {
    let fd = RawFd::try_from(fd).expect("kernel returned an fd that does not fit in an int");
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that no
    // other owner knows about; we take sole ownership of it here.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

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
struct CloneArgs {
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

/// `execve(2)`. Only returns on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: `path` and every element of `a` and `e` are NUL-terminated
    // strings that outlive the call; both arrays are NULL-terminated.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

/// A set of signals.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    /// The set holding exactly `sigs`.
    pub fn of(sigs: &[i32]) -> Self {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it fully.
        let mut set = unsafe { std::mem::zeroed::<libc::sigset_t>() };
        // SAFETY: `set` is a valid sigset_t.
        unsafe { libc::sigemptyset(&mut set) };
        for &s in sigs {
            // SAFETY: `set` is initialised; an invalid signal number only
            // makes sigaddset return EINVAL, which we ignore on purpose.
            unsafe { libc::sigaddset(&mut set, s) };
        }
        SigSet(set)
    }
}

/// Block `set` in the calling thread (so it can be collected with
/// [`wait_signal`]). Returns nothing; blocked signals are reset with
/// [`unblock_all_signals`].
pub fn block_signals(set: &SigSet) -> io::Result<()> {
    // SAFETY: `set.0` is an initialised sigset_t; the old set is not asked for.
    let ret = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut()) };
    check_int(ret).map(drop)
}

/// Unblock `set` in the calling thread.
pub fn unblock_signals(set: &SigSet) -> io::Result<()> {
    // SAFETY: `set.0` is an initialised sigset_t; the old set is not asked for.
    let ret = unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set.0, std::ptr::null_mut()) };
    check_int(ret).map(drop)
}

/// Empty the signal mask and set every catchable signal back to its default
/// disposition: what a freshly exec'd program expects.
pub fn reset_signals() -> io::Result<()> {
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting SIG_DFL installs no handler code; errors for
        // signals that cannot be changed are ignored on purpose.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let empty = SigSet::of(&[]);
    // SAFETY: `empty.0` is an initialised sigset_t.
    let ret = unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty.0, std::ptr::null_mut()) };
    check_int(ret).map(drop)
}

/// Ignore `sig` (SIG_IGN).
pub fn ignore_signal(sig: i32) {
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}

/// A collected signal: its number, whether a process sent it (`kill`,
/// `sigqueue`, `tgkill`) rather than the kernel (a terminal's Ctrl-C), and
/// the sender's pid when a process sent it.
#[derive(Debug, Clone, Copy)]
pub struct Signal {
    /// Signal number.
    pub signo: i32,
    /// True when sent by a process, false when generated by the kernel
    /// (for instance the terminal on Ctrl-C, or SIGCHLD).
    pub from_process: bool,
}

/// Wait for one of the (blocked) signals in `set`.
pub fn wait_signal(set: &SigSet) -> io::Result<Signal> {
    loop {
        // SAFETY: siginfo_t is plain data the kernel fills in.
        let mut info = unsafe { std::mem::zeroed::<libc::siginfo_t>() };
        // SAFETY: `set.0` is initialised and `info` is a valid out-pointer.
        let ret = unsafe { libc::sigwaitinfo(&set.0, &mut info) };
        match check_int(ret) {
            Ok(signo) => {
                let code = info.si_code;
                let from_process =
                    code == libc::SI_USER || code == libc::SI_QUEUE || code == libc::SI_TKILL;
                return Ok(Signal {
                    signo,
                    from_process,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------
// prctl, capabilities, identity
// ---------------------------------------------------------------------------

/// Ask the kernel to send `sig` to us when the thread that created us dies.
pub fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; no pointers involved.
    check_int(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) })
        .map(drop)
}

/// Set `no_new_privs`: execve can never again grant privileges (setuid bits,
/// file capabilities). Required for unprivileged seccomp and Landlock.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    check_int(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}

/// Read the `no_new_privs` bit.
pub fn no_new_privs() -> io::Result<bool> {
    // SAFETY: PR_GET_NO_NEW_PRIVS takes integer arguments only.
    check_int(unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) }).map(|v| v == 1)
}

/// Mark the process non-dumpable: no core dumps, and /proc/PID files become
/// inaccessible to other processes of the same user (no /proc/PID/mem).
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes integer arguments only.
    check_int(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Drop every capability for good: clear the ambient set, drop the whole
/// bounding set, lock the securebits so that even uid 0 regains nothing on
/// execve, then empty the effective, permitted and inheritable sets.
///
/// Needs CAP_SETPCAP (held by the creator of a user namespace inside it).
pub fn drop_all_capabilities() -> io::Result<()> {
    drop_capabilities_except(&[])
}

/// `CAP_SYS_PTRACE`: what a process needs to look into another of its user
/// namespace that made itself non-dumpable.
pub const CAP_SYS_PTRACE: u32 = 19;

/// [`drop_all_capabilities`], but the capabilities in `keep` stay in the
/// permitted and effective sets. The bounding set is emptied all the same
/// and nothing is inheritable or ambient, so no program started later, nor
/// a child that drops its own (which then needs no CAP_SETPCAP), gets
/// them.
pub fn drop_capabilities_except(keep: &[u32]) -> io::Result<()> {
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes integer arguments only.
    check_int(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(63);
    for cap in 0..=last_cap {
        // SAFETY: PR_CAPBSET_READ takes a capability number only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) } == 0 {
            continue; // already gone (a second call drops nothing)
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number only.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if let Err(e) = check_int(ret) {
            // EINVAL: the kernel does not know this capability; fine.
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // SAFETY: PR_GET_SECUREBITS takes no pointers.
    let current = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    if current < 0 || (current as libc::c_ulong) & bits != bits {
        // SAFETY: PR_SET_SECUREBITS takes an integer bit mask only.
        check_int(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) })?;
    }
    let hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    for k in keep.iter().filter(|k| **k < 64) {
        let d = &mut data[(*k / 32) as usize];
        d.effective |= 1 << (k % 32);
        d.permitted |= 1 << (k % 32);
    }
    // SAFETY: `hdr` and `data` are valid v3 capability structures (two
    // CapData entries, as version 3 requires) that live across the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) };
    check(ret).map(drop)
}

/// The effective capability mask of the calling thread (bit N = capability N).
pub fn effective_capabilities() -> io::Result<u64> {
    let hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: `hdr` is a valid header and `data` has room for the two
    // entries version 3 writes.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &hdr, data.as_mut_ptr()) };
    check(ret)?;
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// `sethostname(2)` (in a new UTS namespace it only changes ours).
pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live byte slice.
    check_int(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

// ---------------------------------------------------------------------------
// Files and mounts
// ---------------------------------------------------------------------------

/// `resolve` flags for [`openat2_path`].
pub mod resolve {
    /// Refuse to traverse any symbolic link.
    pub const NO_SYMLINKS: u64 = 0x04;
    /// Refuse to traverse magic links (/proc/PID/fd/N and friends).
    pub const NO_MAGICLINKS: u64 = 0x02;
    /// Refuse to leave the directory the lookup started in ("..", absolute
    /// symlinks, magic links all fail with EXDEV).
    pub const BENEATH: u64 = 0x08;
    /// Treat the starting directory as the root of the lookup ("/" and ".."
    /// stop there), as in a chroot.
    pub const IN_ROOT: u64 = 0x10;
}

/// The kernel's `struct open_how` (openat2(2)).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dirfd, path, O_PATH | O_CLOEXEC [| extra], resolve)`: an fd that
/// pins the object found, with symlink handling controlled by `resolve`.
/// `dirfd == None` means the current directory (AT_FDCWD).
pub fn openat2_path(
    dirfd: Option<BorrowedFd<'_>>,
    path: &Path,
    extra_flags: i32,
    resolve_flags: u64,
) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC | extra_flags) as u64,
        mode: 0,
        resolve: resolve_flags,
    };
    let dfd = dirfd.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `c` is NUL-terminated, `how` is a valid open_how whose size we
    // pass, both live across the call; `dfd` is AT_FDCWD or a borrowed fd.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dfd,
            c.as_ptr(),
            &how,
            std::mem::size_of::<OpenHow>(),
        )
    };
    check(ret).map(owned)
}

/// `openat(dirfd, path, flags)` for real I/O (not O_PATH). Always O_CLOEXEC.
pub fn openat(dirfd: BorrowedFd<'_>, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: `c` is NUL-terminated and lives across the call; `dirfd` is borrowed.
    let ret = unsafe {
        libc::openat(
            dirfd.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    check_int(ret).map(|fd| owned(libc::c_long::from(fd)))
}

/// `mkdirat(dirfd, name, mode)`.
pub fn mkdirat(dirfd: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: `c` is NUL-terminated and lives across the call.
    check_int(unsafe { libc::mkdirat(dirfd.as_raw_fd(), c.as_ptr(), mode) }).map(drop)
}

/// `symlinkat(target, dirfd, name)`.
pub fn symlinkat(target: &Path, dirfd: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    let t = cstr(target)?;
    let n = cstr(name)?;
    // SAFETY: both strings are NUL-terminated and live across the call.
    check_int(unsafe { libc::symlinkat(t.as_ptr(), dirfd.as_raw_fd(), n.as_ptr()) }).map(drop)
}

/// Mount attribute bits for [`mount_setattr`].
pub mod attr {
    /// Read-only.
    pub const RDONLY: u64 = 0x01;
    /// Ignore setuid/setgid bits and file capabilities.
    pub const NOSUID: u64 = 0x02;
    /// Disallow access to device nodes.
    pub const NODEV: u64 = 0x04;
    /// Disallow program execution.
    pub const NOEXEC: u64 = 0x08;
}

const OPEN_TREE_CLONE: u32 = 1;
const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

/// `open_tree(fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH [| AT_RECURSIVE])`:
/// a detached copy of the mount (tree) at `fd`, not yet attached anywhere.
pub fn open_tree_clone(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: the empty path is a static NUL-terminated string; `fd` is borrowed.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    check(ret).map(owned)
}

/// The kernel's `struct mount_attr`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], set, clear)`.
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, set: u64, clear: u64) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let a = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `a` is a valid mount_attr whose size we pass; the empty path is
    // a static NUL-terminated string; `fd` is borrowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &a,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}

/// `move_mount(from, "", to, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attach the
/// (detached) mount `from` on top of the object `to` refers to.
pub fn move_mount(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: both paths are static NUL-terminated empty strings; both fds
    // are borrowed for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(ret).map(drop)
}

/// Flags for [`mount`].
pub mod mflags {
    /// MS_RDONLY.
    pub const RDONLY: u64 = libc::MS_RDONLY;
    /// MS_NOSUID.
    pub const NOSUID: u64 = libc::MS_NOSUID;
    /// MS_NODEV.
    pub const NODEV: u64 = libc::MS_NODEV;
    /// MS_NOEXEC.
    pub const NOEXEC: u64 = libc::MS_NOEXEC;
    /// MS_REC.
    pub const REC: u64 = libc::MS_REC;
    /// MS_SLAVE.
    pub const SLAVE: u64 = libc::MS_SLAVE;
    /// MS_PRIVATE.
    pub const PRIVATE: u64 = libc::MS_PRIVATE;
    /// MS_REMOUNT.
    pub const REMOUNT: u64 = libc::MS_REMOUNT;
    /// MS_BIND.
    pub const BIND: u64 = libc::MS_BIND;
}

/// Classic `mount(2)`.
pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> io::Result<()> {
    let src = source.map(cstring).transpose()?;
    let tgt = cstr(target)?;
    let fst = fstype.map(cstring).transpose()?;
    let dat = data.map(cstring).transpose()?;
    // SAFETY: every pointer is either null or a NUL-terminated string that
    // lives across the call.
    let ret = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            tgt.as_ptr(),
            fst.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags as libc::c_ulong,
            dat.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr().cast::<libc::c_void>()),
        )
    };
    check_int(ret).map(drop)
}

/// `umount2(path, MNT_DETACH)`.
pub fn umount_detach(path: &Path) -> io::Result<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is NUL-terminated and lives across the call.
    check_int(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }).map(drop)
}

/// `pivot_root(".", ".")`: make the current directory the root, stacking the
/// old root on top of it so it can be lazily unmounted with
/// `umount_detach("/")` right after.
pub fn pivot_root_here() -> io::Result<()> {
    // SAFETY: both arguments are static NUL-terminated strings.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
    check(ret).map(drop)
}

/// `fchdir(fd)`.
pub fn fchdir(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is borrowed for the call.
    check_int(unsafe { libc::fchdir(fd.as_raw_fd()) }).map(drop)
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: mark every fd from `first`
/// on close-on-exec, so nothing the caller inherited leaks past execve.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes integers only and never touches memory.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    check(ret).map(drop)
}

/// `isatty(fd)`.
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

// ---------------------------------------------------------------------------
// Network
// ---------------------------------------------------------------------------

/// Bring the loopback interface up in the current network namespace
/// (a new network namespace starts with `lo` down).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket takes integers only.
    let fd = check_int(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    let sock = owned(libc::c_long::from(fd));
    // SAFETY: ifreq is plain data; zero is a valid initial value.
    let mut req = unsafe { std::mem::zeroed::<libc::ifreq>() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming "lo"; SIOCGIFFLAGS writes the
    // flags union member.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the flags member was initialised by SIOCGIFFLAGS above.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: `req` is a valid ifreq with name and flags set.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(drop)
}

// ---------------------------------------------------------------------------
// Calls used only to *attack* a sandbox (the probe program and doctor).
// ---------------------------------------------------------------------------

/// `unshare(2)`.
pub fn unshare(flags: u64) -> io::Result<()> {
    let flags = libc::c_int::try_from(flags)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "clone flags out of range"))?;
    // SAFETY: unshare takes an integer flag set only.
    check_int(unsafe { libc::unshare(flags) }).map(drop)
}

/// Push one byte into the terminal's input queue with `ioctl(TIOCSTI)` —
/// the classic sandbox-escape injection (CVE-2017-5226).
pub fn tiocsti(fd: RawFd, byte: u8) -> io::Result<()> {
    let b = byte as libc::c_char;
    // SAFETY: TIOCSTI reads one byte through the pointer, which is live.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSTI, &b) }).map(drop)
}

/// `ioctl(fd, TIOCLINUX, subcode)`: the Linux console ioctl, abusable for
/// paste-buffer injection (CVE-2023-1523 class).
pub fn tioclinux(fd: RawFd) -> io::Result<()> {
    let sub: libc::c_char = 3; // TIOCL_PASTESEL
                               // SAFETY: TIOCLINUX reads the subcode byte through the live pointer.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCLINUX, &sub) }).map(drop)
}

/// `ptrace(PTRACE_ATTACH, pid)`.
pub fn ptrace_attach(pid: pid_t) -> io::Result<()> {
    // SAFETY: PTRACE_ATTACH takes no pointers (addr and data are ignored).
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(ret).map(drop)
}

/// `io_uring_setup(8, params)`: returns Ok if the kernel let us create a ring.
pub fn io_uring_setup_probe() -> io::Result<()> {
    let mut params = [0u8; 120];
    // SAFETY: `params` is a zeroed buffer the size of struct io_uring_params.
    let ret = unsafe { libc::syscall(libc::SYS_io_uring_setup, 8u32, params.as_mut_ptr()) };
    check(ret).map(owned).map(drop)
}

/// `bpf(BPF_PROG_LOAD, ...)` with an empty attribute: Ok means the call was
/// not filtered (it still fails with EINVAL/EPERM on its own).
pub fn bpf_probe() -> io::Result<()> {
    let mut a = [0u8; 128];
    // SAFETY: `a` is a zeroed buffer the size of a small union bpf_attr.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, 5, a.as_mut_ptr(), a.len()) };
    check(ret).map(drop)
}

/// `shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600)`, removed again at once:
/// Ok means System V shared memory could be created.
pub fn shmget_probe() -> io::Result<()> {
    // SAFETY: integer arguments only.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
    let id = check_int(id)?;
    // SAFETY: IPC_RMID takes no buffer (a null pointer is allowed).
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    Ok(())
}

/// `keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)`.
pub fn keyctl_probe() -> io::Result<()> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i64, 0) };
    check(ret).map(drop)
}

/// `userfaultfd(O_CLOEXEC)`.
pub fn userfaultfd_probe() -> io::Result<()> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) };
    check(ret).map(owned).map(drop)
}

/// `perf_event_open` with an all-zero attribute.
pub fn perf_event_open_probe() -> io::Result<()> {
    let mut a = [0u8; 128];
    a[4..8].copy_from_slice(&128u32.to_ne_bytes()); // attr.size
                                                    // SAFETY: `a` is a zeroed perf_event_attr of the size it declares.
    let ret = unsafe { libc::syscall(libc::SYS_perf_event_open, a.as_mut_ptr(), 0, -1, -1, 0) };
    check(ret).map(owned).map(drop)
}

/// `open_by_handle_at` with a bogus handle (the "shocker" container escape).
pub fn open_by_handle_at_probe() -> io::Result<()> {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&8u32.to_ne_bytes());
    // SAFETY: `h` is a zeroed file_handle with an 8-byte payload.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            libc::AT_FDCWD,
            h.as_mut_ptr(),
            0,
        )
    };
    check(ret).map(owned).map(drop)
}

/// Whether a raw fd number is open.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only inspects the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// The Landlock ABI version the running kernel offers, or the error
/// (`ENOSYS`: not built in; `EOPNOTSUPP`: built in but disabled at boot).
pub fn landlock_abi_version() -> io::Result<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: with the VERSION flag the kernel ignores the (null) attribute
    // pointer and size and only returns the ABI number.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    check(ret).map(|v| i32::try_from(v).unwrap_or(i32::MAX))
}

/// Start a new session, open a fresh pseudo-terminal and make its slave our
/// controlling terminal. Returns the slave fd. Used by the probe to test
/// terminal injection against a terminal it controls.
pub fn controlling_pty() -> io::Result<OwnedFd> {
    setsid()?;
    let (master, slave) = openpty()?;
    set_controlling_tty(slave.as_raw_fd())?;
    // Keep the master open for the life of the process: the slave stays
    // usable only while the master exists.
    std::mem::forget(master);
    Ok(slave)
}

/// Send one file descriptor over a unix socket (SCM_RIGHTS), with a
/// one-byte payload.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    send_fds(sock, &[fd], &[0])
}

/// Receive one file descriptor sent with [`send_fd`]. `Ok(None)` at end of
/// stream.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let (payload, fds) = recv_fds(sock, 1)?;
    if payload.is_empty() {
        return Ok(None);
    }
    fds.into_iter()
        .next()
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no file descriptor received"))
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

/// `dup2(old, new)` (the result is not close-on-exec).
pub fn dup2(old: BorrowedFd<'_>, new: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table.
    check_int(unsafe { libc::dup2(old.as_raw_fd(), new) }).map(drop)
}

/// `setsid()`.
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid takes no arguments.
    check_int(unsafe { libc::setsid() }).map(drop)
}

/// A signalfd for `set` (which must be blocked), close-on-exec.
pub fn signalfd(set: &SigSet) -> io::Result<OwnedFd> {
    // SAFETY: `set.0` is an initialised sigset_t.
    let fd =
        check_int(unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    Ok(owned(libc::c_long::from(fd)))
}

/// Read one pending signal from a signalfd; `Ok(None)` when none is pending.
pub fn read_signalfd(fd: BorrowedFd<'_>) -> io::Result<Option<Signal>> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut info = unsafe { std::mem::zeroed::<libc::signalfd_siginfo>() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is writable for `size` bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), std::ptr::addr_of_mut!(info).cast(), size) };
    match check(n as libc::c_long) {
        Ok(n) if n as usize == size => {
            let code = info.ssi_code;
            Ok(Some(Signal {
                signo: info.ssi_signo as i32,
                from_process: code == libc::SI_USER
                    || code == libc::SI_QUEUE
                    || code == libc::SI_TKILL,
            }))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// `poll(2)` for readability on `fds`, with a timeout in milliseconds (-1:
/// forever). Returns, for each fd, whether it is readable (or hung up).
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<bool>> {
    Ok(poll_revents(fds, timeout_ms)?
        .into_iter()
        .map(|r| r != 0)
        .collect())
}

/// Send `payload` with up to 8 file descriptors (SCM_RIGHTS).
pub fn send_fds(sock: BorrowedFd<'_>, fds: &[BorrowedFd<'_>], payload: &[u8]) -> io::Result<()> {
    if fds.len() > 8 || payload.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "1-8 fds and a non-empty payload",
        ));
    }
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; zero is a valid initial value.
    let mut msg = unsafe { std::mem::zeroed::<libc::msghdr>() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as u32;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(bytes) } as usize;
        // SAFETY: `cbuf` (128 bytes) holds a header plus 8 ints; the first
        // header pointer is inside it and writable.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, f) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), f.as_raw_fd());
            }
        }
    }
    // SAFETY: `msg` and the buffers it points to live across the call; the
    // kernel only reads from `payload`.
    let ret = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    check(ret as libc::c_long).map(drop)
}

/// Receive a payload (up to `max` bytes) and any file descriptors sent
/// with [`send_fds`]. An empty payload means end of stream.
pub fn recv_fds(sock: BorrowedFd<'_>, max: usize) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; max.max(1)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; zero is a valid initial value.
    let mut msg = unsafe { std::mem::zeroed::<libc::msghdr>() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: `msg` points to live buffers of the sizes it declares.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    let n = check(n as libc::c_long)? as usize;
    buf.truncate(n);
    let mut fds = Vec::new();
    // SAFETY: the kernel filled the control buffer; the CMSG macros walk it
    // within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let count =
                    ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    fds.push(owned(libc::c_long::from(std::ptr::read_unaligned(
                        data.add(i),
                    ))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((buf, fds))
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

/// A connected pair of unix SOCK_SEQPACKET sockets (message boundaries are
/// kept), close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    check_int(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok((
        owned(libc::c_long::from(fds[0])),
        owned(libc::c_long::from(fds[1])),
    ))
}

/// `lgetxattr(path, name)`: the value of an extended attribute of `path`
/// itself (no symlink following), or `None` when it has none.
pub fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = cstr(path).ok()?;
    let n = cstring(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated; `buf` is writable for its length.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let r = usize::try_from(r).ok()?;
    buf.truncate(r);
    Some(buf)
}

/// A new pseudo-terminal pair (master, slave), both close-on-exec; the
/// slave is not made anyone's controlling terminal.
pub fn openpty() -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: posix_openpt takes flags only.
    let m =
        check_int(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
    let master = owned(libc::c_long::from(m));
    // SAFETY: grantpt/unlockpt take a valid open master fd.
    check_int(unsafe { libc::grantpt(master.as_raw_fd()) })?;
    // SAFETY: as above.
    check_int(unsafe { libc::unlockpt(master.as_raw_fd()) })?;
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: `buf` is writable for its full length, which we pass.
    let r = unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: ptsname_r NUL-terminated the name inside `buf`.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    // SAFETY: `name` is a NUL-terminated path.
    let s = check_int(unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    Ok((master, owned(libc::c_long::from(s))))
}

/// Make the terminal on `fd` the controlling terminal of the calling
/// session leader (TIOCSCTTY, without stealing).
pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}

/// Saved terminal settings, restored by [`restore_terminal`].
pub struct Termios(libc::termios);

/// Put the terminal on `fd` in raw mode; returns the previous settings.
pub fn make_raw(fd: RawFd) -> io::Result<Termios> {
    // SAFETY: termios is plain data that tcgetattr fills in.
    let mut t = unsafe { std::mem::zeroed::<libc::termios>() };
    // SAFETY: `t` is a valid out-pointer.
    check_int(unsafe { libc::tcgetattr(fd, &mut t) })?;
    let saved = Termios(t);
    // SAFETY: `t` is an initialised termios.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: `t` is a valid termios.
    check_int(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) })?;
    Ok(saved)
}

/// Restore settings saved by [`make_raw`].
pub fn restore_terminal(fd: RawFd, t: &Termios) {
    // SAFETY: `t.0` is a termios obtained from tcgetattr.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t.0) };
}

/// Copy the window size of terminal `from` to terminal `to`.
pub fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data.
    let mut ws = unsafe { std::mem::zeroed::<libc::winsize>() };
    // SAFETY: TIOCGWINSZ fills `ws`; TIOCSWINSZ reads it.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

// ---------------------------------------------------------------------------
// Seccomp user notification (audit)

/// Install the classic-BPF program `prog` (instructions as `(code, jt, jf,
/// k)`) as a seccomp filter on the calling thread and return its
/// notification listener (`SECCOMP_FILTER_FLAG_NEW_LISTENER`, close-on-exec).
/// no_new_privs must already be set.
pub fn seccomp_install_with_listener(prog: &[(u16, u8, u8, u32)]) -> io::Result<OwnedFd> {
    let mut filter: Vec<libc::sock_filter> = prog
        .iter()
        .map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
        .collect();
    let fprog = libc::sock_fprog {
        len: u16::try_from(filter.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "filter too long"))?,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `filter`, which outlives the call; the
    // kernel copies the program before returning.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    check(r).map(owned)
}

/// One seccomp notification: a system call a sandboxed process is blocked
/// in until it is answered.
#[derive(Debug, Clone, Copy)]
pub struct SeccompNotif {
    /// Cookie to answer with.
    pub id: u64,
    /// The caller, in the listener's pid namespace.
    pub pid: u32,
    /// System call number.
    pub nr: i32,
    /// AUDIT_ARCH_* of the call.
    pub arch: u32,
    /// The six arguments.
    pub args: [u64; 6],
}

/// Receive one notification (blocks unless `fd` is known readable).
pub fn seccomp_notif_recv(fd: BorrowedFd<'_>) -> io::Result<SeccompNotif> {
    // SAFETY: all-zero is a valid seccomp_notif (plain integers); the kernel
    // requires the buffer to be zeroed.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `n` is a seccomp_notif the kernel fills in; the ioctl
        // number matches that type.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) };
        match check_int(r) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(SeccompNotif {
        id: n.id,
        pid: n.pid,
        nr: n.data.nr,
        arch: n.data.arch,
        args: n.data.args,
    })
}

/// Answer notification `id`: `None` lets the kernel run the call as if no
/// filter had asked (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`); `Some(errno)`
/// fails it with that errno.
pub fn seccomp_notif_respond(fd: BorrowedFd<'_>, id: u64, fail: Option<i32>) -> io::Result<()> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: fail.map_or(0, |e| -e),
        flags: if fail.is_some() {
            0
        } else {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        },
    };
    // SAFETY: `resp` is a fully initialised seccomp_notif_resp, matching the
    // ioctl number.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    check_int(r).map(drop)
}

/// Whether notification `id` is still pending (its caller alive and
/// waiting): what was read from the caller's memory in between is its own.
pub fn seccomp_notif_id_valid(fd: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64 from the pointer, which is valid.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) };
    r == 0
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
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, writable for its length; `remote` is
    // only interpreted in the other process's address space by the kernel,
    // which checks it.
    let r = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    check(r as libc::c_long).map(|n| n as usize)
}

/// `poll(2)` on `fds` for input; returns each fd's `revents`.
pub fn poll_revents(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<i16>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `p` is a valid array of `p.len()` pollfd structures.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
        match check_int(r) {
            Ok(_) => return Ok(p.iter().map(|x| x.revents).collect()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Ask the kernel to hand a notification's caller and the listener the
/// CPU directly, as a synchronous wake-up (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`,
/// Linux 6.6): the caller waits for the answer anyway, so this saves a
/// scheduler round trip per observed call. Errors on older kernels.
pub fn seccomp_notif_sync_wakeup(fd: BorrowedFd<'_>) -> io::Result<()> {
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
    // SAFETY: the ioctl takes the flags by value; no memory is passed.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
    check_int(r).map(drop)
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

/// Restore the default action of `sig` (for SIGPIPE: end the process
/// quietly when writing to a closed pipe).
pub fn default_signal(sig: i32) {
    // SAFETY: installing SIG_DFL has no handler to call and no memory to
    // share; an invalid signal number only returns an error.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

// ---------------------------------------------------------------------------
// Directory-relative file operations (review and apply of cow layers)
// ---------------------------------------------------------------------------

/// `openat2(dirfd, path, flags | O_CLOEXEC, mode, resolve)` for real I/O:
/// with `resolve::BENEATH | NO_SYMLINKS | NO_MAGICLINKS` the lookup can
/// neither leave `dirfd` nor follow any link on the way.
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve_flags: u64,
) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve: resolve_flags,
    };
    // SAFETY: `c` is NUL-terminated, `how` is a valid open_how whose size we
    // pass, both live across the call; `dirfd` is borrowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd.as_raw_fd(),
            c.as_ptr(),
            &how,
            std::mem::size_of::<OpenHow>(),
        )
    };
    check(ret).map(owned)
}

/// What `fstatat` says about one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// Device number of a device node (`st_rdev`).
    pub rdev: u64,
    /// Device of the file system holding it.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Last content change, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Last status change (content, mode, links, rename), nanoseconds.
    pub ctime_ns: i128,
}

impl Stat {
    /// The type bits (`S_IFMT`).
    pub fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }
    /// A folder.
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
    /// A symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }
    /// An overlayfs whiteout (character device 0:0).
    pub fn is_whiteout(&self) -> bool {
        self.kind() == libc::S_IFCHR && self.rdev == 0
    }
    /// The name of a type that is none of file, folder or link.
    pub fn special_kind(&self) -> Option<&'static str> {
        match self.kind() {
            libc::S_IFIFO => Some("fifo"),
            libc::S_IFSOCK => Some("socket"),
            libc::S_IFCHR => Some("character device"),
            libc::S_IFBLK => Some("block device"),
            _ => None,
        }
    }
}

/// `AT_SYMLINK_NOFOLLOW`, with `AT_EMPTY_PATH` when `name` is empty (the
/// directory fd itself is meant).
fn nofollow_flags(name: &Path) -> libc::c_int {
    if name.as_os_str().is_empty() {
        libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    }
}

/// `fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)`; an empty `name` states
/// `dirfd` itself (AT_EMPTY_PATH).
pub fn fstatat(dirfd: BorrowedFd<'_>, name: &Path) -> io::Result<Stat> {
    let c = cstr(name)?;
    let flags = nofollow_flags(name);
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `c` is NUL-terminated; `st` is writable storage for one stat
    // that the kernel fills completely on success.
    check_int(unsafe { libc::fstatat(dirfd.as_raw_fd(), c.as_ptr(), st.as_mut_ptr(), flags) })?;
    // SAFETY: fstatat returned 0, so the kernel initialised `st`.
    let st = unsafe { st.assume_init() };
    Ok(Stat {
        mode: st.st_mode,
        size: u64::try_from(st.st_size).unwrap_or(0),
        rdev: st.st_rdev,
        dev: st.st_dev,
        ino: st.st_ino,
        mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
        ctime_ns: i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec),
    })
}

/// The entries of the folder open at `fd` (without `.` and `..`), read
/// with getdents64 from the descriptor itself, so no path is looked up.
pub fn read_dir_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    Ok(read_dir_typed(fd)?.into_iter().map(|(n, _)| n).collect())
}

/// `d_type` of a folder entry that is a folder (DT_DIR).
pub const DT_DIR: u8 = 4;
/// `d_type` when the file system does not say (DT_UNKNOWN): stat it.
pub const DT_UNKNOWN: u8 = 0;

/// Like [`read_dir_fd`], with each entry's `d_type` ([`DT_DIR`],
/// [`DT_UNKNOWN`], ...), so that a walk need not stat every entry.
pub fn read_dir_typed(fd: BorrowedFd<'_>) -> io::Result<Vec<(std::ffi::OsString, u8)>> {
    use std::os::unix::ffi::OsStrExt;
    // Read from a private duplicate so the caller's offset is not consumed.
    let own = openat2(fd, Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0, 0)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: `buf` is writable for its whole length, which we pass.
        let n = check(unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                own.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        })?;
        let n = usize::try_from(n).unwrap_or(0);
        if n == 0 {
            return Ok(out);
        }
        // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
        let mut at = 0;
        while at + 19 <= n {
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            if reclen < 19 || at + reclen > n {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad dirent"));
            }
            let name = &buf[at + 19..at + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                out.push((
                    std::ffi::OsStr::from_bytes(name).to_os_string(),
                    buf[at + 18],
                ));
            }
            at += reclen;
        }
    }
}

/// `readlinkat(dirfd, name)`: a symbolic link's target, as bytes.
pub fn readlinkat(dirfd: BorrowedFd<'_>, name: &Path) -> io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let c = cstr(name)?;
    let mut buf = vec![0u8; 4097];
    // SAFETY: `c` is NUL-terminated; `buf` is writable for its length.
    let n = unsafe {
        libc::readlinkat(
            dirfd.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(check(n as libc::c_long)?).unwrap_or(0);
    if n >= buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "link target too long",
        ));
    }
    buf.truncate(n);
    Ok(std::ffi::OsStr::from_bytes(&buf).into())
}

/// `fgetxattr(fd, name)`: an extended attribute of the object open at
/// `fd`, or `None` when it has none.
pub fn fgetxattr(fd: BorrowedFd<'_>, name: &str) -> Option<Vec<u8>> {
    let n = cstring(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: `n` is NUL-terminated; `buf` is writable for its length.
    let r = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let r = usize::try_from(r).ok()?;
    buf.truncate(r);
    Some(buf)
}

/// `unlinkat(dirfd, name, dir ? AT_REMOVEDIR : 0)`.
pub fn unlinkat(dirfd: BorrowedFd<'_>, name: &Path, dir: bool) -> io::Result<()> {
    let c = cstr(name)?;
    let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `c` is NUL-terminated and lives across the call.
    check_int(unsafe { libc::unlinkat(dirfd.as_raw_fd(), c.as_ptr(), flags) }).map(drop)
}

/// Flags for [`renameat2`].
pub mod rename {
    /// Fail with EEXIST instead of replacing the new name.
    pub const NOREPLACE: u32 = 1;
    /// Swap the two names atomically (both must exist).
    pub const EXCHANGE: u32 = 2;
}

/// `renameat2(olddir, old, newdir, new, flags)`: names are looked up in
/// the given folders only (single components are expected).
pub fn renameat2(
    olddir: BorrowedFd<'_>,
    old: &Path,
    newdir: BorrowedFd<'_>,
    new: &Path,
    flags: u32,
) -> io::Result<()> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    // SAFETY: both names are NUL-terminated and live across the call; the
    // folder fds are borrowed.
    check(unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            olddir.as_raw_fd(),
            o.as_ptr(),
            newdir.as_raw_fd(),
            n.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments; the fd is borrowed.
    check_int(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

/// `getrandom(buf, 0)`: fill `buf` from the kernel's random source.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        // SAFETY: the slice from `at` is writable for the length we pass.
        let n = check(unsafe {
            libc::syscall(
                libc::SYS_getrandom,
                buf[at..].as_mut_ptr(),
                buf.len() - at,
                0,
            )
        })?;
        at += usize::try_from(n).unwrap_or(0);
    }
    Ok(())
}

/// The folder `rel` beneath `root` (`""` or `"."` for `root` itself),
/// opened for reading its entries with no link followed on the way and
/// no escape from `root` (RESOLVE_BENEATH | NO_SYMLINKS | NO_MAGICLINKS).
pub fn open_dir_beneath(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    openat2(
        root,
        rel,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
        resolve::BENEATH | resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS,
    )
}

/// The folder at the absolute `path`, opened for reading its entries,
/// with no link followed anywhere on the way.
pub fn open_dir_nofollow(path: &Path) -> io::Result<OwnedFd> {
    let p = openat2_path(
        None,
        path,
        libc::O_DIRECTORY,
        resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS,
    )?;
    open_dir_beneath(p.as_fd(), Path::new("."))
}

/// `flock(fd, LOCK_EX [| LOCK_NB])`: an exclusive advisory lock on the
/// open file, held until every descriptor of that open file is closed.
/// With `wait == false`, `Ok(false)` when another holder has it.
pub fn flock_exclusive(fd: BorrowedFd<'_>, wait: bool) -> io::Result<bool> {
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: plain integer arguments; the fd is borrowed.
        let r = unsafe { libc::flock(fd.as_raw_fd(), op) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !wait => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// The birth time of `name` in `dirfd` (statx STATX_BTIME, no link
/// followed), nanoseconds since the epoch, or `None` where the file system
/// does not record one. Unlike the inode number, which the kernel reuses
/// at once, it tells a file apart from one made later under the same
/// inode.
pub fn birth_time(dirfd: BorrowedFd<'_>, name: &Path) -> Option<i128> {
    let c = cstr(name).ok()?;
    let flags = nofollow_flags(name);
    let mut st = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `c` is NUL-terminated; `st` is writable storage for one
    // statx that the kernel fills on success.
    let r = unsafe {
        libc::statx(
            dirfd.as_raw_fd(),
            c.as_ptr(),
            flags,
            libc::STATX_BTIME,
            st.as_mut_ptr(),
        )
    };
    if r != 0 {
        return None;
    }
    // SAFETY: statx returned 0, so the kernel initialised `st` (it was
    // zeroed before, so unset fields read as 0).
    let st = unsafe { st.assume_init() };
    (st.stx_mask & libc::STATX_BTIME != 0)
        .then(|| i128::from(st.stx_btime.tv_sec) * 1_000_000_000 + i128::from(st.stx_btime.tv_nsec))
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

/// An integer `SOL_SOCKET` option of the socket open at `fd`.
fn socket_option(fd: BorrowedFd<'_>, name: libc::c_int) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are live, writable and sized as passed.
    check_int(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            std::ptr::addr_of_mut!(v).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// The address family of the socket open at `fd` (`SO_DOMAIN`).
pub fn socket_domain(fd: BorrowedFd<'_>) -> io::Result<i32> {
    socket_option(fd, libc::SO_DOMAIN)
}

/// `connect(fd, addr)` with `addr` the raw bytes of a socket address
/// (at most 128: a sockaddr_storage).
pub fn connect_raw(fd: BorrowedFd<'_>, addr: &[u8]) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut sa: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::sockaddr_storage>();
    if addr.len() > size {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `addr.len()` bytes fit in `sa` (checked above) and the two do
    // not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            addr.as_ptr(),
            std::ptr::addr_of_mut!(sa).cast::<u8>(),
            addr.len(),
        );
    }
    let len = libc::socklen_t::try_from(addr.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `sa` is initialised and at least `len` bytes long.
    check_int(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            std::ptr::addr_of!(sa).cast::<libc::sockaddr>(),
            len,
        )
    })
    .map(drop)
}

/// Answer notification `id` with the call's result, without running it:
/// `Ok(())` returns 0 to the caller, `Err(errno)` fails it with `errno`.
pub fn seccomp_notif_reply(fd: BorrowedFd<'_>, id: u64, result: Result<(), i32>) -> io::Result<()> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: result.err().map_or(0, |e| -e),
        flags: 0,
    };
    // SAFETY: `resp` is a fully initialised seccomp_notif_resp, matching the
    // ioctl number.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    check_int(r).map(drop)
}

/// The files that bound unix sockets of this network namespace are bound
/// to, as (device, inode) in the kernel's own encoding (major << 20 |
/// minor; the inode's low 32 bits), read through sock_diag
/// (`UDIAG_SHOW_VFS`). A socket's file and the socket are both pinned by
/// the socket while it lives.
pub fn unix_bound_files() -> io::Result<Vec<(u32, u32)>> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const UDIAG_SHOW_VFS: u32 = 0x2;
    const UNIX_DIAG_VFS: u16 = 1;
    // SAFETY: socket takes three integers.
    let s = check_int(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    })
    .map(|fd| owned(libc::c_long::from(fd)))?;
    // nlmsghdr (16) + unix_diag_req (24).
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = libc::AF_UNIX as u8;
    // udiag_states: every state.
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    req[28..32].copy_from_slice(&UDIAG_SHOW_VFS.to_ne_bytes());
    // SAFETY: `req` is live and its length is passed.
    let sent = unsafe { libc::send(s.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: `buf` is live, writable and its length is passed.
        let n = unsafe { libc::recv(s.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        if n == 0 {
            return Ok(out);
        }
        let mut at = 0;
        while at + 16 <= n {
            let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
            let len = word(at) as usize;
            let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            if len < 16 || at + len > n {
                return Err(io::Error::from_raw_os_error(libc::EPROTO));
            }
            if kind == libc::NLMSG_DONE as u16 {
                return Ok(out);
            }
            if kind == libc::NLMSG_ERROR as u16 {
                let code =
                    i32::from_ne_bytes([buf[at + 16], buf[at + 17], buf[at + 18], buf[at + 19]]);
                return Err(io::Error::from_raw_os_error(-code));
            }
            // unix_diag_msg is 16 bytes; attributes follow, 4-aligned.
            let mut a = at + 32;
            while a + 4 <= at + len {
                let alen = usize::from(u16::from_ne_bytes([buf[a], buf[a + 1]]));
                let akind = u16::from_ne_bytes([buf[a + 2], buf[a + 3]]);
                if alen < 4 || a + alen > at + len {
                    break;
                }
                if akind == UNIX_DIAG_VFS && alen >= 12 {
                    out.push((word(a + 8), word(a + 4)));
                }
                a += (alen + 3) & !3;
            }
            at += (len + 3) & !3;
        }
    }
}

/// The file status flags of the open file at `fd` (`F_GETFL`).
pub fn file_status_flags(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: F_GETFL takes no argument.
    check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })
}

/// Set the file status flags of the open file at `fd` (`F_SETFL`).
pub fn set_file_status_flags(fd: BorrowedFd<'_>, flags: i32) -> io::Result<()> {
    // SAFETY: F_SETFL takes an integer.
    check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) }).map(drop)
}

/// Wait up to `timeout_ms` for `fd` to become writable (a connect that
/// finished, either way).
pub fn poll_writable(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    loop {
        // SAFETY: one live pollfd, count 1.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        match check_int(r) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A socket's pending error (`SO_ERROR`, 0 for none): how a non-blocking
/// connect ended.
pub fn socket_error(fd: BorrowedFd<'_>) -> io::Result<i32> {
    socket_option(fd, libc::SO_ERROR)
}

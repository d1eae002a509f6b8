//! Seccomp user notification: the audit observer's listener.

use super::*;

// A kernel flag constant, narrowed to the field that carries it (it fits).
#[allow(clippy::cast_possible_truncation)]
const FLAG_CONTINUE: u32 = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;

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
        flags: if fail.is_some() { 0 } else { FLAG_CONTINUE },
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

//! Calls used only to *attack* a sandbox (paddock-probe): each is expected to fail inside one. Behind the `attack` feature, which only paddock-probe enables.

use super::*;

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

//! What an OCI runtime needs beyond the sandbox's calls: joining a
//! namespace by path, switching user and group, a container's capability
//! sets, the `exec.fifo` that holds a created container until `start`.

use super::*;

/// `setns(fd, 0)`: join the namespace `fd` refers to (a `/proc/PID/ns/*`
/// file or a bind mount of one, such as `/run/netns/NAME`).
pub fn setns(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns takes a borrowed fd and an integer; no pointers.
    check_int(unsafe { libc::setns(fd.as_raw_fd(), 0) }).map(drop)
}

/// Become `uid`/`gid` with exactly `groups` as supplementary groups
/// (`setgroups`, then `setresgid`, then `setresuid`, so that the group
/// calls still have the privilege they need). With `keep_caps`, the
/// permitted capabilities survive the switch away from uid 0 (the caller
/// then sets the sets it wants with [`set_capability_sets`]).
pub fn switch_user(uid: u32, gid: u32, groups: &[u32], keep_caps: bool) -> io::Result<()> {
    if keep_caps {
        // SAFETY: PR_SET_KEEPCAPS takes an integer flag only.
        check_int(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) })?;
    }
    let gs: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: `gs` is a valid array of `gs.len()` gids that lives across
    // the call.
    check_int(unsafe { libc::setgroups(gs.len(), gs.as_ptr()) })?;
    // SAFETY: setresgid/setresuid take integers only.
    check_int(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: as above.
    check_int(unsafe { libc::setresuid(uid, uid, uid) })?;
    Ok(())
}

/// The highest capability number this kernel knows.
fn last_cap() -> u32 {
    kernel_last_cap()
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(40)
        .min(63)
}

/// Drop every capability outside `keep` from the bounding set, and
/// nothing else: the effective set stays as it is (a user switch still
/// needs CAP_SETUID after this, and dropping needs CAP_SETPCAP).
pub fn limit_bounding_set(keep: u64) -> io::Result<()> {
    for cap in 0..=last_cap() {
        // SAFETY: PR_CAPBSET_READ takes a capability number only.
        let held = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if keep & (1 << cap) != 0 || held == 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number only.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if let Err(e) = check_int(ret) {
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Capability sets as bit masks (bit N = capability N).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    /// What no program started from here can ever gain beyond.
    pub bounding: u64,
    /// In force now.
    pub effective: u64,
    /// May be made effective.
    pub permitted: u64,
    /// Kept across execve for programs with file capabilities.
    pub inheritable: u64,
    /// Kept across execve for any program.
    pub ambient: u64,
}

/// Set a container process's capability sets: drop what is not in the
/// bounding set (needs CAP_SETPCAP, so call this before giving it up),
/// then set effective, permitted and inheritable, then raise the ambient
/// ones (each must be permitted and inheritable). Unlike
/// [`drop_capabilities_except`], uid 0 keeps its meaning: a root process
/// regains its permitted set on execve, as in any container.
pub fn set_capability_sets(c: CapSets) -> io::Result<()> {
    limit_bounding_set(c.bounding)?;
    let hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let lo = |m: u64| (m & 0xffff_ffff) as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        CapData {
            effective: lo(c.effective),
            permitted: lo(c.permitted),
            inheritable: lo(c.inheritable),
        },
        CapData {
            effective: hi(c.effective),
            permitted: hi(c.permitted),
            inheritable: hi(c.inheritable),
        },
    ];
    // SAFETY: `hdr` and `data` are valid v3 capability structures (two
    // entries, as version 3 requires) that live across the call.
    check(unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) })?;
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
    for cap in 0..=last_cap() {
        if c.ambient & (1 << cap) != 0 {
            // SAFETY: PR_CAP_AMBIENT_RAISE takes a capability number only.
            check_int(unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            })?;
        }
    }
    Ok(())
}

/// `mkfifo(path, mode)`.
pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is NUL-terminated and lives across the call.
    check_int(unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// `umask(mask)`; returns the previous mask.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask takes an integer and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Set both limits of one resource (`setrlimit`).
pub fn set_rlimit_pair(resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `r` is a valid rlimit for the duration of the call.
    check_int(unsafe { libc::setrlimit(resource as _, &r) }).map(drop)
}

/// `mknod(path, mode, makedev(major, minor))`.
pub fn mknod(path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let c = cstr(path)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: `c` is NUL-terminated and lives across the call.
    check_int(unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev) }).map(drop)
}

/// The seals a sealed copy of the runtime's binary carries: nothing can
/// write, grow, shrink or unseal it.
const BINARY_SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether this process runs from a sealed in-memory copy of its binary
/// ([`reexec_sealed`]): the file `/proc/self/exe` opens is a memfd that
/// carries every seal in [`BINARY_SEALS`].
pub fn running_sealed() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS takes an fd this function owns and no pointer;
    // on a file that is not a memfd it fails with EINVAL.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & BINARY_SEALS == BINARY_SEALS
}

/// Run this program again, from a sealed in-memory copy of its binary,
/// with `argv` and the current environment. A process that enters a
/// container's namespaces while still running the runtime's code can be
/// reached from inside (`/proc/PID/exe`); what it reaches then is the
/// copy, which cannot be written, and not the host's file, which the next
/// engine command would run as root. Only returns on failure.
pub fn reexec_sealed(argv: &[std::ffi::OsString]) -> io::Error {
    use std::os::unix::ffi::OsStrExt;
    const MFD_EXEC: libc::c_uint = 0x10;
    let name = c"paddock-oci";
    let create = |flags: libc::c_uint| {
        // SAFETY: `name` is a NUL-terminated string; the flags are integers.
        unsafe { libc::memfd_create(name.as_ptr(), flags) }
    };
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC says outright that the copy is to be executed (a kernel
    // with vm.memfd_noexec = 1 would otherwise seal it non-executable);
    // kernels before 6.3 do not know the flag.
    let mut raw = create(base | MFD_EXEC);
    if raw < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        raw = create(base);
    }
    if raw < 0 {
        return io::Error::last_os_error();
    }
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let copied = std::fs::File::open("/proc/self/exe").and_then(|mut src| {
        let mut dst = std::fs::File::from(fd.try_clone()?);
        io::copy(&mut src, &mut dst).map(drop)
    });
    if let Err(e) = copied {
        return e;
    }
    // SAFETY: F_ADD_SEALS takes an fd this function owns and an integer.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, BINARY_SEALS) } < 0 {
        return io::Error::last_os_error();
    }
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let args: io::Result<Vec<CString>> = argv.iter().map(|a| cstr(a.as_bytes())).collect();
    let env: io::Result<Vec<CString>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstr(&kv)
        })
        .collect();
    let (args, env) = match (args, env) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let (a, e) = (exec_array(&args), exec_array(&env));
    // SAFETY: the fd is open; the empty path is NUL-terminated; every
    // element of `a` and `e` is a NUL-terminated string that outlives the
    // call, and both arrays end with NULL. AT_EMPTY_PATH executes the fd
    // itself (an ELF binary, so its close-on-exec flag is no obstacle).
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

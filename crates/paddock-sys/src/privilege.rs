//! Privilege: no_new_privs, dumpability, capabilities, the Landlock ABI.

use super::*;

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

/// Whether the process is dumpable (`PR_GET_DUMPABLE`).
pub fn dumpable() -> io::Result<bool> {
    // SAFETY: PR_GET_DUMPABLE takes no arguments.
    check_int(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }).map(|v| v != 0)
}

pub(crate) const SECBIT_NOROOT: libc::c_ulong = 1 << 0;

pub(crate) const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;

pub(crate) const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;

pub(crate) const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;

pub(crate) const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;

pub(crate) const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;

pub(crate) const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

#[repr(C)]
pub(crate) struct CapHeader {
    pub(crate) version: u32,
    pub(crate) pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct CapData {
    pub(crate) effective: u32,
    pub(crate) permitted: u32,
    pub(crate) inheritable: u32,
}

pub(crate) const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

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
    // The bounding set is emptied once: a process forked after that (a
    // command of pid 1 or of the template) inherits the empty set and this
    // mark together, and asks once (a new user namespace would have given
    // it a full set again: capability 0 would be back). Otherwise each
    // capability is dropped without being read first: one call each.
    // SAFETY: PR_CAPBSET_READ takes a capability number only.
    let emptied = BOUNDING_SET_EMPTY.load(std::sync::atomic::Ordering::Relaxed)
        && unsafe { libc::prctl(libc::PR_CAPBSET_READ, 0, 0, 0, 0) } == 0;
    if !emptied {
        for cap in 0..=last_cap() {
            // SAFETY: PR_CAPBSET_DROP takes a capability number only.
            let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
            match check_int(ret) {
                Ok(_) => {}
                // EINVAL: the kernel does not know this capability; fine.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                // EPERM without CAP_SETPCAP: fine only if it is gone already.
                // SAFETY: PR_CAPBSET_READ takes a capability number only.
                Err(_) if unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) } == 0 => {}
                Err(e) => return Err(e),
            }
        }
        BOUNDING_SET_EMPTY.store(true, std::sync::atomic::Ordering::Relaxed);
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

/// The calling thread's capability sets (capget, version 3).
fn capget() -> io::Result<[CapData; 2]> {
    let hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: `hdr` is a valid header and `data` has room for the two
    // entries version 3 writes.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &hdr, data.as_mut_ptr()) };
    check(ret)?;
    Ok(data)
}

/// Set once this process (or the one it was forked from) emptied its
/// bounding set: the set never grows again, so a later call skips it.
static BOUNDING_SET_EMPTY: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The highest capability number this kernel knows, as
/// /proc/sys/kernel/cap_last_cap says (read once per process); None where
/// it cannot be read.
pub(crate) fn kernel_last_cap() -> Option<libc::c_ulong> {
    static LAST: std::sync::OnceLock<Option<libc::c_ulong>> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
    })
}

/// [`kernel_last_cap`], or 63 (the most a mask holds) where unknown:
/// dropping a capability the kernel does not know fails harmlessly.
fn last_cap() -> libc::c_ulong {
    kernel_last_cap().unwrap_or(63)
}

/// The effective capability mask of the calling thread (bit N = capability N).
pub fn effective_capabilities() -> io::Result<u64> {
    let data = capget()?;
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
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

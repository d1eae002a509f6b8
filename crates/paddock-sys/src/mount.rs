//! Mounts: the new mount API (open_tree, mount_setattr, move_mount), mount(2), pivot_root, `openat2` path resolution.

use super::*;

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
pub(crate) struct OpenHow {
    pub(crate) flags: u64,
    pub(crate) mode: u64,
    pub(crate) resolve: u64,
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
    openat2_or_walk(
        dirfd,
        path,
        libc::O_PATH | libc::O_CLOEXEC | extra_flags,
        0,
        resolve_flags,
    )
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

pub(crate) const OPEN_TREE_CLONE: u32 = 1;

pub(crate) const AT_RECURSIVE: u32 = 0x8000;

pub(crate) const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;

pub(crate) const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

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
pub(crate) struct MountAttr {
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

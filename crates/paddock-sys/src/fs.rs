//! Directory-relative file operations (the cow layers' review and apply) and descriptors.

use super::*;

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

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: mark every fd from `first`
/// on close-on-exec, so nothing the caller inherited leaks past execve.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes integers only and never touches memory.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    check(ret).map(drop)
}

/// Close every descriptor from 3 on but those in `keep` (`close_range`
/// over the gaps): a process that lives on after its parent (a daemon)
/// holds nothing of what it inherited. Descriptors owned elsewhere in the
/// process are closed too: call it only where nothing else will close
/// them (a process that ends with `exit`).
pub fn close_all_but(keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= 3)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    for k in keep.into_iter().chain([u32::MAX]) {
        if k > first {
            // SAFETY: close_range takes integers only and never touches memory.
            let ret = unsafe { libc::syscall(libc::SYS_close_range, first, k - 1, 0u32) };
            check(ret)?;
        }
        first = k.saturating_add(1);
    }
    Ok(())
}

/// `dup2(old, new)` (the result is not close-on-exec).
pub fn dup2(old: BorrowedFd<'_>, new: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table.
    check_int(unsafe { libc::dup2(old.as_raw_fd(), new) }).map(drop)
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
    openat2_or_walk(
        Some(dirfd),
        path,
        flags | libc::O_CLOEXEC,
        mode,
        resolve_flags,
    )
}

/// `openat2(dirfd, path, {flags, mode, resolve})` (`None`: AT_FDCWD), or,
/// where it answers ENOSYS (a sandbox's filter refuses it), the same
/// lookup a name at a time where it can be made exactly
/// ([`openat2_by_walk`]).
pub(crate) fn openat2_or_walk(
    dirfd: Option<BorrowedFd<'_>>,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve_flags: u64,
) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let how = OpenHow {
        flags: flags as u64,
        mode: u64::from(mode),
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
    match check(ret) {
        Ok(fd) => Ok(owned(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            openat2_by_walk(dirfd, path, flags, mode, resolve_flags)
        }
        Err(e) => Err(e),
    }
}

/// What `openat2` does with `NO_SYMLINKS` (and, if asked, `BENEATH` and
/// `NO_MAGICLINKS`), done one name at a time with `O_NOFOLLOW`, each
/// lookup starting from the folder the previous one opened: for where
/// `openat2` answers ENOSYS (a sandbox's seccomp filter, which refuses it
/// because its mode is out of sight, or a kernel before 5.6). Stricter
/// where it cannot be as exact: `..` is refused (EXDEV), and so is any
/// other combination of flags (ENOSYS).
pub(crate) fn openat2_by_walk(
    dirfd: Option<BorrowedFd<'_>>,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve_flags: u64,
) -> io::Result<OwnedFd> {
    use std::path::Component;
    let err = |n| io::Error::from_raw_os_error(n);
    let known = resolve::BENEATH | resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS;
    if resolve_flags & !known != 0 || resolve_flags & resolve::NO_SYMLINKS == 0 {
        return Err(err(libc::ENOSYS));
    }
    if path.as_os_str().is_empty() {
        return Err(err(libc::ENOENT));
    }
    let mut names = Vec::new();
    let mut absolute = false;
    for c in path.components() {
        match c {
            Component::RootDir => absolute = true,
            Component::CurDir => {}
            Component::Normal(n) => names.push(n),
            Component::ParentDir | Component::Prefix(_) => return Err(err(libc::EXDEV)),
        }
    }
    if absolute && resolve_flags & resolve::BENEATH != 0 {
        return Err(err(libc::EXDEV));
    }
    let dir_flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let start = match (absolute, dirfd) {
        (true, _) => openat_raw(None, Path::new("/"), dir_flags, 0)?,
        (false, Some(d)) => openat_raw(Some(d), Path::new("."), dir_flags, 0)?,
        (false, None) => openat_raw(None, Path::new("."), dir_flags, 0)?,
    };
    let Some((last, folders)) = names.split_last() else {
        return openat_raw(
            Some(start.as_fd()),
            Path::new("."),
            flags | libc::O_CLOEXEC,
            mode,
        );
    };
    let mut cur = start;
    for name in folders {
        let next = openat_raw(Some(cur.as_fd()), Path::new(name), dir_flags, 0)
            .map_err(|e| link_is_eloop(cur.as_fd(), Path::new(name), e))?;
        cur = next;
    }
    let last = Path::new(last);
    let fd = openat_raw(
        Some(cur.as_fd()),
        last,
        flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        mode,
    )
    .map_err(|e| link_is_eloop(cur.as_fd(), last, e))?;
    // O_PATH with O_NOFOLLOW opens a link itself; openat2 refuses it.
    if fstatat(fd.as_fd(), Path::new(""))?.mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(err(libc::ELOOP));
    }
    Ok(fd)
}

/// `openat(dirfd, path, flags, mode)`.
fn openat_raw(
    dirfd: Option<BorrowedFd<'_>>,
    path: &Path,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let dfd = dirfd.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `c` is NUL-terminated and lives across the call; `dfd` is
    // AT_FDCWD or a borrowed fd; the mode is an integer.
    let ret = unsafe { libc::openat(dfd, c.as_ptr(), flags, mode as libc::c_uint) };
    check(libc::c_long::from(ret)).map(owned)
}

/// The error a lookup of `name` in `dir` failed with, as openat2 would
/// give it: ELOOP when the name is a symbolic link.
fn link_is_eloop(dir: BorrowedFd<'_>, name: &Path, e: io::Error) -> io::Error {
    let link = fstatat(dir, name).is_ok_and(|st| st.mode & libc::S_IFMT == libc::S_IFLNK);
    if link {
        io::Error::from_raw_os_error(libc::ELOOP)
    } else {
        e
    }
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
pub(crate) fn nofollow_flags(name: &Path) -> libc::c_int {
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

/// The id of the mount `fd` is open on (`statx`, `STATX_MNT_ID`): two
/// mounts of one folder have one device and inode but two ids.
pub fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: the path is a static NUL-terminated empty string (with
    // AT_EMPTY_PATH the call is about `fd` itself), and `st` is writable
    // storage for one statx.
    check_int(unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID,
            st.as_mut_ptr(),
        )
    })?;
    // SAFETY: statx returned 0; the storage was zeroed before, so every
    // field is initialised whatever the kernel filled.
    let st = unsafe { st.assume_init() };
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(st.stx_mnt_id)
}

/// `PROC_SUPER_MAGIC`: what [`fs_magic`] says of a procfs.
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// The file system type of what `fd` is open at (`statfs.f_type`: its
/// magic number, as `EXT4_SUPER_MAGIC`).
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<i64> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `st` is writable storage for one statfs, which the kernel
    // fills completely on success.
    check_int(unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatfs returned 0, so the kernel initialised `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64)
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
    // Read from a private duplicate so the caller's offset is not consumed.
    let own = openat2(fd, Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0, 0)?;
    read_dir_here(own.as_fd())
}

/// [`read_dir_typed`] through `fd`'s own offset, with no second open: for
/// a folder descriptor just opened and read nowhere else (a walk's), so
/// that a folder costs one open, not two.
pub fn read_dir_here(own: BorrowedFd<'_>) -> io::Result<Vec<(std::ffi::OsString, u8)>> {
    use std::os::unix::ffi::OsStrExt;
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

/// A non-blocking, close-on-exec inotify instance.
pub fn inotify_init() -> io::Result<OwnedFd> {
    // SAFETY: plain flags; the kernel returns a new fd or -1.
    let fd = check_int(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
    Ok(owned(libc::c_long::from(fd)))
}

/// Watch `path` (links not followed, folders only) for `mask`.
pub fn inotify_watch_dir(fd: BorrowedFd<'_>, path: &Path, mask: u32) -> io::Result<()> {
    let c = cstr(path)?;
    let mask = mask | libc::IN_DONT_FOLLOW | libc::IN_ONLYDIR;
    // SAFETY: `c` is NUL-terminated and lives across the call.
    check_int(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) }).map(drop)
}

/// Watch the folder open at `dir` (any descriptor of it, `O_PATH` too)
/// for `mask`: by the descriptor, so no path is looked up again. Its
/// watch descriptor (the same one again for a folder already watched).
pub fn inotify_watch_fd(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, mask: u32) -> io::Result<i32> {
    let c = cstr(Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())))?;
    // The magic link is followed on purpose: it is the descriptor's folder.
    let mask = mask | libc::IN_ONLYDIR;
    // SAFETY: `c` is NUL-terminated and lives across the call.
    check_int(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) })
}

/// Stop watching `wd`.
pub fn inotify_unwatch(fd: BorrowedFd<'_>, wd: i32) {
    // SAFETY: integers only; an unknown `wd` is EINVAL, which is ignored.
    unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
}

/// One inotify event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InotifyEvent {
    /// The watch it came from (-1 for a queue overflow).
    pub wd: i32,
    /// `IN_*` bits.
    pub mask: u32,
    /// The entry's name in the watched folder (empty for the folder itself).
    pub name: std::ffi::OsString,
}

/// Every event pending on the non-blocking inotify `fd`; empty when none.
pub fn inotify_read(fd: BorrowedFd<'_>) -> io::Result<Vec<InotifyEvent>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(out),
                Some(libc::EINTR) => continue,
                _ => Err(e),
            };
        }
        if n == 0 {
            return Ok(out);
        }
        out.extend(
            parse_inotify(&buf[..n as usize])
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a cut inotify event"))?,
        );
    }
}

/// The events in one read's bytes (struct inotify_event: wd, mask,
/// cookie, len, then `len` bytes of NUL-padded name); None when cut.
fn parse_inotify(mut b: &[u8]) -> Option<Vec<InotifyEvent>> {
    use std::os::unix::ffi::OsStrExt;
    let word = |b: &[u8], i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(
            b.get(i * 4..i * 4 + 4)?.try_into().ok()?,
        ))
    };
    let mut out = Vec::new();
    while !b.is_empty() {
        let wd = word(b, 0)? as i32;
        let mask = word(b, 1)?;
        let len = word(b, 3)? as usize;
        let name = b.get(16..16 + len)?;
        let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
        out.push(InotifyEvent {
            wd,
            mask,
            name: std::ffi::OsStr::from_bytes(name).to_os_string(),
        });
        b = &b[16 + len..];
    }
    Some(out)
}

/// Read and drop every pending inotify event; true when there was one.
pub fn inotify_drain(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 4096];
    let mut any = false;
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return any;
        }
        any = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inotify_reports_entries_made_in_a_folder_watched_by_descriptor() {
        let d = std::env::temp_dir().join(format!("paddock-sys-inotify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let ino = inotify_init().unwrap();
        let dir = open_dir_nofollow(&d).unwrap();
        let wd = inotify_watch_fd(ino.as_fd(), dir.as_fd(), libc::IN_CREATE).unwrap();
        assert_eq!(
            inotify_watch_fd(ino.as_fd(), dir.as_fd(), libc::IN_CREATE).unwrap(),
            wd,
            "the same folder, the same watch"
        );
        assert!(inotify_read(ino.as_fd()).unwrap().is_empty());
        std::fs::write(d.join("a-name-longer-than-sixteen-bytes"), "").unwrap();
        std::fs::create_dir(d.join("b")).unwrap();
        let ev = inotify_read(ino.as_fd()).unwrap();
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0].wd, wd);
        assert_eq!(ev[0].name, "a-name-longer-than-sixteen-bytes");
        assert_eq!(ev[1].name, "b");
        assert_ne!(ev[1].mask & libc::IN_ISDIR, 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The walk that stands in for openat2 where it is refused answers as
    /// openat2 does: the same object, or an error where openat2 gives one
    /// (ELOOP for a link anywhere on the way, EXDEV for leaving the
    /// folder), and never follows a link.
    #[test]
    fn the_walk_without_openat2_answers_as_openat2() {
        use std::os::unix::fs::MetadataExt;
        let d = std::env::temp_dir().join(format!("paddock-sys-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("b", d.join("a/lb")).unwrap();
        std::os::unix::fs::symlink("f", d.join("a/b/lf")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("a/abs")).unwrap();
        let root = open_dir_nofollow(&d).unwrap();
        let r = root.as_fd();
        let all = resolve::BENEATH | resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS;
        let ino = |fd: &OwnedFd| {
            std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .unwrap()
                .ino()
        };
        let code = |e: io::Error| e.raw_os_error().unwrap_or(0);
        for (path, flags) in [
            ("a/b/f", libc::O_RDONLY),
            ("a/b/f", libc::O_PATH),
            ("./a/b", libc::O_PATH | libc::O_DIRECTORY),
            ("a/lb/f", libc::O_RDONLY),
            ("a/b/lf", libc::O_RDONLY),
            ("a/b/lf", libc::O_PATH),
            ("a/abs/passwd", libc::O_RDONLY),
            ("/etc/passwd", libc::O_RDONLY),
            ("a/missing", libc::O_RDONLY),
            ("a/b/f/x", libc::O_RDONLY),
        ] {
            let kernel = openat2(r, Path::new(path), flags, 0, all);
            let walk = openat2_by_walk(Some(r), Path::new(path), flags, 0, all);
            match (kernel, walk) {
                (Ok(k), Ok(w)) => assert_eq!(ino(&k), ino(&w), "{path}"),
                (Err(k), Err(w)) => assert_eq!(code(k), code(w), "{path}"),
                (k, w) => panic!("{path}: openat2 {k:?}, the walk {w:?}"),
            }
        }
        // Stricter than openat2 where it cannot check: `..` at all.
        let e =
            openat2_by_walk(Some(r), Path::new("a/../a/b/f"), libc::O_RDONLY, 0, all).unwrap_err();
        assert_eq!(code(e), libc::EXDEV);
        // A file made through the walk gets the mode asked for.
        let made = openat2_by_walk(
            Some(r),
            Path::new("a/new"),
            libc::O_CREAT | libc::O_WRONLY,
            0o640,
            all,
        )
        .unwrap();
        drop(made);
        assert_eq!(
            std::fs::metadata(d.join("a/new")).unwrap().mode() & 0o777,
            0o640 & !current_umask()
        );
        // Flags it cannot stand in for stay refused.
        let e = openat2_by_walk(Some(r), Path::new("a"), libc::O_PATH, 0, resolve::IN_ROOT)
            .unwrap_err();
        assert_eq!(code(e), libc::ENOSYS);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The process's umask, read without changing it for long.
    fn current_umask() -> u32 {
        let m = set_umask(0o022);
        set_umask(m);
        m
    }

    #[test]
    fn a_cut_inotify_event_is_refused() {
        let mut b = Vec::new();
        for w in [1u32, libc::IN_CREATE, 0, 8] {
            b.extend(w.to_ne_bytes());
        }
        b.extend(b"x\0\0\0\0\0\0\0");
        assert_eq!(parse_inotify(&b).unwrap()[0].name, "x");
        assert!(parse_inotify(&b[..20]).is_none());
        assert!(parse_inotify(&b[..10]).is_none());
    }
}

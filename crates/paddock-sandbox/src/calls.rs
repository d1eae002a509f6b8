//! Every call the setup sequence makes, behind one trait.
//!
//! The setup sequence (sequence.rs) is written against [`Sys`], so that the order the
//! security argument depends on can be unit-tested without privilege: the
//! [`Linux`] implementation forwards each call to `paddock-sys` (or to the
//! Landlock and seccomp code of this crate), and the recording fake of the
//! tests (`sequence::tests`) writes down each call instead of making it.
//!
//! Only the calls whose order matters are here. Pure computations (the
//! Landlock ruleset's rules, the seccomp programs) are made before the
//! sequence and handed to it.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::RulesetCreated;
use paddock_sys as sys;
use seccompiler::BpfProgram;

use crate::landlock_rules::{self, LandlockReport};
use crate::prepare::Prepared;

/// What a host path is, seen without following a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    Link,
    Other,
    Missing,
}

/// The calls of the setup sequence. Each method is one system call (or one
/// tightly bound group, such as installing a seccomp program), with the
/// kernel's semantics.
pub(crate) trait Sys {
    // --- mounts and the filesystem -------------------------------------
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// `openat2` with `O_PATH` (plus `flags`) and `resolve`.
    fn open_path(
        &self,
        dir: Option<BorrowedFd<'_>>,
        path: &Path,
        flags: i32,
        resolve: u64,
    ) -> io::Result<OwnedFd>;
    fn openat(
        &self,
        dir: BorrowedFd<'_>,
        name: &Path,
        flags: i32,
        mode: u32,
    ) -> io::Result<OwnedFd>;
    fn open_tree_clone(&self, fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd>;
    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> io::Result<()>;
    fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()>;
    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<()>;
    fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &Path) -> io::Result<()>;
    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &Path, is_dir: bool) -> io::Result<()>;
    /// Is the object at `fd` a folder (`fstat`)?
    fn is_dir(&self, fd: BorrowedFd<'_>) -> io::Result<bool>;
    /// The device number of the object at `fd`.
    fn device(&self, fd: BorrowedFd<'_>) -> io::Result<u64>;
    /// The identity (device, inode) of the object at `fd`.
    fn identity(&self, fd: BorrowedFd<'_>) -> io::Result<(u64, u64)>;
    /// `lstat`: what a host path is, links not followed.
    fn kind(&self, path: &Path) -> Kind;
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// A folder at `path`, with exactly `mode`.
    fn make_dir(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// A folder and its missing parents, owner-only (level no-userns).
    fn make_private_dirs(&self, path: &Path) -> io::Result<()>;
    /// Remove an empty folder or a file (best effort, after a step).
    fn remove(&self, path: &Path);
    fn umount_detach(&self, path: &Path) -> io::Result<()>;
    fn fchdir(&self, fd: BorrowedFd<'_>) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    fn pivot_root_here(&self) -> io::Result<()>;

    // --- pid 1 -------------------------------------------------------
    fn set_process_name(&self, name: &str);
    fn sethostname(&self, name: &str) -> io::Result<()>;
    fn loopback_up(&self) -> io::Result<()>;
    fn set_child_subreaper(&self) -> io::Result<()>;
    /// A listening TCP socket on 127.0.0.1:`port` (0: the kernel picks);
    /// the socket and the port it got.
    fn listen_loopback(&self, port: u16) -> io::Result<(OwnedFd, u16)>;
    fn send_fd(&self, sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()>;
    /// The TUN device of the transparent path ([`paddock_types::transparent`]),
    /// up, addressed and the default route; its descriptor.
    fn tun_up(&self) -> io::Result<OwnedFd>;
    /// Create `name` beneath `dir` (it must not exist yet) holding `content`.
    fn write_new_file(
        &self,
        dir: BorrowedFd<'_>,
        name: &Path,
        content: &[u8],
        mode: u32,
    ) -> io::Result<()>;
    /// The commands' Landlock ruleset for the level (None: none at all).
    fn landlock_ruleset(&self, p: &Prepared) -> Result<Option<RulesetCreated>, String>;
    /// pid 1's own Landlock domain (scopes only).
    fn landlock_scope_init(&self, p: &Prepared) -> Result<(), String>;
    /// Learn whether pid 1 may take a command's socket (`pidfd_getfd`).
    fn probe_socket_taking(&self, p: &Prepared);
    fn set_non_dumpable(&self) -> io::Result<()>;
    fn is_dumpable(&self) -> io::Result<bool>;

    // --- the command, before execve --------------------------------------
    fn reset_signals(&self) -> io::Result<()>;
    fn close_fds_from(&self, first: u32) -> io::Result<()>;
    fn set_parent_death_signal(&self, sig: i32) -> io::Result<()>;
    fn set_no_new_privs(&self) -> io::Result<()>;
    fn no_new_privs(&self) -> io::Result<bool>;
    fn landlock_restrict(&self, rs: Option<RulesetCreated>) -> Result<LandlockReport, String>;
    fn drop_all_capabilities(&self) -> io::Result<()>;
    /// Does the process hold any capability, in any set (effective,
    /// permitted, inheritable, ambient, bounding), as the kernel reports
    /// them?
    fn holds_capabilities(&self) -> io::Result<bool>;
    fn set_rlimit(&self, resource: u32, limit: u64) -> io::Result<()>;
    /// Install seccomp programs, in order; `what` names them for errors.
    fn seccomp_install(&self, what: &'static str, programs: &[BpfProgram]) -> Result<(), String>;
    /// Install the observing program; its notification listener.
    fn seccomp_install_with_listener(&self, prog: &[(u16, u8, u8, u32)]) -> io::Result<OwnedFd>;
    /// How many seccomp filters are attached to this process (None: the
    /// kernel does not say, before Linux 5.9).
    fn seccomp_filters(&self) -> io::Result<Option<u64>>;
    /// Is the process in seccomp filter mode?
    fn seccomp_filter_mode(&self) -> bool;
    /// Try to create a user namespace ([`crate::seccomp::USERNS_PROBE_FLAGS`]);
    /// the errno.
    fn userns_probe(&self) -> i32;
}

/// The real calls.
pub(crate) struct Linux;

impl Sys for Linux {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()> {
        sys::mount(source, target, fstype, flags, data)
    }
    fn open_path(
        &self,
        dir: Option<BorrowedFd<'_>>,
        path: &Path,
        flags: i32,
        resolve: u64,
    ) -> io::Result<OwnedFd> {
        sys::openat2_path(dir, path, flags, resolve)
    }
    fn openat(
        &self,
        dir: BorrowedFd<'_>,
        name: &Path,
        flags: i32,
        mode: u32,
    ) -> io::Result<OwnedFd> {
        sys::openat(dir, name, flags, mode)
    }
    fn open_tree_clone(&self, fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
        sys::open_tree_clone(fd, recursive)
    }
    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> io::Result<()> {
        sys::mount_setattr(fd, recursive, set, clear)
    }
    fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
        sys::move_mount(from, to)
    }
    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<()> {
        sys::mkdirat(dir, name, mode)
    }
    fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
        sys::symlinkat(target, dir, name)
    }
    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &Path, is_dir: bool) -> io::Result<()> {
        sys::unlinkat(dir, name, is_dir)
    }
    fn is_dir(&self, fd: BorrowedFd<'_>) -> io::Result<bool> {
        sys::fstatat(fd, Path::new("")).map(|st| st.is_dir())
    }
    fn device(&self, fd: BorrowedFd<'_>) -> io::Result<u64> {
        sys::fstatat(fd, Path::new("")).map(|st| st.dev)
    }
    fn identity(&self, fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
        sys::fstatat(fd, Path::new("")).map(|st| (st.dev, st.ino))
    }
    fn kind(&self, path: &Path) -> Kind {
        match std::fs::symlink_metadata(path) {
            Ok(md) if md.file_type().is_symlink() => Kind::Link,
            Ok(md) if md.is_dir() => Kind::Dir,
            Ok(_) => Kind::Other,
            Err(_) => Kind::Missing,
        }
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }
    fn make_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    fn make_private_dirs(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
    }
    fn remove(&self, path: &Path) {
        let _ = std::fs::remove_dir(path).or_else(|_| std::fs::remove_file(path));
    }
    fn umount_detach(&self, path: &Path) -> io::Result<()> {
        sys::umount_detach(path)
    }
    fn fchdir(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        sys::fchdir(fd)
    }
    fn chdir(&self, path: &Path) -> io::Result<()> {
        std::env::set_current_dir(path)
    }
    fn pivot_root_here(&self) -> io::Result<()> {
        sys::pivot_root_here()
    }

    fn set_process_name(&self, name: &str) {
        let _ = sys::set_process_name(name);
    }
    fn sethostname(&self, name: &str) -> io::Result<()> {
        sys::sethostname(name)
    }
    fn loopback_up(&self) -> io::Result<()> {
        sys::loopback_up()
    }
    fn set_child_subreaper(&self) -> io::Result<()> {
        sys::set_child_subreaper()
    }
    fn listen_loopback(&self, port: u16) -> io::Result<(OwnedFd, u16)> {
        let l = std::net::TcpListener::bind(("127.0.0.1", port))?;
        let port = l.local_addr()?.port();
        Ok((OwnedFd::from(l), port))
    }
    fn send_fd(&self, sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
        sys::send_fd(sock, fd)
    }
    fn tun_up(&self) -> io::Result<OwnedFd> {
        use paddock_types::transparent as t;
        sys::tun_up(
            t::DEVICE,
            t::MTU,
            &[
                (t::SANDBOX_V4.into(), t::PREFIX_V4),
                (t::SANDBOX_V6.into(), t::PREFIX_V6),
            ],
        )
    }
    fn write_new_file(
        &self,
        dir: BorrowedFd<'_>,
        name: &Path,
        content: &[u8],
        mode: u32,
    ) -> io::Result<()> {
        use std::io::Write;
        let fd = sys::openat(
            dir,
            name,
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode,
        )?;
        std::fs::File::from(fd).write_all(content)
    }
    fn landlock_ruleset(&self, p: &Prepared) -> Result<Option<RulesetCreated>, String> {
        landlock_rules::for_level(p)
    }
    fn landlock_scope_init(&self, p: &Prepared) -> Result<(), String> {
        landlock_rules::scope_init(p)
    }
    fn probe_socket_taking(&self, p: &Prepared) {
        crate::observe::prepare_connects(p);
    }
    fn set_non_dumpable(&self) -> io::Result<()> {
        sys::set_non_dumpable()
    }
    fn is_dumpable(&self) -> io::Result<bool> {
        sys::dumpable()
    }

    fn reset_signals(&self) -> io::Result<()> {
        sys::reset_signals()
    }
    fn close_fds_from(&self, first: u32) -> io::Result<()> {
        sys::cloexec_from(first)
    }
    fn set_parent_death_signal(&self, sig: i32) -> io::Result<()> {
        sys::set_parent_death_signal(sig)
    }
    fn set_no_new_privs(&self) -> io::Result<()> {
        sys::set_no_new_privs()
    }
    fn no_new_privs(&self) -> io::Result<bool> {
        sys::no_new_privs()
    }
    fn landlock_restrict(&self, rs: Option<RulesetCreated>) -> Result<LandlockReport, String> {
        landlock_rules::restrict(rs)
    }
    fn drop_all_capabilities(&self) -> io::Result<()> {
        sys::drop_all_capabilities()
    }
    fn holds_capabilities(&self) -> io::Result<bool> {
        // The kernel's own account of all five sets, in one read (a
        // missing field is an error: the check then fails closed).
        let status = proc_status()?;
        let mut held = false;
        for field in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            let mask = status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("no {field} in /proc/self/status"),
                    )
                })?;
            held |= mask != 0;
        }
        Ok(held)
    }
    fn set_rlimit(&self, resource: u32, limit: u64) -> io::Result<()> {
        sys::set_rlimit(resource, limit)
    }
    fn seccomp_install(&self, _what: &'static str, programs: &[BpfProgram]) -> Result<(), String> {
        crate::seccomp::install(programs)
    }
    fn seccomp_install_with_listener(&self, prog: &[(u16, u8, u8, u32)]) -> io::Result<OwnedFd> {
        sys::seccomp_install_with_listener(prog)
    }
    fn seccomp_filters(&self) -> io::Result<Option<u64>> {
        seccomp_status("Seccomp_filters:")
    }
    fn seccomp_filter_mode(&self) -> bool {
        matches!(seccomp_status("Seccomp:"), Ok(Some(2)))
    }
    fn userns_probe(&self) -> i32 {
        match sys::unshare(crate::seccomp::USERNS_PROBE_FLAGS) {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(0),
        }
    }
}

/// /proc/self/status in one read (the file reports size 0, so
/// `read_to_string` would read it 32 bytes at a time).
fn proc_status() -> io::Result<String> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(4096);
    std::fs::File::open("/proc/self/status")?.read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A number field of /proc/self/status (`Seccomp_filters:` exists from
/// Linux 5.9).
fn seccomp_status(field: &str) -> io::Result<Option<u64>> {
    let status = proc_status()?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().parse::<u64>().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The capability check reads the kernel's report: an ordinary process
    /// (root or not) still has its bounding set, so it holds capabilities.
    #[test]
    fn an_unconfined_process_is_seen_holding_capabilities() {
        assert!(Linux.holds_capabilities().unwrap());
        assert!(Linux.no_new_privs().is_ok());
    }
}

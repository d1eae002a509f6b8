//! The audit observer: who did what to which file, seen from pid 1.
//!
//! Landlock, the mount table and the seccomp deny list *enforce*; none of
//! them says which process tried what. Each command therefore installs, as
//! its last seccomp filter, one with a notification listener
//! ([`crate::seccomp::audit_program`]) and hands the listener to pid 1
//! before `execve`. The filter sends pid 1 a narrow set of calls: opens
//! with a write flag (every open at level `all`), unlink, rmdir, rename,
//! mkdir, link, symlink, execve and connect, plus every call the deny list
//! refuses.
//!
//! For a watched call pid 1 reads the path (or address, or argv) from the
//! caller's memory, checks that the notification is still pending (so the
//! bytes are the caller's, not those of a recycled pid), answers *continue*
//! at once so that the kernel carries the call out under the sandbox's own
//! rules, and only then works out the policy's verdict
//! ([`crate::explain`]) and reports an [`AuditRecord`]. Nothing is decided
//! here: a wrong path read can only make a record wrong, never let a call
//! through that the kernel would refuse. A call from the deny list is
//! answered with `EPERM` and recorded as `syscall.denied`.
//!
//! pid 1 needs no privilege for this: it runs as the same user as the
//! commands, which are dumpable after `execve`, so the kernel lets it read
//! their memory (`process_vm_readv`) and their `/proc/PID/cwd` and fd
//! links. Before `execve` a command is still non-dumpable (pid 1's own
//! setting): its memory cannot be read, and its own `execve` is not
//! recorded here (the supervisor records `exec.start` for it).
//!
//! The same reading serves a container of paddock's OCI runtime
//! ([`ContainerObserver`]), from the host: there is no policy of paths
//! there (the bundle's mounts and the image's permissions decide), so
//! every call is recorded as the kernel carries it out (`FS_CONTAINER`),
//! paths as the container names the file the kernel reaches (looked up
//! one name at a time in the caller's root, `ProcDirs::resolve`), and
//! whether a file was there is
//! looked up inside the caller's own root (`/proc/PID/root`,
//! `RESOLVE_IN_ROOT`), never in the host's tree. There the caller's own
//! links (`/proc/self/root`, `/proc/self/fd/N`, ...) are followed as the
//! kernel follows them, nothing read from the caller's memory decides
//! that a call goes unrecorded (a kernel interface is recorded and said
//! to be one, a program not found is recorded as such), and a call whose
//! arguments cannot be read is refused with the errno the kernel would
//! give rather than let through unrecorded.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use paddock_sys as sys;
use serde::{Deserialize, Serialize};

use crate::explain::{explain_fs_with, FsOp};
use crate::prepare::Prepared;
use crate::seccomp::{self, Watched, WRITE_FLAGS};
use crate::spec::{normalize, AuditLevel};
use paddock_reasons::Reason;
use paddock_types::EventKind;

/// One observed action, as pid 1 reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// What it is (`file.create`, `process.exec`, `net.denied`, ...).
    pub kind: EventKind,
    /// The process, in the sandbox's pid namespace.
    pub pid: i32,
    /// What the policy says of it.
    pub allowed: bool,
    /// Stable reason code (docs/reason-codes.md).
    pub reason_code: String,
    /// The system call.
    pub syscall: String,
    /// The path (absolute, inside the sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A rename's destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `read`, `write` or `delete`, for `file.denied`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// `file`, `dir`, `link` or `symlink`, for `file.create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<String>,
    /// A started program's arguments (at most 64, each at most 4 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// A connection's destination (`1.2.3.4:443`, `[::1]:80`, a unix path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// How many identical denials before this one were not recorded: the
    /// record stands for itself and them (`syscall.denied` past its
    /// budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
    /// In a container, where the observer found no program at the path
    /// while the caller waited (a `PATH` search's miss, most likely):
    /// `false`. Recorded all the same: a value read from the caller's
    /// memory cannot decide that nothing is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<bool>,
}

/// How many `syscall.denied` records one command tree gets per system
/// call before further ones are only counted (a loop on a denied call
/// must not flood the log). Counted ones are not lost: every
/// [`DENIED_SYSCALL_BATCH`]th is recorded with how many it stands for
/// (`suppressed`), and what is left when the commands end is recorded
/// then ([`Watch::leftovers`]).
const DENIED_SYSCALL_RECORDS: u64 = 20;
const DENIED_SYSCALL_BATCH: u64 = 100;

/// Denials of one system call by one command tree.
#[derive(Default)]
struct Denials {
    total: u64,
    /// Counted since the last record.
    unreported: u64,
    /// The last caller.
    pid: i32,
}

/// What the records are judged by.
#[derive(Clone, Copy)]
pub(crate) enum Judge<'a> {
    /// A sandbox of `paddock run`: its policy's verdicts and protected
    /// names; pid 1 carries out its unix connects.
    Sandbox(&'a Prepared),
    /// A container of paddock's OCI runtime, observed from the host.
    Container(&'a ContainerView),
}

/// What the observer of a container knows of it.
#[derive(Debug, Clone)]
pub struct ContainerView {
    /// What is recorded (`denied`, `writes` or `all`; `off` has no
    /// observer).
    pub audit: AuditLevel,
    /// The port of the proxy on the container's loopback, if it has one.
    pub proxy_port: Option<u16>,
    /// Whether other addresses reach paddock's judge through a TUN device.
    pub transparent: bool,
}

impl Judge<'_> {
    fn is_container(&self) -> bool {
        matches!(self, Judge::Container(_))
    }

    fn level(&self) -> AuditLevel {
        match self {
            Judge::Sandbox(p) => p.model.audit,
            Judge::Container(c) => c.audit,
        }
    }
}

/// One command's listener, with what pid 1 knows about it.
pub(crate) struct Watch {
    /// The seccomp notification listener.
    pub fd: OwnedFd,
    /// The watched calls, looked up by number on every notification.
    table: std::sync::Arc<HashMap<u32, (&'static str, Watched)>>,
    /// The exec request it belongs to (0 for `paddock run`).
    pub exec_id: u64,
    denied: HashMap<u32, Denials>,
    /// Helper processes waiting for slow connects (their pidfds).
    helpers: Vec<OwnedFd>,
    /// The callers' `/proc/PID` folders, kept open.
    procs: ProcDirs,
}

/// Callers' `/proc/PID` folders, kept open, so that reading a caller's
/// cwd or fd link looks up one name instead of walking `/proc/PID/...`
/// (the observer does it for most calls). A folder whose process is gone
/// answers nothing; it is then opened again, by pid, for the process that
/// has that pid now.
#[derive(Default)]
struct ProcDirs(HashMap<i32, OwnedFd>);

impl ProcDirs {
    /// Open folders at most; past that, all are closed and opened afresh.
    const MAX: usize = 256;

    /// `f` on the caller's folder; a folder that answers nothing (its
    /// process is gone) is opened again for the process that has the pid
    /// now.
    fn with<T>(
        &mut self,
        pid: i32,
        f: impl Fn(std::os::fd::BorrowedFd<'_>) -> std::io::Result<T>,
    ) -> Option<T> {
        if let Some(dir) = self.0.get(&pid) {
            if let Ok(v) = f(dir.as_fd()) {
                return Some(v);
            }
            self.0.remove(&pid);
        }
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        let dir = sys::open_dir_nofollow(Path::new(&format!("/proc/{pid}"))).ok()?;
        let v = f(dir.as_fd()).ok()?;
        self.0.insert(pid, dir);
        Some(v)
    }

    fn link(&mut self, pid: i32, name: &str) -> Option<PathBuf> {
        self.with(pid, |dir| sys::readlinkat(dir, Path::new(name)))
    }

    /// Whether `path` (absolute, as the caller sees it) names a file in
    /// the caller's own root; `follow`: a final symbolic link is followed.
    fn exists_in_root(&mut self, pid: i32, path: &Path, follow: bool) -> bool {
        self.lookup_in_root(pid, path, follow).is_ok()
    }

    /// `path` (absolute, as the caller sees it) looked up inside the
    /// caller's own root (`O_PATH`): no link, `..` or magic link leads out
    /// of it to the host's tree. `ENOENT`/`ENOTDIR`: not there.
    fn lookup_in_root(&mut self, pid: i32, path: &Path, follow: bool) -> std::io::Result<OwnedFd> {
        use paddock_sys::resolve;
        let Some(root) = self.with(pid, |dir| {
            sys::openat2_path(Some(dir), Path::new("root"), libc::O_DIRECTORY, 0)
        }) else {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        };
        let rel = path.strip_prefix("/").unwrap_or(path);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
        sys::openat2_path(
            Some(root.as_fd()),
            rel,
            nofollow,
            resolve::IN_ROOT | resolve::NO_MAGICLINKS,
        )
    }

    /// `path` with the caller's own links replaced by what they name for
    /// it: `/proc/self`, `/proc/thread-self` and `/proc/<its pid>` followed
    /// by `root`, `cwd` or `fd/N`, read from the node's `/proc/PID`. What the observer would otherwise take for a
    /// kernel interface (`/proc/self/root/etc/passwd`) is then the file it
    /// is. Where one of its descriptors on the way is no file (a pipe, a
    /// socket), the path as written: nothing is left out for the state of
    /// the caller's descriptors (another thread may change them).
    fn own_links(&mut self, pid: i32, written: PathBuf) -> PathBuf {
        let mut path = written.clone();
        // A link may lead to another (`/proc/self/root/proc/self/cwd`).
        for _ in 0..8 {
            match self.own_link_step(pid, &path) {
                Some(Some(p)) if p != path => path = p,
                Some(None) => return written,
                _ => break,
            }
        }
        path
    }

    /// None: not one of the caller's links; Some(None): a descriptor of
    /// its that is no file.
    fn own_link_step(&mut self, pid: i32, path: &Path) -> Option<Option<PathBuf>> {
        use std::path::Component;
        let parts: Vec<&std::ffi::OsStr> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let text = |i: usize| parts.get(i).and_then(|p| p.to_str());
        let join = |base: PathBuf, from: usize| -> PathBuf {
            let mut b = base;
            for p in &parts[from..] {
                b.push(p);
            }
            normalize(&b)
        };
        // (Not `/dev/fd` or `/dev/stdout`: they are the container's own
        // links, in a folder it may write, so they are judged as written.)
        if text(0) != Some("proc") {
            return None;
        }
        // /proc/<who>[/task/<tid>]/<what>...
        let who = text(1)?;
        let mut at = 2;
        let own = match who {
            "self" | "thread-self" => true,
            n => n.parse::<i32>().is_ok_and(|n| self.is_own_pid(pid, n)),
        };
        if !own {
            return None;
        }
        if text(at) == Some("task") && text(at + 1).is_some() {
            at += 2;
        }
        match text(at)? {
            "root" => Some(Some(join(self.link(pid, "root")?, at + 1))),
            "cwd" => Some(Some(join(self.link(pid, "cwd")?, at + 1))),
            "fd" => {
                let k: i32 = text(at + 1)?.parse().ok()?;
                let target = self.link(pid, &format!("fd/{k}"))?;
                Some(target.is_absolute().then(|| join(target, at + 2)))
            }
            _ => None,
        }
    }

    /// The path the kernel will reach for `raw`, written by `pid` relative
    /// to `dirfd` (its cwd for `AT_FDCWD`), as the container names it:
    /// looked up one name at a time from the caller's own root, links
    /// followed as the kernel follows them (at most 40; the last one only
    /// with `follow_last`), `..` taken after them, the caller's own
    /// `/proc/self` and `/proc/thread-self` put for the pid it has there,
    /// and the folder reached named by the kernel (its path as the
    /// container's mount namespace has it, so a `chroot` shows). None
    /// where the lookup cannot be made so (a name that is missing on the
    /// way, a descriptor that is no folder): the caller then gets the
    /// path as written.
    fn resolve(
        &mut self,
        pid: i32,
        dirfd: i32,
        raw: &[u8],
        follow_last: bool,
    ) -> Option<(PathBuf, Option<u32>)> {
        use std::collections::VecDeque;
        use std::os::unix::ffi::OsStrExt;
        let open = |dir: std::os::fd::BorrowedFd<'_>, name: &[u8], flags: i32, resolve: u64| {
            sys::openat2_path(
                Some(dir),
                Path::new(std::ffi::OsStr::from_bytes(name)),
                flags,
                resolve,
            )
        };
        let root = self.with(pid, |d| open(d, b"root", libc::O_DIRECTORY, 0))?;
        // The root by its mount too: another mount of the same folder is
        // not the root, and `..` climbs out of it.
        let id = |f: &OwnedFd| {
            let st = sys::fstatat(f.as_fd(), Path::new("")).ok()?;
            Some((st.dev, st.ino, sys::mount_id(f.as_fd()).ok()?))
        };
        let root_id = id(&root)?;
        let mut cur = if raw.first() == Some(&b'/') {
            open(root.as_fd(), b".", libc::O_DIRECTORY, 0).ok()?
        } else if dirfd == libc::AT_FDCWD {
            self.with(pid, |d| open(d, b"cwd", libc::O_DIRECTORY, 0))?
        } else {
            let name = format!("fd/{dirfd}");
            self.with(pid, |d| open(d, name.as_bytes(), libc::O_DIRECTORY, 0))?
        };
        let mut todo: VecDeque<Vec<u8>> = split(raw);
        let mut links = 0;
        // A bound amount of work per call, whatever the container wrote
        // (links of `./././...`): past it, the path as written.
        let mut steps = 0;
        let mut ids: Option<(i32, i32)> = None;
        let mut last_name: Option<Vec<u8>> = None;
        let mut found: Option<u32> = None;
        while let Some(c) = todo.pop_front() {
            steps += 1;
            if steps > RESOLVE_STEPS {
                return None;
            }
            if c == b".." {
                if id(&cur)? != root_id {
                    cur = open(
                        cur.as_fd(),
                        b"..",
                        libc::O_DIRECTORY,
                        sys::resolve::NO_MAGICLINKS,
                    )
                    .ok()?;
                }
                continue;
            }
            let is_last = todo.is_empty();
            // The caller's own /proc/self: the daemon has no pid in the
            // container's procfs, so the name is put for the caller's.
            if matches!(c.as_slice(), b"self" | b"thread-self")
                && sys::fs_magic(cur.as_fd()).is_ok_and(|m| m == sys::PROC_SUPER_MAGIC)
            {
                let (tgid, tid) = match ids {
                    Some(v) => v,
                    None => *ids.insert(self.ns_ids(pid)?),
                };
                let mut front = vec![tgid.to_string().into_bytes()];
                if c == b"thread-self" {
                    front.push(b"task".to_vec());
                    front.push(tid.to_string().into_bytes());
                }
                for f in front.into_iter().rev() {
                    todo.push_front(f);
                }
                continue;
            }
            let next = match open(
                cur.as_fd(),
                &c,
                libc::O_NOFOLLOW,
                sys::resolve::NO_MAGICLINKS,
            ) {
                Ok(f) => f,
                Err(e) if is_last && e.raw_os_error() == Some(libc::ENOENT) => {
                    last_name = Some(c);
                    break;
                }
                Err(_) => return None,
            };
            let st = sys::fstatat(next.as_fd(), Path::new("")).ok()?;
            if st.mode & libc::S_IFMT == libc::S_IFLNK && (!is_last || follow_last) {
                links += 1;
                if links > 40 {
                    return None;
                }
                if sys::fs_magic(cur.as_fd()).is_ok_and(|m| m == sys::PROC_SUPER_MAGIC) {
                    // A process's root, cwd or descriptor: followed by the
                    // kernel itself.
                    let to = open(cur.as_fd(), &c, 0, 0).ok()?;
                    if is_last {
                        let mode = sys::fstatat(to.as_fd(), Path::new("")).ok()?.mode;
                        return fd_path(&to).map(|p| (p, Some(mode)));
                    }
                    cur = to;
                    continue;
                }
                let target = sys::readlinkat(next.as_fd(), Path::new("")).ok()?;
                let target = target.as_os_str().as_bytes();
                if target.first() == Some(&b'/') {
                    cur = open(root.as_fd(), b".", libc::O_DIRECTORY, 0).ok()?;
                }
                for f in split(target).into_iter().rev() {
                    todo.push_front(f);
                }
                continue;
            }
            if is_last {
                found = Some(st.mode);
                last_name = Some(c);
                break;
            }
            if st.mode & libc::S_IFMT != libc::S_IFDIR {
                return None;
            }
            cur = next;
        }
        let mut path = fd_path(&cur)?;
        match last_name {
            Some(n) => path.push(std::ffi::OsStr::from_bytes(&n)),
            // The path ends in a folder.
            None => found = Some(libc::S_IFDIR),
        }
        Some((path, found))
    }

    /// The caller's thread group and thread ids in its own pid namespace
    /// (the last field of `NStgid` and `NSpid`: the innermost one's).
    fn ns_ids(&mut self, pid: i32) -> Option<(i32, i32)> {
        let status = self.status(pid)?;
        let last = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().last())
                .and_then(|v| v.parse::<i32>().ok())
        };
        Some((last("NStgid:")?, last("NSpid:")?))
    }

    fn status(&mut self, pid: i32) -> Option<String> {
        self.with(pid, |dir| {
            use std::io::Read;
            use std::os::fd::AsRawFd;
            let f = sys::openat2_path(Some(dir), Path::new("status"), 0, 0)?;
            // An O_PATH descriptor cannot be read: open it through itself.
            let mut s = String::new();
            std::fs::File::open(format!("/proc/self/fd/{}", f.as_raw_fd()))?
                .read_to_string(&mut s)?;
            Ok(s)
        })
    }

    /// Whether `n`, a pid in the caller's own pid namespace, is the caller
    /// (its thread group or the thread).
    fn is_own_pid(&mut self, pid: i32, n: i32) -> bool {
        self.ns_ids(pid)
            .is_some_and(|(tgid, tid)| n == tgid || n == tid)
    }

    /// Whether a container's open or creation of `path` is of a kernel
    /// interface rather than a file: under `/proc` or `/sys` (but not
    /// through another process's `root`, `cwd` or `fd/N`, which lead to
    /// files), or an existing device node under `/dev`.
    fn container_pseudo(&mut self, pid: i32, path: &Path) -> bool {
        if path.starts_with("/proc") || path.starts_with("/sys") {
            return !through_proc_link(path);
        }
        if path.starts_with("/dev") && !path.starts_with("/dev/shm") {
            return self
                .lookup_in_root(pid, path, true)
                .and_then(|f| sys::fstatat(f.as_fd(), Path::new("")))
                .is_ok_and(|st| matches!(st.mode & libc::S_IFMT, libc::S_IFCHR | libc::S_IFBLK));
        }
        false
    }
}

/// Names looked at, at most, to resolve one path of a container's.
const RESOLVE_STEPS: usize = 512;

/// The names of a path, `.` and empty ones left out.
fn split(raw: &[u8]) -> std::collections::VecDeque<Vec<u8>> {
    raw.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

/// What the kernel names the file `fd` holds (its path in the mount
/// namespace it is in); None for what is no file of a tree (a pipe, a
/// deleted file).
fn fd_path(fd: &OwnedFd) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let p = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    (p.is_absolute() && !p.to_string_lossy().ends_with(" (deleted)")).then_some(p)
}

/// Whether `path` goes on past a process's `root`, `cwd` or `fd/N` in
/// `/proc` (so leads to a file of that process's).
fn through_proc_link(path: &Path) -> bool {
    let parts: Vec<String> = path
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.first().map(String::as_str) != Some("proc") {
        return false;
    }
    let mut at = 2;
    if parts.get(at).map(String::as_str) == Some("task") {
        at += 2;
    }
    // A root or cwd leads into a folder; a descriptor's link is a file
    // (or leads into a folder).
    matches!(
        parts.get(at).map(String::as_str),
        Some("root" | "cwd" | "fd")
    ) && parts.len() > at + 1
}

/// What was read from the caller while it waited.
enum Seen {
    Open {
        path: PathBuf,
        flags: u32,
        /// Whether the path existed before the call (looked at while the
        /// caller waits: after the answer, the kernel may have created it).
        existed: bool,
        /// Whether it is a kernel interface, not a file (looked at while
        /// the caller waits: after the answer, it may be gone).
        pseudo: bool,
    },
    Delete(PathBuf),
    Rename(PathBuf, PathBuf),
    /// The path, what is made, and whether it is a kernel interface.
    Create(PathBuf, &'static str, bool),
    /// The program, its arguments, and whether it was found missing.
    Exec(PathBuf, Vec<String>, bool),
    Connect(Addr),
}

enum Addr {
    Inet(std::net::SocketAddr),
    Unix(String),
    Other(u16),
}

impl Watch {
    pub fn new(fd: OwnedFd, exec_id: u64) -> Watch {
        // Best effort: kernels before 6.6 answer a little slower.
        let _ = sys::seccomp_notif_sync_wakeup(fd.as_fd());
        thread_local! {
            static TABLE: std::sync::Arc<HashMap<u32, (&'static str, Watched)>> =
                std::sync::Arc::new(seccomp::watched().into_iter().map(|(nr, n, w)| (nr, (n, w))).collect());
        }
        Watch {
            fd,
            table: TABLE.with(|t| t.clone()),
            exec_id,
            denied: HashMap::new(),
            helpers: Vec::new(),
            procs: ProcDirs::default(),
        }
    }

    /// The denials counted but not yet recorded, one record per system
    /// call (`suppressed`: how many it stands for). Called when the
    /// commands of this listener are gone.
    pub fn leftovers(&mut self) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        for (nr, d) in self.denied.iter_mut() {
            if d.unreported > 0 {
                // The last of them, standing for the ones before it.
                let mut r = denied_syscall(*nr, d.pid);
                r.suppressed = Some(d.unreported - 1).filter(|n| *n > 0);
                d.unreported = 0;
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.syscall.cmp(&b.syscall));
        out
    }

    /// Take one notification, answer it, and return what to record.
    pub fn handle(&mut self, p: &Prepared) -> Option<AuditRecord> {
        self.handle_as(Judge::Sandbox(p))
    }

    fn handle_as(&mut self, j: Judge<'_>) -> Option<AuditRecord> {
        let fd = self.fd.as_fd();
        let n = sys::seccomp_notif_recv(fd).ok()?;
        let pid = i32::try_from(n.pid).ok()?;
        let Some(&(name, what)) = u32::try_from(n.nr)
            .ok()
            .and_then(|nr| self.table.get(&nr))
            .filter(|_| n.arch == seccomp::AUDIT_ARCH)
        else {
            // Not a watched call: the deny list sent it. Refuse it.
            let _ = sys::seccomp_notif_respond(fd, n.id, Some(libc::EPERM));
            // The setup sequence's own check that this refusal is in force
            // (sequence.rs): flags that can create nothing, not an event.
            if i64::from(n.nr) == libc::SYS_unshare && n.args[0] == seccomp::USERNS_PROBE_FLAGS {
                return None;
            }
            let nr = n.nr as u32;
            let d = self.denied.entry(nr).or_default();
            d.total += 1;
            d.pid = pid;
            let mut suppressed = None;
            if d.total > DENIED_SYSCALL_RECORDS {
                d.unreported += 1;
                if d.unreported < DENIED_SYSCALL_BATCH {
                    return None;
                }
                suppressed = Some(d.unreported - 1);
                d.unreported = 0;
            }
            let mut r = denied_syscall(nr, pid);
            r.suppressed = suppressed;
            return Some(r);
        };
        if matches!(what, Watched::Connect) {
            let r = match j {
                Judge::Sandbox(p) => self.connect(p, &n, pid, name),
                Judge::Container(_) => self.connect_seen(j, &n, pid, name),
            };
            return r.filter(|_| j.level() != AuditLevel::Off);
        }
        let in_root = j.is_container();
        let seen = read_call(&mut self.procs, pid, what, &n.args, in_root);
        // The bytes read are this caller's only if it is still waiting.
        let valid = sys::seccomp_notif_id_valid(fd, n.id);
        // A protected name about to be created in an rw mount is refused
        // at once. This one decision is made on bytes the caller could
        // still change before the kernel reads them again (another thread
        // rewriting the path), so it is not the boundary: the sweep after
        // every command is (crate::guard, docs/sandbox.md).
        let refuse = match j {
            Judge::Sandbox(p) => valid
                .then(|| {
                    seen.as_ref()
                        .ok()
                        .and_then(|s| s.as_ref())
                        .and_then(|s| protected_creation(p, s))
                })
                .flatten(),
            Judge::Container(_) => None,
        };
        // In a container, a call whose arguments cannot be read is
        // refused with what the kernel would answer: a thread that makes
        // the page unreadable for this read, and readable again for the
        // kernel's, must not carry a call past the record. (Under `paddock
        // run` a command's first execve is not readable and goes on; the
        // policy is held by Landlock and the mounts there.)
        let unread = match (&j, &seen) {
            (Judge::Container(_), Err(e)) => Some(*e),
            _ => None,
        };
        let answer = unread.or(refuse.as_ref().map(|_| libc::EPERM));
        let _ = sys::seccomp_notif_respond(fd, n.id, answer);
        if !valid || unread.is_some() {
            return None;
        }
        let seen = seen.ok().flatten();
        if let Some(path) = refuse {
            let mut r = record(
                EventKind::FileDenied,
                pid,
                false,
                Reason::FS_PROTECTED_CREATE.code(),
                name.into(),
            );
            r.path = Some(path.to_string_lossy().into_owned());
            r.op = Some("create".into());
            return Some(r);
        }
        decide(j, pid, name, seen?)
    }

    /// A container's `connect`: read, then let the kernel carry it out
    /// (the container's own network namespace and paddock's proxy decide
    /// where it leads), and record what it was.
    fn connect_seen(
        &mut self,
        j: Judge<'_>,
        n: &sys::SeccompNotif,
        pid: i32,
        name: &'static str,
    ) -> Option<AuditRecord> {
        let fd = self.fd.as_fd();
        let len = usize::try_from(n.args[2]).unwrap_or(usize::MAX).min(128);
        let mut raw = vec![0u8; len];
        let read = read_memory(pid, n.args[1], &mut raw);
        let valid = sys::seccomp_notif_id_valid(fd, n.id);
        // An address that cannot be read whole is refused (EFAULT, as the
        // kernel would): it must not be readable again for the kernel's
        // read and carry the call past the record.
        let whole = matches!(read, Ok(k) if k == raw.len());
        let _ = sys::seccomp_notif_respond(fd, n.id, (!whole).then_some(libc::EFAULT));
        if !valid || !whole {
            return None;
        }
        decide(j, pid, name, Seen::Connect(parse_sockaddr(&raw)?))
    }
}

/// The observer of one container of paddock's OCI runtime, run on the
/// host by the container's daemon: the listeners of its first process
/// and of each `exec`, served as they turn readable.
pub struct ContainerObserver {
    view: ContainerView,
    watches: Vec<Watch>,
}

impl ContainerObserver {
    /// An observer with no listener yet.
    pub fn new(view: ContainerView) -> ContainerObserver {
        ContainerObserver {
            view,
            watches: Vec::new(),
        }
    }

    /// Serve `listener` (from [`crate::install_container_observer`]) of
    /// the processes started as `exec_id` (0: the first process).
    pub fn add(&mut self, listener: OwnedFd, exec_id: u64) {
        self.watches.push(Watch::new(listener, exec_id));
    }

    /// The listeners, to poll for reading.
    pub fn fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.watches.iter().map(|w| w.fd.as_fd()).collect()
    }

    /// Answer the notifications `revents` (in [`Self::fds`]'s order) say
    /// are ready; a listener whose processes are all gone is dropped with
    /// the denials it still counted. What to record, with the exec ids.
    pub fn serve(&mut self, revents: &[i16]) -> Vec<(u64, AuditRecord)> {
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (i, (w, r)) in self.watches.iter_mut().zip(revents).enumerate() {
            if r & libc::POLLIN != 0 {
                out.extend(
                    w.handle_as(Judge::Container(&self.view))
                        .map(|rec| (w.exec_id, rec)),
                );
            } else if r & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            let mut w = self.watches.swap_remove(i);
            out.extend(w.leftovers().into_iter().map(|rec| (w.exec_id, rec)));
        }
        out
    }

    /// Every listener's counted denials, when the container has ended.
    pub fn finish(&mut self) -> Vec<(u64, AuditRecord)> {
        let mut out = Vec::new();
        for mut w in self.watches.drain(..) {
            out.extend(w.leftovers().into_iter().map(|rec| (w.exec_id, rec)));
        }
        out
    }
}

impl Watch {
    /// A `connect`, carried out by pid 1 itself on the caller's own socket
    /// (a duplicate of its descriptor, `pidfd_getfd`), to the address it
    /// read, and answered with the result. The kernel never looks at the
    /// caller's memory or descriptor table again, so a thread that
    /// rewrites the address, or points the descriptor at another socket,
    /// after the check changes nothing.
    ///
    /// On a unix socket a pathname is opened first (`O_PATH`, following
    /// links as connect does) and the socket file held is the one judged
    /// and the one connected to (through `/proc/self/fd/N`): no path is
    /// looked up twice. pid 1 carries the commands' Landlock scope and, at
    /// `no-userns`, their TCP rule (`landlock_rules::scope_init`), so what
    /// it connects is bound by the same rules as theirs.
    fn connect(
        &mut self,
        p: &Prepared,
        n: &sys::SeccompNotif,
        pid: i32,
        name: &'static str,
    ) -> Option<AuditRecord> {
        let fd = self.fd.as_fd();
        let len = usize::try_from(n.args[2]).unwrap_or(usize::MAX);
        let mut raw = vec![0u8; len.min(128)];
        let read = read_memory(pid, n.args[1], &mut raw);
        // The caller's socket, pinned. `low32`: the descriptor is an int.
        // The notification names the calling thread, whose descriptor
        // table is the one meant (a thread may have its own, after
        // unshare(CLONE_FILES)): a pidfd for that thread (Linux 6.9), else
        // for its process.
        let sock = sys::pidfd_open_thread(pid)
            .or_else(|_| sys::pidfd_open(thread_group(pid)))
            .and_then(|pidfd| sys::pidfd_getfd(pidfd.as_fd(), low32(n.args[0]) as i32));
        // Still waiting: the pid was not reused, the bytes and the
        // descriptor are this caller's.
        if !sys::seccomp_notif_id_valid(fd, n.id) {
            return None;
        }
        let answer = |r: Result<(), i32>| {
            let _ = sys::seccomp_notif_reply(fd, n.id, r);
        };
        let sock = match sock {
            Ok(s) => s,
            // Where no unix socket can be made (no-userns, or no
            // pidfd_getfd: commands get the `unobserved` filter), nothing
            // this call could reach is a unix path: let the kernel do it.
            Err(_) if !unix_sockets_judged(p) => {
                let _ = sys::seccomp_notif_respond(fd, n.id, None);
                raw.truncate(read.ok()?);
                return decide(
                    Judge::Sandbox(p),
                    pid,
                    name,
                    Seen::Connect(parse_sockaddr(&raw)?),
                );
            }
            // Not an open descriptor (EBADF): what the kernel would say.
            Err(e) => {
                answer(Err(errno(e)));
                return None;
            }
        };
        let domain = match sys::socket_domain(sock.as_fd()) {
            Ok(d) => d,
            Err(e) => {
                answer(Err(errno(e)));
                return None;
            }
        };
        let raw = match read {
            Ok(k) if len <= 128 && k == raw.len() => &raw[..k],
            Ok(k) if k < raw.len() => {
                // Part of the address lies outside the caller's memory.
                answer(Err(libc::EFAULT));
                return None;
            }
            Ok(_) => {
                answer(Err(libc::EINVAL));
                return None;
            }
            Err(_) => {
                answer(Err(libc::EFAULT));
                return None;
            }
        };
        if domain == libc::AF_UNIX {
            let (target, record) = unix_target(p, pid, raw, name);
            match target {
                Ok((addr, _held)) => self.perform(n.id, sock.as_fd(), &addr),
                Err(e) => answer(Err(e)),
            }
            return record;
        }
        self.perform(n.id, sock.as_fd(), raw);
        decide(
            Judge::Sandbox(p),
            pid,
            name,
            Seen::Connect(parse_sockaddr(raw)?),
        )
    }

    /// Connect `sock` to `addr` and answer notification `id`. A connect
    /// that cannot finish at once on a socket the caller left blocking (a
    /// listener whose queue is full, a slow handshake) is waited for by a
    /// helper process of pid 1's, which answers in its turn: pid 1 goes
    /// on serving every other command meanwhile.
    fn perform(&mut self, id: u64, sock: std::os::fd::BorrowedFd<'_>, addr: &[u8]) {
        let fd = self.fd.as_fd();
        let (flags, retry) = match connect_start(sock, addr) {
            Step::Done(r) => {
                let _ = sys::seccomp_notif_reply(fd, id, r);
                return;
            }
            Step::Waiting { flags, retry } => (flags, retry),
        };
        self.helpers.retain(|h| {
            !sys::poll_readable(&[h.as_fd()], 0).is_ok_and(|r| r.first() == Some(&true))
        });
        if self.helpers.len() < MAX_CONNECT_HELPERS {
            match sys::fork_with_pidfd() {
                Ok(sys::Forked::Child) => {
                    let r = connect_finish(sock, addr, flags, retry, HELPER_WAIT_MS);
                    let _ = sys::seccomp_notif_reply(fd, id, r);
                    sys::exit_now(0);
                }
                Ok(sys::Forked::Parent { pidfd, .. }) => {
                    self.helpers.extend(pidfd);
                    return;
                }
                Err(_) => {}
            }
        }
        // No helper to be had: wait here, briefly.
        let r = connect_finish(sock, addr, flags, retry, CONNECT_WAIT_MS);
        let _ = sys::seccomp_notif_reply(fd, id, r);
    }
}

/// The errno of a failed call, for the answer to the caller.
fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EPERM)
}

/// The process (thread group) of thread `tid`; `tid` itself if unknown
/// (the notification's validity check after pidfd_open catches a reuse).
fn thread_group(tid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

/// Whether pid 1 can take the commands' sockets (`pidfd_getfd`): where it
/// cannot (a surrounding seccomp profile refuses the call), commands get
/// no unix sockets (`seccomp::unobserved`). Found once, by pid 1, before
/// any command starts.
static CAN_TAKE_SOCKETS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// The sockets `filesystem.sockets` allows, pinned by pid 1 before any
/// command runs: (held file, device, inode). Judged by this identity, not
/// by the name, which a command could point elsewhere later (rename the
/// folder it is in, put a link there).
static ALLOWED: std::sync::Mutex<Vec<(OwnedFd, u64, u64)>> = std::sync::Mutex::new(Vec::new());

/// Before the first command: pin the allowed sockets, and find out whether
/// pid 1 can take sockets at all.
pub(crate) fn prepare_connects(p: &Prepared) {
    if let Ok(mut v) = ALLOWED.lock() {
        for q in &p.model.unix_sockets {
            let held = sys::openat2_path(None, q, 0, 0)
                .and_then(|f| sys::fstatat(f.as_fd(), Path::new("")).map(|st| (f, st)));
            if let Ok((f, st)) = held {
                if st.mode & libc::S_IFMT == libc::S_IFSOCK {
                    v.push((f, st.dev, st.ino));
                }
            }
        }
    }
    probe_socket_taking();
}

/// Whether `st` is one of the pinned allowed sockets.
fn allowed_socket(st: &sys::Stat) -> bool {
    ALLOWED.lock().is_ok_and(|v| {
        v.iter()
            .any(|(_, dev, ino)| *dev == st.dev && *ino == st.ino)
    })
}

/// Try `pidfd_getfd` on pid 1 itself and remember the answer.
fn probe_socket_taking() {
    use std::os::fd::AsRawFd;
    // The pidfd itself is the one descriptor surely open here.
    let ok = sys::pidfd_open(sys::getpid())
        .and_then(|me| sys::pidfd_getfd(me.as_fd(), me.as_raw_fd()))
        .is_ok();
    CAN_TAKE_SOCKETS.store(ok, std::sync::atomic::Ordering::SeqCst);
}

/// Whether commands of `p` may make unix sockets, each connect of which
/// the observer then judges.
pub(crate) fn unix_sockets_judged(p: &Prepared) -> bool {
    p.level.namespaces() && CAN_TAKE_SOCKETS.load(std::sync::atomic::Ordering::SeqCst)
}

/// How long pid 1 itself waits for a blocking caller's connect when no
/// helper process can be had, before it answers ETIMEDOUT.
const CONNECT_WAIT_MS: i32 = 2000;

/// How long a helper waits (about as long as the kernel tries a TCP
/// handshake before ETIMEDOUT).
const HELPER_WAIT_MS: i32 = 130_000;

/// Helpers waiting at once, at most (each stands for a blocked thread of
/// the sandbox).
const MAX_CONNECT_HELPERS: usize = 64;

/// How a connect attempt stands.
enum Step {
    /// Finished: what to answer.
    Done(Result<(), i32>),
    /// The caller's socket is blocking and the connect is under way
    /// (`retry`: a unix listener's queue was full, try again); `flags` are
    /// the socket's own, to restore.
    Waiting { flags: i32, retry: bool },
}

/// Start `connect(sock, addr)` as the caller asked it: at once for a
/// non-blocking socket; a blocking one is made non-blocking for the
/// attempt (its flags restored by [`connect_finish`]).
fn connect_start(sock: std::os::fd::BorrowedFd<'_>, addr: &[u8]) -> Step {
    let flags = match sys::file_status_flags(sock) {
        Ok(f) => f,
        Err(e) => return Step::Done(Err(errno(e))),
    };
    if flags & libc::O_NONBLOCK != 0 {
        return Step::Done(sys::connect_raw(sock, addr).map_err(errno));
    }
    if let Err(e) = sys::set_file_status_flags(sock, flags | libc::O_NONBLOCK) {
        return Step::Done(Err(errno(e)));
    }
    match sys::connect_raw(sock, addr).map_err(errno) {
        Err(libc::EAGAIN) => Step::Waiting { flags, retry: true },
        Err(libc::EINPROGRESS) => Step::Waiting {
            flags,
            retry: false,
        },
        other => {
            let _ = sys::set_file_status_flags(sock, flags);
            Step::Done(other)
        }
    }
}

/// Wait, at most `wait_ms`, for a connect [`connect_start`] left under
/// way, then restore the socket's flags.
fn connect_finish(
    sock: std::os::fd::BorrowedFd<'_>,
    addr: &[u8],
    flags: i32,
    retry: bool,
    wait_ms: i32,
) -> Result<(), i32> {
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
    let r = if retry {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(5));
            match sys::connect_raw(sock, addr).map_err(errno) {
                Err(libc::EAGAIN) if std::time::Instant::now() < deadline => {}
                Err(libc::EAGAIN) => break Err(libc::ETIMEDOUT),
                other => break other,
            }
        }
    } else {
        match sys::poll_writable(sock, wait_ms) {
            Ok(true) => match sys::socket_error(sock) {
                Ok(0) => Ok(()),
                Ok(e) => Err(e),
                Err(e) => Err(errno(e)),
            },
            Ok(false) => Err(libc::ETIMEDOUT),
            Err(e) => Err(errno(e)),
        }
    };
    let _ = sys::set_file_status_flags(sock, flags);
    r
}

/// The pathname of a unix socket address: None for an abstract or unnamed
/// address, or another family.
fn unix_pathname(raw: &[u8]) -> Option<&[u8]> {
    let family = u16::from_ne_bytes([*raw.first()?, *raw.get(1)?]);
    if i32::from(family) != libc::AF_UNIX {
        return None;
    }
    let path = &raw[2..];
    let path = &path[..path.iter().position(|b| *b == 0).unwrap_or(path.len())];
    (!path.is_empty()).then_some(path)
}

/// Each cow overlay's device and the device its upper layer's files show
/// (set up by pid 1 itself, before any command runs).
static COW_LAYERS: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

/// Record a cow overlay's devices (sequence.rs).
pub(crate) fn note_cow_layer(overlay: u64, upper: u64) {
    if let Ok(mut v) = COW_LAYERS.lock() {
        v.push((overlay, upper));
    }
}

/// The (device, inode) keys under which sock_diag would list a socket
/// bound at a file that stat shows as `dev`, `ino`: its own, and for a
/// file of a cow overlay's upper layer, the overlay's. A file of a lower
/// layer (the host's) gets no overlay key. None when the inode does not
/// fit in the 32 bits sock_diag reports.
fn diag_keys(dev: u64, ino: u64) -> Option<Vec<(u32, u32)>> {
    let ino = u32::try_from(ino).ok()?;
    let mut keys = vec![(kernel_dev(dev), ino)];
    if let Ok(v) = COW_LAYERS.lock() {
        keys.extend(
            v.iter()
                .filter(|(_, upper)| *upper == dev)
                .map(|(overlay, _)| (kernel_dev(*overlay), ino)),
        );
    }
    Some(keys)
}

/// The kernel's own encoding of a device number (what sock_diag reports),
/// from the user-space one (`st_dev`).
fn kernel_dev(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    u32::try_from(((major << 20) | (minor & 0xf_ffff)) & 0xffff_ffff).unwrap_or(0)
}

/// Where a unix socket of `pid` asking for `raw` is to be connected, or the
/// errno refusing it, and what to record. The address for a pathname is
/// the socket file pid 1 holds (`/proc/self/fd/N`, with the file, to keep
/// until the connect is made).
type Target = Result<(Vec<u8>, Option<OwnedFd>), i32>;

fn unix_target(
    p: &Prepared,
    pid: i32,
    raw: &[u8],
    name: &'static str,
) -> (Target, Option<AuditRecord>) {
    use std::os::unix::ffi::OsStrExt;
    let Some(path) = unix_pathname(raw) else {
        // Abstract, unnamed or AF_UNSPEC (a datagram socket's disconnect):
        // no file is involved; the scope pid 1 holds decides.
        let text = match parse_sockaddr(raw) {
            Some(Addr::Unix(t)) => t,
            _ => String::new(),
        };
        let mut rec = record(
            EventKind::NetConnect,
            pid,
            true,
            Reason::NET_UNIX_SOCKET.code(),
            name.into(),
        );
        rec.addr = Some(text);
        return (
            Ok((raw.to_vec(), None)),
            (p.model.audit >= AuditLevel::All).then_some(rec),
        );
    };
    let asked = Path::new(std::ffi::OsStr::from_bytes(path));
    let opened = if asked.is_absolute() {
        sys::openat2_path(None, asked, 0, 0)
    } else {
        sys::openat2_path(None, Path::new(&format!("/proc/{pid}/cwd")), 0, 0)
            .and_then(|cwd| sys::openat2_path(Some(cwd.as_fd()), asked, 0, 0))
    };
    let file = match opened {
        Ok(f) => f,
        Err(e) => return (Err(errno(e)), None),
    };
    let st = match sys::fstatat(file.as_fd(), Path::new("")) {
        Ok(st) => st,
        Err(e) => return (Err(errno(e)), None),
    };
    if st.mode & libc::S_IFMT != libc::S_IFSOCK {
        // What the kernel answers for a path that is not a socket.
        return (Err(libc::ECONNREFUSED), None);
    }
    use std::os::fd::AsRawFd;
    let held = format!("/proc/self/fd/{}", file.as_raw_fd());
    let shown = std::fs::read_link(&held)
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_else(|_| asked.to_string_lossy().into_owned());
    let made_here = if p.level.namespaces() {
        // Bound by a socket of the sandbox's own network namespace: the
        // host's daemons live in another one.
        diag_keys(st.dev, st.ino).is_some_and(|keys| {
            sys::unix_bound_files().is_ok_and(|v| v.iter().any(|b| keys.contains(b)))
        })
    } else {
        // No network namespace of its own (no-userns): only the private
        // home and /tmp are the sandbox's.
        p.scratch
            .iter()
            .flat_map(|(h, t)| [h, t])
            .any(|d| Path::new(&shown).starts_with(d))
    };
    if !made_here && !allowed_socket(&st) {
        let mut rec = record(
            EventKind::NetDenied,
            pid,
            false,
            Reason::NET_UNIX_HOST_SOCKET.code(),
            name.into(),
        );
        rec.addr = Some(shown);
        return (Err(libc::EACCES), Some(rec));
    }
    let mut addr = u16::try_from(libc::AF_UNIX)
        .unwrap_or(1)
        .to_ne_bytes()
        .to_vec();
    addr.extend_from_slice(held.as_bytes());
    addr.push(0);
    let mut rec = record(
        EventKind::NetConnect,
        pid,
        true,
        Reason::NET_UNIX_SOCKET.code(),
        name.into(),
    );
    rec.addr = Some(shown);
    (
        Ok((addr, Some(file))),
        (p.model.audit >= AuditLevel::All).then_some(rec),
    )
}

/// The path of a protected name that `seen` would create in an rw mount
/// (where it does not exist yet), if it would.
fn protected_creation(p: &Prepared, seen: &Seen) -> Option<PathBuf> {
    let target = match seen {
        Seen::Open {
            path,
            flags,
            existed,
            ..
        } if flags & libc::O_CREAT as u32 != 0 && !existed => path,
        Seen::Create(path, _, _) => path,
        Seen::Rename(_, to) => to,
        _ => return None,
    };
    let inside = |_: &Path, inner: &Path| std::fs::symlink_metadata(inner).is_ok();
    let v = explain_fs_with(&p.model, &p.names, target, FsOp::Write, &inside);
    (v.code == Reason::FS_PROTECTED_QUARANTINED.code()).then(|| target.clone())
}

/// A `syscall.denied` record for system call `nr`.
fn denied_syscall(nr: u32, pid: i32) -> AuditRecord {
    let name = seccomp::denied_name(nr)
        .map(str::to_string)
        .unwrap_or_else(|| format!("syscall {nr}"));
    record(
        EventKind::SyscallDenied,
        pid,
        false,
        Reason::SYSCALL_DENIED.code(),
        name,
    )
}

fn record(kind: EventKind, pid: i32, allowed: bool, code: &str, syscall: String) -> AuditRecord {
    AuditRecord {
        kind,
        pid,
        allowed,
        reason_code: code.into(),
        syscall,
        path: None,
        to: None,
        op: None,
        file_type: None,
        argv: None,
        addr: None,
        suppressed: None,
        found: None,
    }
}

/// Read `buf.len()` bytes at `addr` in `pid`: `process_vm_readv`, or
/// where a surrounding seccomp profile refuses that call (a container's,
/// or an outer paddock sandbox's), the same read through /proc/PID/mem,
/// which the kernel guards with the same ptrace-access check.
fn read_memory(pid: i32, addr: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    match sys::read_process_memory(pid, addr, buf) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) => {
            use std::os::unix::fs::FileExt;
            std::fs::File::open(format!("/proc/{pid}/mem"))?.read_at(buf, addr)
        }
        other => other,
    }
}

/// Read a NUL-terminated string at `addr` in `pid`, at most 4 KiB, page by
/// page (a string near the end of a mapping must not fail the read).
fn read_cstr(pid: i32, addr: u64) -> Option<Vec<u8>> {
    const MAX: usize = 4096;
    // Most paths are short: the first read copies this much, not the
    // rest of the page.
    const FIRST: usize = 256;
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < MAX {
        let to_page_end = 4096 - (at % 4096) as usize;
        let want = if out.is_empty() { FIRST } else { MAX };
        let mut buf = vec![0u8; to_page_end.min(MAX - out.len()).min(want)];
        let n = read_memory(pid, at, &mut buf).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Some(out);
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    Some(out)
}

/// The absolute path of `raw`, relative to `dirfd` (or the cwd) of `pid`,
/// and what is there where the resolver was asked; `in_root` (a
/// container's): resolved as the kernel will ([`ProcDirs::resolve`]), else
/// with the caller's own links followed ([`ProcDirs::own_links`]). The
/// errno the call would fail with where no path can be made (`EBADF`:
/// `dirfd` is not open).
fn absolute(
    procs: &mut ProcDirs,
    pid: i32,
    dirfd: Option<u64>,
    raw: &[u8],
    in_root: bool,
    follow_last: bool,
) -> Result<(PathBuf, Known), i32> {
    use std::os::unix::ffi::OsStrExt;
    if in_root && !raw.is_empty() {
        let fd = dirfd.map(|d| low32(d) as i32).unwrap_or(libc::AT_FDCWD);
        if let Some((p, found)) = procs.resolve(pid, fd, raw, follow_last) {
            return Ok((p, Some(found)));
        }
    }
    let raw = Path::new(std::ffi::OsStr::from_bytes(raw));
    let path = if raw.is_absolute() {
        normalize(raw)
    } else {
        let fd = dirfd.map(|d| low32(d) as i32).unwrap_or(libc::AT_FDCWD);
        let base = if fd == libc::AT_FDCWD {
            procs.link(pid, "cwd").ok_or(libc::ENOENT)?
        } else {
            procs.link(pid, &format!("fd/{fd}")).ok_or(libc::EBADF)?
        };
        normalize(&base.join(raw))
    };
    let path = if in_root {
        procs.own_links(pid, path)
    } else {
        path
    };
    Ok((path, None))
}

/// What the resolver found at a path: None where it was not asked (the
/// path as written), `Some(None)` for nothing there, else the file's
/// mode.
type Known = Option<Option<u32>>;

/// A path argument: the string read from the caller's memory (`EFAULT`
/// where it cannot be), made absolute.
fn path_arg(
    procs: &mut ProcDirs,
    pid: i32,
    args: &[u64; 6],
    dirfd: Option<usize>,
    path: usize,
    in_root: bool,
    follow_last: bool,
) -> Result<(PathBuf, Known), i32> {
    let raw = read_cstr(pid, args[path]).ok_or(libc::EFAULT)?;
    absolute(
        procs,
        pid,
        dirfd.map(|d| args[d]),
        &raw,
        in_root,
        follow_last,
    )
}

/// The low 32 bits of a system call argument (an `int` in C).
fn low32(x: u64) -> u32 {
    u32::try_from(x & 0xffff_ffff).unwrap_or(0)
}

/// Whether an open of `path` with `flags` finds the file there (only
/// asked when the open may create it); `in_root`: looked up in the
/// caller's root (a container's), not in the observer's.
fn existed(
    procs: &mut ProcDirs,
    pid: i32,
    (path, known): &(PathBuf, Known),
    flags: u32,
    in_root: bool,
) -> bool {
    let creat = flags & libc::O_CREAT as u32 != 0;
    // O_EXCL: the open fails unless it creates the file.
    let excl = flags & libc::O_EXCL as u32 != 0;
    !creat
        || (!excl
            && match known {
                Some(found) => found.is_some(),
                None if in_root => procs.exists_in_root(pid, path, false),
                None => std::fs::symlink_metadata(path).is_ok(),
            })
}

/// What the caller asked, read while it waits. `Ok(None)`: a `connect`
/// (read by [`Watch::connect`]). `Err(errno)`: it cannot be read (the
/// memory is not the caller's to give, a descriptor is not open).
fn read_call(
    procs: &mut ProcDirs,
    pid: i32,
    what: Watched,
    a: &[u64; 6],
    in_root: bool,
) -> Result<Option<Seen>, i32> {
    macro_rules! path {
        ($dirfd:expr, $path:expr) => {
            path!($dirfd, $path, false)
        };
        ($dirfd:expr, $path:expr, $follow:expr) => {
            path_arg(procs, pid, a, $dirfd, $path, in_root, $follow)?
        };
    }
    // An open follows a final link unless told not to (or it must create).
    let follows = |flags: u32| {
        flags & libc::O_NOFOLLOW as u32 == 0
            && flags & (libc::O_CREAT | libc::O_EXCL) as u32
                != (libc::O_CREAT | libc::O_EXCL) as u32
    };
    Ok(Some(match what {
        Watched::Open {
            dirfd_arg,
            path_arg: pa,
            flags_arg,
        } => {
            // creat(2) is open(O_CREAT|O_WRONLY|O_TRUNC).
            let flags = flags_arg.map_or(WRITE_FLAGS, |f| low32(a[f]));
            let path = path!(dirfd_arg, pa, follows(flags));
            Seen::Open {
                existed: existed(procs, pid, &path, flags, in_root),
                pseudo: pseudo(procs, pid, &path, in_root),
                path: path.0,
                flags,
            }
        }
        Watched::Openat2 => {
            // struct open_how { u64 flags; u64 mode; u64 resolve; }
            let mut how = [0u8; 8];
            read_memory(pid, a[2], &mut how).map_err(|_| libc::EFAULT)?;
            let flags = low32(u64::from_ne_bytes(how));
            let path = path!(Some(0), 1, follows(flags));
            Seen::Open {
                existed: existed(procs, pid, &path, flags, in_root),
                pseudo: pseudo(procs, pid, &path, in_root),
                path: path.0,
                flags,
            }
        }
        Watched::Delete {
            dirfd_arg,
            path_arg: pa,
        } => Seen::Delete(path!(dirfd_arg, pa).0),
        Watched::Rename { from, to } => {
            let f = path!(from.0, from.1).0;
            Seen::Rename(f, path!(to.0, to.1).0)
        }
        Watched::Create {
            dirfd_arg,
            path_arg: pa,
            what,
        } => {
            let path = path!(dirfd_arg, pa);
            let kernel = pseudo(procs, pid, &path, in_root);
            Seen::Create(path.0, what, kernel)
        }
        Watched::Exec {
            dirfd_arg,
            path_arg: pa,
            argv_arg,
        } => {
            let raw = read_cstr(pid, a[pa]).ok_or(libc::EFAULT)?;
            // The program by the name it was started with (`/bin/sh`, not
            // the `busybox` it links to): its folders resolved, the last
            // link not followed.
            let (path, known) =
                absolute(procs, pid, dirfd_arg.map(|d| a[d]), &raw, in_root, false)?;
            let mut argv: Vec<String> = Vec::new();
            let mut at = a[argv_arg];
            // At most 64 arguments and 16 KiB in all: a record must fit
            // in one message to the supervisor.
            while at != 0 && argv.len() < 64 && argv.iter().map(String::len).sum::<usize>() < 16384
            {
                let mut ptr = [0u8; 8];
                read_memory(pid, at, &mut ptr).map_err(|_| libc::EFAULT)?;
                let s = u64::from_ne_bytes(ptr);
                if s == 0 {
                    break;
                }
                argv.push(
                    String::from_utf8_lossy(&read_cstr(pid, s).ok_or(libc::EFAULT)?).into_owned(),
                );
                at += 8;
            }
            // A shell's PATH search tries names that are not there: not a
            // program started. Looked up while the caller waits. In a
            // container only a plain absolute name found missing inside
            // its root counts so (a descriptor, a link of its own, a
            // chroot: recorded).
            let missing = if let (true, Some(found)) = (in_root, known) {
                found.is_none()
            } else if in_root {
                raw.first() == Some(&b'/')
                    && !raw.starts_with(b"/proc")
                    && !raw.starts_with(b"/dev")
                    && matches!(
                        procs
                            .lookup_in_root(pid, &path, true)
                            .map_err(|e| e.raw_os_error()),
                        Err(Some(libc::ENOENT | libc::ENOTDIR))
                    )
            } else {
                std::fs::metadata(&path).is_err()
            };
            Seen::Exec(path, argv, missing)
        }
        // Read and carried out by `Watch::connect`, never here.
        Watched::Connect => return Ok(None),
    }))
}

fn parse_sockaddr(b: &[u8]) -> Option<Addr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    let port = || Some(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
    Some(match i32::from(family) {
        libc::AF_INET if b.len() >= 8 => Addr::Inet(SocketAddr::new(
            Ipv4Addr::new(b[4], b[5], b[6], b[7]).into(),
            port()?,
        )),
        libc::AF_INET6 if b.len() >= 24 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[8..24]);
            Addr::Inet(SocketAddr::new(Ipv6Addr::from(ip).into(), port()?))
        }
        libc::AF_UNIX => {
            let path = &b[2..];
            let text = match path.first() {
                Some(0) => format!(
                    "@{}",
                    String::from_utf8_lossy(&path[1..]).trim_end_matches('\0')
                ),
                _ => String::from_utf8_lossy(path.split(|c| *c == 0).next().unwrap_or(&[]))
                    .into_owned(),
            };
            Addr::Unix(text)
        }
        other => Addr::Other(u16::try_from(other).unwrap_or(u16::MAX)),
    })
}

/// Kernel interfaces, not files: writes there (`/dev/null`, `/proc/self/…`)
/// are not file activity.
fn is_pseudo(p: &Path) -> bool {
    ["/dev", "/proc", "/sys"]
        .iter()
        .any(|d| p.starts_with(d) && !p.starts_with("/dev/shm"))
}

/// Whether an open or creation of `path` is of a kernel interface, not a
/// file (no record); `in_root`: a container's.
fn pseudo(procs: &mut ProcDirs, pid: i32, (path, known): &(PathBuf, Known), in_root: bool) -> bool {
    let kernel_fs =
        || (path.starts_with("/proc") || path.starts_with("/sys")) && !through_proc_link(path);
    match known {
        _ if !in_root => is_pseudo(path),
        Some(Some(mode)) if matches!(mode & libc::S_IFMT, libc::S_IFCHR | libc::S_IFBLK) => true,
        Some(_) => kernel_fs(),
        None => procs.container_pseudo(pid, path),
    }
}

/// A verdict on a path, as the records need it.
struct Verdict {
    allowed: bool,
    code: &'static str,
}

fn decide(j: Judge<'_>, pid: i32, syscall: &str, seen: Seen) -> Option<AuditRecord> {
    let level = j.level();
    let inside = |_: &Path, inner: &Path| std::fs::symlink_metadata(inner).is_ok();
    let verdict = |path: &Path, op: FsOp| match j {
        Judge::Sandbox(p) => {
            let v = explain_fs_with(&p.model, &p.names, path, op, &inside);
            Verdict {
                allowed: v.allowed,
                code: v.code,
            }
        }
        Judge::Container(_) => Verdict {
            allowed: true,
            code: Reason::FS_CONTAINER.code(),
        },
    };
    let (proxy_port, transparent) = match j {
        Judge::Sandbox(p) => (p.proxy_port, p.transparent),
        Judge::Container(c) => (c.proxy_port, c.transparent),
    };
    let show = |path: &Path| Some(path.to_string_lossy().into_owned());
    let denied = |path: &Path, op: &str, code: &str| {
        let mut r = record(EventKind::FileDenied, pid, false, code, syscall.into());
        r.path = show(path);
        r.op = Some(op.into());
        Some(r)
    };
    match seen {
        Seen::Open {
            path,
            flags,
            existed,
            pseudo,
        } => {
            // In a container nothing is left out on what was read (another
            // thread may have put `/dev/null` there for this read only):
            // a kernel interface is recorded, and said to be one.
            if pseudo && !j.is_container() {
                return None;
            }
            let write = flags & WRITE_FLAGS != 0;
            let op = if write { FsOp::Write } else { FsOp::Read };
            let v = verdict(&path, op);
            if !v.allowed {
                return denied(&path, if write { "write" } else { "read" }, v.code);
            }
            let kind = match (write, flags & libc::O_CREAT as u32 != 0) {
                (false, _) if level >= AuditLevel::All => EventKind::FileRead,
                (false, _) => return None,
                (true, true) if !existed => EventKind::FileCreate,
                (true, _) => EventKind::FileModify,
            };
            if level < AuditLevel::Writes {
                return None;
            }
            let mut r = record(kind, pid, true, v.code, syscall.into());
            r.path = show(&path);
            if pseudo {
                r.file_type = Some("kernel".into());
            } else if kind == EventKind::FileCreate {
                r.file_type = Some("file".into());
            }
            Some(r)
        }
        Seen::Delete(path) => {
            let v = verdict(&path, FsOp::Delete);
            if !v.allowed {
                return denied(&path, "delete", v.code);
            }
            (level >= AuditLevel::Writes).then(|| {
                let mut r = record(EventKind::FileDelete, pid, true, v.code, syscall.into());
                r.path = show(&path);
                r
            })
        }
        Seen::Rename(from, to) => {
            let v = verdict(&from, FsOp::Delete);
            if !v.allowed {
                return denied(&from, "delete", v.code);
            }
            let w = verdict(&to, FsOp::Write);
            if !w.allowed {
                return denied(&to, "write", w.code);
            }
            (level >= AuditLevel::Writes).then(|| {
                let mut r = record(EventKind::FileRename, pid, true, w.code, syscall.into());
                r.path = show(&from);
                r.to = show(&to);
                r
            })
        }
        Seen::Create(path, what, pseudo) => {
            if pseudo && !j.is_container() {
                return None;
            }
            let v = verdict(&path, FsOp::Write);
            if !v.allowed {
                return denied(&path, "write", v.code);
            }
            (level >= AuditLevel::Writes).then(|| {
                let mut r = record(EventKind::FileCreate, pid, true, v.code, syscall.into());
                r.path = show(&path);
                r.file_type = Some(what.into());
                r
            })
        }
        // A shell's PATH search tries names that do not exist: not a
        // program started.
        Seen::Exec(_, _, true) if !j.is_container() => None,
        Seen::Exec(path, argv, missing) => (level >= AuditLevel::Writes).then(|| {
            let mut r = record(
                EventKind::ProcessExec,
                pid,
                true,
                Reason::EXEC_ALLOWED.code(),
                syscall.into(),
            );
            r.path = show(&path);
            r.argv = Some(argv);
            if j.is_container() {
                r.found = Some(!missing);
            }
            r
        }),
        Seen::Connect(addr) => {
            let (allowed, code, text) = match addr {
                Addr::Inet(sa) if sa.ip().is_loopback() => {
                    let proxy = proxy_port == Some(sa.port());
                    (
                        true,
                        if proxy {
                            Reason::NET_VIA_PROXY.code()
                        } else {
                            Reason::NET_LOOPBACK.code()
                        },
                        sa.to_string(),
                    )
                }
                // Carried by the TUN device to paddock's judge, which
                // decides and records it (network events).
                Addr::Inet(sa) if transparent => {
                    (true, Reason::NET_VIA_TRANSPARENT.code(), sa.to_string())
                }
                Addr::Inet(sa) => (false, Reason::NET_DIRECT_BLOCKED.code(), sa.to_string()),
                Addr::Unix(path) => (true, Reason::NET_UNIX_SOCKET.code(), path),
                Addr::Other(f) => (true, Reason::NET_OTHER_FAMILY.code(), format!("family {f}")),
            };
            if allowed && level < AuditLevel::All {
                return None;
            }
            let kind = if allowed {
                EventKind::NetConnect
            } else {
                EventKind::NetDenied
            };
            let mut r = record(kind, pid, allowed, code, syscall.into());
            r.addr = Some(text);
            Some(r)
        }
    }
}

//! Protected names (`.git`, `.envrc`, `.claude`, ...) on the host side of
//! a writable mount, at any depth.
//!
//! Before the sandbox starts, [`scan`] finds every protected name that
//! exists in a writable mount, so that each gets a read-only mount over
//! itself (the kernel then refuses writes, renames and removal with EROFS
//! or EBUSY, with no race). A name that does not exist yet cannot be
//! covered that way: a mount needs something to sit on, and paddock does
//! not create placeholders in the user's folders. So [`Guard::sweep`]
//! walks the `rw` and `rw-no-delete` mounts again after every command of a
//! session, every second while commands run, and when the sandbox ends,
//! and moves each protected name that appeared aside under a
//! `.paddock-quarantine-…` name, losing nothing. (`cow` mounts need no
//! sweep: their changes reach the host only through `paddock apply`,
//! which never writes a protected name.)
//!
//! The start's scan of the `rw` and `rw-no-delete` mounts also watches
//! each of their folders with inotify ([`Watch`]), so a sweep reads only
//! the entries that appeared and walks only folders that appeared; when
//! the events cannot be trusted to be complete (an overflow, a folder not
//! found again at its place, the watch budget) it walks everything again.
//!
//! A one-shot run's start scan keeps a [`Snapshot`] instead (an inotify
//! instance costs more to tear down than a run's sweeps save): the sweep
//! once its sandbox is gone reads only the folders whose status changed.
//!
//! Every walk goes through descriptors: folders are opened beneath their
//! parent's fd with no link followed, and a quarantine is a `renameat2`
//! inside the pinned parent, so a sandbox that swaps a folder for a link
//! meanwhile cannot redirect it.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use paddock_sys as sys;

/// Folders read per walk at most; beyond, the walk reports itself
/// incomplete.
pub const SCAN_BUDGET: usize = 200_000;

/// The shortest leading part of `path` that ends with one of `names`: the
/// protected name `path` is, or lies inside.
pub fn protected_prefix(path: &Path, names: &[PathBuf]) -> Option<PathBuf> {
    Names::new(names).prefix(path)
}

/// What one walk found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Host paths of every protected name found, with their identity.
    pub found: Vec<(PathBuf, Identity)>,
    /// False when the walk stopped at [`SCAN_BUDGET`] folders.
    pub complete: bool,
}

/// Who an entry is: device, inode, and birth time (or, where the file
/// system keeps none, the status time): inode numbers are reused at once,
/// so a name removed and made again may get the old one.
pub type Identity = (u64, u64, i128);

fn identity(dir: BorrowedFd<'_>, name: &Path) -> Option<Identity> {
    let st = sys::fstatat(dir, name).ok()?;
    let born = sys::birth_time(dir, name).unwrap_or(st.ctime_ns);
    Some((st.dev, st.ino, born))
}

/// Protected names split into components, indexed by their last one, so
/// that most entries are rejected by one set lookup. Built once per
/// sandbox: the audit observer asks it about every observed write.
pub(crate) struct Names {
    last: HashSet<OsString>,
    all: Vec<Vec<OsString>>,
    /// Components in the longest name.
    longest: usize,
}

impl Names {
    pub(crate) fn new(names: &[PathBuf]) -> Names {
        let all: Vec<Vec<OsString>> = names
            .iter()
            .map(|n| n.iter().map(OsStr::to_os_string).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .collect();
        let last = all.iter().filter_map(|v| v.last().cloned()).collect();
        let longest = all.iter().map(Vec::len).max().unwrap_or(0);
        Names { last, all, longest }
    }

    /// The last components of a mount's own host path that a name may
    /// begin with (`.config` of a mounted `~/.config`, for
    /// `.config/mise`): the parents of the mount's entries.
    fn context(&self, root: &Path) -> Vec<OsString> {
        let comps: Vec<OsString> = root
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n.to_os_string()),
                _ => None,
            })
            .collect();
        let keep = self.longest.saturating_sub(1).min(comps.len());
        comps[comps.len() - keep..].to_vec()
    }

    /// The shortest leading part of `path` that ends with one of the
    /// names ([`protected_prefix`]).
    pub(crate) fn prefix(&self, path: &Path) -> Option<PathBuf> {
        let mut parents: Vec<&OsStr> = Vec::new();
        for c in path.iter() {
            if self.hit(&parents, c) {
                let mut p: PathBuf = parents.iter().collect();
                p.push(c);
                return Some(p);
            }
            parents.push(c);
        }
        None
    }

    /// Does the entry `name` at `parents/name` complete a protected name?
    fn hit<S: AsRef<OsStr>>(&self, parents: &[S], name: &OsStr) -> bool {
        if !self.last.contains(name) {
            return false;
        }
        self.all.iter().any(|want| {
            let Some((last, before)) = want.split_last() else {
                return false;
            };
            last == name
                && before.len() <= parents.len()
                && parents[parents.len() - before.len()..]
                    .iter()
                    .zip(before)
                    .all(|(have, want)| have.as_ref() == want.as_os_str())
        })
    }
}

/// A folder the walk could not read as it was: made readable for the
/// walk (its owner may, and the sandbox runs as that owner), its mode put
/// back afterwards.
struct Opened {
    fd: OwnedFd,
    restore: Option<(OwnedFd, u32)>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Some((pinned, mode)) = &self.restore {
            let _ = std::fs::set_permissions(
                format!("/proc/self/fd/{}", pinned.as_raw_fd()),
                std::fs::Permissions::from_mode(*mode),
            );
        }
    }
}

/// Open the folder `name` in `dir` for reading its entries, making it
/// readable first if it is not (a folder the sandbox chmodded to 0111
/// must not hide what is in it). The mode is changed through a
/// descriptor that pins the folder, never by name.
fn open_listable(dir: BorrowedFd<'_>, name: &Path) -> Option<Opened> {
    match sys::open_dir_beneath(dir, name) {
        Ok(fd) => return Some(Opened { fd, restore: None }),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
        Err(_) => return None,
    }
    let pinned = sys::openat2_path(
        Some(dir),
        name,
        libc::O_DIRECTORY | libc::O_NOFOLLOW,
        sys::resolve::BENEATH | sys::resolve::NO_SYMLINKS | sys::resolve::NO_MAGICLINKS,
    )
    .ok()?;
    let st = sys::fstatat(pinned.as_fd(), Path::new("")).ok()?;
    let mode = st.mode & 0o7777;
    let magic = format!("/proc/self/fd/{}", pinned.as_raw_fd());
    std::fs::set_permissions(&magic, std::fs::Permissions::from_mode(mode | 0o500)).ok()?;
    match sys::open_dir_beneath(pinned.as_fd(), Path::new(".")) {
        Ok(fd) => Some(Opened {
            fd,
            restore: Some((pinned, mode)),
        }),
        Err(_) => {
            let _ = std::fs::set_permissions(&magic, std::fs::Permissions::from_mode(mode));
            None
        }
    }
}

/// Walk `root` (a host folder), calling `hit(parent_fd, name, host_path)`
/// for every entry whose path ends with a protected name; those are not
/// entered. Links are never followed. False when some folder could not be
/// read (or the budget ran out).
fn walk(root: &Path, names: &Names, hit: impl FnMut(BorrowedFd<'_>, &Path, PathBuf)) -> bool {
    let Ok(fd) = sys::open_dir_nofollow(root) else {
        return true;
    };
    walk_at(
        root,
        Opened { fd, restore: None },
        Vec::new(),
        names,
        hit,
        |_, _| true,
        |_, _, _| {},
    )
}

/// [`walk`] from the folder `start`, at `rel` below `root`, calling
/// `enter(fd, rel)` for each folder before its entries are read (false:
/// the walk is incomplete) and `listed(fd, rel, folders)` once they are,
/// with the names of the folders in it.
fn walk_at(
    root: &Path,
    start: Opened,
    rel: Vec<OsString>,
    names: &Names,
    mut hit: impl FnMut(BorrowedFd<'_>, &Path, PathBuf),
    mut enter: impl FnMut(BorrowedFd<'_>, &[OsString]) -> bool,
    mut listed: impl FnMut(BorrowedFd<'_>, &[OsString], Vec<OsString>),
) -> bool {
    let mut complete = true;
    let context = names.context(root);
    let mut stack: Vec<(Opened, Vec<OsString>)> = vec![(start, rel)];
    let mut budget = SCAN_BUDGET;
    while let Some((dir, rel)) = stack.pop() {
        if budget == 0 {
            return false;
        }
        budget -= 1;
        complete &= enter(dir.fd.as_fd(), &rel);
        // Every folder on the stack was opened by this walk and is read
        // once: through its own descriptor.
        let Ok(entries) = sys::read_dir_here(dir.fd.as_fd()) else {
            complete = false;
            continue;
        };
        let parents: Vec<OsString> = context.iter().chain(&rel).cloned().collect();
        let folders = sort_entries(
            dir.fd.as_fd(),
            root,
            &rel,
            &parents,
            names,
            entries,
            &mut hit,
        );
        for e in &folders {
            match open_listable(dir.fd.as_fd(), Path::new(e)) {
                Some(child) => {
                    let mut r = rel.clone();
                    r.push(e.clone());
                    stack.push((child, r));
                }
                None => complete = false,
            }
        }
        listed(dir.fd.as_fd(), &rel, folders);
    }
    complete
}

/// The entries read from `dir` (at `rel` below `root`, `parents` the
/// components a protected name may begin with): each that completes a
/// protected name goes to `hit` (and is not entered); the names of the
/// folders among the rest are returned.
fn sort_entries(
    dir: BorrowedFd<'_>,
    root: &Path,
    rel: &[OsString],
    parents: &[OsString],
    names: &Names,
    entries: Vec<(OsString, u8)>,
    hit: &mut dyn FnMut(BorrowedFd<'_>, &Path, PathBuf),
) -> Vec<OsString> {
    let mut folders = Vec::new();
    for (e, dtype) in entries {
        if names.hit(parents, &e) {
            let mut p = root.to_path_buf();
            p.extend(rel);
            p.push(&e);
            hit(dir, Path::new(&e), p);
            continue;
        }
        let is_dir = match dtype {
            sys::DT_DIR => true,
            sys::DT_UNKNOWN => sys::fstatat(dir, Path::new(&e)).is_ok_and(|s| s.is_dir()),
            _ => false,
        };
        if is_dir {
            folders.push(e);
        }
    }
    folders
}

/// Every protected name under `root`, at any depth.
pub fn scan(root: &Path, names: &[PathBuf]) -> Scan {
    scan_by(|hit| walk(root, &Names::new(names), hit))
}

/// The [`Scan`] of a walk that calls `hit` for each protected entry.
fn scan_by(walk: impl FnOnce(&mut dyn FnMut(BorrowedFd<'_>, &Path, PathBuf)) -> bool) -> Scan {
    let mut found = Vec::new();
    let complete = walk(&mut |dir, name, p| {
        if let Some(id) = identity(dir, name) {
            found.push((p, id));
        }
    });
    found.sort();
    Scan { found, complete }
}

/// Folders watched per sandbox at most; past it, every sweep walks its
/// mounts whole, as without a watch.
pub const WATCH_BUDGET: usize = 65_536;

/// What is watched: an entry made in the folder, or moved into it.
const WATCH_MASK: u32 = libc::IN_CREATE | libc::IN_MOVED_TO;

/// A watched folder: which root it is in, where below it, and who it is
/// (device, inode), to tell it from whatever has its name later.
#[derive(Debug, Clone)]
struct Dir {
    root: usize,
    rel: Vec<OsString>,
    id: (u64, u64),
}

/// The inotify watch of a sandbox's writable mounts, set up by the walk
/// that scans them before the sandbox starts, so a sweep reads only the
/// folders where entries appeared (each folder is watched before its
/// entries are read: an entry made after the read is an event).
pub struct Watch {
    fd: OwnedFd,
    roots: Vec<PathBuf>,
    dirs: std::collections::HashMap<i32, Dir>,
    /// False once some folder could not be watched (the budget, the
    /// user's inotify limit, an unreadable folder): sweeps then walk
    /// every mount whole.
    whole: bool,
}

impl Watch {
    /// A watch of nothing yet; None where inotify is not to be had (the
    /// sweeps then walk every mount whole).
    pub fn new() -> Option<Watch> {
        Some(Watch {
            fd: sys::inotify_init().ok()?,
            roots: Vec::new(),
            dirs: std::collections::HashMap::new(),
            whole: true,
        })
    }

    /// [`scan`] `root`, watching every folder of it.
    pub fn scan(&mut self, root: &Path, names: &[PathBuf]) -> Scan {
        scan_by(|hit| self.walk_watching(root, &Names::new(names), hit))
    }
}

/// Watch the folder open at `dir` (`rel` below root `root`); false when
/// it cannot be.
fn add_watch(
    fd: BorrowedFd<'_>,
    dirs: &mut std::collections::HashMap<i32, Dir>,
    root: usize,
    dir: BorrowedFd<'_>,
    rel: &[OsString],
) -> bool {
    if dirs.len() >= WATCH_BUDGET {
        return false;
    }
    let Ok(st) = sys::fstatat(dir, Path::new("")) else {
        return false;
    };
    match sys::inotify_watch_fd(fd, dir, WATCH_MASK) {
        Ok(wd) => {
            dirs.insert(
                wd,
                Dir {
                    root,
                    rel: rel.to_vec(),
                    id: (st.dev, st.ino),
                },
            );
            true
        }
        Err(_) => false,
    }
}

/// How long before its scan a folder must last have changed for the
/// [`Snapshot`] to trust its status-change time: far more than the
/// coarsest timestamp tick (a jiffy), so that a change after the scan
/// cannot carry the time the scan saw.
const SNAPSHOT_MARGIN_NS: i128 = 1_000_000_000;

/// File systems whose folders' status-change times the kernel keeps
/// itself, on every entry made, removed or renamed in them (`statfs`
/// magic numbers: ext2/3/4, XFS, Btrfs, tmpfs, F2FS, bcachefs). Network
/// and FUSE file systems report times their server or daemon chose.
const TRUSTED_CTIME: [i64; 6] = [
    0xEF53,
    0x5846_5342,
    0x9123_683E,
    0x0102_1994,
    0xF2F5_2010,
    0xCA45_1A4E,
];

/// A folder as the start scan saw it.
struct Folder {
    dev: u64,
    ino: u64,
    ctime_ns: i128,
    /// The names of the folders in it.
    folders: Vec<OsString>,
}

/// What a one-shot run's start scan saw of every folder of the writable
/// mounts, so that the sweep once the sandbox is gone
/// ([`Guard::sweep_final`]) reads only the folders that changed.
///
/// Making, removing or renaming an entry in a folder sets the folder's
/// status-change time (ctime) to the current time, and no process can set
/// it back (only the host's clock could). A folder with the device, inode
/// and ctime the scan saw therefore holds the entries the scan read: none
/// of them can be a new protected name, so the sweep only looks deeper,
/// into the folders it holds. A folder that changed, is new, or changed
/// less than [`SNAPSHOT_MARGIN_NS`] before the scan (its time could be
/// the one a later change gets, timestamps being coarse) is read whole,
/// as by [`walk`]. Only folders on the mount's own file system, of a type
/// in [`TRUSTED_CTIME`], are kept.
pub struct Snapshot {
    roots: Vec<PathBuf>,
    folders: Vec<std::collections::HashMap<PathBuf, Folder>>,
    /// Folders that changed after this (ns since the epoch) are not kept.
    before_ns: i128,
}

impl Snapshot {
    /// A snapshot of nothing yet, trusting times older than one margin.
    pub fn new() -> Snapshot {
        Snapshot::with_margin(SNAPSHOT_MARGIN_NS)
    }

    fn with_margin(margin_ns: i128) -> Snapshot {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i128::try_from(d.as_nanos()).unwrap_or(0))
            .unwrap_or(0);
        Snapshot {
            roots: Vec::new(),
            folders: Vec::new(),
            before_ns: now - margin_ns,
        }
    }

    /// [`scan`] `root`, keeping what it saw of each folder.
    pub fn scan(&mut self, root: &Path, names: &[PathBuf]) -> Scan {
        self.roots.push(root.to_path_buf());
        let mut kept = std::collections::HashMap::new();
        let before = self.before_ns;
        let scan = scan_by(|hit| {
            let Ok(fd) = sys::open_dir_nofollow(root) else {
                return true;
            };
            let trusted = sys::fs_magic(fd.as_fd()).is_ok_and(|m| TRUSTED_CTIME.contains(&m));
            let dev = sys::fstatat(fd.as_fd(), Path::new(""))
                .map(|st| st.dev)
                .ok();
            walk_at(
                root,
                Opened { fd, restore: None },
                Vec::new(),
                &Names::new(names),
                hit,
                |_, _| true,
                |dir, rel, folders| {
                    let Ok(st) = sys::fstatat(dir, Path::new("")) else {
                        return;
                    };
                    if trusted && Some(st.dev) == dev && st.ctime_ns < before {
                        let f = Folder {
                            dev: st.dev,
                            ino: st.ino,
                            ctime_ns: st.ctime_ns,
                            folders,
                        };
                        kept.insert(rel.iter().collect::<PathBuf>(), f);
                    }
                },
            )
        });
        self.folders.push(kept);
        scan
    }

    /// Folders kept, over all roots.
    pub fn len(&self) -> usize {
        self.folders
            .iter()
            .map(std::collections::HashMap::len)
            .sum()
    }

    /// Nothing kept?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Snapshot {
    fn default() -> Snapshot {
        Snapshot::new()
    }
}

/// A protected name the sandbox created, and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Where it appeared (host path).
    pub path: PathBuf,
    /// Where it was moved, or why it could not be.
    pub moved_to: Result<PathBuf, String>,
}

/// The sweep of one sandbox: its writable (`rw`, `rw-no-delete`) mount
/// sources, the protected names, and what existed at the start.
pub struct Guard {
    roots: Vec<PathBuf>,
    names: Names,
    /// The watch of `roots`, when every folder of them is watched.
    watch: Mutex<Option<Watch>>,
    /// The [`Identity`] of every protected entry there at the start,
    /// wherever it is now (a parent folder may have been renamed); a name
    /// removed and made again (a link replaced by a file) is new, even on
    /// the same inode number.
    known: Mutex<HashSet<Identity>>,
    /// What a one-shot run's start scan saw of `roots`.
    snapshot: Mutex<Option<Snapshot>>,
}

impl Guard {
    /// `known` is what the start's [`scan`] of `roots` found; `watch`,
    /// when given, is what watched that scan (its roots are `roots`).
    pub(crate) fn new(
        roots: Vec<PathBuf>,
        names: Vec<PathBuf>,
        known: impl IntoIterator<Item = (PathBuf, Identity)>,
        watch: Option<Watch>,
    ) -> Guard {
        let watch = watch.filter(|w| w.whole && w.roots == roots && !names.is_empty());
        Guard {
            roots,
            names: Names::new(&names),
            watch: Mutex::new(watch),
            known: Mutex::new(known.into_iter().map(|(_, id)| id).collect()),
            snapshot: Mutex::new(None),
        }
    }

    /// With the [`Snapshot`] the start scan of `roots` kept (a one-shot
    /// run's), for [`Guard::sweep_final`].
    pub(crate) fn with_snapshot(self, snapshot: Snapshot) -> Guard {
        if snapshot.roots == self.roots {
            *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(snapshot);
        }
        self
    }

    /// Does a sweep read only where entries appeared (every folder of
    /// the mounts watched)?
    pub fn watching(&self) -> bool {
        self.watch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Is there anything to sweep?
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty() || self.names.all.is_empty()
    }

    /// Move aside every protected name that appeared since the start.
    /// The second value is false when some folder could not be read.
    pub fn sweep(&self) -> (Vec<Quarantined>, bool) {
        let mut out = Vec::new();
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let mut quarantine = quarantiner(&known, &mut out);
        let complete = self.sweep_with(&mut quarantine);
        drop(quarantine);
        (out, complete)
    }

    /// [`Guard::sweep`], handing each protected entry to `quarantine`.
    fn sweep_with(&self, quarantine: &mut dyn FnMut(BorrowedFd<'_>, &Path, PathBuf)) -> bool {
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = watch.as_mut() {
            if self.sweep_watched(w, quarantine) {
                return true;
            }
            // Events were lost, or some folder could not be watched or
            // found again: walk everything, watching it afresh (on the
            // same instance; a watch of a folder no longer found is left
            // unknown, and its events ignored).
            w.dirs.clear();
            w.roots.clear();
            w.whole = true;
            let mut complete = true;
            for root in &self.roots {
                complete &= w.walk_watching(root, &self.names, quarantine);
            }
            if !w.whole {
                *watch = None;
            }
            return complete;
        }
        let mut complete = true;
        for root in &self.roots {
            complete &= walk(root, &self.names, &mut *quarantine);
        }
        complete
    }

    /// The sweep once the sandbox is gone: [`Guard::sweep`], reading only
    /// the folders that changed where the start scan kept a [`Snapshot`].
    /// Only then: the snapshot's reads by path are sound only while
    /// nothing inside can race them.
    pub fn sweep_final(&self) -> (Vec<Quarantined>, bool) {
        let snapshot = self
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // (`with_snapshot` keeps only a snapshot of these very roots.)
        let Some(snapshot) = snapshot.filter(|_| !self.is_empty()) else {
            return self.sweep();
        };
        let mut out = Vec::new();
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let mut quarantine = quarantiner(&known, &mut out);
        let mut complete = true;
        for (root, kept) in snapshot.roots.iter().zip(&snapshot.folders) {
            complete &= self.sweep_changed(root, kept, &mut quarantine);
        }
        drop(quarantine);
        (out, complete)
    }

    /// The folders of `root`: those `kept` unchanged only looked into,
    /// every other one read whole through descriptors.
    fn sweep_changed(
        &self,
        root: &Path,
        kept: &std::collections::HashMap<PathBuf, Folder>,
        quarantine: &mut dyn FnMut(BorrowedFd<'_>, &Path, PathBuf),
    ) -> bool {
        let Ok(root_fd) = sys::open_dir_nofollow(root) else {
            return true; // gone, as `walk` has it
        };
        let context = self.names.context(root);
        let mut complete = true;
        let mut stack: Vec<Vec<OsString>> = vec![Vec::new()];
        let mut budget = SCAN_BUDGET;
        while let Some(rel) = stack.pop() {
            if budget == 0 {
                return false;
            }
            budget -= 1;
            let path: PathBuf = rel.iter().collect();
            let here = if rel.is_empty() {
                Path::new(".")
            } else {
                &path
            };
            let child = |rel: &[OsString], name: &OsStr| {
                let mut r = rel.to_vec();
                r.push(name.to_os_string());
                r
            };
            if let Some(f) = kept.get(&path) {
                match sys::fstatat(root_fd.as_fd(), here) {
                    Ok(st)
                        if st.is_dir()
                            && (st.dev, st.ino, st.ctime_ns) == (f.dev, f.ino, f.ctime_ns) =>
                    {
                        stack.extend(f.folders.iter().map(|n| child(&rel, n)));
                        continue;
                    }
                    Ok(_) => {}
                    // Not there: whatever held it changed, and is read.
                    Err(_) => continue,
                }
            }
            // Changed, new, or not kept: read whole.
            let Some(dir) = open_listable(root_fd.as_fd(), here) else {
                if sys::fstatat(root_fd.as_fd(), here).is_err() {
                    continue; // gone
                }
                complete = false;
                continue;
            };
            let Ok(entries) = sys::read_dir_here(dir.fd.as_fd()) else {
                complete = false;
                continue;
            };
            let parents: Vec<OsString> = context.iter().chain(&rel).cloned().collect();
            let folders = sort_entries(
                dir.fd.as_fd(),
                root,
                &rel,
                &parents,
                &self.names,
                entries,
                &mut *quarantine,
            );
            stack.extend(folders.iter().map(|e| child(&rel, e)));
        }
        complete
    }

    /// The sweep through the watch: only the entries that appeared in a
    /// watched folder, and the whole of each folder that appeared. False
    /// when that cannot be trusted to have seen everything.
    fn sweep_watched(
        &self,
        w: &mut Watch,
        quarantine: &mut dyn FnMut(BorrowedFd<'_>, &Path, PathBuf),
    ) -> bool {
        let Ok(events) = sys::inotify_read(w.fd.as_fd()) else {
            return false;
        };
        if events.iter().any(|e| e.mask & libc::IN_Q_OVERFLOW != 0) {
            return false;
        }
        for e in events.iter().filter(|e| e.mask & libc::IN_IGNORED != 0) {
            w.dirs.remove(&e.wd);
        }
        // Folders moved in first: walking them records where they (and
        // the folders in them) are now, before other events are placed.
        let moved = |e: &&sys::InotifyEvent| {
            e.mask & (libc::IN_MOVED_TO | libc::IN_ISDIR) == libc::IN_MOVED_TO | libc::IN_ISDIR
        };
        let mut seen = HashSet::new();
        let mut root_fds: Vec<Option<OwnedFd>> = self.roots.iter().map(|_| None).collect();
        let contexts: Vec<Vec<OsString>> =
            self.roots.iter().map(|r| self.names.context(r)).collect();
        let order = events
            .iter()
            .filter(moved)
            .chain(events.iter().filter(|e| !moved(e)));
        for e in order.filter(|e| e.mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0) {
            if !seen.insert((e.wd, e.name.clone())) {
                continue;
            }
            let Some(d) = w.dirs.get(&e.wd).cloned() else {
                continue;
            };
            if root_fds[d.root].is_none() {
                match sys::open_dir_nofollow(&self.roots[d.root]) {
                    Ok(fd) => root_fds[d.root] = Some(fd),
                    Err(_) => return false,
                }
            }
            let Some(root) = root_fds[d.root].as_ref().map(|f| f.as_fd()) else {
                return false;
            };
            // The folder where the watch says: by a path resolved beneath
            // the root with no link followed, then checked to be the
            // watched folder itself.
            let rel: PathBuf = d.rel.iter().collect();
            let here = sys::openat2_path(
                Some(root),
                if d.rel.is_empty() {
                    Path::new(".")
                } else {
                    &rel
                },
                libc::O_DIRECTORY | libc::O_NOFOLLOW,
                sys::resolve::BENEATH | sys::resolve::NO_SYMLINKS | sys::resolve::NO_MAGICLINKS,
            );
            // Another folder at its path, or no such entry on the way: the
            // watched one moved away (a move within the mounts is an event
            // that walks it again, at its new place) or is gone. Any other
            // failure (a folder on the way shut) only a walk can get past.
            let dir = match here {
                Ok(fd) => match sys::fstatat(fd.as_fd(), Path::new("")) {
                    Ok(st) if (st.dev, st.ino) == d.id => fd,
                    Ok(_) => {
                        sys::inotify_unwatch(w.fd.as_fd(), e.wd);
                        w.dirs.remove(&e.wd);
                        continue;
                    }
                    Err(_) => return false,
                },
                Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    sys::inotify_unwatch(w.fd.as_fd(), e.wd);
                    w.dirs.remove(&e.wd);
                    continue;
                }
                Err(_) => return false,
            };
            let mut path = self.roots[d.root].clone();
            path.extend(&d.rel);
            path.push(&e.name);
            let parents: Vec<OsString> = contexts[d.root].iter().chain(&d.rel).cloned().collect();
            if self.names.hit(&parents, &e.name) {
                quarantine(dir.as_fd(), Path::new(&e.name), path);
                continue;
            }
            // What the entry is now, not what an event said it was: the
            // events of one name are read once, and a file made, removed
            // and made again as a folder is a folder.
            match sys::fstatat(dir.as_fd(), Path::new(&e.name)) {
                Ok(st) if st.is_dir() => {}
                Ok(_) => continue,
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(_) => return false,
            }
            // A new folder, or one moved here: all of it, watched.
            let Some(child) = open_listable(dir.as_fd(), Path::new(&e.name)) else {
                if sys::fstatat(dir.as_fd(), Path::new(&e.name)).is_err() {
                    continue; // gone again
                }
                return false;
            };
            let mut rel = d.rel.clone();
            rel.push(e.name.clone());
            let (fd, dirs) = (&w.fd, &mut w.dirs);
            let complete = walk_at(
                &self.roots[d.root],
                child,
                rel,
                &self.names,
                &mut *quarantine,
                |dir, rel| add_watch(fd.as_fd(), dirs, d.root, dir, rel),
                |_, _, _| {},
            );
            if !complete {
                return false;
            }
        }
        true
    }
}

impl Watch {
    /// Walk `root` with `hit`, watching every folder of it (a sweep's
    /// fresh start).
    fn walk_watching(
        &mut self,
        root: &Path,
        names: &Names,
        hit: &mut dyn FnMut(BorrowedFd<'_>, &Path, PathBuf),
    ) -> bool {
        self.roots.push(root.to_path_buf());
        let index = self.roots.len() - 1;
        let Ok(fd) = sys::open_dir_nofollow(root) else {
            return true;
        };
        let (ifd, dirs) = (&self.fd, &mut self.dirs);
        let complete = walk_at(
            root,
            Opened { fd, restore: None },
            Vec::new(),
            names,
            hit,
            |dir, rel| add_watch(ifd.as_fd(), dirs, index, dir, rel),
            |_, _, _| {},
        );
        self.whole &= complete;
        complete
    }
}

/// What a sweep does with a protected entry it finds: nothing if the
/// start found it (by identity), else move it aside, noted in `out`.
fn quarantiner<'a>(
    known: &'a HashSet<Identity>,
    out: &'a mut Vec<Quarantined>,
) -> impl FnMut(BorrowedFd<'_>, &Path, PathBuf) + 'a {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    move |dir: BorrowedFd<'_>, name: &Path, path: PathBuf| {
        if identity(dir, name).is_some_and(|id| known.contains(&id)) {
            return;
        }
        out.push(Quarantined {
            moved_to: move_aside(dir, name, stamp).map(|aside| path.with_file_name(aside)),
            path,
        });
    }
}

/// Rename within `dir`; a folder the sandbox made read-only (mode 0555)
/// is made writable for the rename through the descriptor that pins it,
/// and its mode put back.
fn rename_in(dir: BorrowedFd<'_>, from: &Path, to: &Path) -> std::io::Result<()> {
    match sys::renameat2(dir, from, dir, to, sys::rename::NOREPLACE) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let st = sys::fstatat(dir, Path::new(""))?;
            let mode = st.mode & 0o7777;
            let magic = format!("/proc/self/fd/{}", dir.as_raw_fd());
            std::fs::set_permissions(&magic, std::fs::Permissions::from_mode(mode | 0o300))?;
            let r = sys::renameat2(dir, from, dir, to, sys::rename::NOREPLACE);
            let _ = std::fs::set_permissions(&magic, std::fs::Permissions::from_mode(mode));
            r
        }
        r => r,
    }
}

/// Rename `name` in `dir` to `NAME.paddock-quarantine-TIME-RANDOM`: the
/// sandbox cannot guess the name to take it first, and a taken one is
/// never replaced (a fresh one is drawn).
fn move_aside(dir: BorrowedFd<'_>, name: &Path, stamp: u64) -> Result<OsString, String> {
    let mut last = String::new();
    for _ in 0..8 {
        let mut r = [0u8; 8];
        sys::random_bytes(&mut r).map_err(|e| e.to_string())?;
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let mut aside = name.as_os_str().to_os_string();
        aside.push(format!(".paddock-quarantine-{stamp}-{hex}"));
        match rename_in(dir, name, Path::new(&aside)) {
            Ok(()) => return Ok(aside),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = e.to_string(),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_as_whole_components() {
        let n = vec![PathBuf::from(".envrc"), PathBuf::from(".vscode/tasks.json")];
        let at = |p: &str| protected_prefix(Path::new(p), &n);
        assert_eq!(at("a/.envrc"), Some(PathBuf::from("a/.envrc")));
        assert_eq!(
            at("a/.vscode/tasks.json"),
            Some(PathBuf::from("a/.vscode/tasks.json"))
        );
        assert_eq!(
            at("a/.envrc/x"),
            Some(PathBuf::from("a/.envrc")),
            "inside one"
        );
        assert_eq!(at("a/.vscode/settings.json"), None);
        assert_eq!(at("x.envrc"), None);
    }

    #[test]
    fn sweep_moves_new_names_aside_and_leaves_known_ones() {
        let d = std::env::temp_dir().join(format!("paddock-guard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join(".envrc"), "old").unwrap();
        let names = vec![PathBuf::from(".envrc"), PathBuf::from(".git")];
        let s = scan(&d, &names);
        assert_eq!(s.found.len(), 1);
        assert_eq!(s.found[0].0, d.join(".envrc"));
        let g = Guard::new(vec![d.clone()], names, s.found, None);
        std::fs::write(d.join("a/b/.envrc"), "new").unwrap();
        std::fs::create_dir(d.join("a/.git")).unwrap();
        let (q, complete) = g.sweep();
        assert!(complete);
        assert_eq!(q.len(), 2, "{q:?}");
        assert!(d.join(".envrc").exists());
        assert!(!d.join("a/b/.envrc").exists() && !d.join("a/.git").exists());
        assert!(q
            .iter()
            .all(|x| x.moved_to.as_ref().is_ok_and(|p| p.exists())));
        // The known one removed and made again (likely on the same inode
        // number): new, moved aside.
        std::fs::remove_file(d.join(".envrc")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::write(d.join(".envrc"), "again").unwrap();
        let (q, _) = g.sweep();
        assert_eq!(q.len(), 1, "{q:?}");
        assert!(!d.join(".envrc").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A guard whose start scan watched `d`.
    fn watched(d: &Path, names: &[&str]) -> Guard {
        let names: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
        let mut w = Watch::new().unwrap();
        let s = w.scan(d, &names);
        let g = Guard::new(vec![d.to_path_buf()], names, s.found, Some(w));
        assert!(g.watching());
        g
    }

    fn fresh(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("paddock-watch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        d
    }

    fn moved(q: &[Quarantined]) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = q.iter().map(|x| x.path.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_watched_sweep_finds_names_made_anywhere_and_keeps_watching() {
        let d = fresh("any");
        let g = watched(&d, &[".envrc", ".git", ".vscode/tasks.json"]);
        assert!(g.sweep().0.is_empty());
        // In a folder there at the start, in new nested folders, a link.
        std::fs::write(d.join("a/b/.envrc"), "x").unwrap();
        std::fs::create_dir_all(d.join("n1/n2/n3/.git/hooks")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("a/.envrc")).unwrap();
        let (q, complete) = g.sweep();
        assert!(complete);
        assert_eq!(
            moved(&q),
            vec![
                d.join("a/.envrc"),
                d.join("a/b/.envrc"),
                d.join("n1/n2/n3/.git")
            ]
        );
        assert!(!d.join("a/b/.envrc").exists() && !d.join("n1/n2/n3/.git").exists());
        // A folder holding tasks.json renamed to .vscode: the name is made
        // by the rename of its parent.
        std::fs::create_dir(d.join("x")).unwrap();
        std::fs::write(d.join("x/tasks.json"), "{}").unwrap();
        assert!(g.sweep().0.is_empty());
        std::fs::rename(d.join("x"), d.join("a/.vscode")).unwrap();
        assert_eq!(moved(&g.sweep().0), vec![d.join("a/.vscode/tasks.json")]);
        // A watched folder moved, then a name made in it: found at its
        // new place.
        std::fs::rename(d.join("a/b"), d.join("b2")).unwrap();
        assert!(g.sweep().0.is_empty());
        std::fs::write(d.join("b2/.envrc"), "x").unwrap();
        assert_eq!(moved(&g.sweep().0), vec![d.join("b2/.envrc")]);
        // A hard link, and an entry moved in under a protected name.
        std::fs::write(d.join("plain"), "x").unwrap();
        std::fs::hard_link(d.join("plain"), d.join("n1/.envrc")).unwrap();
        std::fs::write(d.join("other"), "x").unwrap();
        std::fs::rename(d.join("other"), d.join("n1/n2/.envrc")).unwrap();
        assert_eq!(
            moved(&g.sweep().0),
            vec![d.join("n1/.envrc"), d.join("n1/n2/.envrc")]
        );
        assert!(g.watching(), "no event was lost, so no walk was needed");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_folder_that_cannot_be_reached_makes_the_sweep_walk_everything() {
        use std::os::unix::fs::PermissionsExt;
        let d = fresh("locked");
        let g = watched(&d, &[".envrc"]);
        std::fs::create_dir_all(d.join("a/b/c")).unwrap();
        assert!(g.sweep().0.is_empty());
        std::fs::write(d.join("a/b/c/.envrc"), "x").unwrap();
        // The way to the folder shut (root reaches it anyway, so only
        // an unprivileged run sees the fallback itself).
        std::fs::set_permissions(d.join("a"), std::fs::Permissions::from_mode(0o000)).unwrap();
        let (q, complete) = g.sweep();
        std::fs::set_permissions(d.join("a"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(complete);
        assert_eq!(moved(&q), vec![d.join("a/b/c/.envrc")]);
        assert!(g.watching(), "the walk watched everything afresh");
        std::fs::write(d.join("a/b/.envrc"), "x").unwrap();
        assert_eq!(moved(&g.sweep().0), vec![d.join("a/b/.envrc")]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A name's events are read once per sweep: a file made, removed and
    /// made again as a folder is still walked and watched as a folder.
    #[test]
    fn a_file_replaced_by_a_folder_is_watched_as_a_folder() {
        let d = fresh("replaced");
        let g = watched(&d, &[".envrc"]);
        // Spread over two sweeps: the folder must be watched after the first.
        std::fs::write(d.join("x"), "").unwrap();
        std::fs::remove_file(d.join("x")).unwrap();
        std::fs::create_dir(d.join("x")).unwrap();
        assert!(g.sweep().0.is_empty());
        std::fs::write(d.join("x/.envrc"), "x").unwrap();
        assert_eq!(moved(&g.sweep().0), vec![d.join("x/.envrc")]);
        // Within one sweep, and by a rename of the file away.
        std::fs::write(d.join("a/y"), "").unwrap();
        std::fs::rename(d.join("a/y"), d.join("a/y2")).unwrap();
        std::fs::create_dir(d.join("a/y")).unwrap();
        std::fs::write(d.join("a/y/.envrc"), "x").unwrap();
        assert_eq!(moved(&g.sweep().0), vec![d.join("a/y/.envrc")]);
        std::fs::write(d.join("a/y/sub"), "").unwrap();
        std::fs::remove_file(d.join("a/y/sub")).unwrap();
        std::fs::create_dir(d.join("a/y/sub")).unwrap();
        assert!(g.sweep().0.is_empty());
        std::fs::write(d.join("a/y/sub/.envrc"), "x").unwrap();
        assert_eq!(moved(&g.sweep().0), vec![d.join("a/y/sub/.envrc")]);
        assert!(g.watching());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A name of two parts whose first is the mounted folder's own name
    /// (`~/.config` mounted, `.config/mise` protected).
    #[test]
    fn a_name_may_begin_with_the_mounted_folder() {
        let d = fresh("ctx").join(".config");
        std::fs::create_dir_all(d.join("mise")).unwrap();
        let names = [".config/mise", ".envrc"];
        let s = scan(&d, &names.iter().map(PathBuf::from).collect::<Vec<_>>());
        assert_eq!(s.found.len(), 1, "the existing one is found: {:?}", s.found);
        std::fs::remove_dir(d.join("mise")).unwrap();
        let g = watched(&d, &names);
        std::fs::create_dir(d.join("mise")).unwrap();
        assert_eq!(moved(&g.sweep().0), vec![d.join("mise")]);
        let plain = Guard::new(
            vec![d.clone()],
            names.iter().map(PathBuf::from).collect(),
            [],
            None,
        );
        std::fs::create_dir(d.join("mise")).unwrap();
        assert_eq!(
            moved(&plain.sweep().0),
            vec![d.join("mise")],
            "the full walk too"
        );
        std::fs::remove_dir_all(d.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_lost_event_makes_the_sweep_walk_everything_and_watch_again() {
        let d = fresh("overflow");
        let g = watched(&d, &[".envrc"]);
        let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16_384);
        for i in 0..=max {
            std::fs::write(d.join(format!("a/f{i}")), "").unwrap();
        }
        std::fs::create_dir_all(d.join("new/deep")).unwrap();
        std::fs::write(d.join("new/deep/.envrc"), "x").unwrap();
        std::fs::write(d.join("a/b/.envrc"), "x").unwrap();
        let (q, complete) = g.sweep();
        assert!(complete);
        assert_eq!(
            moved(&q),
            vec![d.join("a/b/.envrc"), d.join("new/deep/.envrc")]
        );
        assert!(g.watching(), "watched afresh");
        std::fs::write(d.join("new/.envrc"), "x").unwrap();
        assert_eq!(moved(&g.sweep().0), vec![d.join("new/.envrc")]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_folder_moved_out_of_the_mount_is_let_go() {
        let d = fresh("out");
        let out = d.with_extension("outside");
        let _ = std::fs::remove_dir_all(&out);
        let g = watched(&d, &[".envrc"]);
        std::fs::rename(d.join("a"), &out).unwrap();
        std::fs::write(out.join("b/.envrc"), "x").unwrap();
        let (q, complete) = g.sweep();
        assert!(complete && q.is_empty(), "{q:?}");
        assert!(out.join("b/.envrc").exists(), "not the mount's to sweep");
        assert!(g.watching());
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
    }

    /// A one-shot run's guard, its start scan kept as a snapshot that
    /// trusts times older than 20 ms (the folders of `d` are older).
    fn snapshotted(d: &Path, names: &[&str]) -> (Guard, usize) {
        let names: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
        std::thread::sleep(std::time::Duration::from_millis(60));
        let mut snap = Snapshot::with_margin(20_000_000);
        let s = snap.scan(d, &names);
        let kept = snap.len();
        let g = Guard::new(vec![d.to_path_buf()], names, s.found, None).with_snapshot(snap);
        (g, kept)
    }

    fn trusted(d: &Path) -> bool {
        let fd = sys::open_dir_nofollow(d).unwrap();
        TRUSTED_CTIME.contains(&sys::fs_magic(fd.as_fd()).unwrap())
    }

    #[test]
    fn a_final_sweep_from_a_snapshot_finds_every_new_name_wherever_it_is() {
        let d = fresh("snap");
        for f in ["a/b/c/d", "x/y/z", "m/n", "keep/deep/er", "v"] {
            std::fs::create_dir_all(d.join(f)).unwrap();
        }
        std::fs::write(d.join("keep/.envrc"), "there at the start").unwrap();
        let (g, kept) = snapshotted(&d, &[".envrc", ".git", ".vscode/tasks.json"]);
        if trusted(&d) {
            assert!(kept >= 12, "every folder kept: {kept}");
        }
        // In a deep folder that was there; in new nested folders; a link;
        // in a folder moved elsewhere within the mount; in a folder
        // removed and made again under its old name; a two-part name
        // completed in a folder that was there.
        std::fs::write(d.join("a/b/c/d/.envrc"), "x").unwrap();
        std::fs::create_dir_all(d.join("new1/new2/.git/hooks")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("m/n/.envrc")).unwrap();
        std::fs::write(d.join("x/y/z/.envrc"), "x").unwrap();
        std::fs::rename(d.join("x/y"), d.join("v/moved")).unwrap();
        std::fs::remove_dir_all(d.join("keep/deep/er")).unwrap();
        std::fs::create_dir(d.join("keep/deep/er")).unwrap();
        std::fs::write(d.join("keep/deep/er/.envrc"), "x").unwrap();
        std::fs::create_dir(d.join("a/b/.vscode")).unwrap();
        std::fs::write(d.join("a/b/.vscode/tasks.json"), "{}").unwrap();
        let (q, complete) = g.sweep_final();
        assert!(complete);
        assert_eq!(
            moved(&q),
            vec![
                d.join("a/b/.vscode/tasks.json"),
                d.join("a/b/c/d/.envrc"),
                d.join("keep/deep/er/.envrc"),
                d.join("m/n/.envrc"),
                d.join("new1/new2/.git"),
                d.join("v/moved/z/.envrc"),
            ]
        );
        assert!(q
            .iter()
            .all(|x| x.moved_to.as_ref().is_ok_and(|p| p.exists())));
        assert!(d.join("keep/.envrc").exists(), "known at the start: left");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn folders_changed_just_before_the_scan_are_read_whole_by_the_final_sweep() {
        let d = fresh("recent");
        let names = vec![PathBuf::from(".envrc")];
        // No wait: every folder changed within the margin.
        let mut snap = Snapshot::with_margin(SNAPSHOT_MARGIN_NS);
        let s = snap.scan(&d, &names);
        assert!(snap.is_empty(), "nothing recent is trusted");
        let g = Guard::new(vec![d.clone()], names, s.found, None).with_snapshot(snap);
        std::fs::write(d.join("a/b/.envrc"), "x").unwrap();
        let (q, complete) = g.sweep_final();
        assert!(complete);
        assert_eq!(moved(&q), vec![d.join("a/b/.envrc")]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_snapshot_of_other_roots_is_not_used() {
        let d = fresh("other");
        let e = fresh("other2");
        let names = vec![PathBuf::from(".envrc")];
        std::thread::sleep(std::time::Duration::from_millis(60));
        let mut snap = Snapshot::with_margin(20_000_000);
        snap.scan(&e, &names);
        let g = Guard::new(vec![d.clone()], names, [], None).with_snapshot(snap);
        std::fs::write(d.join("a/b/.envrc"), "x").unwrap();
        assert_eq!(moved(&g.sweep_final().0), vec![d.join("a/b/.envrc")]);
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::remove_dir_all(&e).unwrap();
    }
}

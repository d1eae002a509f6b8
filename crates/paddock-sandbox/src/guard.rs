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
    let names = Names::new(names);
    let mut parents: Vec<OsString> = Vec::new();
    for c in path.iter() {
        if names.hit(&parents, c) {
            let mut p: PathBuf = parents.iter().collect();
            p.push(c);
            return Some(p);
        }
        parents.push(c.to_os_string());
    }
    None
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
/// that most entries are rejected by one set lookup.
struct Names {
    last: HashSet<OsString>,
    all: Vec<Vec<OsString>>,
}

impl Names {
    fn new(names: &[PathBuf]) -> Names {
        let all: Vec<Vec<OsString>> = names
            .iter()
            .map(|n| n.iter().map(OsStr::to_os_string).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .collect();
        let last = all.iter().filter_map(|v| v.last().cloned()).collect();
        Names { last, all }
    }

    /// Does the entry `name` at `parents/name` complete a protected name?
    fn hit(&self, parents: &[OsString], name: &OsStr) -> bool {
        if !self.last.contains(name) {
            return false;
        }
        self.all.iter().any(|want| {
            want.last().is_some_and(|l| l == name)
                && want.len() - 1 <= parents.len()
                && parents[parents.len() - (want.len() - 1)..] == want[..want.len() - 1]
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
fn walk(root: &Path, names: &Names, mut hit: impl FnMut(BorrowedFd<'_>, &Path, PathBuf)) -> bool {
    let Ok(fd) = sys::open_dir_nofollow(root) else {
        return true;
    };
    let mut complete = true;
    let mut stack: Vec<(Opened, Vec<OsString>)> = vec![(Opened { fd, restore: None }, Vec::new())];
    let mut budget = SCAN_BUDGET;
    while let Some((dir, rel)) = stack.pop() {
        if budget == 0 {
            return false;
        }
        budget -= 1;
        let Ok(entries) = sys::read_dir_typed(dir.fd.as_fd()) else {
            complete = false;
            continue;
        };
        for (e, dtype) in entries {
            if names.hit(&rel, &e) {
                let mut p = root.to_path_buf();
                p.extend(&rel);
                p.push(&e);
                hit(dir.fd.as_fd(), Path::new(&e), p);
                continue;
            }
            let is_dir = match dtype {
                sys::DT_DIR => true,
                sys::DT_UNKNOWN => {
                    sys::fstatat(dir.fd.as_fd(), Path::new(&e)).is_ok_and(|s| s.is_dir())
                }
                _ => false,
            };
            if is_dir {
                match open_listable(dir.fd.as_fd(), Path::new(&e)) {
                    Some(child) => {
                        let mut r = rel.clone();
                        r.push(e);
                        stack.push((child, r));
                    }
                    None => complete = false,
                }
            }
        }
    }
    complete
}

/// Every protected name under `root`, at any depth.
pub fn scan(root: &Path, names: &[PathBuf]) -> Scan {
    let mut found = Vec::new();
    let complete = walk(root, &Names::new(names), |dir, name, p| {
        if let Some(id) = identity(dir, name) {
            found.push((p, id));
        }
    });
    found.sort();
    Scan { found, complete }
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
    /// The [`Identity`] of every protected entry there at the start,
    /// wherever it is now (a parent folder may have been renamed); a name
    /// removed and made again (a link replaced by a file) is new, even on
    /// the same inode number.
    known: Mutex<HashSet<Identity>>,
}

impl Guard {
    /// `known` is what the start's [`scan`] of `roots` found.
    pub(crate) fn new(
        roots: Vec<PathBuf>,
        names: Vec<PathBuf>,
        known: impl IntoIterator<Item = (PathBuf, Identity)>,
    ) -> Guard {
        Guard {
            roots,
            names: Names::new(&names),
            known: Mutex::new(known.into_iter().map(|(_, id)| id).collect()),
        }
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
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut complete = true;
        for root in &self.roots {
            complete &= walk(root, &self.names, |dir, name, path| {
                if identity(dir, name).is_some_and(|id| known.contains(&id)) {
                    return;
                }
                out.push(Quarantined {
                    moved_to: move_aside(dir, name, stamp).map(|aside| path.with_file_name(aside)),
                    path,
                });
            });
        }
        (out, complete)
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
        let g = Guard::new(vec![d.clone()], names, s.found);
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
}

//! Reviewing and applying what a session changed in its `cow` mounts: the
//! upper layer of each overlay, kept in the session folder, *is* the
//! change set.
//!
//! In an upper layer, a regular file or symlink is an addition or a
//! modification of the folder below; a character device 0:0 is a whiteout
//! (a deletion); a folder with the `user.overlay.opaque` attribute replaces
//! the folder below entirely.
//!
//! Both trees are hostile: the sandbox chose every name, type and link in
//! the layer, and the host folder below may hold links a build tool made
//! or a process still running elsewhere changes. So every look at either
//! tree goes through descriptors: each folder is opened from its root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`,
//! entries are stated without following, and only regular files are ever
//! opened (`O_NOFOLLOW | O_NONBLOCK`, checked again with fstat). Links are
//! read as text and applied as links; FIFOs, sockets and devices are listed
//! and never opened or applied. Writes land in an unpredictable `O_EXCL`
//! file in the target's own folder and are swapped into place with
//! `renameat2`, under a journal (see [`apply`]).

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use paddock_sys::{resolve, Stat};
use serde::{Deserialize, Serialize};

pub use crate::text::{safe_path, terminal_safe};
use crate::SessionError;

/// Lookups that can neither leave the root nor follow a link.
const STRICT: u64 = resolve::BENEATH | resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS;

/// Files larger than this are not diffed as text.
const DIFF_MAX: u64 = 8 << 20;

/// What sits at a path, in the layer or on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Entry {
    /// A regular file.
    File {
        /// Permission bits (including setuid/setgid, shown, never applied).
        mode: u32,
        /// Size in bytes.
        size: u64,
    },
    /// A folder.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link (its target, as text).
    Symlink {
        /// Where it points.
        target: PathBuf,
    },
    /// A FIFO, socket or device: listed, never opened or applied.
    Special {
        /// Which kind.
        what: String,
    },
}

impl Entry {
    fn of(st: &Stat, dir: BorrowedFd<'_>, name: &Path) -> Entry {
        if st.is_file() {
            Entry::File {
                mode: st.mode & 0o7777,
                size: st.size,
            }
        } else if st.is_dir() {
            Entry::Dir {
                mode: st.mode & 0o7777,
            }
        } else if st.is_symlink() {
            Entry::Symlink {
                target: paddock_sys::readlinkat(dir, name).unwrap_or_default(),
            }
        } else {
            Entry::Special {
                what: st.special_kind().unwrap_or("unknown").to_string(),
            }
        }
    }

    fn mode(&self) -> Option<u32> {
        match self {
            Entry::File { mode, .. } | Entry::Dir { mode } => Some(*mode),
            _ => None,
        }
    }

    fn word(&self) -> &str {
        match self {
            Entry::File { .. } => "file",
            Entry::Dir { .. } => "folder",
            Entry::Symlink { .. } => "symlink",
            Entry::Special { what } => what,
        }
    }
}

/// Why a change will not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable code (`APPLY_PROTECTED`, `APPLY_SYMLINK_ESCAPE`, ...).
    pub code: String,
    /// What it means for this path.
    pub reason: String,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `added`, `modified` or `deleted`.
    pub kind: Kind,
    /// Path on the host (in the real folder).
    pub path: PathBuf,
    /// Path relative to the mount.
    pub rel: PathBuf,
    /// What the host has there now (none for an addition).
    pub old: Option<Entry>,
    /// What the session left there (none for a deletion).
    pub new: Option<Entry>,
    /// Set when apply will not write this change, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
    /// The layer's folder and the host folder it overlays.
    #[serde(skip)]
    layer: Roots,
    /// The layer's entry is a copy of one the host had (overlayfs marks a
    /// copy-up with `user.overlay.origin`): if the host has nothing there
    /// now, the host removed it meanwhile.
    #[serde(skip)]
    copied_up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Roots {
    /// `<session>/cow/<key>`.
    dir: PathBuf,
    /// The host folder below.
    source: PathBuf,
}

impl Roots {
    fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
}

/// Kinds of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// New in the sandbox.
    Added,
    /// Changed in the sandbox (content, mode or type).
    Modified,
    /// Removed in the sandbox (a folder with everything in it).
    Deleted,
}

#[derive(Deserialize)]
struct MountRecord {
    source: PathBuf,
}

fn io(ctx: String) -> impl FnOnce(std::io::Error) -> SessionError {
    move |source| SessionError::Io {
        context: ctx,
        source,
    }
}

const O_RDONLY: i32 = 0;
const O_WRONLY: i32 = 1;
const O_CREAT: i32 = 0o100;
const O_EXCL: i32 = 0o200;
const O_NOFOLLOW: i32 = 0o400000;
const O_NONBLOCK: i32 = 0o4000;

use paddock_reasons::Reason;
use paddock_sys::{open_dir_beneath as open_dir, open_dir_nofollow as open_root};

/// Open the regular file `rel` beneath `root`, or explain why not.
fn open_file(root: BorrowedFd<'_>, rel: &Path) -> std::io::Result<std::fs::File> {
    let fd = paddock_sys::openat2(root, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0, STRICT)?;
    let st = paddock_sys::fstatat(fd.as_fd(), Path::new(""))?;
    if !st.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(std::fs::File::from(fd))
}

/// Split `rel` into (parent, name).
fn split(rel: &Path) -> (&Path, &Path) {
    (
        rel.parent().unwrap_or(Path::new("")),
        Path::new(rel.file_name().unwrap_or_default()),
    )
}

fn stat_at(root: BorrowedFd<'_>, rel: &Path) -> Option<(Stat, Entry)> {
    let (parent, name) = split(rel);
    let dir = open_dir(root, parent).ok()?;
    let st = paddock_sys::fstatat(dir.as_fd(), name).ok()?;
    let e = Entry::of(&st, dir.as_fd(), name);
    Some((st, e))
}

fn read_limited(root: BorrowedFd<'_>, rel: &Path, max: u64) -> Option<Vec<u8>> {
    let mut f = open_file(root, rel).ok()?;
    let mut buf = Vec::new();
    (&mut f).take(max + 1).read_to_end(&mut buf).ok()?;
    (buf.len() as u64 <= max).then_some(buf)
}

fn same_content(a: BorrowedFd<'_>, b: BorrowedFd<'_>, rel: &Path) -> bool {
    let (Ok(mut fa), Ok(mut fb)) = (open_file(a, rel), open_file(b, rel)) else {
        return false;
    };
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let (Ok(na), Ok(nb)) = (read_full(&mut fa, &mut ba), read_full(&mut fb, &mut bb)) else {
            return false;
        };
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Does `rel` name a protected path, at any depth? A protected name
/// matches wherever its components appear as whole components of `rel`
/// (`.envrc` matches `sub/.envrc`; `.vscode` covers `.vscode/tasks.json`).
pub fn protected_match<'a>(rel: &Path, protected: &'a [PathBuf]) -> Option<&'a Path> {
    let parts: Vec<&OsStr> = rel.iter().collect();
    protected.iter().map(PathBuf::as_path).find(|p| {
        let want: Vec<&OsStr> = p.iter().collect();
        !want.is_empty()
            && parts.len() >= want.len()
            && (0..=parts.len() - want.len()).any(|i| parts[i..i + want.len()] == want[..])
    })
}

/// Where a link at `rel` (relative to its mount) pointing at `target`
/// ends up, if it stays inside the mount: absolute targets and `..` that
/// climb above the mount's root leave it.
fn link_stays_inside(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() || target.as_os_str().is_empty() {
        return false;
    }
    let mut depth: i64 = rel.parent().map_or(0, |p| p.iter().count() as i64);
    let mut seen_name = false;
    for c in target.components() {
        match c {
            Component::ParentDir => {
                // `x/..` through a folder that is itself a link is not
                // lexical: only leading `..` are accepted.
                if seen_name {
                    return false;
                }
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::Normal(_) => {
                seen_name = true;
                depth += 1;
            }
            Component::CurDir => {}
            _ => return false,
        }
    }
    true
}

/// Does the path a link at `rel` points to (lexically inside the mount)
/// go through a link, in the layer or on the host? Then where it ends is
/// not what its text says: a host link `hostlink -> /elsewhere` makes
/// `hostlink/secret` point outside.
fn link_passes_a_link(
    upper: BorrowedFd<'_>,
    lower: Option<BorrowedFd<'_>>,
    rel: &Path,
    target: &Path,
) -> bool {
    let mut at: Vec<&OsStr> = rel.parent().map(|p| p.iter().collect()).unwrap_or_default();
    for c in target.components() {
        match c {
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(n) => {
                at.push(n);
                let p: PathBuf = at.iter().collect();
                // Both trees: a layer entry that apply refuses (a FIFO in
                // place of a host link) would leave the host's link there.
                let link_in = |root: Option<BorrowedFd<'_>>| {
                    root.and_then(|r| stat_at(r, &p))
                        .is_some_and(|(st, _)| st.is_symlink())
                };
                if link_in(Some(upper)) || link_in(lower) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

struct Walk<'a> {
    roots: Roots,
    protected: &'a [PathBuf],
    out: Vec<Change>,
    upper_root: OwnedFd,
    lower_root: Option<OwnedFd>,
    copied_up: bool,
}

impl Walk<'_> {
    fn push(&mut self, kind: Kind, rel: &Path, old: Option<Entry>, new: Option<Entry>) {
        let refused = self.refusal(rel, new.as_ref());
        let copied_up = std::mem::take(&mut self.copied_up);
        self.out.push(Change {
            kind,
            path: self.roots.source.join(rel),
            rel: rel.to_path_buf(),
            old,
            new,
            refused,
            layer: self.roots.clone(),
            copied_up,
        });
    }

    fn refusal(&self, rel: &Path, new: Option<&Entry>) -> Option<Refusal> {
        // Matched on the whole host path: a mount inside a protected
        // folder is inside it too.
        if let Some(p) = protected_match(&self.roots.source.join(rel), self.protected) {
            return Some(Refusal {
                code: Reason::APPLY_PROTECTED.code().into(),
                reason: format!(
                    "{} is a protected name (the host acts on it by itself); apply never writes it",
                    p.display()
                ),
            });
        }
        match new {
            Some(Entry::Special { what }) => Some(Refusal {
                code: Reason::APPLY_SPECIAL_FILE.code().into(),
                reason: format!("a {what} is never applied"),
            }),
            Some(Entry::Symlink { target })
                if !link_stays_inside(rel, target)
                    || link_passes_a_link(
                        self.upper_root.as_fd(),
                        self.lower_root.as_ref().map(|l| l.as_fd()),
                        rel,
                        target,
                    ) =>
            {
                Some(Refusal {
                code: Reason::APPLY_SYMLINK_ESCAPE.code().into(),
                reason: format!(
                    "the link points outside the folder ({}); apply it with --allow-outward-symlinks",
                    safe_path(target)
                ),
            })
            }
            _ => None,
        }
    }

    fn dir(
        &mut self,
        upper: BorrowedFd<'_>,
        lower: Option<BorrowedFd<'_>>,
        rel: &Path,
    ) -> Result<(), SessionError> {
        let mut names = paddock_sys::read_dir_fd(upper)
            .map_err(io(format!("reading the layer at {}", safe_path(rel))))?;
        names.sort();
        for name in names {
            let n = Path::new(&name);
            let r = rel.join(n);
            let ust = paddock_sys::fstatat(upper, n)
                .map_err(io(format!("reading the layer at {}", safe_path(&r))))?;
            let lower_st = lower.and_then(|l| paddock_sys::fstatat(l, n).ok().map(|s| (l, s)));
            let old = lower_st.map(|(l, s)| Entry::of(&s, l, n));
            if ust.is_whiteout() {
                if old.is_some() {
                    self.push(Kind::Deleted, &r, old, None);
                }
                continue;
            }
            let new = Entry::of(&ust, upper, n);
            if ust.is_dir() {
                let child = open_dir(upper, n)
                    .map_err(io(format!("reading the layer at {}", safe_path(&r))))?;
                let lower_dir = match lower_st {
                    Some((l, s)) if s.is_dir() => open_dir(l, n).ok(),
                    _ => None,
                };
                let origin = paddock_sys::fgetxattr(child.as_fd(), "user.overlay.origin").is_some();
                match (&old, &lower_dir) {
                    (None, _) if origin => {
                        self.copied_up = true;
                        self.push(Kind::Modified, &r, None, Some(new))
                    }
                    (None, _) => self.push(Kind::Added, &r, None, Some(new)),
                    (Some(o), Some(ld)) => {
                        let opaque = [b"user.overlay.opaque".as_slice()].iter().any(|a| {
                            paddock_sys::fgetxattr(
                                child.as_fd(),
                                std::str::from_utf8(a).unwrap_or_default(),
                            )
                            .is_some_and(|v| v == b"y")
                        });
                        if o.mode() != new.mode() {
                            self.push(Kind::Modified, &r, old.clone(), Some(new));
                        }
                        if opaque {
                            // Everything below that the sandbox did not recreate is gone.
                            let mut below = paddock_sys::read_dir_fd(ld.as_fd())
                                .map_err(io(format!("reading {}", safe_path(&r))))?;
                            below.sort();
                            for b in below {
                                let bn = Path::new(&b);
                                if paddock_sys::fstatat(child.as_fd(), bn).is_err() {
                                    if let Ok(s) = paddock_sys::fstatat(ld.as_fd(), bn) {
                                        let e = Entry::of(&s, ld.as_fd(), bn);
                                        self.push(Kind::Deleted, &r.join(bn), Some(e), None);
                                    }
                                }
                            }
                        }
                    }
                    // A file or link on the host became a folder.
                    (Some(_), None) => self.push(Kind::Modified, &r, old.clone(), Some(new)),
                }
                self.dir(child.as_fd(), lower_dir.as_ref().map(|d| d.as_fd()), &r)?;
                continue;
            }
            let origin = ust.is_file()
                && open_file(upper, n)
                    .ok()
                    .and_then(|f| paddock_sys::fgetxattr(f.as_fd(), "user.overlay.origin"))
                    .is_some();
            let kind = match (&old, lower_st) {
                (None, _) if origin => {
                    self.copied_up = true;
                    Kind::Modified
                }
                (None, _) => Kind::Added,
                (Some(o), Some((l, s))) => {
                    // Copied up but left as it was (an open for writing, a
                    // touch): no change.
                    let unchanged = match (o, &new) {
                        (Entry::File { mode: a, size: x }, Entry::File { mode: b, size: y }) => {
                            a == b && x == y && s.is_file() && same_content(upper, l, n)
                        }
                        (a, b) => a == b,
                    };
                    if unchanged {
                        continue;
                    }
                    Kind::Modified
                }
                (Some(_), None) => Kind::Modified,
            };
            self.push(kind, &r, old, Some(new));
        }
        Ok(())
    }
}

/// Every change in the session folder `session_dir`, per mount, each
/// marked with why it would be refused (`protected` are the protected
/// names of the session's policy).
pub fn changes(session_dir: &Path, protected: &[PathBuf]) -> Result<Vec<Change>, SessionError> {
    let cow = session_dir.join("cow");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&cow) else {
        return Ok(out);
    };
    let mut layers: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    layers.sort();
    for dir in layers {
        let rec: MountRecord = match std::fs::read(dir.join("mount.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(r) => r,
            None => continue,
        };
        let roots = Roots {
            dir: dir.clone(),
            source: rec.source,
        };
        let upper = open_root(&roots.upper())
            .map_err(io(format!("opening {}", roots.upper().display())))?;
        // The host folder may be gone: then everything is an addition.
        let lower = open_root(&roots.source).ok();
        let mut w = Walk {
            upper_root: open_root(&roots.upper())
                .map_err(io(format!("opening {}", roots.upper().display())))?,
            lower_root: open_root(&roots.source).ok(),
            roots,
            protected,
            out: Vec::new(),
            copied_up: false,
        };
        w.dir(
            upper.as_fd(),
            lower.as_ref().map(|l| l.as_fd()),
            Path::new(""),
        )?;
        out.append(&mut w.out);
    }
    Ok(out)
}

fn mode_word(m: u32) -> String {
    let mut s = format!("{m:o}");
    if m & 0o6000 != 0 {
        s.push_str(" (setuid/setgid: not applied)");
    }
    s
}

/// A unified diff of `c` (text files), or a note for binaries, folders,
/// links and special files; mode changes and refusals are shown. Every
/// line is terminal-safe.
pub fn unified(c: &Change) -> String {
    let name = safe_path(&c.rel);
    let mut head = String::new();
    if let Some(r) = &c.refused {
        head.push_str(&format!(
            "# {name}: refused [{}]: {}\n",
            r.code,
            terminal_safe(&r.reason)
        ));
    }
    match (&c.old, &c.new) {
        (Some(o), Some(n)) if o.word() != n.word() => {
            head.push_str(&format!(
                "type changed {name}: {} -> {}\n",
                o.word(),
                n.word()
            ));
        }
        (Some(o), Some(n)) => {
            if let (Some(a), Some(b)) = (o.mode(), n.mode()) {
                if a != b {
                    head.push_str(&format!(
                        "mode changed {name}: {} -> {}\n",
                        mode_word(a),
                        mode_word(b)
                    ));
                }
            }
        }
        (None, Some(n)) => {
            if let Some(m) = n.mode() {
                if m & 0o6000 != 0 {
                    head.push_str(&format!("new {name} with mode {}\n", mode_word(m)));
                }
            }
        }
        _ => {}
    }
    let link = |e: &Entry| match e {
        Entry::Symlink { target } => Some(format!("symlink -> {}", safe_path(target))),
        _ => None,
    };
    if let Some(s) = c.new.as_ref().and_then(link) {
        return format!("{head}{} {name} ({s})\n", word(c.kind));
    }
    if let (Some(s), None) = (c.old.as_ref().and_then(link), &c.new) {
        return format!("{head}deleted {name} ({s})\n");
    }
    let is_file = |e: &Option<Entry>| matches!(e, Some(Entry::File { .. }));
    let text = |e: &Option<Entry>, root: &Path| -> Option<Vec<u8>> {
        match e {
            None => Some(Vec::new()),
            Some(Entry::File { .. }) => {
                let fd = open_root(root).ok()?;
                read_limited(fd.as_fd(), &c.rel, DIFF_MAX)
            }
            _ => None,
        }
    };
    let both_files = (c.old.is_none() || is_file(&c.old)) && (c.new.is_none() || is_file(&c.new));
    if !both_files || (c.old.is_none() && c.new.is_none()) {
        let what = c
            .new
            .as_ref()
            .or(c.old.as_ref())
            .map(Entry::word)
            .unwrap_or("entry");
        return format!("{head}{} {what} {name}\n", word(c.kind));
    }
    let (Some(old), Some(new)) = (
        text(&c.old, &c.layer.source),
        text(&c.new, &c.layer.upper()),
    ) else {
        return format!(
            "{head}{} {name} (not readable as a file, or over 8 MiB)\n",
            word(c.kind)
        );
    };
    match (std::str::from_utf8(&old), std::str::from_utf8(&new)) {
        (Ok(a), Ok(b)) => {
            let a_name = if c.old.is_none() {
                "/dev/null".to_string()
            } else {
                format!("a/{name}")
            };
            let b_name = if c.new.is_none() {
                "/dev/null".to_string()
            } else {
                format!("b/{name}")
            };
            let body = similar::TextDiff::from_lines(a, b)
                .unified_diff()
                .context_radius(3)
                .header(&a_name, &b_name)
                .to_string();
            head + &crate::text::terminal_safe_lines(&body)
        }
        _ if old == new => head,
        _ => format!("{head}Binary files a/{name} and b/{name} differ\n"),
    }
}

fn word(k: Kind) -> &'static str {
    match k {
        Kind::Added => "new",
        Kind::Deleted => "deleted",
        Kind::Modified => "changed",
    }
}

// ---------------------------------------------------------------------------
// Apply
// ---------------------------------------------------------------------------

/// How to apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// The session's start (or the last apply): host entries changed since
    /// are conflicts.
    pub since_ns: u128,
    /// Apply links that point outside the folder too.
    pub allow_outward_symlinks: bool,
}

/// The outcome of applying.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    /// Written into the real folder.
    pub applied: Vec<PathBuf>,
    /// Refused: the host changed the path (or something below it) after
    /// the session started; each path the host changed is listed.
    pub conflicts: Vec<Conflict>,
    /// Refused by rule (protected name, special file, outward link).
    pub refused: Vec<(PathBuf, Refusal)>,
}

/// One path apply would not overwrite.
#[derive(Debug, Clone, Serialize)]
pub struct Conflict {
    /// The change's path.
    pub path: PathBuf,
    /// What the host changed (the path itself or entries below it).
    pub changed: Vec<PathBuf>,
    /// In words.
    pub reason: String,
}

/// One step of an apply, as written to the journal before anything is
/// touched.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Step {
    /// The layer's folder.
    layer: PathBuf,
    /// The host folder below.
    source: PathBuf,
    /// Path relative to the mount.
    rel: PathBuf,
    /// What to do.
    action: Action,
    /// The unpredictable name beside the target: the staged new content,
    /// and after the swap the old one.
    tmp: String,
    /// What the host had at the target when the plan was made: a step
    /// finds it the same, or leaves the host's version alone.
    #[serde(default)]
    expect: Option<Ident>,
}

/// Enough of a host entry to see that it changed: a new inode, new
/// content time or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Ident {
    ino: u64,
    // i64, not i128: serde's internally tagged enums (the journal's
    // records) cannot carry 128-bit numbers.
    mtime_ns: i64,
    size: u64,
    /// Status time at the plan, compared only before the switch (apply's
    /// own renames change it after).
    #[serde(default)]
    ctime_ns: i64,
}

impl Ident {
    fn of(st: &Stat) -> Ident {
        Ident {
            ino: st.ino,
            mtime_ns: i64::try_from(st.mtime_ns).unwrap_or(i64::MAX),
            ctime_ns: i64::try_from(st.ctime_ns).unwrap_or(i64::MAX),
            size: if st.is_dir() { 0 } else { st.size },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    /// Create a folder (mkdir, never over anything).
    Mkdir,
    /// Put a new file or link where nothing is.
    Add,
    /// Swap a new file or link with the one on the host.
    Replace,
    /// Move the host's entry (a folder with everything in it) aside.
    Remove,
    /// Set a folder's mode.
    Chmod,
}

/// Journal records, one JSON line each, after the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "lowercase")]
enum Record {
    /// The plan: every step, before any is carried out.
    Plan {
        steps: Vec<Step>,
        #[serde(default)]
        planned_ns: i64,
    },
    /// Step `i` was left undone: the host changed its path meanwhile.
    Skipped { i: usize },
    /// Every step is in place; the old contents are being dropped.
    Finishing,
    /// Step `i`'s new content is staged under its tmp name (inode `ino`).
    Staged { i: usize, ino: u64 },
    /// Step `i` is in place.
    Done { i: usize },
}

/// The journal of an apply in progress, in the session folder.
pub fn journal_path(session_dir: &Path) -> PathBuf {
    session_dir.join("apply.journal")
}

fn random_name() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    paddock_sys::random_bytes(&mut b)?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(".paddock-apply-{hex}"))
}

/// Entries below `dir` (and `dir` itself) that changed after `since`.
fn changed_below(
    root: BorrowedFd<'_>,
    rel: &Path,
    since: i128,
    out: &mut Vec<PathBuf>,
    budget: &mut usize,
    restored: &Restored,
) {
    let (parent, name) = split(rel);
    let Ok(pd) = open_dir(root, parent) else {
        return;
    };
    let Ok(st) = paddock_sys::fstatat(pd.as_fd(), name) else {
        return;
    };
    if restored.changed(&st, since) {
        out.push(rel.to_path_buf());
    }
    if !st.is_dir() || *budget == 0 {
        return;
    }
    *budget -= 1;
    let Ok(d) = open_dir(root, rel) else {
        out.push(rel.to_path_buf());
        return;
    };
    let Ok(names) = paddock_sys::read_dir_fd(d.as_fd()) else {
        out.push(rel.to_path_buf());
        return;
    };
    for n in names {
        changed_below(root, &rel.join(n), since, out, budget, restored);
    }
}

/// Host entries an `--abort` put back: their status time is apply's own
/// rename, not a host change. Inode → ctime just after the restore.
#[derive(Debug, Default)]
struct Restored(std::collections::HashMap<u64, i64>);

impl Restored {
    fn path(session_dir: &Path) -> PathBuf {
        session_dir.join("cow").join("restored.json")
    }

    fn load(session_dir: &Path) -> Restored {
        Restored(
            std::fs::read(Restored::path(session_dir))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
        )
    }

    fn save(&self, session_dir: &Path) {
        if let Ok(b) = serde_json::to_vec(&self.0) {
            let _ = std::fs::write(Restored::path(session_dir), b);
        }
    }

    /// Did the host change this entry after `since`?
    fn changed(&self, st: &Stat, since: i128) -> bool {
        let ours = self
            .0
            .get(&st.ino)
            .is_some_and(|c| i128::from(*c) == st.ctime_ns);
        st.mtime_ns > since || (st.ctime_ns > since && !ours)
    }
}

/// What stands in the way of one change, judged on the host as it is now.
fn conflict(
    c: &Change,
    lower: Option<BorrowedFd<'_>>,
    since: i128,
    remade: &[PathBuf],
    allow_outward: bool,
    restored: &Restored,
) -> Option<Conflict> {
    let mk = |changed: Vec<PathBuf>, reason: &str| Conflict {
        path: c.path.clone(),
        changed,
        reason: format!("{reason}; it was left as it is"),
    };
    let Some(lower) = lower else {
        return Some(mk(vec![], "the host folder is gone"));
    };
    // Every folder on the way must be a real folder: a link there (made on
    // the host) is never written through.
    let mut at = PathBuf::new();
    for comp in c.rel.parent().unwrap_or(Path::new("")).iter() {
        at.push(comp);
        if remade.iter().any(|r| *r == c.layer.source.join(&at)) {
            // This apply replaces that entry with a folder first.
            break;
        }
        match stat_at(lower, &at) {
            Some((st, _)) if st.is_dir() => {}
            Some(_) => return Some(mk(
                vec![c.layer.source.join(&at)],
                "a folder on the way is a link or file on the host; nothing is written through it",
            )),
            None => break,
        }
    }
    let now = stat_at(lower, &c.rel);
    if let (Some(Entry::Symlink { target }), false) = (&c.new, allow_outward) {
        if let Ok(upper) = open_root(&c.layer.upper()) {
            if link_passes_a_link(upper.as_fd(), Some(lower), &c.rel, target) {
                return Some(mk(
                    vec![c.path.clone()],
                    "the link's target passes through a link on the host; apply it with --allow-outward-symlinks",
                ));
            }
        }
    }
    match (&c.old, now) {
        (None, None) if c.copied_up => Some(mk(
            vec![c.path.clone()],
            "the host removed it after the session started",
        )),
        (None, None) => None,
        (None, Some(_)) => Some(mk(
            vec![c.path.clone()],
            "the host created it after the session started",
        )),
        (Some(_), None) => Some(mk(
            vec![c.path.clone()],
            "the host removed it after the session started",
        )),
        (Some(_), Some((st, e))) => {
            if Some(e.word()) != c.old.as_ref().map(Entry::word) {
                return Some(mk(
                    vec![c.path.clone()],
                    "the host replaced it after the session started",
                ));
            }
            let mut changed = Vec::new();
            if st.is_dir() && (c.kind == Kind::Deleted || !matches!(c.new, Some(Entry::Dir { .. })))
            {
                // A folder that goes away takes everything in it: any host
                // edit below since the start is a conflict.
                let mut budget = 1_000_000;
                changed_below(lower, &c.rel, since, &mut changed, &mut budget, restored);
            } else if restored.changed(&st, since) {
                changed.push(c.rel.clone());
            }
            if changed.is_empty() {
                None
            } else {
                let changed = changed.iter().map(|r| c.layer.source.join(r)).collect();
                Some(mk(changed, "the host changed it after the session started"))
            }
        }
    }
}

struct Journal {
    file: std::fs::File,
}

impl Journal {
    fn create(path: &Path) -> std::io::Result<Journal> {
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(Journal { file })
    }

    fn open(path: &Path) -> std::io::Result<Journal> {
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Journal { file })
    }

    fn write(&mut self, r: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}

/// A journal read back.
#[derive(Debug, Default)]
struct JournalState {
    steps: Vec<Step>,
    planned_ns: i128,
    /// Inode of each step's staged content.
    staged: Vec<Option<u64>>,
    done: Vec<bool>,
    skipped: Vec<bool>,
    finishing: bool,
}

/// Read the journal back. One without a plan (written by an older
/// version, or cut before its plan) is a journal of nothing.
fn read_journal(path: &Path) -> std::io::Result<JournalState> {
    let text = std::fs::read_to_string(path)?;
    let mut j = JournalState::default();
    for line in text.lines() {
        // A line cut by a crash is the last one and was never acted on.
        let Ok(r) = serde_json::from_str::<Record>(line) else {
            break;
        };
        match r {
            Record::Plan { steps, planned_ns } => {
                j.staged = vec![None; steps.len()];
                j.done = vec![false; steps.len()];
                j.skipped = vec![false; steps.len()];
                j.steps = steps;
                j.planned_ns = i128::from(planned_ns);
            }
            Record::Staged { i, ino } if i < j.staged.len() => j.staged[i] = Some(ino),
            Record::Done { i } if i < j.done.len() => j.done[i] = true,
            Record::Skipped { i } if i < j.skipped.len() => j.skipped[i] = true,
            Record::Finishing => j.finishing = true,
            _ => {}
        }
    }
    if j.steps.is_empty() && !text.trim().is_empty() {
        // Something is there but not a plan this version reads: never
        // guess; the files it names are each whole (old or new).
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the journal cannot be read; each path it names holds its old or new content",
        ));
    }
    Ok(j)
}

fn stage_mode(m: u32) -> u32 {
    // setuid/setgid are never applied.
    m & 0o1777
}

/// Write the step's new content under its tmp name, from the layer.
fn stage(step: &Step) -> std::io::Result<u64> {
    let upper = open_root(&step.layer.join("upper"))?;
    let lower = open_root(&step.source)?;
    let (parent, name) = split(&step.rel);
    let dir = open_dir(lower.as_fd(), parent)?;
    let tmp = Path::new(&step.tmp);
    let up_dir = open_dir(upper.as_fd(), parent)?;
    let st = paddock_sys::fstatat(up_dir.as_fd(), name)?;
    if st.is_symlink() {
        let target = paddock_sys::readlinkat(up_dir.as_fd(), name)?;
        paddock_sys::symlinkat(&target, dir.as_fd(), tmp)?;
    } else if st.is_file() {
        let mut from = open_file(upper.as_fd(), &step.rel)?;
        let fd = paddock_sys::openat2(
            dir.as_fd(),
            tmp,
            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
            0o600,
            STRICT,
        )?;
        let mut to = std::fs::File::from(fd);
        std::io::copy(&mut from, &mut to)?;
        paddock_sys::fchmod(to.as_fd(), stage_mode(st.mode & 0o7777))?;
        to.sync_all()?;
    } else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "only files and links are staged",
        ));
    }
    let ino = paddock_sys::fstatat(dir.as_fd(), tmp)?.ino;
    std::fs::File::from(dir).sync_all()?;
    Ok(ino)
}

fn parent_dir(step: &Step) -> std::io::Result<OwnedFd> {
    let lower = open_root(&step.source)?;
    open_dir(lower.as_fd(), split(&step.rel).0)
}

/// How one step ended.
#[derive(Debug, PartialEq, Eq)]
enum Committed {
    /// In place.
    Done,
    /// Not done: the host changed the path since the plan.
    HostChanged,
}

/// Is the host entry `name` in `dir` still what the plan saw? (A folder
/// also counts as changed when anything in it changed since the plan.)
fn unchanged(
    dir: BorrowedFd<'_>,
    name: &Path,
    expect: Option<Ident>,
    planned_ns: i128,
    with_ctime: bool,
) -> bool {
    let Some(want) = expect else {
        return true;
    };
    let Ok(st) = paddock_sys::fstatat(dir, name) else {
        return false;
    };
    let now = Ident::of(&st);
    let same = now.ino == want.ino
        && now.mtime_ns == want.mtime_ns
        && now.size == want.size
        && (!with_ctime || now.ctime_ns == want.ctime_ns);
    if !same {
        return false;
    }
    if st.is_dir() {
        // Everything inside, by content time and status time (the folder
        // itself only by content time: apply's own rename of it changes
        // its status time).
        let Ok(d) = open_dir(dir, name) else {
            return false;
        };
        let Ok(names) = paddock_sys::read_dir_fd(d.as_fd()) else {
            return false;
        };
        let mut changed = Vec::new();
        let mut budget = 1_000_000;
        for n in names {
            changed_below(
                d.as_fd(),
                Path::new(&n),
                planned_ns,
                &mut changed,
                &mut budget,
                &Restored::default(),
            );
        }
        return changed.is_empty();
    }
    true
}

/// Carry out a step (its new content is staged as inode `ino`).
/// Idempotent after a crash: a step already in place is recognised. The
/// host's entry is checked just before and just after the switch: if the
/// host changed it in between, the switch is undone and the step left.
fn commit(step: &Step, ino: Option<u64>, planned_ns: i128) -> std::io::Result<Committed> {
    let dir = parent_dir(step)?;
    let (_, name) = split(&step.rel);
    let tmp = Path::new(&step.tmp);
    let at = |n: &Path| paddock_sys::fstatat(dir.as_fd(), n).ok();
    let d = dir.as_fd();
    match step.action {
        Action::Mkdir => match at(name) {
            Some(s) if s.is_dir() => Ok(Committed::Done),
            _ => {
                let upper = open_root(&step.layer.join("upper"))?;
                let mode = stat_at(upper.as_fd(), &step.rel)
                    .and_then(|(s, _)| s.is_dir().then_some(s.mode & 0o1777))
                    .unwrap_or(0o755);
                paddock_sys::mkdirat(d, name, mode).map(|()| Committed::Done)
            }
        },
        Action::Chmod => {
            let upper = open_root(&step.layer.join("upper"))?;
            let mode = stat_at(upper.as_fd(), &step.rel)
                .and_then(|(s, _)| s.is_dir().then_some(s.mode & 0o1777))
                .unwrap_or(0o755);
            let sub = open_dir(d, name)?;
            paddock_sys::fchmod(sub.as_fd(), mode).map(|()| Committed::Done)
        }
        Action::Add => {
            if ino.is_some() && at(name).map(|s| s.ino) == ino {
                return Ok(Committed::Done);
            }
            match paddock_sys::renameat2(d, tmp, d, name, paddock_sys::rename::NOREPLACE) {
                Ok(()) => Ok(Committed::Done),
                // The host made something there meanwhile: it stays.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok(Committed::HostChanged)
                }
                Err(e) => Err(e),
            }
        }
        Action::Replace => {
            if ino.is_some() && at(name).map(|s| s.ino) == ino {
                return Ok(Committed::Done);
            }
            if !unchanged(d, name, step.expect, planned_ns, true) {
                return Ok(Committed::HostChanged);
            }
            paddock_sys::renameat2(d, tmp, d, name, paddock_sys::rename::EXCHANGE)?;
            // The old content is under the tmp name now: still as planned?
            if !unchanged(d, tmp, step.expect, planned_ns, false) {
                paddock_sys::renameat2(d, tmp, d, name, paddock_sys::rename::EXCHANGE)?;
                return Ok(Committed::HostChanged);
            }
            Ok(Committed::Done)
        }
        Action::Remove => {
            if at(tmp).is_some() && at(name).is_none() {
                return Ok(Committed::Done);
            }
            if !unchanged(d, name, step.expect, planned_ns, true) {
                return Ok(Committed::HostChanged);
            }
            paddock_sys::renameat2(d, name, d, tmp, paddock_sys::rename::NOREPLACE)?;
            if !unchanged(d, tmp, step.expect, planned_ns, false) {
                paddock_sys::renameat2(d, tmp, d, name, paddock_sys::rename::NOREPLACE)?;
                return Ok(Committed::HostChanged);
            }
            Ok(Committed::Done)
        }
    }
}

/// Undo step `i` if it was carried out (the old content sits under its
/// tmp name), and remove whatever it staged.
fn undo(step: &Step, ino: Option<u64>) -> std::io::Result<()> {
    let Ok(dir) = parent_dir(step) else {
        return Ok(());
    };
    let (_, name) = split(&step.rel);
    let tmp = Path::new(&step.tmp);
    let at = |n: &Path| paddock_sys::fstatat(dir.as_fd(), n).ok();
    match step.action {
        Action::Mkdir => {
            // Only if empty: anything inside was put back already.
            let _ = paddock_sys::unlinkat(dir.as_fd(), name, true);
        }
        Action::Chmod => {}
        Action::Add => {
            if ino.is_some() && at(name).map(|s| s.ino) == ino {
                paddock_sys::unlinkat(dir.as_fd(), name, false)?;
            }
        }
        Action::Replace => {
            if ino.is_some() && at(name).map(|s| s.ino) == ino {
                paddock_sys::renameat2(
                    dir.as_fd(),
                    tmp,
                    dir.as_fd(),
                    name,
                    paddock_sys::rename::EXCHANGE,
                )?;
            }
        }
        Action::Remove => {
            if at(tmp).is_some() && at(name).is_none() {
                paddock_sys::renameat2(
                    dir.as_fd(),
                    tmp,
                    dir.as_fd(),
                    name,
                    paddock_sys::rename::NOREPLACE,
                )?;
            }
        }
    }
    if step.action != Action::Remove {
        if let Some(s) = at(tmp) {
            if ino.is_none_or(|i| s.ino == i) || step.action == Action::Replace {
                let _ = paddock_sys::unlinkat(dir.as_fd(), tmp, false);
            }
        }
    }
    Ok(())
}

/// Remove `name` in `dir`, a folder with everything in it, through
/// descriptors only.
fn remove_tree(dir: BorrowedFd<'_>, name: &Path) -> std::io::Result<()> {
    let st = paddock_sys::fstatat(dir, name)?;
    if st.is_dir() {
        let d = open_dir(dir, name)?;
        let _ = paddock_sys::fchmod(d.as_fd(), (st.mode & 0o7777) | 0o700);
        for n in paddock_sys::read_dir_fd(d.as_fd())? {
            remove_tree(d.as_fd(), Path::new(&n))?;
        }
        paddock_sys::unlinkat(dir, name, true)
    } else {
        paddock_sys::unlinkat(dir, name, false)
    }
}

/// After every step is in place: drop the old contents kept under the
/// tmp names (unless the host wrote to one after the switch, through a
/// descriptor it held: that one is kept beside, and reported), then what
/// was applied from the layer.
fn finish(j: &JournalState) -> Vec<Conflict> {
    let mut kept = Vec::new();
    for (i, step) in j.steps.iter().enumerate() {
        if j.skipped[i] || !matches!(step.action, Action::Replace | Action::Remove) {
            continue;
        }
        let Ok(dir) = parent_dir(step) else { continue };
        let tmp = Path::new(&step.tmp);
        if paddock_sys::fstatat(dir.as_fd(), tmp).is_err() {
            continue;
        }
        if unchanged(dir.as_fd(), tmp, step.expect, j.planned_ns, false) {
            let _ = remove_tree(dir.as_fd(), tmp);
            continue;
        }
        let (_, name) = split(&step.rel);
        let mut aside = name.as_os_str().to_os_string();
        aside.push(format!(
            ".paddock-host-edit-{}",
            random_name()
                .unwrap_or_default()
                .trim_start_matches(".paddock-apply-")
        ));
        let aside = PathBuf::from(aside);
        let path = step.source.join(&step.rel);
        if paddock_sys::renameat2(
            dir.as_fd(),
            tmp,
            dir.as_fd(),
            &aside,
            paddock_sys::rename::NOREPLACE,
        )
        .is_ok()
        {
            kept.push(Conflict {
                changed: vec![path.with_file_name(&aside)],
                path,
                reason: format!(
                    "the host wrote to it while apply ran; the host's version is kept as {}",
                    safe_path(&aside)
                ),
            });
        }
    }
    for (i, step) in j.steps.iter().enumerate().rev() {
        if j.skipped[i] {
            continue;
        }
        let Ok(upper) = open_root(&step.layer.join("upper")) else {
            continue;
        };
        let (parent, name) = split(&step.rel);
        if let Ok(d) = open_dir(upper.as_fd(), parent) {
            if let Ok(st) = paddock_sys::fstatat(d.as_fd(), name) {
                let _ = paddock_sys::unlinkat(d.as_fd(), name, st.is_dir());
            }
        }
    }
    kept
}

/// What apply can do for one change, in order.
fn plan_of(c: &Change, lower: Option<BorrowedFd<'_>>, out: &mut Vec<Step>) -> std::io::Result<()> {
    let expect = lower
        .and_then(|l| stat_at(l, &c.rel))
        .map(|(st, _)| Ident::of(&st));
    let mut push = |action| -> std::io::Result<()> {
        out.push(Step {
            layer: c.layer.dir.clone(),
            source: c.layer.source.clone(),
            rel: c.rel.clone(),
            action,
            tmp: random_name()?,
            expect: matches!(action, Action::Replace | Action::Remove)
                .then_some(expect)
                .flatten(),
        });
        Ok(())
    };
    match (&c.old, &c.new) {
        (None, Some(Entry::Dir { .. })) => push(Action::Mkdir),
        (None, Some(_)) => push(Action::Add),
        (Some(_), None) => push(Action::Remove),
        (Some(Entry::Dir { .. }), Some(Entry::Dir { .. })) => push(Action::Chmod),
        (Some(Entry::Dir { .. }), Some(_)) => {
            push(Action::Remove)?;
            push(Action::Add)
        }
        (Some(_), Some(Entry::Dir { .. })) => {
            push(Action::Remove)?;
            push(Action::Mkdir)
        }
        (Some(_), Some(_)) => push(Action::Replace),
        (None, None) => Ok(()),
    }
}

/// Write `changes` into the real folders.
///
/// Refused changes (protected names, special files, outward links unless
/// allowed) and conflicts (the host changed the path, or anything below a
/// folder that goes away, since `since_ns`) are skipped and reported, and
/// so is everything below them.
///
/// The rest runs under a journal in `session_dir`: the whole plan is
/// written first, each new content is staged under an unpredictable
/// `O_EXCL` name in its target's own folder (opened by descriptor, no
/// link followed) and recorded, then each step is carried out with one
/// `renameat2` (a swap, keeping the old content under the tmp name until
/// the end, or a no-replace rename), and recorded. A kill at any point
/// leaves each path with its old or its new content; [`resume`] finishes
/// and [`abort`] rolls back.
pub fn apply(
    session_dir: &Path,
    changes: &[Change],
    opts: &ApplyOptions,
) -> Result<Applied, SessionError> {
    let jpath = journal_path(session_dir);
    if jpath.exists() {
        return Err(SessionError::Io {
            context: format!(
                "an earlier apply was interrupted (journal {})",
                jpath.display()
            ),
            source: std::io::Error::other(
                "finish it with `paddock apply --resume` or undo it with `paddock apply --abort`",
            ),
        });
    }
    let since = i128::try_from(opts.since_ns).unwrap_or(i128::MAX);
    let mut out = Applied::default();
    let mut blocked: Vec<PathBuf> = Vec::new();
    let mut steps = Vec::new();
    let mut lowers: std::collections::HashMap<PathBuf, Option<OwnedFd>> = Default::default();
    let mut remade: Vec<PathBuf> = Vec::new();
    let restored = Restored::load(session_dir);
    for c in changes {
        if blocked.iter().any(|b| c.path.starts_with(b)) {
            out.refused.push((
                c.path.clone(),
                Refusal {
                    code: Reason::APPLY_PARENT_REFUSED.code().into(),
                    reason: "a folder above it was not applied".into(),
                },
            ));
            continue;
        }
        let refusal = match &c.refused {
            Some(r)
                if r.code == Reason::APPLY_SYMLINK_ESCAPE.code() && opts.allow_outward_symlinks =>
            {
                None
            }
            r => r.clone(),
        };
        if let Some(r) = refusal {
            out.refused.push((c.path.clone(), r));
            blocked.push(c.path.clone());
            continue;
        }
        let lower = lowers
            .entry(c.layer.source.clone())
            .or_insert_with(|| open_root(&c.layer.source).ok());
        if let Some(k) = conflict(
            c,
            lower.as_ref().map(|l| l.as_fd()),
            since,
            &remade,
            opts.allow_outward_symlinks,
            &restored,
        ) {
            out.conflicts.push(k);
            blocked.push(c.path.clone());
            continue;
        }
        if c.old.is_some() && matches!(c.new, Some(Entry::Dir { .. })) {
            remade.push(c.path.clone());
        }
        plan_of(c, lower.as_ref().map(|l| l.as_fd()), &mut steps)
            .map_err(io("choosing temporary names".into()))?;
        out.applied.push(c.path.clone());
    }
    if steps.is_empty() {
        return Ok(out);
    }
    // The plan reaches the journal's name whole (written beside, synced,
    // renamed): a journal that exists always has its plan.
    let planned_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
        .unwrap_or(0)
        // Coarse file clocks lag the real one by a tick.
        - 20_000_000;
    let beside = jpath.with_extension("journal.new");
    let _ = std::fs::remove_file(&beside);
    let mut j = Journal::create(&beside).map_err(io(format!("creating {}", beside.display())))?;
    j.write(&Record::Plan {
        steps: steps.clone(),
        planned_ns: i64::try_from(planned_ns).unwrap_or(i64::MAX),
    })
    .map_err(io(format!("writing {}", beside.display())))?;
    std::fs::rename(&beside, &jpath).map_err(io(format!("creating {}", jpath.display())))?;
    if let Ok(d) = std::fs::File::open(session_dir) {
        let _ = d.sync_all();
    }
    let n = steps.len();
    let state = JournalState {
        steps,
        planned_ns,
        staged: vec![None; n],
        done: vec![false; n],
        skipped: vec![false; n],
        finishing: false,
    };
    let late = run_journal(&jpath, &mut j, state)?;
    for k in late {
        out.applied.retain(|p| *p != k.path);
        out.conflicts.push(k);
    }
    Ok(out)
}

/// Debug builds only: a pause between steps, so the test suite can kill
/// an apply at random points inside its journal.
fn test_pause() {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("PADDOCK_TEST_APPLY_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

fn run_journal(
    jpath: &Path,
    j: &mut Journal,
    mut st: JournalState,
) -> Result<Vec<Conflict>, SessionError> {
    let werr = |e| SessionError::Io {
        context: format!("writing {}", jpath.display()),
        source: e,
    };
    let mut late = Vec::new();
    if !st.finishing {
        // Stage every new content first, so the switches that follow are
        // quick.
        for i in 0..st.steps.len() {
            let step = &st.steps[i];
            if st.done[i]
                || st.skipped[i]
                || st.staged[i].is_some()
                || !matches!(step.action, Action::Add | Action::Replace)
            {
                continue;
            }
            // A crash may have left this step's tmp half-written: start over.
            if let Ok(d) = parent_dir(step) {
                let _ = paddock_sys::unlinkat(d.as_fd(), Path::new(&step.tmp), false);
            }
            let ino = match stage(step) {
                Ok(ino) => ino,
                // The parent folder is made by an earlier step (ENOENT, or a
                // file or link that step replaces: ENOTDIR, ELOOP): stage
                // after it.
                Err(e) if matches!(e.raw_os_error(), Some(2 | 20 | 40)) => continue,
                Err(e) => {
                    return Err(SessionError::Io {
                        context: format!("staging {}", safe_path(&step.source.join(&step.rel))),
                        source: e,
                    })
                }
            };
            j.write(&Record::Staged { i, ino }).map_err(werr)?;
            st.staged[i] = Some(ino);
            test_pause();
        }
        let mut left: Vec<PathBuf> = Vec::new();
        for i in 0..st.steps.len() {
            let step = st.steps[i].clone();
            if st.done[i] || st.skipped[i] {
                if st.skipped[i] {
                    left.push(step.rel.clone());
                }
                continue;
            }
            let path = step.source.join(&step.rel);
            // A step inside (or after, at the same path) one the host
            // kept is left too.
            let mut outcome = if left.iter().any(|l| step.rel.starts_with(l)) {
                Committed::HostChanged
            } else {
                if matches!(step.action, Action::Add | Action::Replace) && st.staged[i].is_none() {
                    let ino = stage(&step).map_err(|e| SessionError::Io {
                        context: format!("staging {}", safe_path(&path)),
                        source: e,
                    })?;
                    j.write(&Record::Staged { i, ino }).map_err(werr)?;
                    st.staged[i] = Some(ino);
                }
                commit(&step, st.staged[i], st.planned_ns).map_err(|e| SessionError::Io {
                    context: format!("applying {}", safe_path(&path)),
                    source: e,
                })?
            };
            if outcome == Committed::HostChanged {
                // Drop what was staged for it.
                if let Ok(d) = parent_dir(&step) {
                    if step.action != Action::Remove {
                        if let (Ok(s), Some(ino)) = (
                            paddock_sys::fstatat(d.as_fd(), Path::new(&step.tmp)),
                            st.staged[i],
                        ) {
                            if s.ino == ino {
                                let _ =
                                    paddock_sys::unlinkat(d.as_fd(), Path::new(&step.tmp), false);
                            }
                        }
                    }
                }
                j.write(&Record::Skipped { i }).map_err(werr)?;
                st.skipped[i] = true;
                left.push(step.rel.clone());
                if !late.iter().any(|k: &Conflict| k.path == path) {
                    late.push(Conflict {
                        changed: vec![path.clone()],
                        path,
                        reason: "the host changed it while apply ran; it was left as it is".into(),
                    });
                }
                outcome = Committed::Done;
            }
            let _ = outcome;
            if !st.skipped[i] {
                if let Ok(d) = parent_dir(&step) {
                    let _ = std::fs::File::from(d).sync_all();
                }
                j.write(&Record::Done { i }).map_err(werr)?;
                st.done[i] = true;
            }
            test_pause();
        }
        j.write(&Record::Finishing).map_err(werr)?;
        st.finishing = true;
    }
    late.extend(finish(&st));
    std::fs::remove_file(jpath).map_err(io(format!("removing {}", jpath.display())))?;
    Ok(late)
}

/// When this session's changes were last applied in full (ns since the
/// epoch; 0 if never): later host edits are the conflicts.
pub fn applied_at(session_dir: &Path) -> u128 {
    std::fs::read_to_string(session_dir.join("cow").join("applied_ns"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Record that every pending change was just applied.
pub fn mark_applied(session_dir: &Path) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let _ = std::fs::write(session_dir.join("cow").join("applied_ns"), now.to_string());
}

/// Is an apply of this session interrupted?
pub fn interrupted(session_dir: &Path) -> bool {
    journal_path(session_dir).exists()
}

/// What `--resume` or `--abort` did.
#[derive(Debug, Default, Serialize)]
pub struct Recovered {
    /// The paths the interrupted apply covered.
    pub paths: Vec<PathBuf>,
    /// Paths left as the host had them (changed meanwhile), or the host's
    /// version kept beside.
    pub conflicts: Vec<Conflict>,
    /// `--abort` found the apply complete but for its clean-up, and
    /// finished it instead.
    pub finished_instead: bool,
}

/// Finish an interrupted apply.
pub fn resume(session_dir: &Path) -> Result<Recovered, SessionError> {
    let jpath = journal_path(session_dir);
    let st = read_journal(&jpath).map_err(io(format!("reading {}", jpath.display())))?;
    let paths = st.steps.iter().map(|s| s.source.join(&s.rel)).collect();
    let mut j = Journal::open(&jpath).map_err(io(format!("opening {}", jpath.display())))?;
    let conflicts = run_journal(&jpath, &mut j, st)?;
    Ok(Recovered {
        paths,
        conflicts,
        finished_instead: false,
    })
}

/// Roll an interrupted apply back: every path gets its old content again,
/// every staged file is removed, the layer keeps the changes. An apply
/// that had put everything in place (only its clean-up was cut) cannot be
/// rolled back any more (the layer's copies may be gone): it is finished.
pub fn abort(session_dir: &Path) -> Result<Recovered, SessionError> {
    let jpath = journal_path(session_dir);
    let st = read_journal(&jpath).map_err(io(format!("reading {}", jpath.display())))?;
    if st.finishing {
        let mut r = resume(session_dir)?;
        r.finished_instead = true;
        return Ok(r);
    }
    let mut restored = Restored::load(session_dir);
    for (i, step) in st.steps.iter().enumerate().rev() {
        let staged = if st.skipped[i] && step.action == Action::Remove {
            // Never moved: nothing to put back.
            continue;
        } else {
            st.staged[i]
        };
        undo(step, staged).map_err(|e| SessionError::Io {
            context: format!("restoring {}", safe_path(&step.source.join(&step.rel))),
            source: e,
        })?;
        // The host's own entry is back: remember its new status time.
        if let (Some(want), Ok(dir)) = (step.expect, parent_dir(step)) {
            if let Ok(now) = paddock_sys::fstatat(dir.as_fd(), split(&step.rel).1) {
                if now.ino == want.ino {
                    restored
                        .0
                        .insert(now.ino, i64::try_from(now.ctime_ns).unwrap_or(i64::MAX));
                }
            }
        }
    }
    restored.save(session_dir);
    std::fs::remove_file(&jpath).map_err(io(format!("removing {}", jpath.display())))?;
    Ok(Recovered {
        paths: st.steps.iter().map(|s| s.source.join(&s.rel)).collect(),
        conflicts: Vec::new(),
        finished_instead: false,
    })
}

/// Make a tree that came out of the sandbox (an export, unpacked into a
/// fresh folder at `root`) safe to hand to the user, through descriptors:
/// links that point outside the tree are removed (unless
/// `allow_outward`), FIFOs, sockets and devices are removed, and
/// setuid/setgid bits are cleared. Returns what was removed, and why.
pub fn make_safe(
    root: &Path,
    allow_outward: bool,
) -> Result<Vec<(PathBuf, Refusal)>, SessionError> {
    fn walk(
        dir: BorrowedFd<'_>,
        rel: &Path,
        allow_outward: bool,
        out: &mut Vec<(PathBuf, Refusal)>,
    ) -> std::io::Result<()> {
        let mut names = paddock_sys::read_dir_fd(dir)?;
        names.sort();
        for n in names {
            let name = Path::new(&n);
            let r = rel.join(name);
            let st = paddock_sys::fstatat(dir, name)?;
            let refuse = |code: &str, reason: String| {
                (
                    r.clone(),
                    Refusal {
                        code: code.into(),
                        reason,
                    },
                )
            };
            if st.is_dir() {
                let d = open_dir(dir, name)?;
                walk(d.as_fd(), &r, allow_outward, out)?;
                if st.mode & 0o6000 != 0 {
                    paddock_sys::fchmod(d.as_fd(), st.mode & 0o1777)?;
                }
            } else if st.is_symlink() {
                let target = paddock_sys::readlinkat(dir, name)?;
                // What was exported is one entry of `root`: a link that is
                // that entry points at something that was not exported, and
                // one below must stay inside its own tree.
                let within: PathBuf = r.iter().skip(1).collect();
                if !allow_outward
                    && (rel.as_os_str().is_empty() || !link_stays_inside(&within, &target))
                {
                    paddock_sys::unlinkat(dir, name, false)?;
                    out.push(refuse(
                        Reason::EXPORT_SYMLINK_ESCAPE.code(),
                        format!(
                            "the link points outside what was exported ({}); export again with --allow-outward-symlinks to keep it",
                            safe_path(&target)
                        ),
                    ));
                }
            } else if st.is_file() {
                if st.mode & 0o6000 != 0 {
                    let f = paddock_sys::openat2(
                        dir,
                        name,
                        O_RDONLY | O_NOFOLLOW | O_NONBLOCK,
                        0,
                        STRICT,
                    )?;
                    paddock_sys::fchmod(f.as_fd(), st.mode & 0o1777)?;
                }
            } else {
                paddock_sys::unlinkat(dir, name, false)?;
                out.push(refuse(
                    Reason::EXPORT_SPECIAL_FILE.code(),
                    format!(
                        "a {} is never exported",
                        st.special_kind().unwrap_or("special file")
                    ),
                ));
            }
        }
        Ok(())
    }
    let fd = open_root(root).map_err(io(format!("opening {}", root.display())))?;
    let mut out = Vec::new();
    walk(fd.as_fd(), Path::new(""), allow_outward, &mut out)
        .map_err(io(format!("checking {}", root.display())))?;
    Ok(out)
}

/// Bytes held by the session's cow layers (file sizes, a sparse file at
/// its full size), walked through descriptors.
pub fn layer_bytes(session_dir: &Path) -> u64 {
    fn walk(dir: BorrowedFd<'_>, total: &mut u64) {
        let Ok(names) = paddock_sys::read_dir_fd(dir) else {
            return;
        };
        for n in names {
            let name = Path::new(&n);
            let Ok(st) = paddock_sys::fstatat(dir, name) else {
                continue;
            };
            *total = total.saturating_add(st.size.max(512));
            if st.is_dir() {
                if let Ok(d) = open_dir(dir, name) {
                    walk(d.as_fd(), total);
                }
            }
        }
    }
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(session_dir.join("cow")) {
        for layer in rd.flatten() {
            if let Ok(fd) = open_root(&layer.path().join("upper")) {
                walk(fd.as_fd(), &mut total);
            }
        }
    }
    total
}

/// Throw every change away.
pub fn discard(session_dir: &Path) -> Result<usize, SessionError> {
    let n = changes(session_dir, &[])?.len();
    let cow = session_dir.join("cow");
    if let Ok(rd) = std::fs::read_dir(&cow) {
        for layer in rd.flatten() {
            for sub in ["upper", "work"] {
                let d = layer.path().join(sub);
                crate::make_writable(&d);
                std::fs::remove_dir_all(&d).map_err(io(format!("removing {}", d.display())))?;
                std::fs::create_dir(&d).map_err(io(format!("creating {}", d.display())))?;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_journal_record_reads_back() {
        let dir = std::env::temp_dir().join(format!("paddock-journal-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let step = Step {
            layer: "/l".into(),
            source: "/s".into(),
            rel: "a/b".into(),
            action: Action::Replace,
            tmp: ".paddock-apply-x".into(),
            expect: Some(Ident {
                ino: 7,
                mtime_ns: 1_796_000_000_000_000_000,
                size: 3,
                ctime_ns: 1_796_000_000_000_000_001,
            }),
        };
        let mut j = Journal::create(&dir).unwrap();
        for r in [
            Record::Plan {
                steps: vec![step.clone(), step],
                planned_ns: 1_796_000_000_000_000_000,
            },
            Record::Staged { i: 0, ino: 9 },
            Record::Done { i: 0 },
            Record::Skipped { i: 1 },
            Record::Finishing,
        ] {
            j.write(&r).unwrap();
        }
        let st = read_journal(&dir).unwrap();
        assert_eq!(st.steps.len(), 2);
        assert_eq!(
            st.steps[0].expect.unwrap().mtime_ns,
            1_796_000_000_000_000_000
        );
        assert_eq!(st.planned_ns, 1_796_000_000_000_000_000);
        assert_eq!(
            (st.staged[0], st.done[0], st.skipped[1], st.finishing),
            (Some(9), true, true, true)
        );
        std::fs::write(&dir, "garbage\n").unwrap();
        assert!(
            read_journal(&dir).is_err(),
            "an unreadable journal is never taken as empty"
        );
        std::fs::write(&dir, "").unwrap();
        assert!(read_journal(&dir).unwrap().steps.is_empty());
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn protected_names_match_whole_components_at_any_depth() {
        let p = vec![
            PathBuf::from(".envrc"),
            PathBuf::from(".vscode/tasks.json"),
            PathBuf::from(".git"),
        ];
        assert!(protected_match(Path::new(".envrc"), &p).is_some());
        assert!(protected_match(Path::new("a/b/.envrc"), &p).is_some());
        assert!(protected_match(Path::new("sub/.git/hooks/pre-commit"), &p).is_some());
        assert!(protected_match(Path::new("x/.vscode/tasks.json"), &p).is_some());
        assert!(protected_match(Path::new(".vscode/settings.json"), &p).is_none());
        assert!(protected_match(Path::new(".envrc.bak"), &p).is_none());
        assert!(protected_match(Path::new("git"), &p).is_none());
    }

    #[test]
    fn links_that_leave_the_mount_are_found() {
        assert!(link_stays_inside(Path::new("a/l"), Path::new("b")));
        assert!(link_stays_inside(Path::new("a/l"), Path::new("../b")));
        assert!(!link_stays_inside(Path::new("a/l"), Path::new("../../b")));
        assert!(!link_stays_inside(Path::new("l"), Path::new("/etc/passwd")));
        assert!(!link_stays_inside(
            Path::new("a/l"),
            Path::new("x/../../..")
        ));
        assert!(!link_stays_inside(Path::new("l"), Path::new("")));
    }
}

//! Reviewing what a session changed in its `cow` mounts: the upper layer of
//! each overlay, kept in the session folder, *is* the change set.
//!
//! In an upper layer, a regular file or symlink is an addition or a
//! modification of the folder below; a character device 0:0 is a whiteout
//! (a deletion); a folder with the `user.overlay.opaque` attribute replaces
//! the folder below entirely.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SessionError;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `added`, `modified` or `deleted`.
    pub kind: Kind,
    /// Path on the host (in the real folder).
    pub path: PathBuf,
    /// Path relative to the mount.
    pub rel: PathBuf,
    /// Which layer holds it.
    #[serde(skip)]
    pub upper: PathBuf,
}

/// Kinds of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// New in the sandbox.
    Added,
    /// Changed in the sandbox.
    Modified,
    /// Removed in the sandbox.
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

fn is_whiteout(md: &std::fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn walk(
    upper_root: &Path,
    lower_root: &Path,
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<(), SessionError> {
    let dir = upper_root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io(format!("reading {}", dir.display())))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let up = upper_root.join(&r);
        let low = lower_root.join(&r);
        let md = std::fs::symlink_metadata(&up).map_err(io(format!("reading {}", up.display())))?;
        let lower_exists = std::fs::symlink_metadata(&low).is_ok();
        let mk = |kind| Change {
            kind,
            path: low.clone(),
            rel: r.clone(),
            upper: up.clone(),
        };
        if is_whiteout(&md) {
            if lower_exists {
                out.push(mk(Kind::Deleted));
            }
        } else if md.is_dir() {
            let opaque =
                paddock_sys::lgetxattr(&up, "user.overlay.opaque").is_some_and(|v| v == b"y");
            if opaque && lower_exists {
                // Everything below that the sandbox did not recreate is gone.
                list_lower_deletions(&low, &up, &r, out)?;
            }
            if !lower_exists {
                out.push(mk(Kind::Added));
            }
            walk(upper_root, lower_root, &r, out)?;
        } else {
            out.push(mk(if lower_exists {
                Kind::Modified
            } else {
                Kind::Added
            }));
        }
    }
    Ok(())
}

fn list_lower_deletions(
    low: &Path,
    up: &Path,
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<(), SessionError> {
    for e in std::fs::read_dir(low)
        .map_err(io(format!("reading {}", low.display())))?
        .flatten()
    {
        let name = e.file_name();
        if std::fs::symlink_metadata(up.join(&name)).is_err() {
            out.push(Change {
                kind: Kind::Deleted,
                path: low.join(&name),
                rel: rel.join(&name),
                upper: up.join(&name),
            });
        }
    }
    Ok(())
}

/// Every change in the session folder `session_dir`, per mount.
pub fn changes(session_dir: &Path) -> Result<Vec<Change>, SessionError> {
    let cow = session_dir.join("cow");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&cow) else {
        return Ok(out);
    };
    for layer in rd.flatten() {
        let rec: MountRecord = match std::fs::read(layer.path().join("mount.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(r) => r,
            None => continue,
        };
        walk(
            &layer.path().join("upper"),
            &rec.source,
            Path::new(""),
            &mut out,
        )?;
    }
    Ok(out)
}

/// A unified diff of `c` (text files), or a one-line note for binaries,
/// folders and links.
pub fn unified(c: &Change) -> String {
    let read = |p: &Path| std::fs::read(p).ok();
    let (old, new) = match c.kind {
        Kind::Added => (Some(Vec::new()), read(&c.upper)),
        Kind::Deleted => (read(&c.path), Some(Vec::new())),
        Kind::Modified => (read(&c.path), read(&c.upper)),
    };
    let (Some(old), Some(new)) = (old, new) else {
        return format!(
            "{} {}\n",
            match c.kind {
                Kind::Added => "new",
                Kind::Deleted => "deleted",
                Kind::Modified => "changed",
            },
            c.rel.display()
        );
    };
    match (std::str::from_utf8(&old), std::str::from_utf8(&new)) {
        (Ok(a), Ok(b)) => {
            let a_name = if c.kind == Kind::Added {
                "/dev/null".to_string()
            } else {
                format!("a/{}", c.rel.display())
            };
            let b_name = if c.kind == Kind::Deleted {
                "/dev/null".to_string()
            } else {
                format!("b/{}", c.rel.display())
            };
            similar::TextDiff::from_lines(a, b)
                .unified_diff()
                .context_radius(3)
                .header(&a_name, &b_name)
                .to_string()
        }
        _ => format!("Binary files a/{0} and b/{0} differ\n", c.rel.display()),
    }
}

/// The outcome of applying.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    /// Written into the real folder.
    pub applied: Vec<PathBuf>,
    /// Refused: the host changed the file after the session started.
    pub conflicts: Vec<PathBuf>,
}

fn changed_on_host_since(p: &Path, since_ns: u128) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|md| {
        let ns = u128::try_from(md.mtime()).unwrap_or(0) * 1_000_000_000
            + u128::try_from(md.mtime_nsec()).unwrap_or(0);
        ns > since_ns
    })
}

fn copy_entry(from: &Path, to: &Path) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(from)?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if md.file_type().is_symlink() {
        let target = std::fs::read_link(from)?;
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(target, to)
    } else if md.is_dir() {
        std::fs::create_dir_all(to)?;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(md.permissions().mode()))
    } else {
        // Write beside, then rename: the real file is never half-written.
        let tmp = to.with_file_name(format!(
            ".{}.paddock-apply",
            to.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::copy(from, &tmp)?;
        std::fs::rename(&tmp, to)
    }
}

/// Write `changes` into the real folders, skipping (and reporting) every
/// path the host changed since `since` (the session's start); what was
/// applied leaves the layer, so it is no longer pending.
pub fn apply(changes: &[Change], since_ns: u128) -> Applied {
    let mut out = Applied::default();
    for c in changes {
        if changed_on_host_since(&c.path, since_ns) {
            out.conflicts.push(c.path.clone());
            continue;
        }
        let ok = match c.kind {
            Kind::Added | Kind::Modified => copy_entry(&c.upper, &c.path).is_ok(),
            Kind::Deleted => {
                let md = std::fs::symlink_metadata(&c.path);
                match md {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(&c.path).is_ok(),
                    Ok(_) => std::fs::remove_file(&c.path).is_ok(),
                    Err(_) => true,
                }
            }
        };
        if ok {
            out.applied.push(c.path.clone());
        } else {
            out.conflicts.push(c.path.clone());
        }
    }
    // Clear what was applied from the layers (files first, then folders).
    for c in changes
        .iter()
        .rev()
        .filter(|c| out.applied.contains(&c.path))
    {
        let md = std::fs::symlink_metadata(&c.upper);
        if md.as_ref().is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::remove_dir(&c.upper);
        } else if md.is_ok() {
            let _ = std::fs::remove_file(&c.upper);
        }
    }
    out
}

/// Throw every change away.
pub fn discard(session_dir: &Path) -> Result<usize, SessionError> {
    let n = changes(session_dir)?.len();
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

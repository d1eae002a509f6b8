//! What the sandbox built from a spec would do with one file access,
//! answered from the same spec and the same rules as `sequence.rs` and
//! `landlock_rules.rs`. `paddock policy explain` uses it; the integration
//! suite checks it against real sandboxes on the same cases.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::spec::{normalize, Level, MountMode, SandboxSpec, HIDDEN_SYSTEM_PATHS, SYSTEM_DIRS};
use paddock_reasons::Reason;

/// A file operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsOp {
    /// Read a file or list a folder.
    Read,
    /// Create or modify.
    Write,
    /// Unlink, rmdir, or rename away.
    Delete,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsVerdict {
    /// Allowed or not.
    pub allowed: bool,
    /// Stable reason code.
    pub code: &'static str,
    /// The rule that decided, in words, with its origin when known.
    pub rule: String,
}

fn verdict(allowed: bool, code: &'static str, rule: impl Into<String>) -> FsVerdict {
    FsVerdict {
        allowed,
        code,
        rule: rule.into(),
    }
}

/// Decide `op` on `path` (absolute, as seen inside the sandbox).
pub fn explain_fs(spec: &SandboxSpec, path: &Path, op: FsOp) -> FsVerdict {
    // The names the sandbox will protect, core.hooksPath's folder included.
    let spec = &SandboxSpec {
        protected: crate::prepare::protected_names(spec, &spec.mounts),
        ..spec.clone()
    };
    let names = crate::guard::Names::new(&spec.protected);
    explain_fs_with(spec, &names, path, op, &|host, _| {
        std::fs::symlink_metadata(host).is_ok()
    })
}

/// Whether `path` is `prefix` or lies inside it, as `Path::starts_with`
/// says, compared as bytes when `prefix` has the clean form `normalize`
/// gives (the audit observer asks this of every mount, for every observed
/// call).
fn under(path: &Path, prefix: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (p, q) = (path.as_os_str().as_bytes(), prefix.as_os_str().as_bytes());
    let clean = !q.is_empty()
        && !q.ends_with(b"/")
        && !q.ends_with(b"/.")
        && !q.ends_with(b"/..")
        && q != b"."
        && q != b".."
        && !q.starts_with(b"./")
        && !q.starts_with(b"../")
        && !q.windows(2).any(|w| w == b"//")
        && !q.windows(3).any(|w| w == b"/./")
        && !q.windows(4).any(|w| w == b"/../");
    let p_clean = !p.ends_with(b"/") && !p.windows(2).any(|w| w == b"//");
    if !clean || !p_clean {
        return path.starts_with(prefix);
    }
    p.starts_with(q) && (p.len() == q.len() || p[q.len()] == b'/')
}

/// [`explain_fs`], told by `protected_exists(host_path, sandbox_path)`
/// whether a protected name exists: from the host, its host path is
/// looked at; from inside the sandbox (the audit observer), its path there.
/// `names` is `spec.protected`, compiled once ([`crate::guard::Names`]).
pub(crate) fn explain_fs_with(
    spec: &SandboxSpec,
    names: &crate::guard::Names,
    path: &Path,
    op: FsOp,
    protected_exists: &dyn Fn(&Path, &Path) -> bool,
) -> FsVerdict {
    let path = normalize(path);
    let no_userns = spec.level == Level::NoUserns;
    if let Some(h) = HIDDEN_SYSTEM_PATHS
        .iter()
        .find(|h| under(&path, Path::new(h)))
    {
        return verdict(
            false,
            Reason::FS_READ_HIDDEN.code(),
            format!("{h} holds host secrets and is replaced by an empty read-only file or folder"),
        );
    }
    if let Some((host, _)) = spec.hidden.iter().find(|(_, t)| under(&path, t)) {
        return verdict(
            false,
            Reason::FS_DENIED_INSIDE.code(),
            format!(
                "{} is in filesystem.deny: inside the mount it is an empty read-only {}",
                host.display(),
                if host.is_dir() { "folder" } else { "file" }
            ),
        );
    }
    // The deepest mount wins, as in the mount tree.
    let mount = spec
        .mounts
        .iter()
        .filter(|m| under(&path, &m.target))
        .max_by_key(|m| m.target.components().count());
    if let Some(m) = mount {
        if m.mode.writable() && op != FsOp::Read {
            // A protected name at any depth below the mount, the folder
            // itself or anything inside it.
            let rel = path.strip_prefix(&m.target).unwrap_or(Path::new(""));
            // The mount itself may lie inside a protected name.
            if let (Some(at), false) = (names.prefix(&m.source), no_userns) {
                return verdict(false, Reason::FS_WRITE_PROTECTED.code(), format!(
                    "the mount {} lies inside the protected name {}: the whole mount is kept read-only",
                    m.source.display(), at.display()));
            }
            if let Some(prefix) = names.prefix(rel) {
                let shown = prefix.display();
                let p = m.target.join(&prefix);
                let host = m.source.join(&prefix);
                // No mounts at no-userns: an existing name cannot be kept
                // read-only; a new one is still refused or swept.
                if no_userns && protected_exists(&host, &p) {
                    return verdict(true, Reason::FS_PROTECTED_UNENFORCED.code(), format!(
                        "{shown} is not kept read-only at isolation level no-userns (no mounts); see docs/isolation-levels.md"));
                }
                let last = prefix
                    .file_name()
                    .map(Path::new)
                    .unwrap_or(Path::new(""))
                    .display();
                return if protected_exists(&host, &p) {
                    verdict(false, Reason::FS_WRITE_PROTECTED.code(), format!(
                        "{shown} is protected inside writable mounts: the host acts on it by itself (lift with --unprotect {last})"))
                } else if m.mode == MountMode::Cow {
                    verdict(true, Reason::FS_PROTECTED_COW.code(), format!(
                        "{shown} does not exist on the host: the sandbox may create it in its own layer, and `paddock apply` never writes it (APPLY_PROTECTED)"))
                } else {
                    verdict(true, Reason::FS_PROTECTED_QUARANTINED.code(), format!(
                        "{shown} does not exist yet; if the sandbox creates it, paddock moves it aside after each command (every second while commands run) and records PROTECTED_PATH_CREATED"))
                };
            }
        }
        let from = format!(
            "mount {} -> {} ({}, from {})",
            m.source.display(),
            m.target.display(),
            m.mode,
            m.origin
        );
        return match (m.mode, op) {
            (_, FsOp::Read) => verdict(true, Reason::FS_ALLOWED.code(), from),
            (MountMode::Ro, _) => verdict(false, Reason::FS_WRITE_READ_ONLY.code(), from),
            (MountMode::RwNoDelete, FsOp::Delete) => {
                verdict(false, Reason::FS_DELETE_NO_DELETE.code(), from)
            }
            (MountMode::Cow, _) => verdict(
                true,
                Reason::FS_WRITE_COW.code(),
                format!("{from}; changes stay in the sandbox's own layer"),
            ),
            _ => verdict(true, Reason::FS_ALLOWED.code(), from),
        };
    }
    if SYSTEM_DIRS.iter().any(|d| {
        path.strip_prefix("/")
            .is_ok_and(|rel| under(rel, Path::new(d)))
    }) {
        return match op {
            FsOp::Read => verdict(
                true,
                Reason::FS_READ_SYSTEM.code(),
                "system folders are shown read-only",
            ),
            _ => verdict(
                false,
                Reason::FS_WRITE_READ_ONLY.code(),
                "system folders are shown read-only",
            ),
        };
    }
    if no_userns {
        // No mounts: the private home and /tmp are folders of the scratch
        // directory, and Landlock grants nothing else.
        let own = spec
            .scratch_dir
            .as_ref()
            .is_some_and(|d| path.starts_with(d.join("home")) || path.starts_with(d.join("tmp")));
        return if own {
            verdict(
                true,
                Reason::FS_WRITE_SCRATCH.code(),
                "the run's private home and /tmp (isolation level no-userns)",
            )
        } else {
            verdict(
                false,
                Reason::FS_OUTSIDE_SANDBOX.code(),
                format!(
                    "{} is outside every mount; at isolation level no-userns Landlock grants no access to it",
                    path.display()
                ),
            )
        };
    }
    let scratch = ["/tmp", "/run", "/dev/shm"]
        .iter()
        .map(PathBuf::from)
        .chain(std::iter::once(spec.home.clone()))
        .find(|s| path.starts_with(s));
    if let Some(s) = scratch {
        let holds_no_delete = spec
            .mounts
            .iter()
            .any(|m| m.mode == MountMode::RwNoDelete && m.target.starts_with(&s) && m.target != s);
        return match op {
            FsOp::Read => verdict(
                false,
                Reason::FS_READ_OUTSIDE_MOUNTS.code(),
                format!("{} is a private, empty scratch folder inside the sandbox; the host's files there are not shown", s.display()),
            ),
            FsOp::Delete if holds_no_delete => verdict(
                false,
                Reason::FS_DELETE_NO_DELETE.code(),
                format!("{} holds a rw-no-delete mount, whose rule it must share", s.display()),
            ),
            _ => verdict(true, Reason::FS_WRITE_SCRATCH.code(), format!("{} is private scratch space; nothing reaches the host", s.display())),
        };
    }
    verdict(
        false,
        Reason::FS_READ_OUTSIDE_MOUNTS.code(),
        format!(
            "{} is outside every mount: it does not exist inside the sandbox",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::under;
    use std::path::Path;

    /// The byte comparison answers as `Path::starts_with` does, for clean
    /// and unclean prefixes alike.
    #[test]
    fn under_agrees_with_path_starts_with() {
        let paths = [
            "/",
            "/work",
            "/work/a",
            "/workshop",
            "/work/a/b",
            "/tmp",
            "/tmp2",
            "usr/bin",
            "usr",
            "usrx",
            "",
        ];
        let prefixes = [
            "/",
            "/work",
            "/work/",
            "/work/a",
            "/wor",
            "//work",
            "/work/./a",
            "/work/../work",
            "/tmp",
            "usr",
            "usr/",
            "./usr",
            "",
            ".",
            "..",
        ];
        for p in paths {
            for q in prefixes {
                assert_eq!(
                    under(Path::new(p), Path::new(q)),
                    Path::new(p).starts_with(q),
                    "{p} under {q}"
                );
            }
        }
    }
}

//! Host-side checks, before any namespace exists.
//!
//! Everything that can be wrong with a request is found here, while paddock
//! is still an ordinary process: a bad request is refused with a precise
//! error and nothing is ever half-started. The checks are repeated in a
//! race-free form (`openat2` with `RESOLVE_NO_SYMLINKS` on the real objects)
//! by the setup sequence; this pass exists to give good errors.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use seccompiler::BpfProgram;

use crate::error::SandboxError;
use crate::seccomp;
use crate::spec::{AuditLevel, MountMode, MountSpec, SandboxSpec};

/// A path kept read-only inside a writable mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Protected {
    /// Host path (no symlinks on the way).
    pub source: PathBuf,
    /// Path inside the sandbox.
    pub target: PathBuf,
}

/// A validated request, ready for the setup sequence.
#[derive(Clone)]
pub(crate) struct Prepared {
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    pub path_dirs: Vec<PathBuf>,
    pub workdir: PathBuf,
    pub home: PathBuf,
    /// Sorted so that a parent is always attached before its children.
    pub mounts: Vec<MountSpec>,
    pub protected: Vec<Protected>,
    /// The sweep for protected names the sandbox creates in rw mounts.
    pub guard: std::sync::Arc<crate::guard::Guard>,
    pub tmp_size_mib: u64,
    pub hostname: String,
    pub proxy_port: Option<u16>,
    pub transparent: bool,
    pub pids_limit: Option<u64>,
    pub memory_limit_mib: Option<u64>,
    pub serve_execs: bool,
    pub cow_dir: Option<PathBuf>,
    pub seccomp: Vec<BpfProgram>,
    /// The observing filter (with a notification listener), when auditing.
    pub audit_filter: Option<Vec<(u16, u8, u8, u32)>>,
    /// The spec, for the audit observer's verdicts (explain.rs).
    pub model: SandboxSpec,
    /// The model's protected names, compiled once for those verdicts.
    pub names: std::sync::Arc<crate::guard::Names>,
    /// The spec's label, reduced to letters and digits.
    pub label: Option<String>,
    pub level: crate::spec::Level,
    /// Level `no-userns`: the private home and /tmp on the host.
    pub scratch: Option<(PathBuf, PathBuf)>,
    /// Login files to write in the private home: (path relative to the
    /// home, text).
    pub home_files: Vec<(PathBuf, String)>,
}

/// Sandbox paths no mount may cover: the sandbox builds them itself.
const RESERVED_TARGETS: &[&str] = &["/proc", "/dev", "/sys"];

/// True when `p` is absolute and has no `.`/`..` components.
fn is_normal_absolute(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// Walk `path` component by component without following symbolic links.
/// Returns the first symlink met, or `MountSourceMissing`.
pub(crate) fn check_no_symlinks(path: &Path, origin: &str) -> Result<(), SandboxError> {
    let mut cur = PathBuf::from("/");
    for comp in path.components().skip(1) {
        cur.push(comp);
        match std::fs::symlink_metadata(&cur) {
            Ok(md) if md.file_type().is_symlink() => {
                let points_to = std::fs::read_link(&cur).unwrap_or_default();
                return Err(SandboxError::MountSymlinkEscape {
                    path: path.to_path_buf(),
                    link: cur,
                    points_to,
                    origin: origin.to_string(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SandboxError::MountSourceMissing {
                    path: path.to_path_buf(),
                    origin: origin.to_string(),
                })
            }
            Err(e) => return Err(SandboxError::io(format!("inspecting {}", cur.display()), e)),
        }
    }
    Ok(())
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

/// Map a host path to the sandbox path it appears at, through the mounts.
/// The deepest (last attached) mount wins, as it does in the mount tree.
fn host_to_sandbox<'a>(mounts: &'a [MountSpec], host: &Path) -> Option<(PathBuf, &'a MountSpec)> {
    mounts.iter().rev().find_map(|m| {
        host.strip_prefix(&m.source)
            .ok()
            .map(|rest| (m.target.join(rest), m))
    })
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString, SandboxError> {
    CString::new(bytes)
        .map_err(|_| SandboxError::InvalidSpec(format!("{what} contains a NUL byte")))
}

/// What each isolation level cannot do, refused before anything starts
/// (fail closed: a mode the level cannot enforce is an error, never a
/// silently weaker mount). Returns the private home and /tmp of level
/// `no-userns`.
fn level_checks(
    spec: &SandboxSpec,
    mounts: &[MountSpec],
) -> Result<Option<(PathBuf, PathBuf)>, SandboxError> {
    use crate::spec::Level;
    let level = spec.level;
    let lacks = |what: String, fix: &str| SandboxError::NotAtLevel {
        level: level.as_str(),
        what,
        fix: fix.to_string(),
    };
    if level == Level::LandlockUnavailable {
        if let Some(m) = mounts.iter().find(|m| m.mode == MountMode::RwNoDelete) {
            return Err(lacks(
                format!(
                    "the rw-no-delete mount of {} ({}) cannot be enforced: it needs Landlock,                      which this host lacks",
                    m.source.display(),
                    m.origin
                ),
                "mount it rw or cow, or enable Landlock (see `paddock doctor`)",
            ));
        }
    }
    if level != Level::NoUserns {
        return Ok(None);
    }
    let fix = "run where user namespaces are allowed (see `paddock doctor`), or change the mount";
    if let Some((host, _)) = spec.hidden.first() {
        return Err(lacks(
            format!(
                "filesystem.deny hides {} inside a mount or a system folder, which needs a mount over it",
                host.display()
            ),
            fix,
        ));
    }
    for m in mounts {
        if m.source != m.target {
            return Err(lacks(
                format!(
                    "{} ({}) cannot be shown at {}: without a mount namespace paths stay where                      they are",
                    m.source.display(),
                    m.origin,
                    m.target.display()
                ),
                fix,
            ));
        }
        if m.mode == MountMode::Cow {
            return Err(lacks(
                format!(
                    "the cow mount of {} ({}) needs an overlay in a mount namespace",
                    m.source.display(),
                    m.origin
                ),
                "mount it ro or rw, or run where user namespaces are allowed",
            ));
        }
    }
    let Some(dir) = &spec.scratch_dir else {
        return Err(SandboxError::InvalidSpec(
            "level no-userns needs a scratch folder for the private home and /tmp".into(),
        ));
    };
    // Created by the sandbox's init when it starts, not by a check.
    Ok(Some((dir.join("home"), dir.join("tmp"))))
}

/// Validate `spec` against the host.
pub(crate) fn prepare(spec: &SandboxSpec) -> Result<Prepared, SandboxError> {
    if spec.argv.is_empty() && !spec.serve_execs {
        return Err(SandboxError::InvalidSpec(
            "no command given: write it after `--`, e.g. `paddock run -- ls`".into(),
        ));
    }
    for (what, p) in [("working directory", &spec.workdir), ("home", &spec.home)] {
        if !is_normal_absolute(p) {
            return Err(SandboxError::InvalidSpec(format!(
                "{what} {} must be an absolute path without `.` or `..`",
                p.display()
            )));
        }
    }
    // Login files: in the private home, at a plain path, not where a
    // mount from the host would take them (the host's folder would get
    // the file, or hide it).
    let mut home_files = Vec::new();
    for (path, text) in &spec.files {
        let rel = match path.strip_prefix(&spec.home) {
            Ok(r) if is_normal_absolute(path) && r.file_name().is_some() => r.to_path_buf(),
            _ => {
                return Err(SandboxError::InvalidSpec(format!(
                    "login file {} must be a plain path inside the home {}",
                    path.display(),
                    spec.home.display()
                )))
            }
        };
        if let Some(m) = spec.mounts.iter().find(|m| path.starts_with(&m.target)) {
            return Err(SandboxError::InvalidSpec(format!(
                "login file {} lies in the mount of {} ({}), where the sandbox would see the host's own file",
                path.display(),
                m.source.display(),
                m.origin
            )));
        }
        home_files.push((rel, text.clone()));
    }
    if spec.tmp_size_mib == 0 {
        return Err(SandboxError::InvalidSpec(
            "the /tmp size must be at least 1 MiB".into(),
        ));
    }

    // Mounts: absolute, normalised, not over what the sandbox builds itself,
    // no duplicates, sources free of symlinks.
    let mut mounts = spec.mounts.clone();
    mounts.sort_by_key(|m| depth(&m.target));
    for (i, m) in mounts.iter().enumerate() {
        if !is_normal_absolute(&m.source) {
            return Err(SandboxError::InvalidSpec(format!(
                "mount source {} ({}) must be an absolute path without `.` or `..`",
                m.source.display(),
                m.origin
            )));
        }
        let bad_target = |why: &str| SandboxError::MountTargetInvalid {
            target: m.target.clone(),
            origin: m.origin.clone(),
            why: why.to_string(),
        };
        if !is_normal_absolute(&m.target) {
            return Err(bad_target(
                "it must be an absolute path without `.` or `..`",
            ));
        }
        if m.target == Path::new("/") {
            return Err(bad_target("nothing can be mounted over the sandbox's root"));
        }
        if RESERVED_TARGETS.iter().any(|r| m.target.starts_with(r)) {
            return Err(bad_target(
                "/proc, /dev and /sys are built by the sandbox itself",
            ));
        }
        if mounts[..i].iter().any(|o| o.target == m.target) {
            return Err(bad_target("another mount already uses this target"));
        }
        check_no_symlinks(&m.source, &m.origin)?;
        // Landlock rights flow down the tree: inside a writable mount, a
        // rw-no-delete mount would inherit the right to delete.
        if m.mode == MountMode::RwNoDelete {
            if let Some(outer) = mounts[..i].iter().find(|o| {
                m.target.starts_with(&o.target) && matches!(o.mode, MountMode::Rw | MountMode::Cow)
            }) {
                return Err(bad_target(&format!(
                    "a rw-no-delete mount cannot be enforced inside the {} mount of {}; mount \
                     that one rw-no-delete (or ro) too",
                    outer.mode,
                    outer.source.display()
                )));
            }
        }
        if m.mode == MountMode::Cow && !std::fs::metadata(&m.source).is_ok_and(|md| md.is_dir()) {
            return Err(bad_target("a cow mount must be a folder"));
        }
        // A target nested in an earlier mount of a host folder must already
        // exist there: paddock never creates folders in the user's files,
        // and must not follow a symlink planted where the target should be.
        if let Some(parent) = mounts[..i]
            .iter()
            .rev()
            .find(|o| m.target.starts_with(&o.target))
        {
            let rest = m
                .target
                .strip_prefix(&parent.target)
                .unwrap_or(Path::new(""));
            let host = parent.source.join(rest);
            match check_no_symlinks(&host, &m.origin) {
                Ok(()) => {}
                Err(SandboxError::MountSourceMissing { .. }) => {
                    return Err(bad_target(&format!(
                        "it lies inside the mount of {} but {} does not exist there, and paddock \
                         does not create folders in your files",
                        parent.source.display(),
                        host.display()
                    )))
                }
                Err(SandboxError::MountSymlinkEscape { link, .. }) => {
                    return Err(bad_target(&format!(
                        "it lies inside the mount of {} and crosses the symbolic link {}",
                        parent.source.display(),
                        link.display()
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }

    let scratch = level_checks(spec, &mounts)?;

    // Persistent cow layers: one folder per cow mount, with a record of
    // what it overlays (read back by `paddock diff` and `apply`).
    if let Some(dir) = &spec.cow_dir {
        for m in mounts.iter().filter(|m| m.mode == MountMode::Cow) {
            let layer = dir.join(crate::spec::cow_key(&m.target));
            for sub in ["upper", "work"] {
                std::fs::create_dir_all(layer.join(sub)).map_err(|e| {
                    SandboxError::io(format!("creating {}", layer.join(sub).display()), e)
                })?;
            }
            let record = serde_json::json!({"source": m.source, "target": m.target});
            std::fs::write(layer.join("mount.json"), record.to_string())
                .map_err(|e| SandboxError::io(format!("writing {}", layer.display()), e))?;
        }
    }

    // Protected names inside every writable mount.
    let mut protected: Vec<Protected> = Vec::new();
    let push = |protected: &mut Vec<Protected>, source: PathBuf, target: PathBuf| {
        if !protected.iter().any(|p| p.target == target) {
            protected.push(Protected { source, target });
        }
    };
    let names = protected_names(spec, &mounts);
    let model_names = names.clone();
    let mut known = Vec::new();
    // Sessions only: a one-shot run sweeps after its one command, and
    // the teardown of an inotify instance's marks at exit (about 14 ms
    // here) would cost a run more than its sweeps save. A run keeps a
    // snapshot instead, so that its last sweep reads only what changed.
    let mut watch = if spec.serve_execs {
        crate::guard::Watch::new()
    } else {
        None
    };
    let mut snapshot = (!spec.serve_execs).then(crate::guard::Snapshot::new);
    for m in mounts.iter().filter(|m| m.mode.writable()) {
        // A mount that lies inside a protected name (the workspace is a
        // project's .vscode, say) is protected as a whole.
        if crate::guard::protected_prefix(&m.source, &names).is_some() {
            push(&mut protected, m.source.clone(), m.target.clone());
            continue;
        }
        // Every protected name that exists, at any depth; the folders of
        // a swept mount watched by the same walk, so that a sweep reads
        // only where entries appeared.
        let found = match (&mut watch, &mut snapshot, m.mode) {
            (Some(w), _, MountMode::Rw | MountMode::RwNoDelete) => w.scan(&m.source, &names),
            (None, Some(s), MountMode::Rw | MountMode::RwNoDelete) => s.scan(&m.source, &names),
            _ => crate::guard::scan(&m.source, &names),
        };
        if !found.complete {
            eprintln!(
                "paddock: warning[PROTECTED_SCAN_INCOMPLETE]: {} has more than {} folders; protected names below the first {} are not made read-only (the sweep still moves new ones aside)",
                m.source.display(),
                crate::guard::SCAN_BUDGET,
                crate::guard::SCAN_BUDGET
            );
        }
        if matches!(m.mode, MountMode::Rw | MountMode::RwNoDelete) {
            known.extend(found.found.iter().cloned());
        }
        for (host, _) in found.found {
            let name = host.file_name().map(PathBuf::from).unwrap_or_default();
            let Ok(md) = std::fs::symlink_metadata(&host) else {
                continue;
            };
            let resolved = if md.file_type().is_symlink() {
                // Protect what the link leads to, if the sandbox can see it;
                // if it points outside every mount it leads nowhere inside.
                match std::fs::canonicalize(&host) {
                    Ok(r) => r,
                    Err(_) => continue,
                }
            } else {
                host.clone()
            };
            if check_no_symlinks(&resolved, "protected path").is_err() {
                continue;
            }
            let Some((target, owner)) = host_to_sandbox(&mounts, &resolved) else {
                continue;
            };
            if !owner.mode.writable() {
                continue;
            }
            push(&mut protected, resolved.clone(), target);
            // A `.git` *file* (worktree, submodule) points at the real git
            // directory, which holds the hooks and config: protect it too.
            if md.is_file() && name.as_os_str() == ".git" {
                for gitdir in linked_git_dirs(&resolved) {
                    if check_no_symlinks(&gitdir, "protected path").is_err() {
                        continue;
                    }
                    if let Some((t, owner)) = host_to_sandbox(&mounts, &gitdir) {
                        if owner.mode.writable() {
                            push(&mut protected, gitdir, t);
                        }
                    }
                }
            }
        }
    }
    protected.sort_by_key(|p| depth(&p.target));
    // New protected names in rw mounts are swept for after every command.
    let mut guard = crate::guard::Guard::new(
        mounts
            .iter()
            .filter(|m| matches!(m.mode, MountMode::Rw | MountMode::RwNoDelete))
            .map(|m| m.source.clone())
            .collect(),
        names,
        known,
        watch,
    );
    if let Some(s) = snapshot {
        guard = guard.with_snapshot(s);
    }
    let guard = std::sync::Arc::new(guard);

    // The working directory must be something the sandbox can see.
    let visible = |p: &Path| {
        mounts.iter().any(|m| p.starts_with(&m.target))
            || match &scratch {
                Some((home, tmp)) => p.starts_with(home) || p.starts_with(tmp),
                None => p.starts_with("/tmp") || p.starts_with(&spec.home),
            }
    };
    if !visible(&spec.workdir) {
        return Err(SandboxError::WorkdirNotMounted(spec.workdir.clone()));
    }

    let argv = spec
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes(), "an argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut env = Vec::with_capacity(spec.env.len());
    let mut path_dirs = Vec::new();
    for (k, v) in &spec.env {
        if k.is_empty() || k.as_bytes().contains(&b'=') {
            return Err(SandboxError::InvalidSpec(format!(
                "environment variable name `{}` is empty or contains `=`",
                k.to_string_lossy()
            )));
        }
        if k == "PATH" {
            path_dirs = std::env::split_paths(v).collect();
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env.push(cstring(&kv, "an environment variable")?);
    }

    Ok(Prepared {
        argv,
        env,
        path_dirs,
        workdir: spec.workdir.clone(),
        home: spec.home.clone(),
        mounts,
        protected,
        guard,
        tmp_size_mib: spec.tmp_size_mib,
        hostname: spec.hostname.clone(),
        proxy_port: spec.proxy_port,
        transparent: spec.transparent
            && spec.proxy_port.is_some()
            && spec.level != crate::spec::Level::NoUserns,
        pids_limit: spec.pids_limit,
        memory_limit_mib: spec.memory_limit_mib,
        serve_execs: spec.serve_execs,
        cow_dir: spec.cow_dir.clone(),
        seccomp: seccomp::programs(spec.audit, spec.level)?,
        audit_filter: observer_wanted(spec).then(|| seccomp::audit_program(spec.audit)),
        level: spec.level,
        scratch,
        home_files,
        label: spec.label.as_ref().map(|l| {
            l.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(32)
                .collect()
        }),
        names: std::sync::Arc::new(crate::guard::Names::new(&model_names)),
        model: SandboxSpec {
            protected: model_names,
            ..spec.clone()
        },
    })
}

/// The git directories a `.git` file leads to: its `gitdir:` and, for a
/// linked worktree, the shared `commondir`.
/// The protected names of `spec`, plus the folder each writable mount's
/// repository names in `core.hooksPath` (it runs on commit like
/// .git/hooks does), as a path within its mount.
/// Whether commands get the observing filter: always, except that debug
/// builds let the isolation tests run an unaudited sandbox without one
/// (`PADDOCK_TEST_NO_OBSERVER`), so that a paddock inside it can install
/// its own (the kernel allows one listener per filter chain).
fn observer_wanted(spec: &SandboxSpec) -> bool {
    !(cfg!(debug_assertions)
        && spec.audit == AuditLevel::Off
        && std::env::var_os("PADDOCK_TEST_NO_OBSERVER").is_some())
}

pub(crate) fn protected_names(spec: &SandboxSpec, mounts: &[MountSpec]) -> Vec<PathBuf> {
    let mut names = spec.protected.clone();
    if spec.protected.is_empty() {
        return names;
    }
    for m in mounts.iter().filter(|m| m.mode.writable()) {
        for gitdir in
            std::iter::once(m.source.join(".git")).chain(linked_git_dirs(&m.source.join(".git")))
        {
            if let Some(rel) = hooks_path(&gitdir.join("config"))
                .map(|h| m.source.join(h))
                .and_then(|h| h.strip_prefix(&m.source).ok().map(Path::to_path_buf))
                .filter(|r| !r.as_os_str().is_empty() && !names.contains(r))
            {
                names.push(rel);
            }
        }
    }
    names
}

/// `core.hooksPath` from a git config file, normalised lexically and
/// relative to the worktree (absolute values stay absolute); `None` when
/// unset or when it climbs out with `..`.
fn hooks_path(config: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config).ok()?;
    let mut in_core = false;
    let mut found = None;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_core = l
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .eq_ignore_ascii_case("core");
            continue;
        }
        if !in_core {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            if k.trim().eq_ignore_ascii_case("hookspath") {
                let v = v.trim().trim_matches('"');
                found = Some(PathBuf::from(v));
            }
        }
    }
    let p = found?;
    if p.is_absolute() {
        return Some(crate::spec::normalize(&p));
    }
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => rel.push(n),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(rel)
}

fn linked_git_dirs(dot_git_file: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(text) = std::fs::read_to_string(dot_git_file) else {
        return out;
    };
    let Some(dir) = text.lines().find_map(|l| l.strip_prefix("gitdir:")) else {
        return out;
    };
    let base = dot_git_file.parent().unwrap_or(Path::new("/"));
    let Ok(gitdir) = std::fs::canonicalize(base.join(dir.trim())) else {
        return out;
    };
    if let Ok(common) = std::fs::read_to_string(gitdir.join("commondir")) {
        if let Ok(c) = std::fs::canonicalize(gitdir.join(common.trim())) {
            out.push(c);
        }
    }
    out.push(gitdir);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(mounts: Vec<MountSpec>, workdir: &Path) -> SandboxSpec {
        SandboxSpec {
            argv: vec!["true".into()],
            env: vec![("PATH".into(), "/usr/bin".into())],
            workdir: workdir.to_path_buf(),
            home: "/home/nobody-here".into(),
            mounts,
            protected: vec![".git".into()],
            hidden: vec![],
            files: vec![],
            unix_sockets: vec![],
            tmp_size_mib: 64,
            hostname: "paddock".into(),
            proxy_port: None,
            transparent: false,
            pids_limit: None,
            memory_limit_mib: None,
            serve_execs: false,
            cow_dir: None,
            audit: Default::default(),
            label: None,
            level: Default::default(),
            scratch_dir: None,
        }
    }

    fn m(source: &Path, target: &Path, mode: MountMode) -> MountSpec {
        MountSpec {
            source: source.to_path_buf(),
            target: target.to_path_buf(),
            mode,
            origin: "test".into(),
        }
    }

    #[test]
    fn mount_source_through_symlink_is_refused_naming_the_link() {
        let d = tempdir();
        std::fs::create_dir(d.join("real")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
        let src = d.join("link");
        let err = prepare(&spec_with(vec![m(&src, &src, MountMode::Rw)], &src))
            .err()
            .expect("must be refused");
        match err {
            SandboxError::MountSymlinkEscape {
                link, points_to, ..
            } => {
                assert_eq!(link, d.join("link"));
                assert_eq!(points_to, d.join("real"));
            }
            other => panic!("wrong error: {other}"),
        }
    }

    #[test]
    fn parents_are_attached_before_children() {
        let d = tempdir();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        let p = prepare(&spec_with(
            vec![
                m(&d.join("a/b"), &d.join("a/b"), MountMode::Ro),
                m(&d.join("a"), &d.join("a"), MountMode::Rw),
            ],
            &d.join("a"),
        ))
        .unwrap();
        assert_eq!(p.mounts[0].target, d.join("a"));
        assert_eq!(p.mounts[1].target, d.join("a/b"));
    }

    #[test]
    fn nested_target_missing_in_host_folder_is_refused() {
        let d = tempdir();
        std::fs::create_dir_all(d.join("ws")).unwrap();
        std::fs::create_dir_all(d.join("other")).unwrap();
        let err = prepare(&spec_with(
            vec![
                m(&d.join("ws"), &d.join("ws"), MountMode::Rw),
                m(&d.join("other"), &d.join("ws/new"), MountMode::Ro),
            ],
            &d.join("ws"),
        ))
        .err()
        .unwrap();
        assert_eq!(err.reason_code(), "MOUNT_TARGET_INVALID");
        assert!(!d.join("ws/new").exists(), "nothing was created");
    }

    #[test]
    fn reserved_targets_and_relative_paths_are_refused() {
        let d = tempdir();
        for target in ["/proc/x", "/dev", "/"] {
            let err = prepare(&spec_with(
                vec![m(&d, Path::new(target), MountMode::Ro)],
                &d,
            ))
            .err()
            .unwrap();
            assert_eq!(err.reason_code(), "MOUNT_TARGET_INVALID", "{target}");
        }
        let err = prepare(&spec_with(vec![m(Path::new("rel"), &d, MountMode::Ro)], &d))
            .err()
            .unwrap();
        assert_eq!(err.reason_code(), "INVALID_REQUEST");
    }

    #[test]
    fn git_file_protects_the_gitdir_it_points_to() {
        let d = tempdir();
        std::fs::create_dir_all(d.join("ws/wt")).unwrap();
        std::fs::create_dir_all(d.join("ws/main/.git/worktrees/wt")).unwrap();
        std::fs::write(d.join("ws/main/.git/worktrees/wt/commondir"), "../..\n").unwrap();
        std::fs::write(d.join("ws/wt/.git"), "gitdir: ../main/.git/worktrees/wt\n").unwrap();
        let p = prepare(&spec_with(
            vec![
                m(&d.join("ws/wt"), &d.join("ws/wt"), MountMode::Rw),
                m(&d.join("ws/main"), &d.join("ws/main"), MountMode::Rw),
            ],
            &d.join("ws/wt"),
        ))
        .unwrap();
        let targets: Vec<_> = p.protected.iter().map(|p| p.target.clone()).collect();
        assert!(targets.contains(&d.join("ws/wt/.git")), "{targets:?}");
        assert!(targets.contains(&d.join("ws/main/.git")), "{targets:?}");
        assert!(
            targets.contains(&d.join("ws/main/.git/worktrees/wt")),
            "{targets:?}"
        );
    }

    fn tempdir() -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let base = std::fs::canonicalize(std::env::temp_dir()).unwrap();
        let d = base.join(format!(
            "paddock-prepare-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

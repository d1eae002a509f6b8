//! From policy, flags and host facts to the plain [`SandboxSpec`].
//!
//! This is the single place where "what the user asked for" becomes "what
//! the sandbox builds": the workspace mount, extra mounts, tool folders on
//! PATH, protected names and the scrubbed environment.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use paddock_policy::{Mode, Policy, WorkspaceMode};
use paddock_sandbox::{MountMode, MountSpec, SandboxSpec, DEFAULT_PROTECTED};

use crate::error::CliError;

/// What paddock knows about the invoking user's situation.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// The current directory (as the kernel reports it: no symlinks).
    pub cwd: PathBuf,
    /// The user's home directory.
    pub home: PathBuf,
    /// The full host environment.
    pub env: Vec<(OsString, OsString)>,
}

impl HostFacts {
    /// Read the facts of this process.
    pub fn current() -> Result<Self, CliError> {
        let cwd = std::env::current_dir().map_err(|e| {
            CliError::new(
                "CWD_UNAVAILABLE",
                format!("cannot read the current directory: {e}"),
                "cd into an existing folder",
            )
        })?;
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .unwrap_or_else(|| PathBuf::from("/nonexistent-home"));
        Ok(HostFacts {
            cwd,
            home: normalize(&home),
            env: std::env::vars_os().collect(),
        })
    }

    fn var(&self, name: &str) -> Option<&OsStr> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }
}

/// The command-line part of a run request (the flags layer).
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// `--mount HOST[:PATH][:MODE]`, as typed.
    pub mounts: Vec<String>,
    /// `--workdir`.
    pub workdir: Option<PathBuf>,
    /// `--env NAME[=VALUE]`.
    pub env: Vec<String>,
    /// `--unprotect NAME`.
    pub unprotect: Vec<PathBuf>,
    /// `--tmp-size MiB`.
    pub tmp_size_mib: Option<u64>,
    /// The command.
    pub argv: Vec<OsString>,
}

/// Variables passed from the host by default. Everything else, API keys
/// and tokens included, stays outside unless named with `--env`.
pub const ENV_ALLOWLIST: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "TZ",
    "NO_COLOR",
    "COLUMNS",
    "LINES",
];

/// Lexically normalise an absolute path (`.` dropped, `..` applied). Safe
/// here because every mount source is later refused if it crosses a
/// symbolic link, so the lexical and the real path agree.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

fn expand(p: &Path, host: &HostFacts) -> PathBuf {
    let p = if let Ok(rest) = p.strip_prefix("~") {
        host.home.join(rest)
    } else {
        host.cwd.join(p)
    };
    normalize(&p)
}

fn to_mode(m: Mode) -> MountMode {
    match m {
        Mode::Ro => MountMode::Ro,
        Mode::Rw => MountMode::Rw,
        Mode::RwNoDelete => MountMode::RwNoDelete,
        Mode::Cow => MountMode::Cow,
    }
}

/// Parse `HOST[:PATH][:MODE]`.
pub fn parse_mount_flag(s: &str, host: &HostFacts) -> Result<MountSpec, CliError> {
    let bad = |why: String| {
        CliError::new(
            "MOUNT_FLAG_INVALID",
            format!("--mount {s}: {why}"),
            "write --mount HOST[:PATH][:MODE], e.g. --mount ~/data:/data:ro (modes: ro, rw, \
             rw-no-delete, cow)",
        )
    };
    let mut parts: Vec<&str> = s.split(':').collect();
    let mut mode = MountMode::Ro;
    if parts.len() > 1 {
        if let Ok(m) = parts[parts.len() - 1].parse::<MountMode>() {
            mode = m;
            parts.pop();
        }
    }
    let (src, target) = match parts.as_slice() {
        [src] => (*src, None),
        [src, ""] => (*src, None),
        [src, target] => (*src, Some(*target)),
        _ => {
            let last = parts.last().copied().unwrap_or("");
            return Err(bad(format!(
                "`{last}` is not a mount mode, and a path may not contain `:` here"
            )));
        }
    };
    if src.is_empty() {
        return Err(bad("the host path is empty".into()));
    }
    let source = expand(Path::new(src), host);
    let target = match target {
        Some(t) if !t.starts_with('/') => {
            return Err(bad(format!("the target `{t}` must be an absolute path")))
        }
        Some(t) => normalize(Path::new(t)),
        None => source.clone(),
    };
    Ok(MountSpec {
        source,
        target,
        mode,
        origin: format!("--mount {s}"),
    })
}

/// Tool folders on PATH that live under home, and what each needs beside
/// it, shown read-only so installed tools keep working. Nothing else of
/// home is visible.
pub fn tool_mounts(host: &HostFacts, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: PathBuf| {
        if p.is_dir() && !out.iter().any(|o| p.starts_with(o)) {
            out.retain(|o| !o.starts_with(&p));
            out.push(p);
        }
    };
    let path = host.var("PATH").map(std::env::split_paths);
    for dir in path.into_iter().flatten() {
        if !dir.is_absolute() {
            continue;
        }
        let Ok(dir) = std::fs::canonicalize(&dir) else {
            continue;
        };
        let Ok(rel) = dir.strip_prefix(&host.home) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue; // home itself on PATH: never mount all of home
        }
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().as_bytes().to_vec());
        match first.as_deref() {
            // rustup: the proxies in ~/.cargo/bin need the toolchains.
            Some(b".cargo") => {
                add(dir.clone());
                let rustup = host
                    .var("RUSTUP_HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| host.home.join(".rustup"));
                add(rustup);
            }
            // pyenv: shims dispatch into ~/.pyenv/versions.
            Some(b".pyenv") => add(host.home.join(".pyenv")),
            // nvm: a node install prefix holds bin/ and lib/node_modules.
            Some(b".nvm") if dir.ends_with("bin") => {
                add(dir.parent().map(Path::to_path_buf).unwrap_or(dir.clone()))
            }
            _ => add(dir.clone()),
        }
    }
    for e in extra {
        add(expand(e, host));
    }
    out
}

/// Compile the request into a spec.
pub fn compile(
    policy: &Policy,
    flags: &RunFlags,
    host: &HostFacts,
) -> Result<SandboxSpec, CliError> {
    if !policy.exec.enabled {
        return Err(CliError::new(
            "EXEC_DISABLED_BY_POLICY",
            "running commands is disabled by the policy ([exec] enabled = false)",
            "ask the policy's owner, or use a policy that enables [exec]",
        ));
    }
    let mut mounts: Vec<MountSpec> = Vec::new();
    let mut push = |m: MountSpec| {
        mounts.retain(|o| o.target != m.target);
        mounts.push(m);
    };
    for t in tool_mounts(host, &policy.filesystem.tools) {
        push(MountSpec {
            source: t.clone(),
            target: t,
            mode: MountMode::Ro,
            origin: "tool folder on PATH".into(),
        });
    }
    let flag_mounts = flags
        .mounts
        .iter()
        .map(|s| parse_mount_flag(s, host))
        .collect::<Result<Vec<_>, _>>()?;
    if let WorkspaceMode::Mode(mode) = policy.filesystem.workspace {
        let explicit = flag_mounts.iter().any(|m| m.target == host.cwd);
        if !explicit && (host.home.starts_with(&host.cwd)) {
            return Err(CliError::new(
                "WORKSPACE_IS_HOME",
                format!(
                    "the current directory {} contains your whole home folder; paddock will not \
                     show it all to a sandbox by default",
                    host.cwd.display()
                ),
                "cd into a project folder, or say exactly what to show with --mount \
                 (e.g. --mount ~/project:rw --workdir ~/project)",
            ));
        }
        push(MountSpec {
            source: host.cwd.clone(),
            target: host.cwd.clone(),
            mode: to_mode(mode),
            origin: "the current directory".into(),
        });
    }
    for m in &policy.filesystem.mounts {
        let source = expand(&m.path, host);
        push(MountSpec {
            target: m
                .target
                .as_deref()
                .map(normalize)
                .unwrap_or_else(|| source.clone()),
            source,
            mode: to_mode(m.mode),
            origin: "policy [[filesystem.mount]]".into(),
        });
    }
    for m in flag_mounts {
        push(m);
    }

    let mut protected: Vec<PathBuf> = DEFAULT_PROTECTED.iter().map(PathBuf::from).collect();
    protected.extend(policy.filesystem.protect.iter().cloned());
    protected.retain(|p| !policy.filesystem.unprotect.contains(p) && !flags.unprotect.contains(p));

    let mut env: Vec<(OsString, OsString)> = host
        .env
        .iter()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            ENV_ALLOWLIST.contains(&k.as_ref()) || k.starts_with("LC_")
        })
        .cloned()
        .collect();
    fn set(env: &mut Vec<(OsString, OsString)>, k: OsString, v: OsString) {
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    }
    set(&mut env, "TMPDIR".into(), "/tmp".into());
    set(&mut env, "PADDOCK_SANDBOX".into(), "1".into());
    for e in policy.process.env.iter().chain(&flags.env) {
        match e.split_once('=') {
            Some((k, v)) => set(&mut env, k.into(), v.into()),
            None => {
                if let Some(v) = host.var(e) {
                    set(&mut env, e.into(), v.to_os_string());
                }
            }
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        set(
            &mut env,
            "PATH".into(),
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin".into(),
        );
    }

    let workdir = match &flags.workdir {
        Some(w) => expand(w, host),
        None => host.cwd.clone(),
    };
    Ok(SandboxSpec {
        argv: flags.argv.clone(),
        env,
        workdir,
        home: host.home.clone(),
        mounts,
        protected,
        tmp_size_mib: flags.tmp_size_mib.unwrap_or(policy.process.tmp_size_mib),
        hostname: "paddock".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostFacts {
        HostFacts {
            cwd: "/work/proj".into(),
            home: "/home/u".into(),
            env: vec![
                ("PATH".into(), "/usr/bin".into()),
                ("ANTHROPIC_API_KEY".into(), "sk-secret".into()),
                ("LC_ALL".into(), "C".into()),
                ("FOO".into(), "bar".into()),
            ],
        }
    }

    #[test]
    fn mount_flag_forms() {
        let h = host();
        let m = parse_mount_flag("data", &h).unwrap();
        assert_eq!(
            (m.source.as_path(), m.target.as_path(), m.mode),
            (
                Path::new("/work/proj/data"),
                Path::new("/work/proj/data"),
                MountMode::Ro
            )
        );
        let m = parse_mount_flag("~/d:/data:rw-no-delete", &h).unwrap();
        assert_eq!(
            (m.source.as_path(), m.target.as_path(), m.mode),
            (
                Path::new("/home/u/d"),
                Path::new("/data"),
                MountMode::RwNoDelete
            )
        );
        let m = parse_mount_flag("/x:cow", &h).unwrap();
        assert_eq!(
            (m.target.as_path(), m.mode),
            (Path::new("/x"), MountMode::Cow)
        );
        assert!(parse_mount_flag("/x:/y:bogus", &h).is_err());
        assert!(parse_mount_flag("/x:rel", &h).is_err());
        assert!(parse_mount_flag(":ro", &h).is_err());
    }

    #[test]
    fn environment_is_scrubbed_to_the_allowlist() {
        let flags = RunFlags {
            argv: vec!["true".into()],
            env: vec!["FOO".into(), "X=1".into()],
            ..RunFlags::default()
        };
        let spec = compile(&Policy::default(), &flags, &host()).unwrap();
        let names: Vec<_> = spec
            .env
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.contains(&"ANTHROPIC_API_KEY".to_string()),
            "{names:?}"
        );
        for n in ["PATH", "LC_ALL", "FOO", "X", "TMPDIR"] {
            assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
        }
    }

    #[test]
    fn whole_home_is_never_the_default_workspace() {
        let mut h = host();
        h.cwd = "/home/u".into();
        let flags = RunFlags {
            argv: vec!["true".into()],
            ..RunFlags::default()
        };
        let e = compile(&Policy::default(), &flags, &h).unwrap_err();
        assert_eq!(e.code, "WORKSPACE_IS_HOME");
        h.cwd = "/".into();
        assert_eq!(
            compile(&Policy::default(), &flags, &h).unwrap_err().code,
            "WORKSPACE_IS_HOME"
        );
    }

    #[test]
    fn unprotect_lifts_only_what_is_named() {
        let flags = RunFlags {
            argv: vec!["true".into()],
            unprotect: vec![".git".into()],
            ..RunFlags::default()
        };
        let spec = compile(&Policy::default(), &flags, &host()).unwrap();
        assert!(!spec.protected.contains(&PathBuf::from(".git")));
        assert!(spec.protected.contains(&PathBuf::from(".paddock")));
    }
}

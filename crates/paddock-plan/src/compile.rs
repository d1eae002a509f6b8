//! From policy, flags and host facts to the plain [`SandboxSpec`].
//!
//! This is the single place where "what the user asked for" becomes "what
//! the sandbox builds": the workspace mount, extra mounts, tool folders on
//! PATH, protected names and the scrubbed environment.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use paddock_policy::{Effective, ExecMode, MountEntry, PolicyFile, WorkspaceMode};
use paddock_sandbox::{MountMode, MountSpec, SandboxSpec, DEFAULT_PROTECTED};

use crate::deny::DenyList;
use crate::error::CliError;
pub use crate::host::HostFacts;
use paddock_reasons::Reason;

/// The protected names of `eff`: the built-in list, the policy's
/// additions, minus what it lifts.
pub fn protected_names(eff: &Effective) -> Vec<PathBuf> {
    let mut protected: Vec<PathBuf> = DEFAULT_PROTECTED.iter().map(PathBuf::from).collect();
    protected.extend(eff.protect.iter().map(|p| PathBuf::from(&p.value)));
    protected.retain(|p| !eff.unprotect.iter().any(|u| Path::new(&u.value) == p));
    protected
}

/// The command-line part of a run request. `mounts`, `env`, `unprotect`
/// and `tmp_size_mib` form the flags layer of the policy
/// ([`flags_layer`]); `workdir` and `argv` are not policy.
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// `--mount HOST[:PATH][:MODE]`, as typed.
    pub mounts: Vec<String>,
    /// `--workdir`.
    pub workdir: Option<PathBuf>,
    /// `--env NAME[=VALUE]`.
    pub env: Vec<String>,
    /// `--unprotect NAME`.
    pub unprotect: Vec<String>,
    /// `--tmp-size MiB`.
    pub tmp_size_mib: Option<u64>,
    /// The command.
    pub argv: Vec<OsString>,
}

/// The flags layer: the command-line options expressed as a policy file.
pub fn flags_layer(flags: &RunFlags) -> Result<PolicyFile, CliError> {
    let mut f = PolicyFile {
        version: paddock_policy::VERSION,
        ..PolicyFile::default()
    };
    let mounts = flags
        .mounts
        .iter()
        .map(|s| parse_mount_flag(s))
        .collect::<Result<Vec<_>, _>>()?;
    if !mounts.is_empty() || !flags.unprotect.is_empty() {
        let fs = f.filesystem.get_or_insert_with(Default::default);
        if !mounts.is_empty() {
            fs.mount = Some(mounts);
        }
        if !flags.unprotect.is_empty() {
            fs.unprotect = Some(flags.unprotect.clone());
        }
    }
    if !flags.env.is_empty() || flags.tmp_size_mib.is_some() {
        let p = f.process.get_or_insert_with(Default::default);
        if !flags.env.is_empty() {
            p.env = Some(flags.env.clone());
        }
        if let Some(t) = flags.tmp_size_mib {
            p.limits.get_or_insert_with(Default::default).tmp_mib = Some(t);
        }
    }
    Ok(f)
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
    // The POSIX and glibc locale categories, and nothing else that merely
    // starts with LC_ (an `LC_SECRET_TOKEN` is not a locale).
    "LC_ALL",
    "LC_CTYPE",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_COLLATE",
    "LC_MONETARY",
    "LC_MESSAGES",
    "LC_PAPER",
    "LC_NAME",
    "LC_ADDRESS",
    "LC_TELEPHONE",
    "LC_MEASUREMENT",
    "LC_IDENTIFICATION",
];

pub use paddock_sandbox::spec::normalize;

fn expand(p: &Path, host: &HostFacts) -> PathBuf {
    let p = if let Ok(rest) = p.strip_prefix("~") {
        host.home.join(rest)
    } else {
        host.cwd.join(p)
    };
    normalize(&p)
}

/// Parse `HOST[:PATH][:MODE]` into a policy mount entry.
pub fn parse_mount_flag(s: &str) -> Result<MountEntry, CliError> {
    let bad = |why: String| {
        CliError::new(
            Reason::MOUNT_FLAG_INVALID.code(),
            format!("--mount {s}: {why}"),
            "write --mount HOST[:PATH][:MODE], e.g. --mount ~/data:/data:ro (modes: ro, rw, \
             rw-no-delete, cow)",
        )
    };
    let mut parts: Vec<&str> = s.split(':').collect();
    let mut mode = paddock_policy::MountMode::Ro;
    if parts.len() > 1 {
        let last = parts[parts.len() - 1];
        let parsed = match last {
            "ro" => Some(paddock_policy::MountMode::Ro),
            "rw" => Some(paddock_policy::MountMode::Rw),
            "rw-no-delete" => Some(paddock_policy::MountMode::RwNoDelete),
            "cow" => Some(paddock_policy::MountMode::Cow),
            _ => None,
        };
        if let Some(m) = parsed {
            mode = m;
            parts.pop();
        }
    }
    let (src, target) = match parts.as_slice() {
        [src] | [src, ""] => (*src, None),
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
    if let Some(t) = target {
        if !t.starts_with('/') {
            return Err(bad(format!("the target `{t}` must be an absolute path")));
        }
        let n = normalize(Path::new(t));
        if n == Path::new("/") || ["/proc", "/dev", "/sys"].iter().any(|r| n.starts_with(r)) {
            return Err(CliError::new(
                Reason::MOUNT_TARGET_INVALID.code(),
                format!("--mount {s}: nothing can be mounted on `/`, /proc, /dev or /sys: the sandbox builds them itself"),
                "choose another target, e.g. under /mnt",
            ));
        }
    }
    Ok(MountEntry {
        path: src.to_string(),
        target: target.map(str::to_string),
        mode,
    })
}

/// Tool folders on PATH that live under home, and what each needs beside
/// it, shown read-only so installed tools keep working. Nothing else of
/// home is visible.
pub fn tool_mounts(host: &HostFacts, extra: &[String]) -> Vec<PathBuf> {
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
        add(expand(Path::new(e), host));
    }
    out
}

/// A mount list's adder for sockets: a socket outside every mount is shown
/// at its own path.
fn push_socket(mounts: &mut Vec<MountSpec>) -> impl FnMut(&Path) -> PathBuf + '_ {
    move |host_path: &Path| {
        let inside = mounts
            .iter()
            .filter(|m| host_path.starts_with(&m.source))
            .max_by_key(|m| m.source.components().count());
        if let Some(m) = inside {
            let rest = host_path.strip_prefix(&m.source).unwrap_or(Path::new(""));
            return m.target.join(rest);
        }
        mounts.push(MountSpec {
            source: host_path.to_path_buf(),
            target: host_path.to_path_buf(),
            mode: MountMode::Ro,
            origin: "filesystem.sockets".into(),
        });
        host_path.to_path_buf()
    }
}

/// `filesystem.sockets`: each must be a socket now (where it really is,
/// links resolved), outside every denied path; the sandbox paths the
/// observer lets commands connect to.
fn socket_grants(
    eff: &Effective,
    host: &HostFacts,
    deny: &DenyList<'_>,
    add: &mut dyn FnMut(&Path) -> PathBuf,
) -> Result<Vec<PathBuf>, CliError> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    for s in &eff.sockets {
        let written = expand(Path::new(&s.value), host);
        let real = std::fs::canonicalize(&written).unwrap_or_else(|_| written.clone());
        let is_socket = std::fs::metadata(&real).is_ok_and(|m| m.file_type().is_socket());
        if !is_socket {
            return Err(CliError::new(
                Reason::FS_SOCKET_MISSING.code(),
                format!(
                    "filesystem.sockets `{}` ({}) is not a unix socket on this host",
                    s.value,
                    s.origin.describe()
                ),
                "start the program that listens there first (for an ssh-agent, check \
                 $SSH_AUTH_SOCK), or remove the entry",
            ));
        }
        if let Some(d) = deny.covering(&real) {
            return Err(CliError::new(
                Reason::FS_DENIED_BY_POLICY.code(),
                format!(
                    "filesystem.sockets `{}` lies under `{}`, which filesystem.deny ({}) never shows",
                    s.value,
                    d.value,
                    d.origin.describe()
                ),
                "remove the socket entry, or ask the owner of the deny rule",
            ));
        }
        out.push(add(&real));
    }
    Ok(out)
}

/// Compile the effective policy and the run's own flags into a spec.
///
/// The spec is built for `level` from the start: at `no-userns` the private
/// home and /tmp live in `scratch` on the host, and the egress CA bundle is
/// shown at its own path (nothing can be mounted over the system's).
pub(crate) fn compile(
    eff: &Effective,
    flags: &RunFlags,
    host: &HostFacts,
    egress: Option<&crate::egress::Egress>,
    level: paddock_sandbox::Level,
    scratch: Option<PathBuf>,
) -> Result<SandboxSpec, CliError> {
    if eff.exec.value == ExecMode::Disabled {
        let (code, who) = if eff.exec_disabled_by_admin {
            (Reason::EXEC_DISABLED_BY_ADMIN.code(), "the administrator")
        } else {
            (Reason::EXEC_DISABLED_BY_POLICY.code(), "the policy")
        };
        return Err(CliError::new(
            code,
            format!(
                "running commands is disabled by {who} ({})",
                eff.exec.origin.describe()
            ),
            "every other paddock command keeps working; ask the policy's owner to enable exec",
        ));
    }
    let deny = DenyList::new(
        eff.fs_deny
            .iter()
            .map(|d| (d, normalize(&expand(Path::new(&d.value), host))))
            .collect(),
    );
    let mut mounts: Vec<MountSpec> = Vec::new();
    let mut push = |m: MountSpec| {
        mounts.retain(|o| o.target != m.target);
        mounts.push(m);
    };
    let tools: Vec<String> = eff.tools.iter().map(|t| t.value.clone()).collect();
    for t in tool_mounts(host, &tools) {
        if deny.covering(&t).is_some() {
            continue; // a denied tool folder is simply not shown
        }
        push(MountSpec {
            source: t.clone(),
            target: t,
            mode: MountMode::Ro,
            origin: "tool folder on PATH".into(),
        });
    }
    let explicit_cwd = eff.mounts.iter().any(|m| {
        let source = expand(Path::new(&m.value.path), host);
        m.value
            .target
            .as_deref()
            .map(|t| normalize(Path::new(t)))
            .unwrap_or(source)
            == host.cwd
    });
    let ws = eff.workspace.value;
    if ws != WorkspaceMode::None && !explicit_cwd {
        if host.home.starts_with(&host.cwd) {
            return Err(CliError::new(
                Reason::WORKSPACE_IS_HOME.code(),
                format!(
                    "the current directory {} contains your whole home folder; paddock will not \
                     show it all to a sandbox by default",
                    host.cwd.display()
                ),
                "cd into a project folder, or say exactly what to show with --mount \
                 (e.g. --mount ~/project:rw --workdir ~/project)",
            ));
        }
        let mode = match ws {
            WorkspaceMode::Ro => MountMode::Ro,
            WorkspaceMode::Cow => MountMode::Cow,
            WorkspaceMode::RwNoDelete => MountMode::RwNoDelete,
            _ => MountMode::Rw,
        };
        push(MountSpec {
            source: host.cwd.clone(),
            target: host.cwd.clone(),
            mode,
            origin: format!(
                "the current directory, filesystem.workspace from {}",
                eff.workspace.origin.describe()
            ),
        });
    }
    for m in &eff.mounts {
        let source = expand(Path::new(&m.value.path), host);
        let origin = if m.origin.layer == paddock_policy::Layer::Flags && m.origin.line.is_none() {
            format!("--mount {}", m.value.path)
        } else {
            m.origin.describe()
        };
        push(MountSpec {
            target: m
                .value
                .target
                .as_deref()
                .map(|t| normalize(Path::new(t)))
                .unwrap_or_else(|| source.clone()),
            source,
            mode: m.value.mode,
            origin,
        });
    }
    for m in &mounts {
        if let Some(d) = deny.covering(&m.source) {
            return Err(CliError::new(
                Reason::FS_DENIED_BY_POLICY.code(),
                format!(
                    "{} ({}) lies under `{}`, which filesystem.deny ({}) never shows",
                    m.source.display(),
                    m.origin,
                    d.value,
                    d.origin.describe()
                ),
                "remove that mount, or ask the owner of the deny rule",
            ));
        }
    }

    // paddock's own files (the CA bundle) are not the user's: no deny rule
    // applies to them.
    if let Some(g) = egress {
        for (source, target) in g.mounts(level) {
            mounts.retain(|o| o.target != target);
            mounts.push(MountSpec {
                source,
                target,
                mode: MountMode::Ro,
                origin: "paddock's session CA bundle".into(),
            });
        }
    }

    let unix_sockets = socket_grants(eff, host, &deny, &mut push_socket(&mut mounts))?;
    // A second name of a denied file would show it: refused (hard links
    // stay on one filesystem, so only those the sandbox shows count).
    let shown: Vec<PathBuf> = mounts
        .iter()
        .map(|m| m.source.clone())
        .chain(
            paddock_sandbox::spec::SYSTEM_DIRS
                .iter()
                .map(|d| Path::new("/").join(d)),
        )
        .collect();
    deny.refuse_hard_links(&shown)?;
    let protected = protected_names(eff);

    let mut env: Vec<(OsString, OsString)> = host
        .env
        .iter()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            ENV_ALLOWLIST.contains(&k.as_ref())
        })
        .cloned()
        .collect();
    fn set(env: &mut Vec<(OsString, OsString)>, k: OsString, v: OsString) {
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    }
    set(&mut env, "TMPDIR".into(), "/tmp".into());
    set(&mut env, "PADDOCK_SANDBOX".into(), "1".into());
    set(&mut env, "PADDOCK_POLICY_HASH".into(), eff.hash().into());
    for e in &eff.env {
        match e.value.split_once('=') {
            Some((k, v)) => set(&mut env, k.into(), v.into()),
            None => {
                if let Some(v) = host.var(&e.value) {
                    set(&mut env, e.value.clone().into(), v.to_os_string());
                }
            }
        }
    }
    if let Some(g) = egress {
        for (k, v) in g.environment(level) {
            set(&mut env, k.into(), v.into());
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
    if let Some(Err(why)) = egress.map(|g| &g.transparent) {
        if level.namespaces() {
            eprintln!(
                "paddock: warning[{}]: no transparent path: {why}; programs that ignore the proxy \
                 variables have no network\n  fix: make /dev/net/tun usable (`sudo modprobe tun`; \
                 most systems give it mode 0666: `sudo chmod 0666 /dev/net/tun`)",
                Reason::NET_TRANSPARENT_UNAVAILABLE.code()
            );
        }
    }
    // A login file's masked copy goes into the private home; where a
    // mount shows the folder from the host, it cannot.
    let files: Vec<(PathBuf, String)> = egress.map(|g| g.files().to_vec()).unwrap_or_default();
    for (p, _) in &files {
        if let Some(m) = mounts.iter().find(|m| p.starts_with(&m.target)) {
            return Err(CliError::new(
                Reason::NET_CREDENTIAL_FILE_SHOWN.code(),
                format!(
                    "the login file {} lies in {} ({}), shown from the host: the sandbox would see the real login",
                    p.display(),
                    m.target.display(),
                    m.origin
                ),
                "mount the folder's other contents instead (its subfolders), or leave it out",
            ));
        }
    }
    // Nor may a mount show a file a secret is read from, under any path,
    // nor a system folder (shown read-only at its own path). Each place is
    // resolved once.
    let host_files = egress.map(|g| g.host_files()).unwrap_or_default();
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or(p.to_path_buf());
    let sources: Vec<(&MountSpec, PathBuf)> = if host_files.is_empty() {
        Vec::new()
    } else {
        mounts.iter().map(|m| (m, real(&m.source))).collect()
    };
    let system: Vec<(PathBuf, PathBuf)> = if host_files.is_empty() {
        Vec::new()
    } else {
        paddock_sandbox::spec::SYSTEM_DIRS
            .iter()
            .map(|d| {
                let at = Path::new("/").join(d);
                let r = real(&at);
                (at, r)
            })
            .collect()
    };
    for f in host_files {
        if let Some((m, source)) = sources.iter().find(|(_, source)| f.starts_with(source)) {
            return Err(CliError::new(
                Reason::NET_CREDENTIAL_FILE_SHOWN.code(),
                format!(
                    "{} ({}) shows {} (at {}), which holds a brokered secret: the sandbox would read the real one",
                    m.source.display(),
                    m.origin,
                    f.display(),
                    m.target.join(f.strip_prefix(source).unwrap_or(f)).display()
                ),
                "mount a folder that does not hold the login, or keep the login elsewhere",
            ));
        }
        for (at, real) in &system {
            if f.starts_with(real) || f.starts_with(at) {
                return Err(CliError::new(
                    Reason::NET_CREDENTIAL_FILE_SHOWN.code(),
                    format!(
                        "{} holds a brokered secret and lies in {}, a system folder every sandbox sees read-only: the sandbox would read the real one",
                        f.display(),
                        at.display()
                    ),
                    "keep the login in your home folder itself, not through a link into a system folder",
                ));
            }
        }
    }
    Ok(SandboxSpec {
        files,
        argv: flags.argv.clone(),
        env,
        workdir,
        home: host.home.clone(),
        hidden: deny.inside(&mounts),
        unix_sockets,
        mounts,
        protected,
        tmp_size_mib: eff.tmp_mib.value,
        hostname: "paddock".into(),
        proxy_port: egress.map(|g| g.port),
        transparent: egress.is_some_and(|g| g.transparent.is_ok()),
        pids_limit: eff.pids.value,
        memory_limit_mib: eff.memory_mib.value,
        serve_execs: false,
        cow_dir: None,
        audit: eff.audit_level.value,
        label: None,
        level,
        scratch_dir: if level.namespaces() { None } else { scratch },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_policy::{merge, Layer, ParsedLayer};
    use paddock_sandbox::Level;

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

    fn eff_for(flags: &RunFlags) -> Effective {
        let l = ParsedLayer::from_values(Layer::Flags, "command line", flags_layer(flags).unwrap())
            .unwrap();
        merge(&[l]).unwrap()
    }

    #[test]
    fn the_spec_is_built_for_the_level_it_is_given() {
        let flags = RunFlags {
            argv: vec!["true".into()],
            ..RunFlags::default()
        };
        let eff = eff_for(&flags);
        let full = compile(&eff, &flags, &host(), None, Level::Full, Some("/s".into())).unwrap();
        assert_eq!(full.level, Level::Full);
        assert_eq!(full.scratch_dir, None);
        let bare = compile(
            &eff,
            &flags,
            &host(),
            None,
            Level::NoUserns,
            Some("/s".into()),
        )
        .unwrap();
        assert_eq!(bare.level, Level::NoUserns);
        assert_eq!(bare.scratch_dir.as_deref(), Some(Path::new("/s")));
        // Everything else is the same request.
        assert_eq!(full.mounts.len(), bare.mounts.len());
        assert_eq!(full.argv, bare.argv);
    }

    #[test]
    fn mount_flag_forms() {
        let m = parse_mount_flag("data").unwrap();
        assert_eq!(
            (m.path.as_str(), m.target, m.mode),
            ("data", None, paddock_policy::MountMode::Ro)
        );
        let m = parse_mount_flag("~/d:/data:rw-no-delete").unwrap();
        assert_eq!(
            (m.path.as_str(), m.target.as_deref(), m.mode),
            ("~/d", Some("/data"), paddock_policy::MountMode::RwNoDelete)
        );
        let m = parse_mount_flag("/x:cow").unwrap();
        assert_eq!((m.target, m.mode), (None, paddock_policy::MountMode::Cow));
        assert!(parse_mount_flag("/x:/y:bogus").is_err());
        assert!(parse_mount_flag("/x:rel").is_err());
        assert!(parse_mount_flag(":ro").is_err());
    }

    #[test]
    fn environment_is_scrubbed_to_the_allowlist() {
        let flags = RunFlags {
            argv: vec!["true".into()],
            env: vec!["FOO".into(), "X=1".into()],
            ..RunFlags::default()
        };
        let spec = compile(&eff_for(&flags), &flags, &host(), None, Level::Full, None).unwrap();
        let names: Vec<_> = spec
            .env
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.contains(&"ANTHROPIC_API_KEY".to_string()),
            "{names:?}"
        );
        for n in [
            "PATH",
            "LC_ALL",
            "FOO",
            "X",
            "TMPDIR",
            "PADDOCK_POLICY_HASH",
        ] {
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
        let e = compile(&eff_for(&flags), &flags, &h, None, Level::Full, None).unwrap_err();
        assert_eq!(e.code, "WORKSPACE_IS_HOME");
        h.cwd = "/".into();
        assert_eq!(
            compile(&eff_for(&flags), &flags, &h, None, Level::Full, None)
                .unwrap_err()
                .code,
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
        let spec = compile(&eff_for(&flags), &flags, &host(), None, Level::Full, None).unwrap();
        assert!(!spec.protected.contains(&PathBuf::from(".git")));
        assert!(spec.protected.contains(&PathBuf::from(".paddock")));
    }
}

//! Where policy layers live, and loading them.
//!
//! | layer | file |
//! |---|---|
//! | user | `$XDG_CONFIG_HOME/paddock/policy.toml` (default `~/.config/...`) |
//! | project | `.paddock/policy.toml` in the workspace (the current directory) |
//! | flags | `--policy FILE`, then the command-line flags |
//! | admin | `/etc/paddock/policy.toml`, then `/etc/paddock/policy.d/*.toml` in name order |

use std::path::{Path, PathBuf};

use paddock_policy::{Layer, ParsedLayer, PolicyFile};

use crate::error::CliError;
use crate::host::HostFacts;
use paddock_reasons::Reason;

/// The administrator's folder. Debug builds (the test suite) may point it
/// elsewhere with `PADDOCK_TEST_ADMIN_DIR`; release builds cannot, so a user
/// cannot step around the admin policy.
pub fn admin_dir() -> PathBuf {
    #[cfg(debug_assertions)]
    if let Some(d) = std::env::var_os("PADDOCK_TEST_ADMIN_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from("/etc/paddock")
}

/// Every file that may hold a layer, lowest precedence first (`--policy`
/// and flags excluded), whether or not it exists.
pub fn candidates(host: &HostFacts) -> Vec<(Layer, PathBuf)> {
    let mut out = vec![
        (
            Layer::User,
            crate::places::config_dir(&host.home).join("policy.toml"),
        ),
        (Layer::Project, host.cwd.join(".paddock/policy.toml")),
    ];
    let admin = admin_dir();
    out.push((Layer::Admin, admin.join("policy.toml")));
    if let Ok(rd) = std::fs::read_dir(admin.join("policy.d")) {
        let mut extra: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        extra.sort();
        out.extend(extra.into_iter().map(|p| (Layer::Admin, p)));
    }
    out
}

/// Parse one file as `layer`. A missing file is `Ok(None)`.
pub fn load_file(layer: Layer, path: &Path) -> Result<Option<ParsedLayer>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::new(
                Reason::POLICY_UNREADABLE.code(),
                format!("cannot read the {layer} policy {}: {e}", path.display()),
                "fix the file's permissions, or remove it",
            ))
        }
    };
    ParsedLayer::parse(layer, &path.display().to_string(), &text)
        .map(Some)
        .map_err(CliError::policy)
}

/// Every layer for a run in `host.cwd`: the files found, then `--policy`,
/// then the flags.
pub fn load_all(
    host: &HostFacts,
    explicit: Option<&Path>,
    flags: Option<PolicyFile>,
) -> Result<Vec<ParsedLayer>, CliError> {
    let mut layers = Vec::new();
    let mut errors = Vec::new();
    let mut push = |r: Result<Option<ParsedLayer>, CliError>| match r {
        Ok(Some(l)) => layers.push(l),
        Ok(None) => {}
        Err(e) => errors.push(e),
    };
    for (layer, path) in candidates(host) {
        push(load_file(layer, &path));
    }
    if let Some(p) = explicit {
        match load_file(Layer::Flags, p) {
            Ok(None) => push(Err(CliError::new(
                Reason::POLICY_UNREADABLE.code(),
                format!("--policy {}: no such file", p.display()),
                "check the path; `paddock policy init` prints a starter file",
            ))),
            other => push(other),
        }
    }
    if let Some(f) = flags {
        push(
            ParsedLayer::from_values(Layer::Flags, "command line", f)
                .map(Some)
                .map_err(CliError::policy),
        );
    }
    if let Some(first) = errors.into_iter().reduce(|mut a, b| {
        a.message = format!("{}\n{}", a, b);
        a.raw = true;
        a
    }) {
        return Err(first);
    }
    Ok(layers)
}

/// Load and merge everything for a run.
pub fn effective(
    host: &HostFacts,
    explicit: Option<&Path>,
    flags: Option<PolicyFile>,
) -> Result<paddock_policy::Effective, CliError> {
    let layers = load_all(host, explicit, flags)?;
    paddock_policy::merge(&layers).map_err(CliError::policy)
}

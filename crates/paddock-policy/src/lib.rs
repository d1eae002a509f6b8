//! paddock's policy file: one versioned TOML file that says what a sandbox
//! may do.
//!
//! This crate is pure: it parses and validates text into a [`Policy`] and
//! reports mistakes with file, line and column, what is wrong and what to
//! write instead. It never touches the system; the `paddock` binary compiles
//! a [`Policy`] (with the command line and the host's facts) into the plain
//! spec the sandbox executes.
//!
//! ```
//! let p = paddock_policy::parse(
//!     "version = 1\n[filesystem]\nworkspace = \"cow\"\n",
//!     std::path::Path::new("policy.toml"),
//! ).unwrap();
//! assert_eq!(p.filesystem.workspace, paddock_policy::WorkspaceMode::Mode(paddock_policy::Mode::Cow));
//! ```

#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The only policy format version this build understands.
pub const VERSION: u32 = 1;

/// A mount mode, as written in policy files and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Read-only.
    Ro,
    /// Read-write.
    Rw,
    /// Create and modify, never delete or rename away.
    RwNoDelete,
    /// Copy-on-write overlay; the real folder is untouched.
    Cow,
}

/// How the current directory (the workspace) is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum WorkspaceMode {
    /// Mounted at its own path with this mode.
    Mode(Mode),
    /// Not mounted at all (`"none"`).
    None(NoneWord),
}

/// The word `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoneWord {
    /// `none`.
    None,
}

impl Default for WorkspaceMode {
    fn default() -> Self {
        WorkspaceMode::Mode(Mode::Rw)
    }
}

/// One extra mount.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// Host path; `~` is the user's home, relative paths are relative to the
    /// workspace.
    pub path: PathBuf,
    /// Path inside the sandbox (default: the same as `path`).
    pub target: Option<PathBuf>,
    /// Access mode (default `ro`).
    #[serde(default = "default_mount_mode")]
    pub mode: Mode,
}

fn default_mount_mode() -> Mode {
    Mode::Ro
}

/// `[filesystem]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    /// Mode of the workspace (the current directory).
    #[serde(default)]
    pub workspace: WorkspaceMode,
    /// Extra mounts.
    #[serde(default, rename = "mount")]
    pub mounts: Vec<Mount>,
    /// Extra read-only tool folders (added to what is found on PATH).
    #[serde(default)]
    pub tools: Vec<PathBuf>,
    /// Extra names kept read-only inside writable mounts.
    #[serde(default)]
    pub protect: Vec<PathBuf>,
    /// Built-in protected names to lift, explicitly (e.g. `.git` to let the
    /// agent commit).
    #[serde(default)]
    pub unprotect: Vec<PathBuf>,
}

/// Network modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Loopback only.
    #[default]
    None,
}

/// `[network]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Only `none` (loopback only) is available in this version.
    #[serde(default)]
    pub mode: NetworkMode,
}

/// `[process]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Extra environment: `NAME` passes the host's value, `NAME=VALUE` sets it.
    #[serde(default)]
    pub env: Vec<String>,
    /// Size cap of the private /tmp and home, in MiB.
    #[serde(default = "default_tmp")]
    pub tmp_size_mib: u64,
}

fn default_tmp() -> u64 {
    1024
}

impl Default for Process {
    fn default() -> Self {
        Process {
            env: Vec::new(),
            tmp_size_mib: default_tmp(),
        }
    }
}

/// `[exec]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// Whether commands may run at all.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl Default for Exec {
    fn default() -> Self {
        Exec { enabled: true }
    }
}

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Format version; must be 1.
    pub version: u32,
    /// Files and folders.
    #[serde(default)]
    pub filesystem: Filesystem,
    /// Network.
    #[serde(default)]
    pub network: Network,
    /// Process environment and limits.
    #[serde(default)]
    pub process: Process,
    /// Command execution.
    #[serde(default)]
    pub exec: Exec,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            version: VERSION,
            filesystem: Filesystem::default(),
            network: Network::default(),
            process: Process::default(),
            exec: Exec::default(),
        }
    }
}

/// A policy error, pointing at the place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub help: String,
}

impl PolicyError {
    /// Stable reason code.
    pub fn reason_code(&self) -> &'static str {
        "POLICY_INVALID"
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        write!(f, ": {}", self.message)?;
        if !self.help.is_empty() {
            write!(f, "\n  help: {}", self.help)?;
        }
        Ok(())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn help_for(message: &str) -> String {
    if message.contains("unknown field") {
        "remove the key or fix its spelling; the keys each section accepts are listed in \
         docs/policy.md"
            .into()
    } else if message.contains("unknown variant") || message.contains("did not match any variant") {
        "mount modes are ro, rw, rw-no-delete, cow (and `none` for the workspace); network.mode \
         is none"
            .into()
    } else if message.contains("missing field `version`") {
        "start the file with `version = 1`".into()
    } else if message.contains("invalid type") {
        "check the value's type against docs/policy.md (strings in quotes, lists in [ ])".into()
    } else {
        "see docs/policy.md, or run `paddock policy init` for a commented starter file".into()
    }
}

/// Parse and validate a policy file's text. `file` is used in errors only.
pub fn parse(text: &str, file: &Path) -> Result<Policy, PolicyError> {
    let err = |span: Option<std::ops::Range<usize>>, message: String, help: String| {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_col(text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        PolicyError {
            file: file.to_path_buf(),
            line,
            column,
            message,
            help,
        }
    };
    let policy: Policy = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        err(e.span(), msg.clone(), help_for(&msg))
    })?;
    // Errors found after parsing point at the key they concern.
    let find = |needle: &str| text.find(needle).map(|s| s..s + needle.len());
    if policy.version != VERSION {
        return Err(err(
            find("version"),
            format!(
                "policy version {} is not supported by this paddock",
                policy.version
            ),
            format!("write `version = {VERSION}`"),
        ));
    }
    if policy.process.tmp_size_mib == 0 {
        return Err(err(
            find("tmp_size_mib"),
            "tmp_size_mib must be at least 1".into(),
            "write a size in MiB, e.g. `tmp_size_mib = 1024`".into(),
        ));
    }
    for (i, m) in policy.filesystem.mounts.iter().enumerate() {
        if m.path.as_os_str().is_empty() {
            return Err(err(
                find("path"),
                format!("mount #{} has an empty path", i + 1),
                "write the host folder to show, e.g. `path = \"~/datasets\"`".into(),
            ));
        }
        if let Some(t) = &m.target {
            if !t.is_absolute() {
                return Err(err(
                    find(&t.display().to_string()),
                    format!("mount target `{}` is not an absolute path", t.display()),
                    "targets are paths inside the sandbox and start with `/`".into(),
                ));
            }
        }
    }
    for e in &policy.process.env {
        let name = e.split('=').next().unwrap_or("");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err(
                find(e),
                format!("`{e}` is not a valid environment entry"),
                "write `NAME` to pass the host's value or `NAME=value` to set one".into(),
            ));
        }
    }
    Ok(policy)
}

/// Read and parse a policy file.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        message: format!("cannot read the policy file: {e}"),
        help: "check the path; `paddock policy init` writes a starter file".into(),
    })?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(text: &str) -> PolicyError {
        parse(text, Path::new("p.toml")).expect_err("must be refused")
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let p = parse("version = 1\n", Path::new("p.toml")).unwrap();
        assert_eq!(p, Policy::default());
    }

    #[test]
    fn unknown_key_points_at_its_line_and_column() {
        let e = bad("version = 1\n[filesystem]\nworkspace = \"rw\"\nmounts = []\n");
        assert_eq!((e.line, e.column), (Some(4), Some(1)), "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
        assert!(e.to_string().starts_with("p.toml:4:1: "), "{e}");
    }

    #[test]
    fn wrong_type_and_bad_mode_are_precise() {
        let e = bad("version = 1\n[process]\ntmp_size_mib = \"big\"\n");
        assert_eq!(e.line, Some(3), "{e}");
        let e = bad("version = 1\n[[filesystem.mount]]\npath = \"/x\"\nmode = \"readwrite\"\n");
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.help.contains("rw-no-delete"), "{e}");
    }

    #[test]
    fn malformed_toml_and_missing_version() {
        let e = bad("version = 1\n[filesystem\n");
        assert_eq!(e.line, Some(2), "{e}");
        let e = bad("[filesystem]\n");
        assert!(e.help.contains("version = 1"), "{e}");
        let e = bad("version = 2\n");
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn relative_target_and_bad_env_are_refused() {
        let e = bad("version = 1\n[[filesystem.mount]]\npath = \"/x\"\ntarget = \"rel\"\n");
        assert!(e.message.contains("absolute"), "{e}");
        let e = bad("version = 1\n[process]\nenv = [\"BAD NAME\"]\n");
        assert_eq!(e.line, Some(3), "{e}");
    }
}

//! What paddock knows about the invoking user's situation.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use paddock_sandbox::spec::normalize;

use crate::error::CliError;
use paddock_reasons::Reason;

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
                Reason::CWD_UNAVAILABLE.code(),
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

    pub(crate) fn var(&self, name: &str) -> Option<&OsStr> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }
}

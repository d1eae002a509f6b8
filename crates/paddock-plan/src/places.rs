//! Every place paddock reads or writes on the host, in one list, so that
//! `paddock info` can show them and `paddock uninstall` can take them away
//! without guessing.
//!
//! | place | default | written by |
//! |---|---|---|
//! | binary | where it was installed | install.sh, dpkg, cargo |
//! | installed files | `PREFIX/share/...` listed in `PREFIX/share/paddock/install-manifest` | install.sh |
//! | user config | `$XDG_CONFIG_HOME/paddock` (`~/.config/paddock`) | the user |
//! | admin config | `/etc/paddock` | the administrator (never removed) |
//! | state | `$PADDOCK_HOME`, else `$XDG_STATE_HOME/paddock` (`~/.local/state/paddock`) | sessions, runs, gc |
//! | cache | `$XDG_CACHE_HOME/paddock` (`~/.cache/paddock`) | the isolation probe |
//! | runtime | `$XDG_RUNTIME_DIR/paddock-run-PID`, else `/tmp/paddock-UID/...` | one run's egress CA, while it runs |
//! | runtime | `.../paddock-scratch-PID` | one run's private home and /tmp at isolation level `no-userns` |
//! | AppArmor | `/etc/apparmor.d/paddock` | the .deb, or install.sh when asked |

use paddock_reasons::Reason;
use std::path::{Path, PathBuf};

/// The user's configuration folder for paddock.
pub fn config_dir(home: &Path) -> PathBuf {
    xdg("XDG_CONFIG_HOME")
        .unwrap_or_else(|| home.join(".config"))
        .join("paddock")
}

/// The user's cache folder for paddock.
pub fn cache_dir(home: &Path) -> PathBuf {
    xdg("XDG_CACHE_HOME")
        .unwrap_or_else(|| home.join(".cache"))
        .join("paddock")
}

/// The folder under which each run's short-lived files go.
pub fn runtime_base() -> PathBuf {
    xdg_runtime().unwrap_or_else(own_runtime_base)
}

/// The runtime base paddock creates itself when there is no
/// `$XDG_RUNTIME_DIR` (which belongs to the session manager, not to us).
fn own_runtime_base() -> PathBuf {
    std::env::temp_dir().join(format!("paddock-{}", paddock_sys::getuid()))
}

/// The runtime base if paddock created it (and so may remove it when it
/// is empty).
pub fn runtime_base_if_own() -> Option<PathBuf> {
    xdg_runtime().is_none().then(own_runtime_base)
}

fn xdg_runtime() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
}

/// The kinds of per-run folders in the runtime base, each named
/// `PREFIX<pid of the paddock process>`.
pub const RUN_DIR_PREFIXES: [&str; 2] = [EGRESS_DIR, SCRATCH_DIR];
/// A run's egress files (session CA bundle).
pub const EGRESS_DIR: &str = "paddock-run-";
/// A run's private home and /tmp at isolation level `no-userns`.
pub const SCRATCH_DIR: &str = "paddock-scratch-";

/// This process's per-run folder of kind `prefix`.
pub fn run_dir(prefix: &str) -> PathBuf {
    runtime_base().join(format!("{prefix}{}", std::process::id()))
}

/// [`run_dir`], made safe to write secrets into: without
/// `$XDG_RUNTIME_DIR`, paddock's own base in the shared temporary folder is
/// created 0700 and must be a real folder (not a link) owned by this user
/// and closed to everyone else — another local user could have made it
/// first. The per-run folder is then created 0700 inside it.
pub fn run_dir_checked(prefix: &str) -> Result<PathBuf, crate::error::CliError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let base = runtime_base();
    if xdg_runtime().is_none() {
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&base);
        let unsafe_because = match std::fs::symlink_metadata(&base) {
            Err(e) => Some(format!("it cannot be read ({e})")),
            Ok(md) if md.file_type().is_symlink() => Some("it is a symbolic link".to_string()),
            Ok(md) if !md.is_dir() => Some("it is not a folder".to_string()),
            Ok(md) if md.uid() != paddock_sys::getuid() => {
                Some(format!("it belongs to uid {}, not to you", md.uid()))
            }
            Ok(md) if md.mode() & 0o077 != 0 => {
                Some(format!("others may use it (mode {:o})", md.mode() & 0o7777))
            }
            Ok(_) => None,
        };
        if let Some(why) = unsafe_because {
            return Err(crate::error::CliError::new(
                Reason::RUNTIME_DIR_UNSAFE.code(),
                format!(
                    "paddock's runtime folder {} is not safe for the run's secrets: {why}",
                    base.display()
                ),
                "remove it (another user may have made it) or set XDG_RUNTIME_DIR to a folder only you can use",
            ));
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| {
            crate::error::CliError::new(
                Reason::HOST_IO_ERROR.code(),
                format!("creating {}: {e}", dir.display()),
                "check that the folder is writable",
            )
        })?;
    Ok(dir)
}

/// The pid in a per-run folder's name, if it is one.
pub fn run_dir_pid(name: &str) -> Option<i32> {
    RUN_DIR_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p)?.parse().ok())
}

/// Where a package or install.sh puts the AppArmor profile's loaded copy.
pub const APPARMOR_PROFILE: &str = "/etc/apparmor.d/paddock";

fn xdg(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

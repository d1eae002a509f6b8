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
//! | AppArmor | `/etc/apparmor.d/paddock` | the .deb, or install.sh when asked |

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
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .unwrap_or_else(|| std::env::temp_dir().join(format!("paddock-{}", paddock_sys::getuid())))
}

/// Where a package or install.sh puts the AppArmor profile's loaded copy.
pub const APPARMOR_PROFILE: &str = "/etc/apparmor.d/paddock";

fn xdg(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

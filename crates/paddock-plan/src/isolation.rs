//! Choosing the isolation level: probe the host's kernel layers (cached per
//! boot), take the strongest level they give, and hold it against the
//! policy's `[isolation] minimum`. Below the minimum paddock refuses and
//! names the missing layer and its fix; it never falls back to running
//! unsandboxed (that is `--unsafe-no-sandbox`, explicit, loud, logged, and
//! refusable by the administrator). See docs/isolation-levels.md.

use std::path::{Path, PathBuf};

use paddock_policy::{Effective, IsolationLevel};
use paddock_sandbox::probe::Layers;
use paddock_sandbox::Level;

use crate::error::CliError;
use paddock_reasons::Reason;

/// The level chosen for one sandbox.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The level.
    pub level: Level,
    /// What the probe found.
    pub layers: Layers,
    /// Whether `layers` came from the cache.
    pub cached: bool,
}

/// Every sandbox level, strongest first.
const LEVELS: [Level; 3] = [Level::Full, Level::LandlockUnavailable, Level::NoUserns];

/// Does a sandbox at `level` satisfy the policy's `minimum`?
pub fn meets(level: Level, minimum: IsolationLevel) -> bool {
    level.strength() >= minimum.strength()
}

/// What makes a cached probe stale: another boot, user, user namespace or
/// seccomp state (a container), or another paddock binary.
fn cache_key() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let userns = std::fs::read_link("/proc/self/ns/user")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let seccomp: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("Seccomp") || l.starts_with("NoNewPrivs"))
        .collect();
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}:{}", m.ino(), m.mtime())
        })
        .unwrap_or_default();
    #[allow(unused_mut)]
    let mut key = format!(
        "{}|{}|{}|{}|{exe}",
        boot.trim(),
        paddock_sys::getuid(),
        userns,
        seccomp.join(",")
    );
    #[cfg(debug_assertions)]
    if std::env::var_os("PADDOCK_TEST_NO_LANDLOCK").is_some() {
        key.push_str("|test-no-landlock");
    }
    key
}

fn cache_file(home: &Path) -> PathBuf {
    crate::places::cache_dir(home).join("isolation.json")
}

/// The host's layers: from the cache when it is still valid, else probed
/// (one clone into namespaces) and cached. Must be called while the
/// process is single-threaded.
pub fn layers(home: &Path) -> (Layers, bool) {
    let key = cache_key();
    let file = cache_file(home);
    if let Ok(data) = std::fs::read(&file) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) {
            if v["key"] == key.as_str() {
                if let Ok(l) = serde_json::from_value::<Layers>(v["layers"].clone()) {
                    return (l, true);
                }
            }
        }
    }
    let l = paddock_sandbox::probe::detect_layers();
    let v = serde_json::json!({"key": key, "layers": l});
    if let Some(dir) = file.parent() {
        if std::fs::create_dir_all(dir).is_ok() {
            let tmp = dir.join(format!(".isolation.{}.tmp", std::process::id()));
            if std::fs::write(&tmp, v.to_string()).is_ok() {
                let _ = std::fs::rename(&tmp, &file);
            }
        }
    }
    (l, false)
}

/// Forget the cached probe (the host changed under it).
pub fn forget(home: &Path) {
    let _ = std::fs::remove_file(cache_file(home));
}

fn missing_text(layers: &Layers, level: Option<Level>) -> (String, String) {
    let m = layers.missing(level);
    let what = m
        .iter()
        .map(|(layer, found, _)| format!("{layer} ({found})"))
        .collect::<Vec<_>>()
        .join("; ");
    let fix = m
        .iter()
        .map(|(layer, _, fix)| format!("{layer}: {fix}"))
        .collect::<Vec<_>>()
        .join("; ");
    (what, fix)
}

/// Choose the level for a sandbox under `eff`.
pub fn choose(eff: &Effective, home: &Path) -> Result<Choice, CliError> {
    let (layers, cached) = layers(home);
    let min = eff.isolation_minimum.value;
    let Some(level) = layers.best() else {
        // (Never empty here: the weakest level lacks seccomp or Landlock's
        // TCP rules, or it would have been chosen.)
        let (what, fix) = missing_text(&layers, Some(Level::NoUserns));
        return Err(CliError::new(
            Reason::ISOLATION_UNAVAILABLE.code(),
            format!("no sandbox can be built on this host: missing {what}"),
            format!(
                "{fix}; `paddock doctor` shows every layer (paddock never runs a command \
                 unsandboxed unless told so with --unsafe-no-sandbox)"
            ),
        ));
    };
    if !meets(level, min) {
        let target = LEVELS.into_iter().find(|l| *l == min);
        let (what, fix) = missing_text(&layers, target);
        return Err(CliError::new(
            Reason::ISOLATION_BELOW_MINIMUM.code(),
            format!(
                "this host gives isolation level {} but the policy requires at least {min} ({}); \
                 missing: {what}",
                level.as_str(),
                eff.isolation_minimum.origin.describe()
            ),
            format!(
                "{fix}; or, if this host is acceptable, lower `[isolation] minimum` (see \
                 docs/isolation-levels.md)"
            ),
        ));
    }
    Ok(Choice {
        level,
        layers,
        cached,
    })
}

/// One line on stderr when the level is below `full`: what is lost, and
/// the fix. Never silent.
pub fn warn(c: &Choice) {
    if c.level == Level::Full {
        return;
    }
    let (what, fix) = missing_text(&c.layers, None);
    eprintln!(
        "paddock: warning[ISOLATION_DEGRADED]: isolation level {} (missing {what}); see \
         docs/isolation-levels.md for what this level does not block\n  fix: {fix}",
        c.level.as_str()
    );
}

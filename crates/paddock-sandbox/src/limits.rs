//! Resource limits that hold for the whole sandbox.
//!
//! The ladder, strongest available first:
//!
//! 1. cgroup v1 `pids` and `memory` controllers, when the caller may create
//!    groups there (root on a hybrid layout like this machine's): the
//!    sandbox's pid 1 is moved into fresh groups before it runs anything, so
//!    everything it starts is counted.
//! 2. rlimits, set in each command process before exec: `RLIMIT_NPROC`,
//!    which since Linux 5.14 counts per user *namespace*, so it caps the
//!    sandbox without touching the user's other processes — but the kernel
//!    exempts host root from it, hence step 1; and `RLIMIT_AS` per process.
//! 3. The private tmpfs folders are size-capped in every case.
//!
//! A delegated cgroup v2 subtree (systemd user sessions) is the better home
//! for these limits and is not used yet; `paddock doctor` says which apply.

use std::path::{Path, PathBuf};

/// Groups created for one sandbox; removed when dropped (after pid 1 is
/// gone and the groups are empty).
#[derive(Debug, Default)]
pub(crate) struct Cgroups {
    dirs: Vec<PathBuf>,
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for d in &self.dirs {
            // The kernel removes a group only once it is empty; the last
            // processes may still be exiting.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

const V1_ROOT: &str = "/sys/fs/cgroup";

fn v1_group(
    controller: &str,
    name: &str,
    settings: &[(&str, String)],
    pid: i32,
) -> Option<PathBuf> {
    let base = Path::new(V1_ROOT).join(controller);
    // Only a real v1 hierarchy of that controller.
    if !base.join("cgroup.procs").exists() {
        return None;
    }
    let dir = base.join(name);
    std::fs::create_dir(&dir).ok()?;
    for (file, value) in settings {
        if std::fs::write(dir.join(file), value).is_err() {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
    }
    if std::fs::write(dir.join("cgroup.procs"), pid.to_string()).is_err() {
        let _ = std::fs::remove_dir(&dir);
        return None;
    }
    Some(dir)
}

/// Remove empty `paddock-*` groups older than a minute: left by a paddock
/// that was killed before it could clean up. A live sandbox's group always
/// holds its pid 1, so the kernel refuses to remove it (EBUSY).
fn sweep_stale(controller: &str) {
    let Ok(rd) = std::fs::read_dir(Path::new(V1_ROOT).join(controller)) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with("paddock-") {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 60);
        if old {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// Put `pid` (the sandbox's pid 1, not yet running anything) into cgroup v1
/// groups enforcing the limits, where this process may. Returns what was
/// created and which limits it enforces.
pub(crate) fn cgroup_v1(
    pid: i32,
    label: Option<&str>,
    pids: Option<u64>,
    memory_mib: Option<u64>,
) -> (Cgroups, Vec<&'static str>) {
    let mut cg = Cgroups::default();
    let mut applied = Vec::new();
    // Unique even if an old group of a reused pid was left behind.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // The session's id in the name lets host tools attribute the group.
    let name = match label {
        Some(l) => format!("paddock-{l}-{pid}-{nanos:09}"),
        None => format!("paddock-{pid}-{nanos:09}"),
    };
    if let Some(n) = pids {
        sweep_stale("pids");
        if let Some(d) = v1_group("pids", &name, &[("pids.max", n.to_string())], pid) {
            cg.dirs.push(d);
            applied.push("pids (cgroup v1)");
        }
    }
    if let Some(m) = memory_mib {
        sweep_stale("memory");
        let bytes = m.saturating_mul(1 << 20).to_string();
        if let Some(d) = v1_group("memory", &name, &[("memory.limit_in_bytes", bytes)], pid) {
            cg.dirs.push(d);
            applied.push("memory (cgroup v1)");
        }
    }
    (cg, applied)
}

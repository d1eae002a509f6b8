//! The container's cgroups, made by the runtime through the cgroup
//! filesystem (the `cgroupfs` manager; `--systemd-cgroup` names the same
//! groups systemd would, made the same way: no unit is registered).
//!
//! Every hierarchy the runtime may write gets a group at the bundle's
//! `linux.cgroupsPath`, and the container's first process (then each
//! `exec`'s) is moved into it before it runs anything of the image's:
//! cgroup v1 `memory`, `pids`, `cpu`, `cpuacct`, `freezer` and the
//! `name=systemd` and v2 trees where they are mounted, with the bundle's
//! limits written in the v1 controllers and in v2 where it has them. A
//! limit no hierarchy here can hold (none mounted, none writable: rootless)
//! degrades, as under `paddock run`, and is said in the runtime's log; a
//! limit a controller refuses (a value out of range) refuses the
//! container. `delete` removes the groups.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// The v1 controllers a container joins, by the folder they are mounted at
/// under `/sys/fs/cgroup` on a hybrid or v1 layout.
const V1: [&str; 6] = ["memory", "pids", "cpu", "cpuacct", "freezer", "systemd"];

const ROOT: &str = "/sys/fs/cgroup";

/// `linux.resources`, the parts a runtime on cgroupfs can hold.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resources {
    pub memory: Option<Memory>,
    pub pids: Option<Pids>,
    pub cpu: Option<Cpu>,
    /// Enforced otherwise: every mount is `nodev`.
    pub devices: Vec<serde_json::Value>,
    pub block_io: Option<serde_json::Value>,
    pub hugepage_limits: Vec<serde_json::Value>,
    pub network: Option<serde_json::Value>,
    pub rdma: Option<serde_json::Value>,
    pub unified: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Memory {
    pub limit: Option<i64>,
    pub reservation: Option<i64>,
    pub swap: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Pids {
    pub limit: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Cpu {
    pub shares: Option<u64>,
    pub quota: Option<i64>,
    pub period: Option<u64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
}

/// One setting: the controller, the v1 file and the v2 file with their
/// values.
struct Setting {
    controller: &'static str,
    v1: (&'static str, String),
    v2: Option<(&'static str, String)>,
    what: String,
}

impl Resources {
    fn settings(&self) -> Vec<Setting> {
        let mut out = Vec::new();
        let limit = |v: i64| if v < 0 { "-1".into() } else { v.to_string() };
        let max = |v: i64| if v <= 0 { "max".into() } else { v.to_string() };
        if let Some(m) = &self.memory {
            if let Some(l) = m.limit {
                out.push(Setting {
                    controller: "memory",
                    v1: ("memory.limit_in_bytes", limit(l)),
                    v2: Some((
                        "memory.max",
                        if l < 0 { "max".into() } else { l.to_string() },
                    )),
                    what: format!("memory limit {l}"),
                });
            }
            if let Some(r) = m.reservation {
                out.push(Setting {
                    controller: "memory",
                    v1: ("memory.soft_limit_in_bytes", limit(r)),
                    v2: Some(("memory.low", if r < 0 { "0".into() } else { r.to_string() })),
                    what: format!("memory reservation {r}"),
                });
            }
        }
        if let Some(p) = &self.pids {
            out.push(Setting {
                controller: "pids",
                v1: ("pids.max", max(p.limit)),
                v2: Some(("pids.max", max(p.limit))),
                what: format!("pids limit {}", p.limit),
            });
        }
        if let Some(c) = &self.cpu {
            if let Some(s) = c.shares {
                out.push(Setting {
                    controller: "cpu",
                    v1: ("cpu.shares", s.to_string()),
                    // The kernel's (and runc's) mapping of shares to weight.
                    v2: Some((
                        "cpu.weight",
                        (1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142).to_string(),
                    )),
                    what: format!("cpu shares {s}"),
                });
            }
            if let Some(p) = c.period {
                out.push(Setting {
                    controller: "cpu",
                    v1: ("cpu.cfs_period_us", p.to_string()),
                    v2: None,
                    what: format!("cpu period {p}"),
                });
            }
            if let Some(q) = c.quota {
                let period = c.period.unwrap_or(100_000);
                out.push(Setting {
                    controller: "cpu",
                    v1: ("cpu.cfs_quota_us", q.to_string()),
                    v2: Some((
                        "cpu.max",
                        format!(
                            "{} {period}",
                            if q <= 0 { "max".into() } else { q.to_string() }
                        ),
                    )),
                    what: format!("cpu quota {q}"),
                });
            }
        }
        out
    }

    /// What is asked for and not held by this runtime at all.
    fn not_held(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self
            .cpu
            .as_ref()
            .is_some_and(|c| c.cpus.is_some() || c.mems.is_some())
        {
            out.push("cpuset (--cpuset-cpus, --cpuset-mems)");
        }
        if self.block_io.is_some() {
            out.push("blockIO");
        }
        if !self.hugepage_limits.is_empty() {
            out.push("hugepageLimits");
        }
        if self.network.is_some() {
            out.push("network classes");
        }
        if self.rdma.is_some() {
            out.push("rdma");
        }
        if !self.unified.is_empty() {
            out.push("unified");
        }
        out
    }
}

/// The relative path of the container's groups in every hierarchy, from
/// `linux.cgroupsPath`: an absolute path as it is; a relative one under
/// `paddock-oci`; with `--systemd-cgroup`, `slice:prefix:name` as the
/// slice's folders and `prefix-name.scope`. No `..`, no empty name.
pub fn relative_path(path: Option<&str>, id: &str, systemd: bool) -> Result<PathBuf, String> {
    let given = path.unwrap_or("");
    let rel = if systemd && given.matches(':').count() == 2 {
        let mut parts = given.splitn(3, ':');
        let (slice, prefix, name) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let slice = if slice.is_empty() {
            "system.slice"
        } else {
            slice
        };
        let Some(stem) = slice.strip_suffix(".slice") else {
            return Err(format!(
                "linux.cgroupsPath `{given}`: a systemd slice ends in `.slice`"
            ));
        };
        // `a-b.slice` lives in `a.slice/a-b.slice`.
        let mut p = PathBuf::new();
        let mut acc = String::new();
        for part in stem.split('-') {
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(part);
            p.push(format!("{acc}.slice"));
        }
        let unit = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        p.join(unit)
    } else if given.is_empty() {
        Path::new("paddock-oci").join(id)
    } else if let Some(abs) = given.strip_prefix('/') {
        PathBuf::from(abs)
    } else {
        Path::new("paddock-oci").join(given)
    };
    let ok = rel.components().count() > 0
        && rel.components().all(|c| match c {
            Component::Normal(n) => !n.is_empty(),
            _ => false,
        });
    if !ok {
        return Err(format!(
            "linux.cgroupsPath `{given}`: give a path of names below the hierarchy's root (no `..`)"
        ));
    }
    Ok(rel)
}

/// The hierarchies this runtime joins a container to: `(controller, root)`
/// with the controller `None` for a v2 tree.
fn hierarchies() -> Vec<(Option<&'static str>, PathBuf)> {
    let root = Path::new(ROOT);
    // A pure v2 layout: the root itself.
    if root.join("cgroup.controllers").exists() {
        return vec![(None, root.to_path_buf())];
    }
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for c in V1 {
        let dir = root.join(c);
        let Ok(real) = std::fs::canonicalize(&dir) else {
            continue;
        };
        // A real v1 hierarchy, once (`cpu` and `cpuacct` may be one).
        if real.join("cgroup.procs").exists() && !seen.contains(&real) {
            seen.push(real.clone());
            out.push((Some(c), real));
        }
    }
    let unified = root.join("unified");
    if unified.join("cgroup.controllers").exists() {
        out.push((None, unified));
    }
    out
}

/// Whether the v1 hierarchy at `root` holds controller `c` (a joined
/// mount, `cpu,cpuacct`, holds both).
fn holds(root: &Path, c: &str) -> bool {
    let name = root.file_name().map(|n| n.to_string_lossy().into_owned());
    name.is_some_and(|n| n.split(',').any(|p| p == c))
}

/// The container's groups, made; what could not be held, said.
#[derive(Debug, Default)]
pub struct Made {
    /// The container's groups, one per hierarchy: what its processes join.
    pub groups: Vec<PathBuf>,
    /// Each level this runtime made for them (the groups among them),
    /// removed by `delete`.
    pub made: Vec<PathBuf>,
    /// What degraded, for the runtime's log.
    pub degraded: Vec<String>,
}

/// Make the container's groups and set its limits. On an error, what was
/// made is removed.
pub fn make(rel: &Path, r: &Resources) -> Result<Made, String> {
    let mut m = Made {
        degraded: r
            .not_held()
            .into_iter()
            .map(|w| format!("{w}: not applied by this runtime"))
            .collect(),
        ..Made::default()
    };
    let mut held_by: Vec<(Option<&'static str>, PathBuf, PathBuf)> = Vec::new();
    for (c, root) in hierarchies() {
        // Each missing level, made and remembered (only those are removed).
        let mut level = root.clone();
        let mut ok = true;
        let last = rel.components().count();
        for (i, part) in rel.components().enumerate() {
            level.push(part);
            let mut made = std::fs::create_dir(&level);
            if i + 1 == last
                && matches!(&made, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists)
            {
                // The container's own group is new: one left empty by a
                // container gone before is removed; one in use (another
                // container's, a slice's) is not joined, nor its limits
                // changed.
                match std::fs::remove_dir(&level) {
                    Ok(()) => made = std::fs::create_dir(&level),
                    // Not this runtime's to change (rootless): as unwritable.
                    Err(e)
                        if e.raw_os_error() != Some(libc::EBUSY)
                            && e.raw_os_error() != Some(libc::ENOTEMPTY) =>
                    {
                        ok = false;
                        break;
                    }
                    Err(_) => {
                        remove(&m.made);
                        return Err(format!(
                        "linux.cgroupsPath: the group {} is in use: each container needs a group of its own",
                        level.display()
                    ));
                    }
                }
            }
            match made {
                Ok(()) => m.made.push(level.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            m.groups.push(level.clone());
            held_by.push((c, root, level));
        }
    }
    for s in r.settings() {
        let mut held = false;
        for (c, root, dir) in &held_by {
            let (file, value) = match c {
                Some(_) if !holds(root, s.controller) => continue,
                Some(_) => (s.v1.0, &s.v1.1),
                None => match &s.v2 {
                    Some((f, v)) if dir.join(f).exists() => (*f, v),
                    _ => continue,
                },
            };
            if let Err(e) = std::fs::write(dir.join(file), value) {
                remove(&m.made);
                return Err(format!(
                    "linux.resources: {} ({}): {e}",
                    s.what,
                    dir.join(file).display()
                ));
            }
            held = true;
        }
        if !held {
            m.degraded.push(format!(
                "{}: no {} cgroup this runtime may write (limits degrade as under `paddock run`; `paddock doctor` says which hold)",
                s.what, s.controller
            ));
        }
    }
    Ok(m)
}

/// Move process `pid` (`0`: the caller) into every group.
pub fn join(groups: &[PathBuf], pid: i32) -> Result<(), String> {
    for g in groups {
        std::fs::write(g.join("cgroup.procs"), pid.to_string())
            .map_err(|e| format!("joining the cgroup {}: {e}", g.display()))?;
    }
    Ok(())
}

/// Put `pid` (the container's daemon) in the container's CPU groups (`cpu`, `cpuacct`)
/// only: the work a container makes it do (its audit observer resolves
/// every path the container names) counts against the container's CPU
/// limit, not the node's. Not its memory or pids groups: a container at
/// its limit must not stop its own audit trail or proxy. Best effort.
pub fn join_cpu(groups: &[PathBuf], pid: i32) {
    for g in groups {
        let cpu = g
            .strip_prefix(ROOT)
            .ok()
            .and_then(|rel| rel.components().next())
            .and_then(|c| c.as_os_str().to_str())
            .is_some_and(|h| h.split(',').any(|c| c == "cpu" || c == "cpuacct"));
        if cpu {
            let _ = std::fs::write(g.join("cgroup.procs"), pid.to_string());
        }
    }
}

/// Remove what was made, deepest first. A group the kernel still holds a
/// process in is tried for a while (its last processes may be exiting); a
/// level above that another container uses stays.
pub fn remove(made: &[PathBuf]) {
    let mut dirs = made.to_vec();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let deepest = dirs.first().map(|d| d.components().count());
    for d in &dirs {
        let tries = if Some(d.components().count()) == deepest {
            100
        } else {
            1
        };
        for _ in 0..tries {
            if std::fs::remove_dir(d).is_ok() || !d.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_stay_below_the_hierarchy() {
        let p = |path: Option<&str>, systemd| relative_path(path, "c1", systemd);
        assert_eq!(
            p(Some("/libpod_parent/libpod-c1"), false).unwrap(),
            Path::new("libpod_parent/libpod-c1")
        );
        assert_eq!(p(None, false).unwrap(), Path::new("paddock-oci/c1"));
        assert_eq!(
            p(Some("mine"), false).unwrap(),
            Path::new("paddock-oci/mine")
        );
        assert_eq!(
            p(Some("machine-libpod.slice:libpod:c1"), true).unwrap(),
            Path::new("machine.slice/machine-libpod.slice/libpod-c1.scope")
        );
        for bad in [
            "/../../etc",
            "/a/../../b",
            "/",
            "a/./..",
            "machine.slice:x:../../y",
        ] {
            assert!(p(Some(bad), bad.contains(':')).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_map_to_both_versions_files() {
        let r: Resources = serde_json::from_str(
            r#"{"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":33554432,"swap":67108864},"cpu":{"quota":50000,"period":100000,"shares":1024},"pids":{"limit":30}}"#,
        )
        .unwrap();
        // Each setting as "v1file=value v2file=value".
        let s: Vec<String> = r
            .settings()
            .into_iter()
            .map(|s| {
                let v2 = s.v2.map(|(f, v)| format!(" {f}={v}")).unwrap_or_default();
                format!("{}={}{v2}", s.v1.0, s.v1.1)
            })
            .collect();
        for want in [
            "memory.limit_in_bytes=33554432 memory.max=33554432",
            "pids.max=30 pids.max=30",
            "cpu.cfs_quota_us=50000 cpu.max=50000 100000",
            "cpu.shares=1024 cpu.weight=39",
            "cpu.cfs_period_us=100000",
        ] {
            assert!(s.iter().any(|x| x == want), "{want}: {s:?}");
        }
        assert!(r.not_held().is_empty());
    }
}

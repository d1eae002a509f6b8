//! Where paddock keeps things on this machine, how big they are, and what
//! `paddock reset` and `paddock uninstall` take away.
//!
//! Removal is driven by the list in [`crate::places`] and by the manifest
//! install.sh writes; nothing is removed by pattern outside those places.
//! The state folder may be anywhere (`PADDOCK_HOME`), so only the entries
//! paddock creates in it are removed, and the folder itself only when that
//! leaves it empty. Sessions holding `cow` changes no one has applied are
//! named, and nothing is removed until the user says to discard them.

use std::path::{Path, PathBuf};

use paddock_session::{Liveness, Store};
use serde::Serialize;

use crate::error::CliError;
use crate::host::HostFacts;
use crate::places;

/// What `remove` takes away.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// State and cache.
    Reset,
    /// Everything of this account's paddock.
    Uninstall {
        /// Leave the user configuration.
        keep_config: bool,
    },
}

/// The manifest install.sh writes beside what it installed.
pub(crate) const MANIFEST: &str = "share/paddock/install-manifest";
pub(crate) const MANIFEST_HEADER: &str = "# paddock install manifest 1";

/// How the running binary got where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Origin {
    /// install.sh, with its manifest.
    InstallSh {
        /// Where the manifest is.
        manifest: PathBuf,
    },
    /// The Debian package.
    Dpkg,
    /// `cargo install`.
    Cargo,
    /// Copied by hand, or a build tree.
    Unknown,
}

/// The files install.sh recorded.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Where it is.
    pub path: PathBuf,
    /// The files it lists.
    pub files: Vec<PathBuf>,
    /// The folders it lists.
    pub dirs: Vec<PathBuf>,
}

impl Manifest {
    fn read(path: &Path) -> Option<Manifest> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        if lines.next()? != MANIFEST_HEADER {
            return None;
        }
        let mut m = Manifest {
            path: path.to_path_buf(),
            ..Manifest::default()
        };
        for l in lines {
            if let Some(f) = l.strip_prefix("file ") {
                m.files.push(PathBuf::from(f));
            } else if let Some(d) = l.strip_prefix("dir ") {
                m.dirs.push(PathBuf::from(d));
            }
        }
        Some(m)
    }

    /// The prefix the manifest describes (`PREFIX/share/paddock/..`).
    fn prefix(&self) -> Option<&Path> {
        self.path.parent()?.parent()?.parent()
    }

    /// Only files under the prefix, or the one AppArmor profile, are ever
    /// removed on a manifest's word.
    pub fn trusted(&self, p: &Path) -> bool {
        let clean = p.components().all(|c| {
            !matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::CurDir
            )
        });
        clean
            && p.is_absolute()
            && (self.prefix().is_some_and(|pre| p.starts_with(pre))
                || p == Path::new(places::APPARMOR_PROFILE))
    }
}

pub(crate) fn origin(exe: &Path) -> (Origin, Option<Manifest>) {
    if let Some(prefix) = exe.parent().and_then(Path::parent) {
        if let Some(m) = Manifest::read(&prefix.join(MANIFEST)) {
            if m.files.iter().any(|f| same_file(f, exe)) {
                let manifest = m.path.clone();
                return (Origin::InstallSh { manifest }, Some(m));
            }
        }
    }
    if let Ok(list) = std::fs::read_to_string("/var/lib/dpkg/info/paddock.list") {
        if list.lines().any(|l| same_file(Path::new(l), exe)) {
            return (Origin::Dpkg, None);
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if cargo_home.is_some_and(|c| exe.parent() == Some(&c.join("bin"))) {
        return (Origin::Cargo, None);
    }
    (Origin::Unknown, None)
}

pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    }
}

/// One place, as `paddock info` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Place {
    /// What it is.
    pub what: String,
    /// Where it is.
    pub path: PathBuf,
    /// Whether it exists now.
    pub exists: bool,
    /// Bytes of the files in it (apparent sizes).
    pub bytes: u64,
    /// Which command removes it, or why none does.
    pub removed_by: String,
}

pub(crate) fn place(what: &str, path: &Path, removed_by: &str) -> Place {
    let exists = std::fs::symlink_metadata(path).is_ok();
    Place {
        what: what.into(),
        path: path.to_path_buf(),
        exists,
        bytes: if exists { paddock_session::du(path) } else { 0 },
        removed_by: removed_by.into(),
    }
}

/// How the binary itself is removed, for its origin.
pub fn binary_note(o: &Origin) -> &'static str {
    match o {
        Origin::InstallSh { .. } => "paddock uninstall",
        Origin::Dpkg => "the package manager: sudo apt remove paddock",
        Origin::Cargo => "cargo uninstall paddock",
        Origin::Unknown => "not installed by install.sh, dpkg or cargo: delete it yourself",
    }
}

/// Runtime folders of runs whose process is gone (or, with `all`, every
/// one), in the runtime base.
pub fn runtime_dirs(all: bool) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(places::runtime_base()) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = places::run_dir_pid(&name)?;
            let alive = paddock_sys::process_start_time(pid).is_some();
            (all || !alive).then(|| e.path())
        })
        .collect();
    out.sort();
    out
}

/// A man page install.sh wrote (`.../man/man1/*.1`).
pub fn is_man_page(p: &Path) -> bool {
    p.parent().is_some_and(|d| d.ends_with("man/man1")) && p.extension().is_some_and(|e| e == "1")
}

/// Man pages, shown as one line: their count, bytes and folder.
pub fn man_summary<'a>(
    items: impl Iterator<Item = (&'a Path, u64)>,
) -> Option<(usize, u64, &'a Path)> {
    items
        .filter(|(p, _)| is_man_page(p))
        .fold(None, |acc, (p, b)| match acc {
            None => Some((1, b, p.parent().unwrap_or(Path::new("/")))),
            Some((n, t, d)) => Some((n + 1, t + b, d)),
        })
}

/// Every place, and the per-run folders the runtime place counts.
pub struct Footprint {
    /// How the binary got here.
    pub origin: Origin,
    /// Every place, with its size.
    pub places: Vec<Place>,
    /// Per-run folders in the runtime folder.
    pub run_dirs: Vec<PathBuf>,
}

/// Every place paddock keeps things for this user, measured.
pub fn all_places(host: &HostFacts) -> Footprint {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("paddock"));
    let (origin, manifest) = origin(&exe);
    let mut v = vec![place("binary", &exe, binary_note(&origin))];
    if let Some(m) = &manifest {
        for f in m.files.iter().filter(|f| !same_file(f, &exe)) {
            let what = if f.starts_with("/etc/apparmor.d") {
                "AppArmor profile (loaded)"
            } else if is_man_page(f) {
                "man page"
            } else if f.to_string_lossy().contains("complet")
                || f.to_string_lossy().contains("site-functions")
            {
                "shell completion"
            } else {
                "installed file"
            };
            v.push(place(what, f, "paddock uninstall"));
        }
    }
    v.push(place(
        "user config",
        &places::config_dir(&host.home),
        "paddock uninstall (unless --keep-config)",
    ));
    v.push(place(
        "admin config",
        &crate::policy_files::admin_dir(),
        "never: the administrator's",
    ));
    let store = Store::locate(&host.home);
    v.push(place(
        "state (sessions, runs)",
        store.root(),
        "paddock reset, paddock uninstall",
    ));
    v.push(place(
        "cache",
        &places::cache_dir(&host.home),
        "paddock reset, paddock uninstall",
    ));
    // Only paddock's own folders count: the runtime base may be the
    // session's $XDG_RUNTIME_DIR, full of other programs' files.
    let run_dirs = runtime_dirs(true);
    let base = places::runtime_base();
    v.push(Place {
        what: "runtime".into(),
        exists: base.exists(),
        bytes: run_dirs.iter().map(|d| paddock_session::du(d)).sum(),
        path: base,
        removed_by: "each run removes its own; leftovers: paddock reset".into(),
    });
    let aa = Path::new(places::APPARMOR_PROFILE);
    if aa.exists()
        && !manifest
            .as_ref()
            .is_some_and(|m| m.files.iter().any(|f| f == aa))
    {
        v.push(place(
            "AppArmor profile",
            aa,
            if origin == Origin::Dpkg {
                "the package manager"
            } else {
                "the administrator: sudo rm /etc/apparmor.d/paddock"
            },
        ));
    }
    Footprint {
        origin,
        places: v,
        run_dirs,
    }
}

/// One thing removed (or to be removed).
#[derive(Debug, Clone, Serialize)]
pub struct Removal {
    /// What.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
}

/// What `reset`/`uninstall` will do.
#[derive(Debug, Default, Serialize)]
pub struct Plan {
    /// Sessions and runs to stop first.
    pub stop: Vec<String>,
    /// Sessions whose `cow` changes no one applied.
    pub unapplied: Vec<String>,
    /// Paths to remove, in order.
    pub remove: Vec<Removal>,
    /// Paths left alone, with why.
    pub keep: Vec<(PathBuf, String)>,
    /// Commands the user must run for what paddock may not remove itself.
    pub then_run: Vec<String>,
}

/// What `scope` removes on this host, with the store and the manifest.
pub fn plan(host: &HostFacts, scope: Scope) -> Result<(Plan, Store, Option<Manifest>), CliError> {
    let store = Store::locate(&host.home);
    let mut p = Plan::default();
    let sessions = store.list().unwrap_or_default();
    for m in &sessions {
        if m.liveness() == Liveness::Running {
            p.stop.push(m.label().to_string());
        }
        let changes = paddock_session::cow::changes(&store.dir(&m.id), &[]).unwrap_or_default();
        if !changes.is_empty() {
            p.unapplied
                .push(format!("{} ({} changes)", m.label(), changes.len()));
        }
    }
    let add = |p: &mut Plan, path: PathBuf| {
        if std::fs::symlink_metadata(&path).is_ok() {
            let bytes = paddock_session::du(&path);
            p.remove.push(Removal { path, bytes });
        }
    };
    // State: only what paddock puts there; the folder itself if that
    // empties it (it may be a PADDOCK_HOME the user chose).
    for e in ["sessions", "gc.json", ".gc.json.tmp"] {
        add(&mut p, store.root().join(e));
    }
    add(&mut p, places::cache_dir(&host.home));
    for d in runtime_dirs(false) {
        add(&mut p, d);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("paddock"));
    let (origin, manifest) = origin(&exe);
    if let Scope::Uninstall { keep_config } = scope {
        let config = places::config_dir(&host.home);
        if keep_config {
            if config.exists() {
                p.keep.push((config, "--keep-config".into()));
            }
        } else {
            add(&mut p, config);
        }
        match (&origin, &manifest) {
            (Origin::InstallSh { .. }, Some(m)) => {
                let is_root = paddock_sys::getuid() == 0;
                for f in &m.files {
                    if !m.trusted(f) {
                        p.keep
                            .push((f.clone(), "outside the install prefix".into()));
                    } else if f == Path::new(places::APPARMOR_PROFILE) && !is_root {
                        p.keep.push((f.clone(), "needs root".into()));
                        p.then_run.push(format!(
                            "sudo apparmor_parser -R {0} && sudo rm {0}",
                            places::APPARMOR_PROFILE
                        ));
                    } else if !same_file(f, &exe) {
                        add(&mut p, f.clone());
                    }
                }
                add(&mut p, m.path.clone());
                // The binary last: this process is still running it.
                add(&mut p, exe.clone());
            }
            (o, _) => {
                p.keep.push((exe.clone(), binary_note(o).into()));
                match o {
                    Origin::Dpkg => p.then_run.push("sudo apt remove paddock".into()),
                    Origin::Cargo => p.then_run.push("cargo uninstall paddock".into()),
                    _ => {}
                }
            }
        }
    }
    let admin = crate::policy_files::admin_dir();
    if admin.exists() {
        p.keep.push((admin, "the administrator's policy".into()));
    }
    Ok((p, store, manifest))
}

/// Remove a file, a link or a folder tree (made writable first).
pub fn remove_path(p: &Path) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(p)?;
    if md.is_dir() {
        paddock_session::make_writable(p);
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_trusted_only_inside_its_prefix() {
        let m = Manifest {
            path: "/opt/p/share/paddock/install-manifest".into(),
            files: vec![],
            dirs: vec![],
        };
        assert_eq!(m.prefix(), Some(Path::new("/opt/p")));
        assert!(m.trusted(Path::new("/opt/p/bin/paddock")));
        assert!(m.trusted(Path::new("/etc/apparmor.d/paddock")));
        assert!(!m.trusted(Path::new("/opt/p/../../home/u/.bashrc")));
        assert!(!m.trusted(Path::new("/home/u/.bashrc")));
        assert!(!m.trusted(Path::new("/etc/apparmor.d/other")));
        assert!(!m.trusted(Path::new("opt/p/bin/paddock")));
    }
}

//! `paddock info`, `paddock reset`, `paddock uninstall` and
//! `paddock generate`: where paddock keeps things, how big they are, and
//! taking them away again.
//!
//! Removal is driven by the list in [`crate::places`] and by the manifest
//! install.sh writes; nothing is removed by pattern outside those places.
//! The state folder may be anywhere (`PADDOCK_HOME`), so only the entries
//! paddock creates in it are removed, and the folder itself only when that
//! leaves it empty. Sessions holding `cow` changes no one has applied are
//! named, and nothing is removed until the user says to discard them.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use paddock_session::{Liveness, Store};
use serde::Serialize;

use crate::cli::{Cli, GenerateCommand, RemoveArgs};
use crate::compile::HostFacts;
use crate::error::CliError;
use crate::places;
use crate::status::human_bytes;

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
const MANIFEST: &str = "share/paddock/install-manifest";
const MANIFEST_HEADER: &str = "# paddock install manifest 1";

/// How the running binary got where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
enum Origin {
    /// install.sh, with its manifest.
    InstallSh { manifest: PathBuf },
    /// The Debian package.
    Dpkg,
    /// `cargo install`.
    Cargo,
    /// Copied by hand, or a build tree.
    Unknown,
}

/// The files install.sh recorded.
#[derive(Debug, Clone, Default)]
struct Manifest {
    path: PathBuf,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
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
    fn trusted(&self, p: &Path) -> bool {
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

fn origin(exe: &Path) -> (Origin, Option<Manifest>) {
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

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    }
}

/// One place, as `paddock info` shows it.
#[derive(Debug, Clone, Serialize)]
struct Place {
    /// What it is.
    what: String,
    path: PathBuf,
    exists: bool,
    /// Bytes of the files in it (apparent sizes).
    bytes: u64,
    /// Which command removes it, or why none does.
    removed_by: String,
}

fn place(what: &str, path: &Path, removed_by: &str) -> Place {
    let exists = std::fs::symlink_metadata(path).is_ok();
    Place {
        what: what.into(),
        path: path.to_path_buf(),
        exists,
        bytes: if exists { paddock_session::du(path) } else { 0 },
        removed_by: removed_by.into(),
    }
}

fn binary_note(o: &Origin) -> &'static str {
    match o {
        Origin::InstallSh { .. } => "paddock uninstall",
        Origin::Dpkg => "the package manager: sudo apt remove paddock",
        Origin::Cargo => "cargo uninstall paddock",
        Origin::Unknown => "not installed by install.sh, dpkg or cargo: delete it yourself",
    }
}

/// Runtime folders of runs whose process is gone (or, with `all`, every
/// one), in the runtime base.
fn runtime_dirs(all: bool) -> Vec<PathBuf> {
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
fn is_man_page(p: &Path) -> bool {
    p.parent().is_some_and(|d| d.ends_with("man/man1")) && p.extension().is_some_and(|e| e == "1")
}

/// Man pages, shown as one line: their count, bytes and folder.
fn man_summary<'a>(items: impl Iterator<Item = (&'a Path, u64)>) -> Option<(usize, u64, &'a Path)> {
    items
        .filter(|(p, _)| is_man_page(p))
        .fold(None, |acc, (p, b)| match acc {
            None => Some((1, b, p.parent().unwrap_or(Path::new("/")))),
            Some((n, t, d)) => Some((n + 1, t + b, d)),
        })
}

/// Every place, and the per-run folders the runtime place counts.
struct Footprint {
    origin: Origin,
    places: Vec<Place>,
    run_dirs: Vec<PathBuf>,
}

fn all_places(host: &HostFacts) -> Footprint {
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

/// `paddock info`.
pub fn info(json: bool) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let fp = all_places(&host);
    // The administrator's folder is shown, not counted: it is not ours.
    let total: u64 = fp
        .places
        .iter()
        .filter(|p| p.what != "admin config")
        .map(|p| p.bytes)
        .sum();
    if json {
        let v = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "installed": fp.origin,
            "places": fp.places,
            "runtime_run_dirs": fp.run_dirs,
            "total_bytes": total,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(0);
    }
    println!("paddock {}", env!("CARGO_PKG_VERSION"));
    println!("{:<24} {:>7}  PATH", "WHAT", "SIZE");
    let row = |what: &str, size: String, path: String, removed_by: &str| {
        println!("{what:<24} {size:>7}  {path}");
        println!("{:<24} {:>7}  removed by: {removed_by}", "", "");
    };
    if let Some((n, bytes, dir)) =
        man_summary(fp.places.iter().map(|p| (p.path.as_path(), p.bytes)))
    {
        let dir = format!("{}/paddock*.1", dir.display());
        row(
            &format!("man pages ({n})"),
            human_bytes(bytes),
            dir,
            "paddock uninstall",
        );
    }
    for p in fp.places.iter().filter(|p| p.what != "man page") {
        let size = if p.exists {
            human_bytes(p.bytes)
        } else {
            "-".into()
        };
        row(&p.what, size, p.path.display().to_string(), &p.removed_by);
    }
    println!("total: {} (admin config not counted)", human_bytes(total));
    Ok(0)
}

/// One thing removed (or to be removed).
#[derive(Debug, Clone, Serialize)]
struct Removal {
    path: PathBuf,
    bytes: u64,
}

/// What `reset`/`uninstall` will do.
#[derive(Debug, Default, Serialize)]
struct Plan {
    /// Sessions and runs to stop first.
    stop: Vec<String>,
    /// Sessions whose `cow` changes no one applied.
    unapplied: Vec<String>,
    /// Paths to remove, in order.
    remove: Vec<Removal>,
    /// Paths left alone, with why.
    keep: Vec<(PathBuf, String)>,
    /// Commands the user must run for what paddock may not remove itself.
    then_run: Vec<String>,
}

fn plan(host: &HostFacts, scope: Scope) -> Result<(Plan, Store, Option<Manifest>), CliError> {
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

fn print_plan(p: &Plan, scope: Scope, dry_run: bool) {
    let verb = if dry_run { "would" } else { "will" };
    let name = match scope {
        Scope::Reset => "reset",
        Scope::Uninstall { .. } => "uninstall",
    };
    println!("paddock {name} {verb}:");
    if !p.stop.is_empty() {
        println!("  stop {} running: {}", p.stop.len(), p.stop.join(", "));
    }
    let total: u64 = p.remove.iter().map(|r| r.bytes).sum();
    for r in p.remove.iter().filter(|r| !is_man_page(&r.path)) {
        println!("  remove {:>7}  {}", human_bytes(r.bytes), r.path.display());
    }
    if let Some((n, bytes, dir)) = man_summary(p.remove.iter().map(|r| (r.path.as_path(), r.bytes)))
    {
        println!(
            "  remove {:>7}  {}/paddock*.1 ({n} man pages)",
            human_bytes(bytes),
            dir.display()
        );
    }
    if p.remove.is_empty() {
        println!("  remove nothing (no paddock files found)");
    } else {
        println!("  total  {:>7}", human_bytes(total));
    }
    for (k, why) in &p.keep {
        println!("  keep            {} ({why})", k.display());
    }
}

fn confirm(a: &RemoveArgs) -> Result<(), CliError> {
    if a.yes {
        return Ok(());
    }
    if !paddock_sys::isatty(0) {
        return Err(CliError::new(
            "CONFIRMATION_REQUIRED",
            "not on a terminal, so nothing was removed",
            "read the list above and pass --yes to proceed (or --dry-run to only list)",
        ));
    }
    print!("Proceed? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CliError::new(
            "CANCELLED",
            "nothing was removed",
            "answer y to proceed",
        ))
    }
}

fn remove_path(p: &Path) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(p)?;
    if md.is_dir() {
        paddock_session::make_writable(p);
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
}

/// `paddock reset` and `paddock uninstall`.
pub fn remove(a: RemoveArgs, scope: Scope) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let (p, store, manifest) = plan(&host, scope)?;
    if !p.unapplied.is_empty() && !a.discard_changes {
        return Err(CliError::new(
            "UNAPPLIED_CHANGES",
            format!(
                "these sessions hold cow changes no one has applied: {}; nothing was removed",
                p.unapplied.join(", ")
            ),
            "review them with `paddock diff SESSION`, keep them with `paddock apply SESSION`, \
             then run this again; or pass --discard-changes to throw them away",
        ));
    }
    if a.json && a.dry_run {
        println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
        return Ok(0);
    }
    if !a.json {
        print_plan(&p, scope, a.dry_run);
    }
    if a.dry_run {
        return Ok(0);
    }
    confirm(&a)?;

    // Stop everything first, so no supervisor writes into what goes next.
    let mut stopped = Vec::new();
    for m in store.list().unwrap_or_default() {
        if m.liveness() != Liveness::Running {
            continue;
        }
        crate::supervisor::stop(&store, &m)?;
        stopped.push(m.label().to_string());
    }
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for r in &p.remove {
        if r.path == Path::new(places::APPARMOR_PROFILE) {
            // Unload before the file goes, or the kernel keeps it.
            let _ = std::process::Command::new("apparmor_parser")
                .arg("-R")
                .arg(&r.path)
                .stderr(std::process::Stdio::null())
                .status();
        }
        match remove_path(&r.path) {
            Ok(()) => removed.push(r.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => failed.push((r.path.clone(), e.to_string())),
        }
    }
    // Folders paddock (or install.sh) created, if that emptied them.
    let mut dirs: Vec<PathBuf> = vec![store.root().to_path_buf()];
    dirs.extend(places::runtime_base_if_own());
    if let (Scope::Uninstall { .. }, Some(m)) = (scope, &manifest) {
        dirs.extend(m.dirs.iter().filter(|d| m.trusted(d)).cloned());
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        if d.is_dir() && std::fs::remove_dir(&d).is_ok() {
            removed.push(Removal { path: d, bytes: 0 });
        }
    }
    let bytes: u64 = removed.iter().map(|r| r.bytes).sum();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "stopped": stopped,
                "removed": removed,
                "bytes": bytes,
                "failed": failed,
                "kept": p.keep,
                "then_run": p.then_run,
            })
        );
    } else {
        if !stopped.is_empty() {
            println!("stopped {}", stopped.join(", "));
        }
        println!("removed {} paths, {}", removed.len(), human_bytes(bytes));
        for (f, e) in &failed {
            println!("could not remove {}: {e}", f.display());
        }
        for c in &p.then_run {
            println!("to finish, run: {c}");
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(CliError::new(
            "HOST_IO_ERROR",
            format!("{} paths could not be removed (listed above)", failed.len()),
            "check their owner and permissions, then run this again",
        ))
    }
}

/// `paddock generate ...`.
pub fn generate(g: GenerateCommand) -> Result<i32, CliError> {
    match g {
        GenerateCommand::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "paddock", &mut std::io::stdout());
        }
        GenerateCommand::Man { dir } => {
            let io = |e: std::io::Error| {
                CliError::new(
                    "HOST_IO_ERROR",
                    format!("writing man pages into {}: {e}", dir.display()),
                    "choose a folder you can write to",
                )
            };
            std::fs::create_dir_all(&dir).map_err(io)?;
            let mut written = Vec::new();
            man_pages(&Cli::command(), "paddock", &dir, &mut written).map_err(io)?;
            for w in written {
                println!("{}", w.display());
            }
        }
        GenerateCommand::Apparmor { binary } => {
            let bin = match binary {
                Some(b) => b,
                None => std::env::current_exe().map_err(|e| {
                    CliError::new(
                        "HOST_IO_ERROR",
                        format!("cannot tell where this binary is: {e}"),
                        "pass --binary PATH",
                    )
                })?,
            };
            print!("{}", apparmor_profile(&bin)?);
        }
    }
    Ok(0)
}

/// The AppArmor profile for `binary`.
fn apparmor_profile(binary: &Path) -> Result<String, CliError> {
    let s = binary
        .to_str()
        .filter(|s| binary.is_absolute() && !s.contains(['"', '\n', '\\']) && !s.is_empty());
    let Some(s) = s else {
        return Err(CliError::new(
            "BAD_PATH",
            format!(
                "{} cannot be named in an AppArmor profile",
                binary.display()
            ),
            "give an absolute path without quotes, backslashes or newlines",
        ));
    };
    Ok(include_str!("../apparmor.profile").replace("@BINARY@", s))
}

/// Write one page for `cmd` and, recursively, one per visible subcommand
/// (`paddock-session-start.1`).
fn man_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    // The page's title and synopsis read `paddock session start`, its file
    // name `paddock-session-start.1`.
    let cmd = cmd
        .clone()
        .display_name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buf)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_name = format!("{name}-{}", sub.get_name());
        man_pages(sub, &sub_name, dir, written)?;
    }
    Ok(())
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

    #[test]
    fn the_apparmor_profile_names_the_binary_and_refuses_odd_paths() {
        let p = apparmor_profile(Path::new("/opt/my tools/bin/paddock")).unwrap();
        assert!(p.contains("profile paddock \"/opt/my tools/bin/paddock\" flags=(unconfined) {"));
        assert!(p.lines().any(|l| l.trim() == "userns,"));
        assert!(apparmor_profile(Path::new("/x/\"a")).is_err());
        assert!(apparmor_profile(Path::new("relative/paddock")).is_err());
    }
}

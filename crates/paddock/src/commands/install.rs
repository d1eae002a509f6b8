//! `paddock info`, `paddock reset`, `paddock uninstall` and
//! `paddock generate`: the footprint (`paddock_plan::footprint`) shown,
//! and taken away again.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use paddock_session::Liveness;

use crate::cli::{Cli, GenerateCommand, RemoveArgs};
use crate::compile::HostFacts;
use crate::error::CliError;
use crate::places;
use crate::status::human_bytes;
pub use paddock_plan::footprint::Scope;
use paddock_plan::footprint::*;
use paddock_reasons::Reason;

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
            Reason::CONFIRMATION_REQUIRED.code(),
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
            Reason::CANCELLED.code(),
            "nothing was removed",
            "answer y to proceed",
        ))
    }
}

/// `paddock reset` and `paddock uninstall`.
pub fn remove(a: RemoveArgs, scope: Scope) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let (p, store, manifest) = plan(&host, scope)?;
    if !p.unapplied.is_empty() && !a.discard_changes {
        return Err(CliError::new(
            Reason::UNAPPLIED_CHANGES.code(),
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
            Reason::HOST_IO_ERROR.code(),
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
                    Reason::HOST_IO_ERROR.code(),
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
                        Reason::HOST_IO_ERROR.code(),
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
            Reason::BAD_PATH.code(),
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
    fn the_apparmor_profile_names_the_binary_and_refuses_odd_paths() {
        let p = apparmor_profile(Path::new("/opt/my tools/bin/paddock")).unwrap();
        assert!(p.contains("profile paddock \"/opt/my tools/bin/paddock\" flags=(unconfined) {"));
        assert!(p.lines().any(|l| l.trim() == "userns,"));
        assert!(apparmor_profile(Path::new("/x/\"a")).is_err());
        assert!(apparmor_profile(Path::new("relative/paddock")).is_err());
    }
}

//! `paddock session start|list|stop|rm`, `paddock exec`, `paddock gc`.

use paddock_session::{Inputs, Liveness, Retention, Store};

use crate::cli::{ExecArgs, GcArgs, SessionCommand};
use crate::compile::{flags_layer, HostFacts};
use crate::error::CliError;
use crate::policy_files;
use crate::supervisor::{self, session_err as to_cli, session_flags};

fn store(host: &HostFacts) -> Store {
    Store::locate(&host.home)
}

/// Seconds as `42s`, `5m`, `3h`, `2d`.
use crate::status::age;
use crate::supervisor::{retention, session_protected};
use paddock_reasons::Reason;

/// Session subcommands.
pub fn session(cmd: SessionCommand) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let st = store(&host);
    match cmd {
        SessionCommand::Start {
            policy,
            name,
            mounts,
            env,
            unprotect,
            json,
        } => {
            let policy = policy.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
            let inputs = Inputs {
                workspace: host.cwd.clone(),
                policy: policy.clone(),
                mounts,
                env,
                unprotect,
            };
            let flags = session_flags(&inputs);
            let eff =
                policy_files::effective(&host, policy.as_deref(), Some(flags_layer(&flags)?))?;
            // Check everything now, start nothing: the isolation level this
            // host gives against the policy's minimum, and the request at
            // that level.
            let choice = crate::isolation::choose(&eff, &host.home)?;
            let plan = paddock_plan::plan(&paddock_plan::Request {
                host: &host,
                eff: &eff,
                flags: &flags,
                level: choice.level,
                purpose: paddock_plan::Purpose::Check { session: true },
            })?;
            paddock_sandbox::check(&plan.spec)?;
            // Automatic collection: within the limits, but a session whose
            // supervisor died keeps its trail and unreviewed changes until
            // it ages out or an explicit `paddock gc`.
            let gc = st
                .gc(
                    Retention {
                        remove_dead: false,
                        ..retention(&eff)
                    },
                    false,
                )
                .map_err(to_cli)?;
            let meta = st
                .create(name, eff.hash(), eff.idle_timeout_s.value, inputs)
                .map_err(to_cli)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": meta.id, "name": meta.name, "policy_hash": meta.policy_hash, "state": "created", "gc_removed": gc.removed.len()})
                );
            } else {
                println!("{}", meta.id);
            }
            Ok(0)
        }
        SessionCommand::List { json } => {
            let all = st.list().map_err(to_cli)?;
            let now = paddock_session::now();
            if json {
                let v: Vec<_> = all.iter().map(|m| serde_json::json!({
                    "id": m.id, "name": m.name, "state": m.liveness(), "created": m.created, "last_used": m.last_used,
                    "commands": m.commands, "workspace": m.inputs.workspace, "policy_hash": m.policy_hash,
                    "supervisor_pid": m.supervisor.as_ref().map(|s| s.pid), "oneshot": m.oneshot, "disk_bytes": st.disk_usage(&m.id),
                })).collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return Ok(0);
            }
            if all.is_empty() {
                println!("no sessions (state in {})", st.root().display());
                return Ok(0);
            }
            println!(
                "{:<12}  {:<12}  {:<8}  {:>5}  {:>5}  {:>4}  WORKSPACE",
                "ID", "NAME", "STATE", "AGE", "IDLE", "CMDS"
            );
            for m in all {
                let state = format!("{:?}", m.liveness()).to_lowercase();
                println!(
                    "{:<12}  {:<12}  {:<8}  {:>5}  {:>5}  {:>4}  {}",
                    m.id,
                    m.name.as_deref().unwrap_or("-"),
                    state,
                    age(now.saturating_sub(m.created)),
                    age(now.saturating_sub(m.last_used)),
                    m.commands,
                    m.inputs.workspace.display()
                );
            }
            Ok(0)
        }
        SessionCommand::Stop { session } => {
            let meta = st.load(&session).map_err(to_cli)?;
            if supervisor::stop(&st, &meta)? {
                println!("stopped {}", meta.label());
            } else {
                println!("{} is not running", meta.label());
            }
            Ok(0)
        }
        SessionCommand::Rm { session } => {
            let meta = st.load(&session).map_err(to_cli)?;
            supervisor::stop(&st, &meta)?;
            let bytes = st.disk_usage(&meta.id);
            st.remove(&meta.id).map_err(to_cli)?;
            println!("removed {} ({} bytes)", meta.label(), bytes);
            Ok(0)
        }
    }
}

/// `paddock exec SESSION -- CMD...`.
pub fn exec(a: ExecArgs) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let st = store(&host);
    let meta = st.load(&a.session).map_err(to_cli)?;
    supervisor::set_caller(a.tool_call_id, a.agent);
    let argv: Vec<String> = a
        .argv
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    supervisor::exec(&st, &meta, argv)
}

/// `paddock gc [--dry-run]`.
pub fn gc(a: GcArgs) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let st = store(&host);
    let eff = policy_files::effective(&host, None, None)?;
    let r = st.gc(retention(&eff), a.dry_run).map_err(to_cli)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        let verb = if a.dry_run { "would remove" } else { "removed" };
        for (id, why) in &r.removed {
            println!("{verb} {id}: {why}");
        }
        println!("{verb} {} session(s), {} bytes", r.removed.len(), r.bytes);
    }
    Ok(0)
}

fn stopped(st: &Store, key: &str) -> Result<paddock_session::Meta, CliError> {
    let meta = st.load(key).map_err(to_cli)?;
    if meta.liveness() == Liveness::Running {
        return Err(CliError::new(
            Reason::SESSION_RUNNING.code(),
            format!(
                "session {} is running: its changes are still in use",
                meta.label()
            ),
            format!("stop it first: paddock session stop {}", meta.label()),
        ));
    }
    Ok(meta)
}

fn change_mark(c: &paddock_session::cow::Change) -> &'static str {
    use paddock_session::cow::Kind;
    match (c.kind, &c.refused) {
        (_, Some(_)) => "!",
        (Kind::Added, _) => "A",
        (Kind::Modified, _) => "M",
        (Kind::Deleted, _) => "D",
    }
}

/// `paddock diff SESSION`.
pub fn diff(key: &str, stat: bool, json: bool) -> Result<i32, CliError> {
    use paddock_session::cow::safe_path;
    let host = HostFacts::current()?;
    let st = store(&host);
    let meta = st.load(key).map_err(to_cli)?;
    let protected = session_protected(&meta);
    let changes = paddock_session::cow::changes(&st.dir(&meta.id), &protected).map_err(to_cli)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&changes).unwrap_or_default()
        );
    } else if stat {
        for c in &changes {
            match &c.refused {
                Some(r) => println!("{} {}  [{}]", change_mark(c), safe_path(&c.path), r.code),
                None => println!("{} {}", change_mark(c), safe_path(&c.path)),
            }
        }
        println!("{} change(s)", changes.len());
    } else {
        for c in &changes {
            print!("{}", paddock_session::cow::unified(c));
        }
    }
    if paddock_session::cow::interrupted(&st.dir(&meta.id)) {
        eprintln!(
            "paddock: an apply of {} was interrupted; finish it with `paddock apply {} --resume` or undo it with `paddock apply {} --abort`",
            meta.label(),
            meta.label(),
            meta.label()
        );
    }
    Ok(0)
}

/// How `paddock apply` was asked to run.
#[derive(Debug, Default)]
pub struct ApplyHow {
    /// `--allow-outward-symlinks`.
    pub allow_outward_symlinks: bool,
    /// `--resume`.
    pub resume: bool,
    /// `--abort`.
    pub abort: bool,
    /// `--json`.
    pub json: bool,
}

/// `paddock apply SESSION [PATH...]`.
pub fn apply(key: &str, paths: Vec<std::path::PathBuf>, how: ApplyHow) -> Result<i32, CliError> {
    use paddock_session::cow::safe_path;
    let host = HostFacts::current()?;
    let st = store(&host);
    let meta = stopped(&st, key)?;
    let dir = st.dir(&meta.id);
    let label = meta.label();
    let failed = |e: paddock_session::SessionError| {
        CliError::new(
            Reason::APPLY_FAILED.code(),
            format!("apply of {label}: {e}"),
            format!(
                "nothing is lost: each path holds its old or its new content; run `paddock apply {label} --resume` to finish or `--abort` to undo"
            ),
        )
    };
    if how.resume || how.abort {
        if !paddock_session::cow::interrupted(&dir) {
            return Err(CliError::new(
                Reason::APPLY_NOTHING_INTERRUPTED.code(),
                format!("no apply of {label} was interrupted"),
                format!("see what is pending with `paddock diff {label}`"),
            ));
        }
        let r = if how.resume {
            paddock_session::cow::resume(&dir).map_err(failed)?
        } else {
            paddock_session::cow::abort(&dir).map_err(failed)?
        };
        let finished = how.resume || r.finished_instead;
        if how.json {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        } else {
            if r.finished_instead {
                eprintln!(
                    "paddock: the interrupted apply had put every change in place (only its clean-up was cut); it was finished, not undone"
                );
            }
            let word = if finished { "applied " } else { "restored" };
            for p in r
                .paths
                .iter()
                .filter(|p| !r.conflicts.iter().any(|c| c.path == **p))
            {
                println!("{word} {}", safe_path(p));
            }
            for c in &r.conflicts {
                eprintln!(
                    "paddock: refused[APPLY_CONFLICT]: {}: {}",
                    safe_path(&c.path),
                    paddock_session::cow::terminal_safe(&c.reason)
                );
            }
        }
        return Ok(if r.conflicts.is_empty() { 0 } else { 1 });
    }
    if paddock_session::cow::interrupted(&dir) {
        return Err(CliError::new(
            Reason::APPLY_INTERRUPTED.code(),
            format!("an earlier apply of {label} was interrupted"),
            format!(
                "finish it with `paddock apply {label} --resume` or undo it with `paddock apply {label} --abort`"
            ),
        ));
    }
    let protected = session_protected(&meta);
    let mut changes = paddock_session::cow::changes(&dir, &protected).map_err(to_cli)?;
    let all = paths.is_empty();
    if !all {
        let wanted: Vec<_> = paths
            .iter()
            .map(|p| crate::compile::normalize(&host.cwd.join(p)))
            .collect();
        // A chosen path brings the folders it is created in with it.
        changes.retain(|c| {
            wanted
                .iter()
                .any(|w| c.path.starts_with(w) || (w.starts_with(&c.path) && c.old.is_none()))
        });
    }
    let since = if meta.created_ns > 0 {
        meta.created_ns
    } else {
        u128::from(meta.created) * 1_000_000_000
    };
    let since = since.max(paddock_session::cow::applied_at(&dir));
    let opts = paddock_session::cow::ApplyOptions {
        since_ns: since,
        allow_outward_symlinks: how.allow_outward_symlinks,
    };
    let r = paddock_session::cow::apply(&dir, &changes, &opts).map_err(failed)?;
    if all && r.conflicts.is_empty() && r.refused.is_empty() {
        paddock_session::cow::mark_applied(&dir);
    }
    if how.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        for p in &r.applied {
            println!("applied  {}", safe_path(p));
        }
        for (p, why) in &r.refused {
            eprintln!(
                "paddock: refused[{}]: {}: {}",
                why.code,
                safe_path(p),
                paddock_session::cow::terminal_safe(&why.reason)
            );
        }
        for c in &r.conflicts {
            eprintln!(
                "paddock: refused[APPLY_CONFLICT]: {}: {}",
                safe_path(&c.path),
                paddock_session::cow::terminal_safe(&c.reason)
            );
            for ch in c.changed.iter().filter(|ch| **ch != c.path) {
                eprintln!("  changed on the host: {}", safe_path(ch));
            }
        }
    }
    if r.conflicts.is_empty() && r.refused.is_empty() {
        Ok(0)
    } else {
        if !how.json {
            eprintln!(
                "  fix: compare with `paddock diff {label}`, then copy by hand or `paddock discard {label}`"
            );
        }
        Ok(1)
    }
}

/// `paddock discard SESSION`.
pub fn discard(key: &str) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let st = store(&host);
    let meta = stopped(&st, key)?;
    let n = paddock_session::cow::discard(&st.dir(&meta.id)).map_err(to_cli)?;
    println!("discarded {n} change(s) of {}", meta.label());
    Ok(0)
}

/// `paddock export SESSION PATH DEST`: `tar` inside the sandbox streams the
/// path out (the sandbox cannot write to the host), `tar` on the host
/// unpacks it into a fresh folder, which is then moved into place.
pub fn export(
    key: &str,
    path: &std::path::Path,
    dest: &std::path::Path,
    allow_outward_symlinks: bool,
) -> Result<i32, CliError> {
    use std::os::fd::AsFd;
    let host = HostFacts::current()?;
    let st = store(&host);
    let meta = st.load(key).map_err(to_cli)?;
    if meta.liveness() != Liveness::Running {
        return Err(CliError::new(
            Reason::SESSION_NOT_RUNNING.code(),
            format!(
                "session {} has no live sandbox to export from",
                meta.label()
            ),
            "cow changes are reviewed with `paddock diff`; export reads a live sandbox",
        ));
    }
    let io = |e: std::io::Error| {
        CliError::new(
            Reason::EXPORT_FAILED.code(),
            format!("export: {e}"),
            "check the destination",
        )
    };
    let dest = crate::compile::normalize(&host.cwd.join(dest));
    let name = path.file_name().ok_or_else(|| {
        CliError::new(
            Reason::EXPORT_FAILED.code(),
            "the path has no file name",
            "name a file or folder",
        )
    })?;
    let final_dest = if dest.is_dir() {
        dest.join(name)
    } else {
        dest.clone()
    };
    if std::fs::symlink_metadata(&final_dest).is_ok() {
        return Err(CliError::new(
            Reason::EXPORT_EXISTS.code(),
            format!(
                "{} already exists; paddock does not overwrite it",
                final_dest.display()
            ),
            "choose another destination",
        ));
    }
    let parent = final_dest
        .parent()
        .unwrap_or(std::path::Path::new("/"))
        .to_path_buf();
    let staging = parent.join(format!(".paddock-export-{}", std::process::id()));
    std::fs::create_dir(&staging).map_err(io)?;
    let mut untar = std::process::Command::new("tar")
        .args([
            "-x",
            "--no-same-owner",
            "--no-same-permissions",
            "-f",
            "-",
            "-C",
        ])
        .arg(&staging)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(io)?;
    let pipe = untar
        .stdin
        .take()
        .ok_or_else(|| io(std::io::Error::other("no pipe")))?;
    let inner_parent = path
        .parent()
        .unwrap_or(std::path::Path::new("/"))
        .to_string_lossy()
        .into_owned();
    let argv = vec![
        "tar".into(),
        "-c".into(),
        "-f".into(),
        "-".into(),
        "-C".into(),
        inner_parent,
        name.to_string_lossy().into_owned(),
    ];
    let null = std::fs::File::open("/dev/null").map_err(io)?;
    let err = std::io::stderr();
    let code = {
        let fds = [null.as_fd(), pipe.as_fd(), err.as_fd()];
        crate::supervisor::exec_with(&st, &meta, argv, fds)
    };
    drop(pipe);
    let untarred = untar.wait().map_err(io)?.success();
    let mut removed = Vec::new();
    let result = match code {
        Ok(0) if untarred => paddock_session::cow::make_safe(&staging, allow_outward_symlinks)
            .map_err(to_cli)
            .and_then(|r| {
                removed = r;
                // The exported thing itself may have been refused (a link).
                if std::fs::symlink_metadata(staging.join(name)).is_err() {
                    return Ok(());
                }
                std::fs::rename(staging.join(name), &final_dest).map_err(io)
            }),
        Ok(c) => Err(CliError::new(
            Reason::EXPORT_FAILED.code(),
            format!(
                "reading {} in the sandbox failed (exit {c})",
                path.display()
            ),
            "check the path inside the sandbox",
        )),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&staging);
    result?;
    use paddock_session::cow::safe_path;
    if std::fs::symlink_metadata(&final_dest).is_ok() {
        println!("exported {} to {}", safe_path(path), safe_path(&final_dest));
    }
    for (p, why) in &removed {
        eprintln!(
            "paddock: refused[{}]: {}: {}",
            why.code,
            safe_path(p),
            paddock_session::cow::terminal_safe(&why.reason)
        );
    }
    Ok(if removed.is_empty() { 0 } else { 1 })
}

fn event_line(e: &paddock_audit::Event) -> String {
    let secs = e.ts_ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let verdict = match e.allowed {
        Some(true) => "allowed",
        Some(false) => "DENIED",
        None => "",
    };
    // What it was about (shared with `paddock status`), and who did it.
    let d = &e.data;
    let pid = d["pid"].as_i64();
    let suffix = match e.kind.as_str() {
        "exec.start" | "exec.exit" => d["exit_code"]
            .as_i64()
            .map(|c| format!(" exit={c}"))
            .unwrap_or_default(),
        "net.denied" | "net.connect" => format!(
            " (pid {}, {})",
            d["pid"],
            d["syscall"].as_str().unwrap_or("")
        ),
        k if k.starts_with("file.") || k == "process.exec" || k == "syscall.denied" => {
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        }
        _ => String::new(),
    };
    let what = format!("{}{suffix}", crate::status::describe(e));
    let call = e
        .caller
        .tool_call_id
        .as_deref()
        .map(|c| format!(" call={c}"))
        .unwrap_or_default();
    format!(
        "{h:02}:{m:02}:{s:02} #{:<4} {:<14} {:<8} {}{}{}",
        e.seq,
        e.kind,
        verdict,
        what.trim(),
        e.reason_code
            .as_deref()
            .map(|r| format!(" [{r}]"))
            .unwrap_or_default(),
        call
    )
}

/// `paddock audit tail`.
pub fn audit(cmd: crate::cli::AuditCommand) -> Result<i32, CliError> {
    let crate::cli::AuditCommand::Tail {
        session,
        follow,
        json,
        denied,
    } = cmd;
    let host = HostFacts::current()?;
    let st = store(&host);
    let meta = match session {
        Some(k) => st.load(&k).map_err(to_cli)?,
        None => st
            .list()
            .map_err(to_cli)?
            .into_iter()
            .max_by_key(|m| m.last_used)
            .ok_or_else(|| {
                CliError::new(
                    Reason::SESSION_NOT_FOUND.code(),
                    "there is no session yet",
                    "start one with `paddock session start`",
                )
            })?,
    };
    let path = st.dir(&meta.id).join("audit.jsonl");
    let mut shown = 0u64;
    loop {
        let seen = shown;
        for e in paddock_audit::read(&path)
            .into_iter()
            .filter(|e| e.seq > seen)
        {
            shown = e.seq;
            if denied && e.allowed != Some(false) {
                continue;
            }
            if json {
                println!("{}", serde_json::to_string(&e).unwrap_or_default());
            } else {
                println!("{}", paddock_session::text::terminal_safe(&event_line(&e)));
            }
        }
        if !follow {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

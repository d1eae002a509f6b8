//! `paddock session start|list|stop|rm`, `paddock exec`, `paddock gc`.

use paddock_session::{Inputs, Liveness, Retention, Store};

use crate::cli::{ExecArgs, GcArgs, SessionCommand};
use crate::compile::{compile, flags_layer, HostFacts};
use crate::error::CliError;
use crate::policy_files;
use crate::supervisor::{self, session_err as to_cli, session_flags};

fn store(host: &HostFacts) -> Store {
    Store::locate(&host.home)
}

fn retention(eff: &paddock_policy::Effective) -> Retention {
    Retention {
        max_age_s: eff.max_age_s.value,
        max_count: eff.max_count.value,
        max_disk_mib: eff.max_disk_mib.value,
    }
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

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
            let meta_flags = paddock_session::Meta {
                id: String::new(),
                name: None,
                created: 0,
                policy_hash: String::new(),
                state: paddock_session::State::Created,
                supervisor: None,
                last_used: 0,
                commands: 0,
                idle_timeout_s: 0,
                inputs: inputs.clone(),
            };
            let flags = session_flags(&meta_flags);
            let eff =
                policy_files::effective(&host, policy.as_deref(), Some(flags_layer(&flags)?))?;
            // Check everything now, start nothing.
            let mut spec = compile(&eff, &flags, &host, None)?;
            spec.serve_execs = true;
            paddock_sandbox::check(&spec)?;
            let gc = st.gc(retention(&eff), false).map_err(to_cli)?;
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
                    "supervisor_pid": m.supervisor.as_ref().map(|s| s.pid), "disk_bytes": st.disk_usage(&m.id),
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
    let _ = Liveness::Running;
    Ok(0)
}

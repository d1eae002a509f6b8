//! `paddock run`: policy and flags → spec → sandbox → exit code.

use std::path::{Path, PathBuf};

use crate::cli::RunArgs;
use paddock_policy::NetworkMode;

use crate::compile::{compile, flags_layer, HostFacts, RunFlags};
use crate::egress::Egress;
use crate::error::CliError;
use crate::policy_files;

/// Run the command; returns its exit code.
pub fn run(a: RunArgs) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let verbose = a.verbose;
    let flags = RunFlags {
        mounts: a.mounts,
        workdir: a.workdir,
        env: a.env,
        unprotect: a.unprotect,
        tmp_size_mib: a.tmp_size_mib,
        argv: a.argv,
    };
    let eff = policy_files::effective(&host, a.policy.as_deref(), Some(flags_layer(&flags)?))?;
    let egress = match eff.network_mode.value {
        NetworkMode::Proxy => Some(Egress::prepare(&eff, &host)?),
        NetworkMode::None => None,
    };
    let spec = compile(&eff, &flags, &host, egress.as_ref())?;
    let events: Option<paddock_proxy::EventSink> = match &a.net_log {
        Some(p) => Some(paddock_proxy::jsonl_sink(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| {
                    CliError::new(
                        "HOST_IO_ERROR",
                        format!("--net-log {}: {e}", p.display()),
                        "choose a writable file",
                    )
                })?,
        ))),
        None if verbose => Some(paddock_proxy::jsonl_sink(Box::new(std::io::stderr()))),
        None => None,
    };
    // The sandbox is created while paddock is single-threaded; the proxy's
    // thread starts after, on the listener pid 1 handed over.
    let mut running = paddock_sandbox::spawn(&spec)?;
    if let (Some(g), Some(listener)) = (&egress, running.proxy_listener.take()) {
        let cfg = g.config(&eff, events)?;
        paddock_proxy::spawn_thread(listener, cfg).map_err(|e| {
            CliError::new(
                "HOST_IO_ERROR",
                format!("starting the egress proxy: {e}"),
                "this is a bug; please report it",
            )
        })?;
    }
    let outcome = running.wait()?;
    drop(egress);
    for created in &outcome.created_protected {
        quarantine(created);
    }
    if verbose {
        let ll = outcome
            .landlock
            .as_ref()
            .map(|l| format!("Landlock ABI {} ({} enforcement)", l.abi, l.enforced))
            .unwrap_or_else(|| "Landlock not reached".into());
        eprintln!("paddock: policy {}", eff.hash());
        eprintln!(
            "paddock: enforced: namespaces user,mount,pid,ipc,uts,net,cgroup; {ll}; seccomp \
             deny list of {} system calls; no capabilities; no_new_privs",
            paddock_sandbox::denied_syscalls().len()
        );
    }
    Ok(outcome.status.code())
}

/// A protected name (`.git`, `.envrc`...) that the sandbox created in a
/// writable folder would be acted on by the host. Move it aside, loudly,
/// losing nothing.
fn quarantine(path: &Path) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".paddock-quarantine-{stamp}"));
    let dest: PathBuf = path.with_file_name(name);
    match std::fs::rename(path, &dest) {
        Ok(()) => eprintln!(
            "paddock: warning[PROTECTED_PATH_CREATED]: the sandbox created {}, which the host \
             acts on by itself; it was moved to {}\n  fix: inspect it; to allow this, run with \
             --unprotect {}",
            path.display(),
            dest.display(),
            path.file_name().unwrap_or_default().to_string_lossy()
        ),
        Err(e) => eprintln!(
            "paddock: warning[PROTECTED_PATH_CREATED]: the sandbox created {} and it could not \
             be moved aside ({e}); inspect it before using tools that act on it",
            path.display()
        ),
    }
}

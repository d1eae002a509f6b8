//! `paddock run`: policy and flags → spec → sandbox → exit code.

use std::path::{Path, PathBuf};

use crate::cli::RunArgs;
use crate::compile::{compile, flags_layer, HostFacts, RunFlags};
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
    let spec = compile(&eff, &flags, &host)?;
    let outcome = paddock_sandbox::run(&spec)?;
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

//! `paddock run`: policy and flags → spec → sandbox → exit code.

use paddock_audit::EventKind;
use std::path::{Path, PathBuf};

use crate::cli::RunArgs;

use crate::compile::{flags_layer, HostFacts, RunFlags};
use crate::error::CliError;
use crate::policy_files;
use paddock_control::run_record::RunAudit;
use paddock_reasons::Reason;

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
    paddock_sys::mark("host: facts");
    let eff = policy_files::effective(&host, a.policy.as_deref(), Some(flags_layer(&flags)?))?;
    paddock_sys::mark("host: policy");
    if a.unsafe_no_sandbox {
        return unsandboxed(&host, &eff, &flags, a.policy.as_deref());
    }
    // The strongest level this host gives, held against the policy's
    // minimum (refused below it, with the missing layer and its fix).
    let choice = crate::isolation::choose(&eff, &host.home)?;
    crate::isolation::warn(&choice);
    paddock_sys::mark("host: isolation level");
    // The run's audit trail: a `oneshot` record in the session store, so
    // that `paddock audit tail --session ID` and gc treat it like any
    // other session's. Its id is chosen now; the record is written once
    // the sandbox is cloned, while its pid 1 builds the filesystem on the
    // other core, off the start-up path.
    let record = RunAudit::plan(&eff)?;
    let paddock_plan::Plan { spec, egress, .. } = paddock_plan::plan(&paddock_plan::Request {
        host: &host,
        eff: &eff,
        flags: &flags,
        level: choice.level,
        purpose: paddock_plan::Purpose::Run {
            record: record.as_deref(),
        },
    })?;
    paddock_sys::mark("host: plan");
    let scratch = Scratch(spec.scratch_dir.clone());
    let level = choice.level.as_str();
    let plan = record;
    let mut events: Option<paddock_proxy::EventSink> = match &a.net_log {
        Some(p) => Some(paddock_proxy::jsonl_sink(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| {
                    CliError::new(
                        Reason::HOST_IO_ERROR.code(),
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
    let started = std::time::Instant::now();
    let policy = a.policy.as_deref();
    let mut running = match paddock_sandbox::spawn(&spec) {
        Ok(r) => r,
        Err(e) => {
            let opened =
                plan.and_then(|id| RunAudit::open(&id, &host, &eff, &flags, policy, level));
            if let Some(au) = opened {
                au.finish(&flags.argv, Err(e.reason_code()), started);
            }
            if matches!(
                e,
                paddock_sandbox::SandboxError::UserNamespaceUnavailable(_)
            ) && choice.cached
            {
                // The host changed since it was probed: probe afresh next time.
                crate::isolation::forget(&host.home);
                let mut err: CliError = e.into();
                err.fix = "the host's isolation changed since paddock last probed it; run the \
                           command again (it probes afresh), or see `paddock doctor`"
                    .into();
                return Err(err);
            }
            return Err(e.into());
        }
    };
    paddock_sys::mark("host: spawned");
    let mut audit = plan.and_then(|id| RunAudit::open(&id, &host, &eff, &flags, policy, level));
    if let Some(au) = &audit {
        events = Some(au.net_sink(events));
    }
    if let Some(au) = &mut audit {
        // The exporter's thread may start now that the sandbox is cloned.
        au.out.start_export();
        au.log.emit(
            EventKind::ExecStart,
            Some(true),
            None,
            &au.caller,
            serde_json::json!({"argv": flags.argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(), "cwd": spec.workdir}),
        );
    }
    let limits_applied = running.limits.clone();
    if let Some(au) = &audit {
        crate::status::save_summary(
            &au.store,
            &au.meta.id,
            &crate::status::summarize(&eff, &spec, &running.limits),
        );
    }
    let records = audit
        .as_ref()
        .and_then(|au| running.control.take().map(|c| au.read_records(c)));
    let mut logins = Vec::new();
    if let (Some(g), Some(listener)) = (&egress, running.proxy_listener.take()) {
        let mut cfg = g.config(&eff, events)?;
        logins = cfg.logins.clone();
        // On the host's loopback (no network namespace): this user only.
        if !choice.level.namespaces() {
            cfg.peer_uid = Some(paddock_sys::getuid());
        }
        paddock_proxy::spawn_thread(listener, running.tun.take(), cfg).map_err(|e| {
            CliError::new(
                Reason::HOST_IO_ERROR.code(),
                format!("starting the egress proxy: {e}"),
                "this is a bug; please report it",
            )
        })?;
    }
    // While the command runs, new protected names in rw mounts are moved
    // aside every second (the final sweep follows the end).
    let sweeping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    {
        let guard = running.guard();
        let sweeping = sweeping.clone();
        let log = audit.as_ref().map(|a| a.log.clone());
        if !guard.is_empty() {
            std::thread::spawn(move || {
                while sweeping.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    if sweeping.load(std::sync::atomic::Ordering::SeqCst) {
                        crate::audit::swept(log.as_deref(), guard.sweep());
                    }
                }
            });
        }
    }
    paddock_sys::mark("host: record written, proxy started");
    let outcome = running.wait();
    paddock_sys::mark("host: sandbox ended");
    // A refresh under way is stored before the proxy ends with paddock.
    let _refreshes = paddock_proxy::finish_refreshes(&logins, std::time::Duration::from_secs(30));
    sweeping.store(false, std::sync::atomic::Ordering::SeqCst);
    if let Some(t) = records {
        let _ = t.join();
    }
    if let Ok(o) = &outcome {
        for q in &o.created_protected {
            crate::audit::quarantined(audit.as_ref().map(|a| &*a.log), q);
        }
    }
    if let Some(au) = audit {
        au.finish(
            &flags.argv,
            outcome
                .as_ref()
                .map(|o| o.status.code())
                .map_err(|e| e.reason_code()),
            started,
        );
    }
    paddock_sys::mark("host: record finished");
    let outcome = outcome?;
    drop(egress);
    if verbose {
        let ll = outcome
            .landlock
            .as_ref()
            .map(|l| format!("Landlock ABI {} ({} enforcement)", l.abi, l.enforced))
            .unwrap_or_else(|| "Landlock not reached".into());
        eprintln!("paddock: policy {}", eff.hash());
        let ns = if choice.level.namespaces() {
            "namespaces user,mount,pid,ipc,uts,net,cgroup"
        } else {
            "no namespaces"
        };
        eprintln!(
            "paddock: enforced (isolation level {level}): {ns}; {ll}; seccomp deny list of {} \
             system calls; no capabilities; no_new_privs",
            paddock_sandbox::denied_syscalls().len()
        );
        if let Some(m) = spec.memory_limit_mib {
            eprintln!(
                "paddock: memory limit {m} MiB, {}",
                match crate::status::memory_scope(&limits_applied) {
                    "sandbox" => "for the whole sandbox (cgroup)",
                    _ => "per process (RLIMIT_AS; no memory cgroup here: see `paddock doctor`)",
                }
            );
        }
    }
    drop(scratch);
    Ok(outcome.status.code())
}

/// Level no-userns: the run's private home and /tmp on the host, removed
/// when the run ends (whatever way it ends).
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            paddock_session::make_writable(d);
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// `paddock run --unsafe-no-sandbox`: the command runs as an ordinary
/// process, said loudly and recorded, unless the policy refuses it.
fn unsandboxed(
    host: &HostFacts,
    eff: &paddock_policy::Effective,
    flags: &RunFlags,
    policy: Option<&Path>,
) -> Result<i32, CliError> {
    if !eff.allow_unsafe_no_sandbox.value {
        return Err(CliError::new(
            Reason::UNSAFE_NO_SANDBOX_REFUSED.code(),
            format!(
                "running without a sandbox is refused by the policy ({})",
                eff.allow_unsafe_no_sandbox.origin.describe()
            ),
            "run without --unsafe-no-sandbox (see `paddock doctor` for what this host lacks)",
        ));
    }
    eprintln!(
        "paddock: WARNING[UNSAFE_NO_SANDBOX]: running `{}` WITHOUT ANY SANDBOX: it can read, \
         change and delete everything your user can, and reach any network. This run is \
         recorded in the audit trail.",
        flags
            .argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let started = std::time::Instant::now();
    let audit =
        RunAudit::plan(eff)?.and_then(|id| RunAudit::open(&id, host, eff, flags, policy, "none"));
    if let Some(au) = &audit {
        au.log.emit(
            EventKind::ExecStart,
            Some(true),
            Some(Reason::UNSAFE_NO_SANDBOX.code()),
            &au.caller,
            serde_json::json!({"argv": flags.argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(), "cwd": host.cwd, "sandbox": false}),
        );
    }
    let status = std::process::Command::new(&flags.argv[0])
        .args(&flags.argv[1..])
        .status();
    let code = match &status {
        Ok(st) => {
            use std::os::unix::process::ExitStatusExt;
            st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 127,
        Err(_) => 126,
    };
    if let Some(au) = audit {
        let r = match &status {
            Ok(_) => Ok(code),
            Err(_) if code == 127 => Err(Reason::EXEC_NOT_FOUND.code()),
            Err(_) => Err(Reason::EXEC_NOT_EXECUTABLE.code()),
        };
        au.finish(&flags.argv, r, started);
    }
    if let Err(e) = status {
        return Err(CliError::new(
            if code == 127 {
                Reason::EXEC_NOT_FOUND.code()
            } else {
                Reason::EXEC_NOT_EXECUTABLE.code()
            },
            format!("{}: {e}", flags.argv[0].to_string_lossy()),
            "check the command's name and permissions",
        )
        .with_exit(code));
    }
    Ok(code)
}

//! From the sandbox's observer records to audit events.

use paddock_audit::EventKind;
use paddock_audit::{Caller, Log};
use paddock_reasons::Reason;
use paddock_sandbox::AuditRecord;

/// Record what pid 1's observer saw a process of exec request `exec_id` do.
pub fn emit_record(log: &Log, caller: &Caller, exec_id: u64, r: &AuditRecord) {
    let mut data = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = data.as_object_mut() {
        o.remove("kind");
        o.remove("allowed");
        o.remove("reason_code");
        if exec_id != 0 {
            o.insert("exec_id".into(), exec_id.into());
        }
    }
    log.emit(r.kind, Some(r.allowed), Some(&r.reason_code), caller, data);
}

/// A session's audit log and, when exporting, its OpenTelemetry exporter.
pub struct AuditOut {
    /// The log every event goes through.
    pub log: std::sync::Arc<Log>,
    exporter: Option<paddock_otlp::Exporter>,
}

impl AuditOut {
    /// Start exporting (a thread: call once the sandbox is cloned).
    pub fn start_export(&mut self) {
        if let Some(x) = &mut self.exporter {
            x.start();
        }
    }

    /// Flush the export (at most two seconds) and stop it.
    pub fn finish(self) {
        if let Some(x) = self.exporter {
            x.shutdown(std::time::Duration::from_secs(2));
        }
    }
}

/// Open a session's log as the policy says: its level, the `jsonl` file
/// (`dir/audit.jsonl`) when that sink is on, and OTLP export when the
/// `otlp` sink or the `OTEL_EXPORTER_OTLP_*` variables ask for it.
pub fn open_log(
    dir: &std::path::Path,
    session: &str,
    policy_hash: &str,
    eff: &paddock_policy::Effective,
    isolation: &str,
    extra: Option<paddock_audit::Sink>,
) -> Result<AuditOut, crate::error::CliError> {
    use crate::error::CliError;
    let jsonl = eff.audit_sinks.iter().any(|s| s.value == "jsonl");
    let mut log = if jsonl {
        Log::open(&dir.join("audit.jsonl"), session, policy_hash).map_err(|e| {
            CliError::new(
                Reason::HOST_IO_ERROR.code(),
                format!("opening {}: {e}", dir.join("audit.jsonl").display()),
                "make the session store writable, or set PADDOCK_HOME",
            )
        })?
    } else {
        Log::without_file(session, policy_hash)
    };
    log = log
        .with_level(eff.audit_level.value)
        .with_isolation(isolation);
    let policy_wants = eff.audit_sinks.iter().any(|s| s.value == "otlp");
    let exporter =
        match paddock_otlp::resolve(policy_wants, eff.otlp_endpoint.value.as_deref(), &|k| {
            std::env::var(k).ok()
        }) {
            Ok(Some(cfg)) if eff.audit_level.value != paddock_policy::AuditLevel::Off => {
                Some(paddock_otlp::Exporter::new(cfg))
            }
            Ok(_) => None,
            Err(msg) if policy_wants => {
                return Err(CliError::new(
                    Reason::AUDIT_OTLP_CONFIG.code(),
                    msg,
                    "the policy asks for OTLP export (audit.sinks); fix the endpoint settings",
                ))
            }
            Err(msg) => {
                eprintln!("paddock: warning[AUDIT_OTLP_CONFIG]: not exporting: {msg}");
                None
            }
        };
    if let Some(x) = &exporter {
        log = log.with_sink(x.sink());
    }
    if let Some(s) = extra {
        log = log.with_sink(s);
    }
    Ok(AuditOut {
        log: std::sync::Arc::new(log),
        exporter,
    })
}

/// The caller of a `paddock run`: `PADDOCK_TOOL_CALL_ID`, `PADDOCK_AGENT`
/// and `TRACEPARENT` from the environment.
pub fn caller_from_env() -> Caller {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Caller {
        tool_call_id: env("PADDOCK_TOOL_CALL_ID"),
        agent: env("PADDOCK_AGENT"),
        traceparent: env("TRACEPARENT"),
    }
}

/// The outcome of one sweep: each name moved aside reported; a sweep that
/// could not read every folder said once.
pub fn swept(
    log: Option<&paddock_audit::Log>,
    (moved, complete): (Vec<paddock_sandbox::guard::Quarantined>, bool),
) {
    for q in &moved {
        quarantined(log, q);
    }
    if !complete {
        eprintln!(
            "paddock: warning[PROTECTED_SWEEP_INCOMPLETE]: a folder in a writable mount could not be read (not yours, or over the folder budget); protected names in it were not checked"
        );
    }
}

/// A protected name (`.git`, `.envrc`...) that the sandbox created in a
/// writable folder would be acted on by the host: the sweep moved it
/// aside; say so, loudly, and record it (`file.protected`,
/// PROTECTED_PATH_CREATED) when there is an audit log.
pub fn quarantined(log: Option<&paddock_audit::Log>, q: &paddock_sandbox::guard::Quarantined) {
    if let Some(log) = log {
        log.emit(
            EventKind::FileProtected,
            Some(false),
            Some(Reason::PROTECTED_PATH_CREATED.code()),
            &paddock_audit::Caller::default(),
            serde_json::json!({
                "path": q.path,
                "moved_to": q.moved_to.as_ref().ok(),
                "error": q.moved_to.as_ref().err(),
            }),
        );
    }
    use paddock_session::text::safe_path;
    let name = safe_path(std::path::Path::new(q.path.file_name().unwrap_or_default()));
    match &q.moved_to {
        Ok(dest) => eprintln!(
            "paddock: warning[PROTECTED_PATH_CREATED]: {} appeared in a writable folder while the \
             sandbox ran (the host acts on it by itself); it was moved to {}\n  fix: inspect it \
             (if you made it yourself meanwhile, move it back); to allow this, run with \
             --unprotect {name}",
            safe_path(&q.path),
            safe_path(dest),
        ),
        Err(e) => eprintln!(
            "paddock: warning[PROTECTED_PATH_CREATED]: the sandbox created {} and it could not \
             be moved aside ({e}); inspect it before using tools that act on it",
            safe_path(&q.path)
        ),
    }
}

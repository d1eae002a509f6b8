//! From the sandbox's observer records to audit events.

use paddock_audit::{Caller, Log};
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
    log.emit(&r.kind, Some(r.allowed), Some(&r.reason_code), caller, data);
}

/// The audit log's level for the policy's.
pub fn level(l: paddock_policy::AuditLevel) -> paddock_audit::Level {
    use paddock_audit::Level as A;
    use paddock_policy::AuditLevel as P;
    match l {
        P::Off => A::Off,
        P::Denied => A::Denied,
        P::Writes => A::Writes,
        P::All => A::All,
    }
}

/// Open a session's log as the policy says: its level, and the `jsonl`
/// file (`dir/audit.jsonl`) when that sink is on.
pub fn open_log(
    dir: &std::path::Path,
    session: &str,
    policy_hash: &str,
    eff: &paddock_policy::Effective,
) -> std::io::Result<Log> {
    let jsonl = eff.audit_sinks.iter().any(|s| s.value == "jsonl");
    let log = if jsonl {
        Log::open(&dir.join("audit.jsonl"), session, policy_hash)?
    } else {
        Log::without_file(session, policy_hash)
    };
    Ok(log.with_level(level(eff.audit_level.value)))
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

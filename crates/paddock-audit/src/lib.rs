//! Audit events: what ran, what was decided, with session identity.
//!
//! Every event is one JSON object on one line of the session's
//! `audit.jsonl`, written with a single `write` to a file opened in append
//! mode: concurrent writers never interleave inside a line, and a crash can
//! at worst leave an incomplete *last* line, which [`read`] skips. Each
//! event carries the session id, a per-log sequence number, the policy hash
//! and, when the caller gave them, the tool call id, the agent's name and a
//! W3C `traceparent`.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How much is recorded (the policy's `audit.level`).
pub use paddock_types::AuditLevel as Level;
pub use paddock_types::EventKind;

use serde::{Deserialize, Serialize};

/// Who asked for an action (from `--tool-call-id`, `PADDOCK_TOOL_CALL_ID`,
/// `PADDOCK_AGENT`, `TRACEPARENT`, or an MCP call).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The agent's tool call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The agent's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// W3C trace context of the agent's span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unix time, milliseconds.
    pub ts_ms: u128,
    /// Position in this log, from 1.
    pub seq: u64,
    /// Session id.
    pub session: String,
    /// Effective policy hash.
    pub policy_hash: String,
    /// The sandbox's isolation level (`full`, `landlock-unavailable`,
    /// `no-userns`, or `none` for an explicit unsandboxed run).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub isolation: String,
    /// `session.start`, `session.stop`, `exec.start`, `exec.exit`,
    /// `net.decision`, ...
    pub kind: String,
    /// Whether the action was allowed (decisions and denials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<bool>,
    /// Stable reason code (docs/reason-codes.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// Who asked.
    #[serde(flatten)]
    pub caller: Caller,
    /// Where it happened beyond the session, by OpenTelemetry attribute
    /// name: a container's `container.id`, its pod's `k8s.pod.name`,
    /// `k8s.namespace.name`, ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Event-specific fields.
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Where else an event goes (an OpenTelemetry exporter, a live view).
pub type Sink = std::sync::Arc<dyn Fn(&Event) + Send + Sync>;

/// An append-only log.
pub struct Log {
    file: Option<Mutex<File>>,
    seq: AtomicU64,
    session: String,
    policy_hash: String,
    isolation: String,
    labels: BTreeMap<String, String>,
    level: Level,
    sinks: Vec<Sink>,
    lock: Mutex<()>,
}

impl Log {
    /// Open (or create) `path` for appending; numbering continues after the
    /// events already there. Records everything until told otherwise
    /// ([`Log::with_level`]).
    pub fn open(path: &Path, session: &str, policy_hash: &str) -> std::io::Result<Log> {
        let last = read(path).last().map_or(0, |e| e.seq);
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        // A line torn by a crash is closed, so the next event starts clean.
        let torn = std::fs::read(path).is_ok_and(|d| d.last().is_some_and(|b| *b != b'\n'));
        if torn {
            file.write_all(b"\n")?;
        }
        let mut log = Log::without_file(session, policy_hash);
        log.file = Some(Mutex::new(file));
        log.seq = AtomicU64::new(last);
        Ok(log)
    }

    /// A log with no file (events go to sinks only).
    pub fn without_file(session: &str, policy_hash: &str) -> Log {
        Log {
            file: None,
            seq: AtomicU64::new(0),
            session: session.to_string(),
            policy_hash: policy_hash.to_string(),
            isolation: String::new(),
            labels: BTreeMap::new(),
            level: Level::All,
            sinks: Vec::new(),
            lock: Mutex::new(()),
        }
    }

    /// Record only what `level` asks for.
    pub fn with_level(mut self, level: Level) -> Log {
        self.level = level;
        self
    }

    /// Stamp every event with the sandbox's isolation level.
    pub fn with_isolation(mut self, level: &str) -> Log {
        self.isolation = level.to_string();
        self
    }

    /// Stamp every event with `labels` (see [`Event::labels`]).
    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> Log {
        self.labels = labels;
        self
    }

    /// Also hand every recorded event to `sink`.
    pub fn with_sink(mut self, sink: Sink) -> Log {
        self.sinks.push(sink);
        self
    }

    /// The session id.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// Whether an event of `kind` is recorded at this log's level.
    pub fn wants(&self, kind: EventKind, allowed: Option<bool>) -> bool {
        match self.level {
            Level::Off => false,
            Level::Denied => allowed == Some(false) || kind.is_session(),
            Level::Writes => !matches!(kind, EventKind::FileRead | EventKind::NetConnect),
            Level::All => true,
        }
    }

    /// Record one event.
    pub fn emit(
        &self,
        kind: EventKind,
        allowed: Option<bool>,
        reason_code: Option<&str>,
        caller: &Caller,
        data: serde_json::Value,
    ) {
        if !self.wants(kind, allowed) {
            return;
        }
        let _order = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // Numbered under the lock, so the file is in sequence order.
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let ev = Event {
            ts_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
            seq,
            session: self.session.clone(),
            policy_hash: self.policy_hash.clone(),
            isolation: self.isolation.clone(),
            kind: kind.to_string(),
            allowed,
            reason_code: reason_code.map(str::to_string),
            caller: caller.clone(),
            labels: self.labels.clone(),
            data,
        };
        if let Some(file) = &self.file {
            if let Ok(mut line) = serde_json::to_vec(&ev) {
                line.push(b'\n');
                // One write of the whole line (O_APPEND): never interleaved.
                let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                let _ = f.write_all(&line);
            }
        }
        for s in &self.sinks {
            s(&ev);
        }
    }
}

/// Every complete event in `path` (an incomplete or damaged line, as a
/// crash can leave at the end, is skipped).
pub fn read(path: &Path) -> Vec<Event> {
    let Ok(data) = std::fs::read(path) else {
        return Vec::new();
    };
    data.split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Event>(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_and_survive_a_torn_last_line() {
        let p =
            std::env::temp_dir().join(format!("paddock-audit-test-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let log = Log::open(&p, "s1", "sha256:x").unwrap();
        let c = Caller {
            tool_call_id: Some("call-1".into()),
            ..Caller::default()
        };
        log.emit(
            EventKind::ExecStart,
            None,
            None,
            &c,
            serde_json::json!({"argv": ["true"]}),
        );
        log.emit(
            EventKind::NetDecision,
            Some(false),
            Some("NET_DOMAIN_NOT_ALLOWED"),
            &Caller::default(),
            serde_json::json!({"host": "x"}),
        );
        // A crash in the middle of a write.
        OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(br#"{"ts_ms":1,"seq":3,"sess"#)
            .unwrap();
        let evs = read(&p);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].seq, 1);
        assert_eq!(evs[0].caller.tool_call_id.as_deref(), Some("call-1"));
        assert_eq!(
            evs[1].reason_code.as_deref(),
            Some("NET_DOMAIN_NOT_ALLOWED")
        );
        // Reopening continues the numbering.
        let log = Log::open(&p, "s1", "sha256:x").unwrap();
        log.emit(
            EventKind::SessionStop,
            None,
            None,
            &Caller::default(),
            serde_json::Value::Null,
        );
        assert_eq!(read(&p).last().unwrap().seq, 3);
        let _ = std::fs::remove_file(&p);
    }
}

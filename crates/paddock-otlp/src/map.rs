//! Audit events → OTLP spans and log records.
//!
//! - `exec.start` … `exec.exit` of one command → one span `execute_tool
//!   {tool}` (GenAI semantic conventions), kind INTERNAL, status ERROR
//!   when the command failed to start or exited non-zero.
//! - Everything else → a log record whose `event_name` is `paddock.<kind>`,
//!   severity WARN for denials and INFO otherwise, carrying the trace and
//!   span of the command that caused it.
//!
//! Trace ids: the caller's `TRACEPARENT` when given (the command's span
//! then nests under the agent's), else one trace per session, derived from
//! the session id so that every exporter of it agrees.

use std::collections::HashMap;

use paddock_audit::Event;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::wire::{self, AnyValue, KeyValue, Value};
use crate::Config;

struct Open {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    start_ns: u64,
    attrs: Vec<KeyValue>,
    tool: String,
}

impl Open {
    /// The finished span: ERROR status when `failed`, OK otherwise.
    fn into_span(self, end_ns: u64, message: String, failed: bool) -> wire::Span {
        wire::Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            trace_state: String::new(),
            parent_span_id: self.parent,
            name: format!("execute_tool {}", self.tool),
            kind: 1,
            start_time_unix_nano: self.start_ns,
            end_time_unix_nano: end_ns.max(self.start_ns),
            attributes: self.attrs,
            status: Some(wire::Status {
                message,
                code: if failed { 2 } else { 1 },
            }),
            // W3C trace flags: sampled.
            flags: 0x01,
        }
    }
}

/// Builds batches from events.
pub struct Mapper {
    resource: wire::Resource,
    open: HashMap<u64, Open>,
    spans: Vec<wire::Span>,
    logs: Vec<wire::LogRecord>,
}

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn digest(parts: &[&str], len: usize) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()[..len].to_vec()
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// (trace id, parent span id) of a W3C `traceparent`
/// (`00-<32 hex>-<16 hex>-<2 hex>`), when well formed and not all zero.
pub fn parse_traceparent(tp: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let parts: Vec<&str> = tp.trim().split('-').collect();
    if parts.len() < 4 || parts[0].len() != 2 || parts[0] == "ff" {
        return None;
    }
    let (t, p) = (hex(parts[1])?, hex(parts[2])?);
    (t.len() == 16 && p.len() == 8 && t.iter().any(|b| *b != 0) && p.iter().any(|b| *b != 0))
        .then_some((t, p))
}

fn any_of(v: &serde_json::Value) -> Option<Value> {
    Some(match v {
        serde_json::Value::String(x) => Value::String(x.clone()),
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Double(n.as_f64()?),
        },
        serde_json::Value::Array(a) => Value::Array(wire::ArrayValue {
            values: a
                .iter()
                .filter_map(any_of)
                .map(|v| AnyValue { value: Some(v) })
                .collect(),
        }),
        serde_json::Value::Null => return None,
        other => Value::String(other.to_string()),
    })
}

/// The attribute name of an event's data field.
fn attr_name(field: &str) -> String {
    match field {
        "pid" => "process.pid".into(),
        "path" => "file.path".into(),
        "to" => "paddock.file.destination".into(),
        "argv" => "process.command_args".into(),
        "addr" => "network.peer.address".into(),
        "host" => "server.address".into(),
        "port" => "server.port".into(),
        "method" => "http.request.method".into(),
        other => format!("paddock.{other}"),
    }
}

fn ns(ms: u128) -> u64 {
    u64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(u64::MAX)
}

impl Mapper {
    /// A mapper for `cfg`'s resource.
    pub fn new(cfg: &Config) -> Mapper {
        let mut attrs = vec![
            kv("service.name", s(cfg.service_name.clone())),
            kv("service.version", s(env!("CARGO_PKG_VERSION"))),
        ];
        for (k, v) in &cfg.resource {
            if k != "service.name" {
                attrs.push(kv(k, s(v.clone())));
            }
        }
        Mapper {
            resource: wire::Resource { attributes: attrs },
            open: HashMap::new(),
            spans: Vec::new(),
            logs: Vec::new(),
        }
    }

    fn common(e: &Event) -> Vec<KeyValue> {
        let mut a = vec![
            kv("session.id", s(e.session.clone())),
            kv("paddock.policy.hash", s(e.policy_hash.clone())),
            kv("paddock.event.seq", Value::Int(e.seq as i64)),
        ];
        if !e.isolation.is_empty() {
            a.push(kv("paddock.isolation", s(e.isolation.clone())));
        }
        if let Some(c) = &e.caller.tool_call_id {
            a.push(kv("gen_ai.tool.call.id", s(c.clone())));
        }
        if let Some(g) = &e.caller.agent {
            a.push(kv("gen_ai.agent.name", s(g.clone())));
        }
        for (k, v) in &e.labels {
            a.push(kv(k, s(v.clone())));
        }
        a
    }

    fn exec_key(e: &Event) -> u64 {
        e.data["exec_id"].as_u64().unwrap_or(0)
    }

    /// Take in one event.
    pub fn push(&mut self, e: &Event) {
        match e.kind.as_str() {
            "exec.start" => {
                let (trace_id, parent) = e
                    .caller
                    .traceparent
                    .as_deref()
                    .and_then(parse_traceparent)
                    .unwrap_or_else(|| (digest(&["paddock-trace", &e.session], 16), Vec::new()));
                let argv: Vec<String> = e.data["argv"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let tool = argv
                    .first()
                    .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
                    .unwrap_or_else(|| "command".into());
                let mut attrs = Self::common(e);
                attrs.extend([
                    kv("gen_ai.operation.name", s("execute_tool")),
                    kv("gen_ai.tool.name", s(tool.clone())),
                    kv("gen_ai.tool.type", s("extension")),
                    kv("process.executable.name", s(tool.clone())),
                ]);
                if let Some(a) = any_of(&e.data["argv"]) {
                    attrs.push(kv("process.command_args", a));
                }
                if let Some(p) = e.data["pid"].as_i64() {
                    attrs.push(kv("process.pid", Value::Int(p)));
                }
                if let Some(c) = e.data["cwd"].as_str() {
                    attrs.push(kv("process.working_directory", s(c)));
                }
                let span_id = digest(&["paddock-span", &e.session, &e.seq.to_string()], 8);
                self.open.insert(
                    Self::exec_key(e),
                    Open {
                        trace_id,
                        span_id,
                        parent,
                        start_ns: ns(e.ts_ms),
                        attrs,
                        tool,
                    },
                );
            }
            "exec.exit" => {
                let o = self
                    .open
                    .remove(&Self::exec_key(e))
                    .unwrap_or_else(|| Open {
                        trace_id: digest(&["paddock-trace", &e.session], 16),
                        span_id: digest(&["paddock-span", &e.session, &e.seq.to_string()], 8),
                        parent: Vec::new(),
                        start_ns: ns(e.ts_ms),
                        attrs: Self::common(e),
                        tool: "command".into(),
                    });
                let mut attrs = o.attrs;
                let code = e.data["exit_code"].as_i64();
                if let Some(c) = code {
                    attrs.push(kv("process.exit.code", Value::Int(c)));
                }
                let failed = e.allowed == Some(false) || code.is_some_and(|c| c != 0);
                let message = match (&e.reason_code, code) {
                    (Some(r), _) => r.clone(),
                    (None, Some(c)) if c != 0 => format!("exit code {c}"),
                    _ => String::new(),
                };
                if let Some(r) = &e.reason_code {
                    attrs.push(kv("error.type", s(r.clone())));
                }
                let end = ns(e.ts_ms);
                self.spans
                    .push(Open { attrs, ..o }.into_span(end, message, failed));
            }
            kind => {
                let mut attrs = Self::common(e);
                if let Some(a) = e.allowed {
                    attrs.push(kv("paddock.allowed", Value::Bool(a)));
                }
                if let Some(r) = &e.reason_code {
                    attrs.push(kv("paddock.reason_code", s(r.clone())));
                }
                if let Some(obj) = e.data.as_object() {
                    for (k, v) in obj {
                        if let Some(val) = any_of(v) {
                            attrs.push(kv(&attr_name(k), val));
                        }
                    }
                }
                let (trace_id, span_id) = self
                    .open
                    .get(&Self::exec_key(e))
                    .map(|o| (o.trace_id.clone(), o.span_id.clone()))
                    .unwrap_or_default();
                let denied = e.allowed == Some(false);
                let t = ns(e.ts_ms);
                self.logs.push(wire::LogRecord {
                    time_unix_nano: t,
                    observed_time_unix_nano: t,
                    severity_number: if denied { 13 } else { 9 },
                    severity_text: if denied { "WARN" } else { "INFO" }.into(),
                    body: Some(AnyValue {
                        value: Some(s(match &e.reason_code {
                            Some(r) => format!("{kind} {r}"),
                            None => kind.to_string(),
                        })),
                    }),
                    attributes: attrs,
                    trace_id,
                    span_id,
                    event_name: format!("paddock.{kind}"),
                });
            }
        }
    }

    fn scope() -> Option<wire::InstrumentationScope> {
        Some(wire::InstrumentationScope {
            name: "paddock".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// The bodies of the next trace and log requests (None: nothing to send).
    pub fn take(&mut self) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let spans = std::mem::take(&mut self.spans);
        let logs = std::mem::take(&mut self.logs);
        let traces = (!spans.is_empty()).then(|| {
            wire::ExportTraceServiceRequest {
                resource_spans: vec![wire::ResourceSpans {
                    resource: Some(self.resource.clone()),
                    scope_spans: vec![wire::ScopeSpans {
                        scope: Self::scope(),
                        spans,
                    }],
                }],
            }
            .encode_to_vec()
        });
        let logs = (!logs.is_empty()).then(|| {
            wire::ExportLogsServiceRequest {
                resource_logs: vec![wire::ResourceLogs {
                    resource: Some(self.resource.clone()),
                    scope_logs: vec![wire::ScopeLogs {
                        scope: Self::scope(),
                        log_records: logs,
                    }],
                }],
            }
            .encode_to_vec()
        });
        (traces, logs)
    }

    /// End every open span now (the session ended under them) and return
    /// the final bodies.
    pub fn close_all(&mut self) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        for (_, o) in self.open.drain() {
            self.spans.push(o.into_span(
                ns(now),
                "the session ended while the command ran".into(),
                true,
            ));
        }
        self.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as RefValue;

    fn ev(seq: u64, kind: &str, allowed: Option<bool>, data: serde_json::Value) -> Event {
        Event {
            ts_ms: 1_700_000_000_000 + u128::from(seq),
            seq,
            session: "abc123".into(),
            policy_hash: "sha256:x".into(),
            isolation: "full".into(),
            kind: kind.into(),
            allowed,
            reason_code: (allowed == Some(false)).then(|| "FS_WRITE_READ_ONLY".to_string()),
            caller: paddock_audit::Caller {
                tool_call_id: Some("call_7".into()),
                agent: Some("claude".into()),
                traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            },
            labels: [("container.id".to_string(), "c0ffee".to_string())].into(),
            data,
        }
    }

    #[test]
    fn a_command_is_a_span_under_the_callers_trace_and_its_denials_are_logs() {
        let cfg = crate::resolve(true, None, &|_| None).unwrap().unwrap();
        let mut m = Mapper::new(&cfg);
        m.push(&ev(
            1,
            "exec.start",
            Some(true),
            serde_json::json!({"argv": ["/usr/bin/git", "push"], "pid": 7, "exec_id": 3}),
        ));
        m.push(&ev(
            2,
            "file.denied",
            Some(false),
            serde_json::json!({"path": "/usr/x", "pid": 9, "exec_id": 3}),
        ));
        m.push(&ev(
            3,
            "exec.exit",
            None,
            serde_json::json!({"exit_code": 1, "exec_id": 3}),
        ));
        let (t, l) = m.take();
        let t = ExportTraceServiceRequest::decode(t.unwrap().as_slice()).unwrap();
        let span = &t.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.name, "execute_tool git");
        assert_eq!(
            hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            span.trace_id
        );
        assert_eq!(hex("b7ad6b7169203331").unwrap(), span.parent_span_id);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        let attr = |k: &str| {
            span.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone()?.value)
        };
        assert_eq!(
            attr("gen_ai.tool.call.id"),
            Some(RefValue::StringValue("call_7".into()))
        );
        assert_eq!(attr("process.exit.code"), Some(RefValue::IntValue(1)));
        // A container's labels reach every span and record.
        assert_eq!(
            attr("container.id"),
            Some(RefValue::StringValue("c0ffee".into()))
        );
        let l = ExportLogsServiceRequest::decode(l.unwrap().as_slice()).unwrap();
        let rec = &l.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.event_name, "paddock.file.denied");
        assert!(rec.attributes.iter().any(|a| a.key == "container.id"));
        assert_eq!(rec.severity_number, 13);
        assert_eq!(rec.span_id, span.span_id);
    }

    #[test]
    fn traceparent_is_validated() {
        assert!(
            parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_some()
        );
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01").is_none()
        );
        assert!(parse_traceparent("garbage").is_none());
        assert!(parse_traceparent("00-0af7-b7ad-01").is_none());
    }
}

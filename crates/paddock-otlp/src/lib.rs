//! OpenTelemetry export of audit events.
//!
//! Each session (and each `paddock run`) that exports gets one
//! [`Exporter`]: a thread that turns audit events into OTLP and posts them
//! over HTTP (protobuf) to a collector, in batches, off the path of the
//! commands being audited. Commands become spans named per the GenAI
//! semantic conventions (`execute_tool {tool}`, with `gen_ai.tool.name`,
//! `gen_ai.tool.call.id`, `session.id` and `process.*`), nested under the
//! agent's own span when the caller passed a W3C `TRACEPARENT`; every
//! other event (file change, denial, network decision) becomes a log
//! record attached to the span of the command that caused it.
//!
//! The JSONL file stays the record of truth: if the collector is down,
//! the export drops batches (and says so on stderr) rather than slowing
//! the sandbox or growing without bound.

#![forbid(unsafe_code)]

mod map;
mod transport;
pub mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paddock_audit::Event;

pub use map::Mapper;
pub use transport::Endpoint;

/// Where and how to export.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `…/v1/traces`.
    pub traces: Endpoint,
    /// `…/v1/logs`.
    pub logs: Endpoint,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
    /// `service.name` (`OTEL_SERVICE_NAME`, default `paddock`).
    pub service_name: String,
    /// More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource: Vec<(String, String)>,
    /// Per request (`OTEL_EXPORTER_OTLP_TIMEOUT`, milliseconds; default 10 s).
    pub timeout: Duration,
}

/// The collector's default OTLP/HTTP address.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// Work out the export configuration from the policy (`audit.sinks`
/// contains `otlp`; `audit.otlp_endpoint`) and the standard
/// `OTEL_EXPORTER_OTLP_*` variables read through `env`.
///
/// Export is on when the policy asks for it or an OTLP endpoint variable
/// is set; `OTEL_SDK_DISABLED=true` turns off only the latter (a policy's
/// export is the administrator's, not the caller's, to switch off). The
/// policy's endpoint wins over the variables'. Returns a message with the
/// fix for a setting paddock cannot honour.
pub fn resolve(
    policy_wants: bool,
    policy_endpoint: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Config>, String> {
    let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let base_env = var("OTEL_EXPORTER_OTLP_ENDPOINT");
    let traces_env = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let logs_env = var("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT");
    let env_wants = base_env.is_some() || traces_env.is_some() || logs_env.is_some();
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !policy_wants && (!env_wants || disabled) {
        return Ok(None);
    }
    for k in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    ] {
        if let Some(p) = var(k) {
            if p != "http/protobuf" {
                return Err(format!(
                    "{k}={p} is not supported: paddock exports OTLP over HTTP with protobuf \
                     bodies. Fix: set {k}=http/protobuf and point the endpoint at the \
                     collector's HTTP receiver (port 4318 by default)"
                ));
            }
        }
    }
    let join = |base: &str, signal: &str| format!("{}/v1/{signal}", base.trim_end_matches('/'));
    let (traces, logs) = match policy_endpoint {
        Some(p) => (join(p, "traces"), join(p, "logs")),
        None => {
            let base = base_env.as_deref().unwrap_or(DEFAULT_ENDPOINT);
            (
                traces_env.unwrap_or_else(|| join(base, "traces")),
                logs_env.unwrap_or_else(|| join(base, "logs")),
            )
        }
    };
    let pairs = |s: Option<String>| -> Vec<(String, String)> {
        s.unwrap_or_default()
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), percent_decode(v.trim())))
            .filter(|(k, _)| !k.is_empty())
            .collect()
    };
    let timeout_ms = var("OTEL_EXPORTER_OTLP_TIMEOUT")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(10_000);
    Ok(Some(Config {
        traces: Endpoint::parse(&traces)?,
        logs: Endpoint::parse(&logs)?,
        headers: pairs(var("OTEL_EXPORTER_OTLP_HEADERS")),
        service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| "paddock".into()),
        resource: pairs(var("OTEL_RESOURCE_ATTRIBUTES")),
        timeout: Duration::from_millis(timeout_ms.max(100)),
    }))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
            {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How many events may wait for export before new ones are dropped.
const QUEUE: usize = 16_384;
/// Events per request, at most.
const BATCH: usize = 512;
/// How long an event may wait for its batch.
const LINGER: Duration = Duration::from_millis(500);

/// An export: events queue from [`Exporter::sink`] as soon as it exists;
/// they are sent once [`Exporter::start`] has started the thread (which a
/// process that still has to clone a sandbox defers, see
/// `paddock_sandbox::spawn`).
pub struct Exporter {
    tx: Arc<Mutex<Option<SyncSender<Event>>>>,
    pending: Option<(Config, mpsc::Receiver<Event>)>,
    thread: Option<std::thread::JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
}

impl Exporter {
    /// An export to `cfg`, not started yet.
    pub fn new(cfg: Config) -> Exporter {
        let (tx, rx) = mpsc::sync_channel::<Event>(QUEUE);
        Exporter {
            tx: Arc::new(Mutex::new(Some(tx))),
            pending: Some((cfg, rx)),
            thread: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Start the export thread (once).
    pub fn start(&mut self) {
        let Some((cfg, rx)) = self.pending.take() else {
            return;
        };
        self.thread = Some(std::thread::spawn(move || {
            let mut mapper = Mapper::new(&cfg);
            let mut pending = 0usize;
            let mut since = Instant::now();
            let mut failures = 0u64;
            loop {
                let msg = rx.recv_timeout(LINGER);
                let closed = matches!(msg, Err(RecvTimeoutError::Disconnected));
                if let Ok(ev) = msg {
                    mapper.push(&ev);
                    pending += 1;
                }
                let due = pending > 0 && (pending >= BATCH || since.elapsed() >= LINGER || closed);
                if due {
                    let (traces, logs) = mapper.take();
                    for (ep, body) in [(&cfg.traces, traces), (&cfg.logs, logs)] {
                        let Some(body) = body else { continue };
                        if let Err(e) = transport::post(ep, &body, &cfg.headers, cfg.timeout) {
                            failures += 1;
                            if failures == 1 || failures.is_multiple_of(100) {
                                eprintln!(
                                    "paddock: warning[AUDIT_OTLP_EXPORT_FAILED]: {} ({failures} \
                                     batch(es) lost so far): {e}\n  fix: start the collector or \
                                     correct audit.otlp_endpoint / OTEL_EXPORTER_OTLP_ENDPOINT; \
                                     the session's audit.jsonl keeps every event",
                                    ep.url
                                );
                            }
                        }
                    }
                    pending = 0;
                    since = Instant::now();
                }
                if closed {
                    // Commands still open at the end get their span, cut
                    // short, rather than vanish.
                    if let (Some(body), _) = mapper.close_all() {
                        let _ = transport::post(&cfg.traces, &body, &cfg.headers, cfg.timeout);
                    }
                    break;
                }
                if pending == 0 {
                    since = Instant::now();
                }
            }
        }));
    }

    /// A sink for [`paddock_audit::Log::with_sink`]. Never blocks: when the
    /// queue is full the event is counted and dropped from the export (the
    /// JSONL file still has it).
    pub fn sink(&self) -> paddock_audit::Sink {
        let tx = self.tx.clone();
        let dropped = self.dropped.clone();
        Arc::new(move |e: &Event| {
            let g = tx.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(tx) = g.as_ref() {
                if tx.try_send(e.clone()).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    }

    /// Send what is queued and stop. Waits at most `limit`.
    pub fn shutdown(mut self, limit: Duration) {
        self.start();
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + limit;
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        let d = self.dropped.load(Ordering::Relaxed);
        if d > 0 {
            eprintln!(
                "paddock: warning[AUDIT_OTLP_QUEUE_FULL]: {d} event(s) were not exported (the \
                 collector could not keep up); audit.jsonl has them"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| v.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone())
    }

    #[test]
    fn export_is_off_unless_asked() {
        assert_eq!(resolve(false, None, &env_of(&[])).unwrap(), None);
        let c = resolve(true, None, &env_of(&[])).unwrap().unwrap();
        assert_eq!(c.traces.url, "http://localhost:4318/v1/traces");
        assert_eq!(c.logs.url, "http://localhost:4318/v1/logs");
    }

    #[test]
    fn standard_variables_are_honoured() {
        let e = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "https://logs.example/custom",
            ),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20abc, x-team=sec",
            ),
            ("OTEL_SERVICE_NAME", "agent-box"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]);
        let c = resolve(false, None, &e).unwrap().unwrap();
        assert_eq!(c.traces.url, "http://collector:4318/v1/traces");
        assert_eq!(c.logs.url, "https://logs.example/custom");
        assert_eq!(
            c.headers,
            vec![
                ("authorization".into(), "Bearer abc".into()),
                ("x-team".into(), "sec".into())
            ]
        );
        assert_eq!(c.service_name, "agent-box");
        assert_eq!(c.timeout, Duration::from_millis(2500));
        // The policy's endpoint wins; OTEL_SDK_DISABLED cannot turn off a
        // policy's export, only the caller's own.
        let e = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://mine:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        let c = resolve(true, Some("http://admin:4318"), &e)
            .unwrap()
            .unwrap();
        assert_eq!(c.traces.url, "http://admin:4318/v1/traces");
        assert_eq!(resolve(false, None, &e).unwrap(), None);
    }

    #[test]
    fn unsupported_protocols_say_what_to_do() {
        let e = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        let err = resolve(false, None, &e).unwrap_err();
        assert!(
            err.contains("http/protobuf") && err.contains("4318"),
            "{err}"
        );
        let err = resolve(true, Some("ftp://x"), &env_of(&[])).unwrap_err();
        assert!(err.contains("http:// or https://"), "{err}");
    }
}

//! `paddock dashboard`: the status, live, in a browser (see the
//! `paddock-dashboard` crate for the server and its guards).

use std::sync::Arc;

use paddock_session::Store;

use crate::compile::HostFacts;
use crate::error::CliError;
use crate::status::{self, Isolation};
use paddock_reasons::Reason;

struct Local {
    store: Store,
    isolation: Isolation,
    host: HostFacts,
}

impl paddock_dashboard::Backend for Local {
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(status::collect_with(&self.store, self.isolation.clone()))
            .unwrap_or_default()
    }

    fn events(&self, session: &str, after: u64) -> Vec<serde_json::Value> {
        let Ok(meta) = self.store.load(session) else {
            return Vec::new();
        };
        let evs = paddock_audit::read(&self.store.dir(&meta.id).join("audit.jsonl"));
        let fresh: Vec<_> = evs.into_iter().filter(|e| e.seq > after).collect();
        // A first look at a long trail starts with its latest events.
        let skip = fresh.len().saturating_sub(2000);
        fresh
            .into_iter()
            .skip(skip)
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect()
    }

    fn policy(&self, session: &str) -> Result<serde_json::Value, String> {
        let meta = self.store.load(session).map_err(|e| e.to_string())?;
        let data = std::fs::read(self.store.dir(&meta.id).join("summary.json"))
            .map_err(|_| "the session's sandbox has not started yet".to_string())?;
        let s: status::SandboxSummary = serde_json::from_slice(&data).map_err(|e| e.to_string())?;
        serde_json::to_value(s.policy).map_err(|e| e.to_string())
    }

    fn diff(&self, session: &str) -> Result<String, String> {
        let meta = self.store.load(session).map_err(|e| e.to_string())?;
        let changes = paddock_session::cow::changes(
            &self.store.dir(&meta.id),
            &crate::supervisor::session_protected(&meta),
        )
        .map_err(|e| e.to_string())?;
        Ok(changes
            .iter()
            .map(paddock_session::cow::unified)
            .collect::<String>())
    }

    fn stop(&self, session: &str) -> Result<String, String> {
        let meta = self.store.load(session).map_err(|e| e.to_string())?;
        match crate::supervisor::stop(&self.store, &meta) {
            Ok(true) => Ok(format!("session {} stopped", meta.label())),
            Ok(false) => Ok(format!("session {} was not running", meta.label())),
            Err(e) => Err(e.message),
        }
    }

    fn gc(&self) -> Result<serde_json::Value, String> {
        let eff = crate::policy_files::effective(&self.host, None, None).map_err(|e| e.message)?;
        let r = self
            .store
            .gc(crate::supervisor::retention(&eff), false)
            .map_err(|e| e.to_string())?;
        serde_json::to_value(r).map_err(|e| e.to_string())
    }
}

/// Serve until Ctrl-C.
pub fn dashboard(port: u16) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let store = Store::locate(&host.home);
    let listener = std::net::TcpListener::bind(paddock_dashboard::loopback(port)).map_err(|e| {
        CliError::new(
            Reason::DASHBOARD_BIND.code(),
            format!("cannot listen on 127.0.0.1:{port}: {e}"),
            "choose another port with --port, or 0 for any free one",
        )
    })?;
    let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    let token = paddock_dashboard::new_token().map_err(|e| {
        CliError::new(
            Reason::HOST_IO_ERROR.code(),
            format!("reading /dev/urandom: {e}"),
            "",
        )
    })?;
    let backend = Local {
        isolation: status::probe_isolation(&host),
        store,
        host,
    };
    // Whoever started us may stop reading: not a reason to stop serving.
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "paddock dashboard: http://127.0.0.1:{bound}/?token={token}\n(only this URL opens it; Ctrl-C stops it)"
    );
    let _ = out.flush();
    paddock_dashboard::serve(listener, token, Arc::new(backend))
        .map_err(|e| CliError::new(Reason::HOST_IO_ERROR.code(), format!("dashboard: {e}"), ""))?;
    Ok(0)
}

//! The audit record of one `paddock run`: a `oneshot` entry in the
//! session store, so that `paddock audit tail --session ID` and gc treat it
//! like any other session's.

use paddock_audit::EventKind;
use std::path::Path;

use paddock_plan::compile::RunFlags;
use paddock_plan::error::CliError;
use paddock_reasons::Reason;

/// The audit trail of one `paddock run`.
pub struct RunAudit {
    /// The log and its exporter.
    pub out: paddock_plan::audit::AuditOut,
    /// The run's log.
    pub log: std::sync::Arc<paddock_audit::Log>,
    /// The session store.
    pub store: paddock_session::Store,
    /// The run's record.
    pub meta: paddock_session::Meta,
    /// Who asked (PADDOCK_TOOL_CALL_ID and the rest).
    pub caller: paddock_audit::Caller,
    /// The policy's retention limits.
    pub retention: paddock_session::Retention,
}

impl RunAudit {
    /// The run's record id, or None when the policy records nothing. An
    /// export the policy asks for and that cannot be set up stops the run
    /// here, before anything starts.
    pub fn plan(eff: &paddock_policy::Effective) -> Result<Option<String>, CliError> {
        if eff.audit_level.value == paddock_policy::AuditLevel::Off {
            return Ok(None);
        }
        let policy_wants = eff.audit_sinks.iter().any(|s| s.value == "otlp");
        if let Err(msg) =
            paddock_otlp::resolve(policy_wants, eff.otlp_endpoint.value.as_deref(), &|k| {
                std::env::var(k).ok()
            })
        {
            if policy_wants {
                return Err(CliError::new(
                    Reason::AUDIT_OTLP_CONFIG.code(),
                    msg,
                    "the policy asks for OTLP export (audit.sinks); fix the endpoint settings",
                ));
            }
        }
        paddock_session::Store::new_id().map(Some).map_err(|e| {
            CliError::new(
                Reason::HOST_IO_ERROR.code(),
                e.to_string(),
                "check /dev/urandom",
            )
        })
    }

    /// Create the run's record `id` and its log. A store that cannot be
    /// written costs the audit trail, with a warning, not the run.
    pub fn open(
        id: &str,
        host: &paddock_plan::HostFacts,
        eff: &paddock_policy::Effective,
        flags: &RunFlags,
        policy: Option<&Path>,
        isolation: &str,
    ) -> Option<RunAudit> {
        let store = paddock_session::Store::locate(&host.home);
        let inputs = paddock_session::Inputs {
            workspace: host.cwd.clone(),
            policy: policy.map(Path::to_path_buf),
            mounts: flags.mounts.clone(),
            env: flags.env.clone(),
            unprotect: flags.unprotect.clone(),
        };
        let unrecorded = |e: String| {
            eprintln!(
                "paddock: warning[AUDIT_UNAVAILABLE]: this run is not recorded: {e}\n  fix: \
                 make {} writable, or set PADDOCK_HOME",
                store.root().display()
            );
        };
        let meta = match store.create_run(id, eff.hash(), inputs, isolation) {
            Ok(m) => m,
            Err(e) => {
                unrecorded(e.to_string());
                return None;
            }
        };
        let out = match paddock_plan::audit::open_log(
            &store.dir(&meta.id),
            &meta.id,
            &meta.policy_hash,
            eff,
            isolation,
            None,
        ) {
            Ok(o) => o,
            Err(e) => {
                unrecorded(e.message);
                return None;
            }
        };
        let log = out.log.clone();
        let caller = paddock_plan::audit::caller_from_env();
        log.emit(
            EventKind::SessionStart,
            None,
            None,
            &paddock_audit::Caller::default(),
            serde_json::json!({"oneshot": true, "workspace": host.cwd, "paddock_pid": std::process::id(), "isolation": isolation}),
        );
        Some(RunAudit {
            out,
            log,
            store,
            meta,
            caller,
            retention: crate::retention(eff),
        })
    }

    /// The proxy's decisions go to the log, and to `also` (`--net-log`).
    pub fn net_sink(&self, also: Option<paddock_proxy::EventSink>) -> paddock_proxy::EventSink {
        let log = self.log.clone();
        let caller = self.caller.clone();
        std::sync::Arc::new(move |e: &paddock_proxy::Event| {
            log.emit(
                EventKind::NetDecision,
                Some(e.allowed),
                Some(&e.code),
                &caller,
                serde_json::to_value(e).unwrap_or_default(),
            );
            if let Some(a) = &also {
                a(e);
            }
        })
    }

    /// Record what pid 1's observer reports, until the sandbox ends.
    pub fn read_records(&self, ctl: std::os::unix::net::UnixStream) -> std::thread::JoinHandle<()> {
        use std::io::BufRead;
        let log = self.log.clone();
        let caller = self.caller.clone();
        std::thread::spawn(move || {
            // One message per read: records can be long (argv).
            for line in std::io::BufReader::with_capacity(1 << 16, ctl).lines() {
                let Ok(line) = line else { break };
                if let Ok(paddock_sandbox::ExecEvent::Audit { id, record }) =
                    serde_json::from_str(&line)
                {
                    paddock_plan::audit::emit_record(&log, &caller, id, &record);
                }
            }
        })
    }

    /// Record the end of the run and mark its record ended.
    pub fn finish(
        mut self,
        argv: &[std::ffi::OsString],
        result: Result<i32, &'static str>,
        started: std::time::Instant,
    ) {
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let ms = started.elapsed().as_millis();
        match result {
            Ok(code) => self.log.emit(
                EventKind::ExecExit,
                None,
                None,
                &self.caller,
                serde_json::json!({"argv": argv, "exit_code": code, "duration_ms": ms}),
            ),
            Err(reason) => self.log.emit(
                EventKind::ExecExit,
                Some(false),
                Some(reason),
                &self.caller,
                serde_json::json!({"argv": argv, "duration_ms": ms}),
            ),
        }
        self.log.emit(
            EventKind::SessionStop,
            None,
            None,
            &paddock_audit::Caller::default(),
            serde_json::json!({"reason": "command ended"}),
        );
        let _ = self.store.finish_run(&mut self.meta);
        self.out.finish();
        // Runs leave records; keep them within the retention limits.
        let _ = self.store.gc_if_due(paddock_session::Retention {
            remove_dead: false,
            ..self.retention
        });
    }
}

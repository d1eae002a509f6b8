//! A live session's control: the supervisor ([`server`]), the client
//! `paddock exec`, MCP and tests use ([`client`]), and what `paddock status`
//! reports ([`status`]). The wire format is paddock-protocol's.
//!
//! There is no central daemon. The first `paddock exec` of a session starts
//! its supervisor (`paddock __supervise ID`, in a session of its own), which
//! creates the sandbox (pid 1 in session mode), listens on
//! `sessions/ID/control.sock`, and lives until the session is stopped or
//! idle for its timeout. When no session is live, paddock runs no process.
//!
//! One exec: the client sends its stdin, stdout and stderr (SCM_RIGHTS) with
//! the command; the supervisor relays them to pid 1, which forks the command
//! with those descriptors, confines it exactly as `paddock run` does, and
//! reports `started` and `exited`; the client exits with the command's code.
//! Signals the client receives are relayed to the command.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use paddock_sandbox::{ExecEvent, ExecRequest};
use paddock_session::{Liveness, Meta, State, Store, Supervisor};
use serde::Serialize;

use paddock_plan::compile::{flags_layer, HostFacts, RunFlags};
use paddock_plan::error::CliError;
use paddock_plan::{audit, isolation, policy_files};
use paddock_reasons::Reason;

pub mod client;
pub mod run_record;
pub mod server;
pub mod status;

pub use client::*;
pub use server::supervise_main;

pub use paddock_protocol::{ControlRequest, PROTOCOL_VERSION};

pub(crate) fn io_err(what: &str) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| {
        CliError::new(
            Reason::SESSION_IO.code(),
            format!("{what}: {e}"),
            "check the session's folder and its supervisor.log",
        )
    }
}

/// A session store error as the CLI reports it.
pub fn session_err(e: paddock_session::SessionError) -> CliError {
    let code = match e {
        paddock_session::SessionError::NotFound(_) => Reason::SESSION_NOT_FOUND.code(),
        paddock_session::SessionError::NameTaken(_) => Reason::SESSION_NAME_TAKEN.code(),
        _ => Reason::SESSION_IO.code(),
    };
    CliError::new(
        code,
        e.to_string(),
        "`paddock session list` shows the sessions",
    )
}

thread_local! {
    /// Who is asking, for the audit events of this process's execs.
    static CALLER: std::cell::RefCell<paddock_audit::Caller> = std::cell::RefCell::new(paddock_audit::Caller::default());
}

/// Record who asks for the next execs: `--tool-call-id`/`--agent`, else
/// `PADDOCK_TOOL_CALL_ID`, `PADDOCK_AGENT`; `TRACEPARENT` from the
/// environment.
pub fn set_caller(tool_call_id: Option<String>, agent: Option<String>) {
    let mut c = audit::caller_from_env();
    c.tool_call_id = tool_call_id.or(c.tool_call_id);
    c.agent = agent.or(c.agent);
    CALLER.with(|x| *x.borrow_mut() = c);
}

/// The flags a session was started with, as run flags.
pub fn session_flags(inputs: &paddock_session::Inputs) -> RunFlags {
    RunFlags {
        mounts: inputs.mounts.clone(),
        env: inputs.env.clone(),
        unprotect: inputs.unprotect.clone(),
        ..RunFlags::default()
    }
}

/// The protected names a session's changes are judged by: its policy's,
/// or, when that no longer loads, the built-in list with nothing lifted.
pub fn session_protected(meta: &paddock_session::Meta) -> Vec<std::path::PathBuf> {
    let fallback = || {
        paddock_sandbox::DEFAULT_PROTECTED
            .iter()
            .map(std::path::PathBuf::from)
            .collect()
    };
    let Ok(host0) = HostFacts::current() else {
        return fallback();
    };
    let host = HostFacts {
        cwd: meta.inputs.workspace.clone(),
        ..host0
    };
    let flags = session_flags(&meta.inputs);
    let Ok(layer) = flags_layer(&flags) else {
        return fallback();
    };
    match policy_files::effective(&host, meta.inputs.policy.as_deref(), Some(layer)) {
        Ok(eff) => paddock_plan::compile::protected_names(&eff),
        Err(_) => fallback(),
    }
}

/// How long a session's files are kept, from its policy.
pub fn retention(eff: &paddock_policy::Effective) -> paddock_session::Retention {
    paddock_session::Retention {
        remove_dead: true,
        max_age_s: eff.max_age_s.value,
        max_count: eff.max_count.value,
        max_disk_mib: eff.max_disk_mib.value,
    }
}

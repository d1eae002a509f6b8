//! From what the user asked for to what the sandbox builds: host facts,
//! the policy's layers and the chosen isolation level become one [`Plan`]
//! (the sandbox spec and the egress proxy's setup; the audit wiring is
//! [`audit`]) through one function, [`plan`], with one error type,
//! [`Error`].
//!
//! `paddock run`, the session supervisor and MCP all start sandboxes
//! through [`plan`]; the isolation level is one of its inputs, so nothing
//! rewrites a spec afterwards.

#![forbid(unsafe_code)]

pub mod audit;
pub mod compile;
mod deny;
pub mod egress;
pub mod error;
pub mod footprint;
pub mod host;
pub mod isolation;
pub mod logins;
pub mod places;
pub mod policy_files;

pub use error::CliError as Error;
pub use host::HostFacts;

use std::path::{Path, PathBuf};

use paddock_policy::{Effective, NetworkMode};
use paddock_sandbox::{Level, SandboxSpec};

use compile::RunFlags;
use egress::Egress;

/// What the sandbox is for.
#[derive(Debug, Clone, Copy)]
pub enum Purpose<'a> {
    /// `paddock run`: one command. `record` is the run's audit record id,
    /// when the policy keeps one: host tools attribute the run's processes
    /// to it (the sandbox's label, `PADDOCK_SESSION`).
    Run {
        /// The run's record id.
        record: Option<&'a str>,
    },
    /// A session's sandbox: it serves execs; its private files live in
    /// `dir` (cow layers, the no-userns scratch).
    Session {
        /// The session id.
        id: &'a str,
        /// The session's folder.
        dir: &'a Path,
    },
    /// Checked, never started: `session start`'s check (`session`: the
    /// sandbox would serve execs) and `policy explain`. Nothing is created
    /// on the host.
    Check {
        /// A session's sandbox.
        session: bool,
    },
}

/// Everything a plan is made from.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The invoking user's situation.
    pub host: &'a HostFacts,
    /// The policy's layers, merged.
    pub eff: &'a Effective,
    /// The command line's part of the request.
    pub flags: &'a RunFlags,
    /// The isolation level chosen for this host ([`isolation::choose`]).
    pub level: Level,
    /// What the sandbox is for.
    pub purpose: Purpose<'a>,
}

/// One sandbox, ready to start.
pub struct Plan {
    /// What the sandbox builds, for the chosen level.
    pub spec: SandboxSpec,
    /// The egress proxy's setup (session CA, brokered credentials), in
    /// proxy mode. Dropping it removes its files.
    pub egress: Option<Egress>,
}

/// Make the plan of `r`: the only way a sandbox spec is made.
pub fn plan(r: &Request<'_>) -> Result<Plan, Error> {
    // The egress proxy's files come first: the spec mounts its CA bundle
    // and names its port and placeholders. A check creates none.
    let egress = match (r.eff.network_mode.value, r.purpose) {
        (NetworkMode::Proxy, Purpose::Run { .. } | Purpose::Session { .. }) => {
            Some(Egress::prepare(r.eff, r.host)?)
        }
        _ => None,
    };
    // Level no-userns keeps the private home and /tmp on the host: a
    // checked folder of our own for a run, the session's folder for a
    // session (a check only needs one named).
    let scratch: Option<PathBuf> = match r.purpose {
        _ if r.level.namespaces() => None,
        Purpose::Run { .. } => Some(places::run_dir_checked(places::SCRATCH_DIR)?),
        Purpose::Session { dir, .. } => Some(dir.join("scratch")),
        Purpose::Check { .. } => Some(places::run_dir(places::SCRATCH_DIR)),
    };
    let mut spec = compile::compile(r.eff, r.flags, r.host, egress.as_ref(), r.level, scratch)?;
    match r.purpose {
        Purpose::Run { record } => {
            if let Some(id) = record {
                spec.label = Some(id.to_string());
                spec.env.push(("PADDOCK_SESSION".into(), id.into()));
            }
        }
        Purpose::Session { id, dir } => {
            spec.serve_execs = true;
            spec.label = Some(id.to_string());
            spec.argv.clear();
            // cow mounts keep their changes in the session, for diff and
            // apply.
            spec.cow_dir = Some(dir.join("cow"));
        }
        Purpose::Check { session } => spec.serve_execs = session,
    }
    Ok(Plan { spec, egress })
}

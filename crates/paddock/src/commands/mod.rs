//! One module per subcommand.

mod doctor;
mod policy;
mod run;
pub(crate) mod session;

use crate::cli::Command;
use crate::error::CliError;

/// Run a parsed command; returns the process exit code.
pub fn dispatch(cmd: Command) -> Result<i32, CliError> {
    match cmd {
        Command::Run(a) => run::run(a),
        Command::Doctor(a) => doctor::doctor(a),
        Command::Policy(c) => policy::policy(c),
        Command::Session(c) => session::session(c),
        Command::Exec(a) => session::exec(a),
        Command::Audit(c) => session::audit(c),
        Command::Gc(a) => session::gc(a),
        Command::Diff {
            session,
            stat,
            json,
        } => session::diff(&session, stat, json),
        Command::Apply { session, paths } => session::apply(&session, paths),
        Command::Discard { session } => session::discard(&session),
        Command::Export {
            session,
            path,
            dest,
        } => session::export(&session, &path, &dest),
        Command::Supervise { id } => Ok(crate::supervisor::supervise_main(&id)),
    }
}

//! One module per subcommand.

mod dashboard;
mod doctor;
mod install;
mod policy;
mod run;
pub(crate) mod session;
mod status;

use crate::cli::Command;
use crate::error::CliError;

/// Run a parsed command; returns the process exit code.
pub fn dispatch(cmd: Command) -> Result<i32, CliError> {
    // Commands that only print end quietly when their reader goes away
    // (`paddock status | head`), as other command-line tools do. The
    // others keep SIGPIPE ignored: they write to sockets (proxy, control).
    if matches!(
        cmd,
        Command::Status { .. }
            | Command::Doctor(_)
            | Command::Policy(_)
            | Command::Diff { .. }
            | Command::Gc(_)
            | Command::Audit(_)
            | Command::Info { .. }
            | Command::Generate(_)
            | Command::Session(crate::cli::SessionCommand::List { .. })
    ) {
        paddock_sys::default_signal(libc::SIGPIPE);
    }
    match cmd {
        Command::Run(a) => run::run(a),
        Command::Doctor(a) => doctor::doctor(a),
        Command::Status { json } => status::status(json),
        Command::Dashboard { port } => dashboard::dashboard(port),
        Command::Mcp { policy } => paddock_mcp::serve(policy),
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
        Command::Apply {
            session,
            paths,
            allow_outward_symlinks,
            resume,
            abort,
            json,
        } => session::apply(
            &session,
            paths,
            session::ApplyHow {
                allow_outward_symlinks,
                resume,
                abort,
                json,
            },
        ),
        Command::Discard { session } => session::discard(&session),
        Command::Export {
            session,
            path,
            dest,
            allow_outward_symlinks,
        } => session::export(&session, &path, &dest, allow_outward_symlinks),
        Command::Info { json } => install::info(json),
        Command::Reset(r) => install::remove(r, install::Scope::Reset),
        Command::Uninstall {
            remove,
            keep_config,
        } => install::remove(remove, install::Scope::Uninstall { keep_config }),
        Command::Generate(g) => install::generate(g),
        Command::Supervise { id } => Ok(crate::supervisor::supervise_main(&id)),
    }
}

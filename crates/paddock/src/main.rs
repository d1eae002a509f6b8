//! `paddock`: the thin binary. It parses the command line, hands each
//! subcommand to its module and turns errors into a message with a reason
//! code, a fix, and a documented exit code:
//!
//! | code | meaning |
//! |------|---------|
//! | the command's own | `paddock run`: the command ran and exited with it (128+N: killed by signal N) |
//! | 125 | paddock itself failed (bad flags, bad policy, sandbox setup) |
//! | 126 | the command was found but could not be executed |
//! | 127 | the command was not found inside the sandbox |

#![forbid(unsafe_code)]

mod cli;
mod commands;

// The plan (policy → spec, egress, audit wiring) and a session's control
// (supervisor, client, status) are library crates.
use paddock_control::{self as supervisor, status};
use paddock_plan::{audit, compile, error, isolation, places, policy_files};

use std::process::ExitCode;

fn main() -> ExitCode {
    // The OCI runtime: called as `paddock-oci` (a link, the path engines
    // are given) or as `paddock oci ...`; runc's command line, not ours.
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let rest: Vec<std::ffi::OsString> = args.collect();
    let called = std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "paddock-oci");
    if called || rest.first().is_some_and(|a| a == "oci") {
        let skip = usize::from(!called);
        let code = paddock_oci::main(rest.into_iter().skip(skip).collect());
        return ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1));
    }
    paddock_sys::trace_timing_init();
    paddock_sys::mark("main");
    let code = match cli::parse() {
        Ok(cmd) => match commands::dispatch(cmd) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{e}");
                e.exit
            }
        },
        Err(code) => code,
    };
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(125))
}

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

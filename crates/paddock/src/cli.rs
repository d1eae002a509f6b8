//! The command-line definition (clap), and nothing else.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run AI agents and their commands inside a kernel-enforced sandbox:
/// namespaces, Landlock and seccomp on the host kernel, no VM, no root.
#[derive(Debug, Parser)]
#[command(name = "paddock", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command inside a new sandbox.
    ///
    /// By default the current directory is mounted read-write at its own
    /// path and is the working directory; system folders are read-only, /tmp
    /// and home are private and empty, tool folders on PATH under home are
    /// read-only, there is no network but loopback, and .git, .paddock,
    /// .envrc and editor task files stay read-only.
    Run(RunArgs),
    /// Check which kernel features this machine offers and what isolation
    /// paddock can give here.
    Doctor(DoctorArgs),
}

/// `paddock run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Policy file (TOML, `version = 1`).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Show a host path: HOST[:PATH][:MODE], MODE one of ro (default), rw,
    /// rw-no-delete, cow. Repeatable.
    #[arg(long = "mount", value_name = "HOST[:PATH][:MODE]")]
    pub mounts: Vec<String>,
    /// Working directory inside the sandbox (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Pass an environment variable: NAME copies the host's value,
    /// NAME=VALUE sets one. Repeatable.
    #[arg(long = "env", short = 'e', value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Lift the read-only protection of a name inside writable mounts
    /// (e.g. `.git` to let the command commit). Repeatable.
    #[arg(long = "unprotect", value_name = "NAME")]
    pub unprotect: Vec<PathBuf>,
    /// Size cap of the private /tmp and home, in MiB.
    #[arg(long = "tmp-size", value_name = "MIB")]
    pub tmp_size_mib: Option<u64>,
    /// After the command ends, print what was enforced (namespaces,
    /// Landlock ABI and status, seccomp) to stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub argv: Vec<OsString>,
}

/// `paddock doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Parse the process arguments. On `--help`/`--version` or a usage error,
/// print and return the exit code (0, or 125: a paddock error).
pub fn parse() -> Result<Command, i32> {
    match Cli::try_parse() {
        Ok(c) => Ok(c.command),
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            Err(code)
        }
    }
}

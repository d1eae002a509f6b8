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
    /// What paddock is doing: sessions and runs, memory, disk, mounts,
    /// egress, limits, isolation, last cleanup, recent denials.
    Status {
        /// JSON output (schema/status.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// Serve MCP tools over stdio (run_command, read_file, write_file,
    /// list_files, workspace_diff, session_info) acting inside one session,
    /// created on the first call that needs it.
    Mcp {
        /// Policy file for the session.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// A local web page with the same, live, and per-session views (audit
    /// stream, policy, changes); served on 127.0.0.1 with a secret token.
    Dashboard {
        /// Port (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Read, check, explain and compare policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Named, persistent sandboxes that start on their first command.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Run a command in a session's sandbox (starting it on first use).
    Exec(ExecArgs),
    /// Remove ended sessions beyond the retention limits of the policy.
    Gc(GcArgs),
    /// Show what a session changed in its `cow` mounts.
    Diff {
        /// Session id or name.
        session: String,
        /// Only the list of changed paths.
        #[arg(long)]
        stat: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Write a (stopped) session's `cow` changes into the real folders,
    /// refusing every file the host changed meanwhile.
    Apply {
        /// Session id or name.
        session: String,
        /// Only these paths (host paths, or relative to the current folder).
        paths: Vec<PathBuf>,
        /// Also apply symlinks that point outside their folder.
        #[arg(long)]
        allow_outward_symlinks: bool,
        /// Finish an apply that was interrupted.
        #[arg(long, conflicts_with_all = ["abort", "paths"])]
        resume: bool,
        /// Undo an apply that was interrupted: every path gets its old
        /// content back, the session keeps its changes.
        #[arg(long, conflicts_with = "paths")]
        abort: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Copy a file or folder out of a live session's sandbox (for instance
    /// a build artifact in its /tmp) to DEST on the host. Never overwrites.
    Export {
        /// Session id or name.
        session: String,
        /// Path inside the sandbox.
        path: PathBuf,
        /// Destination on the host: a new file, or an existing folder to
        /// copy into.
        dest: PathBuf,
        /// Keep symlinks that point outside what is exported.
        #[arg(long)]
        allow_outward_symlinks: bool,
    },
    /// Throw a (stopped) session's `cow` changes away.
    Discard {
        /// Session id or name.
        session: String,
    },
    /// Show a session's audit events (commands, network decisions, ...).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Every location paddock uses (binary, installed files, config, state,
    /// cache, runtime, AppArmor profile) with its size, and what removes it.
    Info {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Stop every session and remove all of paddock's state and cache; the
    /// binary and the configuration stay.
    Reset(RemoveArgs),
    /// Stop every session and remove paddock from this account: state,
    /// cache, configuration (unless --keep-config), and the files install.sh
    /// installed, the binary last. Nothing else is touched.
    Uninstall {
        /// What to do and how to confirm.
        #[command(flatten)]
        remove: RemoveArgs,
        /// Keep ~/.config/paddock (the user policy).
        #[arg(long)]
        keep_config: bool,
    },
    /// Generate shell completions, man pages or the AppArmor profile from
    /// this binary's own definition.
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Internal: the supervisor of one session.
    #[command(name = "__supervise", hide = true)]
    Supervise {
        /// Session id.
        id: String,
    },
}

/// `paddock session ...`.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Create a session; returns at once and starts nothing until the first
    /// `paddock exec`.
    Start {
        /// Policy file.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// A name to use instead of the id.
        #[arg(long)]
        name: Option<String>,
        /// Mounts, as for `paddock run`.
        #[arg(long = "mount", value_name = "HOST[:PATH][:MODE]")]
        mounts: Vec<String>,
        /// Environment, as for `paddock run`.
        #[arg(long = "env", short = 'e', value_name = "NAME[=VALUE]")]
        env: Vec<String>,
        /// Lift a protected name, as for `paddock run`.
        #[arg(long = "unprotect", value_name = "NAME")]
        unprotect: Vec<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// List sessions.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Stop a session's sandbox (its record stays until gc or rm).
    Stop {
        /// Id or name.
        session: String,
    },
    /// Stop a session and remove everything it kept.
    Rm {
        /// Id or name.
        session: String,
    },
}

/// How `reset` and `uninstall` proceed.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Do it without asking (required when not on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only say what would be stopped and removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Also throw away `cow` changes no one has applied yet (otherwise
    /// their sessions are named and nothing is removed).
    #[arg(long)]
    pub discard_changes: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `paddock generate ...`.
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// A completion script for SHELL, on standard output.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Man pages (paddock.1 and one per subcommand) written into DIR.
    Man {
        /// The folder to write into (created if missing).
        dir: PathBuf,
    },
    /// The AppArmor profile that lets this binary create user namespaces on
    /// hosts that restrict them (Ubuntu 23.10+), on standard output.
    Apparmor {
        /// The binary the profile attaches to (default: this one).
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
    },
}

/// `paddock audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print a session's events; with -f, keep printing new ones.
    Tail {
        /// Session id or name (default: the most recently used session).
        #[arg(long)]
        session: Option<String>,
        /// Follow: wait for new events until interrupted.
        #[arg(short = 'f', long)]
        follow: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Only refusals.
        #[arg(long)]
        denied: bool,
    },
}

/// `paddock exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Session id or name.
    pub session: String,
    /// The agent's tool call id, recorded with the command's audit events
    /// (default: $PADDOCK_TOOL_CALL_ID).
    #[arg(long = "tool-call-id", value_name = "ID")]
    pub tool_call_id: Option<String>,
    /// The agent's name, recorded likewise (default: $PADDOCK_AGENT).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub argv: Vec<OsString>,
}

/// `paddock gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// List what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `paddock policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file, or (without FILE) every layer that applies here
    /// and their merge. Exit 0 when valid, 1 when not.
    Check {
        /// The file; its layer is inferred (/etc/paddock: admin,
        /// .paddock/policy.toml: project, otherwise user).
        file: Option<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show the policy layers that apply here and the effective policy,
    /// each value with its origin (layer, file, line, column).
    Show {
        /// Only the merged, effective values.
        #[arg(long)]
        effective: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Also apply this file as the command line's --policy.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Explain whether an action would be allowed, by which rule, from which
    /// file and line, with its reason code. ACTION is one of:
    /// `read PATH`, `write PATH`, `delete PATH`, `connect HOST:PORT`,
    /// `METHOD URL` (e.g. `POST https://api.example.com/v1/files`), `exec`.
    /// Exit 0 when allowed, 1 when denied.
    Explain {
        /// The action words.
        #[arg(required = true, num_args = 1.., value_name = "ACTION")]
        action: Vec<String>,
        /// Also apply this file as the command line's --policy.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Mounts, as for `paddock run`.
        #[arg(long = "mount", value_name = "HOST[:PATH][:MODE]")]
        mounts: Vec<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Compare two policy files by meaning, not text.
    Diff {
        /// The old file.
        a: PathBuf,
        /// The new file.
        b: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print a commented starter policy (or write it to .paddock/policy.toml).
    Init {
        /// Write .paddock/policy.toml in the current folder (never overwrites).
        #[arg(long)]
        write: bool,
    },
    /// Print the policy file's JSON Schema (for editors, e.g. taplo).
    Schema,
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
    pub unprotect: Vec<String>,
    /// Size cap of the private /tmp and home, in MiB.
    #[arg(long = "tmp-size", value_name = "MIB")]
    pub tmp_size_mib: Option<u64>,
    /// After the command ends, print what was enforced (namespaces,
    /// Landlock ABI and status, seccomp) to stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Run the command with NO sandbox at all, on hosts where none can be
    /// built. Loud, recorded in the audit trail, and refused when the
    /// policy sets `[isolation] allow_unsafe_no_sandbox = false`.
    #[arg(long = "unsafe-no-sandbox")]
    pub unsafe_no_sandbox: bool,
    /// Append every network decision of the egress proxy to FILE as JSON
    /// lines (host, port, method, path, allowed, reason code, bytes).
    #[arg(long = "net-log", value_name = "FILE")]
    pub net_log: Option<PathBuf>,
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
    if let Some(exec) = plain_exec(std::env::args_os().skip(1).collect()) {
        return Ok(Command::Exec(exec));
    }
    match Cli::try_parse() {
        Ok(c) => Ok(c.command),
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            Err(code)
        }
    }
}

/// `paddock exec ID -- COMMAND...` exactly, read without building the
/// whole command-line definition: the form programs repeat for every
/// command they run in a session, where clap's set-up is a large share of
/// the client's start. Anything else (options, help) goes through clap,
/// which gives this form the same meaning.
fn plain_exec(args: Vec<OsString>) -> Option<ExecArgs> {
    let [verb, session, dashes, _, ..] = &args[..] else {
        return None;
    };
    let session = session.to_str()?;
    if verb != "exec" || dashes != "--" || session.is_empty() || session.starts_with('-') {
        return None;
    }
    Some(ExecArgs {
        session: session.to_string(),
        tool_call_id: None,
        agent: None,
        argv: args[3..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via_clap(args: &[&str]) -> Option<ExecArgs> {
        let mut full = vec!["paddock"];
        full.extend(args);
        match Cli::try_parse_from(full).ok()?.command {
            Command::Exec(e) => Some(e),
            _ => None,
        }
    }

    #[test]
    fn the_plain_exec_form_reads_as_clap_reads_it() {
        for args in [
            &["exec", "s1", "--", "true"][..],
            &["exec", "s1", "--", "sh", "-c", "echo -- x"],
            &["exec", "s1", "--", "--", "x"],
        ] {
            let os: Vec<OsString> = args.iter().map(OsString::from).collect();
            let fast = plain_exec(os).expect("the plain form");
            let slow = via_clap(args).expect("clap parses it");
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{args:?}");
        }
        // Everything else is clap's.
        for args in [
            &["exec", "--tool-call-id", "t", "s1", "--", "true"][..],
            &["exec", "s1", "--"],
            &["exec", "--help", "--", "x"],
            &["exec", "s1", "true"],
            &["run", "s1", "--", "true"],
        ] {
            let os: Vec<OsString> = args.iter().map(OsString::from).collect();
            assert!(plain_exec(os).is_none(), "{args:?}");
        }
    }
}

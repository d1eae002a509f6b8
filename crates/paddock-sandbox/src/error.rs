//! Errors of the sandbox, each with a stable reason code and a fix.

use paddock_reasons::Reason;
use std::io;
use std::path::PathBuf;

/// Everything that can stop a sandbox from starting.
///
/// Every variant has a stable [`SandboxError::reason_code`] (documented in
/// `docs/reason-codes.md`) and a [`SandboxError::fix`] telling the user what
/// to do. When one of these is returned, no sandbox process is left running.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A mount source does not exist.
    #[error("mount source {path} ({origin}) does not exist")]
    MountSourceMissing {
        /// The host path.
        path: PathBuf,
        /// Where the mount was asked for.
        origin: String,
    },
    /// A mount source path crosses a symbolic link.
    #[error("mount source {path} ({origin}) crosses the symbolic link {link} -> {points_to}")]
    MountSymlinkEscape {
        /// The host path asked for.
        path: PathBuf,
        /// The first component that is a symbolic link.
        link: PathBuf,
        /// Where that link points.
        points_to: PathBuf,
        /// Where the mount was asked for.
        origin: String,
    },
    /// A mount target is not acceptable.
    #[error("mount target {target} ({origin}): {why}")]
    MountTargetInvalid {
        /// The sandbox path.
        target: PathBuf,
        /// Where the mount was asked for.
        origin: String,
        /// What is wrong with it.
        why: String,
    },
    /// The working directory is not inside anything the sandbox can see.
    #[error("working directory {0} is not inside any mount")]
    WorkdirNotMounted(PathBuf),
    /// The spec itself is unusable (empty command, relative paths...).
    #[error("invalid sandbox request: {0}")]
    InvalidSpec(String),
    /// The request needs a layer this isolation level lacks.
    #[error("at isolation level {level}, {what}")]
    NotAtLevel {
        /// The level.
        level: &'static str,
        /// What cannot be done, and why.
        what: String,
        /// What to do.
        fix: String,
    },
    /// The kernel refused to create the namespaces.
    #[error("the kernel refused to create a user namespace: {0}")]
    UserNamespaceUnavailable(io::Error),
    /// A step of the setup sequence failed inside the new namespaces.
    #[error("sandbox setup failed at step `{step}`: {detail}")]
    Setup {
        /// The step of the setup sequence.
        step: String,
        /// The error.
        detail: String,
    },
    /// The command was not found on the sandbox's PATH.
    #[error("command not found inside the sandbox: {0}")]
    CommandNotFound(String),
    /// The command exists but cannot be executed.
    #[error("command cannot be executed inside the sandbox: {program}: {detail}")]
    CommandNotExecutable {
        /// The program.
        program: String,
        /// The kernel's reason.
        detail: String,
    },
    /// The sandbox's init process died without reporting.
    #[error("the sandbox init process ended unexpectedly ({0})")]
    InitDied(String),
    /// Any other operating-system error on the host side.
    #[error("{context}: {source}")]
    Io {
        /// What paddock was doing.
        context: String,
        /// The error.
        source: io::Error,
    },
}

impl SandboxError {
    /// The stable reason code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            SandboxError::MountSourceMissing { .. } => Reason::MOUNT_SOURCE_MISSING.code(),
            SandboxError::MountSymlinkEscape { .. } => Reason::MOUNT_SYMLINK_ESCAPE.code(),
            SandboxError::MountTargetInvalid { .. } => Reason::MOUNT_TARGET_INVALID.code(),
            SandboxError::WorkdirNotMounted(_) => Reason::WORKDIR_NOT_MOUNTED.code(),
            SandboxError::InvalidSpec(_) => Reason::INVALID_REQUEST.code(),
            SandboxError::NotAtLevel { .. } => Reason::ISOLATION_LEVEL_LACKS.code(),
            SandboxError::UserNamespaceUnavailable(_) => Reason::USERNS_UNAVAILABLE.code(),
            SandboxError::Setup { .. } => Reason::SANDBOX_SETUP_FAILED.code(),
            SandboxError::CommandNotFound(_) => Reason::EXEC_NOT_FOUND.code(),
            SandboxError::CommandNotExecutable { .. } => Reason::EXEC_NOT_EXECUTABLE.code(),
            SandboxError::InitDied(_) => Reason::SANDBOX_INIT_DIED.code(),
            SandboxError::Io { .. } => Reason::HOST_IO_ERROR.code(),
        }
    }

    /// What the user can do about it.
    pub fn fix(&self) -> String {
        match self {
            SandboxError::MountSourceMissing { .. } => {
                "check the path, or create it before starting the sandbox".into()
            }
            SandboxError::MountSymlinkEscape { points_to, .. } => format!(
                "paddock never follows symbolic links in mount paths; if you mean the link's \
                 target, mount {} directly",
                points_to.display()
            ),
            SandboxError::MountTargetInvalid { .. } => {
                "choose an absolute target outside /proc, /dev and /sys, inside a folder that \
                 exists"
                    .into()
            }
            SandboxError::WorkdirNotMounted(_) => {
                "pass --workdir inside a mount, or --mount the folder you want to work in".into()
            }
            SandboxError::InvalidSpec(_) => "see `paddock run --help`".into(),
            SandboxError::NotAtLevel { fix, .. } => fix.clone(),
            SandboxError::UserNamespaceUnavailable(_) => {
                "run `paddock doctor`: it names the setting that blocks user namespaces on \
                 this machine (sysctl, AppArmor or a container seccomp profile)"
                    .into()
            }
            SandboxError::Setup { .. } => {
                "run `paddock doctor` to see which kernel feature is missing".into()
            }
            SandboxError::CommandNotFound(_) => {
                "check the name; only system folders, mounts and tool folders on PATH are \
                 visible inside — mount the folder that holds it with --mount DIR:ro"
                    .into()
            }
            SandboxError::CommandNotExecutable { .. } => {
                "check the file's execute permission and interpreter line".into()
            }
            SandboxError::InitDied(_) => {
                "this is a bug or the process was killed from outside; run `paddock doctor`".into()
            }
            SandboxError::Io { .. } => "check permissions on the path named".into(),
        }
    }

    /// The exit code `paddock run` uses for this error (the docker/podman
    /// convention: 125 paddock itself, 126 not executable, 127 not found).
    pub fn exit_code(&self) -> i32 {
        match self {
            SandboxError::CommandNotFound(_) => 127,
            SandboxError::CommandNotExecutable { .. } => 126,
            _ => 125,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            source,
        }
    }
}

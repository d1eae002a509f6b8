//! The error every command returns: a reason code, a message and a fix.

use std::fmt;

/// A user-facing error.
#[derive(Debug)]
pub struct CliError {
    /// Stable reason code (docs/reason-codes.md).
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
    /// Process exit code.
    pub exit: i32,
}

impl CliError {
    /// An error with exit code 125 (paddock's own failure).
    pub fn new(code: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
            fix: fix.into(),
            exit: 125,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "paddock: error[{}]: {}", self.code, self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

impl From<paddock_sandbox::SandboxError> for CliError {
    fn from(e: paddock_sandbox::SandboxError) -> Self {
        CliError {
            code: e.reason_code(),
            message: e.to_string(),
            fix: e.fix(),
            exit: e.exit_code(),
        }
    }
}

impl From<paddock_policy::PolicyError> for CliError {
    fn from(e: paddock_policy::PolicyError) -> Self {
        CliError {
            code: e.reason_code(),
            message: e.to_string(),
            fix: "correct the policy file; `paddock policy init` prints a commented example".into(),
            exit: 125,
        }
    }
}

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
    /// The message is a complete diagnostic (policy errors): print it as is.
    pub raw: bool,
}

impl CliError {
    /// An error with exit code 125 (paddock's own failure).
    pub fn new(code: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
            fix: fix.into(),
            exit: 125,
            raw: false,
        }
    }

    /// The same error with another exit code.
    pub fn with_exit(mut self, exit: i32) -> Self {
        self.exit = exit;
        self
    }

    /// Policy diagnostics, shown with file, line, column and the source line.
    pub fn policy(errs: Vec<paddock_policy::PolicyError>) -> Self {
        let code = errs.first().map_or("POLICY_INVALID", |e| e.code);
        CliError {
            code,
            message: paddock_policy::PolicyErrors(errs).to_string(),
            fix: String::new(),
            exit: 125,
            raw: true,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.raw {
            return write!(f, "{}", self.message);
        }
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
            raw: false,
        }
    }
}

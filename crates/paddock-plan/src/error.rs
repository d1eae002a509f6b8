//! The error every command returns: a reason code, a message and a fix.

use paddock_reasons::Reason;
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
        let code = errs
            .first()
            .map_or(Reason::POLICY_INVALID.code(), |e| e.code);
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

#[cfg(test)]
mod tests {
    /// Literals that look like reason codes but are not: environment
    /// variables paddock reads or sets, and test data.
    const NOT_CODES: &[&str] = &["WEB_FETCH", "DBUS_SESSION_BUS_ADDRESS"];
    const ENV_PREFIXES: &[&str] = &[
        "PADDOCK_",
        // Kernel and libseccomp names (capabilities, resource limits,
        // seccomp actions and operators), not reason codes.
        "CAP_",
        "RLIMIT_",
        "SCMP_",
        "OTEL_",
        "XDG_",
        "CARGO_",
        "RUSTUP_",
        "LC_",
        "NODE_",
        "NO_",
        "HTTP_",
        "HTTPS_",
        "SSL_",
        "CURL_",
        "GIT_",
        "PIP_",
        "REQUESTS_",
        "ANTHROPIC_",
        "OUT_DIR",
    ];

    /// Every reason code is named through the one enum
    /// (`paddock_reasons::Reason`, generated from docs/reason-codes.md, so a
    /// code missing there does not compile): outside tests, a string
    /// literal that looks like a reason code is an error, whether it is
    /// documented (write `Reason::CODE.code()`) or not (document it).
    #[test]
    fn every_reason_code_in_the_source_goes_through_the_enum() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        let mut dirs = vec![root.join("crates")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() && p.file_name().is_some_and(|n| n != "tests" && n != "target") {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs")
                    && p.components().any(|c| c.as_os_str() == "src")
                    && p.file_name().is_some_and(|n| n != "tests.rs")
                {
                    files.push(p);
                }
            }
        }
        let mut bare = std::collections::BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            // Tests compare against the printed codes: literals are right there.
            let text = text
                .find("#[cfg(test)]\nmod tests")
                .map_or(text.as_str(), |i| &text[..i]);
            let code_lines = text.lines().filter(|l| !l.trim_start().starts_with("//"));
            for line in code_lines {
                for lit in line.split('"').skip(1).step_by(2) {
                    let code_like = lit.len() > 3
                        && lit.contains('_')
                        && lit.starts_with(|c: char| c.is_ascii_uppercase())
                        && lit
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                        && !lit.starts_with('_')
                        && !lit.ends_with('_');
                    if code_like
                        && !NOT_CODES.contains(&lit)
                        && !ENV_PREFIXES.iter().any(|p| lit.starts_with(p))
                    {
                        let what = if paddock_reasons::Reason::from_code(lit).is_some() {
                            "write Reason::CODE.code()"
                        } else {
                            "not in docs/reason-codes.md"
                        };
                        bare.insert(format!("{lit} ({}: {what})", f.display()));
                    }
                }
            }
        }
        assert!(
            bare.is_empty(),
            "reason codes written as bare strings (or add to NOT_CODES if it is none): {bare:?}"
        );
    }
}

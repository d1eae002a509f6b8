//! paddock's reason codes: one enum, generated at build time from
//! docs/reason-codes.md, so the documentation is the list. Code that names
//! a reason writes `Reason::NET_PROXY_FOREIGN_USER.code()`: a code that is
//! not documented does not compile, and a documented one cannot be
//! misspelt.

#![forbid(unsafe_code)]

/// Which table of docs/reason-codes.md a code is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An error: paddock exits with this code.
    Error {
        /// The process exit code.
        exit: i32,
    },
    /// A warning: the command still ran.
    Warning,
    /// An answer of the dashboard or the control socket.
    Notice,
    /// A decision of the policy (`policy explain`, the audit trail).
    Decision {
        /// Whether the decision allows the action.
        allowed: bool,
    },
}

include!(concat!(env!("OUT_DIR"), "/reasons.rs"));

impl Reason {
    /// The reason named `code`, if it is one.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.code() == code)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_errors_say_what_to_do() {
        assert!(Reason::ALL.len() > 100);
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(*r));
            assert!(!r.meaning().is_empty(), "{r} has no meaning");
            if let Kind::Error { exit } = r.kind() {
                assert!(!r.fix().is_empty(), "{r} has no fix");
                assert!((1..=255).contains(&exit));
            }
        }
        assert_eq!(Reason::EXEC_NOT_FOUND.kind(), Kind::Error { exit: 127 });
        assert_eq!(Reason::FS_ALLOWED.kind(), Kind::Decision { allowed: true });
        assert_eq!(Reason::APPLY_CONFLICT.kind(), Kind::Warning);
        assert_eq!(Reason::ISOLATION_DEGRADED.kind(), Kind::Warning);
        assert_eq!(Reason::DASHBOARD_BAD_HOST.kind(), Kind::Notice);
    }
}

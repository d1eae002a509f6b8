//! The words every paddock crate shares, one enum per concept: how much is
//! audited ([`AuditLevel`]), how a host folder appears inside
//! ([`MountMode`]) and how the sandbox is built ([`IsolationLevel`]). The
//! policy reads them, the sandbox enforces them, the audit trail records
//! them: the same type throughout, so nothing maps one onto another.

#![forbid(unsafe_code)]

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How much is recorded (the policy's `audit.level`), from least to most.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AuditLevel {
    /// Nothing is observed or recorded.
    #[default]
    Off,
    /// Denials only (denied file writes and deletes, denied system calls,
    /// refused connections), and the session's start and stop.
    Denied,
    /// Denials, commands and file changes (create, modify, delete,
    /// rename): the policy's default.
    Writes,
    /// Everything, file reads and allowed local connections included.
    All,
}

impl AuditLevel {
    /// The name used in policy files and events.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditLevel::Off => "off",
            AuditLevel::Denied => "denied",
            AuditLevel::Writes => "writes",
            AuditLevel::All => "all",
        }
    }
}

/// How a host folder or file appears inside the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MountMode {
    /// Read-only: the mount is read-only (EROFS) and Landlock grants only
    /// read and execute.
    Ro,
    /// Copy-on-write: an overlay whose writes land in a private upper
    /// layer; the real folder is never written.
    Cow,
    /// May create and modify, may not unlink, rmdir or rename away:
    /// Landlock withholds its REMOVE_FILE and REMOVE_DIR rights, which
    /// every unlink, rmdir and rename out of a directory needs.
    RwNoDelete,
    /// Read-write.
    Rw,
}

impl MountMode {
    /// All modes, for help texts and error messages.
    pub const ALL: [MountMode; 4] = [
        MountMode::Ro,
        MountMode::Rw,
        MountMode::RwNoDelete,
        MountMode::Cow,
    ];

    /// The spelling used on the command line and in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            MountMode::Ro => "ro",
            MountMode::Rw => "rw",
            MountMode::RwNoDelete => "rw-no-delete",
            MountMode::Cow => "cow",
        }
    }

    /// Whether the sandbox may change anything it sees through this mount.
    pub fn writable(self) -> bool {
        !matches!(self, MountMode::Ro)
    }
}

impl fmt::Display for MountMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MountMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MountMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown mount mode `{s}`: use one of ro, rw, rw-no-delete, cow")
            })
    }
}

/// How the sandbox is built, strongest first (docs/isolation-levels.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationLevel {
    /// User, mount, pid, IPC, UTS, network and cgroup namespaces, Landlock,
    /// seccomp; the proxy is the only way out.
    #[default]
    Full,
    /// The same namespaces and seccomp, without Landlock: mounts alone say
    /// what is read-only, and `rw-no-delete` cannot be enforced (refused).
    LandlockUnavailable,
    /// No namespaces (the host refuses them): Landlock file rules on host
    /// paths, Landlock TCP rules that allow only the proxy's port, and
    /// seccomp; no private /proc, hostname, IPC or loopback.
    NoUserns,
}

impl IsolationLevel {
    /// The name used in policies, status and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationLevel::Full => "full",
            IsolationLevel::LandlockUnavailable => "landlock-unavailable",
            IsolationLevel::NoUserns => "no-userns",
        }
    }

    /// Rank: higher is stronger.
    pub fn strength(self) -> u8 {
        match self {
            IsolationLevel::Full => 2,
            IsolationLevel::LandlockUnavailable => 1,
            IsolationLevel::NoUserns => 0,
        }
    }

    /// Does this level build namespaces?
    pub fn namespaces(self) -> bool {
        self != IsolationLevel::NoUserns
    }

    /// Does this level apply Landlock?
    pub fn landlock(self) -> bool {
        self != IsolationLevel::LandlockUnavailable
    }
}

impl fmt::Display for IsolationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an audit event records (docs/audit.md). Written as its dotted
/// name (`file.denied`); the log's readers keep the name as text, so a
/// trail written by another version still reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A session (or a run's record) started.
    #[serde(rename = "session.start")]
    SessionStart,
    /// A session stopped.
    #[serde(rename = "session.stop")]
    SessionStop,
    /// A session's cow layers passed their limit; it stopped.
    #[serde(rename = "session.cow_full")]
    SessionCowFull,
    /// A command was asked for (`run`, `exec`, MCP).
    #[serde(rename = "exec.start")]
    ExecStart,
    /// That command ended.
    #[serde(rename = "exec.exit")]
    ExecExit,
    /// A process inside started a program.
    #[serde(rename = "process.exec")]
    ProcessExec,
    /// A file was read.
    #[serde(rename = "file.read")]
    FileRead,
    /// A file or folder was created.
    #[serde(rename = "file.create")]
    FileCreate,
    /// A file was changed.
    #[serde(rename = "file.modify")]
    FileModify,
    /// A file or folder was deleted.
    #[serde(rename = "file.delete")]
    FileDelete,
    /// A file or folder was renamed.
    #[serde(rename = "file.rename")]
    FileRename,
    /// A file operation was refused.
    #[serde(rename = "file.denied")]
    FileDenied,
    /// A protected name the sandbox created was moved aside.
    #[serde(rename = "file.protected")]
    FileProtected,
    /// A direct connection from inside (loopback, a unix socket).
    #[serde(rename = "net.connect")]
    NetConnect,
    /// A direct connection from inside was refused.
    #[serde(rename = "net.denied")]
    NetDenied,
    /// The egress proxy's decision on a request or a tunnel.
    #[serde(rename = "net.decision")]
    NetDecision,
    /// A system call of the deny list was refused.
    #[serde(rename = "syscall.denied")]
    SyscallDenied,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 17] = [
        EventKind::SessionStart,
        EventKind::SessionStop,
        EventKind::SessionCowFull,
        EventKind::ExecStart,
        EventKind::ExecExit,
        EventKind::ProcessExec,
        EventKind::FileRead,
        EventKind::FileCreate,
        EventKind::FileModify,
        EventKind::FileDelete,
        EventKind::FileRename,
        EventKind::FileDenied,
        EventKind::FileProtected,
        EventKind::NetConnect,
        EventKind::NetDenied,
        EventKind::NetDecision,
        EventKind::SyscallDenied,
    ];

    /// The dotted name written in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SessionStart => "session.start",
            EventKind::SessionStop => "session.stop",
            EventKind::SessionCowFull => "session.cow_full",
            EventKind::ExecStart => "exec.start",
            EventKind::ExecExit => "exec.exit",
            EventKind::ProcessExec => "process.exec",
            EventKind::FileRead => "file.read",
            EventKind::FileCreate => "file.create",
            EventKind::FileModify => "file.modify",
            EventKind::FileDelete => "file.delete",
            EventKind::FileRename => "file.rename",
            EventKind::FileDenied => "file.denied",
            EventKind::FileProtected => "file.protected",
            EventKind::NetConnect => "net.connect",
            EventKind::NetDenied => "net.denied",
            EventKind::NetDecision => "net.decision",
            EventKind::SyscallDenied => "syscall.denied",
        }
    }

    /// The kind written as `name`, if it is one.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// A session's own start, stop and limits (kept at every level but off).
    pub fn is_session(self) -> bool {
        matches!(
            self,
            EventKind::SessionStart | EventKind::SessionStop | EventKind::SessionCowFull
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_serialize_as_their_dotted_names() {
        for k in EventKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), k);
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }
}

/// The addresses of the transparent path: the sandbox's TUN device, the
/// resolver paddock answers at, and the pools that synthetic addresses of
/// allowed names are drawn from. Both sides use these and nothing else.
pub mod transparent {
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The TUN device's name inside the sandbox.
    pub const DEVICE: &str = "paddock0";
    /// Its MTU: as large as loopback's, so a bulk transfer crosses the
    /// device (and the user-space stack) in few, large packets.
    pub const MTU: u32 = 65520;
    /// The sandbox's IPv4 address (benchmarking range, RFC 2544: never a
    /// real host's), with [`PREFIX_V4`].
    pub const SANDBOX_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    /// The IPv4 network of the TUN device: 198.18.0.0/15.
    pub const PREFIX_V4: u8 = 15;
    /// Where the sandbox's resolver is (its `/etc/resolv.conf` says so).
    pub const RESOLVER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    /// The first synthetic IPv4 address; the pool runs to 198.19.255.254.
    pub const POOL_V4_START: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 0);
    /// How many names the pools hold at once.
    pub const POOL_SIZE: u32 = (1 << 17) - 256 - 1;
    /// The sandbox's IPv6 address (a unique local address), with
    /// [`PREFIX_V6`].
    pub const SANDBOX_V6: Ipv6Addr = Ipv6Addr::new(0xfd70, 0x6164, 0x6463, 0, 0, 0, 0, 2);
    /// The IPv6 network of the TUN device.
    pub const PREFIX_V6: u8 = 48;
    /// The resolver's IPv6 address.
    pub const RESOLVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd70, 0x6164, 0x6463, 0, 0, 0, 0, 1);
    /// Synthetic IPv6 addresses: this prefix, the name's index in the low
    /// 32 bits.
    pub const POOL_V6: Ipv6Addr = Ipv6Addr::new(0xfd70, 0x6164, 0x6463, 1, 0, 0, 0, 0);

    /// The synthetic IPv4 address of pool index `i`.
    pub fn v4_of(i: u32) -> Option<Ipv4Addr> {
        (i < POOL_SIZE).then(|| Ipv4Addr::from(u32::from(POOL_V4_START) + i))
    }

    /// The synthetic IPv6 address of pool index `i`.
    pub fn v6_of(i: u32) -> Option<Ipv6Addr> {
        (i < POOL_SIZE).then(|| Ipv6Addr::from(u128::from(POOL_V6) | u128::from(i)))
    }

    /// The pool index a synthetic address stands for.
    pub fn index_of(ip: std::net::IpAddr) -> Option<u32> {
        match ip {
            std::net::IpAddr::V4(a) => {
                let i = u32::from(a).checked_sub(u32::from(POOL_V4_START))?;
                (i < POOL_SIZE).then_some(i)
            }
            std::net::IpAddr::V6(a) => {
                let v = u128::from(a);
                if v >> 64 != u128::from(POOL_V6) >> 64 || (v >> 32) & 0xffff_ffff != 0 {
                    return None;
                }
                let i = u32::try_from(v & 0xffff_ffff).ok()?;
                (i < POOL_SIZE).then_some(i)
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn pool_addresses_map_back_to_their_index() {
            for i in [0, 1, 77, POOL_SIZE - 1] {
                assert_eq!(index_of(v4_of(i).unwrap().into()), Some(i));
                assert_eq!(index_of(v6_of(i).unwrap().into()), Some(i));
            }
            assert_eq!(v4_of(POOL_SIZE - 1), Some(Ipv4Addr::new(198, 19, 255, 254)));
            assert!(v4_of(POOL_SIZE).is_none());
            assert_eq!(index_of(RESOLVER_V4.into()), None);
            assert_eq!(index_of(SANDBOX_V6.into()), None);
            assert_eq!(index_of("198.20.0.1".parse().unwrap()), None);
            assert_eq!(index_of("fd70:6164:6463:1:1::5".parse().unwrap()), None);
        }
    }
}

/// Request fields of OAuth 2 grants other than a refresh (authorization
/// code with PKCE, password, device, JWT and SAML assertions, token
/// exchange, CIBA): with one, a refresh request could become a sign-in
/// of the sandbox's. A policy may never allow one as an extra field of a
/// refresh, and paddock's proxy never forwards one.
pub const GRANT_FIELDS: &[&str] = &[
    "code",
    "code_verifier",
    "redirect_uri",
    "username",
    "password",
    "device_code",
    "assertion",
    "client_assertion",
    "client_assertion_type",
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "requested_token_type",
    "auth_req_id",
    "id_token",
    "access_token",
    "token",
];

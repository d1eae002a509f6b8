//! The shape of one policy file, as written. Every field is optional except
//! `version`: a file says only what it changes. These types are the single
//! source of the JSON Schema in `schema/policy.schema.json`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use paddock_types::{AuditLevel, IsolationLevel, MountMode};

/// One policy file (`version = 1`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Format version. Must be 1.
    pub version: u32,
    /// Files and folders the sandbox sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemSection>,
    /// Network access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSection>,
    /// Environment and resource limits of sandboxed processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSection>,
    /// Session lifetime and retention of session data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionSection>,
    /// What is recorded, and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSection>,
    /// Whether commands may run at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecSection>,
    /// The weakest sandbox acceptable on a host that lacks a kernel layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<IsolationSection>,
    /// Administrator controls; read only from /etc/paddock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminSection>,
}

/// How the workspace (the current directory) is shown, from most to least
/// restrictive: none, ro, cow, rw-no-delete, rw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WorkspaceMode {
    /// Not mounted.
    None,
    /// Read-only.
    Ro,
    /// Copy-on-write: changes stay in the sandbox's own layer.
    Cow,
    /// Create and modify, never delete or rename away.
    RwNoDelete,
    /// Read-write.
    Rw,
}

impl WorkspaceMode {
    /// Rank from most restrictive (0) to least.
    pub fn openness(self) -> u8 {
        match self {
            WorkspaceMode::None => 0,
            WorkspaceMode::Ro => 1,
            WorkspaceMode::Cow => 2,
            WorkspaceMode::RwNoDelete => 3,
            WorkspaceMode::Rw => 4,
        }
    }

    /// The spelling in files.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceMode::None => "none",
            WorkspaceMode::Ro => "ro",
            WorkspaceMode::Cow => "cow",
            WorkspaceMode::RwNoDelete => "rw-no-delete",
            WorkspaceMode::Rw => "rw",
        }
    }
}

impl From<MountMode> for WorkspaceMode {
    /// A mount's mode as a workspace mode, for comparisons.
    fn from(m: MountMode) -> WorkspaceMode {
        match m {
            MountMode::Ro => WorkspaceMode::Ro,
            MountMode::Cow => WorkspaceMode::Cow,
            MountMode::RwNoDelete => WorkspaceMode::RwNoDelete,
            MountMode::Rw => WorkspaceMode::Rw,
        }
    }
}

fn default_ro() -> MountMode {
    MountMode::Ro
}

/// `[filesystem]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesystemSection {
    /// Mode of the workspace (default `rw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceMode>,
    /// Extra host paths to show (`[[filesystem.mount]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<Vec<MountEntry>>,
    /// Extra read-only tool folders (beside those found on PATH under home).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Extra names kept read-only at the root of writable mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protect: Option<Vec<String>>,
    /// Built-in protected names to lift, explicitly (e.g. `.git`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unprotect: Option<Vec<String>>,
    /// Pathname unix sockets on the host (absolute or `~/`) that commands
    /// may connect to though the sandbox did not create them, e.g. an
    /// ssh-agent you choose to forward. Every other socket file from the
    /// host is refused. A socket outside every mount is shown at its own
    /// path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sockets: Option<Vec<String>>,
    /// Host paths that must never be shown, whatever a mount says.
    /// Accumulates across layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
}

/// One `[[filesystem.mount]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MountEntry {
    /// Host path: absolute, `~/...`, or relative to the workspace.
    pub path: String,
    /// Absolute path inside the sandbox (default: where `path` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Access mode (default `ro`).
    #[serde(default = "default_ro")]
    pub mode: MountMode,
}

/// Network modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Loopback only.
    None,
    /// Out through paddock's proxy, by the allow/deny rules.
    Proxy,
}

/// `[network]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// `none` (default) or `proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<NetworkMode>,
    /// Domain patterns that may be reached: `host`, `*.domain`, with an
    /// optional `:port` (default 443, and 80 for hosts without credentials
    /// or rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Domain patterns that may never be reached. Wins over allow;
    /// accumulates across layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
    /// Per-host method and path rules (`[[network.rules]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<HostRule>>,
    /// Brokered credentials (`[[network.credentials]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<Credential>>,
    /// The proxy paddock itself must go through (a corporate proxy),
    /// `http://[user:password@]host:port`, after its own decision. Without
    /// it, `HTTPS_PROXY` in paddock's own environment is used (and
    /// `NO_PROXY`). Not in a project's policy: a repository does not choose
    /// where traffic goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_proxy: Option<String>,
    /// The proxy's limits for this sandbox (`[network.limits]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<NetLimits>,
}

/// `[network.limits]`: what one sandbox may hold of its proxy. A project's
/// policy may only lower them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetLimits {
    /// Connections open at once (default 256; fewer if the open-file limit
    /// is low); over it, the quietest is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// Largest request head, KiB (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_kib: Option<u64>,
    /// Time to a complete request head, ClientHello, SOCKS5 request or
    /// server connection (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<String>,
    /// A connection with no byte either way for this long is closed
    /// (default `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
}

/// Method and path rules for one host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostRule {
    /// The host these rules apply to.
    pub host: String,
    /// TLS to every allowed host is decrypted by default, so method and
    /// path rules apply and no credential paddock did not issue gets
    /// through. `inspect = false` opts this host out: its tunnel is then
    /// opaque and carries whatever credential the sandbox brings
    /// (`policy check` says so). Inspection wins over an opt-out when the
    /// host has a brokered credential or any rule with paths, WebSocket
    /// paths or credential exceptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect: Option<bool>,
    /// Where this host may receive the client's own credentials after all:
    /// header names (`cookie`, `x-csrf-token`…) and `query:NAME`. Anything
    /// else that looks like a credential is refused
    /// (`NET_FOREIGN_CREDENTIAL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept_credentials: Vec<String>,
    /// Paths (same patterns as `allow`) where a WebSocket upgrade is
    /// allowed. Elsewhere, and for every other upgrade, it is refused. The
    /// handshake is judged and brokered like any request; the messages
    /// after it are not read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub websocket: Vec<String>,
    /// What a JSON request body may not contain, for servers that act on
    /// what a body names (fetch a URL, call a server): `key:NAME` (an object
    /// key anywhere) or `type:GLOB` (an object whose `type` matches, `*` at
    /// the end). With any entry, a request body on this host must be
    /// readable JSON (up to 32 MiB, uncompressed) or it is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_deny: Vec<String>,
    /// `METHOD /path` entries that are allowed (`*` for any method). The
    /// path is a prefix on whole segments; `*` is one segment, `**` any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// `METHOD /path` entries that are refused; wins over allow. Compared
    /// without case, `;params` and a segment's extension ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// A credential the proxy injects; the sandbox only sees a placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The only host the real secret is sent to.
    pub host: String,
    /// Where clients usually send it (e.g. `x-api-key`, `authorization`):
    /// for documentation only — the placeholder is swapped in whichever
    /// credential header the client uses (any auth scheme, Basic
    /// credentials) or credential query parameter, and refused elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Documentation only, like `header` (e.g. `Bearer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Where the real secret comes from: `env:NAME`, `file:PATH` or
    /// `keyring:ATTR=VALUE,...` (a Secret Service item). Left out with
    /// `file`: that file on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The variable that holds the placeholder inside the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A login document the tool reads at this path (`~/...`, in the
    /// private home): the sandbox sees it with every secret replaced by a
    /// placeholder of the secret's shape. Without `source`, the host's
    /// file at the same path is where the secret is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Where in the document the secret is: `a.b.c`, parts holding dots
    /// quoted (`'"//registry.npmjs.org/:_authToken"'`). Without it, the
    /// whole source is the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The document's format: `json`, `toml`, `ini`, `npmrc`, `netrc`,
    /// `yaml` (gh's `hosts.yml`) or `raw`; by default from the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// A missing source is skipped (with a note) instead of refused: one
    /// policy serves users with either of two logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// This secret is an OAuth refresh token for `url`: paddock swaps it
    /// in the refresh request's body, stores the new tokens on the host
    /// and answers the sandbox with placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
}

impl Credential {
    /// What the credential goes by in audit events and `status` (never
    /// its value): the variable that holds the placeholder, or the login
    /// file and key, or its host.
    pub fn name(&self) -> String {
        match (&self.env, &self.file, &self.key) {
            (Some(e), _, _) => e.clone(),
            (None, Some(f), Some(k)) => format!("{f}:{k}"),
            (None, Some(f), None) => f.clone(),
            (None, None, _) => self.host.clone(),
        }
    }
}

/// `refresh = { ... }` of a credential: an OAuth 2 token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    /// The token endpoint, `https://HOST/PATH`; HOST is the credential's.
    pub url: String,
    /// The key of the access token in the same document (the credential
    /// that carries it is the one with this `key`).
    pub access: String,
    /// The key of the expiry in the document, updated from `expires_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// `ms` (Unix milliseconds, the default) or `s` (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_unit: Option<String>,
    /// The key of the id token in the document, updated from the answer's
    /// `id_token` (Codex CLI's `tokens.id_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Request fields this endpoint takes beyond those of a refresh
    /// (`grant_type`, `refresh_token`, `client_id`, `client_secret`,
    /// `scope`, `audience`, `resource`), e.g. Codex CLI's `refresh_reason`.
    /// Never a field of another grant (`code`, `assertion`, `password`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// `[process]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessSection {
    /// Extra environment: `NAME` passes the host's value, `NAME=value`
    /// sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// `[process.limits]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory of the whole sandbox, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Number of processes and threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// CPU, in cores (e.g. 1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Size of the private /tmp and home, MiB (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp_mib: Option<u64>,
    /// Size a session's copy-on-write layers may reach, MiB (default
    /// 10240): past it the session is stopped, its changes kept for
    /// review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cow_mib: Option<u64>,
}

/// `[session]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    /// End an idle session's sandbox after this long (`30m`, `2h`, `0` for never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// What is kept of ended sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// `[session.retention]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Remove session data older than this (`7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Keep at most this many ended sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
    /// Keep at most this much session data, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_disk_mib: Option<u64>,
}

/// `[audit]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// How much is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<AuditLevel>,
    /// Where events go: `jsonl`, `otlp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sinks: Option<Vec<String>>,
    /// OTLP/HTTP endpoint for the `otlp` sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}

/// `[isolation]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IsolationSection {
    /// The weakest level a sandbox may start at; below it paddock refuses
    /// and names the missing layer. Default `no-userns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<IsolationLevel>,
    /// Whether `paddock run --unsafe-no-sandbox` is honoured (default
    /// true; an administrator sets false and locks it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unsafe_no_sandbox: Option<bool>,
}

/// Command execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    /// Commands may run.
    Enabled,
    /// No command runs; everything else keeps working.
    Disabled,
}

/// `[exec]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecSection {
    /// `enabled` (default) or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ExecMode>,
}

/// `[admin]`: only honoured in /etc/paddock/policy.toml and policy.d.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Keys (or whole sections, e.g. `network`) no other layer may set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<Vec<String>>,
    /// `disabled` turns off local execution for everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecMode>,
}

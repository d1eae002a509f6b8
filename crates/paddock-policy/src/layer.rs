//! One layer: a parsed, validated policy file that remembers where each of
//! its values is written.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml_edit::{ImDocument, Item};

use crate::diag::PolicyError;
use crate::file::PolicyFile;
use crate::VERSION;
use paddock_reasons::Reason;

/// The layers, lowest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// paddock's built-in defaults.
    Default,
    /// The user's own file (`$XDG_CONFIG_HOME/paddock/policy.toml`).
    User,
    /// The workspace's `.paddock/policy.toml`: may only tighten.
    Project,
    /// The command line (`--policy FILE` and flags).
    Flags,
    /// `/etc/paddock/policy.toml` and `/etc/paddock/policy.d/*.toml`.
    Admin,
}

impl Layer {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Default => "default",
            Layer::User => "user",
            Layer::Project => "project",
            Layer::Flags => "flags",
            Layer::Admin => "admin",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step in a key path: a table key or an array index.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    /// Table key.
    Key(&'a str),
    /// Array index.
    Idx(usize),
}

/// A parsed and validated policy file.
#[derive(Debug, Clone)]
pub struct ParsedLayer {
    /// Which layer it is.
    pub layer: Layer,
    /// Its file path, or a label (`command line`).
    pub source: String,
    /// The text (empty for layers built from flags).
    pub text: String,
    /// The values.
    pub file: PolicyFile,
    doc: Option<ImDocument<String>>,
}

/// Who may set a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// Shapes the sandbox: any layer may set it, a project only to
    /// tighten it (`POLICY_PROJECT_LOOSENS`).
    Sandbox,
    /// Steers what paddock itself does outside the sandbox (where audit
    /// events and their headers go, which sessions are deleted, which host
    /// secrets are read, which proxy carries the traffic): a project layer
    /// may not set it at all (`POLICY_PROJECT_HOST_KEY`).
    Host,
}

/// Every key a policy file can set, with its class, for locks, the
/// project layer's rules and documentation.
pub const KEYS: &[(&str, KeyClass)] = &[
    ("filesystem.workspace", KeyClass::Sandbox),
    ("filesystem.mount", KeyClass::Sandbox),
    ("filesystem.tools", KeyClass::Sandbox),
    ("filesystem.protect", KeyClass::Sandbox),
    ("filesystem.unprotect", KeyClass::Sandbox),
    ("filesystem.deny", KeyClass::Sandbox),
    ("filesystem.sockets", KeyClass::Sandbox),
    ("network.mode", KeyClass::Sandbox),
    ("network.allow", KeyClass::Sandbox),
    ("network.deny", KeyClass::Sandbox),
    ("network.rules", KeyClass::Sandbox),
    ("network.credentials", KeyClass::Host),
    ("network.upstream_proxy", KeyClass::Host),
    ("network.limits.connections", KeyClass::Sandbox),
    ("network.limits.header_kib", KeyClass::Sandbox),
    ("network.limits.handshake_timeout", KeyClass::Sandbox),
    ("network.limits.idle_timeout", KeyClass::Sandbox),
    ("process.env", KeyClass::Sandbox),
    ("process.limits.memory_mib", KeyClass::Sandbox),
    ("process.limits.pids", KeyClass::Sandbox),
    ("process.limits.cpu", KeyClass::Sandbox),
    ("process.limits.tmp_mib", KeyClass::Sandbox),
    ("process.limits.cow_mib", KeyClass::Sandbox),
    ("session.idle_timeout", KeyClass::Host),
    ("session.retention.max_age", KeyClass::Host),
    ("session.retention.max_count", KeyClass::Host),
    ("session.retention.max_disk_mib", KeyClass::Host),
    ("audit.level", KeyClass::Sandbox),
    ("audit.sinks", KeyClass::Host),
    ("audit.otlp_endpoint", KeyClass::Host),
    ("exec.mode", KeyClass::Sandbox),
    ("isolation.minimum", KeyClass::Sandbox),
    ("isolation.allow_unsafe_no_sandbox", KeyClass::Sandbox),
];

/// The class of `key` (a dotted key from [`KEYS`]).
pub fn key_class(key: &str) -> Option<KeyClass> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, c)| *c)
}

fn help_for(message: &str) -> String {
    if message.contains("unknown field") {
        "remove the key or fix its spelling (the message lists the keys this section accepts; \
         docs/policy.md describes them)"
            .into()
    } else if message.contains("unknown variant") {
        "use one of the values the message lists".into()
    } else if message.contains("missing field `version`") {
        "start the file with `version = 1`".into()
    } else if message.contains("invalid type") {
        "check the value's type in docs/policy.md (strings in quotes, lists in [ ], \
         [[section]] for lists of tables)"
            .into()
    } else {
        "see docs/policy.md, or `paddock policy init` for a commented starter file".into()
    }
}

/// Parse a duration: `0`, `45s`, `30m`, `2h`, `7d`. Returns seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Validate a domain pattern `host`, `*.domain`, optionally `:port`.
pub fn valid_host_pattern(p: &str) -> bool {
    let (host, port) = match p.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') => (h, Some(port)),
        Some(_) => return false,
        None => (p, None),
    };
    if let Some(port) = port {
        if port.parse::<u16>().map(|v| v == 0).unwrap_or(true) {
            return false;
        }
    }
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
        })
}

/// Validate a `METHOD /path-prefix` rule entry.
pub fn valid_method_path(e: &str) -> bool {
    let Some((m, p)) = e.split_once(' ') else {
        return false;
    };
    let methods = [
        "*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
    ];
    methods.contains(&m) && p.starts_with('/') && !p.contains(char::is_whitespace)
}

/// An upstream proxy URL: host, port and `user:password` if given.
pub fn parse_proxy_url(u: &str) -> Result<(String, u16, Option<String>), String> {
    let rest = u
        .strip_prefix("http://")
        .ok_or("only http:// proxies are supported")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (auth, hostport) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a.to_string()), h),
        None => (None, rest),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => {
            (h, p.parse::<u16>().map_err(|_| "the port is not a number")?)
        }
        _ => (hostport, 80),
    };
    if host.is_empty() || host.contains('/') {
        return Err("the host is missing".into());
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port, auth))
}

/// Is `name` a valid environment variable name?
pub fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl ParsedLayer {
    /// Parse and validate `text` as layer `layer` from `source`.
    pub fn parse(layer: Layer, source: &str, text: &str) -> Result<ParsedLayer, Vec<PolicyError>> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().to_string();
            vec![PolicyError::at(
                Reason::POLICY_INVALID.code(),
                source,
                text,
                e.span(),
                msg.clone(),
                help_for(&msg),
            )]
        })?;
        let doc = ImDocument::parse(text.to_string()).ok();
        let parsed = ParsedLayer {
            layer,
            source: source.to_string(),
            text: text.to_string(),
            file,
            doc,
        };
        let errors = parsed.validate();
        if errors.is_empty() {
            Ok(parsed)
        } else {
            Err(errors)
        }
    }

    /// A layer built in code (command-line flags): values without text.
    pub fn from_values(
        layer: Layer,
        source: &str,
        file: PolicyFile,
    ) -> Result<ParsedLayer, Vec<PolicyError>> {
        let parsed = ParsedLayer {
            layer,
            source: source.to_string(),
            text: String::new(),
            file,
            doc: None,
        };
        let errors = parsed.validate();
        if errors.is_empty() {
            Ok(parsed)
        } else {
            Err(errors)
        }
    }

    /// Where `path` is written in the file, if it is.
    pub fn span(&self, path: &[Seg<'_>]) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut item: &Item = doc.as_item();
        for seg in path {
            item = match seg {
                Seg::Key(k) => item.get(*k)?,
                Seg::Idx(i) => item.get(*i)?,
            };
        }
        item.span()
            .or_else(|| item.as_table().and_then(|t| t.span()))
    }

    /// An error pointing at `path` in this layer.
    pub fn error(
        &self,
        code: &'static str,
        path: &[Seg<'_>],
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> PolicyError {
        PolicyError::at(
            code,
            &self.source,
            &self.text,
            self.span(path),
            message,
            help,
        )
    }

    fn validate(&self) -> Vec<PolicyError> {
        use Seg::{Idx, Key};
        let mut errs = Vec::new();
        let f = &self.file;
        let mut bad = |path: &[Seg<'_>], msg: String, help: &str| {
            errs.push(self.error(Reason::POLICY_INVALID.code(), path, msg, help));
        };
        if f.version != VERSION {
            bad(
                &[Key("version")],
                format!(
                    "policy version {} is not supported by this paddock",
                    f.version
                ),
                "write `version = 1`",
            );
        }
        if let Some(fs) = &f.filesystem {
            for (i, m) in fs.mount.iter().flatten().enumerate() {
                if m.path.trim().is_empty() {
                    bad(
                        &[Key("filesystem"), Key("mount"), Idx(i), Key("path")],
                        "mount path is empty".into(),
                        "write the host folder to show, e.g. `path = \"~/datasets\"`",
                    );
                }
                if let Some(t) = &m.target {
                    if !t.starts_with('/') || t.split('/').any(|c| c == ".." || c == ".") {
                        bad(
                            &[Key("filesystem"), Key("mount"), Idx(i), Key("target")],
                            format!(
                                "mount target `{t}` is not an absolute path without `.` or `..`"
                            ),
                            "targets are paths inside the sandbox, e.g. `target = \"/data\"`",
                        );
                    }
                    if ["/proc", "/dev", "/sys"]
                        .iter()
                        .any(|r| t == r || t.starts_with(&format!("{r}/")))
                        || t == "/"
                    {
                        bad(&[Key("filesystem"), Key("mount"), Idx(i), Key("target")],
                            format!("mount target `{t}` is impossible: `/`, /proc, /dev and /sys are built by the sandbox"),
                            "choose another target, e.g. under /mnt");
                    }
                }
            }
            for (key, list) in [
                ("tools", &fs.tools),
                ("deny", &fs.deny),
                ("protect", &fs.protect),
                ("unprotect", &fs.unprotect),
                ("sockets", &fs.sockets),
            ] {
                for (i, p) in list.iter().flatten().enumerate() {
                    if p.trim().is_empty() {
                        bad(
                            &[Key("filesystem"), Key(key), Idx(i)],
                            format!("empty path in filesystem.{key}"),
                            "remove the entry or write a path",
                        );
                    }
                    if key == "deny" && p.split('/').any(|c| c == "..") {
                        bad(
                            &[Key("filesystem"), Key(key), Idx(i)],
                            format!("`{p}`: `..` is refused in filesystem.deny (after a symbolic link it leads elsewhere than it reads)"),
                            "write the path without `..`, e.g. `~/.ssh` rather than `~/work/../.ssh`",
                        );
                    }
                    if (key == "protect" || key == "unprotect")
                        && (p.starts_with('/') || p.split('/').any(|c| c == ".."))
                    {
                        bad(
                            &[Key("filesystem"), Key(key), Idx(i)],
                            format!("`{p}` must be a name relative to a mount's root"),
                            "write e.g. `.secrets` or `config/deploy.yml`",
                        );
                    }
                }
            }
        }
        if let Some(n) = &f.network {
            for (key, list) in [("allow", &n.allow), ("deny", &n.deny)] {
                for (i, p) in list.iter().flatten().enumerate() {
                    if !valid_host_pattern(p) {
                        bad(&[Key("network"), Key(key), Idx(i)], format!("`{p}` is not a domain pattern"),
                            "write `host`, `*.domain` or either with `:port`, e.g. `api.example.com:443`");
                    }
                }
            }
            for (i, r) in n.rules.iter().flatten().enumerate() {
                if !valid_host_pattern(&r.host) {
                    bad(
                        &[Key("network"), Key("rules"), Idx(i), Key("host")],
                        format!("`{}` is not a host", r.host),
                        "write the host name, e.g. `api.example.com`",
                    );
                }
                if r.inspect == Some(false) && !(r.allow.is_empty() && r.deny.is_empty()) {
                    bad(
                        &[Key("network"), Key("rules"), Idx(i), Key("inspect")],
                        format!("{} has method/path rules but `inspect = false`", r.host),
                        "remove `inspect = false` (rules need paddock to read the requests) or the rules",
                    );
                }
                for (j, b) in r.body_deny.iter().enumerate() {
                    // A key is a name; a type may end in one `*`.
                    let ok = match (
                        b.strip_prefix("key:").or_else(|| b.strip_prefix("url:")),
                        b.strip_prefix("type:"),
                    ) {
                        (Some(k), _) => !k.is_empty() && !k.contains('*'),
                        (_, Some(t)) => {
                            !t.is_empty() && !t.strip_suffix('*').unwrap_or(t).contains('*')
                        }
                        _ => false,
                    };
                    if !ok {
                        bad(
                            &[
                                Key("network"),
                                Key("rules"),
                                Idx(i),
                                Key("body_deny"),
                                Idx(j),
                            ],
                            format!("`{b}` is not `key:NAME`, `url:NAME` or `type:GLOB`"),
                            "write e.g. `body_deny = [\"type:url\", \"key:mcp_servers\"]`",
                        );
                    }
                }
                if r.inspect == Some(false) && !r.body_deny.is_empty() {
                    bad(
                        &[Key("network"), Key("rules"), Idx(i), Key("body_deny")],
                        format!("{} screens bodies but `inspect = false`", r.host),
                        "remove `inspect = false`: bodies are read on inspected requests",
                    );
                }
                for (j, w) in r.websocket.iter().enumerate() {
                    if !w.starts_with('/') || w.contains(char::is_whitespace) {
                        bad(
                            &[
                                Key("network"),
                                Key("rules"),
                                Idx(i),
                                Key("websocket"),
                                Idx(j),
                            ],
                            format!("`{w}` is not a path"),
                            "write e.g. `websocket = [\"/v1/realtime\"]`",
                        );
                    }
                }
                if r.inspect == Some(false) && !r.websocket.is_empty() {
                    bad(
                        &[Key("network"), Key("rules"), Idx(i), Key("websocket")],
                        format!("{} allows WebSocket paths but `inspect = false`", r.host),
                        "remove `inspect = false`: the upgrade is judged on the inspected request",
                    );
                }
                for (j, a) in r.accept_credentials.iter().enumerate() {
                    let name = a.strip_prefix("query:").unwrap_or(a);
                    if name.is_empty()
                        || !name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    {
                        bad(
                            &[
                                Key("network"),
                                Key("rules"),
                                Idx(i),
                                Key("accept_credentials"),
                                Idx(j),
                            ],
                            format!("`{a}` is not a header name or `query:NAME`"),
                            "write e.g. `accept_credentials = [\"cookie\", \"query:session\"]`",
                        );
                    }
                }
                for (key, list) in [("allow", &r.allow), ("deny", &r.deny)] {
                    for (j, e) in list.iter().enumerate() {
                        if !valid_method_path(e) {
                            bad(&[Key("network"), Key("rules"), Idx(i), Key(key), Idx(j)],
                                format!("`{e}` is not `METHOD /path`"),
                                "write e.g. `POST /v1/messages` or `* /v1/files` (methods: * GET HEAD POST PUT PATCH DELETE OPTIONS)");
                        }
                    }
                }
            }
            if let Some(l) = &n.limits {
                let at = |k| [Key("network"), Key("limits"), Key(k)];
                for (k, v) in [("connections", l.connections), ("header_kib", l.header_kib)] {
                    if v == Some(0) {
                        bad(
                            &at(k),
                            format!("network.limits.{k} = 0 would refuse everything"),
                            "write a positive number, or leave it out for the default",
                        );
                    }
                }
                for (k, v) in [
                    ("handshake_timeout", &l.handshake_timeout),
                    ("idle_timeout", &l.idle_timeout),
                ] {
                    if let Some(t) = v {
                        if parse_duration(t).is_none_or(|s| s == 0) {
                            bad(
                                &at(k),
                                format!("`{t}` is not a positive duration"),
                                "write e.g. `10s`, `5m`",
                            );
                        }
                    }
                }
            }
            if let Some(u) = &n.upstream_proxy {
                if let Err(why) = parse_proxy_url(u) {
                    // Never the password in a message.
                    let shown = match u.rsplit_once('@') {
                        Some((_, h)) => format!("…@{h}"),
                        None => u.clone(),
                    };
                    bad(
                        &[Key("network"), Key("upstream_proxy")],
                        format!("`{shown}`: {why}"),
                        "write `http://host:port` or `http://user:password@host:port`",
                    );
                }
            }
            for (i, c) in n.credentials.iter().flatten().enumerate() {
                let at = |k| [Key("network"), Key("credentials"), Idx(i), Key(k)];
                match &c.source {
                    Some(src)
                        if !["env:", "file:", "keyring:"]
                            .iter()
                            .any(|p| src.starts_with(p) && src.len() > p.len()) =>
                    {
                        bad(
                            &at("source"),
                            format!("credential source `{src}` is not understood"),
                            "write `env:NAME`, `file:PATH` or `keyring:ATTR=VALUE,...`",
                        );
                    }
                    Some(src) if src.starts_with("keyring:") => {
                        if let Err(why) = paddock_logins::keyring::parse_attributes(&src["keyring:".len()..]) {
                            bad(&at("source"), why, "write e.g. `source = \"keyring:service=gh:github.com,username=alice\"`");
                        }
                    }
                    Some(_) => {}
                    None if c.file.is_none() => bad(
                        &at("host"),
                        format!("the credential for {} says nowhere where its secret is", c.host),
                        "add `source = \"env:NAME\"` (or file:PATH, keyring:...), or `file = \"~/...\"` for a tool's login file",
                    ),
                    None => {}
                }
                match &c.env {
                    Some(e) if !valid_env_name(e) => bad(
                        &at("env"),
                        format!("`{e}` is not a variable name"),
                        "write e.g. `env = \"ANTHROPIC_API_KEY\"`",
                    ),
                    None if c.file.is_none() => bad(
                        &at("host"),
                        format!("the sandbox would never see the placeholder of the credential for {}", c.host),
                        "add `env = \"NAME\"` (a variable holding it) or `file = \"~/...\"` (the tool's login file)",
                    ),
                    _ => {}
                }
                if let Some(f) = &c.file {
                    let plain = f.starts_with('/') || (f.starts_with("~/") && f.len() > 2);
                    if !plain {
                        bad(
                            &at("file"),
                            format!("`{f}` is not a path in the home"),
                            "write the path the tool reads, e.g. `file = \"~/.claude/.credentials.json\"`",
                        );
                    }
                    if c.source.as_deref().is_some_and(|s| s.starts_with("env:")) {
                        bad(
                            &at("source"),
                            "an environment variable holds no document to show as `file`".into(),
                            "leave `source` out to read the file itself, or use keyring:",
                        );
                    }
                }
                let doc_name = c
                    .file
                    .as_deref()
                    .or_else(|| c.source.as_deref().and_then(|s| s.strip_prefix("file:")));
                let format = match &c.format {
                    Some(f) => match paddock_logins::Format::parse(f) {
                        Some(f) => Some(f),
                        None => {
                            bad(
                                &at("format"),
                                format!("`{f}` is not a format paddock reads"),
                                &format!(
                                    "write one of {}",
                                    paddock_logins::Format::NAMES.join(", ")
                                ),
                            );
                            None
                        }
                    },
                    None if c.key.is_some() => {
                        let g = doc_name.and_then(paddock_logins::Format::guess);
                        if g.is_none() {
                            bad(
                                &at("key"),
                                "the document's format cannot be told from its name".into(),
                                "add e.g. `format = \"json\"`",
                            );
                        }
                        g
                    }
                    None => Some(paddock_logins::Format::Raw),
                };
                if let Some(k) = &c.key {
                    if let Err(why) = paddock_logins::parse_key(k) {
                        bad(
                            &at("key"),
                            why,
                            "write e.g. `key = \"claudeAiOauth.accessToken\"`",
                        );
                    }
                    if c.source.as_deref().is_some_and(|s| s.starts_with("env:")) {
                        bad(
                            &at("key"),
                            "an environment variable has no keys".into(),
                            "leave `key` out, or read a file",
                        );
                    }
                    if format == Some(paddock_logins::Format::Raw) {
                        bad(
                            &at("key"),
                            "a raw document has no keys".into(),
                            "leave `key` out, or name the format",
                        );
                    }
                } else if c.file.is_some()
                    && format != Some(paddock_logins::Format::Raw)
                    && c.format.is_some()
                {
                    bad(
                        &at("key"),
                        "a document with a format needs the key of its secret".into(),
                        "add e.g. `key = \"token\"`",
                    );
                }
                if let Some(r) = &c.refresh {
                    let rat = |k| {
                        [
                            Key("network"),
                            Key("credentials"),
                            Idx(i),
                            Key("refresh"),
                            Key(k),
                        ]
                    };
                    let url_host = r
                        .url
                        .strip_prefix("https://")
                        .and_then(|rest| rest.split_once('/'))
                        .map(|(h, _)| h);
                    if url_host.is_none_or(|h| !h.eq_ignore_ascii_case(&c.host)) {
                        bad(
                            &rat("url"),
                            format!("`{}` is not an https:// URL on {}", r.url, c.host),
                            "write the token endpoint on the credential's host, e.g. `url = \"https://platform.claude.com/v1/oauth/token\"`",
                        );
                    }
                    if c.key.is_none() || format != Some(paddock_logins::Format::Json) {
                        bad(
                            &rat("url"),
                            "a refreshed login is written back into a JSON document, at keys"
                                .into(),
                            "read the refresh token from a JSON file or keyring item, with `key`",
                        );
                    }
                    for (name, k) in [
                        ("access", Some(&r.access)),
                        ("expires_at", r.expires_at.as_ref()),
                        ("id_token", r.id_token.as_ref()),
                    ] {
                        if let Some(Err(why)) = k.map(|k| paddock_logins::parse_key(k)) {
                            bad(&rat(name), why, "write the key in the same document, e.g. `claudeAiOauth.accessToken`");
                        }
                    }
                    for (j, f) in r.fields.iter().flatten().enumerate() {
                        let name_ok = !f.is_empty()
                            && f.len() <= 64
                            && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                        let why = if !name_ok {
                            Some(format!(
                                "`{f}` is not a field name (letters, digits and `_`)"
                            ))
                        } else if paddock_types::GRANT_FIELDS
                            .iter()
                            .any(|g| g.eq_ignore_ascii_case(f))
                        {
                            Some(format!(
                                "`{f}` belongs to another grant: the sandbox could sign in with it"
                            ))
                        } else {
                            None
                        };
                        if let Some(why) = why {
                            bad(
                                &[
                                    Key("network"),
                                    Key("credentials"),
                                    Idx(i),
                                    Key("refresh"),
                                    Key("fields"),
                                    Idx(j),
                                ],
                                why,
                                "list only the extra fields the endpoint's refresh takes, e.g. `fields = [\"refresh_reason\"]`",
                            );
                        }
                    }
                    if let Some(u) = &r.expires_unit {
                        if u != "ms" && u != "s" {
                            bad(
                                &rat("expires_unit"),
                                format!("`{u}` is not `ms` or `s`"),
                                "write `ms` (Unix milliseconds) or `s`",
                            );
                        }
                    }
                }
                if let Some(h) = &c.header {
                    if h.trim().is_empty() || h.contains(char::is_whitespace) {
                        bad(
                            &at("header"),
                            format!("`{h}` is not a header name"),
                            "write e.g. `header = \"x-api-key\"`, or leave it out",
                        );
                    }
                }
                let opted_out = n
                    .rules
                    .iter()
                    .flatten()
                    .any(|r| r.inspect == Some(false) && r.host.eq_ignore_ascii_case(&c.host));
                if opted_out {
                    bad(
                        &at("host"),
                        format!("{} has a brokered credential but its rule says `inspect = false`", c.host),
                        "remove `inspect = false`: paddock must read a request to swap its placeholder",
                    );
                }
                if !valid_host_pattern(&c.host) || c.host.starts_with("*.") {
                    bad(
                        &at("host"),
                        format!("`{}` must name exactly one host", c.host),
                        "write e.g. `host = \"api.anthropic.com\"`",
                    );
                }
            }
        }
        if let Some(p) = &f.process {
            for (i, e) in p.env.iter().flatten().enumerate() {
                let name = e.split('=').next().unwrap_or("");
                if !valid_env_name(name) {
                    bad(
                        &[Key("process"), Key("env"), Idx(i)],
                        format!("`{e}` is not a valid environment entry"),
                        "write `NAME` to pass the host's value or `NAME=value` to set one",
                    );
                }
            }
            if let Some(l) = &p.limits {
                let at = |k| [Key("process"), Key("limits"), Key(k)];
                for (k, v) in [
                    ("memory_mib", l.memory_mib),
                    ("pids", l.pids),
                    ("tmp_mib", l.tmp_mib),
                    ("cow_mib", l.cow_mib),
                ] {
                    if v == Some(0) {
                        bad(
                            &at(k),
                            format!("process.limits.{k} must be at least 1"),
                            "remove the key for no limit, or write a positive number",
                        );
                    }
                }
                if let Some(c) = l.cpu {
                    if !(c.is_finite() && c > 0.0) {
                        bad(
                            &at("cpu"),
                            format!("process.limits.cpu = {c} is not a positive number of cores"),
                            "write e.g. `cpu = 1.5`",
                        );
                    }
                }
            }
        }
        if let Some(s) = &f.session {
            if let Some(t) = &s.idle_timeout {
                if parse_duration(t).is_none() {
                    bad(
                        &[Key("session"), Key("idle_timeout")],
                        format!("`{t}` is not a duration"),
                        "write e.g. `30m`, `2h`, `45s`, `7d` or `0` for never",
                    );
                }
            }
            if let Some(a) = s.retention.as_ref().and_then(|r| r.max_age.as_ref()) {
                if parse_duration(a).is_none() {
                    bad(
                        &[Key("session"), Key("retention"), Key("max_age")],
                        format!("`{a}` is not a duration"),
                        "write e.g. `7d`",
                    );
                }
            }
        }
        if let Some(a) = &f.audit {
            for (i, s) in a.sinks.iter().flatten().enumerate() {
                if s != "jsonl" && s != "otlp" {
                    bad(
                        &[Key("audit"), Key("sinks"), Idx(i)],
                        format!("unknown audit sink `{s}`"),
                        "sinks are `jsonl` and `otlp`",
                    );
                }
            }
            if let Some(u) = &a.otlp_endpoint {
                let rest = u
                    .strip_prefix("http://")
                    .or_else(|| u.strip_prefix("https://"));
                if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                    bad(
                        &[Key("audit"), Key("otlp_endpoint")],
                        format!("`{u}` is not an http:// or https:// URL with a host"),
                        "write the collector's OTLP/HTTP base URL, e.g. `http://localhost:4318`",
                    );
                }
            }
        }
        if let Some(adm) = &f.admin {
            if self.layer != Layer::Admin {
                bad(&[Key("admin")], "[admin] is honoured only in /etc/paddock/policy.toml and /etc/paddock/policy.d".into(),
                    "move this section to the administrator's policy, or remove it");
            }
            for (i, k) in adm.lock.iter().flatten().enumerate() {
                let known = KEYS
                    .iter()
                    .any(|(key, _)| key == k || key.starts_with(&format!("{k}.")));
                if !known {
                    bad(&[Key("admin"), Key("lock"), Idx(i)], format!("`{k}` is not a policy key or section"),
                        "lock a section (`network`) or a key (`filesystem.workspace`); `paddock policy show --effective` lists the keys");
                }
            }
        }
        errs
    }
}

//! The effective policy: every layer merged, each value knowing where it
//! came from.
//!
//! The rules, in the order they are applied:
//!
//! 1. Start from the built-in defaults.
//! 2. Read the admin layer's locks first. A lower layer that sets a locked
//!    key (or anything in a locked section) is refused with
//!    `POLICY_LOCKED_BY_ADMIN`, pointing at its own line.
//! 3. Apply user, then project, then flags. A later layer's scalar replaces
//!    an earlier one; allow-type lists (mounts, tools, network.allow, rules,
//!    credentials, env) add entries; deny-type lists (filesystem.deny,
//!    network.deny, protect) accumulate in every layer.
//! 4. The project layer (a file inside the workspace, i.e. written by
//!    whoever wrote the repository) may only tighten: it may never open the
//!    workspace further, add a mount outside the workspace, add tool
//!    folders, unprotect a name, turn the network on or widen it, add
//!    credentials, pass a host variable in, re-enable exec, raise a limit or
//!    lower the audit level (`POLICY_PROJECT_LOOSENS`).
//! 5. Apply the admin layer last: it wins over everything.

use std::path::{Component, Path};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::diag::PolicyError;
use crate::file::*;
use crate::layer::{parse_duration, KeyClass, Layer, ParsedLayer, Seg, KEYS};
use paddock_reasons::Reason;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The layer.
    pub layer: Layer,
    /// The file, or `built-in`, `command line`.
    pub source: String,
    /// 1-based line in that file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl Origin {
    /// The built-in default.
    pub fn builtin() -> Origin {
        Origin {
            layer: Layer::Default,
            source: "built-in".into(),
            line: None,
            column: None,
        }
    }

    /// `layer: file:line:col`.
    pub fn describe(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{} ({}:{l}:{c})", self.layer, self.source),
            _ => format!("{} ({})", self.layer, self.source),
        }
    }
}

/// A value and its origin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it was set.
    pub origin: Origin,
}

impl<T> Sourced<T> {
    fn builtin(value: T) -> Self {
        Sourced {
            value,
            origin: Origin::builtin(),
        }
    }
}

/// The merged policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effective {
    /// Workspace mode.
    pub workspace: Sourced<WorkspaceMode>,
    /// Extra mounts.
    pub mounts: Vec<Sourced<MountEntry>>,
    /// Extra read-only tool folders.
    pub tools: Vec<Sourced<String>>,
    /// Extra protected names.
    pub protect: Vec<Sourced<String>>,
    /// Lifted built-in protected names.
    pub unprotect: Vec<Sourced<String>>,
    /// Host paths never shown.
    pub fs_deny: Vec<Sourced<String>>,
    /// Host unix sockets the sandbox may connect to.
    pub sockets: Vec<Sourced<String>>,
    /// Network mode.
    pub network_mode: Sourced<NetworkMode>,
    /// Allowed domain patterns.
    pub net_allow: Vec<Sourced<String>>,
    /// Denied domain patterns.
    pub net_deny: Vec<Sourced<String>>,
    /// Per-host rules.
    pub net_rules: Vec<Sourced<HostRule>>,
    /// Brokered credentials.
    pub credentials: Vec<Sourced<Credential>>,
    /// The proxy paddock goes through, if the policy names one.
    pub upstream_proxy: Sourced<Option<String>>,
    /// Proxy connections at once (None: the built-in default).
    pub net_connections: Sourced<Option<u64>>,
    /// Largest request head, KiB.
    pub net_header_kib: Sourced<Option<u64>>,
    /// Handshake timeout, seconds.
    pub net_handshake_s: Sourced<Option<u64>>,
    /// Idle timeout, seconds.
    pub net_idle_s: Sourced<Option<u64>>,
    /// Extra environment entries.
    pub env: Vec<Sourced<String>>,
    /// Memory limit, MiB.
    pub memory_mib: Sourced<Option<u64>>,
    /// Process limit.
    pub pids: Sourced<Option<u64>>,
    /// CPU limit, cores.
    pub cpu: Sourced<Option<f64>>,
    /// Size of private /tmp and home, MiB.
    pub tmp_mib: Sourced<u64>,
    /// Size a session's cow layers may reach, MiB.
    pub cow_mib: Sourced<u64>,
    /// Idle timeout, seconds (0 = never).
    pub idle_timeout_s: Sourced<u64>,
    /// Retention: max age, seconds.
    pub max_age_s: Sourced<u64>,
    /// Retention: max number of ended sessions.
    pub max_count: Sourced<u64>,
    /// Retention: max disk, MiB.
    pub max_disk_mib: Sourced<u64>,
    /// Audit level.
    pub audit_level: Sourced<AuditLevel>,
    /// Audit sinks.
    pub audit_sinks: Vec<Sourced<String>>,
    /// OTLP endpoint.
    pub otlp_endpoint: Sourced<Option<String>>,
    /// Exec mode.
    pub exec: Sourced<ExecMode>,
    /// The weakest acceptable isolation level.
    pub isolation_minimum: Sourced<IsolationLevel>,
    /// Whether `--unsafe-no-sandbox` is honoured.
    pub allow_unsafe_no_sandbox: Sourced<bool>,
    /// True when the admin disabled exec (`[admin] exec = "disabled"`).
    pub exec_disabled_by_admin: bool,
    /// Admin locks.
    pub locks: Vec<Sourced<String>>,
}

impl Default for Effective {
    fn default() -> Self {
        Effective {
            workspace: Sourced::builtin(WorkspaceMode::Rw),
            mounts: Vec::new(),
            tools: Vec::new(),
            protect: Vec::new(),
            unprotect: Vec::new(),
            fs_deny: Vec::new(),
            sockets: Vec::new(),
            network_mode: Sourced::builtin(NetworkMode::None),
            net_allow: Vec::new(),
            net_deny: Vec::new(),
            net_rules: Vec::new(),
            credentials: Vec::new(),
            upstream_proxy: Sourced::builtin(None),
            net_connections: Sourced::builtin(None),
            net_header_kib: Sourced::builtin(None),
            net_handshake_s: Sourced::builtin(None),
            net_idle_s: Sourced::builtin(None),
            env: Vec::new(),
            memory_mib: Sourced::builtin(None),
            pids: Sourced::builtin(Some(4096)),
            cpu: Sourced::builtin(None),
            tmp_mib: Sourced::builtin(1024),
            cow_mib: Sourced::builtin(10 * 1024),
            idle_timeout_s: Sourced::builtin(30 * 60),
            max_age_s: Sourced::builtin(7 * 86_400),
            max_count: Sourced::builtin(50),
            max_disk_mib: Sourced::builtin(2048),
            audit_level: Sourced::builtin(AuditLevel::Writes),
            audit_sinks: vec![Sourced::builtin("jsonl".to_string())],
            otlp_endpoint: Sourced::builtin(None),
            exec: Sourced::builtin(ExecMode::Enabled),
            isolation_minimum: Sourced::builtin(IsolationLevel::NoUserns),
            allow_unsafe_no_sandbox: Sourced::builtin(true),
            exec_disabled_by_admin: false,
            locks: Vec::new(),
        }
    }
}

/// One line of `policy show --effective`: a key, its value, its origin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// Dotted key (`network.allow` for each entry of a list).
    pub key: String,
    /// The value, as JSON.
    pub value: serde_json::Value,
    /// Where it came from.
    pub origin: Origin,
}

fn item<T: Serialize>(key: &str, s: &Sourced<T>) -> Item {
    Item {
        key: key.to_string(),
        value: serde_json::to_value(&s.value).unwrap_or(serde_json::Value::Null),
        origin: s.origin.clone(),
    }
}

impl Effective {
    /// Every value with its origin, in a stable order.
    pub fn items(&self) -> Vec<Item> {
        let mut v = vec![item("filesystem.workspace", &self.workspace)];
        v.extend(self.mounts.iter().map(|s| item("filesystem.mount", s)));
        v.extend(self.tools.iter().map(|s| item("filesystem.tools", s)));
        v.extend(self.protect.iter().map(|s| item("filesystem.protect", s)));
        v.extend(
            self.unprotect
                .iter()
                .map(|s| item("filesystem.unprotect", s)),
        );
        v.extend(self.fs_deny.iter().map(|s| item("filesystem.deny", s)));
        v.extend(self.sockets.iter().map(|s| item("filesystem.sockets", s)));
        v.push(item("network.mode", &self.network_mode));
        v.extend(self.net_allow.iter().map(|s| item("network.allow", s)));
        v.extend(self.net_deny.iter().map(|s| item("network.deny", s)));
        v.extend(self.net_rules.iter().map(|s| item("network.rules", s)));
        for (k, s) in [
            ("network.limits.connections", &self.net_connections),
            ("network.limits.header_kib", &self.net_header_kib),
            ("network.limits.handshake_timeout", &self.net_handshake_s),
            ("network.limits.idle_timeout", &self.net_idle_s),
        ] {
            if s.value.is_some() {
                v.push(item(k, s));
            }
        }
        if let Some(u) = &self.upstream_proxy.value {
            // The password, if any, is not shown.
            let shown = match u
                .split_once("://")
                .and_then(|(s, r)| r.rsplit_once('@').map(|(_, h)| (s, h)))
            {
                Some((scheme, host)) => format!("{scheme}://***@{host}"),
                None => u.clone(),
            };
            v.push(item(
                "network.upstream_proxy",
                &Sourced {
                    value: shown,
                    origin: self.upstream_proxy.origin.clone(),
                },
            ));
        }
        // Credentials: the host, header and variable, never the source.
        v.extend(self.credentials.iter().map(|s| Item {
            key: "network.credentials".into(),
            value: serde_json::json!({"host": s.value.host, "header": s.value.header, "env": s.value.env}),
            origin: s.origin.clone(),
        }));
        v.extend(self.env.iter().map(|s| item("process.env", s)));
        v.push(item("process.limits.memory_mib", &self.memory_mib));
        v.push(item("process.limits.pids", &self.pids));
        v.push(item("process.limits.cpu", &self.cpu));
        v.push(item("process.limits.tmp_mib", &self.tmp_mib));
        v.push(item("process.limits.cow_mib", &self.cow_mib));
        v.push(item("session.idle_timeout", &self.idle_timeout_s));
        v.push(item("session.retention.max_age", &self.max_age_s));
        v.push(item("session.retention.max_count", &self.max_count));
        v.push(item("session.retention.max_disk_mib", &self.max_disk_mib));
        v.push(item("audit.level", &self.audit_level));
        v.extend(self.audit_sinks.iter().map(|s| item("audit.sinks", s)));
        v.push(item("audit.otlp_endpoint", &self.otlp_endpoint));
        v.push(item("exec.mode", &self.exec));
        v.push(item("isolation.minimum", &self.isolation_minimum));
        v.push(item(
            "isolation.allow_unsafe_no_sandbox",
            &self.allow_unsafe_no_sandbox,
        ));
        v.extend(self.locks.iter().map(|s| item("admin.lock", s)));
        v
    }

    /// A stable hash of the effective values (origins excluded): two
    /// policies that mean the same have the same hash, whatever files they
    /// came from. Recorded with every session.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for it in self.items() {
            h.update(it.key.as_bytes());
            h.update(b"=");
            h.update(it.value.to_string().as_bytes());
            h.update(b"\n");
        }
        let digest = h.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// Is `key` locked by the admin? Returns the lock.
    pub fn lock_for(&self, key: &str) -> Option<&Sourced<String>> {
        self.locks
            .iter()
            .find(|l| key == l.value || key.starts_with(&format!("{}.", l.value)))
    }
}

fn origin(layer: &ParsedLayer, path: &[Seg<'_>]) -> Origin {
    let span = layer.span(path);
    let (line, column) = match span {
        Some(s) => {
            let e = PolicyError::at("", &layer.source, &layer.text, Some(s), "", "");
            (e.line, e.column)
        }
        None => (None, None),
    };
    Origin {
        layer: layer.layer,
        source: layer.source.clone(),
        line,
        column,
    }
}

/// True when `p` is a relative path that stays inside the workspace.
fn inside_workspace(p: &str) -> bool {
    let path = Path::new(p);
    !p.starts_with('~')
        && path.is_relative()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

struct Merger<'a> {
    eff: Effective,
    errors: Vec<PolicyError>,
    layer: &'a ParsedLayer,
}

impl Merger<'_> {
    fn locked(&mut self, key: &str, path: &[Seg<'_>]) -> bool {
        if self.layer.layer == Layer::Admin {
            return false;
        }
        if let Some(lock) = self.eff.lock_for(key) {
            let msg = format!(
                "`{key}` is locked by the administrator ({})",
                lock.origin.describe()
            );
            self.errors.push(self.layer.error(
                Reason::POLICY_LOCKED_BY_ADMIN.code(),
                path,
                msg,
                "remove this setting; ask the administrator if you need it changed",
            ));
            return true;
        }
        false
    }

    fn loosens(&mut self, path: &[Seg<'_>], what: String) {
        self.errors.push(self.layer.error(
            Reason::POLICY_PROJECT_LOOSENS.code(),
            path,
            format!("a project policy may only tighten the sandbox: {what}"),
            "remove this from .paddock/policy.toml; to loosen the sandbox for yourself, use your \
             own policy (~/.config/paddock/policy.toml) or a command-line flag",
        ));
    }

    fn project(&self) -> bool {
        self.layer.layer == Layer::Project
    }

    fn at(&self, path: &[Seg<'_>]) -> Origin {
        origin(self.layer, path)
    }

    fn scalar<T: Clone>(
        &mut self,
        key: &str,
        path: &[Seg<'_>],
        value: Option<&T>,
        get: impl Fn(&mut Effective) -> &mut Sourced<T>,
    ) {
        let Some(v) = value else { return };
        if self.locked(key, path) {
            return;
        }
        let o = self.at(path);
        *get(&mut self.eff) = Sourced {
            value: v.clone(),
            origin: o,
        };
    }

    fn list<T: Clone + PartialEq>(
        &mut self,
        key: &str,
        path: &[Seg<'_>],
        values: Option<&Vec<T>>,
        get: impl Fn(&mut Effective) -> &mut Vec<Sourced<T>>,
    ) {
        let Some(vs) = values else { return };
        if self.locked(key, path) {
            return;
        }
        for (i, v) in vs.iter().enumerate() {
            let mut p = path.to_vec();
            p.push(Seg::Idx(i));
            let o = self.at(&p);
            let list = get(&mut self.eff);
            if !list.iter().any(|e| &e.value == v) {
                list.push(Sourced {
                    value: v.clone(),
                    origin: o,
                });
            }
        }
    }

    /// A project layer that sets a host key: each one refused at its line.
    fn host_keys(&mut self) {
        let Ok(v) = toml::Value::try_from(&self.layer.file) else {
            return;
        };
        for (key, class) in KEYS {
            if *class != KeyClass::Host {
                continue;
            }
            let set = key.split('.').try_fold(&v, |at, k| at.get(k)).is_some();
            if set {
                let path: Vec<Seg<'_>> = key.split('.').map(Seg::Key).collect();
                self.errors.push(self.layer.error(
                    Reason::POLICY_PROJECT_HOST_KEY.code(),
                    &path,
                    format!(
                        "a project policy may not set `{key}`: it steers what paddock does outside the sandbox"
                    ),
                    "remove it from .paddock/policy.toml; set it in your own policy (~/.config/paddock/policy.toml) if you want it",
                ));
            }
        }
    }

    fn apply(&mut self) {
        use Seg::Key;
        if self.project() {
            self.host_keys();
        }
        let f = self.layer.file.clone();
        if let Some(fs) = &f.filesystem {
            let p = [Key("filesystem"), Key("workspace")];
            if let Some(w) = fs.workspace {
                if self.project() && w.openness() > self.eff.workspace.value.openness() {
                    self.loosens(
                        &p,
                        format!(
                            "workspace `{}` is more open than `{}`",
                            w.as_str(),
                            self.eff.workspace.value.as_str()
                        ),
                    );
                } else {
                    self.scalar("filesystem.workspace", &p, Some(&w), |e| &mut e.workspace);
                }
            }
            let p = [Key("filesystem"), Key("mount")];
            let mut mounts_ok = true;
            if self.project() {
                for (i, m) in fs.mount.iter().flatten().enumerate() {
                    let pi = [Key("filesystem"), Key("mount"), Seg::Idx(i)];
                    if !inside_workspace(&m.path) || m.target.is_some() {
                        mounts_ok = false;
                        self.loosens(
                            &pi,
                            format!(
                                "mount `{}` would show something outside the workspace",
                                m.path
                            ),
                        );
                    } else if WorkspaceMode::from(m.mode).openness()
                        > self.eff.workspace.value.openness()
                    {
                        mounts_ok = false;
                        self.loosens(
                            &pi,
                            format!("mount `{}` is more open than the workspace", m.path),
                        );
                    }
                }
            }
            if mounts_ok {
                self.list("filesystem.mount", &p, fs.mount.as_ref(), |e| &mut e.mounts);
            }
            for (key, vals) in [
                ("tools", &fs.tools),
                ("unprotect", &fs.unprotect),
                ("sockets", &fs.sockets),
            ] {
                let p = [Key("filesystem"), Key(key)];
                if self.project() && vals.as_ref().is_some_and(|v| !v.is_empty()) {
                    self.loosens(
                        &p,
                        format!("filesystem.{key} exposes or unlocks host files"),
                    );
                    continue;
                }
                let k = format!("filesystem.{key}");
                if key == "tools" {
                    self.list(&k, &p, vals.as_ref(), |e| &mut e.tools);
                } else if key == "sockets" {
                    self.list(&k, &p, vals.as_ref(), |e| &mut e.sockets);
                } else {
                    self.list(&k, &p, vals.as_ref(), |e| &mut e.unprotect);
                }
            }
            self.list(
                "filesystem.protect",
                &[Key("filesystem"), Key("protect")],
                fs.protect.as_ref(),
                |e| &mut e.protect,
            );
            self.list(
                "filesystem.deny",
                &[Key("filesystem"), Key("deny")],
                fs.deny.as_ref(),
                |e| &mut e.fs_deny,
            );
        }
        if let Some(n) = &f.network {
            let p = [Key("network"), Key("mode")];
            if let Some(m) = n.mode {
                if self.project()
                    && m == NetworkMode::Proxy
                    && self.eff.network_mode.value == NetworkMode::None
                {
                    self.loosens(&p, "it turns the network on".into());
                } else {
                    self.scalar("network.mode", &p, Some(&m), |e| &mut e.network_mode);
                }
            }
            let widening = [
                ("allow", n.allow.as_ref().is_some_and(|v| !v.is_empty())),
                (
                    "rules",
                    n.rules.iter().flatten().any(|r| {
                        !r.allow.is_empty()
                            || r.inspect == Some(false)
                            || !r.accept_credentials.is_empty()
                            || !r.websocket.is_empty()
                    }),
                ),
            ];
            for (key, widens) in widening {
                if self.project() && widens {
                    self.loosens(
                        &[Key("network"), Key(key)],
                        format!("network.{key} widens network access"),
                    );
                }
            }
            if !self.project() {
                self.list(
                    "network.allow",
                    &[Key("network"), Key("allow")],
                    n.allow.as_ref(),
                    |e| &mut e.net_allow,
                );
                self.list(
                    "network.credentials",
                    &[Key("network"), Key("credentials")],
                    n.credentials.as_ref(),
                    |e| &mut e.credentials,
                );
            }
            if !self.project() || !widening[1].1 {
                self.list(
                    "network.rules",
                    &[Key("network"), Key("rules")],
                    n.rules.as_ref(),
                    |e| &mut e.net_rules,
                );
            }
            self.list(
                "network.deny",
                &[Key("network"), Key("deny")],
                n.deny.as_ref(),
                |e| &mut e.net_deny,
            );
            if let Some(l) = &n.limits {
                let lp = |k| [Key("network"), Key("limits"), Key(k)];
                let vals = [
                    ("connections", l.connections),
                    ("header_kib", l.header_kib),
                    (
                        "handshake_timeout",
                        l.handshake_timeout.as_deref().and_then(parse_duration),
                    ),
                    (
                        "idle_timeout",
                        l.idle_timeout.as_deref().and_then(parse_duration),
                    ),
                ];
                for (k, v) in vals {
                    let Some(v) = v else { continue };
                    let cur = match k {
                        "connections" => self.eff.net_connections.value,
                        "header_kib" => self.eff.net_header_kib.value,
                        "handshake_timeout" => self.eff.net_handshake_s.value,
                        _ => self.eff.net_idle_s.value,
                    };
                    let default = match k {
                        "connections" => 256,
                        "header_kib" => 64,
                        "handshake_timeout" => 10,
                        _ => 300,
                    };
                    if self.project() && v > cur.unwrap_or(default) {
                        self.loosens(&lp(k), format!("network.limits.{k} raises the limit"));
                        continue;
                    }
                    let key = format!("network.limits.{k}");
                    match k {
                        "connections" => {
                            self.scalar(&key, &lp(k), Some(&Some(v)), |e| &mut e.net_connections)
                        }
                        "header_kib" => {
                            self.scalar(&key, &lp(k), Some(&Some(v)), |e| &mut e.net_header_kib)
                        }
                        "handshake_timeout" => {
                            self.scalar(&key, &lp(k), Some(&Some(v)), |e| &mut e.net_handshake_s)
                        }
                        _ => self.scalar(&key, &lp(k), Some(&Some(v)), |e| &mut e.net_idle_s),
                    }
                }
            }
            if let Some(u) = &n.upstream_proxy {
                let p = [Key("network"), Key("upstream_proxy")];
                if self.project() {
                    self.loosens(
                        &p,
                        "network.upstream_proxy chooses where traffic goes".into(),
                    );
                } else {
                    self.scalar("network.upstream_proxy", &p, Some(&Some(u.clone())), |e| {
                        &mut e.upstream_proxy
                    });
                }
            }
        }
        if let Some(pr) = &f.process {
            let p = [Key("process"), Key("env")];
            if self.project() {
                for (i, e) in pr.env.iter().flatten().enumerate() {
                    if !e.contains('=') {
                        self.loosens(&[Key("process"), Key("env"), Seg::Idx(i)], format!("`{e}` would pass a host variable (possibly a secret) into the sandbox"));
                    }
                }
            }
            let env: Option<Vec<String>> = pr.env.as_ref().map(|v| {
                v.iter()
                    .filter(|e| !self.project() || e.contains('='))
                    .cloned()
                    .collect()
            });
            self.list("process.env", &p, env.as_ref(), |e| &mut e.env);
            if let Some(l) = &pr.limits {
                let lp = |k| [Key("process"), Key("limits"), Key(k)];
                for (k, v) in [("memory_mib", l.memory_mib), ("pids", l.pids)] {
                    let Some(v) = v else { continue };
                    let cur = if k == "memory_mib" {
                        self.eff.memory_mib.value
                    } else {
                        self.eff.pids.value
                    };
                    if self.project() && cur.is_some_and(|c| v > c) {
                        self.loosens(&lp(k), format!("process.limits.{k} = {v} raises the limit"));
                        continue;
                    }
                    let key = format!("process.limits.{k}");
                    if k == "memory_mib" {
                        self.scalar(&key, &lp(k), Some(&Some(v)), |e| &mut e.memory_mib);
                    } else {
                        self.scalar(&key, &lp(k), Some(&Some(v)), |e| &mut e.pids);
                    }
                }
                if let Some(c) = l.cpu {
                    if self.project() && self.eff.cpu.value.is_some_and(|cur| c > cur) {
                        self.loosens(
                            &lp("cpu"),
                            format!("process.limits.cpu = {c} raises the limit"),
                        );
                    } else {
                        self.scalar("process.limits.cpu", &lp("cpu"), Some(&Some(c)), |e| {
                            &mut e.cpu
                        });
                    }
                }
                if let Some(t) = l.cow_mib {
                    if self.project() && t > self.eff.cow_mib.value {
                        self.loosens(
                            &lp("cow_mib"),
                            format!("process.limits.cow_mib = {t} raises the limit"),
                        );
                    } else {
                        self.scalar("process.limits.cow_mib", &lp("cow_mib"), Some(&t), |e| {
                            &mut e.cow_mib
                        });
                    }
                }
                if let Some(t) = l.tmp_mib {
                    if self.project() && t > self.eff.tmp_mib.value {
                        self.loosens(
                            &lp("tmp_mib"),
                            format!("process.limits.tmp_mib = {t} raises the limit"),
                        );
                    } else {
                        self.scalar("process.limits.tmp_mib", &lp("tmp_mib"), Some(&t), |e| {
                            &mut e.tmp_mib
                        });
                    }
                }
            }
        }
        if let Some(s) = &f.session {
            let t = s.idle_timeout.as_deref().and_then(parse_duration);
            self.scalar(
                "session.idle_timeout",
                &[Key("session"), Key("idle_timeout")],
                t.as_ref(),
                |e| &mut e.idle_timeout_s,
            );
            if let Some(r) = &s.retention {
                let rp = |k| [Key("session"), Key("retention"), Key(k)];
                let age = r.max_age.as_deref().and_then(parse_duration);
                self.scalar(
                    "session.retention.max_age",
                    &rp("max_age"),
                    age.as_ref(),
                    |e| &mut e.max_age_s,
                );
                self.scalar(
                    "session.retention.max_count",
                    &rp("max_count"),
                    r.max_count.as_ref(),
                    |e| &mut e.max_count,
                );
                self.scalar(
                    "session.retention.max_disk_mib",
                    &rp("max_disk_mib"),
                    r.max_disk_mib.as_ref(),
                    |e| &mut e.max_disk_mib,
                );
            }
        }
        if let Some(a) = &f.audit {
            let p = [Key("audit"), Key("level")];
            if let Some(l) = a.level {
                if self.project() && l < self.eff.audit_level.value {
                    self.loosens(&p, "it lowers the audit level".into());
                } else {
                    self.scalar("audit.level", &p, Some(&l), |e| &mut e.audit_level);
                }
            }
            if let Some(sinks) = &a.sinks {
                if !self.locked("audit.sinks", &[Key("audit"), Key("sinks")]) {
                    if !self.project() {
                        self.eff.audit_sinks.clear();
                    }
                    self.list(
                        "audit.sinks",
                        &[Key("audit"), Key("sinks")],
                        Some(sinks),
                        |e| &mut e.audit_sinks,
                    );
                }
            }
            self.scalar(
                "audit.otlp_endpoint",
                &[Key("audit"), Key("otlp_endpoint")],
                a.otlp_endpoint.as_ref().map(|s| Some(s.clone())).as_ref(),
                |e| &mut e.otlp_endpoint,
            );
        }
        if let Some(iso) = &f.isolation {
            let p = [Key("isolation"), Key("minimum")];
            if let Some(m) = iso.minimum {
                if self.project() && m.strength() < self.eff.isolation_minimum.value.strength() {
                    self.loosens(&p, "it lowers the minimum isolation level".into());
                } else {
                    self.scalar("isolation.minimum", &p, Some(&m), |e| {
                        &mut e.isolation_minimum
                    });
                }
            }
            let p = [Key("isolation"), Key("allow_unsafe_no_sandbox")];
            if let Some(a) = iso.allow_unsafe_no_sandbox {
                if self.project() && a && !self.eff.allow_unsafe_no_sandbox.value {
                    self.loosens(&p, "it allows running without a sandbox".into());
                } else {
                    self.scalar("isolation.allow_unsafe_no_sandbox", &p, Some(&a), |e| {
                        &mut e.allow_unsafe_no_sandbox
                    });
                }
            }
        }
        if let Some(x) = &f.exec {
            let p = [Key("exec"), Key("mode")];
            if let Some(m) = x.mode {
                if self.project()
                    && m == ExecMode::Enabled
                    && self.eff.exec.value == ExecMode::Disabled
                {
                    self.loosens(&p, "it re-enables command execution".into());
                } else {
                    self.scalar("exec.mode", &p, Some(&m), |e| &mut e.exec);
                }
            }
        }
        if let Some(adm) = &f.admin {
            if let Some(ExecMode::Disabled) = adm.exec {
                let o = self.at(&[Key("admin"), Key("exec")]);
                self.eff.exec = Sourced {
                    value: ExecMode::Disabled,
                    origin: o,
                };
                self.eff.exec_disabled_by_admin = true;
            }
        }
    }
}

/// Merge `layers` (in any order; they are sorted by precedence) over the
/// built-in defaults. Returns every problem found, not just the first.
pub fn merge(layers: &[ParsedLayer]) -> Result<Effective, Vec<PolicyError>> {
    let mut order: Vec<&ParsedLayer> = layers.iter().collect();
    order.sort_by_key(|l| l.layer);
    let mut eff = Effective::default();
    // Locks first, so lower layers can be checked against them.
    for l in order.iter().filter(|l| l.layer == Layer::Admin) {
        for (i, k) in l
            .file
            .admin
            .iter()
            .flat_map(|a| a.lock.iter().flatten())
            .enumerate()
        {
            let o = origin(l, &[Seg::Key("admin"), Seg::Key("lock"), Seg::Idx(i)]);
            eff.locks.push(Sourced {
                value: k.clone(),
                origin: o,
            });
        }
    }
    let mut errors = Vec::new();
    for l in order {
        let mut m = Merger {
            eff,
            errors: Vec::new(),
            layer: l,
        };
        m.apply();
        eff = m.eff;
        errors.extend(m.errors);
    }
    if errors.is_empty() {
        Ok(eff)
    } else {
        Err(errors)
    }
}

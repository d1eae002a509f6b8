//! What paddock is doing, in one structure: `paddock status` prints it and
//! the dashboard serves it. The JSON form is versioned and has a schema
//! (`schema/status.schema.json`, generated from these types).

use std::path::Path;

use paddock_session::{Liveness, Meta, Store};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The version of the `status --json` format.
pub const STATUS_VERSION: u32 = 1;

/// Everything `paddock status` reports.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// Format version (1).
    pub version: u32,
    /// When this was collected, seconds since the epoch.
    pub generated_at: u64,
    /// Whether any sandbox runs now (no live session or run: nothing runs).
    pub running: bool,
    /// The session store.
    pub state_dir: String,
    /// Disk used by all sessions, bytes.
    pub disk_bytes_total: u64,
    /// What isolation this machine gives (`paddock doctor`).
    pub isolation: Isolation,
    /// Every session and run record, most recently used first.
    pub sessions: Vec<SessionStatus>,
    /// The last cleanup.
    pub last_gc: Option<GcStatus>,
    /// The latest refusals across sessions, newest first.
    pub recent_denials: Vec<Denial>,
}

/// The isolation level and what is not fully available.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Isolation {
    /// The strongest level this host gives: `full`,
    /// `landlock-unavailable`, `no-userns`, or `none` (docs/isolation-levels.md).
    pub level: String,
    /// In words.
    pub summary: String,
    /// The weakest level the policy here accepts (`isolation.minimum`).
    pub minimum: String,
    /// Where that minimum comes from (built-in default, or file and line).
    pub minimum_origin: String,
    /// Checks that are not `ok`: id, status, impact.
    pub not_ok: Vec<CheckBrief>,
}

/// One doctor check that is not ok.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBrief {
    /// Check id.
    pub id: String,
    /// `degraded` or `missing`.
    pub status: String,
    /// What is lost.
    pub impact: String,
}

/// One session (or `paddock run` record).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionStatus {
    /// Id.
    pub id: String,
    /// Name, if given.
    pub name: Option<String>,
    /// `created`, `running`, `stopped` or `dead`.
    pub state: String,
    /// The record of one `paddock run`.
    pub oneshot: bool,
    /// Seconds since creation.
    pub age_s: u64,
    /// Seconds since the last command started or ended.
    pub idle_s: u64,
    /// Commands run.
    pub commands: u64,
    /// Resident memory of the supervisor and every sandbox process, KiB
    /// (sum of RSS; only while running).
    pub rss_kib: Option<u64>,
    /// Disk used by the record (audit trail, cow layers), bytes.
    pub disk_bytes: u64,
    /// The workspace.
    pub workspace: String,
    /// Effective policy hash.
    pub policy_hash: String,
    /// What the sandbox was built with (absent until it first started).
    pub sandbox: Option<SandboxSummary>,
    /// The isolation level its sandbox was built at (absent until it
    /// first started).
    pub isolation: Option<String>,
}

/// What one sandbox was built with, written when it starts
/// (`sessions/<id>/summary.json`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxSummary {
    /// Mounts with their modes.
    pub mounts: Vec<MountStatus>,
    /// Egress policy.
    pub egress: EgressStatus,
    /// Resource limits in force.
    pub limits: LimitsStatus,
    /// Audit level.
    pub audit_level: String,
    /// The effective policy with the origin of every value.
    pub policy: Vec<PolicyItem>,
}

/// One mount.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MountStatus {
    /// Host path.
    pub source: String,
    /// Path inside.
    pub target: String,
    /// `ro`, `rw`, `rw-no-delete`, `cow`.
    pub mode: String,
    /// Which policy layer or flag asked for it.
    pub origin: String,
}

/// The egress policy, credentials by name only.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressStatus {
    /// `none` or `proxy`.
    pub mode: String,
    /// Allowed domain patterns.
    pub allow: Vec<String>,
    /// Denied domain patterns.
    pub deny: Vec<String>,
    /// Hosts with method/path rules or a brokered credential (every
    /// allowed host is inspected unless listed in `not_inspected`).
    pub inspected: Vec<String>,
    /// Hosts opted out of inspection (`inspect = false`): their tunnels are
    /// opaque and carry any credential the sandbox brings.
    pub not_inspected: Vec<String>,
    /// Brokered credentials: host, header, and the variable the sandbox
    /// sees (a placeholder); never the secret or its source.
    pub credentials: Vec<CredentialStatus>,
}

/// A brokered credential, by name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialStatus {
    /// Host it is sent to.
    pub host: String,
    /// Where clients usually send it (documentation; the placeholder is
    /// swapped wherever it appears).
    pub header: Option<String>,
    /// Environment variable holding the placeholder in the sandbox, or
    /// for a login file its file and key (`~/.npmrc:"//registry…"`).
    pub env: String,
    /// When a request last carried it (Unix ms), from the session's audit
    /// trail; absent when never (or longer ago than the trail's tail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ms: Option<u64>,
}

/// Resource limits.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsStatus {
    /// Process and thread limit.
    pub pids: Option<u64>,
    /// Memory limit, MiB.
    pub memory_mib: Option<u64>,
    /// What the memory limit covers: `sandbox` (a cgroup holds every
    /// process together) or `per process` (RLIMIT_AS only: N processes may
    /// hold N times the limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_scope: Option<String>,
    /// Size of the private /tmp and home, MiB.
    pub tmp_mib: u64,
    /// How the limits are enforced here.
    pub enforced_by: String,
}

/// What a memory limit covers, given the mechanisms that hold: a memory
/// cgroup covers the sandbox; without one only RLIMIT_AS applies, per
/// process.
pub fn memory_scope(enforced_by: &[&str]) -> &'static str {
    if enforced_by.iter().any(|e| e.starts_with("memory")) {
        "sandbox"
    } else {
        "per process"
    }
}

/// One policy value and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyItem {
    /// Key (`network.allow`).
    pub key: String,
    /// Value, as text.
    pub value: String,
    /// Origin (`builtin`, a file and line, a flag).
    pub origin: String,
}

/// The last cleanup.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcStatus {
    /// When, seconds since the epoch.
    pub ran_at: u64,
    /// Sessions removed, with why.
    pub removed: Vec<(String, String)>,
    /// Bytes freed.
    pub bytes: u64,
}

/// A refusal from an audit trail.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Denial {
    /// Session id.
    pub session: String,
    /// Unix time, ms.
    pub ts_ms: u64,
    /// Event kind.
    pub kind: String,
    /// Reason code.
    pub reason_code: String,
    /// What was refused, in a few words.
    pub what: String,
}

/// The summary of a sandbox about to start, from its effective policy and
/// spec, with the limit mechanism the sandbox reported.
pub fn summarize(
    eff: &paddock_policy::Effective,
    spec: &paddock_sandbox::SandboxSpec,
    enforced_by: &[&str],
) -> SandboxSummary {
    let mounts = spec
        .mounts
        .iter()
        .map(|m| MountStatus {
            source: m.source.display().to_string(),
            target: m.target.display().to_string(),
            mode: m.mode.to_string(),
            origin: m.origin.clone(),
        })
        .collect();
    let egress = EgressStatus {
        mode: format!("{:?}", eff.network_mode.value).to_lowercase(),
        allow: eff.net_allow.iter().map(|s| s.value.clone()).collect(),
        deny: eff.net_deny.iter().map(|s| s.value.clone()).collect(),
        inspected: eff
            .net_rules
            .iter()
            .filter(|r| r.value.inspect != Some(false))
            .map(|r| r.value.host.clone())
            .chain(eff.credentials.iter().map(|c| c.value.host.clone()))
            .fold(Vec::new(), |mut v, h| {
                if !v.contains(&h) {
                    v.push(h);
                }
                v
            }),
        not_inspected: eff
            .net_rules
            .iter()
            .filter(|r| r.value.inspect == Some(false))
            .map(|r| r.value.host.clone())
            .collect(),
        credentials: eff
            .credentials
            .iter()
            .map(|c| CredentialStatus {
                host: c.value.host.clone(),
                header: c.value.header.clone(),
                env: c.value.name(),
                last_used_ms: None,
            })
            .collect(),
    };
    let enforced = if enforced_by.is_empty() {
        "rlimits (RLIMIT_NPROC per user namespace; RLIMIT_AS per process when memory is set); tmpfs sizes".to_string()
    } else {
        format!("{}; tmpfs sizes", enforced_by.join(", "))
    };
    let policy = eff
        .items()
        .into_iter()
        .map(|i| PolicyItem {
            key: i.key,
            value: match i.value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
            origin: format!(
                "{} {}{}",
                format!("{:?}", i.origin.layer).to_lowercase(),
                i.origin.source,
                i.origin.line.map(|l| format!(":{l}")).unwrap_or_default()
            ),
        })
        .collect();
    SandboxSummary {
        mounts,
        egress,
        limits: LimitsStatus {
            pids: spec.pids_limit,
            memory_mib: spec.memory_limit_mib,
            memory_scope: spec
                .memory_limit_mib
                .map(|_| memory_scope(enforced_by).to_string()),
            tmp_mib: spec.tmp_size_mib,
            enforced_by: enforced,
        },
        audit_level: format!("{:?}", eff.audit_level.value).to_lowercase(),
        policy,
    }
}

/// Write `summary` next to a session's record (best effort: status shows
/// less without it).
pub fn save_summary(store: &Store, id: &str, summary: &SandboxSummary) {
    if let Ok(data) = serde_json::to_vec_pretty(summary) {
        let dir = store.dir(id);
        let tmp = dir.join(".summary.json.tmp");
        if std::fs::write(&tmp, data).is_ok() {
            let _ = std::fs::rename(tmp, dir.join("summary.json"));
        }
    }
}

fn load_summary(store: &Store, id: &str) -> Option<SandboxSummary> {
    serde_json::from_slice(&std::fs::read(store.dir(id).join("summary.json")).ok()?).ok()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// RSS of `pid` and all its descendants, KiB.
pub fn tree_rss_kib(pid: u32) -> u64 {
    let mut total = 0;
    let mut stack = vec![pid];
    let mut seen = 0;
    while let Some(p) = stack.pop() {
        seen += 1;
        if seen > 100_000 {
            break;
        }
        total += rss_kib(p);
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                    stack.extend(c.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
                }
            }
        }
    }
    total
}

/// The isolation level the layers give, the policy's minimum, and doctor's
/// checks that are not ok.
pub fn isolation(
    checks: &[paddock_sandbox::probe::Check],
    layers: &paddock_sandbox::probe::Layers,
    minimum: Option<&paddock_policy::Sourced<paddock_policy::IsolationLevel>>,
) -> Isolation {
    use paddock_sandbox::Level;
    let (level, summary) = match layers.best() {
        Some(Level::Full) => ("full", "namespaces + Landlock + seccomp"),
        Some(Level::LandlockUnavailable) => (
            "landlock-unavailable",
            "namespaces + seccomp, no Landlock (docs/isolation-levels.md)",
        ),
        Some(Level::NoUserns) => (
            "no-userns",
            "Landlock + seccomp, no namespaces (docs/isolation-levels.md)",
        ),
        None => ("none", "no sandbox can be built on this machine"),
    };
    Isolation {
        level: level.into(),
        summary: summary.into(),
        minimum: minimum.map_or_else(|| "unknown".into(), |m| m.value.to_string()),
        minimum_origin: minimum.map_or_else(
            || "the policy here does not load".into(),
            |m| m.origin.describe(),
        ),
        not_ok: checks
            .iter()
            .filter(|c| c.status != "ok")
            .map(|c| CheckBrief {
                id: c.id.clone(),
                status: c.status.clone(),
                impact: c.impact.clone(),
            })
            .collect(),
    }
}

/// The events of the last 512 KiB of one audit trail.
fn tail_events(path: &Path) -> Vec<paddock_audit::Event> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(512 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    buf.split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<paddock_audit::Event>(l).ok())
        .collect()
}

/// When each credential of `summary` was last carried by an allowed
/// request, from the trail's tail.
fn credentials_last_used(summary: &mut Option<SandboxSummary>, events: &[paddock_audit::Event]) {
    let Some(eg) = summary.as_mut().map(|s| &mut s.egress) else {
        return;
    };
    for c in &mut eg.credentials {
        c.last_used_ms = events
            .iter()
            .filter(|e| {
                e.kind == "net.decision"
                    && e.allowed == Some(true)
                    && e.data["credential"].as_str() == Some(c.env.as_str())
                    && e.data["host"].as_str() == Some(c.host.as_str())
            })
            .map(|e| u64::try_from(e.ts_ms).unwrap_or(u64::MAX))
            .max();
    }
}

/// The last `max` refusals of one audit trail (read from its end).
fn denials_of(events: &[paddock_audit::Event], max: usize) -> Vec<Denial> {
    let mut out: Vec<Denial> = events
        .iter()
        .filter(|e| e.allowed == Some(false))
        .map(|e| Denial {
            what: describe(e),
            session: e.session.clone(),
            ts_ms: u64::try_from(e.ts_ms).unwrap_or(u64::MAX),
            kind: e.kind.clone(),
            reason_code: e.reason_code.clone().unwrap_or_default(),
        })
        .collect();
    let n = out.len();
    out.drain(..n.saturating_sub(max));
    out
}

/// A few words on what an event is about.
pub fn describe(e: &paddock_audit::Event) -> String {
    let d = &e.data;
    let s = |k: &str| d[k].as_str().map(str::to_string);
    match e.kind.as_str() {
        "net.decision" => format!(
            "{}:{}{}{}",
            s("host").unwrap_or_default(),
            d["port"],
            s("method").map(|m| format!(" {m}")).unwrap_or_default(),
            s("path").map(|p| format!(" {p}")).unwrap_or_default()
        ),
        "net.denied" | "net.connect" => s("addr").unwrap_or_default(),
        "syscall.denied" => s("syscall").unwrap_or_default(),
        "exec.start" | "exec.exit" | "process.exec" => d["argv"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        k if k.starts_with("file.") => {
            let mut t = s("path").unwrap_or_else(|| "?".into());
            if let Some(to) = s("to") {
                t.push_str(&format!(" -> {to}"));
            }
            if let Some(op) = s("op") {
                t = format!("{op} {t}");
            }
            t
        }
        _ => d.to_string(),
    }
}

/// Collect the status of `store`.
pub fn collect(store: &Store, host: &paddock_plan::HostFacts) -> Status {
    collect_with(store, probe_isolation(host))
}

/// Probe the host and load the policy's minimum (best effort: a policy
/// that does not load shows as such).
pub fn probe_isolation(host: &paddock_plan::HostFacts) -> Isolation {
    let (layers, _) = paddock_plan::isolation::layers(&host.home);
    let checks = paddock_sandbox::probe::kernel_checks(&layers);
    let eff = paddock_plan::policy_files::effective(host, None, None).ok();
    isolation(&checks, &layers, eff.as_ref().map(|e| &e.isolation_minimum))
}

/// [`collect`] with the isolation already probed (the probes fork and
/// create namespaces; a live view probes once).
pub fn collect_with(store: &Store, isolation: Isolation) -> Status {
    let now = paddock_session::now();
    let mut metas: Vec<Meta> = store.list().unwrap_or_default();
    metas.sort_by_key(|m| std::cmp::Reverse(m.last_used));
    let mut total = 0;
    let mut denials = Vec::new();
    let mut sessions = Vec::new();
    for m in &metas {
        let live = m.liveness();
        let disk = store.disk_usage(&m.id);
        total += disk;
        let events = tail_events(&store.dir(&m.id).join("audit.jsonl"));
        denials.extend(denials_of(&events, 20));
        let mut sandbox = load_summary(store, &m.id);
        credentials_last_used(&mut sandbox, &events);
        sessions.push(SessionStatus {
            id: m.id.clone(),
            name: m.name.clone(),
            state: serde_json::to_value(live)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            oneshot: m.oneshot,
            age_s: now.saturating_sub(m.created),
            idle_s: now.saturating_sub(m.last_used),
            commands: m.commands,
            rss_kib: match (&m.supervisor, live) {
                (Some(s), Liveness::Running) => u32::try_from(s.pid).ok().map(tree_rss_kib),
                _ => None,
            },
            disk_bytes: disk,
            workspace: m.inputs.workspace.display().to_string(),
            policy_hash: m.policy_hash.clone(),
            sandbox,
            isolation: m.isolation.clone(),
        });
    }
    denials.sort_by_key(|d| std::cmp::Reverse(d.ts_ms));
    denials.truncate(20);
    Status {
        version: STATUS_VERSION,
        generated_at: now,
        running: sessions.iter().any(|s| s.state == "running"),
        state_dir: store.root().display().to_string(),
        disk_bytes_total: total,
        isolation,
        sessions,
        last_gc: store.last_gc().map(|g| GcStatus {
            ran_at: g.ran_at,
            removed: g.removed,
            bytes: g.bytes,
        }),
        recent_denials: denials,
    }
}

/// A byte count, short: `512 B`, `3.4 MiB`.
pub fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1}G", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1}M", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.0}K", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n.saturating_sub(1))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

fn clip_end(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!(
            "{}…",
            s.chars().take(n.saturating_sub(1)).collect::<String>()
        )
    }
}

/// The human form: aligned tables within 80 columns.
pub fn render(st: &Status) -> String {
    let mut o = String::new();
    let live = st.sessions.iter().filter(|s| s.state == "running").count();
    o.push_str(&format!(
        "paddock: {}\nisolation: {} ({})\nminimum: {} ({})\nstate: {} ({} in {} record(s))\n",
        if st.running {
            format!("{live} sandbox(es) running")
        } else {
            "nothing running".to_string()
        },
        st.isolation.level,
        st.isolation.summary,
        st.isolation.minimum,
        clip(&st.isolation.minimum_origin, 50),
        clip(&st.state_dir, 50),
        human_bytes(st.disk_bytes_total),
        st.sessions.len()
    ));
    for c in &st.isolation.not_ok {
        let room = 80usize.saturating_sub(5 + c.status.len() + c.id.len());
        o.push_str(&format!(
            "  {} {}: {}\n",
            c.status,
            c.id,
            clip_end(&c.impact, room)
        ));
    }
    if !st.sessions.is_empty() {
        o.push_str(&format!(
            "\n{:<12} {:<10} {:<8} {:>5} {:>5} {:>5} {:>7} {:>7}  {}\n",
            "ID", "NAME", "STATE", "AGE", "IDLE", "CMDS", "MEM", "DISK", "KIND"
        ));
        // Live ones first, then the most recently used, 15 at most.
        let mut shown: Vec<&SessionStatus> = st.sessions.iter().collect();
        shown.sort_by_key(|s| (s.state != "running", s.idle_s));
        let hidden = shown.len().saturating_sub(15);
        shown.truncate(15);
        for s in shown {
            o.push_str(&format!(
                "{:<12} {:<10} {:<8} {:>5} {:>5} {:>5} {:>7} {:>7}  {}\n",
                clip(&s.id, 12),
                clip(s.name.as_deref().unwrap_or("-"), 10),
                s.state,
                age(s.age_s),
                age(s.idle_s),
                s.commands,
                s.rss_kib
                    .map(|k| human_bytes(k * 1024))
                    .unwrap_or_else(|| "-".into()),
                human_bytes(s.disk_bytes),
                if s.oneshot { "run" } else { "session" }
            ));
        }
        if hidden > 0 {
            o.push_str(&format!(
                "… {hidden} more (paddock session list, or --json)\n"
            ));
        }
    }
    for s in st.sessions.iter().filter(|s| s.state == "running") {
        let Some(sb) = &s.sandbox else { continue };
        o.push_str(&format!(
            "\nsession {} ({}), isolation {}\n",
            s.id,
            clip(&s.workspace, 40),
            s.isolation.as_deref().unwrap_or("-")
        ));
        for m in &sb.mounts {
            o.push_str(&format!("  mount {:<12} {}\n", m.mode, clip(&m.target, 60)));
        }
        let e = &sb.egress;
        o.push_str(&format!(
            "  network {}{}\n",
            e.mode,
            if e.allow.is_empty() {
                String::new()
            } else {
                format!(": {}", clip(&e.allow.join(", "), 60))
            }
        ));
        if !e.inspected.is_empty() {
            o.push_str(&format!(
                "  inspected {}\n",
                clip(&e.inspected.join(", "), 60)
            ));
        }
        if !e.not_inspected.is_empty() {
            o.push_str(&format!(
                "  NOT inspected (any credential passes) {}\n",
                clip(&e.not_inspected.join(", "), 40)
            ));
        }
        for c in &e.credentials {
            let used = match c.last_used_ms {
                Some(t) => format!(
                    ", last used {} ago",
                    age((st.generated_at * 1000).saturating_sub(t) / 1000)
                ),
                None => String::new(),
            };
            o.push_str(&format!("  credential for {}{used}: {}\n", c.host, c.env));
        }
        let l = &sb.limits;
        o.push_str(&format!(
            "  limits pids {} memory {} tmp {}M audit {}\n",
            l.pids.map_or("-".into(), |p| p.to_string()),
            l.memory_mib
                .map_or("-".into(), |m| match l.memory_scope.as_deref() {
                    Some("per process") => format!("{m}M per process"),
                    _ => format!("{m}M"),
                }),
            l.tmp_mib,
            sb.audit_level
        ));
    }
    match &st.last_gc {
        Some(g) => o.push_str(&format!(
            "\nlast cleanup: {} ago, removed {} ({})\n",
            age(paddock_session::now().saturating_sub(g.ran_at)),
            g.removed.len(),
            human_bytes(g.bytes)
        )),
        None => o.push_str("\nlast cleanup: never\n"),
    }
    if !st.recent_denials.is_empty() {
        o.push_str("\nrecent denials:\n");
        for d in st.recent_denials.iter().take(10) {
            o.push_str(&format!(
                "  {:<12} {:<24} {}\n",
                d.session,
                clip(&d.reason_code, 24),
                clip(&d.what, 40)
            ));
        }
    }
    // Every line within 80 columns, whatever the data.
    o.lines().map(|l| clip_end(l, 80) + "\n").collect()
}

/// A duration in seconds, short: `42s`, `5m`, `3h`, `2d`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn checked_in_schema_matches_the_types() {
        let schema = schemars::schema_for!(super::Status);
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schema/status.schema.json"
        );
        if std::env::var_os("PADDOCK_WRITE_SCHEMA").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(path).unwrap_or_default(),
            text,
            "schema/status.schema.json is stale: run PADDOCK_WRITE_SCHEMA=1 cargo test -p paddock status"
        );
    }
}

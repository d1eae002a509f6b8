//! `paddock policy check|show|explain|diff|init|schema`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use paddock_policy::{decide_network, merge, ExecMode, Item, Layer, ParsedLayer, PolicyError};
use paddock_sandbox::explain::{explain_fs, FsOp};

use crate::cli::PolicyCommand;
use crate::compile::{flags_layer, normalize, HostFacts, RunFlags};
use crate::error::CliError;
use crate::policy_files;
use paddock_reasons::Reason;

/// Run a policy subcommand; returns the exit code.
pub fn policy(cmd: PolicyCommand) -> Result<i32, CliError> {
    match cmd {
        PolicyCommand::Check { file, json } => check(file.as_deref(), json),
        PolicyCommand::Show {
            effective,
            json,
            policy,
        } => show(effective, json, policy.as_deref()),
        PolicyCommand::Explain {
            action,
            policy,
            mounts,
            json,
        } => explain(&action, policy.as_deref(), mounts, json),
        PolicyCommand::Diff { a, b, json } => diff(&a, &b, json),
        PolicyCommand::Init { write } => init(write),
        PolicyCommand::Schema => {
            print!("{}", paddock_policy::schema_json());
            Ok(0)
        }
    }
}

fn infer_layer(path: &Path) -> Layer {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if abs.starts_with(policy_files::admin_dir()) || abs.starts_with("/etc/paddock") {
        Layer::Admin
    } else if abs
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == ".paddock")
    {
        Layer::Project
    } else {
        Layer::User
    }
}

fn errors_json(errs: &[PolicyError]) -> serde_json::Value {
    serde_json::Value::Array(
        errs.iter()
            .map(|e| {
                serde_json::json!({
                    "code": e.code, "file": e.file, "line": e.line, "column": e.column,
                    "message": e.message, "help": e.help,
                })
            })
            .collect(),
    )
}

fn check(file: Option<&Path>, json: bool) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let mut errs: Vec<PolicyError> = Vec::new();
    let mut layers = Vec::new();
    let mut checked: Vec<(Layer, String)> = Vec::new();
    let files: Vec<(Layer, PathBuf)> = match file {
        Some(f) => {
            if !f.exists() {
                return Err(CliError::new(
                    Reason::POLICY_UNREADABLE.code(),
                    format!("{}: no such file", f.display()),
                    "check the path",
                ));
            }
            vec![(infer_layer(f), f.to_path_buf())]
        }
        None => policy_files::candidates(&host)
            .into_iter()
            .filter(|(_, p)| p.exists())
            .collect(),
    };
    for (layer, path) in files {
        checked.push((layer, path.display().to_string()));
        match std::fs::read_to_string(&path) {
            Ok(text) => match ParsedLayer::parse(layer, &path.display().to_string(), &text) {
                Ok(l) => layers.push(l),
                Err(e) => errs.extend(e),
            },
            Err(e) => errs.push(PolicyError::plain(
                Reason::POLICY_UNREADABLE.code(),
                &path.display().to_string(),
                format!("cannot read: {e}"),
                "fix its permissions",
            )),
        }
    }
    let eff = if errs.is_empty() {
        match merge(&layers) {
            Ok(e) => Some(e),
            Err(e) => {
                errs.extend(e);
                None
            }
        }
    } else {
        None
    };
    // Risks that are the policy's own choice, not mistakes: said every time.
    let risks: Vec<String> = eff
        .iter()
        .flat_map(|e| e.net_rules.iter())
        .filter(|r| r.value.inspect == Some(false))
        .map(|r| {
            format!(
                "{}: {} has `inspect = false`: its tunnel is opaque, so a credential the sandbox brings (an attacker's key) reaches it unchecked",
                r.origin.describe(),
                r.value.host
            )
        })
        .collect();
    if json {
        let v = serde_json::json!({
            "ok": errs.is_empty(),
            "files": checked.iter().map(|(l, p)| serde_json::json!({"layer": l, "file": p})).collect::<Vec<_>>(),
            "errors": errors_json(&errs),
            "risks": risks,
            "hash": eff.as_ref().map(|e| e.hash()),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if errs.is_empty() {
        if checked.is_empty() {
            println!("no policy files here: the built-in defaults apply");
        }
        for (l, p) in &checked {
            println!("ok  {l:<8} {p}");
        }
        for r in &risks {
            println!("risk {r}");
        }
        if let Some(e) = &eff {
            println!("effective policy {}", e.hash());
        }
    } else {
        eprintln!("{}", paddock_policy::PolicyErrors(errs.clone()));
    }
    Ok(if errs.is_empty() { 0 } else { 1 })
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

fn item_json(i: &Item) -> serde_json::Value {
    serde_json::json!({
        "key": i.key, "value": i.value, "layer": i.origin.layer,
        "file": i.origin.source, "line": i.origin.line, "column": i.origin.column,
    })
}

fn show(effective_only: bool, json: bool, explicit: Option<&Path>) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let layers = policy_files::load_all(&host, explicit, None)?;
    let eff = merge(&layers).map_err(CliError::policy)?;
    let items = eff.items();
    if json {
        let mut v = serde_json::json!({
            "hash": eff.hash(),
            "effective": items.iter().map(item_json).collect::<Vec<_>>(),
        });
        if !effective_only {
            v["layers"] = policy_files::candidates(&host)
                .iter()
                .map(|(l, p)| serde_json::json!({"layer": l, "file": p, "present": p.exists()}))
                .chain(explicit.map(
                    |p| serde_json::json!({"layer": "flags", "file": p, "present": p.exists()}),
                ))
                .collect();
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(0);
    }
    if !effective_only {
        println!("layers (lowest first):");
        println!("  default  built-in");
        for (l, p) in policy_files::candidates(&host) {
            let state = if p.exists() { "" } else { "  (absent)" };
            println!("  {:<8} {}{state}", l.as_str(), p.display());
        }
        if let Some(p) = explicit {
            println!("  flags    {}", p.display());
        }
        println!();
    }
    println!("effective policy {}", eff.hash());
    let width = items.iter().map(|i| i.key.len()).max().unwrap_or(0);
    for i in &items {
        println!(
            "  {:<width$}  {:<28}  {}",
            i.key,
            value_text(&i.value),
            i.origin.describe()
        );
    }
    Ok(0)
}

fn explain(
    words: &[String],
    explicit: Option<&Path>,
    mounts: Vec<String>,
    json: bool,
) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let flags = RunFlags {
        mounts,
        argv: vec!["true".into()],
        ..RunFlags::default()
    };
    let eff = policy_files::effective(&host, explicit, Some(flags_layer(&flags)?))?;
    let usage = || {
        CliError::new(
            Reason::EXPLAIN_ACTION_INVALID.code(),
            format!("cannot explain `{}`", words.join(" ")),
            "write one of: read PATH, write PATH, delete PATH, connect HOST:PORT, METHOD URL, exec",
        )
    };
    let verb = words[0].as_str();
    let (allowed, code, rule, origin): (bool, String, String, Option<String>) =
        match (verb, words.get(1)) {
            ("read" | "write" | "delete", Some(p)) => {
                let op = match verb {
                    "read" => FsOp::Read,
                    "write" => FsOp::Write,
                    _ => FsOp::Delete,
                };
                let path = if let Some(rest) = p.strip_prefix("~/") {
                    host.home.join(rest)
                } else {
                    normalize(&host.cwd.join(p))
                };
                // The policy's answer, at the strongest level.
                let spec = paddock_plan::plan(&paddock_plan::Request {
                    host: &host,
                    eff: &eff,
                    flags: &flags,
                    level: paddock_sandbox::Level::Full,
                    purpose: paddock_plan::Purpose::Check { session: false },
                })?
                .spec;
                let v = explain_fs(&spec, &path, op);
                (v.allowed, v.code.to_string(), v.rule, None)
            }
            ("connect", Some(hp)) => {
                let (h, port) = hp.rsplit_once(':').ok_or_else(usage)?;
                let port: u16 = port.parse().map_err(|_| usage())?;
                let d = decide_network(&eff, h, port, None);
                (
                    d.allowed,
                    d.code.to_string(),
                    with_risk(&eff, h, port, d.allowed, d.rule),
                    d.origin.map(|o| o.describe()),
                )
            }
            ("exec", None) => {
                if eff.exec.value == ExecMode::Disabled {
                    let code = if eff.exec_disabled_by_admin {
                        Reason::EXEC_DISABLED_BY_ADMIN.code()
                    } else {
                        Reason::EXEC_DISABLED_BY_POLICY.code()
                    };
                    (
                        false,
                        code.into(),
                        "exec.mode = disabled".into(),
                        Some(eff.exec.origin.describe()),
                    )
                } else {
                    (
                        true,
                        Reason::EXEC_ALLOWED.code().into(),
                        "exec.mode = enabled".into(),
                        Some(eff.exec.origin.describe()),
                    )
                }
            }
            (m, Some(url)) if m.chars().all(|c| c.is_ascii_uppercase()) => {
                let (scheme, rest) = url.split_once("://").ok_or_else(usage)?;
                let (authority, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                let default_port = if scheme == "http" { 80 } else { 443 };
                let (h, port) = match authority.rsplit_once(':') {
                    Some((h, p)) => (h, p.parse().map_err(|_| usage())?),
                    None => (authority, default_port),
                };
                // The proxy judges the path without its query.
                let path = path.split_once('?').map_or(path, |(p, _)| p);
                let d = decide_network(&eff, h, port, Some((m, path)));
                let host = paddock_policy::canonical_host(h)
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                if d.allowed && scheme == "http" && paddock_policy::has_credential(&eff, &host) {
                    (
                        false,
                        Reason::NET_CREDENTIAL_PLAINTEXT.code().to_string(),
                        format!("{host} has a brokered credential, which is only sent over https"),
                        None,
                    )
                } else {
                    (
                        d.allowed,
                        d.code.to_string(),
                        with_risk(&eff, h, port, d.allowed, d.rule),
                        d.origin.map(|o| o.describe()),
                    )
                }
            }
            _ => return Err(usage()),
        };
    if json {
        let v = serde_json::json!({
            "action": words.join(" "), "allowed": allowed, "reason_code": code,
            "rule": rule, "origin": origin, "policy_hash": eff.hash(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "{}: {}",
            if allowed { "allowed" } else { "denied" },
            words.join(" ")
        );
        println!("  reason: {code}");
        println!("  rule:   {rule}");
        if let Some(o) = origin {
            println!("  origin: {o}");
        }
    }
    Ok(if allowed { 0 } else { 1 })
}

/// An allowed host that is not inspected: say what that means.
fn with_risk(
    eff: &paddock_policy::Effective,
    h: &str,
    port: u16,
    allowed: bool,
    rule: String,
) -> String {
    let host = paddock_policy::canonical_host(h)
        .map(|c| c.to_string())
        .unwrap_or_default();
    if allowed && !paddock_policy::net_inspected(eff, &host, port) {
        format!("{rule}; NOT inspected (`inspect = false`): any credential the sandbox brings reaches {host}")
    } else {
        rule
    }
}

fn load_alone(path: &Path) -> Result<paddock_policy::Effective, CliError> {
    let layer = policy_files::load_file(infer_layer(path), path)?.ok_or_else(|| {
        CliError::new(
            Reason::POLICY_UNREADABLE.code(),
            format!("{}: no such file", path.display()),
            "check the path",
        )
    })?;
    merge(&[layer]).map_err(CliError::policy)
}

fn group(items: Vec<Item>) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in items {
        m.entry(i.key).or_default().push(value_text(&i.value));
    }
    m
}

/// Keys whose value is a list: compared entry by entry.
const LIST_KEYS: &[&str] = &[
    "filesystem.mount",
    "filesystem.tools",
    "filesystem.protect",
    "filesystem.unprotect",
    "filesystem.deny",
    "network.allow",
    "network.deny",
    "network.rules",
    "network.credentials",
    "process.env",
    "audit.sinks",
    "admin.lock",
];

fn diff(a: &Path, b: &Path, json: bool) -> Result<i32, CliError> {
    let ea = load_alone(a)?;
    let eb = load_alone(b)?;
    let (ga, gb) = (group(ea.items()), group(eb.items()));
    let mut changes = Vec::new();
    let keys: std::collections::BTreeSet<&String> = ga.keys().chain(gb.keys()).collect();
    for k in keys {
        let va = ga.get(k).cloned().unwrap_or_default();
        let vb = gb.get(k).cloned().unwrap_or_default();
        if va == vb {
            continue;
        }
        let scalar = !LIST_KEYS.contains(&k.as_str());
        if scalar && va.len() == 1 && vb.len() == 1 {
            changes.push(
                serde_json::json!({"key": k, "change": "changed", "from": va[0], "to": vb[0]}),
            );
        } else {
            for v in va.iter().filter(|v| !vb.contains(v)) {
                changes.push(serde_json::json!({"key": k, "change": "removed", "value": v}));
            }
            for v in vb.iter().filter(|v| !va.contains(v)) {
                changes.push(serde_json::json!({"key": k, "change": "added", "value": v}));
            }
        }
    }
    if json {
        let v = serde_json::json!({"a": a, "b": b, "hash_a": ea.hash(), "hash_b": eb.hash(), "changes": changes});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if changes.is_empty() {
        println!("no difference in meaning ({})", ea.hash());
    } else {
        for c in &changes {
            let k = c["key"].as_str().unwrap_or("");
            match c["change"].as_str() {
                Some("changed") => println!(
                    "~ {k}: {} -> {}",
                    c["from"].as_str().unwrap_or(""),
                    c["to"].as_str().unwrap_or("")
                ),
                Some("added") => println!("+ {k}: {}", c["value"].as_str().unwrap_or("")),
                _ => println!("- {k}: {}", c["value"].as_str().unwrap_or("")),
            }
        }
    }
    Ok(if changes.is_empty() { 0 } else { 1 })
}

fn init(write: bool) -> Result<i32, CliError> {
    if !write {
        print!("{}", paddock_policy::STARTER);
        return Ok(0);
    }
    let dir = std::env::current_dir()
        .map_err(|e| {
            CliError::new(
                Reason::CWD_UNAVAILABLE.code(),
                e.to_string(),
                "cd into a folder",
            )
        })?
        .join(".paddock");
    let path = dir.join("policy.toml");
    if path.exists() {
        return Err(CliError::new(
            Reason::POLICY_EXISTS.code(),
            format!(
                "{} already exists; paddock does not overwrite it",
                path.display()
            ),
            "edit it, or remove it first",
        ));
    }
    std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&path, paddock_policy::STARTER))
        .map_err(|e| {
            CliError::new(
                Reason::HOST_IO_ERROR.code(),
                format!("writing {}: {e}", path.display()),
                "check the folder's permissions",
            )
        })?;
    println!(
        "wrote {} ({} bytes)",
        path.display(),
        paddock_policy::STARTER.len()
    );
    Ok(0)
}

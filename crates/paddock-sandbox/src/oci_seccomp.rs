//! A container bundle's seccomp profile (`linux.seccomp` of an OCI
//! `config.json`, libseccomp's vocabulary) compiled to BPF, so paddock's
//! OCI runtime applies it *and* paddock's own filters.
//!
//! A profile names one action per rule and a default for the rest. Each
//! action becomes a filter of its own: the allow list (its rules allowed,
//! anything else the default) first, then one filter per other action (its
//! rules take it, anything else is allowed). The kernel runs every filter
//! and keeps the most restrictive answer (of two errnos, the later
//! filter's), which is what the profile says: a call the profile denies is
//! denied whatever else allows it. A system call this build does not know
//! by name is left to the default, as libseccomp leaves it.

use std::collections::BTreeMap;

use seccompiler::BpfProgram;
use serde_json::Value;

/// Compiled filters, ready to install.
pub struct ContainerFilters(Vec<BpfProgram>);

impl ContainerFilters {
    /// Install them on the calling thread (no_new_privs must be set).
    pub fn install(&self) -> Result<(), String> {
        crate::seccomp::install(&self.0)
    }

    /// How many filters (for tests and messages).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No filter at all (an empty profile).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn action(name: &str, errno: Option<u64>, default_errno: Option<u64>) -> Result<Value, String> {
    let e = errno.or(default_errno).unwrap_or(1);
    Ok(match name {
        "SCMP_ACT_ALLOW" => Value::from("allow"),
        "SCMP_ACT_ERRNO" => serde_json::json!({ "errno": e }),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Value::from("kill_thread"),
        "SCMP_ACT_KILL_PROCESS" => Value::from("kill_process"),
        "SCMP_ACT_TRAP" => Value::from("trap"),
        "SCMP_ACT_LOG" => Value::from("log"),
        "SCMP_ACT_TRACE" => serde_json::json!({ "trace": e }),
        other => {
            return Err(format!(
                "seccomp action `{other}` is not supported (SCMP_ACT_NOTIFY needs a listener this runtime does not run)"
            ))
        }
    })
}

fn op(name: &str, value: u64, value_two: u64) -> Result<(Value, u64), String> {
    Ok(match name {
        "SCMP_CMP_NE" => ("ne".into(), value),
        "SCMP_CMP_LT" => ("lt".into(), value),
        "SCMP_CMP_LE" => ("le".into(), value),
        "SCMP_CMP_EQ" => ("eq".into(), value),
        "SCMP_CMP_GE" => ("ge".into(), value),
        "SCMP_CMP_GT" => ("gt".into(), value),
        "SCMP_CMP_MASKED_EQ" => (serde_json::json!({ "masked_eq": value }), value_two),
        other => return Err(format!("seccomp operator `{other}` is not known")),
    })
}

/// Is `name` a system call seccompiler knows on this architecture?
fn known(name: &str) -> bool {
    let probe = serde_json::json!({"p": {"mismatch_action": "allow", "match_action": {"errno": 1}, "filter": [{"syscall": name}]}});
    seccompiler::compile_from_json(probe.to_string().as_bytes(), arch()).is_ok()
}

fn arch() -> seccompiler::TargetArch {
    if cfg!(target_arch = "aarch64") {
        seccompiler::TargetArch::aarch64
    } else {
        seccompiler::TargetArch::x86_64
    }
}

/// Compile `profile` (the value of `linux.seccomp`).
pub fn compile_oci_profile(profile: &Value) -> Result<ContainerFilters, String> {
    let o = profile
        .as_object()
        .ok_or("linux.seccomp is not an object")?;
    if o.get("listenerPath").is_some_and(|v| !v.is_null()) {
        return Err(
            "linux.seccomp.listenerPath (a seccomp agent) is not supported by this runtime".into(),
        );
    }
    let default_errno = o.get("defaultErrnoRet").and_then(Value::as_u64);
    let default = action(
        o.get("defaultAction")
            .and_then(Value::as_str)
            .ok_or("linux.seccomp.defaultAction is missing")?,
        None,
        default_errno,
    )?;
    // Rules grouped by action (as JSON text, for a stable order).
    let mut groups: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    for (i, s) in o
        .get("syscalls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let act = action(
            s.get("action")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("linux.seccomp.syscalls[{i}] has no action"))?,
            s.get("errnoRet").and_then(Value::as_u64),
            default_errno,
        )?;
        let mut args = Vec::new();
        for a in s
            .get("args")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let index = a.get("index").and_then(Value::as_u64).unwrap_or(0);
            if index > 5 {
                return Err(format!(
                    "linux.seccomp.syscalls[{i}]: argument index {index} (0 to 5)"
                ));
            }
            let (o, val) = op(
                a.get("op").and_then(Value::as_str).unwrap_or(""),
                a.get("value").and_then(Value::as_u64).unwrap_or(0),
                a.get("valueTwo").and_then(Value::as_u64).unwrap_or(0),
            )?;
            args.push(serde_json::json!({"index": index, "type": "qword", "op": o, "val": val}));
        }
        let entry = groups
            .entry(act.to_string())
            .or_insert_with(|| (act.clone(), Vec::new()));
        for n in s
            .get("names")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let Some(n) = n.as_str() else { continue };
            if !known(n) {
                continue;
            }
            let mut rule = serde_json::json!({ "syscall": n });
            if !args.is_empty() {
                rule["args"] = Value::from(args.clone());
            }
            entry.1.push(rule);
        }
    }
    // The allow list first (it carries the default), then the others.
    let allow = Value::from("allow");
    let mut filters = serde_json::Map::new();
    let mut order = Vec::new();
    if default != allow {
        let rules = groups
            .get(&allow.to_string())
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        filters.insert(
            "0".into(),
            serde_json::json!({"mismatch_action": default, "match_action": "allow", "filter": rules}),
        );
        order.push("0".to_string());
    }
    for (k, (act, rules)) in &groups {
        if *act == allow || rules.is_empty() || *act == default {
            continue;
        }
        let name = format!("{}", order.len());
        filters.insert(
            name.clone(),
            serde_json::json!({"mismatch_action": "allow", "match_action": act, "filter": rules}),
        );
        order.push(name);
        let _ = k;
    }
    let map = seccompiler::compile_from_json(Value::Object(filters).to_string().as_bytes(), arch())
        .map_err(|e| format!("linux.seccomp: {e}"))?;
    let mut out = Vec::new();
    for n in order {
        out.push(
            map.get(&n)
                .cloned()
                .ok_or("linux.seccomp: a filter went missing")?,
        );
    }
    Ok(ContainerFilters(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_becomes_one_filter_per_action() {
        let p = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [
                {"names": ["read", "write", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["acct", "bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            ]
        });
        assert_eq!(compile_oci_profile(&p).unwrap().len(), 2);
        for bad in [
            serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}),
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "op": "SCMP_CMP_EQ"}]}]}),
            serde_json::json!({"syscalls": []}),
        ] {
            assert!(compile_oci_profile(&bad).is_err(), "{bad}");
        }
    }
}

//! A container's state on disk: `<root>/<id>/state.json` and, until
//! `start`, `<root>/<id>/exec.fifo`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What `create` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// The process's start time (in clock ticks since boot): a pid reused
    /// by another process does not count as the container.
    pub start_time: u64,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    pub owner: String,
    /// The policy the bundle named (`io.paddock.policy`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Variables every process of the container gets (the proxy's, the
    /// CA bundle's, the brokered credentials' placeholders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// The egress daemon: pid and start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<(i32, u64)>,
    /// The container's cgroups (each `exec`'s process joins them) and
    /// every level this runtime made for them (removed by `delete`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups_made: Vec<PathBuf>,
}

/// A container's status, as the OCI spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// The folder of container `id` under `root`.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// A container id engines may pass: letters, digits, `_ . -`, at most 1024.
pub fn valid_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid container id `{id}`: use letters, digits, `_`, `.` and `-`"
        ))
    }
}

/// Load container `id`'s record: "container does not exist" (the words
/// engines look for) when there is none.
pub fn load(root: &Path, id: &str) -> Result<Record, String> {
    valid_id(id)?;
    let p = dir(root, id).join("state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("container does not exist: {id}")
        } else {
            format!("{}: {e}", p.display())
        }
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// Write the record atomically (a temporary file renamed over it).
pub fn save(root: &Path, r: &Record) -> Result<(), String> {
    let d = dir(root, &r.id);
    let tmp = d.join(".state.json.tmp");
    let text = serde_json::to_string(r).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, d.join("state.json")).map_err(|e| format!("{}: {e}", d.display()))
}

/// Write `pid` to the engine's pid file: decimal, no newline, complete
/// before the name exists (a temporary file renamed).
pub fn write_pid_file(p: &Path, pid: i32) -> Result<(), String> {
    let tmp = p.with_extension("paddock-tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, p))
        .map_err(|e| format!("pid file {}: {e}", p.display()))
}

/// Is the recorded process still the container's, and has it been started?
pub fn status(root: &Path, r: &Record) -> Status {
    let alive = r.pid > 0 && paddock_sys::process_start_time(r.pid) == Some(r.start_time);
    if !alive {
        Status::Stopped
    } else if dir(root, &r.id).join("exec.fifo").exists() {
        Status::Created
    } else {
        Status::Running
    }
}

/// The state document of the OCI spec (what `state` prints).
pub fn document(root: &Path, r: &Record) -> serde_json::Value {
    let s = status(root, r);
    serde_json::json!({
        "ociVersion": "1.0.2",
        "id": r.id,
        "status": s.name(),
        "pid": if s == Status::Stopped { 0 } else { r.pid },
        "bundle": r.bundle,
        "rootfs": r.rootfs,
        "created": r.created,
        "annotations": r.annotations,
        "owner": r.owner,
    })
}

/// Now, as RFC 3339 in UTC with nanoseconds.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, dd) = civil(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date.
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_dates() {
        assert!(valid_id("e4826e7030033bb2").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(valid_id(bad).is_err(), "{bad}");
        }
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_790), (2026, 12, 3));
        assert!(now_rfc3339().ends_with('Z'));
    }
}

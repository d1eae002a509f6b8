//! Sessions on disk: where they live, what is recorded, whether their
//! supervisor is alive, and collecting what is stale.
//!
//! Layout, under the state directory (`$PADDOCK_HOME`, else
//! `$XDG_STATE_HOME/paddock`, else `~/.local/state/paddock`):
//!
//! ```text
//! sessions/<id>/meta.json     the record (written atomically: temp + rename)
//! sessions/<id>/control.sock  the supervisor's socket, while it lives
//! sessions/<id>/supervisor.log
//! gc.json                     when gc last ran and what it removed
//! ```
//!
//! A session whose record says `running` but whose supervisor (pid and
//! start time) is gone crashed or was killed; its sandbox died with it
//! (pid 1 has PDEATHSIG), and gc treats it as ended.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub mod cow;
pub mod text;

/// Errors of the session store.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No session by that id or name.
    #[error("no session named or numbered `{0}`")]
    NotFound(String),
    /// A name is already taken.
    #[error("a session named `{0}` already exists")]
    NameTaken(String),
    /// Disk I/O.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// A record that does not parse.
    #[error("session record {0} is damaged: {1}")]
    Damaged(PathBuf, String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SessionError {
    let context = context.into();
    move |source| SessionError::Io { context, source }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The lifecycle state recorded for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Created; nothing runs until the first exec.
    Created,
    /// A supervisor and its sandbox run.
    Running,
    /// The sandbox ended (stop, idle timeout); the record stays until gc.
    Stopped,
}

/// The supervisor of a running session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervisor {
    /// Host pid.
    pub pid: i32,
    /// Start time (clock ticks since boot), against pid reuse.
    pub start_time: u64,
}

/// What a session was started with: enough to build its sandbox later.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// The workspace (the directory `session start` ran in).
    pub workspace: PathBuf,
    /// `--policy FILE`, absolute.
    pub policy: Option<PathBuf>,
    /// `--mount` values.
    pub mounts: Vec<String>,
    /// `--env` values.
    pub env: Vec<String>,
    /// `--unprotect` values.
    pub unprotect: Vec<String>,
}

/// A session record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Stable id (12 hex digits).
    pub id: String,
    /// Optional user-chosen name.
    pub name: Option<String>,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// Creation time, nanoseconds since the epoch (the baseline against
    /// which `apply` detects files the host changed meanwhile).
    #[serde(default)]
    pub created_ns: u128,
    /// Hash of the effective policy at creation.
    pub policy_hash: String,
    /// Recorded state.
    pub state: State,
    /// The supervisor, while running.
    pub supervisor: Option<Supervisor>,
    /// Last exec started or ended, seconds since the epoch.
    pub last_used: u64,
    /// Number of commands run.
    pub commands: u64,
    /// Idle timeout, seconds (0 = never).
    pub idle_timeout_s: u64,
    /// How it was started.
    pub inputs: Inputs,
    /// The record of one `paddock run` (its audit trail), not a session
    /// that takes commands.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oneshot: bool,
    /// The isolation level its sandbox was built at (`full`,
    /// `landlock-unavailable`, `no-userns`; `none` for an explicit
    /// unsandboxed run), once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
}

/// Liveness of a session as seen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// Created, never started.
    Created,
    /// Supervisor alive.
    Running,
    /// Ended normally.
    Stopped,
    /// Recorded as running, but the supervisor is gone (killed, crashed,
    /// reboot).
    Dead,
}

impl Meta {
    /// Is the recorded supervisor still this process?
    pub fn liveness(&self) -> Liveness {
        match (self.state, &self.supervisor) {
            (State::Created, _) => Liveness::Created,
            (State::Stopped, _) => Liveness::Stopped,
            (State::Running, Some(s))
                if paddock_sys::process_start_time(s.pid) == Some(s.start_time) =>
            {
                Liveness::Running
            }
            (State::Running, _) => Liveness::Dead,
        }
    }

    /// `name` or the id.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store for this user.
    pub fn locate(home: &Path) -> Store {
        let root = std::env::var_os("PADDOCK_HOME")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_STATE_HOME").map(|p| PathBuf::from(p).join("paddock"))
            })
            .unwrap_or_else(|| home.join(".local/state/paddock"));
        Store { root }
    }

    /// A store at `root` (tests).
    pub fn at(root: PathBuf) -> Store {
        Store { root }
    }

    /// Its root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A session's folder.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join("sessions").join(id)
    }

    /// Create a session record (state `created`, nothing started).
    pub fn create(
        &self,
        name: Option<String>,
        policy_hash: String,
        idle_timeout_s: u64,
        inputs: Inputs,
    ) -> Result<Meta, SessionError> {
        if let Some(n) = &name {
            if self.list()?.iter().any(|m| m.name.as_deref() == Some(n)) {
                return Err(SessionError::NameTaken(n.clone()));
            }
        }
        let meta =
            self.new_record_with(Self::new_id()?, name, policy_hash, idle_timeout_s, inputs)?;
        self.save(&meta)?;
        Ok(meta)
    }

    /// Create the record of one `paddock run`, owned by the calling
    /// process (state `running` until [`Store::finish_run`]). Not fsynced:
    /// it is an audit trail's home, and a start-up cost every run pays.
    pub fn create_run(
        &self,
        id: &str,
        policy_hash: String,
        inputs: Inputs,
        isolation: &str,
    ) -> Result<Meta, SessionError> {
        let mut meta = self.new_record_with(id.to_string(), None, policy_hash, 0, inputs)?;
        meta.oneshot = true;
        meta.isolation = Some(isolation.to_string());
        meta.state = State::Running;
        let pid = std::process::id() as i32;
        meta.supervisor = Some(Supervisor {
            pid,
            start_time: paddock_sys::process_start_time(pid).unwrap_or(0),
        });
        meta.commands = 1;
        self.save_quick(&meta)?;
        Ok(meta)
    }

    /// Mark a `paddock run` record ended.
    pub fn finish_run(&self, meta: &mut Meta) -> Result<(), SessionError> {
        meta.state = State::Stopped;
        meta.supervisor = None;
        meta.last_used = now();
        self.save_quick(meta)
    }

    /// A new record id: 12 hex digits from the kernel's random pool.
    pub fn new_id() -> Result<String, SessionError> {
        let mut b = [0u8; 6];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(io("reading /dev/urandom"))?,
            &mut b,
        )
        .map_err(io("reading /dev/urandom"))?;
        Ok(b.iter().map(|x| format!("{x:02x}")).collect())
    }

    fn new_record_with(
        &self,
        id: String,
        name: Option<String>,
        policy_hash: String,
        idle_timeout_s: u64,
        inputs: Inputs,
    ) -> Result<Meta, SessionError> {
        let dir = self.dir(&id);
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io(format!("creating {}", dir.display())))?;
        }
        let t = now();
        let created_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let meta = Meta {
            id,
            name,
            created: t,
            created_ns,
            policy_hash,
            state: State::Created,
            supervisor: None,
            last_used: t,
            commands: 0,
            idle_timeout_s,
            inputs,
            oneshot: false,
            isolation: None,
        };
        Ok(meta)
    }

    /// Write a record atomically: a reader (or a crash) sees the old or
    /// the new record, never half of one.
    pub fn save(&self, meta: &Meta) -> Result<(), SessionError> {
        self.write_meta(meta, true)
    }

    /// [`Store::save`] without forcing the data to disk: still atomic
    /// against a crash of paddock (rename), used for the per-command
    /// bookkeeping (last used, commands run) on the exec path.
    pub fn save_quick(&self, meta: &Meta) -> Result<(), SessionError> {
        self.write_meta(meta, false)
    }

    fn write_meta(&self, meta: &Meta, durable: bool) -> Result<(), SessionError> {
        let dir = self.dir(&meta.id);
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".meta.json.{}.{seq}", std::process::id()));
        let data = serde_json::to_vec_pretty(meta)
            .map_err(|e| SessionError::Damaged(tmp.clone(), e.to_string()))?;
        {
            use std::io::Write;
            let mut f =
                std::fs::File::create(&tmp).map_err(io(format!("writing {}", tmp.display())))?;
            f.write_all(&data)
                .and_then(|_| if durable { f.sync_all() } else { Ok(()) })
                .map_err(io(format!("writing {}", tmp.display())))?;
        }
        std::fs::rename(&tmp, dir.join("meta.json"))
            .map_err(io(format!("renaming {}", tmp.display())))
    }

    /// Load one record by id or name.
    pub fn load(&self, key: &str) -> Result<Meta, SessionError> {
        let path = self.dir(key).join("meta.json");
        if path.exists() {
            return read_meta(&path);
        }
        self.list()?
            .into_iter()
            .find(|m| m.name.as_deref() == Some(key) || m.id.starts_with(key) && key.len() >= 4)
            .ok_or_else(|| SessionError::NotFound(key.to_string()))
    }

    /// Every record, oldest first.
    pub fn list(&self) -> Result<Vec<Meta>, SessionError> {
        let dir = self.root.join("sessions");
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            let p = e.path().join("meta.json");
            if let Ok(m) = read_meta(&p) {
                out.push(m);
            }
        }
        out.sort_by_key(|m| m.created);
        Ok(out)
    }

    /// Bytes used by a session's folder.
    pub fn disk_usage(&self, id: &str) -> u64 {
        du(&self.dir(id))
    }

    /// Remove a session's folder.
    pub fn remove(&self, id: &str) -> Result<(), SessionError> {
        let d = self.dir(id);
        make_writable(&d);
        std::fs::remove_dir_all(&d).map_err(io(format!("removing {}", d.display())))
    }
}

fn read_meta(p: &Path) -> Result<Meta, SessionError> {
    let data = std::fs::read(p).map_err(io(format!("reading {}", p.display())))?;
    serde_json::from_slice(&data).map_err(|e| SessionError::Damaged(p.to_path_buf(), e.to_string()))
}

/// Bytes of the files under `p` (apparent sizes, symlinks not followed).
pub fn du(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if md.is_dir() {
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
            .unwrap_or(0)
            + md.len()
    } else {
        md.len()
    }
}

/// Give the owner full rights on every folder under `p`, so that a tree a
/// sandbox made read-only can be removed.
pub fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = std::fs::symlink_metadata(p) {
        if md.is_dir() {
            let _ = std::fs::set_permissions(
                p,
                std::fs::Permissions::from_mode(md.permissions().mode() | 0o700),
            );
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    make_writable(&e.path());
                }
            }
        }
    }
}

/// Retention limits.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Remove ended sessions older than this many seconds.
    pub max_age_s: u64,
    /// Keep at most this many ended sessions.
    pub max_count: u64,
    /// Keep at most this many MiB of ended sessions.
    pub max_disk_mib: u64,
    /// Remove sessions whose supervisor died regardless of age and count
    /// (`paddock gc`). Automatic collection removes them only by age: they
    /// may hold unreviewed `cow` changes and the audit trail of what
    /// happened before the crash.
    pub remove_dead: bool,
}

/// What a gc run removed (or would remove).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GcReport {
    /// When, seconds since the epoch.
    pub ran_at: u64,
    /// Dry run?
    pub dry_run: bool,
    /// Removed sessions: id and why.
    pub removed: Vec<(String, String)>,
    /// Bytes freed.
    pub bytes: u64,
}

impl Store {
    /// Decide what retention removes; with `dry_run`, remove nothing. Live
    /// and never-started sessions are never collected; dead ones (their
    /// supervisor is gone) always are.
    pub fn gc(&self, r: Retention, dry_run: bool) -> Result<GcReport, SessionError> {
        let t = now();
        let mut ended: Vec<(Meta, u64, Liveness)> = self
            .list()?
            .into_iter()
            .map(|m| {
                let l = m.liveness();
                let size = self.disk_usage(&m.id);
                (m, size, l)
            })
            .filter(|(_, _, l)| matches!(l, Liveness::Stopped | Liveness::Dead))
            .collect();
        // Newest first: what is kept is the most recent.
        ended.sort_by_key(|(m, _, _)| std::cmp::Reverse(m.last_used));
        let mut report = GcReport {
            ran_at: t,
            dry_run,
            ..GcReport::default()
        };
        let mut kept_count = 0u64;
        let mut kept_bytes = 0u64;
        for (m, size, l) in ended {
            let aged = t.saturating_sub(m.last_used) > r.max_age_s;
            if l == Liveness::Dead && !r.remove_dead && !aged {
                // Kept, outside the count and size limits (see Retention).
                continue;
            }
            let why = if l == Liveness::Dead && r.remove_dead {
                Some("its supervisor is gone".to_string())
            } else if aged {
                Some(format!("unused for more than {} s", r.max_age_s))
            } else if kept_count >= r.max_count {
                Some(format!("more than {} ended sessions", r.max_count))
            } else if kept_bytes + size > r.max_disk_mib << 20 {
                Some(format!(
                    "more than {} MiB of ended sessions",
                    r.max_disk_mib
                ))
            } else {
                None
            };
            match why {
                Some(w) => {
                    if !dry_run {
                        self.remove(&m.id)?;
                    }
                    report.bytes += size;
                    report.removed.push((m.id, w));
                }
                None => {
                    kept_count += 1;
                    kept_bytes += size;
                }
            }
        }
        if !dry_run {
            let p = self.root.join("gc.json");
            let _ = std::fs::create_dir_all(&self.root);
            let tmp = self.root.join(".gc.json.tmp");
            if std::fs::write(&tmp, serde_json::to_vec_pretty(&report).unwrap_or_default()).is_ok()
            {
                let _ = std::fs::rename(&tmp, p);
            }
        }
        Ok(report)
    }

    /// Collect ended sessions when due: when more than `r.max_count` + 16
    /// records exist, or the last collection is older than ten minutes.
    /// Cheap when not due (one directory listing, one small file read).
    pub fn gc_if_due(&self, r: Retention) -> Option<GcReport> {
        let records = std::fs::read_dir(self.root.join("sessions"))
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        let stale = self
            .last_gc()
            .is_none_or(|g| now().saturating_sub(g.ran_at) > 600);
        if records > r.max_count + 16 || (stale && records > 0) {
            self.gc(r, false).ok()
        } else {
            None
        }
    }

    /// The last gc report, if any.
    pub fn last_gc(&self) -> Option<GcReport> {
        serde_json::from_slice(&std::fs::read(self.root.join("gc.json")).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let d = std::env::temp_dir().join(format!("paddock-store-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Store::at(d)
    }

    #[test]
    fn create_list_load_by_name_and_atomic_save() {
        let s = store();
        let a = s
            .create(
                Some("alpha".into()),
                "sha256:x".into(),
                60,
                Inputs::default(),
            )
            .unwrap();
        assert_eq!(a.liveness(), Liveness::Created);
        assert!(s
            .create(Some("alpha".into()), "h".into(), 60, Inputs::default())
            .is_err());
        assert_eq!(s.load("alpha").unwrap().id, a.id);
        assert_eq!(s.load(&a.id).unwrap(), a);
        let leftovers: Vec<_> = std::fs::read_dir(s.dir(&a.id))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
        let _ = std::fs::remove_dir_all(s.root());
    }

    #[test]
    fn dead_supervisor_is_detected_and_collected() {
        let s = store();
        let mut m = s.create(None, "h".into(), 60, Inputs::default()).unwrap();
        m.state = State::Running;
        m.supervisor = Some(Supervisor {
            pid: i32::MAX - 1,
            start_time: 1,
        });
        s.save(&m).unwrap();
        assert_eq!(s.load(&m.id).unwrap().liveness(), Liveness::Dead);
        let r = Retention {
            max_age_s: 3600,
            max_count: 10,
            max_disk_mib: 100,
            remove_dead: true,
        };
        let dry = s.gc(r, true).unwrap();
        assert_eq!(dry.removed.len(), 1);
        assert!(s.dir(&m.id).exists(), "dry run removes nothing");
        let real = s.gc(r, false).unwrap();
        assert_eq!(dry.removed, real.removed);
        assert!(!s.dir(&m.id).exists());
        assert!(s.last_gc().is_some());
        let _ = std::fs::remove_dir_all(s.root());
    }

    #[test]
    fn retention_by_count_keeps_the_newest() {
        let s = store();
        let mut ids = Vec::new();
        for i in 0..4 {
            let mut m = s.create(None, "h".into(), 60, Inputs::default()).unwrap();
            m.state = State::Stopped;
            m.last_used = now() - 100 + i;
            s.save(&m).unwrap();
            ids.push(m.id);
        }
        let r = Retention {
            max_age_s: 3600,
            max_count: 2,
            max_disk_mib: 100,
            remove_dead: true,
        };
        let rep = s.gc(r, false).unwrap();
        let gone: Vec<_> = rep.removed.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(gone.len(), 2);
        assert!(
            gone.contains(&ids[0]) && gone.contains(&ids[1]),
            "the oldest go"
        );
        let _ = std::fs::remove_dir_all(s.root());
    }
}

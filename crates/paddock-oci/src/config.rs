//! The parts of a bundle's `config.json` (OCI runtime spec 1.x) this
//! runtime honours. What it does not honour and would change what the
//! container may do is refused by [`Config::check`], never ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `config.json`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    pub oci_version: String,
    pub process: Option<Process>,
    pub root: Option<Root>,
    pub hostname: Option<String>,
    pub mounts: Vec<Mount>,
    pub hooks: Option<crate::hooks::Hooks>,
    pub annotations: BTreeMap<String, String>,
    pub linux: Option<Linux>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "camelCase", default)]
pub struct Process {
    pub terminal: bool,
    pub user: User,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: Option<Capabilities>,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    pub apparmor_profile: Option<String>,
    pub selinux_label: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(rename_all = "camelCase", default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub umask: Option<u32>,
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub inheritable: Vec<String>,
    pub permitted: Vec<String>,
    pub ambient: Vec<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Root {
    pub path: String,
    pub readonly: bool,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct Mount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Linux {
    pub namespaces: Vec<Namespace>,
    pub uid_mappings: Vec<serde_json::Value>,
    pub gid_mappings: Vec<serde_json::Value>,
    pub devices: Vec<Device>,
    pub cgroups_path: Option<String>,
    pub resources: Option<crate::cgroups::Resources>,
    pub sysctl: BTreeMap<String, String>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub rootfs_propagation: Option<String>,
    pub seccomp: Option<serde_json::Value>,
    pub mount_label: Option<String>,
    pub personality: Option<serde_json::Value>,
    pub time_offsets: Option<serde_json::Value>,
    pub intel_rdt: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Device {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    pub major: u32,
    pub minor: u32,
    pub file_mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Config {
    /// Read and check `bundle/config.json`.
    pub fn load(bundle: &std::path::Path) -> Result<Config, String> {
        let path = bundle.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (is --bundle the container's bundle?)",
                path.display()
            )
        })?;
        let c: Config = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}:{}:{}: {e} (not an OCI runtime config)",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        c.check()?;
        Ok(c)
    }

    /// Refuse what this runtime would otherwise leave undone.
    pub fn check(&self) -> Result<(), String> {
        if !self.oci_version.starts_with("1.") {
            return Err(format!(
                "ociVersion `{}`: this runtime reads 1.x bundles",
                self.oci_version
            ));
        }
        let p = self
            .process
            .as_ref()
            .ok_or("the bundle has no `process` (nothing to run)")?;
        if p.args.is_empty() {
            return Err("process.args is empty: name the program to run".into());
        }
        if self.root.as_ref().is_none_or(|r| r.path.is_empty()) {
            return Err("the bundle has no root.path (the container's root filesystem)".into());
        }
        if self
            .annotations
            .get("io.podman.annotations.privileged")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err("a privileged container is refused: paddock's boundary is the point (run it without --privileged)".into());
        }
        if let Some(h) = &self.hooks {
            h.check()?;
        }
        let l = self.linux.as_ref();
        if l.is_some_and(|l| !l.uid_mappings.is_empty() || !l.gid_mappings.is_empty())
            || l.is_some_and(|l| l.namespaces.iter().any(|n| n.kind == "user"))
        {
            return Err("a user namespace (rootless or --userns) is not supported by this runtime yet; run the container as root without --userns".into());
        }
        for (what, set) in [
            ("linux.personality", l.and_then(|l| l.personality.as_ref())),
            ("linux.timeOffsets", l.and_then(|l| l.time_offsets.as_ref())),
            ("linux.intelRdt", l.and_then(|l| l.intel_rdt.as_ref())),
        ] {
            if set.is_some() {
                return Err(format!(
                    "{what} is not supported by this runtime; remove it"
                ));
            }
        }
        for n in l.map(|l| l.namespaces.as_slice()).unwrap_or_default() {
            if namespace_flag(&n.kind).is_none() {
                return Err(format!("namespace type `{}` is not known", n.kind));
            }
        }
        if let Some(caps) = &p.capabilities {
            for c in caps
                .bounding
                .iter()
                .chain(&caps.effective)
                .chain(&caps.permitted)
                .chain(&caps.inheritable)
                .chain(&caps.ambient)
            {
                if capability(c).is_none() {
                    return Err(format!("capability `{c}` is not known"));
                }
            }
        }
        for r in &p.rlimits {
            if rlimit(&r.kind).is_none() {
                return Err(format!("rlimit `{}` is not known", r.kind));
            }
        }
        Ok(())
    }
}

/// The clone flag of a namespace type.
pub fn namespace_flag(kind: &str) -> Option<u64> {
    use paddock_sys::ns;
    Some(match kind {
        "pid" => ns::PID,
        "network" => ns::NET,
        "mount" => ns::MOUNT,
        "ipc" => ns::IPC,
        "uts" => ns::UTS,
        "user" => ns::USER,
        "cgroup" => ns::CGROUP,
        _ => return None,
    })
}

const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability's number, from its name (`CAP_CHOWN`).
pub fn capability(name: &str) -> Option<u32> {
    CAPS.iter()
        .position(|c| *c == name)
        .and_then(|i| u32::try_from(i).ok())
}

/// The capabilities paddock never gives a container, whatever the bundle
/// asks: each undoes the boundary (mounts, modules, raw devices, the
/// kernel's keyring of BPF programs, tracing other processes).
pub const NEVER: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_PTRACE",
    "CAP_SYS_BOOT",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_SYS_TIME",
    "CAP_NET_ADMIN",
    "CAP_DAC_READ_SEARCH",
    "CAP_LINUX_IMMUTABLE",
    "CAP_SYSLOG",
    // Device nodes: every mount is nodev, and none are made.
    "CAP_MKNOD",
    // Host-wide: the audit rules, process accounting, limits past the hard
    // ones, the console's keyboard.
    "CAP_AUDIT_CONTROL",
    "CAP_SYS_PACCT",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TTY_CONFIG",
    "CAP_CHECKPOINT_RESTORE",
    // File capabilities (`security.capability`) on a program in a host
    // volume: any host user who runs it gets them. Set-id bits are refused
    // by paddock's filters; this is their other half.
    "CAP_SETFCAP",
];

/// A mask of capabilities by name, without those in [`NEVER`].
pub fn cap_mask(names: &[String]) -> u64 {
    names
        .iter()
        .filter(|n| !NEVER.contains(&n.as_str()))
        .filter_map(|n| capability(n))
        .fold(0, |m, c| m | (1 << c))
}

/// A resource limit's number, from its name (`RLIMIT_NOFILE`).
pub fn rlimit(name: &str) -> Option<u32> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    })
}

/// Mount flags and data from OCI mount options.
pub fn mount_options(opts: &[String]) -> (u64, u64, Vec<String>) {
    // (flags set, propagation flags, data)
    let mut flags = 0u64;
    let mut prop = 0u64;
    let mut data = Vec::new();
    for o in opts {
        match o.as_str() {
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => flags &= !libc::MS_RDONLY,
            "nosuid" => flags |= libc::MS_NOSUID,
            "suid" => flags &= !libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "dev" => flags &= !libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            "exec" => flags &= !libc::MS_NOEXEC,
            "sync" => flags |= libc::MS_SYNCHRONOUS,
            "dirsync" => flags |= libc::MS_DIRSYNC,
            "remount" => flags |= libc::MS_REMOUNT,
            "mand" => flags |= libc::MS_MANDLOCK,
            "noatime" => flags |= libc::MS_NOATIME,
            "nodiratime" => flags |= libc::MS_NODIRATIME,
            "relatime" => flags |= libc::MS_RELATIME,
            "strictatime" => flags |= libc::MS_STRICTATIME,
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            "private" => prop |= libc::MS_PRIVATE,
            "rprivate" => prop |= libc::MS_PRIVATE | libc::MS_REC,
            "slave" => prop |= libc::MS_SLAVE,
            "rslave" => prop |= libc::MS_SLAVE | libc::MS_REC,
            "shared" | "rshared" | "unbindable" | "runbindable" => {
                // Never shared with the host: a mount made inside would
                // reach it.
                prop |= libc::MS_PRIVATE | libc::MS_REC;
            }
            "tmpcopyup" | "copy-symlink" | "idmap" | "ridmap" | "notmpcopyup" | "z" | "Z" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, prop, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let c: Config = serde_json::from_str(text).map_err(|e| e.to_string())?;
        c.check().map(|()| c)
    }

    #[test]
    fn what_is_not_honoured_is_refused() {
        let ok = r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"}}"#;
        assert!(parse(ok).is_ok());
        for (bad, why) in [
            (
                r#"{"ociVersion":"1.0.2","process":{"args":[]},"root":{"path":"r"}}"#,
                "args",
            ),
            (
                r#"{"ociVersion":"1.0.2","process":{"args":["sh"]},"root":{"path":"r"},"hooks":{"prestart":[{"path":"bin/x"}]}}"#,
                "hooks.prestart[0]: the path `bin/x` is not absolute",
            ),
            (
                r#"{"ociVersion":"1.0.2","process":{"args":["sh"]},"root":{"path":"r"},"linux":{"namespaces":[{"type":"user"}]}}"#,
                "user namespace",
            ),
            (
                r#"{"ociVersion":"1.0.2","process":{"args":["sh"]},"root":{"path":"r"},"linux":{"namespaces":[{"type":"time2"}]}}"#,
                "not known",
            ),
            (
                r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"capabilities":{"bounding":["CAP_NOPE"]}},"root":{"path":"r"}}"#,
                "capability",
            ),
            (
                r#"{"ociVersion":"2.0.0","process":{"args":["sh"]},"root":{"path":"r"}}"#,
                "1.x",
            ),
        ] {
            let e = parse(bad).expect_err(why);
            assert!(e.contains(why), "{why}: {e}");
        }
        // Empty hook lists are no hooks.
        assert!(parse(r#"{"ociVersion":"1.0.2","process":{"args":["sh"]},"root":{"path":"r"},"hooks":{"prestart":[]}}"#).is_ok());
    }

    #[test]
    fn capabilities_that_undo_the_boundary_are_never_given() {
        let m = cap_mask(&[
            "CAP_CHOWN".into(),
            "CAP_SYS_ADMIN".into(),
            "CAP_NET_RAW".into(),
        ]);
        assert_eq!(m, (1 << 0) | (1 << 13));
        assert_eq!(capability("CAP_CHECKPOINT_RESTORE"), Some(40));
    }
}

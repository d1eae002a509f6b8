//! A container's way out when its bundle names a paddock policy
//! (`io.paddock.policy=NAME`): the policy `NAME.toml` from the node's
//! policy folder (checked: root's or the runtime's, closed to others),
//! layered under the node's admin policy as `paddock run` layers it.
//!
//! The container gets a network namespace of its own, made by the
//! container's process after it joined the engine's namespaces: loopback
//! only (`network.mode = "none"`), or loopback with paddock's proxy on
//! `127.0.0.1:3128` and, where `/dev/net/tun` opens, the transparent
//! path's TUN device (`"proxy"`). The engine's network (its interfaces,
//! routes and port mappings) is not reachable from it. Both descriptors
//! are handed to the runtime, which starts a small daemon on the host —
//! the proxy, the brokered credentials and the audit log — for as long as
//! the container's first process lives.
//!
//! The annotation names a policy; it does not carry one, and it chooses
//! one only where the runtime's handler lets it (`--policies`; `--policy`
//! pins one). Annotations can come from an image or from whoever creates
//! pods, and a policy decides which host credentials are sent where: only
//! the node's administrator writes policies, and says which may be chosen.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use paddock_audit::{Caller, EventKind};
use paddock_plan::egress::Egress;
use paddock_policy::{Effective, Layer, NetworkMode, ParsedLayer};
use paddock_sys::resolve;

use crate::config::Mount;

/// The annotation that names a container's policy.
pub const ANNOTATION: &str = "io.paddock.policy";

/// Where the node's container policies are, by default.
pub const DEFAULT_POLICY_DIR: &str = "/etc/paddock/oci";

/// Where each container's audit log goes, by default
/// (`<dir>/<id>/audit.jsonl`).
pub const DEFAULT_AUDIT_DIR: &str = "/var/log/paddock/oci";

/// The largest policy file read.
const MAX_POLICY: u64 = 1 << 20;

/// The node's folders for this runtime.
pub struct Places {
    pub policies: PathBuf,
    pub audit: PathBuf,
    /// `--policy NAME`: the one policy of this runtime's containers,
    /// whatever their annotations (whoever may create pods may write
    /// annotations: with this, a RuntimeClass is a policy).
    pub only: Option<String>,
    /// `--policies A,B` (or `*`): the policies an annotation may choose.
    /// Without it (and without `--policy`) no annotation chooses one: an
    /// annotation may come from the image (podman copies an image's own
    /// annotations into the bundle) or from whoever creates pods.
    pub choosable: Option<Vec<String>>,
}

impl Places {
    /// The node's folders as the host's root; a user's own (rootless
    /// engines) under `$XDG_CONFIG_HOME` and `$XDG_STATE_HOME`, as a
    /// user's policy must be theirs: inside an engine's user namespace
    /// the node's root-owned files show as unmapped, and are not trusted.
    pub fn default_for(rootless: bool) -> Places {
        if !rootless {
            return Places {
                policies: PathBuf::from(DEFAULT_POLICY_DIR),
                audit: PathBuf::from(DEFAULT_AUDIT_DIR),
                only: None,
                choosable: None,
            };
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let xdg = |var: &str, under_home: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| home.as_ref().map(|h| h.join(under_home)))
                .unwrap_or_else(|| PathBuf::from("/nonexistent"))
                .join("paddock/oci")
        };
        Places {
            policies: xdg("XDG_CONFIG_HOME", ".config"),
            audit: xdg("XDG_STATE_HOME", ".local/state"),
            only: None,
            choosable: None,
        }
    }
}

/// The policy a container runs under.
pub struct Policy {
    pub name: String,
    pub file: PathBuf,
    pub eff: Effective,
}

/// The container's policy, if its annotations name one.
pub fn named_policy(
    annotations: &BTreeMap<String, String>,
    places: &Places,
) -> Result<Option<Policy>, String> {
    let asked = annotations.get(ANNOTATION);
    let name = match (&places.only, asked) {
        (Some(only), Some(a)) if a != only => {
            return Err(format!(
                "annotation {ANNOTATION}={a}: this runtime runs its containers under the policy `{only}` only (--policy); drop the annotation or ask for `{only}`"
            ))
        }
        (Some(only), _) => only,
        (None, Some(a)) => match &places.choosable {
            Some(list) if list.iter().any(|n| n == "*" || n == a) => a,
            Some(list) => {
                return Err(format!(
                    "annotation {ANNOTATION}={a}: this runtime lets annotations choose only {} (--policies)",
                    list.join(", ")
                ))
            }
            None => {
                return Err(format!(
                    "annotation {ANNOTATION}={a}: this runtime takes no policy from annotations (they may come from the image, or from whoever creates pods): start it with `--policy NAME` (every container under one policy) or `--policies NAME,...` (the ones an annotation may choose)"
                ))
            }
        },
        (None, None) => return Ok(None),
    };
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(format!(
            "annotation {ANNOTATION}=`{name}`: give the name of a policy in {} (letters, digits, `_ . -`; not a path)",
            places.policies.display()
        ));
    }
    let file = places.policies.join(format!("{name}.toml"));
    let text = read_trusted(&places.policies, &format!("{name}.toml")).map_err(|why| {
        format!(
            "annotation {ANNOTATION}={name}: policy {}: {why}",
            file.display()
        )
    })?;
    let mut layers = Vec::new();
    let host = paddock_plan::HostFacts::current().map_err(|e| e.to_string())?;
    for (layer, path) in paddock_plan::policy_files::candidates(&host) {
        if layer == Layer::Admin {
            if let Some(l) =
                paddock_plan::policy_files::load_file(layer, &path).map_err(|e| e.to_string())?
            {
                layers.push(l);
            }
        }
    }
    layers.push(
        ParsedLayer::parse(Layer::Flags, &file.display().to_string(), &text)
            .map_err(|e| paddock_plan::Error::policy(e).to_string())?,
    );
    let eff =
        paddock_policy::merge(&layers).map_err(|e| paddock_plan::Error::policy(e).to_string())?;
    Ok(Some(Policy {
        name: name.clone(),
        file,
        eff,
    }))
}

/// The text of `name` in `dir`, where both are real (no link on the way)
/// and neither is writable by anyone but root or this runtime's user: a
/// policy others could write would hand them the node's credentials.
fn read_trusted(dir: &Path, name: &str) -> Result<String, String> {
    let me = paddock_sys::getuid();
    let check = |f: &File, what: &str, want_dir: bool| -> Result<(), String> {
        let md = f.metadata().map_err(|e| e.to_string())?;
        let right_kind = if want_dir { md.is_dir() } else { md.is_file() };
        if !right_kind {
            return Err(format!(
                "the {what} is not a {}",
                if want_dir { "folder" } else { "file" }
            ));
        }
        if md.uid() != 0 && md.uid() != me {
            return Err(format!(
                "the {what} belongs to uid {}: only root (or the runtime's user) may own it",
                md.uid()
            ));
        }
        if md.mode() & 0o022 != 0 {
            return Err(format!(
                "others may write the {what} (mode {:o}): `chmod go-w` it",
                md.mode() & 0o7777
            ));
        }
        Ok(())
    };
    let d = paddock_sys::openat2_path(None, dir, libc::O_DIRECTORY, resolve::NO_SYMLINKS)
        .map_err(|e| format!("the folder {}: {e}", dir.display()))?;
    check(
        &File::from(d.try_clone().map_err(|e| e.to_string())?),
        "folder",
        true,
    )?;
    let f = paddock_sys::openat2(
        d.as_fd(),
        Path::new(name),
        libc::O_RDONLY | libc::O_NONBLOCK,
        0,
        resolve::NO_SYMLINKS,
    )
    .map_err(|e| {
        // Not "No such file or directory": engines take those words for
        // a runtime that is not installed.
        if e.raw_os_error() == Some(libc::ENOENT) {
            "there is none: write it, or name one that is there".to_string()
        } else {
            e.to_string()
        }
    })?;
    let mut f = File::from(f);
    check(&f, "file", false)?;
    let mut text = String::new();
    (&mut f)
        .take(MAX_POLICY + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_POLICY {
        return Err(format!(
            "larger than {} KiB: a policy is not read in part",
            MAX_POLICY / 1024
        ));
    }
    Ok(text)
}

/// The attributes every event of the container carries: its id, and the
/// pod the engine says it belongs to (CRI-O's and containerd's CRI
/// annotations), by OpenTelemetry's names.
pub fn labels(id: &str, policy: &str, a: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("container.id".to_string(), id.to_string());
    out.insert("paddock.policy.name".to_string(), policy.to_string());
    for (label, keys) in [
        (
            "k8s.pod.name",
            ["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"],
        ),
        (
            "k8s.namespace.name",
            [
                "io.kubernetes.cri.sandbox-namespace",
                "io.kubernetes.pod.namespace",
            ],
        ),
        (
            "k8s.pod.uid",
            ["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"],
        ),
        (
            "k8s.container.name",
            [
                "io.kubernetes.cri.container-name",
                "io.kubernetes.container.name",
            ],
        ),
    ] {
        // containerd's own names first (it writes them; a pod's
        // annotations are passed through beside them). A value that is no
        // Kubernetes name (longer than 253, control characters) is not
        // copied into every event: the label says so instead.
        if let Some(v) = keys.iter().find_map(|k| a.get(*k)) {
            let name_like = v.len() <= 253 && !v.chars().any(char::is_control);
            out.insert(
                label.to_string(),
                if name_like {
                    v.clone()
                } else {
                    "(not a name)".into()
                },
            );
        }
    }
    out
}

/// What the container's process builds in its network namespace.
#[derive(Clone, Copy)]
pub enum Net {
    /// Loopback only.
    Loopback,
    /// Loopback, the proxy's listener, and the TUN device if `tun`.
    Proxy { tun: bool },
}

/// A container's egress, prepared on the host before its process starts.
pub struct Prepared {
    pub policy: Policy,
    pub net: Net,
    /// Set in the container's processes (`create`'s and every `exec`'s).
    pub env: Vec<String>,
    /// The CA bundle, bound read-only where clients look for it.
    pub mounts: Vec<Mount>,
    egress: Option<Egress>,
}

impl Prepared {
    /// The session CA, the bundle, the brokered credentials' placeholders.
    pub fn new(policy: Policy) -> Result<Prepared, String> {
        if policy.eff.network_mode.value != NetworkMode::Proxy {
            return Ok(Prepared {
                policy,
                net: Net::Loopback,
                env: Vec::new(),
                mounts: Vec::new(),
                egress: None,
            });
        }
        let host = paddock_plan::HostFacts::current().map_err(|e| e.to_string())?;
        let egress = Egress::prepare(&policy.eff, &host).map_err(|e| e.to_string())?;
        if let Some((p, _)) = egress.files().first() {
            return Err(format!(
                "policy {}: a credential kept in a login file ({}) is not brokered into containers yet: give it with `source = \"env:NAME\"` or `source = \"file:PATH\"`",
                policy.file.display(),
                p.display()
            ));
        }
        let level = paddock_sandbox::Level::Full;
        let env = egress
            .environment(level)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mounts = egress
            .mounts(level)
            .into_iter()
            .map(|(src, dst)| Mount {
                destination: dst.display().to_string(),
                kind: Some("bind".into()),
                source: Some(src.display().to_string()),
                options: ["bind", "ro", "nosuid", "nodev", "noexec"]
                    .map(String::from)
                    .to_vec(),
            })
            .collect();
        Ok(Prepared {
            net: Net::Proxy {
                tun: egress.transparent.is_ok(),
            },
            policy,
            env,
            mounts,
            egress: Some(egress),
        })
    }
}

/// `env` with `extra` set over it (a name in both takes `extra`'s value).
pub fn with_env(env: &[String], extra: &[String]) -> Vec<String> {
    let name = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
    let over: std::collections::HashSet<String> = extra.iter().map(|kv| name(kv)).collect();
    env.iter()
        .filter(|kv| !over.contains(&name(kv)))
        .chain(extra)
        .cloned()
        .collect()
}

/// In the container's process, after it joined the engine's namespaces
/// and while the host's `/dev` is still in view: a network namespace of
/// its own, loopback up, and for the proxy its listener, the engine's
/// network namespace (the proxy connects out from there) and the TUN
/// device handed to the runtime (`NET` and the descriptors, on `sync`).
pub fn enter(net: Net, sync: &UnixStream) -> Result<(), String> {
    let engines = File::open("/proc/thread-self/ns/net")
        .map_err(|e| format!("the engine's network namespace: {e}"))?;
    paddock_sys::unshare(paddock_sys::ns::NET)
        .map_err(|e| format!("a network namespace of the container's own: {e}"))?;
    paddock_sys::loopback_up().map_err(|e| format!("loopback: {e}"))?;
    let Net::Proxy { tun } = net else {
        return Ok(());
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", paddock_plan::egress::PROXY_PORT))
        .map_err(|e| format!("the proxy's port: {e}"))?;
    let dev = if tun {
        use paddock_types::transparent as t;
        Some(
            paddock_sys::tun_up(
                t::DEVICE,
                t::MTU,
                &[
                    (t::SANDBOX_V4.into(), t::PREFIX_V4),
                    (t::SANDBOX_V6.into(), t::PREFIX_V6),
                ],
            )
            .map_err(|e| format!("the TUN device: {e}"))?,
        )
    } else {
        None
    };
    let mut fds = vec![listener.as_fd(), engines.as_fd()];
    fds.extend(dev.as_ref().map(|d| d.as_fd()));
    paddock_sys::send_fds(sync.as_fd(), &fds, b"NET")
        .map_err(|e| format!("handing the network to the runtime: {e}"))
}

/// What the container's process hands over: the proxy's listener, the
/// engine's network namespace, the TUN device.
pub struct Handed {
    listener: std::net::TcpListener,
    engines: OwnedFd,
    tun: Option<OwnedFd>,
}

/// In the runtime: what [`enter`] sent, or the container process's error.
pub fn receive(sync: &UnixStream) -> Result<Handed, String> {
    let (said, mut fds) = paddock_sys::recv_fds(sync.as_fd(), 4096)
        .map_err(|e| format!("receiving the container's network: {e}"))?;
    if said != b"NET" || fds.len() < 2 {
        let said = String::from_utf8_lossy(&said).to_string();
        return Err(said
            .strip_prefix("ERR ")
            .unwrap_or("the container's process ended before its network was made")
            .to_string());
    }
    let tun = (fds.len() > 2).then(|| fds.remove(2));
    let engines = fds.remove(1);
    Ok(Handed {
        listener: std::net::TcpListener::from(fds.remove(0)),
        engines,
        tun,
    })
}

/// The container's audit log, opened as its policy says.
fn open_log(
    places: &Places,
    id: &str,
    policy: &Policy,
    labels: BTreeMap<String, String>,
) -> Result<paddock_plan::audit::AuditOut, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = places.audit.join(id);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("the audit folder {}: {e}", dir.display()))?;
    let mut out =
        paddock_plan::audit::open_log(&dir, id, &policy.eff.hash(), &policy.eff, "container", None)
            .map_err(|e| e.to_string())?;
    out.log = std::sync::Arc::new(
        std::sync::Arc::try_unwrap(out.log)
            .map_err(|_| "the audit log is shared".to_string())?
            .with_labels(labels),
    );
    Ok(out)
}

impl Prepared {
    /// What the policy has recorded.
    pub fn audit_level(&self) -> paddock_sandbox::AuditLevel {
        self.policy.eff.audit_level.value
    }
}

/// What the daemon serves besides the proxy ([`crate::observer`]): the
/// audit observer's listeners, from the first process (`first`, when the
/// policy audits) and from `exec`s, and the execs' starts, through a
/// socket in the container's folder `dir`.
pub struct Observe<'a> {
    pub first: Option<OwnedFd>,
    pub dir: &'a Path,
}

/// Start the daemon of container `pid`: the proxy on the handed-over
/// listener (and TUN device) when the policy has one, the audit
/// observer when it audits, decisions and records into the audit log,
/// until the container's first process ends. Returns the daemon's pid
/// once it says it runs.
pub fn start_daemon(
    places: &Places,
    id: &str,
    pid: i32,
    annotations: &BTreeMap<String, String>,
    prepared: Prepared,
    handed: Option<Handed>,
    observe: Option<Observe<'_>>,
) -> Result<i32, String> {
    let pidfd = paddock_sys::pidfd_open(pid).map_err(|e| format!("pidfd_open {pid}: {e}"))?;
    let (mut report, child_end) = UnixStream::pair().map_err(|e| e.to_string())?;
    let labels = labels(id, &prepared.policy.name, annotations);
    // Opened here so that an unwritable audit folder fails `create`.
    drop(open_log(places, id, &prepared.policy, labels.clone())?);
    match paddock_sys::fork().map_err(|e| format!("fork: {e}"))? {
        paddock_sys::Forked::Child => {
            drop(report);
            let mut keep = vec![pidfd.as_raw_fd(), child_end.as_raw_fd()];
            if let Some(h) = &handed {
                keep.extend([h.listener.as_raw_fd(), h.engines.as_raw_fd()]);
                keep.extend(h.tun.as_ref().map(|t| t.as_raw_fd()));
            }
            keep.extend(
                observe
                    .as_ref()
                    .and_then(|o| o.first.as_ref())
                    .map(|f| f.as_raw_fd()),
            );
            let why = match detach(&keep) {
                Ok(()) => serve(
                    places, id, prepared, labels, handed, observe, pidfd, child_end,
                ),
                Err(e) => e,
            };
            paddock_sys::exit_now(if why.is_empty() { 0 } else { 1 });
        }
        paddock_sys::Forked::Parent { pid: daemon, .. } => {
            drop(child_end);
            let mut said = String::new();
            let _ = report.read_to_string(&mut said);
            if said == "OK" {
                return Ok(daemon);
            }
            let _ = paddock_sys::kill(daemon, libc::SIGKILL);
            let _ = paddock_sys::waitpid(daemon, false);
            Err(format!(
                "the container's daemon (egress and audit): {}",
                said.strip_prefix("ERR ")
                    .unwrap_or("it ended before it started")
            ))
        }
    }
}

/// The daemon leaves the engine's session and holds nothing it was
/// given but `keep`: not the engine's pipes (the engine would wait for
/// them to close), not the console socket.
fn detach(keep: &[std::os::fd::RawFd]) -> Result<(), String> {
    paddock_sys::setsid().map_err(|e| format!("setsid: {e}"))?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    for fd in 0..3 {
        paddock_sys::dup2(null.as_fd(), fd).map_err(|e| format!("dup2: {e}"))?;
    }
    drop(null);
    paddock_sys::close_all_but(keep).map_err(|e| format!("close_range: {e}"))
}

/// The daemon's work; an empty string when it ended as it should.
#[allow(clippy::too_many_arguments)]
fn serve(
    places: &Places,
    id: &str,
    prepared: Prepared,
    labels: BTreeMap<String, String>,
    handed: Option<Handed>,
    observe: Option<Observe<'_>>,
    pidfd: OwnedFd,
    mut report: UnixStream,
) -> String {
    let level = prepared.audit_level();
    let Prepared {
        policy,
        egress,
        net,
        ..
    } = prepared;
    let mut report_err = |e: String| {
        let _ = report.write_all(format!("ERR {e}").as_bytes());
        e
    };
    let mut out = match open_log(places, id, &policy, labels) {
        Ok(o) => o,
        Err(e) => return report_err(e),
    };
    // The observer's socket for `exec`, bound before any thread starts
    // (the umask it is bound under is the process's).
    let (first, accept) = match observe {
        Some(o) => match crate::observer::listen(o.dir) {
            Ok(l) => (o.first, Some(l)),
            Err(e) => return report_err(e),
        },
        None => (None, None),
    };
    out.start_export();
    let view = paddock_sandbox::ContainerView {
        audit: level,
        proxy_port: handed.is_some().then_some(paddock_plan::egress::PROXY_PORT),
        transparent: handed.as_ref().is_some_and(|h| h.tun.is_some()),
    };
    let mut logins = None;
    let mut kept = None;
    if let (Some(egress), Some(handed)) = (egress, handed) {
        match proxy(&policy, &out, egress, handed) {
            Ok((l, e)) => {
                logins = Some(l);
                kept = Some(e);
            }
            Err(e) => return report_err(e),
        }
    }
    out.log.emit(
        EventKind::SessionStart,
        None,
        None,
        &Caller::default(),
        serde_json::json!({
            "container": id,
            "policy": policy.file,
            "network": if kept.is_some() { "proxy" } else { "none" },
            "transparent": matches!(net, Net::Proxy { tun: true }),
            "proxy_pid": std::process::id(),
            "audit": level.as_str(),
        }),
    );
    let _ = report.write_all(b"OK");
    drop(report);
    // Until the container's first process is gone (the pidfd turns
    // readable); its other processes die with it (its pid namespace).
    let obs = first
        .is_some()
        .then(|| paddock_sandbox::ContainerObserver::new(view));
    crate::observer::serve(&pidfd, first, accept, obs, &out.log);
    if let Some(logins) = &logins {
        let _ = paddock_proxy::finish_refreshes(logins, std::time::Duration::from_secs(30));
    }
    out.log.emit(
        EventKind::SessionStop,
        None,
        None,
        &Caller::default(),
        serde_json::json!({"container": id}),
    );
    out.finish();
    drop(kept);
    String::new()
}

/// The proxy, started on its own thread in the engine's network; the
/// logins it refreshes, and what must live as long as it does.
fn proxy(
    policy: &Policy,
    out: &paddock_plan::audit::AuditOut,
    egress: Egress,
    handed: Handed,
) -> Result<(Vec<std::sync::Arc<paddock_proxy::refresh::Login>>, Egress), String> {
    let log = out.log.clone();
    let sink: paddock_proxy::EventSink = std::sync::Arc::new(move |e: &paddock_proxy::Event| {
        log.emit(
            EventKind::NetDecision,
            Some(e.allowed),
            Some(&e.code),
            &Caller::default(),
            serde_json::to_value(e).unwrap_or_default(),
        );
    });
    let cfg = egress
        .config(&policy.eff, Some(sink))
        .map_err(|e| e.to_string())?;
    let logins = cfg.logins.clone();
    // The proxy connects out from the network the engine gave the
    // container (a pod's, a bridge's; none at all with `--network none`):
    // paddock narrows the engine's network, never widens it. The audit
    // export started above stays in the runtime's own.
    // (Already there when the engine gave the runtime's own network, as
    // `--network host` does; a rootless engine's runtime may not join it
    // again, which the initial user namespace owns.)
    let here = std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino());
    let engines = File::from(handed.engines);
    let same = engines.metadata().map(|m| m.ino());
    let join = !matches!((here, same), (Ok(a), Ok(b)) if a == b);
    join.then(|| paddock_sys::setns(engines.as_fd()))
        .transpose()
        .map_err(|e| format!("joining the engine's network namespace: {e}"))?;
    drop(engines);
    paddock_proxy::spawn_thread(handed.listener, handed.tun, cfg).map_err(|e| e.to_string())?;
    Ok((logins, egress))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(dir: &Path) -> Places {
        Places {
            policies: dir.to_path_buf(),
            audit: dir.join("audit"),
            only: None,
            choosable: Some(vec!["*".into()]),
        }
    }

    fn annotation(name: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(ANNOTATION.to_string(), name.to_string())])
    }

    fn scratch(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("paddock-oci-egress-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn a_policy_is_named_never_given_as_a_path() {
        let d = scratch("names");
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "x y",
            "a\nb",
            &"a".repeat(129),
        ] {
            let e = named_policy(&annotation(bad), &places(&d)).err().unwrap();
            assert!(e.contains("not a path"), "{bad:?}: {e}");
        }
        assert!(named_policy(&BTreeMap::new(), &places(&d))
            .unwrap()
            .is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn only_a_plain_file_closed_to_others_is_read() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("trusted");
        std::fs::write(d.join("ok.toml"), "version = 1\n").unwrap();
        std::fs::set_permissions(d.join("ok.toml"), PermissionsExt::from_mode(0o644)).unwrap();
        assert_eq!(read_trusted(&d, "ok.toml").unwrap(), "version = 1\n");
        std::fs::write(d.join("loose.toml"), "version = 1\n").unwrap();
        std::fs::set_permissions(d.join("loose.toml"), PermissionsExt::from_mode(0o666)).unwrap();
        assert!(read_trusted(&d, "loose.toml")
            .unwrap_err()
            .contains("others may write"));
        std::os::unix::fs::symlink(d.join("ok.toml"), d.join("link.toml")).unwrap();
        assert!(read_trusted(&d, "link.toml").is_err());
        std::fs::create_dir(d.join("dir.toml")).unwrap();
        assert!(read_trusted(&d, "dir.toml")
            .unwrap_err()
            .contains("not a file"));
        let made = std::process::Command::new("mkfifo")
            .arg(d.join("fifo.toml"))
            .status()
            .is_ok_and(|s| s.success());
        if made {
            assert!(read_trusted(&d, "fifo.toml")
                .unwrap_err()
                .contains("not a file"));
        }
        let big = format!("version = 1\n#{}\n", "x".repeat(1 << 20));
        std::fs::write(d.join("big.toml"), big).unwrap();
        std::fs::set_permissions(d.join("big.toml"), PermissionsExt::from_mode(0o644)).unwrap();
        assert!(read_trusted(&d, "big.toml")
            .unwrap_err()
            .contains("not read in part"));
        assert!(read_trusted(&d, "none.toml")
            .unwrap_err()
            .contains("there is none"));
        std::fs::set_permissions(&d, PermissionsExt::from_mode(0o777)).unwrap();
        assert!(read_trusted(&d, "ok.toml").unwrap_err().contains("folder"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_runtime_with_one_policy_refuses_an_annotation_for_another() {
        let d = scratch("only");
        std::fs::write(d.join("agent.toml"), "version = 1\n").unwrap();
        std::fs::set_permissions(
            d.join("agent.toml"),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        // Without --policy or --policies, no annotation chooses.
        let mut p = places(&d);
        p.choosable = None;
        let e = named_policy(&annotation("agent"), &p).err().unwrap();
        assert!(e.contains("takes no policy from annotations"), "{e}");
        p.choosable = Some(vec!["ci".into()]);
        let e = named_policy(&annotation("agent"), &p).err().unwrap();
        assert!(e.contains("choose only ci"), "{e}");
        p.only = Some("agent".into());
        let e = named_policy(&annotation("deploy"), &p).err().unwrap();
        assert!(e.contains("under the policy `agent` only"), "{e}");
        assert_eq!(
            named_policy(&BTreeMap::new(), &p).unwrap().unwrap().name,
            "agent"
        );
        assert_eq!(
            named_policy(&annotation("agent"), &p)
                .unwrap()
                .unwrap()
                .name,
            "agent"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn events_carry_the_container_and_its_pod_by_their_otel_names() {
        let a = BTreeMap::from([
            (
                "io.kubernetes.cri.sandbox-name".to_string(),
                "pod-a".to_string(),
            ),
            (
                "io.kubernetes.pod.namespace".to_string(),
                "ns-a".to_string(),
            ),
            (
                "io.kubernetes.cri.sandbox-namespace".to_string(),
                "ns-cri".to_string(),
            ),
            ("io.kubernetes.pod.uid".to_string(), "x".repeat(300)),
            ("unrelated".to_string(), "x".to_string()),
        ]);
        let l = labels("c1", "agent", &a);
        assert_eq!(l["container.id"], "c1");
        assert_eq!(l["paddock.policy.name"], "agent");
        assert_eq!(l["k8s.pod.name"], "pod-a");
        // containerd's own name wins over a passed-through annotation.
        assert_eq!(l["k8s.namespace.name"], "ns-cri");
        assert_eq!(l["k8s.pod.uid"], "(not a name)");
        assert_eq!(l.len(), 5, "{l:?}");
    }

    #[test]
    fn the_policys_variables_override_the_bundles() {
        let env = ["PATH=/bin", "HTTPS_PROXY=http://evil:1", "A"].map(String::from);
        let extra = ["HTTPS_PROXY=http://127.0.0.1:3128", "A=1"].map(String::from);
        assert_eq!(
            with_env(&env, &extra),
            ["PATH=/bin", "HTTPS_PROXY=http://127.0.0.1:3128", "A=1"]
        );
    }
}

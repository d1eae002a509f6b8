//! Landlock: the second, independent fence around the filesystem.
//!
//! The mount namespace decides what the sandbox can *see*; Landlock decides
//! what it may *do* with what it sees, enforced by the kernel per path,
//! whatever the mount table says. If a mount step were ever wrong (a
//! forgotten folder, a bind that exposes more than meant), Landlock still
//! refuses access outside the listed paths. It is also what implements
//! `rw-no-delete`: that mode is granted every right except REMOVE_FILE and
//! REMOVE_DIR, which unlink, rmdir and any rename out of a folder need.
//!
//! ABI 6 scopes are requested too: the sandbox can neither signal processes
//! outside its Landlock domain (paddock's init included) nor connect to
//! abstract unix sockets created outside it.
//!
//! The rules are best-effort across kernels: on an older ABI the rights it
//! does not know are simply not enforced, and the status says so.

use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, NetPort,
    PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus,
    Scope, ABI,
};
use serde::{Deserialize, Serialize};

use crate::prepare::Prepared;
use crate::spec::{Level, MountMode, HIDDEN_SYSTEM_PATHS, SYSTEM_DIRS};

/// The ABI whose rights paddock asks for (the newest whose access rights
/// and scopes it has been reviewed against).
const TARGET_ABI: ABI = ABI::V6;

/// What Landlock enforced for one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockReport {
    /// The kernel's Landlock ABI (0: unavailable).
    pub abi: i32,
    /// `full`, `partial` or `none`.
    pub enforced: String,
}

/// The ruleset of `p`'s isolation level: None at `landlock-unavailable`.
pub(crate) fn for_level(p: &Prepared) -> Result<Option<RulesetCreated>, String> {
    match p.level {
        Level::Full => ruleset(p).map(Some),
        Level::LandlockUnavailable => Ok(None),
        Level::NoUserns => host_ruleset(p).map(Some),
    }
}

/// Level `no-userns`: with no mount namespace, Landlock is the whole
/// filesystem fence, on host paths. Only these are reachable: the system
/// folders (read), the mounts (by mode, at their own paths), the private
/// home and /tmp in the scratch folder, /proc and /sys (read; Landlock's
/// ptrace rule keeps other processes' memory and environment out of
/// reach), and the few device nodes a command needs. Not the real home,
/// /tmp, /run (host daemons' sockets) or /dev/shm (shared with the host).
/// TCP: no bind, and connect only to the proxy's port.
fn host_ruleset(p: &Prepared) -> Result<RulesetCreated, String> {
    let r = Rights::new();
    // Not even ReadDir on `/`: rights flow down, and listing every host
    // folder would show the names in the user's home.
    let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> = vec![
        ("/proc".into(), r.file_rw),
        ("/sys".into(), r.read),
        ("/dev".into(), AccessFs::ReadDir.into()),
        // A new pty of its own; not /dev/pts, where the user's other
        // terminals are: only the one the command was given.
        ("/dev/ptmx".into(), r.file_rw | AccessFs::IoctlDev),
    ];
    rules.extend(
        own_terminals()
            .into_iter()
            .map(|t| (t, r.file_rw | AccessFs::IoctlDev)),
    );
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        rules.push((Path::new("/dev").join(d), r.file_rw | AccessFs::IoctlDev));
    }
    if let Some((home, tmp)) = &p.scratch {
        rules.push((home.clone(), r.all));
        rules.push((tmp.clone(), r.all));
    }
    // The system folders, but not the host's secrets in them (with no
    // mount namespace nothing can cover /etc/shadow; run as root it would
    // be readable): each folder holding one is granted child by child.
    for (path, access) in r.system_and_mounts(p, |m| m.source.clone()) {
        grant_except_hidden(&path, access, &mut rules);
    }
    let mut rs = create(&r, rules, true)?;
    if let Some(port) = p.proxy_port {
        rs = rs
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .map_err(|e| format!("TCP port {port}: {e}"))?;
    }
    Ok(rs)
}

/// The terminals (`/dev/pts/N`) on pid 1's standard streams: the ones the
/// command inherits.
fn own_terminals() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (0..3)
        .filter_map(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok())
        .filter(|t| t.starts_with("/dev/pts/"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `(dir, access)`, or where `dir` holds one of [`HIDDEN_SYSTEM_PATHS`],
/// the same for each of its children (recursively) but the hidden ones,
/// and ReadDir on `dir` itself. Links among the children are left out:
/// a rule on a link would grant its target, which the rule on the folder
/// never did.
fn grant_except_hidden(
    dir: &Path,
    access: BitFlags<AccessFs>,
    out: &mut Vec<(PathBuf, BitFlags<AccessFs>)>,
) {
    let hidden = || HIDDEN_SYSTEM_PATHS.iter().map(Path::new);
    if hidden().any(|h| h == dir) {
        return;
    }
    if !hidden().any(|h| h.starts_with(dir)) {
        out.push((dir.to_path_buf(), access));
        return;
    }
    out.push((dir.to_path_buf(), AccessFs::ReadDir.into()));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_symlink()))
        .map(|e| e.path())
        .collect();
    children.sort();
    for c in children {
        grant_except_hidden(&c, access, out);
    }
}

/// The access-right sets the rules are made of.
struct Rights {
    all: BitFlags<AccessFs>,
    read: BitFlags<AccessFs>,
    no_delete: BitFlags<AccessFs>,
    file_rw: BitFlags<AccessFs>,
}

impl Rights {
    fn new() -> Rights {
        let all = AccessFs::from_all(TARGET_ABI);
        let read = AccessFs::from_read(TARGET_ABI);
        Rights {
            all,
            read,
            no_delete: all & !(AccessFs::RemoveFile | AccessFs::RemoveDir),
            file_rw: read | AccessFs::WriteFile | AccessFs::Truncate,
        }
    }

    /// The system folders (read) and every mount by its mode, each mount
    /// at `at(m)`: its target inside the sandbox, or its source on the host.
    fn system_and_mounts(
        &self,
        p: &Prepared,
        at: impl Fn(&crate::spec::MountSpec) -> PathBuf,
    ) -> Vec<(PathBuf, BitFlags<AccessFs>)> {
        let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> = SYSTEM_DIRS
            .iter()
            .map(|d| (Path::new("/").join(d), self.read))
            .collect();
        for m in &p.mounts {
            let access = match m.mode {
                MountMode::Ro => self.read,
                MountMode::Rw | MountMode::Cow => self.all,
                MountMode::RwNoDelete => self.no_delete,
            };
            rules.push((at(m), access));
        }
        rules
    }
}

/// A ruleset handling every file right (and, with `tcp`, TCP bind and
/// connect), with the ABI 6 scopes, holding `rules`.
fn create(
    r: &Rights,
    rules: Vec<(PathBuf, BitFlags<AccessFs>)>,
    tcp: bool,
) -> Result<RulesetCreated, String> {
    let mut base = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(r.all)
        .map_err(|e| e.to_string())?;
    if tcp {
        base = base
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(|e| e.to_string())?;
    }
    let mut rs = base
        .scope(Scope::from_all(TARGET_ABI))
        .map_err(|e| e.to_string())?
        .create()
        .map_err(|e| e.to_string())?;
    for (path, access) in rules {
        // A listed path that does not exist (no /opt on this host) simply
        // grants nothing.
        let Ok(fd) = PathFd::new(&path) else { continue };
        // Rights that make no sense on a file (ReadDir on /dev/null...) are
        // trimmed by the crate for non-directories.
        rs = rs
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(rs)
}

/// Build the ruleset for `p`. Runs after `pivot_root`, so every path here is
/// a path inside the sandbox.
fn ruleset(p: &Prepared) -> Result<RulesetCreated, String> {
    let r = Rights::new();
    let (all, read, file_rw) = (r.all, r.read, r.file_rw);

    // Landlock grants are inherited by everything beneath a path, across
    // mount points. A scratch tmpfs (/tmp, home) that holds a rw-no-delete
    // mount therefore must not grant the REMOVE rights itself, or the
    // mount below would inherit them: there, deleting in the scratch area
    // is refused too (see docs/sandbox.md).
    let holds_no_delete = |dir: &Path| {
        p.mounts.iter().any(|m| {
            m.mode == MountMode::RwNoDelete && m.target.starts_with(dir) && m.target != dir
        })
    };
    let scratch = |dir: &Path| {
        if holds_no_delete(dir) {
            r.no_delete
        } else {
            all
        }
    };
    let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> = vec![
        // Listing `/` shows only what paddock put there.
        ("/".into(), AccessFs::ReadDir.into()),
        ("/proc".into(), file_rw),
        ("/dev".into(), file_rw | AccessFs::IoctlDev),
        ("/dev/shm".into(), all),
        ("/sys".into(), read),
        ("/tmp".into(), scratch(Path::new("/tmp"))),
        ("/run".into(), all),
        (p.home.clone(), scratch(&p.home)),
    ];
    rules.extend(r.system_and_mounts(p, |m| m.target.clone()));
    create(&r, rules, false)
}

/// Enforce `rs` on the calling thread (and its future children).
pub(crate) fn restrict(rs: Option<RulesetCreated>) -> Result<LandlockReport, String> {
    let Some(rs) = rs else {
        return Ok(LandlockReport {
            abi: 0,
            enforced: "none".into(),
        });
    };
    let status = rs.restrict_self().map_err(|e| e.to_string())?;
    let abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.unwrap_or(effective_abi as i32),
        _ => 0,
    };
    let enforced = match status.ruleset {
        RulesetStatus::FullyEnforced => "full",
        RulesetStatus::PartiallyEnforced => "partial",
        RulesetStatus::NotEnforced => "none",
    };
    Ok(LandlockReport {
        abi,
        enforced: enforced.into(),
    })
}

/// pid 1's own Landlock domain: the ABI 6 scopes (and at `no-userns` the
/// commands' TCP rule), no file rule. pid 1
/// connects unix sockets on the commands' behalf (crate::observe), so it
/// must be bound by the same scope as they are: an abstract socket the host
/// created stays out of reach, while the commands' own domains, nested
/// inside this one, stay reachable. Signals to the commands (nested) are
/// unaffected. Where Landlock has no scopes the commands are not scoped
/// either, and nothing is lost.
pub(crate) fn scope_init(p: &Prepared) -> Result<(), String> {
    if p.level == Level::LandlockUnavailable {
        return Ok(());
    }
    // Every ruleset denies REFER (moving or linking a file into another
    // folder) unless it handles and grants it, and this domain is stacked
    // under every command's: it grants REFER everywhere and leaves file
    // rights to the commands' own rulesets.
    let mut rs = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::Refer)
        .map_err(|e| e.to_string())?;
    // No network namespace: the commands may connect to the proxy's port
    // only, and so may pid 1 when it connects for them.
    let tcp = p.level == Level::NoUserns;
    if tcp {
        rs = rs
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(|e| e.to_string())?;
    }
    let mut created = rs
        .scope(Scope::from_all(TARGET_ABI))
        .map_err(|e| e.to_string())?
        .create()
        .map_err(|e| e.to_string())?;
    if let Ok(root) = PathFd::new("/") {
        created = created
            .add_rule(PathBeneath::new(root, AccessFs::Refer))
            .map_err(|e| e.to_string())?;
    }
    if let (true, Some(port)) = (tcp, p.proxy_port) {
        created = created
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .map_err(|e| e.to_string())?;
    }
    created.restrict_self().map_err(|e| e.to_string())?;
    Ok(())
}

/// A container's processes on the host's network or pid namespace (an OCI
/// bundle that joins the runtime's, `--network host`, `--pid host`).
/// Abstract unix sockets belong to a network namespace, so on the host's
/// the host's own (X11's, D-Bus's, an engine shim's) would be in reach;
/// with the host's pids, every host process is there to be signalled (the
/// egress daemons of other containers among them). A Landlock domain with
/// those scopes only (no file rule) keeps both out: the container's
/// processes still reach their own. Whether the kernel enforced it (ABI 6
/// and newer).
pub fn scope_container(abstract_sockets: bool, signals: bool) -> Result<bool, String> {
    let mut scopes = BitFlags::<Scope>::empty();
    if abstract_sockets {
        scopes |= Scope::AbstractUnixSocket;
    }
    if signals {
        scopes |= Scope::Signal;
    }
    if scopes.is_empty() {
        return Ok(true);
    }
    // Every ruleset denies REFER unless it handles and grants it: handled
    // and granted everywhere, so this domain changes nothing for files.
    let mut created = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::Refer)
        .map_err(|e| e.to_string())?
        .scope(scopes)
        .map_err(|e| e.to_string())?
        .create()
        .map_err(|e| e.to_string())?;
    if let Ok(root) = PathFd::new("/") {
        created = created
            .add_rule(PathBeneath::new(root, AccessFs::Refer))
            .map_err(|e| e.to_string())?;
    }
    let status = created.restrict_self().map_err(|e| e.to_string())?;
    let abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.unwrap_or(effective_abi as i32),
        _ => 0,
    };
    Ok(abi >= 6 && status.ruleset != RulesetStatus::NotEnforced)
}

//! Probes of the kernel features the sandbox uses, for `paddock doctor`.
//!
//! Each probe *tries* the feature (creates a user namespace, mounts an
//! overlay inside one...) rather than guessing from version numbers, and
//! says how to fix what is missing.

use std::io::{Read, Write};
use std::path::Path;

use paddock_sys::{self as sys, ns, Forked};

use crate::spec::Level;
use serde::{Deserialize, Serialize};

/// One checked feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier (`user_namespaces`, `landlock`, ...).
    pub id: String,
    /// Human name.
    pub name: String,
    /// `ok`, `degraded` or `missing`.
    pub status: String,
    /// What was found.
    pub detail: String,
    /// What the sandbox loses without it (empty when ok).
    pub impact: String,
    /// How to get it (empty when ok).
    pub fix: String,
}

fn check(id: &str, name: &str, status: &str, detail: String, impact: &str, fix: &str) -> Check {
    let ok = status == "ok";
    Check {
        id: id.into(),
        name: name.into(),
        status: status.into(),
        detail,
        impact: if ok { String::new() } else { impact.into() },
        fix: if ok { String::new() } else { fix.into() },
    }
}

/// Run `f` in a child inside new namespaces `flags` (always including a
/// user namespace with the caller mapped to itself). Returns whether the
/// clone worked and what `f` returned.
fn in_namespaces(flags: u64, f: fn() -> bool) -> Result<bool, std::io::Error> {
    let (mut go_r, mut go_w) = std::io::pipe()?;
    match sys::clone_into_namespaces(flags | ns::USER)? {
        Forked::Child => {
            drop(go_w);
            let mut b = [0u8; 1];
            if go_r.read(&mut b).map(|n| n != 1).unwrap_or(true) {
                sys::exit_now(2);
            }
            sys::exit_now(if f() { 0 } else { 1 })
        }
        Forked::Parent { pid, .. } => {
            drop(go_r);
            let maps = crate::write_id_maps(pid);
            if maps.is_ok() {
                let _ = go_w.write_all(b"1");
            }
            drop(go_w);
            let st = sys::waitpid(pid, false)?;
            maps?;
            Ok(matches!(st, Some((_, sys::ExitStatus::Exited(0)))))
        }
    }
}

fn overlay_works() -> bool {
    let base = Path::new("/tmp");
    if sys::mount(
        None,
        Path::new("/"),
        None,
        sys::mflags::REC | sys::mflags::PRIVATE,
        None,
    )
    .is_err()
        || sys::mount(Some("tmpfs"), base, Some("tmpfs"), 0, Some("size=1m")).is_err()
    {
        return false;
    }
    for d in ["l", "u", "w", "m"] {
        if std::fs::create_dir(base.join(d)).is_err() {
            return false;
        }
    }
    sys::mount(
        Some("overlay"),
        &base.join("m"),
        Some("overlay"),
        0,
        Some("lowerdir=/tmp/l,upperdir=/tmp/u,workdir=/tmp/w,userxattr"),
    )
    .is_ok()
}

fn nothing() -> bool {
    true
}

/// In a forked child: install an allow-all filter with a listener and ask
/// for synchronous wake-ups. 0: both work, 1: no sync wake-ups, 2: no
/// listener.
fn audit_observer() -> Option<i32> {
    match sys::fork().ok()? {
        Forked::Child => {
            if sys::set_no_new_privs().is_err() {
                sys::exit_now(2);
            }
            // ld [0]; ret ALLOW
            let allow = [(0x20, 0, 0, 0), (0x06, 0, 0, 0x7fff_0000)];
            match sys::seccomp_install_with_listener(&allow) {
                Ok(fd) => {
                    use std::os::fd::AsFd;
                    sys::exit_now(if sys::seccomp_notif_sync_wakeup(fd.as_fd()).is_ok() {
                        0
                    } else {
                        1
                    })
                }
                Err(_) => sys::exit_now(2),
            }
        }
        Forked::Parent { pid, .. } => match sys::waitpid(pid, false).ok()? {
            Some((_, sys::ExitStatus::Exited(c))) => Some(c),
            _ => None,
        },
    }
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// What decides the `apparmor_userns` check.
#[derive(Debug, Clone)]
pub struct AppArmorFacts<'a> {
    /// `/proc/sys/kernel/apparmor_restrict_unprivileged_userns` (None: the
    /// kernel has no such restriction).
    pub restrict: Option<&'a str>,
    /// Could this process create its user namespace?
    pub userns_ok: bool,
    /// A file in /etc/apparmor.d that names this binary, if any.
    pub profile: Option<std::path::PathBuf>,
    /// The profile a package or install.sh put beside the binary
    /// (`PREFIX/share/paddock/apparmor/paddock`), if any.
    pub shipped: Option<std::path::PathBuf>,
    /// This binary.
    pub binary: &'a Path,
}

/// Judge the AppArmor restriction on unprivileged user namespaces and,
/// when it stops paddock, give the exact commands that lift it for paddock
/// alone.
pub fn apparmor_userns(f: &AppArmorFacts<'_>) -> Check {
    const ID: &str = "apparmor_userns";
    const NAME: &str = "AppArmor user-namespace restriction";
    let restricted = match f.restrict {
        None => {
            return check(
                ID,
                NAME,
                "ok",
                "this kernel has no such restriction".into(),
                "",
                "",
            )
        }
        Some(v) => v.trim() != "0",
    };
    if !restricted {
        return check(
            ID,
            NAME,
            "ok",
            "kernel.apparmor_restrict_unprivileged_userns = 0: not restricted".into(),
            "",
            "",
        );
    }
    if f.userns_ok {
        let by = match &f.profile {
            Some(p) => format!("allowed by the profile in {}", p.display()),
            None => "allowed (root, or a profile loaded from elsewhere)".into(),
        };
        return check(
            ID,
            NAME,
            "ok",
            format!("kernel.apparmor_restrict_unprivileged_userns = 1; paddock is {by}"),
            "",
            "",
        );
    }
    let load = "sudo apparmor_parser -r /etc/apparmor.d/paddock";
    let (detail, fix) = match (&f.profile, &f.shipped) {
        (Some(p), _) => (
            format!("restricted; {} names this binary but is not in force", p.display()),
            format!("load it: `sudo apparmor_parser -r {}`", p.display()),
        ),
        (None, Some(s)) => (
            "restricted, and no AppArmor profile allows this binary".to_string(),
            format!("install the profile shipped with paddock: `sudo install -m 0644 {} /etc/apparmor.d/paddock && {load}`", s.display()),
        ),
        (None, None) => (
            "restricted, and no AppArmor profile allows this binary".to_string(),
            format!("install a profile for {}: `paddock generate apparmor | sudo tee /etc/apparmor.d/paddock >/dev/null && {load}`", f.binary.display()),
        ),
    };
    check(ID, NAME, "missing", detail,
        "no user namespace, so no namespace-based sandbox (see docs/isolation-levels.md for what remains)",
        &format!("{fix}. (Turning the restriction off for every program, `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`, also works but weakens the whole system.)"))
}

/// The file in `dir` (normally /etc/apparmor.d) whose text names `binary`
/// as a profile's attachment.
pub fn installed_profile(dir: &Path, binary: &Path) -> Option<std::path::PathBuf> {
    let want = binary.to_str()?;
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let p = e.path();
        let md = std::fs::metadata(&p).ok()?;
        if !md.is_file() || md.len() > 256 * 1024 {
            return None;
        }
        let text = std::fs::read_to_string(&p).ok()?;
        let names_it = text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("profile ") && l.contains(want)
        });
        let allows = text.lines().any(|l| l.trim() == "userns,");
        (names_it && allows).then_some(p)
    })
}

/// `PREFIX/share/paddock/apparmor/paddock` for a binary in `PREFIX/bin`.
pub fn shipped_profile(binary: &Path) -> Option<std::path::PathBuf> {
    let prefix = binary.parent()?.parent()?;
    let p = prefix.join("share/paddock/apparmor/paddock");
    p.is_file().then_some(p)
}

/// The kernel layers a sandbox is built from, as found by trying them;
/// what [`Layers::best`] turns into an isolation level. Cheap (one clone
/// and two system calls), and cached per boot by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layers {
    /// Could an unprivileged user namespace (with mount, pid, IPC, UTS,
    /// network and cgroup namespaces) be created?
    pub userns: bool,
    /// Why not, when not.
    pub userns_detail: String,
    /// The fix for this host, when not.
    pub userns_fix: String,
    /// The Landlock ABI (0: unavailable).
    pub landlock_abi: i32,
    /// Seccomp filters available?
    pub seccomp: bool,
}

/// Landlock ABI from which TCP rules exist (what level `no-userns` needs
/// to confine the network without a network namespace).
pub const LANDLOCK_NET_ABI: i32 = 4;

impl Layers {
    /// The strongest level these layers give, or None when even the
    /// weakest cannot be built.
    pub fn best(&self) -> Option<Level> {
        match (self.userns, self.landlock_abi, self.seccomp) {
            (_, _, false) => None,
            (true, abi, true) if abi >= 1 => Some(Level::Full),
            (true, _, true) => Some(Level::LandlockUnavailable),
            (false, abi, true) if abi >= LANDLOCK_NET_ABI => Some(Level::NoUserns),
            (false, _, true) => None,
        }
    }

    /// The layers missing for `level` (or for `full` when None), each as
    /// (layer, what was found, how to get it).
    pub fn missing(&self, level: Option<Level>) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        let level = level.unwrap_or(Level::Full);
        if !self.seccomp {
            out.push((
                "seccomp",
                "seccomp filters are unavailable".to_string(),
                "use a kernel built with CONFIG_SECCOMP_FILTER".to_string(),
            ));
        }
        if level.namespaces() && !self.userns {
            out.push((
                "user namespaces",
                self.userns_detail.clone(),
                self.userns_fix.clone(),
            ));
        }
        let landlock_fix = "boot with `lsm=landlock,...` on the kernel command line, or use a \
                            kernel built with CONFIG_SECURITY_LANDLOCK (Linux 6.7+ for TCP rules)";
        if level == Level::Full && self.landlock_abi < 1 {
            out.push((
                "Landlock",
                "Landlock is unavailable".to_string(),
                landlock_fix.to_string(),
            ));
        }
        if level == Level::NoUserns && self.landlock_abi < LANDLOCK_NET_ABI {
            out.push((
                "Landlock TCP rules",
                format!(
                    "Landlock ABI {} (TCP rules need ABI {LANDLOCK_NET_ABI})",
                    self.landlock_abi
                ),
                landlock_fix.to_string(),
            ));
        }
        out
    }
}

/// Landlock's ABI, or 0. Debug builds (the test suite) can pretend it is
/// absent with `PADDOCK_TEST_NO_LANDLOCK=1`; release builds cannot.
pub fn landlock_abi() -> i32 {
    #[cfg(debug_assertions)]
    if std::env::var_os("PADDOCK_TEST_NO_LANDLOCK").is_some() {
        return 0;
    }
    sys::landlock_abi_version().unwrap_or(0)
}

/// What blocks user namespaces here, as a fix.
fn userns_fix() -> String {
    let apparmor = read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let debian = read_trim("/proc/sys/kernel/unprivileged_userns_clone");
    let max = read_trim("/proc/sys/user/max_user_namespaces");
    if apparmor.as_deref() == Some("1") {
        "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+): install paddock's \
         AppArmor profile (`paddock doctor` prints the commands under `apparmor_userns`)"
    } else if debian.as_deref() == Some("0") {
        "run `sudo sysctl kernel.unprivileged_userns_clone=1` (and persist it in /etc/sysctl.d)"
    } else if max.as_deref() == Some("0") {
        "run `sudo sysctl user.max_user_namespaces=15000`"
    } else {
        "inside a container, start it with a seccomp profile that allows unshare/clone \
         (e.g. docker --security-opt seccomp=unconfined), or run paddock on the host"
    }
    .to_string()
}

/// Try every layer. Must be called from a single-threaded process.
pub fn detect_layers() -> Layers {
    let all = ns::MOUNT | ns::PID | ns::IPC | ns::UTS | ns::NET | ns::CGROUP;
    let (userns, userns_detail) = match in_namespaces(all, nothing) {
        Ok(true) => (true, String::new()),
        Ok(false) => (
            false,
            "the namespaces were created but the uid map could not be written".to_string(),
        ),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => (
            false,
            "clone3 is refused with ENOSYS (a container's seccomp profile, e.g. Docker's default)"
                .to_string(),
        ),
        Err(e) => (false, format!("creating a user namespace failed: {e}")),
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Layers {
        userns,
        userns_fix: if userns { String::new() } else { userns_fix() },
        userns_detail,
        landlock_abi: landlock_abi(),
        seccomp: status.contains("Seccomp:"),
    }
}

/// Every check `paddock doctor` shows, the layers among them taken from
/// `layers` (so a caller that has probed them, or has them cached, does
/// not probe twice). Must be called from a single-threaded process.
pub fn kernel_checks(layers: &Layers) -> Vec<Check> {
    let mut out = Vec::new();

    // User namespaces, and every namespace the sandbox asks for.
    let apparmor = read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let userns_ok = layers.userns;
    out.push(if userns_ok {
        check(
            "user_namespaces",
            "user, mount, pid, ipc, uts, net, cgroup namespaces",
            "ok",
            "an unprivileged process can create all of them".into(),
            "",
            "",
        )
    } else {
        check(
            "user_namespaces",
            "user namespaces",
            "missing",
            layers.userns_detail.clone(),
            "no namespaces: level no-userns at best (no pid, mount, IPC or network namespace; docs/isolation-levels.md)",
            &layers.userns_fix,
        )
    });

    // The AppArmor restriction on user namespaces (Ubuntu 23.10+).
    let binary = std::env::current_exe().unwrap_or_else(|_| "/usr/bin/paddock".into());
    out.push(apparmor_userns(&AppArmorFacts {
        restrict: apparmor.as_deref(),
        userns_ok,
        profile: installed_profile(Path::new("/etc/apparmor.d"), &binary),
        shipped: shipped_profile(&binary),
        binary: &binary,
    }));

    // Landlock.
    let abi: Result<i32, String> = match layers.landlock_abi {
        0 => Err(sys::landlock_abi_version().err().map_or_else(
            || "disabled by PADDOCK_TEST_NO_LANDLOCK".into(),
            |e| e.to_string(),
        )),
        v => Ok(v),
    };
    out.push(match abi {
        Ok(v) if v >= 6 => check("landlock", "Landlock", "ok",
            format!("ABI {v}: file rules, rw-no-delete, TCP rules, ioctl and IPC scoping"), "", ""),
        Ok(v) => check("landlock", "Landlock", "degraded", format!("ABI {v} (6 or newer wanted)"),
            "older ABIs lack some rights: <3 no truncate control, <5 no device ioctl control, <6 no signal and abstract-socket scoping",
            "upgrade to Linux 6.12 or newer"),
        Err(e) => check("landlock", "Landlock", "missing", e,
            "file access is limited by mounts only; rw-no-delete cannot be enforced",
            "boot with `lsm=landlock,...` in the kernel command line, or use Linux 5.13+ built with CONFIG_SECURITY_LANDLOCK"),
    });

    // Seccomp filters.
    out.push(if layers.seccomp {
        check(
            "seccomp",
            "seccomp-bpf",
            "ok",
            format!(
                "{} system calls denied in the sandbox",
                crate::denied_syscalls().len()
            ),
            "",
            "",
        )
    } else {
        check(
            "seccomp",
            "seccomp-bpf",
            "missing",
            "no Seccomp line in /proc/self/status".into(),
            "dangerous system calls (ptrace, bpf, io_uring, nested namespaces) stay available",
            "use a kernel built with CONFIG_SECCOMP_FILTER",
        )
    });

    // Seccomp user notification, for the audit observer.
    out.push(match audit_observer() {
        Some(0) => check("audit_observer", "audit observer (seccomp user notification)", "ok",
            "listener and synchronous wake-ups available: file activity is attributed per process".into(), "", ""),
        Some(1) => check("audit_observer", "audit observer (seccomp user notification)", "degraded",
            "listeners work, synchronous wake-ups do not (Linux < 6.6)".into(),
            "each observed call costs about twice as much; see docs/audit.md",
            "use Linux 6.6 or newer, or a lower audit level for file-heavy work"),
        _ => check("audit_observer", "audit observer (seccomp user notification)", "missing",
            "a seccomp filter with a notification listener could not be installed".into(),
            "commands run unobserved: file, process and denied-syscall events are not recorded (commands and network decisions still are)",
            "use Linux 5.9 or newer, or set `[audit] level = \"off\"`"),
    });

    // Pathname unix sockets: Landlock governs them from ABI 9
    // (LANDLOCK_ACCESS_FS_RESOLVE_UNIX); before that the observer does.
    let lk = layers.landlock_abi;
    out.push(match audit_observer() {
        Some(_) => check("unix_sockets", "host unix sockets", "ok",
            format!("a socket file in a mount that the sandbox did not bind is refused (NET_UNIX_HOST_SOCKET): \
                     pid 1 makes every unix connect itself, on the address it checked; Landlock ABI {lk} {}",
                if lk >= 9 { "could also govern them (ABI 9), not used yet" } else { "has no control of them (ABI 9 has)" }),
            "", ""),
        None => check("unix_sockets", "host unix sockets", "degraded",
            "no observer to judge unix connects".into(),
            "unix sockets are refused whole inside the sandbox (socketpair still works)",
            "use Linux 5.9 or newer"),
    });

    // Overlayfs inside a user namespace (for `cow` mounts).
    out.push(match in_namespaces(ns::MOUNT, overlay_works) {
        Ok(true) => check(
            "overlayfs_userns",
            "overlayfs in user namespaces",
            "ok",
            "cow mounts available".into(),
            "",
            "",
        ),
        _ => check(
            "overlayfs_userns",
            "overlayfs in user namespaces",
            "missing",
            "an overlay mount inside a user namespace failed".into(),
            "mounts in mode `cow` cannot be used",
            "use Linux 5.11 or newer",
        ),
    });

    // cgroup v2 delegation, for resource limits.
    let cg = read_trim("/proc/self/cgroup").unwrap_or_default();
    let v2_path = cg
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string);
    let controllers = read_trim("/sys/fs/cgroup/cgroup.controllers");
    // With it, whether memory is limited for the whole sandbox.
    let (cgroups, aggregate_memory) = match (v2_path, controllers) {
        (Some(p), Some(c)) if !c.is_empty() => {
            let own =
                read_trim(&format!("/sys/fs/cgroup{p}/cgroup.controllers")).unwrap_or_default();
            if own.contains("memory") && own.contains("pids") {
                (
                    check(
                        "cgroup_delegation",
                        "cgroup v2 delegation",
                        "ok",
                        format!("controllers delegated here: {own}"),
                        "",
                        "",
                    ),
                    true,
                )
            } else {
                (check("cgroup_delegation", "cgroup v2 delegation", "degraded",
                    format!("cgroup v2 at {p}, delegated controllers: `{own}`"),
                    "memory and process-count limits are not enforced; only the private tmpfs folders are size-capped",
                    "run paddock from a systemd user session (`systemd-run --user --scope -p Delegate=yes paddock ...`)"), false)
            }
        }
        _ => {
            // The fallbacks paddock uses instead (see limits.rs).
            let probe = Path::new("/sys/fs/cgroup/pids")
                .join(format!("paddock-doctor-{}", std::process::id()));
            let v1 = std::fs::create_dir(&probe).is_ok();
            let _ = std::fs::remove_dir(&probe);
            let detail = if v1 {
                "no cgroup v2 controllers (hybrid layout); cgroup v1 pids and memory groups are writable here and are used: \
                 pids and memory limits hold for the whole sandbox"
            } else {
                "no cgroup v2 controllers (hybrid or v1 layout) and no writable v1 groups: the pids limit is RLIMIT_NPROC \
                 (counted in the sandbox's user namespace) and memory is capped per process (RLIMIT_AS)"
            };
            (check("cgroup_delegation", "cgroup v2 delegation", "missing", detail.into(),
                "limits fall back as described; the private tmpfs folders are size-capped in every case",
                "boot with `systemd.unified_cgroup_hierarchy=1` and run paddock in a delegated systemd user scope"), v1)
        }
    };
    out.push(cgroups);

    // What `process.limits.memory_mib` limits here (see limits.rs).
    out.push(memory_limit_check(aggregate_memory));

    // TUN: the transparent path (a device in the sandbox, served by
    // paddock's network stack) needs to open it as this user.
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun");
    out.push(match tun {
        Ok(_) => check("tun", "TUN device", "ok",
            "/dev/net/tun opens: programs that ignore the proxy variables are judged too".into(), "", ""),
        Err(e) if Path::new("/dev/net/tun").exists() => check("tun", "TUN device", "missing",
            format!("/dev/net/tun does not open for this user ({e})"),
            "no transparent path: programs that ignore the proxy variables (Go binaries, ssh, database clients) have no network; the proxy variables still work",
            "give the device its usual mode: `sudo chmod 0666 /dev/net/tun` (a udev rule does this on most systems)"),
        Err(_) => check("tun", "TUN device", "missing", "/dev/net/tun absent".into(),
            "no transparent path: programs that ignore the proxy variables (Go binaries, ssh, database clients) have no network; the proxy variables still work",
            "`sudo modprobe tun`"),
    });
    out
}

/// The memory limit's reach: one limit for the whole sandbox (`aggregate`:
/// a memory cgroup can be made), or one per process.
fn memory_limit_check(aggregate: bool) -> Check {
    let user_manager = std::env::var_os("XDG_RUNTIME_DIR")
        .map(|d| Path::new(&d).join("systemd/private"))
        .is_some_and(|p| p.exists());
    if aggregate {
        return check(
            "memory_limit",
            "memory limit",
            "ok",
            "process.limits.memory_mib holds for the whole sandbox (a memory cgroup)".into(),
            "",
            "",
        );
    }
    check("memory_limit", "memory limit", "degraded",
        format!("per process: each process may use process.limits.memory_mib of address space (RLIMIT_AS); \
                 no memory cgroup can be made here{}",
            if user_manager { " (a systemd user manager runs: see the fix)" } else { " and no systemd user manager runs" }),
        "several processes together can use more than the limit; the scratch folders (/tmp, home, /dev/shm) share one cap",
        "run paddock in a delegated systemd user scope: `systemd-run --user --scope -p Delegate=yes paddock ...`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(restrict: Option<&'a str>, ok: bool, bin: &'a Path) -> AppArmorFacts<'a> {
        AppArmorFacts {
            restrict,
            userns_ok: ok,
            profile: None,
            shipped: None,
            binary: bin,
        }
    }

    #[test]
    fn apparmor_restriction_is_judged_and_the_fix_names_this_binary() {
        let bin = Path::new("/opt/x/bin/paddock");
        // No such sysctl, or switched off: nothing to do.
        assert_eq!(apparmor_userns(&facts(None, true, bin)).status, "ok");
        assert_eq!(
            apparmor_userns(&facts(Some("0\n"), false, bin)).status,
            "ok"
        );
        // Restricted but working (root, or a profile): ok, and says so.
        let c = apparmor_userns(&facts(Some("1"), true, bin));
        assert_eq!(c.status, "ok");
        assert!(c.detail.contains("= 1"), "{c:?}");
        // Restricted and failing, nothing installed: generate + load.
        let c = apparmor_userns(&facts(Some("1"), false, bin));
        assert_eq!(c.status, "missing");
        assert!(
            c.fix
                .contains("paddock generate apparmor | sudo tee /etc/apparmor.d/paddock"),
            "{c:?}"
        );
        assert!(
            c.fix
                .contains("sudo apparmor_parser -r /etc/apparmor.d/paddock"),
            "{c:?}"
        );
        assert!(
            c.fix.contains("apparmor_restrict_unprivileged_userns=0"),
            "{c:?}"
        );
        // A shipped profile: install that one.
        let mut f = facts(Some("1"), false, bin);
        f.shipped = Some("/opt/x/share/paddock/apparmor/paddock".into());
        let c = apparmor_userns(&f);
        assert!(c.fix.contains("sudo install -m 0644 /opt/x/share/paddock/apparmor/paddock /etc/apparmor.d/paddock"), "{c:?}");
        // Installed but not in force: load it.
        f.profile = Some("/etc/apparmor.d/paddock".into());
        let c = apparmor_userns(&f);
        assert!(c.detail.contains("not in force"), "{c:?}");
        assert!(
            c.fix
                .starts_with("load it: `sudo apparmor_parser -r /etc/apparmor.d/paddock`"),
            "{c:?}"
        );
    }

    #[test]
    fn an_installed_profile_is_found_only_when_it_names_the_binary_and_allows_userns() {
        let d = std::env::temp_dir().join(format!("paddock-aa-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let bin = Path::new("/usr/local/bin/paddock");
        std::fs::write(
            d.join("other"),
            "profile other /usr/bin/other flags=(unconfined) {\n  userns,\n}\n",
        )
        .unwrap();
        assert_eq!(installed_profile(&d, bin), None);
        std::fs::write(
            d.join("nouserns"),
            "profile paddock \"/usr/local/bin/paddock\" {\n}\n",
        )
        .unwrap();
        assert_eq!(installed_profile(&d, bin), None);
        std::fs::write(d.join("paddock"), "abi <abi/4.0>,\nprofile paddock \"/usr/local/bin/paddock\" flags=(unconfined) {\n  userns,\n}\n").unwrap();
        assert_eq!(installed_profile(&d, bin), Some(d.join("paddock")));
        std::fs::remove_dir_all(&d).unwrap();
    }
}

//! The setup sequence, top to bottom: everything between the clone and the
//! command's `execve`, in the order the security argument depends on.
//!
//! Each step is one call on [`Sys`], so that the order is unit-tested
//! without privilege (the tests at the end run the sequence against a
//! recording fake, and break steps on purpose). Each restriction is checked
//! after it is applied, as bubblewrap does: a restriction the kernel
//! accepted but did not put in force stops the start.
//!
//! **pid 1, in the new namespaces** ([`start_pid1`]):
//!
//! 1. The hostname and loopback are the sandbox's own (UTS and network
//!    namespaces); the proxy listener is made here and handed out.
//! 2. The filesystem ([`build_root`]):
//!    1. Make every inherited mount a slave, so nothing we mount or unmount
//!       propagates back to the host.
//!    2. Open every host object we will show (system folders, devices, the
//!       user's mounts, protected paths) *now*, with `openat2` refusing
//!       every symbolic link, and clone each into a detached mount with its
//!       final attributes (read-only, nosuid, nodev) already set. Doing this
//!       before anything is covered means even sources under `/tmp` are
//!       reachable, and the fd pins the checked object: there is no window
//!       between check and mount (no TOCTOU).
//!    3. Mount a fresh tmpfs as the future root and build the skeleton in
//!       it. Only paths inside this tmpfs are ever created; a mount target
//!       inside a host folder must already exist (checked on the host side
//!       too).
//!    4. Attach the detached trees, parents first, each target opened with
//!       `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH` so a link planted in a
//!       mounted folder cannot redirect a mount.
//!    5. Cover protected paths (`.git`, `.paddock`, ...) with read-only
//!       clones of themselves, and host secrets under `/etc` with empty
//!       read-only files.
//!    6. `pivot_root` into the new root and lazily detach the old one: from
//!       here on, no path leads to the host's tree.
//!    7. Make the root itself read-only.
//! 3. pid 1 takes on its own Landlock scope (it connects sockets for the
//!    commands) and becomes non-dumpable before any command exists.
//!
//! **pid 1 at level `no-userns`** ([`start_pid1_on_host`]): no namespace,
//! so no filesystem to build; pid 1 becomes the commands' subreaper and
//! makes the private home and /tmp, which Landlock then fences.
//!
//! **Each command, after the fork** ([`confine`]): signals reset, inherited
//! fds closed, no_new_privs, Landlock, all capabilities dropped, resource
//! limits, seccomp last; then `execve`.
//!
//! **A session's exec template** ([`confine_template`]) takes the steps
//! that do not depend on the command once (signals, no_new_privs,
//! capabilities, limits, the filters without a listener); each command it
//! forks takes the rest ([`confine_from_template`]: fds, its own Landlock
//! domain, its own observing filter, the checks). The same step functions
//! run in both; a command ends up with the same restrictions either way.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use landlock::RulesetCreated;
use paddock_sys::{attr, mflags, resolve, rlimit};

use crate::calls::{Kind, Sys};
use crate::landlock_rules::LandlockReport;
use crate::prepare::Prepared;
use crate::seccomp;
use crate::spec::{Level, MountMode, MountSpec, HIDDEN_SYSTEM_PATHS, SYSTEM_DIRS};

/// A failed step: which one, and why. The one error type of the sequence.
#[derive(Debug)]
pub(crate) struct StepError {
    pub step: &'static str,
    pub detail: String,
}

impl StepError {
    pub(crate) fn new(step: &'static str, detail: impl Into<String>) -> StepError {
        StepError {
            step,
            detail: detail.into(),
        }
    }
}

/// Name a failed call's step, with the path it concerned.
fn step<T>(name: &'static str, what: &Path, r: io::Result<T>) -> Result<T, StepError> {
    paddock_sys::mark(name);
    r.map_err(|e| StepError::new(name, format!("{}: {e}", what.display())))
}

/// Name a failed call's step.
pub(crate) fn at<T, E: std::fmt::Display>(
    name: &'static str,
    r: Result<T, E>,
) -> Result<T, StepError> {
    paddock_sys::mark(name);
    r.map_err(|e| StepError::new(name, e.to_string()))
}

/// A check after a restriction: `ok`, or the start stops at `name`.
fn check(name: &'static str, ok: bool, what: impl FnOnce() -> String) -> Result<(), StepError> {
    if ok {
        Ok(())
    } else {
        Err(StepError::new(name, what()))
    }
}

/// Device nodes bound from the host. Everything else in /dev is absent.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Parts of /proc that configure the host kernel rather than describe our
/// processes; shown read-only.
const PROC_READ_ONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];

/// The only part of /sys shown: CPU topology, which runtimes read to size
/// thread pools.
const SYS_CPU: &str = "/sys/devices/system/cpu";

/// Where the new root is built before `pivot_root`.
const STAGING: &str = "/tmp";

const RO: u64 = attr::RDONLY | attr::NOSUID | attr::NODEV;
const RW: u64 = attr::NOSUID | attr::NODEV;

/// Open a host path as an `O_PATH` fd, refusing every symbolic link.
fn open_nofollow<S: Sys>(s: &S, path: &Path) -> io::Result<OwnedFd> {
    s.open_path(None, path, 0, resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS)
}

/// Open `rel` beneath `root`, refusing symbolic links and `..` escapes.
fn open_beneath<S: Sys>(s: &S, root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    s.open_path(
        Some(root),
        rel,
        0,
        resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS | resolve::BENEATH,
    )
}

/// A detached clone of the mount tree at `fd`, with `attrs` set throughout.
fn detached_clone<S: Sys>(
    s: &S,
    fd: BorrowedFd<'_>,
    recursive: bool,
    attrs: u64,
) -> io::Result<OwnedFd> {
    let tree = s.open_tree_clone(fd, recursive)?;
    if attrs != 0 {
        s.mount_setattr(tree.as_fd(), recursive, attrs, 0)?;
    }
    Ok(tree)
}

fn rel(p: &Path) -> &Path {
    p.strip_prefix("/").unwrap_or(p)
}

/// Make sure `rel` exists beneath `root` as a directory (or an empty file),
/// creating missing components only when `may_create` (i.e. inside our own
/// tmpfs), and return an `O_PATH` fd to it.
///
/// The walk holds each folder open and looks up one name beneath it, so a
/// missing path costs one lookup, one create and one open per component
/// rather than a walk from the root for each.
fn ensure<S: Sys>(
    s: &S,
    root: BorrowedFd<'_>,
    rel: &Path,
    dir: bool,
    may_create: bool,
) -> io::Result<OwnedFd> {
    match open_beneath(s, root, rel) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound && may_create => {}
        Err(e) => return Err(e),
    }
    let n = rel.components().count();
    let mut cur: Option<OwnedFd> = None;
    for (i, comp) in rel.components().enumerate() {
        let at = cur.as_ref().map_or(root, |f| f.as_fd());
        let name = Path::new(comp.as_os_str());
        let next = match open_beneath(s, at, name) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_in(s, at, name, i + 1 < n || dir)?
            }
            Err(e) => return Err(e),
        };
        cur = Some(next);
    }
    cur.ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Make `name` in `dir` (a folder of a tmpfs this sandbox just mounted, so
/// nothing is there yet): a folder, or an empty file to mount a file on.
/// An `O_PATH` fd to it.
fn make_in<S: Sys>(s: &S, dir: BorrowedFd<'_>, name: &Path, folder: bool) -> io::Result<OwnedFd> {
    if folder {
        s.mkdirat(dir, name, 0o755)?;
    } else {
        s.openat(
            dir,
            name,
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
            0o644,
        )?;
    }
    open_beneath(s, dir, name)
}

fn tmpfs<S: Sys>(s: &S, target: &Path, flags: u64, opts: &str) -> io::Result<()> {
    s.mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(opts))
}

/// Is `target` strictly inside a host folder that is already attached?
fn inside_host_mount(attached: &[PathBuf], target: &Path) -> bool {
    attached
        .iter()
        .any(|a| target.starts_with(a) && target != a)
}

/// What pid 1 holds once its own setup is done. Only [`start_pid1`] and
/// [`start_pid1_on_host`] make one, and they make it after pid 1 is
/// non-dumpable, so a command (forked with the ruleset this holds) never
/// exists while pid 1 can be inspected.
pub(crate) struct Pid1 {
    /// The commands' Landlock ruleset (None: level landlock-unavailable).
    pub ruleset: Option<RulesetCreated>,
    /// Level no-userns: the request as the host sees it (see [`host_view`]).
    pub host_view: Option<Prepared>,
    /// What `filesystem.deny` covered, to be checked before each exec.
    pub covers: Vec<Covered>,
}

/// pid 1 in the new namespaces: everything before the first command.
pub(crate) fn start_pid1<S: Sys>(
    s: &S,
    p: &Prepared,
    channel: &UnixStream,
) -> Result<Pid1, StepError> {
    // Named for `ps` and EDR agents: the sandbox's init, not paddock.
    s.set_process_name("paddock-init");
    // The hostname is the sandbox's own (UTS namespace): the host's name
    // does not leak into logs and prompts.
    at("sethostname", s.sethostname(&p.hostname))?;
    // A new network namespace has only `lo`, and it is down.
    at("loopback-up", s.loopback_up())?;
    // The way out: a listening socket on the sandbox's own loopback, whose
    // accepting end is paddock's proxy outside. The socket stays in this
    // network namespace (it was made here); only its fd travels.
    if let Some(port) = p.proxy_port {
        hand_out_proxy(s, port, channel)?;
    }
    // The transparent path: a TUN device as the default route, so that a
    // program ignoring the proxy variables meets the same judge (its far
    // end is paddock's user-space network stack). Made here for the same
    // reason as the listener; its fd travels second.
    if p.transparent {
        let tun = at("tun-up", s.tun_up())?;
        at("tun-handoff", s.send_fd(channel.as_fd(), tun.as_fd()))?;
    }
    // The filesystem: from here on no path leads to the host's tree.
    let covers = build_root(s, p)?;
    Ok(Pid1 {
        ruleset: finish_pid1(s, p)?,
        host_view: None,
        covers,
    })
}

/// pid 1 at level no-userns: no namespace, so no filesystem to build;
/// Landlock is the whole fence, on host paths.
pub(crate) fn start_pid1_on_host<S: Sys>(
    s: &S,
    p: &Prepared,
    channel: &UnixStream,
) -> Result<Pid1, StepError> {
    s.set_process_name("paddock-init");
    // Orphans of the command come to us, not to the host's init, so that
    // we can end them all when the command ends (no pid namespace does).
    at("child-subreaper", s.set_child_subreaper())?;
    // The proxy listener is on the host's loopback, on a port the kernel
    // picks; Landlock lets the command reach only it.
    let port = match p.proxy_port {
        Some(_) => Some(hand_out_proxy(s, 0, channel)?),
        None => None,
    };
    let view = host_view(p, port);
    // The private home and /tmp, owner-only, before Landlock names them.
    for d in view.scratch.iter().flat_map(|(h, t)| [h, t]) {
        step("scratch-dirs", d, s.make_private_dirs(d))?;
    }
    if let Some((home, _)) = view.scratch.as_ref().filter(|_| !p.home_files.is_empty()) {
        let fd = step(
            "open-home",
            home,
            s.open_path(None, home, libc::O_DIRECTORY, resolve::NO_SYMLINKS),
        )?;
        write_home_files(s, fd.as_fd(), &p.home_files)?;
    }
    Ok(Pid1 {
        ruleset: finish_pid1(s, &view)?,
        host_view: Some(view),
        covers: Vec::new(),
    })
}

/// Listen on the sandbox's loopback and hand the socket to paddock.
fn hand_out_proxy<S: Sys>(s: &S, port: u16, channel: &UnixStream) -> Result<u16, StepError> {
    let (listener, got) = at("proxy-listen", s.listen_loopback(port))?;
    at(
        "proxy-handoff",
        s.send_fd(channel.as_fd(), listener.as_fd()),
    )?;
    Ok(got)
}

/// The end of pid 1's setup, at every level; the commands' ruleset.
fn finish_pid1<S: Sys>(s: &S, p: &Prepared) -> Result<Option<RulesetCreated>, StepError> {
    step("chdir-workdir", &p.workdir, s.chdir(&p.workdir))?;
    // Made now, inside the new root: the rules name the sandbox's paths.
    let ruleset = at("landlock-ruleset", s.landlock_ruleset(p))?;
    if p.audit_filter.is_some() {
        // pid 1 connects unix sockets for the commands (observe.rs), so it
        // takes on their Landlock scope first: an abstract socket of the
        // host stays out of its reach too. The commands' domains nest
        // inside it.
        at("landlock-scope-init", s.landlock_scope_init(p))?;
        // Where a surrounding profile refuses pidfd_getfd, commands get no
        // unix sockets instead (see confine).
        s.probe_socket_taking(p);
    }
    // Non-dumpable: a command (same uid) cannot open /proc/1/mem or
    // ptrace pid 1 to take over the process that answers its connects.
    at("set-non-dumpable", s.set_non_dumpable())?;
    check(
        "check-non-dumpable",
        matches!(s.is_dumpable(), Ok(false)),
        || "pid 1 is still dumpable after PR_SET_DUMPABLE 0".into(),
    )?;
    Ok(ruleset)
}

/// Level no-userns: the request as the host sees it. HOME and TMPDIR point
/// at the scratch folder (nothing can be mounted over the real ones), and
/// the proxy variables name the port the kernel picked.
fn host_view(p: &Prepared, proxy_port: Option<u16>) -> Prepared {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let mut v = p.clone();
    let old = p.proxy_port.map(|port| format!("127.0.0.1:{port}"));
    let new = proxy_port.map(|port| format!("127.0.0.1:{port}"));
    let mut env: Vec<CString> = Vec::with_capacity(p.env.len() + 2);
    for kv in &p.env {
        let b = kv.to_bytes();
        if b.starts_with(b"HOME=") || b.starts_with(b"TMPDIR=") {
            continue;
        }
        let text = String::from_utf8_lossy(b);
        match (&old, &new) {
            (Some(o), Some(n)) if text.contains(o.as_str()) => {
                env.extend(CString::new(text.replace(o.as_str(), n)).ok());
            }
            _ => env.push(kv.clone()),
        }
    }
    if let Some((home, tmp)) = &p.scratch {
        for (k, d) in [("HOME", home), ("TMPDIR", tmp)] {
            let mut kv = format!("{k}=").into_bytes();
            kv.extend_from_slice(d.as_os_str().as_bytes());
            env.extend(CString::new(kv).ok());
        }
        v.home = home.clone();
    }
    v.env = env;
    v.proxy_port = proxy_port;
    v
}

/// Shed every privilege, in order, in a forked command process: what runs
/// after this is untrusted. Each restriction is checked once applied.
/// `listener_to` is where the observing filter's listener goes (pid 1).
pub(crate) fn confine<S: Sys>(
    s: &S,
    p: &Prepared,
    ruleset: Option<RulesetCreated>,
    listener_to: Option<OwnedFd>,
) -> Result<LandlockReport, StepError> {
    // A fresh program expects default signal handling and an empty mask.
    at("reset-signals", s.reset_signals())?;
    // Nothing paddock inherited (beyond stdin/out/err) crosses execve: an
    // fd to a host folder would be a way out.
    at("close-fds", s.close_fds_from(3))?;
    die_with_pid1(s, p)?;
    no_new_privs(s)?;
    let landlock = landlock(s, p, ruleset)?;
    capabilities_and_limits(s, p)?;
    // Seccomp is the last thing before execve: the filters deny calls the
    // steps above still needed.
    let before = at("seccomp-state", s.seccomp_filters())?;
    let installed = base_filters(s, p)? + observing_filter(s, p, listener_to)?;
    filters_in_force(s, before, installed)?;
    user_namespaces_refused(s)?;
    Ok(landlock)
}

/// A session's exec template (init.rs): forked once from pid 1, it sheds
/// what every command sheds and does not depend on the command (signals,
/// no_new_privs, capabilities, resource limits, the filters without a
/// listener), then forks each command, which finishes with
/// [`confine_from_template`]. Returns the filter count the commands start
/// from.
pub(crate) fn confine_template<S: Sys>(s: &S, p: &Prepared) -> Result<Option<u64>, StepError> {
    at("reset-signals", s.reset_signals())?;
    die_with_pid1(s, p)?;
    no_new_privs(s)?;
    capabilities_and_limits(s, p)?;
    let before = at("seccomp-state", s.seccomp_filters())?;
    let installed = base_filters(s, p)?;
    filters_in_force(s, before, installed)
}

/// The rest of [`confine`] in a command forked from the template: its own
/// Landlock domain (each command's is separate, as when pid 1 forks it, so
/// commands of different execs cannot signal each other or the template),
/// its own observing filter and listener (its records are its exec's), and
/// the checks. `filters` is what [`confine_template`] returned.
pub(crate) fn confine_from_template<S: Sys>(
    s: &S,
    p: &Prepared,
    ruleset: Option<RulesetCreated>,
    listener_to: Option<OwnedFd>,
    filters: Option<u64>,
) -> Result<LandlockReport, StepError> {
    at("close-fds", s.close_fds_from(3))?;
    // The parent-death signal is not inherited across fork; the command's
    // parent is pid 1 (the template forks it as pid 1's child).
    die_with_pid1(s, p)?;
    let landlock = landlock(s, p, ruleset)?;
    let installed = observing_filter(s, p, listener_to)?;
    filters_in_force(s, filters, installed)?;
    user_namespaces_refused(s)?;
    Ok(landlock)
}

/// With no pid namespace (no-userns), the command dies with pid 1 rather
/// than outliving it.
fn die_with_pid1<S: Sys>(s: &S, p: &Prepared) -> Result<(), StepError> {
    if !p.level.namespaces() {
        at(
            "parent-death-signal",
            s.set_parent_death_signal(libc::SIGKILL),
        )?;
    }
    Ok(())
}

/// no_new_privs: setuid binaries and file capabilities grant nothing from
/// here on; required for Landlock and seccomp without privilege.
fn no_new_privs<S: Sys>(s: &S) -> Result<(), StepError> {
    at("no-new-privs", s.set_no_new_privs())?;
    check(
        "check-no-new-privs",
        matches!(s.no_new_privs(), Ok(true)),
        || "no_new_privs is not set after PR_SET_NO_NEW_PRIVS".into(),
    )
}

/// Landlock: the filesystem (and at no-userns TCP) beyond the mounts.
fn landlock<S: Sys>(
    s: &S,
    p: &Prepared,
    ruleset: Option<RulesetCreated>,
) -> Result<LandlockReport, StepError> {
    let landlock = at("landlock-restrict", s.landlock_restrict(ruleset))?;
    check(
        "check-landlock",
        p.level == Level::LandlockUnavailable || landlock.enforced != "none",
        || {
            format!(
                "Landlock enforced nothing (ABI {}) at a level that relies on it",
                landlock.abi
            )
        },
    )?;
    Ok(landlock)
}

/// All capabilities go, bounding set included, and securebits are locked
/// so that even uid 0 regains none on execve. Then the resource limits.
fn capabilities_and_limits<S: Sys>(s: &S, p: &Prepared) -> Result<(), StepError> {
    at("drop-capabilities", s.drop_all_capabilities())?;
    check(
        "check-capabilities",
        matches!(s.holds_capabilities(), Ok(false)),
        || "a capability is still held after dropping them all".into(),
    )?;
    // RLIMIT_NPROC counts this user's processes *in the sandbox's user
    // namespace*, so a fork bomb hits it without touching the host's own
    // processes; it binds even uid 0, which holds no capability here.
    if let Some(n) = p.pids_limit {
        at("rlimit-nproc", s.set_rlimit(rlimit::NPROC, n))?;
    }
    if let Some(m) = p.memory_limit_mib {
        at(
            "rlimit-as",
            s.set_rlimit(rlimit::AS, m.saturating_mul(1 << 20)),
        )?;
    }
    Ok(())
}

/// The filters without a listener; how many.
fn base_filters<S: Sys>(s: &S, p: &Prepared) -> Result<u64, StepError> {
    let mut installed = p.seccomp.len() as u64;
    at("seccomp", s.seccomp_install("sandbox", &p.seccomp))?;
    // pid 1 cannot take sockets here: no unix sockets, rather than unix
    // connects nobody judges.
    if p.audit_filter.is_some() && p.level.namespaces() && !crate::observe::unix_sockets_judged(p) {
        at(
            "seccomp",
            s.seccomp_install("unobserved", &[seccomp::unobserved()]),
        )?;
        installed += 1;
    }
    Ok(installed)
}

/// Last, the observing filter (which also holds the deny list when
/// auditing, see seccomp.rs); its listener goes to pid 1 and is closed
/// here, so the command never holds it. How many filters it took.
fn observing_filter<S: Sys>(
    s: &S,
    p: &Prepared,
    listener_to: Option<OwnedFd>,
) -> Result<u64, StepError> {
    let (Some(prog), Some(to)) = (&p.audit_filter, listener_to) else {
        return Ok(0);
    };
    match s.seccomp_install_with_listener(prog) {
        Ok(listener) => {
            at(
                "seccomp-audit-handoff",
                s.send_fd(to.as_fd(), listener.as_fd()),
            )?;
            Ok(1)
        }
        // No listener here (a kernel before 5.9, or one already in this
        // filter chain): the deny list, unobserved, and no unix sockets
        // (nothing would judge their connects), rather than no command at
        // all. `paddock doctor` reports it.
        Err(_) => {
            at(
                "seccomp",
                s.seccomp_install(
                    "deny-list-unobserved",
                    &[seccomp::deny_list(), seccomp::unobserved()],
                ),
            )?;
            Ok(2)
        }
    }
}

/// The kernel counts `installed` more filters than `before`; the count.
fn filters_in_force<S: Sys>(
    s: &S,
    before: Option<u64>,
    installed: u64,
) -> Result<Option<u64>, StepError> {
    let after = at("seccomp-state", s.seccomp_filters())?;
    check(
        "check-seccomp",
        match (before, after) {
            (Some(b), Some(a)) => a == b + installed,
            // A kernel that does not count filters: filter mode at least.
            (_, a) => a.is_none() && s.seccomp_filter_mode(),
        },
        || {
            format!("{installed} seccomp filters installed, but the kernel reports {before:?} before and {after:?} after")
        },
    )?;
    Ok(after)
}

/// The deny list in force: creating a user namespace (the entry point of
/// most unprivileged kernel exploits) is refused by the filter. The
/// probe's flags can never create one (seccomp.rs).
fn user_namespaces_refused<S: Sys>(s: &S) -> Result<(), StepError> {
    let errno = s.userns_probe();
    check("check-user-namespace", errno == libc::EPERM, || {
        format!(
            "unshare(CLONE_NEWUSER) was not refused by the filter (errno {errno}, expected EPERM)"
        )
    })
}

/// Build the sandbox's filesystem and enter it. On return, `/` is the new
/// root and the host's tree is unreachable.
pub(crate) fn build_root<S: Sys>(s: &S, p: &Prepared) -> Result<Vec<Covered>, StepError> {
    let staging = Path::new(STAGING);

    // 1. No propagation back to the host.
    step(
        "make-mounts-slave",
        Path::new("/"),
        s.mount(
            None,
            Path::new("/"),
            None,
            mflags::REC | mflags::SLAVE,
            None,
        ),
    )?;

    // 2. Open and clone every host object now, refusing symlinks.
    let mut system: Vec<(&str, OwnedFd)> = Vec::new();
    let mut links: Vec<(&str, PathBuf)> = Vec::new();
    for name in SYSTEM_DIRS {
        let host = Path::new("/").join(name);
        match s.kind(&host) {
            Kind::Link => {
                let t = step("read-system-link", &host, s.read_link(&host))?;
                links.push((name, t));
            }
            Kind::Dir => {
                let fd = step("open-system-dir", &host, open_nofollow(s, &host))?;
                let tree = step(
                    "clone-system-dir",
                    &host,
                    detached_clone(s, fd.as_fd(), true, RO),
                )?;
                system.push((name, tree));
            }
            _ => {}
        }
    }
    let mut devices: Vec<(&str, OwnedFd)> = Vec::new();
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if let Ok(fd) = open_nofollow(s, &host) {
            let tree = step(
                "clone-device",
                &host,
                detached_clone(s, fd.as_fd(), false, attr::NOSUID | attr::NOEXEC),
            )?;
            devices.push((name, tree));
        }
    }
    let sys_cpu = match open_nofollow(s, Path::new(SYS_CPU)) {
        Ok(fd) => Some(step(
            "clone-sys-cpu",
            Path::new(SYS_CPU),
            detached_clone(s, fd.as_fd(), true, RO | attr::NOEXEC),
        )?),
        Err(_) => None,
    };
    // User mounts: a detached clone, or for `cow` the lower folder's fd.
    let mut user: Vec<(OwnedFd, bool)> = Vec::with_capacity(p.mounts.len());
    for m in &p.mounts {
        let fd = step("open-mount-source", &m.source, open_nofollow(s, &m.source))?;
        // Stated through the fd: the object checked is the one mounted.
        let is_dir = s.is_dir(fd.as_fd()).unwrap_or(true);
        let item = match m.mode {
            MountMode::Cow => fd,
            MountMode::Ro => step(
                "clone-mount",
                &m.source,
                detached_clone(s, fd.as_fd(), true, RO),
            )?,
            MountMode::Rw | MountMode::RwNoDelete => step(
                "clone-mount",
                &m.source,
                detached_clone(s, fd.as_fd(), true, RW),
            )?,
        };
        user.push((item, is_dir));
    }
    // Persistent cow layers are opened now too: their host folder may lie
    // under /tmp, which the staging tmpfs is about to cover.
    let mut layers: Vec<Option<(OwnedFd, OwnedFd)>> = Vec::with_capacity(p.mounts.len());
    for m in &p.mounts {
        let l = match (&p.cow_dir, m.mode) {
            (Some(dir), MountMode::Cow) => {
                let base = dir.join(crate::spec::cow_key(&m.target));
                let up = step(
                    "open-cow-layer",
                    &base,
                    open_nofollow(s, &base.join("upper")),
                )?;
                let work = step(
                    "open-cow-layer",
                    &base,
                    open_nofollow(s, &base.join("work")),
                )?;
                Some((up, work))
            }
            _ => None,
        };
        layers.push(l);
    }
    let mut protected: Vec<OwnedFd> = Vec::with_capacity(p.protected.len());
    for pr in &p.protected {
        let fd = step("open-protected", &pr.source, open_nofollow(s, &pr.source))?;
        protected.push(step(
            "clone-protected",
            &pr.source,
            detached_clone(s, fd.as_fd(), true, RO),
        )?);
    }

    // 3. The new root: a tmpfs over the staging folder (our own mount
    // namespace: the host's /tmp is untouched and reappears after pivot).
    step(
        "mount-root-tmpfs",
        staging,
        tmpfs(
            s,
            staging,
            mflags::NOSUID | mflags::NODEV,
            "mode=0755,size=16m",
        ),
    )?;
    let root = step("open-root", staging, open_nofollow(s, staging))?;
    let rootfd = root.as_fd();

    for (name, tree) in &system {
        let t = step(
            "mkdir-system",
            Path::new(name),
            make_in(s, rootfd, Path::new(name), true),
        )?;
        step(
            "attach-system-dir",
            Path::new(name),
            s.move_mount(tree.as_fd(), t.as_fd()),
        )?;
    }
    for (name, target) in &links {
        step(
            "link-system-dir",
            Path::new(name),
            s.symlinkat(target, rootfd, Path::new(name)),
        )?;
    }

    // /dev: a small tmpfs with only harmless nodes, a private devpts (no
    // access to the host's other terminals) and a private /dev/shm.
    let dev = staging.join("dev");
    step(
        "mkdir-dev",
        &dev,
        ensure(s, rootfd, Path::new("dev"), true, true),
    )?;
    step(
        "mount-dev",
        &dev,
        tmpfs(
            s,
            &dev,
            mflags::NOSUID | mflags::NOEXEC,
            "mode=0755,size=64k",
        ),
    )?;
    // The fresh /dev tmpfs, opened once: each node is made in it by name.
    let devfd = step("open-dev", &dev, open_beneath(s, rootfd, Path::new("dev")))?;
    for (name, tree) in &devices {
        let r = Path::new("dev").join(name);
        let t = step(
            "mknod-dev",
            &r,
            make_in(s, devfd.as_fd(), Path::new(name), false),
        )?;
        step("attach-device", &r, s.move_mount(tree.as_fd(), t.as_fd()))?;
    }
    let pts = dev.join("pts");
    step(
        "mkdir-devpts",
        &pts,
        make_in(s, devfd.as_fd(), Path::new("pts"), true),
    )?;
    step(
        "mount-devpts",
        &pts,
        s.mount(
            Some("devpts"),
            &pts,
            Some("devpts"),
            mflags::NOSUID | mflags::NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=620"),
        ),
    )?;
    step(
        "mkdir-shm",
        &dev.join("shm"),
        make_in(s, devfd.as_fd(), Path::new("shm"), true),
    )?;
    for (name, target) in [
        ("dev/ptmx", "pts/ptmx"),
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
    ] {
        step(
            "link-dev",
            Path::new(name),
            s.symlinkat(Path::new(target), rootfd, Path::new(name)),
        )?;
    }

    // /proc: a fresh instance for the new pid namespace, so only sandbox
    // processes are listed. It must be mounted while the host's /proc is
    // still visible (the kernel refuses a proc mount in a user namespace
    // otherwise). Host-kernel knobs inside it are made read-only.
    let proc_ = staging.join("proc");
    step(
        "mkdir-proc",
        &proc_,
        ensure(s, rootfd, Path::new("proc"), true, true),
    )?;
    step(
        "mount-proc",
        &proc_,
        s.mount(
            Some("proc"),
            &proc_,
            Some("proc"),
            mflags::NOSUID | mflags::NODEV | mflags::NOEXEC,
            None,
        ),
    )?;
    for sub in PROC_READ_ONLY {
        let r = Path::new("proc").join(sub);
        if let Ok(fd) = open_beneath(s, rootfd, &r) {
            let tree = step("clone-proc-ro", &r, detached_clone(s, fd.as_fd(), true, RO))?;
            step("attach-proc-ro", &r, s.move_mount(tree.as_fd(), fd.as_fd()))?;
        }
    }

    if let Some(tree) = &sys_cpu {
        let r = rel(Path::new(SYS_CPU));
        let t = step("mkdir-sys", r, ensure(s, rootfd, r, true, true))?;
        step("attach-sys-cpu", r, s.move_mount(tree.as_fd(), t.as_fd()))?;
    }

    // Private scratch space with one size cap for all of it: /tmp, the
    // home folder (empty: the user's real home is never shown, only what is
    // mounted) and /dev/shm are three folders of one tmpfs, so together
    // they hold at most `tmp_size_mib` of host memory. /run is apart, 1 MiB.
    let run = staging.join("run");
    step(
        "mkdir-scratch",
        &run,
        ensure(s, rootfd, Path::new("run"), true, true),
    )?;
    step(
        "mount-scratch",
        &run,
        tmpfs(s, &run, mflags::NOSUID | mflags::NODEV, "mode=0755,size=1m"),
    )?;
    let pool = staging.join(".scratch");
    step(
        "mkdir-scratch",
        &pool,
        ensure(s, rootfd, Path::new(".scratch"), true, true),
    )?;
    step(
        "mount-scratch",
        &pool,
        tmpfs(
            s,
            &pool,
            mflags::NOSUID | mflags::NODEV,
            &format!("mode=0755,size={}m", p.tmp_size_mib),
        ),
    )?;
    for (part, target, mode) in [
        ("tmp", PathBuf::from("tmp"), 0o1777),
        ("shm", PathBuf::from("dev/shm"), 0o1777),
        ("home", rel(&p.home).to_path_buf(), 0o700),
    ] {
        let dir = pool.join(part);
        step("mkdir-scratch", &dir, s.make_dir(&dir, mode))?;
        let src = step("open-scratch", &dir, open_nofollow(s, &dir))?;
        let tree = step(
            "clone-scratch",
            &dir,
            detached_clone(s, src.as_fd(), false, 0),
        )?;
        let t = step(
            "mkdir-scratch",
            &target,
            ensure(s, rootfd, &target, true, true),
        )?;
        step(
            "attach-scratch",
            &target,
            s.move_mount(tree.as_fd(), t.as_fd()),
        )?;
    }
    // The pool's own mount goes; its three folders stay, one tmpfs.
    step("detach-scratch", &pool, s.umount_detach(&pool))?;
    s.remove(&pool);
    step(
        "mkdir-var",
        Path::new("var"),
        ensure(s, rootfd, Path::new("var"), true, true),
    )?;
    // /var/tmp is /tmp inside, unless a mount lies under the host's
    // /var/tmp (a workspace there): then it is a real folder holding it.
    let under_var_tmp = p.mounts.iter().any(|m| m.target.starts_with("/var/tmp"));
    if under_var_tmp {
        step(
            "mkdir-var-tmp",
            Path::new("var/tmp"),
            ensure(s, rootfd, Path::new("var/tmp"), true, true),
        )?;
    } else {
        step(
            "link-var-tmp",
            Path::new("var/tmp"),
            s.symlinkat(Path::new("../tmp"), rootfd, Path::new("var/tmp")),
        )?;
    }

    // The transparent path's resolver is paddock's, at the TUN's far end.
    if p.transparent {
        resolver_conf(s, rootfd)?;
    }
    // Brokered logins: the tool finds its login file where it looks, with
    // placeholders in it, before any mount could take the path.
    if !p.home_files.is_empty() {
        let home = step("open-home", &p.home, open_beneath(s, rootfd, rel(&p.home)))?;
        write_home_files(s, home.as_fd(), &p.home_files)?;
    }

    // 4. The user's mounts, parents first.
    let mut attached: Vec<PathBuf> = Vec::new();
    for (i, (m, (item, is_dir))) in p.mounts.iter().zip(&user).enumerate() {
        let r = rel(&m.target);
        let may_create = !inside_host_mount(&attached, &m.target);
        let target = step(
            "mount-target",
            &m.target,
            ensure(s, rootfd, r, *is_dir, may_create),
        )?;
        if m.mode == MountMode::Cow {
            let persistent = layers[i].as_ref().map(|(u, w)| (u.as_fd(), w.as_fd()));
            let tree = overlay(s, i, item.as_fd(), p.tmp_size_mib, rootfd, persistent)?;
            step(
                "attach-cow",
                &m.target,
                s.move_mount(tree.as_fd(), target.as_fd()),
            )?;
        } else {
            step(
                "attach-mount",
                &m.target,
                s.move_mount(item.as_fd(), target.as_fd()),
            )?;
        }
        attached.push(m.target.clone());
    }

    // 5. Protected paths: read-only clones of themselves on top.
    for (pr, tree) in p.protected.iter().zip(&protected) {
        let t = step(
            "protect-target",
            &pr.target,
            open_beneath(s, rootfd, rel(&pr.target)),
        )?;
        step(
            "attach-protected",
            &pr.target,
            s.move_mount(tree.as_fd(), t.as_fd()),
        )?;
    }
    let covers = hide_secrets(s, rootfd, p)?;

    // 6. Enter the new root; detach the old one.
    step("chdir-root", staging, s.fchdir(rootfd))?;
    step("pivot-root", staging, s.pivot_root_here())?;
    step(
        "detach-old-root",
        Path::new("/"),
        s.umount_detach(Path::new(".")),
    )?;
    step("chdir", Path::new("/"), s.chdir(Path::new("/")))?;

    // 7. The root tmpfs holds only mount points and links: read-only.
    let newroot = step(
        "open-new-root",
        Path::new("/"),
        open_nofollow(s, Path::new("/")),
    )?;
    step(
        "root-read-only",
        Path::new("/"),
        s.mount_setattr(newroot.as_fd(), false, attr::RDONLY, 0),
    )?;
    Ok(covers)
}

/// Write the login files under `home` (an open folder): new folders 0700,
/// each file created exclusively, 0600, never through a link.
fn write_home_files<S: Sys>(
    s: &S,
    home: BorrowedFd<'_>,
    files: &[(PathBuf, String)],
) -> Result<(), StepError> {
    for (rel, text) in files {
        let mut dir = step(
            "open-home",
            rel,
            s.open_path(Some(home), Path::new("."), libc::O_DIRECTORY, 0),
        )?;
        for comp in rel.parent().into_iter().flat_map(Path::components) {
            let name = Path::new(comp.as_os_str());
            match s.mkdirat(dir.as_fd(), name, 0o700) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => step::<()>("mkdir-login-file", rel, Err(e))?,
            }
            dir = step(
                "mkdir-login-file",
                rel,
                s.open_path(
                    Some(dir.as_fd()),
                    name,
                    libc::O_DIRECTORY,
                    resolve::NO_SYMLINKS | resolve::BENEATH,
                ),
            )?;
        }
        let name = Path::new(rel.file_name().unwrap_or_default());
        step(
            "write-login-file",
            rel,
            s.write_new_file(dir.as_fd(), name, text.as_bytes(), 0o600),
        )?;
    }
    Ok(())
}

/// Cover the host's `/etc/NAME` (a regular file) with a read-only file
/// holding `text`: written into the sandbox's own /run, cloned over the
/// host's file (which is untouched), its source name removed again so
/// nothing in the sandbox can edit it.
fn cover_etc_file<S: Sys>(
    s: &S,
    rootfd: BorrowedFd<'_>,
    name: &str,
    text: &str,
) -> Result<(), StepError> {
    let file = format!("paddock-{name}");
    let made = Path::new("run").join(&file);
    let run = step("open-run", &made, open_beneath(s, rootfd, Path::new("run")))?;
    step(
        "write-etc-cover",
        &made,
        s.write_new_file(run.as_fd(), Path::new(&file), text.as_bytes(), 0o644),
    )?;
    let src = step("open-etc-cover", &made, open_beneath(s, rootfd, &made))?;
    let tree = step(
        "clone-etc-cover",
        &made,
        detached_clone(s, src.as_fd(), false, RO | attr::NOEXEC),
    )?;
    let target = Path::new("etc").join(name);
    let t = step("open-etc-cover", &target, open_beneath(s, rootfd, &target))?;
    step(
        "attach-etc-cover",
        &target,
        s.move_mount(tree.as_fd(), t.as_fd()),
    )?;
    s.remove(&Path::new(STAGING).join(&made));
    Ok(())
}

/// `/etc/resolv.conf` names the resolver paddock answers at the TUN's far
/// end. The file is written into the sandbox's own /run and cloned,
/// read-only, over the host's file, which is untouched; its source name is
/// removed again, so nothing in the sandbox can edit it. Where the host's
/// file is a link into /run (systemd-resolved's stub), the file is written
/// at the link's target in the sandbox's /run instead. No file on the host
/// (or a link elsewhere): nothing to cover, and names do not resolve, while
/// connections to addresses are still judged.
fn resolver_conf<S: Sys>(s: &S, rootfd: BorrowedFd<'_>) -> Result<(), StepError> {
    use paddock_types::transparent as t;
    let text = format!(
        "# paddock: names are answered by the sandbox's egress judge\nnameserver {}\n",
        t::RESOLVER_V4
    );
    // The host's own names (/etc/hosts) would answer before paddock's
    // resolver and send a program to an address, which the judge then
    // refuses as a literal: inside, only the loopback names remain, and
    // every other name is asked of paddock (whose judge resolves it on the
    // host, /etc/hosts included, as for the proxy).
    if s.kind(Path::new("/etc/hosts")) == Kind::Other {
        let hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n";
        cover_etc_file(s, rootfd, "hosts", hosts)?;
    }
    let host = Path::new("/etc/resolv.conf");
    match s.kind(host) {
        Kind::Other => cover_etc_file(s, rootfd, "resolv.conf", &text)?,
        Kind::Link => {
            let to = step("read-resolv-conf-link", host, s.read_link(host))?;
            let under_run = to
                .strip_prefix("/run")
                .or_else(|_| to.strip_prefix("../run"))
                .ok()
                .filter(|r| {
                    r.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
                        && r.file_name().is_some()
                });
            if let Some(r) = under_run {
                let file = Path::new("run").join(r);
                let parent = file.parent().unwrap_or(Path::new("run"));
                let dir = step(
                    "mkdir-resolv-conf",
                    parent,
                    ensure(s, rootfd, parent, true, true),
                )?;
                let name = Path::new(r.file_name().unwrap_or_default());
                step(
                    "write-resolv-conf",
                    &file,
                    s.write_new_file(dir.as_fd(), name, text.as_bytes(), 0o644),
                )?;
            }
        }
        Kind::Dir | Kind::Missing => {}
    }
    Ok(())
}

/// Tell the observer which device number files of this overlay's upper
/// layer show (overlayfs gives each layer its own): a socket the sandbox
/// binds in a cow mount is reported by the kernel under the overlay's
/// device and is recognised by it (observe.rs). Learnt by creating and
/// removing one file, which exists only in the upper layer. Best effort:
/// without it such sockets are refused, never wrongly allowed.
fn note_upper_dev<S: Sys>(s: &S, root: BorrowedFd<'_>) {
    // A name nobody can guess, without a system call (the hasher's keys
    // are random per process).
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    let name = PathBuf::from(format!(".paddock-layer-{:016x}", h.finish()));
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW;
    let Ok(f) = s.openat(root, &name, flags, 0o600) else {
        return;
    };
    let (Ok(top), Ok(file)) = (s.device(root), s.device(f.as_fd())) else {
        let _ = s.unlinkat(root, &name, false);
        return;
    };
    let _ = s.unlinkat(root, &name, false);
    crate::observe::note_cow_layer(top, file);
}

/// A copy-on-write view of `lower`: an overlay whose upper layer lives in a
/// private, size-capped tmpfs. Returns a detached clone of it.
fn overlay<S: Sys>(
    s: &S,
    i: usize,
    lower: BorrowedFd<'_>,
    size_mib: u64,
    rootfd: BorrowedFd<'_>,
    persistent: Option<(BorrowedFd<'_>, BorrowedFd<'_>)>,
) -> Result<OwnedFd, StepError> {
    use std::os::fd::AsRawFd;
    let layers = PathBuf::from(format!(".cow-layers-{i}"));
    let merged = PathBuf::from(format!(".cow-{i}"));
    let layers_at = Path::new(STAGING).join(&layers);
    let merged_at = Path::new(STAGING).join(&merged);
    step(
        "mkdir-cow",
        &merged_at,
        ensure(s, rootfd, &merged, true, true),
    )?;
    // The upper layer: the session's folder on the host (kept for review),
    // or a private size-capped tmpfs (discarded with the sandbox).
    let (upper, work) = match persistent {
        Some((u, w)) => (
            PathBuf::from(format!("/proc/self/fd/{}", u.as_raw_fd())),
            PathBuf::from(format!("/proc/self/fd/{}", w.as_raw_fd())),
        ),
        None => {
            step(
                "mkdir-cow",
                &layers_at,
                ensure(s, rootfd, &layers, true, true),
            )?;
            step(
                "mount-cow-upper",
                &layers_at,
                tmpfs(
                    s,
                    &layers_at,
                    mflags::NOSUID | mflags::NODEV,
                    &format!("mode=0755,size={size_mib}m"),
                ),
            )?;
            for d in ["upper", "work"] {
                step(
                    "mkdir-cow",
                    &layers_at.join(d),
                    ensure(s, rootfd, &layers.join(d), true, true),
                )?;
            }
            (layers_at.join("upper"), layers_at.join("work"))
        }
    };
    let opts = format!(
        "lowerdir=/proc/self/fd/{},upperdir={},workdir={},userxattr",
        lower.as_raw_fd(),
        upper.display(),
        work.display()
    );
    step(
        "mount-overlay",
        &merged_at,
        s.mount(
            Some("overlay"),
            &merged_at,
            Some("overlay"),
            mflags::NOSUID | mflags::NODEV,
            Some(&opts),
        ),
    )?;
    let fd = step("open-overlay", &merged_at, open_nofollow(s, &merged_at))?;
    note_upper_dev(s, fd.as_fd());
    let tree = step(
        "clone-overlay",
        &merged_at,
        detached_clone(s, fd.as_fd(), true, 0),
    )?;
    // The staging mounts go away; the overlay keeps its own references.
    step(
        "detach-cow-staging",
        &merged_at,
        s.umount_detach(&merged_at),
    )?;
    if persistent.is_none() {
        step(
            "detach-cow-staging",
            &layers_at,
            s.umount_detach(&layers_at),
        )?;
    }
    s.remove(&merged_at);
    s.remove(&layers_at);
    Ok(tree)
}

/// A path `filesystem.deny` names, as pid 1 left it: the identity (device,
/// inode) of the empty cover on it, or None where nothing was there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Covered {
    pub inside: PathBuf,
    pub was: Option<(u64, u64)>,
}

/// Cover host secrets under the read-only system tree, and what
/// `filesystem.deny` names, with empty read-only files and folders.
///
/// A cover is a mount on the path's dentry, so it moves with the dentry:
/// a command that renamed a folder above a denied file would carry the
/// file, covered, to a new name, where the next sandbox would not know to
/// cover it. So each folder between a writable mount's root and a denied
/// path is first mounted on itself (recursively, keeping what is mounted
/// below it): a mount point cannot be renamed or removed in its own mount
/// namespace (EBUSY), nor can the covered path itself.
fn hide_secrets<S: Sys>(
    s: &S,
    rootfd: BorrowedFd<'_>,
    p: &Prepared,
) -> Result<Vec<Covered>, StepError> {
    let denied = &p.model.hidden;
    let empty_file = Path::new(".hidden-file");
    let empty_dir = Path::new(".hidden-dir");
    let mut made = false;
    for anc in pinned_folders(denied.iter().map(|(_, i)| i.as_path()), &p.mounts) {
        let Ok(fd) = open_beneath(s, rootfd, rel(&anc)) else {
            continue; // not there: nor is what lies below it
        };
        let tree = step("clone-pinned", &anc, detached_clone(s, fd.as_fd(), true, 0))?;
        step("pin-folder", &anc, s.move_mount(tree.as_fd(), fd.as_fd()))?;
    }
    // Host secrets under the system tree (best effort: each may be absent),
    // then what `filesystem.deny` names (fail closed).
    let all = HIDDEN_SYSTEM_PATHS
        .iter()
        .map(|h| (PathBuf::from(h), false))
        .chain(denied.iter().map(|(_, i)| (i.clone(), true)));
    let mut covers = Vec::new();
    for (inside, by_policy) in all {
        let h = inside.as_path();
        let r = rel(h);
        let target = match open_beneath(s, rootfd, r) {
            Ok(t) => t,
            Err(e) if by_policy && !absent(&e) => {
                return Err(StepError::new(
                    "open-denied",
                    format!(
                        "{}: {e} (a filesystem.deny path changed while the sandbox started; run again)",
                        h.display()
                    ),
                ));
            }
            Err(_) => {
                if by_policy {
                    covers.push(Covered {
                        inside: inside.clone(),
                        was: None,
                    });
                }
                continue;
            }
        };
        // Stated through the new root (host paths under /tmp are covered
        // by the staging folder by now).
        let is_dir = match s.is_dir(target.as_fd()) {
            Ok(d) => d,
            Err(e) if by_policy => {
                return Err(StepError::new(
                    "stat-denied",
                    format!("{}: {e}", h.display()),
                ))
            }
            Err(_) => continue,
        };
        if !made {
            step(
                "mk-hidden",
                empty_file,
                ensure(s, rootfd, empty_file, false, true),
            )?;
            step(
                "mk-hidden",
                empty_dir,
                ensure(s, rootfd, empty_dir, true, true),
            )?;
            made = true;
        }
        let src = if is_dir { empty_dir } else { empty_file };
        let sfd = step("open-hidden", src, open_beneath(s, rootfd, src))?;
        let tree = step(
            "clone-hidden",
            src,
            detached_clone(s, sfd.as_fd(), false, RO | attr::NOEXEC),
        )?;
        step(
            "attach-hidden",
            Path::new(h),
            s.move_mount(tree.as_fd(), target.as_fd()),
        )?;
        if by_policy {
            let now = step("open-covered", h, open_beneath(s, rootfd, r))?;
            let id = step("stat-covered", h, s.identity(now.as_fd()))?;
            covers.push(Covered {
                inside: inside.clone(),
                was: Some(id),
            });
        }
    }
    if made {
        s.remove(&Path::new(STAGING).join(empty_file));
        s.remove(&Path::new(STAGING).join(empty_dir));
    }
    Ok(covers)
}

/// Nothing at the path: it, or a folder above it, does not exist (or is
/// not a folder).
fn absent(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR))
}

/// The folders to mount on themselves so that no denied path can be moved
/// by renaming a folder above it: those strictly between the root of the
/// writable mount a path lies in and the path. Shallowest first.
fn pinned_folders<'a>(
    denied: impl Iterator<Item = &'a Path>,
    mounts: &[MountSpec],
) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for inside in denied {
        let Some(m) = mounts
            .iter()
            .filter(|m| inside.starts_with(&m.target) && inside != m.target)
            .max_by_key(|m| m.target.components().count())
        else {
            continue;
        };
        if m.mode == MountMode::Ro {
            continue; // nothing in it can be renamed
        }
        let mut cur = inside.parent();
        while let Some(c) = cur {
            if c == m.target || !c.starts_with(&m.target) {
                break;
            }
            out.push(c.to_path_buf());
            cur = c.parent();
        }
    }
    out.sort_by_key(|p| (p.components().count(), p.clone()));
    out.dedup();
    out
}

/// Before each exec of a session: is every denied path as pid 1 left it?
/// The host may replace a file (a cover on the old one goes with it),
/// create one that was not there, or rename a folder above it; a command
/// would then see it. Read once per path, through the sandbox's own view.
pub(crate) fn covers_hold<S: Sys>(s: &S, covers: &[Covered]) -> Result<(), String> {
    for c in covers {
        let now = s.open_path(
            None,
            &c.inside,
            0,
            resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS,
        );
        let same = match (&now, c.was) {
            (Err(e), _) if absent(e) => true, // nothing there to see
            (Ok(fd), Some(was)) => s.identity(fd.as_fd()).is_ok_and(|id| id == was),
            _ => false,
        };
        if !same {
            return Err(format!(
                "{} (filesystem.deny) was created, replaced or moved on the host after the \
                 session started, so this session no longer hides it",
                c.inside.display()
            ));
        }
    }
    Ok(())
}

/// The order of the sequence, run against a recording fake: no root, no
/// namespaces, nothing changed on the machine.
#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{HashMap, HashSet};
    use std::os::fd::{AsRawFd, RawFd};

    use seccompiler::BpfProgram;

    use super::*;
    use crate::prepare::Protected;
    use crate::spec::{AuditLevel, MountSpec, SandboxSpec};

    /// Writes down every call instead of making it. Each fd it hands out is
    /// a real one (of /dev/null), named after what it stands for.
    #[derive(Default)]
    struct Fake {
        log: RefCell<Vec<String>>,
        names: RefCell<HashMap<RawFd, String>>,
        /// Paths made or mounted beneath the staging root.
        made: RefCell<HashSet<PathBuf>>,
        mounted: RefCell<Vec<PathBuf>>,
        /// A call (log verb) to fail with EPERM.
        fail: Option<&'static str>,
        /// A restriction that the kernel accepts but does not put in force.
        ineffective: Option<&'static str>,
        filters: RefCell<u64>,
    }

    impl Fake {
        fn failing(verb: &'static str) -> Fake {
            Fake {
                fail: Some(verb),
                ..Fake::default()
            }
        }
        fn ineffective(what: &'static str) -> Fake {
            Fake {
                ineffective: Some(what),
                ..Fake::default()
            }
        }
        fn call(&self, verb: &str, what: impl Into<String>) -> io::Result<()> {
            self.log
                .borrow_mut()
                .push(format!("{verb} {}", what.into()));
            if self.fail == Some(verb) {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(())
        }
        fn fd(&self, name: impl Into<String>) -> io::Result<OwnedFd> {
            let f = OwnedFd::from(std::fs::File::open("/dev/null")?);
            self.names.borrow_mut().insert(f.as_raw_fd(), name.into());
            Ok(f)
        }
        fn name(&self, fd: BorrowedFd<'_>) -> String {
            let n = self.names.borrow().get(&fd.as_raw_fd()).cloned();
            n.unwrap_or_else(|| format!("fd{}", fd.as_raw_fd()))
        }
        fn works(&self, what: &str) -> bool {
            self.ineffective != Some(what)
        }
        fn verbs(&self) -> Vec<String> {
            let log = self.log.borrow();
            log.iter()
                .map(|l| l.split(' ').next().unwrap_or("").to_string())
                .collect()
        }
        fn index(&self, entry: &str) -> usize {
            let log = self.log.borrow();
            log.iter()
                .position(|l| l == entry || l.starts_with(&format!("{entry} ")))
                .unwrap_or_else(|| panic!("no `{entry}` in {log:#?}"))
        }
        fn last_index(&self, verb: &str) -> usize {
            let log = self.log.borrow();
            log.iter()
                .rposition(|l| l.split(' ').next() == Some(verb))
                .unwrap_or_else(|| panic!("no `{verb}` in {log:#?}"))
        }
    }

    /// `root:REL` names a path beneath the staging root.
    fn beneath(name: &str) -> Option<PathBuf> {
        name.strip_prefix("root:").map(PathBuf::from)
    }

    impl Sys for Fake {
        fn mount(
            &self,
            source: Option<&str>,
            target: &Path,
            _fstype: Option<&str>,
            flags: u64,
            _data: Option<&str>,
        ) -> io::Result<()> {
            let what = if flags & mflags::SLAVE != 0 {
                "slave"
            } else {
                source.unwrap_or("?")
            };
            self.call("mount", format!("{what} {}", target.display()))
        }
        fn open_path(
            &self,
            dir: Option<BorrowedFd<'_>>,
            path: &Path,
            _flags: i32,
            _resolve: u64,
        ) -> io::Result<OwnedFd> {
            let Some(dir) = dir else {
                // Once the staging tmpfs is mounted (and after the pivot),
                // /tmp and / name the new root.
                let staged = self.log.borrow().iter().any(|l| l == "mount tmpfs /tmp");
                let pivoted = self.log.borrow().iter().any(|l| l == "pivot-root ");
                if (staged && path == Path::new(STAGING)) || (pivoted && path == Path::new("/")) {
                    self.call("open-root", path.display().to_string())?;
                    return self.fd("root:");
                }
                self.call("open-host", path.display().to_string())?;
                return self.fd(format!("host:{}", path.display()));
            };
            let base = beneath(&self.name(dir)).unwrap_or_default();
            let rel = base.join(path);
            let rel = rel.strip_prefix(".").unwrap_or(&rel).to_path_buf();
            let exists = rel.as_os_str().is_empty()
                || self.made.borrow().contains(&rel)
                || self.mounted.borrow().iter().any(|m| rel.starts_with(m));
            if !exists {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            self.fd(format!("root:{}", rel.display()))
        }
        fn openat(
            &self,
            dir: BorrowedFd<'_>,
            name: &Path,
            _flags: i32,
            _mode: u32,
        ) -> io::Result<OwnedFd> {
            let p = beneath(&self.name(dir)).unwrap_or_default().join(name);
            self.call("create", p.display().to_string())?;
            self.made.borrow_mut().insert(p.clone());
            self.fd(format!("root:{}", p.display()))
        }
        fn open_tree_clone(&self, fd: BorrowedFd<'_>, _recursive: bool) -> io::Result<OwnedFd> {
            let n = self.name(fd);
            self.call("clone", n.clone())?;
            self.fd(format!("tree:{n}"))
        }
        fn mount_setattr(
            &self,
            fd: BorrowedFd<'_>,
            _recursive: bool,
            set: u64,
            _clear: u64,
        ) -> io::Result<()> {
            let ro = if set & attr::RDONLY != 0 { "ro" } else { "rw" };
            self.call("setattr", format!("{} {ro}", self.name(fd)))
        }
        fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
            let to_name = self.name(to);
            self.call("attach", format!("{} {to_name}", self.name(from)))?;
            self.mounted.borrow_mut().extend(beneath(&to_name));
            Ok(())
        }
        fn mkdirat(&self, dir: BorrowedFd<'_>, name: &Path, _mode: u32) -> io::Result<()> {
            let p = beneath(&self.name(dir)).unwrap_or_default().join(name);
            self.call("mkdir", p.display().to_string())?;
            self.made.borrow_mut().insert(p);
            Ok(())
        }
        fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
            let p = beneath(&self.name(dir)).unwrap_or_default().join(name);
            self.call("symlink", format!("{} {}", p.display(), target.display()))?;
            self.made.borrow_mut().insert(p);
            Ok(())
        }
        fn unlinkat(&self, dir: BorrowedFd<'_>, name: &Path, _is_dir: bool) -> io::Result<()> {
            self.call("unlink", format!("{} {}", self.name(dir), name.display()))
        }
        fn is_dir(&self, fd: BorrowedFd<'_>) -> io::Result<bool> {
            Ok(!self.name(fd).contains("file"))
        }
        fn device(&self, _fd: BorrowedFd<'_>) -> io::Result<u64> {
            Ok(1)
        }
        fn identity(&self, fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
            let name = self.name(fd);
            Ok((1, name.len() as u64))
        }
        fn kind(&self, path: &Path) -> Kind {
            match path.to_str() {
                Some("/usr" | "/etc") => Kind::Dir,
                Some("/bin" | "/lib") => Kind::Link,
                _ => Kind::Missing,
            }
        }
        fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
            Ok(Path::new("usr").join(path.file_name().unwrap_or_default()))
        }
        fn make_dir(&self, path: &Path, _mode: u32) -> io::Result<()> {
            self.call("mkdir-host", path.display().to_string())
        }
        fn make_private_dirs(&self, path: &Path) -> io::Result<()> {
            self.call("mkdir-private", path.display().to_string())
        }
        fn remove(&self, path: &Path) {
            let _ = self.call("remove", path.display().to_string());
        }
        fn umount_detach(&self, path: &Path) -> io::Result<()> {
            self.call("detach", path.display().to_string())
        }
        fn fchdir(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
            self.call("chdir", self.name(fd))
        }
        fn chdir(&self, path: &Path) -> io::Result<()> {
            self.call("chdir", path.display().to_string())
        }
        fn pivot_root_here(&self) -> io::Result<()> {
            self.call("pivot-root", "")
        }
        fn set_process_name(&self, name: &str) {
            let _ = self.call("name", name);
        }
        fn sethostname(&self, name: &str) -> io::Result<()> {
            self.call("hostname", name)
        }
        fn loopback_up(&self) -> io::Result<()> {
            self.call("loopback-up", "")
        }
        fn set_child_subreaper(&self) -> io::Result<()> {
            self.call("subreaper", "")
        }
        fn listen_loopback(&self, port: u16) -> io::Result<(OwnedFd, u16)> {
            self.call("listen", port.to_string())?;
            Ok((self.fd("listener")?, port.max(40000)))
        }
        fn send_fd(&self, _sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
            self.call("send-fd", self.name(fd))
        }
        fn tun_up(&self) -> io::Result<OwnedFd> {
            self.call("tun-up", "")?;
            self.fd("tun")
        }
        fn write_new_file(
            &self,
            dir: BorrowedFd<'_>,
            name: &Path,
            _content: &[u8],
            _mode: u32,
        ) -> io::Result<()> {
            let p = beneath(&self.name(dir)).unwrap_or_default().join(name);
            self.call("write", p.display().to_string())?;
            self.made.borrow_mut().insert(p);
            Ok(())
        }
        fn landlock_ruleset(&self, _p: &Prepared) -> Result<Option<RulesetCreated>, String> {
            self.call("landlock-ruleset", "")
                .map_err(|e| e.to_string())?;
            Ok(None)
        }
        fn landlock_scope_init(&self, _p: &Prepared) -> Result<(), String> {
            self.call("landlock-scope-init", "")
                .map_err(|e| e.to_string())
        }
        fn probe_socket_taking(&self, _p: &Prepared) {
            let _ = self.call("probe-socket-taking", "");
        }
        fn set_non_dumpable(&self) -> io::Result<()> {
            self.call("non-dumpable", "")
        }
        fn is_dumpable(&self) -> io::Result<bool> {
            self.call("check", "dumpable")?;
            Ok(!self.works("non-dumpable"))
        }
        fn reset_signals(&self) -> io::Result<()> {
            self.call("reset-signals", "")
        }
        fn close_fds_from(&self, first: u32) -> io::Result<()> {
            self.call("close-fds", first.to_string())
        }
        fn set_parent_death_signal(&self, sig: i32) -> io::Result<()> {
            self.call("parent-death-signal", sig.to_string())
        }
        fn set_no_new_privs(&self) -> io::Result<()> {
            self.call("no-new-privs", "")
        }
        fn no_new_privs(&self) -> io::Result<bool> {
            self.call("check", "no-new-privs")?;
            Ok(self.works("no-new-privs"))
        }
        fn landlock_restrict(&self, _rs: Option<RulesetCreated>) -> Result<LandlockReport, String> {
            self.call("landlock-restrict", "")
                .map_err(|e| e.to_string())?;
            let enforced = if self.works("landlock") {
                "full"
            } else {
                "none"
            };
            Ok(LandlockReport {
                abi: 7,
                enforced: enforced.into(),
            })
        }
        fn drop_all_capabilities(&self) -> io::Result<()> {
            self.call("drop-capabilities", "")
        }
        fn holds_capabilities(&self) -> io::Result<bool> {
            self.call("check", "capabilities")?;
            Ok(!self.works("capabilities"))
        }
        fn set_rlimit(&self, resource: u32, limit: u64) -> io::Result<()> {
            self.call("rlimit", format!("{resource} {limit}"))
        }
        fn seccomp_install(
            &self,
            what: &'static str,
            programs: &[BpfProgram],
        ) -> Result<(), String> {
            self.call("seccomp", what).map_err(|e| e.to_string())?;
            if self.works("seccomp") {
                *self.filters.borrow_mut() += programs.len() as u64;
            }
            Ok(())
        }
        fn seccomp_install_with_listener(
            &self,
            _prog: &[(u16, u8, u8, u32)],
        ) -> io::Result<OwnedFd> {
            self.call("seccomp", "observer")?;
            *self.filters.borrow_mut() += 1;
            self.fd("seccomp-listener")
        }
        fn seccomp_filters(&self) -> io::Result<Option<u64>> {
            Ok(Some(*self.filters.borrow()))
        }
        fn seccomp_filter_mode(&self) -> bool {
            true
        }
        fn userns_probe(&self) -> i32 {
            let _ = self.call("check", "user-namespace");
            if self.works("user-namespace") {
                libc::EPERM
            } else {
                0
            }
        }
    }

    fn spec(level: Level, audit: AuditLevel) -> SandboxSpec {
        SandboxSpec {
            argv: vec!["true".into()],
            env: vec![],
            workdir: "/work".into(),
            home: "/home/u".into(),
            mounts: vec![],
            protected: vec![".git".into()],
            hidden: vec![],
            files: vec![],
            unix_sockets: vec![],
            tmp_size_mib: 64,
            hostname: "paddock".into(),
            proxy_port: Some(3128),
            transparent: true,
            pids_limit: Some(256),
            memory_limit_mib: None,
            serve_execs: false,
            cow_dir: None,
            audit,
            label: None,
            level,
            scratch_dir: None,
        }
    }

    /// A request as `prepare` would make it, without looking at the host:
    /// a workspace (rw), a reference folder (ro) and a cow mount.
    fn prepared(level: Level, audit: AuditLevel) -> Prepared {
        let mount = |src: &str, mode| MountSpec {
            source: src.into(),
            target: src.into(),
            mode,
            origin: "test".into(),
        };
        Prepared {
            argv: vec![c"true".to_owned()],
            env: vec![],
            path_dirs: vec!["/usr/bin".into()],
            workdir: "/work".into(),
            home: "/home/u".into(),
            mounts: vec![
                mount("/work", MountMode::Rw),
                mount("/work/ref", MountMode::Ro),
                mount("/data", MountMode::Cow),
            ],
            protected: vec![Protected {
                source: "/work/.git".into(),
                target: "/work/.git".into(),
            }],
            guard: std::sync::Arc::new(crate::guard::Guard::new(vec![], vec![], [], None)),
            tmp_size_mib: 64,
            hostname: "paddock".into(),
            proxy_port: Some(3128),
            transparent: true,
            pids_limit: Some(256),
            memory_limit_mib: Some(4096),
            serve_execs: false,
            cow_dir: None,
            seccomp: vec![vec![], vec![], vec![]],
            audit_filter: (audit != AuditLevel::Off).then(Vec::new),
            names: std::sync::Arc::new(crate::guard::Names::new(&spec(level, audit).protected)),
            model: spec(level, audit),
            label: None,
            level,
            scratch: (level == Level::NoUserns)
                .then(|| ("/tmp/s/home".into(), "/tmp/s/tmp".into())),
            home_files: vec![(".claude/.credentials.json".into(), "{}".into())],
        }
    }

    fn channel() -> UnixStream {
        UnixStream::pair().expect("socket pair").0
    }

    fn pid1(fake: &Fake, p: &Prepared) -> Result<Pid1, StepError> {
        if p.level.namespaces() {
            start_pid1(fake, p, &channel())
        } else {
            start_pid1_on_host(fake, p, &channel())
        }
    }

    fn listener_to() -> Option<OwnedFd> {
        Some(OwnedFd::from(channel()))
    }

    #[test]
    fn mounts_are_made_private_before_anything_else() {
        let fake = Fake::default();
        build_root(&fake, &prepared(Level::Full, AuditLevel::Writes)).expect("root built");
        assert_eq!(fake.log.borrow()[0], "mount slave /");
    }

    #[test]
    fn every_host_source_is_opened_before_the_staging_root_exists() {
        let fake = Fake::default();
        build_root(&fake, &prepared(Level::Full, AuditLevel::Writes)).expect("root built");
        let root = fake.index("mount tmpfs /tmp");
        let log = fake.log.borrow();
        let opened: Vec<&String> = log.iter().filter(|l| l.starts_with("open-host ")).collect();
        for source in [
            "/usr",
            "/etc",
            "/dev/null",
            "/work",
            "/work/ref",
            "/data",
            "/work/.git",
        ] {
            assert!(
                opened.iter().any(|l| *l == &format!("open-host {source}")),
                "{source} was never opened: {log:#?}"
            );
        }
        // Every host open comes first, except the scratch pool's folders,
        // which lie inside the sandbox's own tmpfs.
        for (i, l) in log.iter().enumerate() {
            if l.starts_with("open-host ") && !l.starts_with("open-host /tmp/") {
                assert!(i < root, "`{l}` after the staging root: {log:#?}");
            }
        }
        // And each source is cloned from its pinned fd, read-only where
        // asked, before the root exists.
        let ro_clone = fake.index("setattr tree:host:/work/ref ro");
        assert!(ro_clone < root);
        assert!(fake.index("setattr tree:host:/work rw") < root);
    }

    #[test]
    fn login_files_are_written_in_the_private_home_before_any_mount() {
        let fake = Fake::default();
        build_root(&fake, &prepared(Level::Full, AuditLevel::Writes)).expect("root built");
        let log = fake.log.borrow().clone();
        let write = log
            .iter()
            .position(|l| l.starts_with("write ") && l.ends_with(".claude/.credentials.json"))
            .unwrap_or_else(|| panic!("no login file written: {log:#?}"));
        assert!(fake.index("attach tree:host:/work root:work") > write);
        let home = log
            .iter()
            .position(|l| l.starts_with("attach ") && l.ends_with("root:home/u"))
            .unwrap_or_else(|| panic!("no home: {log:#?}"));
        assert!(home < write, "{log:#?}");
        // At no-userns the host folder of the private home gets it.
        let fake = Fake::default();
        pid1(&fake, &prepared(Level::NoUserns, AuditLevel::Writes)).expect("pid 1 set up");
        let log = fake.log.borrow().clone();
        assert!(
            fake.index("mkdir-private /tmp/s/home")
                < log
                    .iter()
                    .position(
                        |l| l.starts_with("write ") && l.ends_with(".claude/.credentials.json")
                    )
                    .unwrap_or_else(|| panic!("no login file at no-userns: {log:#?}")),
            "{log:#?}"
        );
    }

    #[test]
    fn parents_are_attached_before_children_and_protected_paths_last() {
        let fake = Fake::default();
        build_root(&fake, &prepared(Level::Full, AuditLevel::Writes)).expect("root built");
        let work = fake.index("attach tree:host:/work root:work");
        let reference = fake.index("attach tree:host:/work/ref root:work/ref");
        let git = fake.index("attach tree:host:/work/.git root:work/.git");
        assert!(work < reference && reference < git);
        // The child target inside a host folder is not created.
        assert!(!fake.log.borrow().iter().any(|l| l == "mkdir work/ref"));
    }

    #[test]
    fn pivot_root_then_the_old_root_is_detached_and_the_root_made_read_only_last() {
        let fake = Fake::default();
        build_root(&fake, &prepared(Level::Full, AuditLevel::Writes)).expect("root built");
        let log = fake.log.borrow().clone();
        let pivot = fake.index("pivot-root");
        assert_eq!(log[pivot - 1], "chdir root:");
        assert_eq!(log[pivot + 1], "detach .");
        assert_eq!(log.last().map(String::as_str), Some("setattr root: ro"));
        // Nothing is mounted after the pivot but the read-only flag.
        assert!(log[pivot + 2..]
            .iter()
            .all(|l| !l.starts_with("attach") && !l.starts_with("mount")));
    }

    #[test]
    fn the_command_sheds_privilege_in_order_and_seccomp_comes_last() {
        for audit in [AuditLevel::Off, AuditLevel::Writes] {
            for level in [Level::Full, Level::LandlockUnavailable, Level::NoUserns] {
                let fake = Fake::default();
                let p = prepared(level, audit);
                confine(&fake, &p, None, listener_to()).expect("confined");
                let nnp = fake.index("no-new-privs");
                let landlock = fake.index("landlock-restrict");
                let caps = fake.index("drop-capabilities");
                let seccomp = fake.index("seccomp");
                assert!(nnp < landlock && landlock < caps && caps < seccomp);
                // After the first filter only filters, the listener's
                // handoff and read-only checks.
                let verbs = fake.verbs();
                for v in &verbs[seccomp..] {
                    assert!(
                        matches!(v.as_str(), "seccomp" | "send-fd" | "check"),
                        "`{v}` after seccomp ({level:?}, {audit:?}): {:#?}",
                        fake.log.borrow()
                    );
                }
                // Each restriction is checked right after it is applied.
                assert_eq!(fake.log.borrow()[nnp + 1], "check no-new-privs");
                assert_eq!(fake.log.borrow()[caps + 1], "check capabilities");
                assert_eq!(
                    fake.log.borrow().last().map(String::as_str),
                    Some("check user-namespace")
                );
                if audit != AuditLevel::Off {
                    let observer = fake.index("seccomp observer");
                    assert_eq!(observer, fake.last_index("seccomp"));
                    assert_eq!(fake.log.borrow()[observer + 1], "send-fd seccomp-listener");
                }
                let pdeath = fake
                    .log
                    .borrow()
                    .iter()
                    .any(|l| l.starts_with("parent-death"));
                assert_eq!(pdeath, level == Level::NoUserns);
            }
        }
    }

    #[test]
    fn a_command_from_the_template_takes_the_same_steps_as_one_forked_by_pid1() {
        for audit in [AuditLevel::Off, AuditLevel::Writes] {
            for level in [Level::Full, Level::LandlockUnavailable, Level::NoUserns] {
                let p = prepared(level, audit);
                let whole = Fake::default();
                confine(&whole, &p, None, listener_to()).expect("confined");
                let split = Fake::default();
                let filters = confine_template(&split, &p).expect("template confined");
                let template_steps = split.log.borrow().len();
                confine_from_template(&split, &p, None, listener_to(), filters)
                    .expect("command confined");
                // The same restrictions, each applied once (the parent-death
                // signal again after the fork, which clears it).
                let applied = |f: &Fake| {
                    let mut v: Vec<String> = f
                        .log
                        .borrow()
                        .iter()
                        .filter(|l| !l.starts_with("check") && !l.starts_with("seccomp-state"))
                        .cloned()
                        .collect();
                    v.sort();
                    v.dedup();
                    v
                };
                assert_eq!(applied(&whole), applied(&split), "{level:?} {audit:?}");
                // Every check of the whole sequence runs on the split one.
                for c in whole.log.borrow().iter().filter(|l| l.starts_with("check")) {
                    assert!(
                        split.log.borrow().contains(c),
                        "{c} missing ({level:?} {audit:?})"
                    );
                }
                // What depends on the command comes after the fork: its
                // Landlock domain, its listener, the user-namespace probe.
                let log = split.log.borrow();
                let after_fork = &log[template_steps..];
                assert!(after_fork
                    .iter()
                    .any(|l| l.starts_with("landlock-restrict")));
                assert!(!log[..template_steps]
                    .iter()
                    .any(|l| l.starts_with("landlock-restrict")));
                assert_eq!(log.last().map(String::as_str), Some("check user-namespace"));
                if audit != AuditLevel::Off {
                    assert!(after_fork.iter().any(|l| l == "seccomp observer"));
                    assert_eq!(
                        log.iter()
                            .filter(|l| l.as_str() == "seccomp observer")
                            .count(),
                        1
                    );
                }
                // no_new_privs before the first filter in the template.
                assert!(split.index("no-new-privs") < split.index("seccomp"));
            }
        }
    }

    #[test]
    fn pid1_is_non_dumpable_before_any_command_exists() {
        for level in [Level::Full, Level::NoUserns] {
            let fake = Fake::default();
            let p = prepared(level, AuditLevel::Writes);
            let _pid1: Pid1 = pid1(&fake, &p).expect("pid 1 set up");
            let log = fake.log.borrow();
            // Non-dumpable and checked are its last two acts; the command
            // is forked with the `Pid1` only these functions return.
            assert_eq!(log[log.len() - 2], "non-dumpable ");
            assert_eq!(log[log.len() - 1], "check dumpable");
            // Its own Landlock scope comes before, as does the proxy's
            // listener, handed out at once.
            assert!(fake.index("landlock-scope-init") < log.len() - 2);
            assert_eq!(log[fake.index("listen") + 1], "send-fd listener");
        }
    }

    #[test]
    fn the_no_userns_variant_builds_no_filesystem() {
        let fake = Fake::default();
        let p = prepared(Level::NoUserns, AuditLevel::Writes);
        let pid1 = pid1(&fake, &p).expect("pid 1 set up");
        let verbs = fake.verbs();
        for v in ["mount", "attach", "pivot-root", "hostname", "loopback-up"] {
            assert!(!verbs.iter().any(|x| x == v), "{v} at no-userns");
        }
        assert_eq!(fake.log.borrow()[1], "subreaper ");
        // The kernel picks the port; the request is rewritten to it.
        assert_eq!(fake.log.borrow()[2], "listen 0");
        assert!(fake.index("mkdir-private /tmp/s/home") < fake.index("landlock-ruleset"));
        let view = pid1.host_view.expect("a host view");
        assert_eq!(view.proxy_port, Some(40000));
        assert_eq!(view.home, Path::new("/tmp/s/home"));
    }

    #[test]
    fn a_restriction_not_in_force_stops_the_start() {
        for (what, step) in [
            ("no-new-privs", "check-no-new-privs"),
            ("landlock", "check-landlock"),
            ("capabilities", "check-capabilities"),
            ("seccomp", "check-seccomp"),
            ("user-namespace", "check-user-namespace"),
        ] {
            let fake = Fake::ineffective(what);
            let p = prepared(Level::Full, AuditLevel::Off);
            let err = confine(&fake, &p, None, listener_to()).expect_err(what);
            assert_eq!(err.step, step, "{what}: {}", err.detail);
            assert!(!err.detail.is_empty());
            // Nothing ran after the failed check: it is the last entry.
            let log = fake.log.borrow();
            let last = log.last().cloned().unwrap_or_default();
            let expected = match what {
                "landlock" => "landlock-restrict ".to_string(),
                "seccomp" => "check-seccomp".to_string(),
                other => format!("check {other}"),
            };
            if what != "seccomp" {
                assert_eq!(last, expected, "{what}: {log:#?}");
            }
            if matches!(what, "no-new-privs" | "landlock" | "capabilities") {
                assert!(!log.iter().any(|l| l.starts_with("seccomp")));
            }
            // The user-namespace probe runs only once the filters are in.
            if what == "seccomp" {
                assert!(!log.iter().any(|l| l == "check user-namespace"));
            }
        }
        let fake = Fake::ineffective("non-dumpable");
        let p = prepared(Level::Full, AuditLevel::Writes);
        let err = pid1(&fake, &p).err().expect("refused");
        assert_eq!(err.step, "check-non-dumpable");
    }

    #[test]
    fn a_landlock_level_without_landlock_is_not_a_failed_check() {
        let fake = Fake::ineffective("landlock");
        let p = prepared(Level::LandlockUnavailable, AuditLevel::Off);
        confine(&fake, &p, None, listener_to()).expect("confined without Landlock");
    }

    #[test]
    fn a_failed_call_stops_the_sequence_where_it_failed() {
        for (verb, step) in [
            ("attach", "attach-system-dir"),
            ("pivot-root", "pivot-root"),
            ("mount", "make-mounts-slave"),
            ("clone", "clone-system-dir"),
        ] {
            let fake = Fake::failing(verb);
            let err =
                build_root(&fake, &prepared(Level::Full, AuditLevel::Writes)).expect_err(verb);
            assert_eq!(err.step, step);
            assert!(
                err.detail.contains("Operation not permitted"),
                "{}",
                err.detail
            );
            if verb != "pivot-root" {
                assert!(!fake.verbs().iter().any(|v| v == "pivot-root"));
            }
        }
        let fake = Fake::failing("drop-capabilities");
        let p = prepared(Level::Full, AuditLevel::Writes);
        let err = confine(&fake, &p, None, listener_to()).expect_err("refused");
        assert_eq!(err.step, "drop-capabilities");
        assert!(!fake.verbs().iter().any(|v| v == "seccomp"));
    }
}

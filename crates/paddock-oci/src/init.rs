//! `create`: from a bundle to a container process that waits, confined,
//! for `start`. The steps, in the order the boundary depends on:
//!
//! **The runtime, on the host:**
//! 1. Read and check `config.json` (what is not honoured is refused).
//!    With an `io.paddock.policy` annotation, read the named policy from
//!    the node's folder and prepare its egress ([`crate::egress`]): the
//!    process's environment and the CA bundle's mounts join the bundle's.
//! 2. Make the container's folder and its `exec.fifo`, and open the
//!    namespaces the bundle names by path (podman's network namespace).
//! 3. With a terminal, make a pty and hand its master to the engine over
//!    `--console-socket`.
//! 4. Clone the container's process into the new namespaces and wait for
//!    its word: ready (write the pid file, exit 0) or the step that failed
//!    (remove everything, exit 1). The process stays, re-parented to the
//!    engine's monitor (conmon, containerd's shim), blocked on the fifo.
//!    Under a policy, the word before ready carries the container's
//!    listener, the engine's network namespace and the TUN; the egress
//!    daemon (proxy and audit log) is forked with them before the runtime
//!    exits, and lives as long as the container's process.
//!
//! **The container's process, in its namespaces** ([`container`]):
//! 1. Join the namespaces named by path; make every mount private, so
//!    nothing made here reaches the host. Under a policy, unshare a
//!    network namespace of its own below the engine's: loopback, the
//!    proxy's listener on it and a TUN for everything else, handed to the
//!    runtime; nothing else leaves.
//! 2. Bind the root filesystem onto itself, then make each of the bundle's
//!    mounts, every target opened inside the root with `RESOLVE_IN_ROOT`
//!    (a symbolic link in the image cannot point a mount at the host).
//! 3. The default devices (bound from the host's `null`, `zero`, `full`,
//!    `random`, `urandom`, `tty`) and the `/dev` links. With hooks, stop
//!    for the runtime's (`prestart`, `createRuntime`, on the host), then
//!    run `createContainer` here ([`crate::hooks`]).
//! 4. `pivot_root` into the root and detach the old one: no path leads to
//!    the host's tree from here on. Then the masked and read-only paths,
//!    the root read-only if asked, sysctls, the hostname, limits.
//! 5. Say "ready", and block opening the fifo for writing until `start`
//!    opens it for reading; then `startContainer`'s hooks, each confined
//!    as step 6 confines the program.
//! 6. paddock's boundary on top of the bundle's: no_new_privs always, the
//!    capabilities the bundle lists minus those that undo the boundary
//!    ([`crate::config::NEVER`]), the user, then the bundle's seccomp
//!    profile and paddock's filters (those of `paddock run`); `execve`.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Component, Path, PathBuf};

use paddock_sys::{attr, resolve};

use paddock_sys::PROC_SUPER_MAGIC;

/// `SYSFS_MAGIC` (statfs).
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// The host kernel's own filesystems, by statfs magic: a bind of one (or
/// of a part of one) hands the container the host's processes, kernel
/// settings, cgroups, tracing, BPF objects, terminals or IPC. proc,
/// sysfs, cgroup v1 and v2, debugfs, tracefs, securityfs, bpf, configfs,
/// pstore, efivarfs, binfmt_misc, fusectl, devpts, mqueue, selinuxfs,
/// smackfs.
const KERNEL_FS_MAGIC: [i64; 17] = [
    PROC_SUPER_MAGIC,
    SYSFS_MAGIC,
    0x0027_e0eb,
    0x6367_7270,
    0x6462_6720,
    0x7472_6163,
    0x7363_6673,
    0xcafe_4a11,
    0x6265_6570,
    0x6165_676c,
    0xde5e_81e4,
    0x4249_4e4d,
    0x6573_5543,
    0x1cd1,
    0x1980_0202,
    0xf97c_ff8c,
    0x4341_5d53,
];

/// The same filesystems by the type names `/proc/self/mountinfo` gives.
const KERNEL_FS_TYPES: [&str; 17] = [
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "debugfs",
    "tracefs",
    "securityfs",
    "bpf",
    "configfs",
    "pstore",
    "efivarfs",
    "binfmt_misc",
    "fusectl",
    "devpts",
    "mqueue",
    "selinuxfs",
    "smackfs",
];

/// Filesystem types a bundle may mount other than by bind: none of them
/// reads a device or the host's kernel state (proc and sysfs are the
/// container's own, masked; cgroup is replaced by an empty tmpfs).
const MOUNTABLE_TYPES: [&str; 7] = [
    "tmpfs", "devpts", "mqueue", "proc", "sysfs", "cgroup", "cgroup2",
];

/// The kernel filesystem mounted at or below `path` on the host, if any
/// (a recursive bind copies them along). Mount points are bytes, not
/// text; a table that cannot be read, or a line that cannot be parsed,
/// is an error, never "nothing below".
fn kernel_fs_below(path: &Path) -> Result<Option<(PathBuf, String)>, String> {
    use std::os::unix::ffi::OsStringExt;
    let table =
        std::fs::read("/proc/self/mountinfo").map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    for line in table.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        // id parent major:minor root mountpoint options [optional...] - type source super
        let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
        let dash = fields.iter().position(|f| *f == b"-");
        let (Some(point), Some(kind)) = (fields.get(4), dash.and_then(|d| fields.get(d + 1)))
        else {
            return Err(format!(
                "/proc/self/mountinfo: a line this runtime cannot read: {}",
                String::from_utf8_lossy(line)
            ));
        };
        let point = PathBuf::from(std::ffi::OsString::from_vec(unescape_mountinfo(point)));
        let kind = String::from_utf8_lossy(kind);
        if point.starts_with(path) && KERNEL_FS_TYPES.contains(&kind.as_ref()) {
            return Ok(Some((point, kind.into_owned())));
        }
    }
    Ok(None)
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mountinfo(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The namespaces of the runtime itself, the host's: a container that
/// joins one of them has not got its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostNamespaces {
    net: Option<u64>,
    ipc: Option<u64>,
}

impl HostNamespaces {
    fn here() -> HostNamespaces {
        HostNamespaces {
            net: Self::current("net"),
            ipc: Self::current("ipc"),
        }
    }

    /// The inode of the calling process's `kind` namespace.
    fn current(kind: &str) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/self/ns/{kind}"))
            .ok()
            .map(|m| m.ino())
    }

    /// Whether the calling process is in a `kind` namespace that is not
    /// the host's (unknown counts as the host's).
    fn own(host: Option<u64>, kind: &str) -> bool {
        let now = Self::current(kind);
        now.is_some() && host.is_some() && now != host
    }
}

/// What every container has masked, whatever its bundle says (the
/// paths engines mask by default).
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/fs/selinux",
    "/sys/dev/block",
];

/// What every container has read-only, whatever its bundle says.
const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// paddock's own paths, then the bundle's.
fn ours_then<'a>(
    own: &'static [&'static str],
    bundle: Option<&'a [String]>,
) -> impl Iterator<Item = &'a str> {
    own.iter()
        .copied()
        .chain(bundle.into_iter().flatten().map(String::as_str))
}

/// Sysctls a container may set: those of namespaces of its own, not the
/// host's (IPC and mqueue with an IPC namespace, the network's with a
/// network namespace).
fn namespaced_sysctl(k: &str, own_net: bool, own_ipc: bool) -> bool {
    let ipc = matches!(
        k,
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || k.starts_with("fs.mqueue.");
    // Registered per network namespace but with an effect on the whole
    // host: nf_hooks_lwtunnel turns on a global switch that stays on
    // until reboot.
    let global_net = ["net.netfilter.nf_hooks_lwtunnel"].contains(&k);
    (own_ipc && ipc) || (own_net && k.starts_with("net.") && !global_net)
}

use crate::config::{cap_mask, mount_options, namespace_flag, rlimit, Config, Mount};
use crate::state::{self, Record};

/// What `create` is given on its command line.
pub struct Create<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
    pub preserve_fds: u32,
    /// The node's policy and audit folders.
    pub places: &'a crate::egress::Places,
    /// `--systemd-cgroup`.
    pub systemd_cgroup: bool,
}

/// Run `create`; what degraded (limits this machine cannot hold). On
/// error nothing is left behind: no folder, no process, no cgroup.
pub fn create(c: &Create<'_>) -> Result<Vec<String>, String> {
    state::valid_id(c.id)?;
    let bundle = std::fs::canonicalize(c.bundle)
        .map_err(|e| format!("bundle {}: {e}", c.bundle.display()))?;
    let mut cfg = Config::load(&bundle)?;
    let cgroup_path = crate::cgroups::relative_path(
        cfg.linux.as_ref().and_then(|l| l.cgroups_path.as_deref()),
        c.id,
        c.systemd_cgroup,
    )?;
    // The policy the bundle names, read and checked before anything is
    // made: its errors name the file and line.
    let egress = match crate::egress::named_policy(&cfg.annotations, c.places)? {
        Some(p) => Some(crate::egress::Prepared::new(p)?),
        None => None,
    };
    if let Some(e) = &egress {
        cfg.mounts.extend(e.mounts.iter().cloned());
        if let Some(p) = cfg.process.as_mut() {
            p.env = crate::egress::with_env(&p.env, &e.env);
        }
    }
    let net = egress.as_ref().map(|e| e.net);
    let linux = cfg.linux.as_ref();
    // The bundle's extra devices (`--device`): each the host's own node,
    // found now, so that one that cannot be given stops `create` here.
    let devices = linux
        .map(|l| l.devices.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|d| host_device(d).map(|host| (host, PathBuf::from(&d.path))))
        .collect::<Result<Vec<_>, String>>()?;
    let mut flags = 0u64;
    let mut join: Vec<(String, File)> = Vec::new();
    for n in linux.map(|l| l.namespaces.as_slice()).unwrap_or_default() {
        let f = namespace_flag(&n.kind).unwrap_or(0);
        match &n.path {
            None => flags |= f,
            Some(p) if matches!(n.kind.as_str(), "network" | "ipc" | "uts") => {
                let file = File::open(p).map_err(|e| format!("{} namespace {p}: {e}", n.kind))?;
                join.push((n.kind.clone(), file));
            }
            Some(p) => {
                return Err(format!(
                    "joining the {} namespace at {p} is not supported by this runtime yet",
                    n.kind
                ))
            }
        }
    }
    if egress.is_some() && flags & paddock_sys::ns::PID == 0 {
        return Err(format!(
            "annotation {}: a container under a policy needs a pid namespace of its own (not --pid host): its egress lives as long as its processes, and from the host's pids they could stop it",
            crate::egress::ANNOTATION
        ));
    }
    if flags & paddock_sys::ns::MOUNT == 0 {
        return Err("the bundle has no mount namespace: this runtime always makes one (add {\"type\": \"mount\"})".into());
    }
    let rootfs = {
        let p = PathBuf::from(
            &cfg.root
                .as_ref()
                .map(|r| r.path.clone())
                .unwrap_or_default(),
        );
        let p = if p.is_absolute() { p } else { bundle.join(p) };
        std::fs::canonicalize(&p).map_err(|e| format!("root.path {}: {e}", p.display()))?
    };
    std::fs::create_dir_all(c.root).map_err(|e| format!("state root {}: {e}", c.root.display()))?;
    let dir = state::dir(c.root, c.id);
    std::fs::create_dir(&dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("container `{}` already exists", c.id)
        } else {
            format!("{}: {e}", dir.display())
        }
    })?;
    let undo = |e: String| {
        let _ = std::fs::remove_dir_all(&dir);
        e
    };
    let fifo = dir.join("exec.fifo");
    paddock_sys::mkfifo(&fifo, 0o600).map_err(|e| undo(format!("{}: {e}", fifo.display())))?;
    let fifo_fd = paddock_sys::openat2_path(None, &fifo, 0, resolve::NO_SYMLINKS)
        .map_err(|e| undo(format!("{}: {e}", fifo.display())))?;
    let filters = bundle_filters(&cfg).map_err(undo)?;
    let terminal = cfg.process.as_ref().is_some_and(|p| p.terminal);
    // The console socket is connected here, on the host; the pty is made
    // inside, on the container's own devpts (its name resolves there).
    let console = console_socket(terminal, c.console_socket).map_err(undo)?;
    let (parent_end, child_end) = UnixStream::pair().map_err(|e| undo(e.to_string()))?;
    // Under a policy that audits, the first process's way to its observer
    // (the daemon, started below, takes the other end).
    let level = egress.as_ref().map(|e| e.audit_level());
    let observe = match level.filter(|l| *l != paddock_sandbox::AuditLevel::Off) {
        Some(l) => Some((
            paddock_sys::seqpacket_pair().map_err(|e| undo(e.to_string()))?,
            l,
        )),
        None => None,
    };
    let host = HostNamespaces::here();
    match paddock_sys::clone_into_namespaces(flags).map_err(|e| undo(format!("clone: {e}")))? {
        paddock_sys::Forked::Child => {
            drop(parent_end);
            let mut sync = child_end;
            let link = observe.map(|((_, to), level)| crate::observer::Link {
                level,
                to,
                exec_id: 0,
            });
            let Err(why) = setup(
                &cfg,
                &rootfs,
                &devices,
                &join,
                &fifo_fd,
                console,
                &filters,
                c.preserve_fds,
                flags,
                host,
                net,
                link,
                &mut sync,
            );
            let _ = sync.write_all(format!("ERR {why}").as_bytes());
            paddock_sys::exit_now(1);
        }
        paddock_sys::Forked::Parent { pid, .. } => {
            drop(child_end);
            let observe = observe.map(|((first, _), _)| first);
            let mut said = String::new();
            let mut parent_end = parent_end;
            let stop = |why: String| {
                let _ = paddock_sys::kill(pid, libc::SIGKILL);
                let _ = paddock_sys::waitpid(pid, false);
                undo(format!("container `{}`: {why}", c.id))
            };
            // The container's network namespace hands its proxy listener
            // (and TUN device) out first.
            let handed = match net {
                Some(crate::egress::Net::Proxy { .. }) => {
                    Some(crate::egress::receive(&parent_end).map_err(stop)?)
                }
                _ => None,
            };
            let mut buf = [0u8; 4096];
            // The child says "READY" and keeps the socket open while it
            // waits on the fifo; an error closes it. With hooks, it stops
            // before `pivot_root` first ("HOOKS"): prestart and
            // createRuntime run here, on the host.
            let mut n = parent_end.read(&mut buf).unwrap_or(0);
            if &buf[..n] == b"HOOKS" {
                let hooks = cfg.hooks.clone().unwrap_or_default();
                let st = |status: &str| {
                    crate::hooks::state(
                        c.id,
                        status,
                        pid,
                        &bundle.display().to_string(),
                        &serde_json::to_value(&cfg.annotations).unwrap_or_default(),
                    )
                };
                crate::hooks::run("prestart", &hooks.prestart, &st("creating"))
                    .and_then(|()| {
                        crate::hooks::run("createRuntime", &hooks.create_runtime, &st("creating"))
                    })
                    .map_err(stop)?;
                let created = st("created");
                parent_end
                    .write_all(format!("GO {created}\n").as_bytes())
                    .map_err(|e| stop(e.to_string()))?;
                n = parent_end.read(&mut buf).unwrap_or(0);
            }
            said.push_str(&String::from_utf8_lossy(&buf[..n]));
            if said != "READY" {
                let why = said
                    .strip_prefix("ERR ")
                    .unwrap_or("the container's process ended before it was ready");
                return Err(stop(why.to_string()));
            }
            // Its cgroups, joined while it waits for `start`: everything
            // of the image's it runs is counted and limited.
            let no_limits = crate::cgroups::Resources::default();
            let resources = cfg
                .linux
                .as_ref()
                .and_then(|l| l.resources.as_ref())
                .unwrap_or(&no_limits);
            let groups = crate::cgroups::make(&cgroup_path, resources).map_err(&stop)?;
            let stop = |why: String| {
                let e = stop(why);
                crate::cgroups::remove(&groups.made);
                e
            };
            crate::cgroups::join(&groups.groups, pid).map_err(stop)?;
            let (policy, env) = egress
                .as_ref()
                .map(|e| (Some(e.policy.name.clone()), e.env.clone()))
                .unwrap_or_default();
            // The daemon: the proxy, the audit observer, the audit log.
            let daemon = match egress {
                Some(e) => {
                    let d = crate::egress::start_daemon(
                        c.places,
                        c.id,
                        pid,
                        &cfg.annotations,
                        e,
                        handed,
                        Some(crate::egress::Observe {
                            first: observe,
                            dir: &dir,
                        }),
                    )
                    .map_err(stop)?;
                    crate::cgroups::join_cpu(&groups.groups, d);
                    Some((d, paddock_sys::process_start_time(d).unwrap_or(0)))
                }
                None => None,
            };
            let record = Record {
                id: c.id.to_string(),
                pid,
                start_time: paddock_sys::process_start_time(pid).unwrap_or(0),
                bundle: bundle.display().to_string(),
                rootfs: rootfs.display().to_string(),
                created: state::now_rfc3339(),
                annotations: cfg.annotations.clone(),
                owner: String::new(),
                policy,
                env,
                egress: daemon,
                cgroups: groups.groups.clone(),
                cgroups_made: groups.made.clone(),
            };
            let saved = state::save(c.root, &record)
                .and_then(|()| c.pid_file.map_or(Ok(()), |p| state::write_pid_file(p, pid)));
            if let Err(e) = saved {
                // Nothing is left behind: not the process, its proxy or
                // its state.
                if let Some((d, _)) = daemon {
                    let _ = paddock_sys::kill(d, libc::SIGKILL);
                    let _ = paddock_sys::waitpid(d, false);
                }
                return Err(stop(e));
            }
            Ok(groups.degraded)
        }
    }
}

pub(crate) enum Never {}

/// Which of the host's namespaces a container's process is in (the
/// bundle joins the runtime's): their sockets and processes are kept out
/// of its reach by Landlock's scopes.
#[derive(Clone, Copy)]
pub(crate) struct OnHost {
    pub net: bool,
    pub pid: bool,
}

/// An error of the step `what`, as the runtime reports it.
fn step(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The container's process, from its namespaces to the wait on the
/// fifo and its `execve`: returns only with the step that failed.
#[allow(clippy::too_many_arguments)]
fn setup(
    cfg: &Config,
    rootfs: &Path,
    devices: &[(PathBuf, PathBuf)],
    join: &[(String, File)],
    fifo: &OwnedFd,
    console: Option<UnixStream>,
    filters: &Option<paddock_sandbox::ContainerFilters>,
    preserve_fds: u32,
    flags: u64,
    host: HostNamespaces,
    net: Option<crate::egress::Net>,
    observe: Option<crate::observer::Link>,
    sync: &mut UnixStream,
) -> Result<Never, String> {
    let linux = cfg.linux.as_ref();
    let process = cfg.process.as_ref().ok_or("no process")?;
    // 1. Namespaces by path; every mount private. Under a policy, a
    //    network namespace of the container's own, in place of the
    //    engine's (made while the host's /dev/net/tun is in view).
    for (kind, f) in join {
        paddock_sys::setns(f.as_fd()).map_err(step(&format!("joining the {kind} namespace")))?;
    }
    if let Some(net) = net {
        crate::egress::enter(net, sync)?;
    }
    let prop = match linux.and_then(|l| l.rootfs_propagation.as_deref()) {
        Some("slave" | "rslave") => libc::MS_SLAVE,
        _ => libc::MS_PRIVATE,
    };
    paddock_sys::mount(None, Path::new("/"), None, prop | libc::MS_REC, None)
        .map_err(step("making the host's mounts private"))?;
    // 2. The root, and the bundle's mounts inside it. Device nodes work
    //    nowhere but on the default devices and the pty filesystem: the
    //    root and every mount are `nodev` (there are no device cgroups to
    //    say which nodes may be opened, so an image's own nodes, or ones
    //    made with mknod, must be inert).
    paddock_sys::mount(
        rootfs.to_str(),
        rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(step("binding the root filesystem"))?;
    let root_fd = paddock_sys::openat2_path(None, rootfs, libc::O_DIRECTORY, resolve::NO_SYMLINKS)
        .map_err(step("opening the root filesystem"))?;
    paddock_sys::mount_setattr(root_fd.as_fd(), true, attr::NODEV, 0)
        .map_err(step("making the root nodev"))?;
    for m in &cfg.mounts {
        mount_one(&root_fd, m).map_err(|e| format!("mount {}: {e}", m.destination))?;
    }
    // 3. Devices and links: the default devices, then the bundle's.
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        let p = PathBuf::from("/dev").join(d);
        bind_device(&root_fd, &p, &p)?;
    }
    for (host, dest) in devices {
        bind_device(&root_fd, host, dest)?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let dev = paddock_sys::openat2_path(
            Some(root_fd.as_fd()),
            Path::new("dev"),
            libc::O_DIRECTORY,
            resolve::IN_ROOT | resolve::NO_SYMLINKS,
        )
        .map_err(step("/dev"))?;
        let dev = reopen_dir(&dev).map_err(step("/dev"))?;
        match paddock_sys::symlinkat(Path::new(to), dev.as_fd(), Path::new(link)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(format!("/dev/{link}: {e}")),
        }
    }
    // 3b. The hooks before the root is entered: the runtime's (prestart,
    //     createRuntime) on the host while this process waits, then
    //     createContainer here, in the container's namespaces.
    let hooks = cfg.hooks.clone().unwrap_or_default();
    let mut hook_state = String::new();
    if hooks.any_before_start() {
        // The runtime answers with the state the hooks read (it knows
        // this process's pid as the host sees it), one line.
        sync.write_all(b"HOOKS")
            .map_err(step("telling the runtime"))?;
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while line.len() < (1 << 20) {
            match sync.read(&mut b) {
                Ok(1) if b[0] == b'\n' => break,
                Ok(1) => line.push(b[0]),
                _ => return Err("the runtime's hooks failed".into()),
            }
        }
        hook_state = String::from_utf8_lossy(&line)
            .strip_prefix("GO ")
            .ok_or("the runtime's hooks failed")?
            .to_string();
        crate::hooks::run("createContainer", &hooks.create_container, &hook_state)?;
    }
    // 4. Into the root.
    paddock_sys::fchdir(root_fd.as_fd()).map_err(step("entering the root"))?;
    drop(root_fd);
    paddock_sys::pivot_root_here().map_err(step("pivot_root"))?;
    paddock_sys::umount_detach(Path::new("/")).map_err(step("detaching the host's root"))?;
    std::env::set_current_dir("/").map_err(step("chdir /"))?;
    // What follows is found under /proc: it must be the procfs mounted
    // above, at /proc itself (no link on the way, nothing mounted over
    // it), or the masks below would land elsewhere and the real one stay
    // open.
    let proc_fd = paddock_sys::openat2_path(
        None,
        Path::new("/proc"),
        libc::O_DIRECTORY,
        resolve::NO_SYMLINKS,
    )
    .map_err(|e| {
        format!("/proc: {e} (the container needs its procfs at /proc, not through a link)")
    })?;
    if paddock_sys::fs_magic(proc_fd.as_fd()).ok() != Some(PROC_SUPER_MAGIC) {
        return Err(
            "/proc is not the container's procfs (the bundle mounts something over it, or none)"
                .into(),
        );
    }
    std::fs::metadata(format!("/proc/self/fd/{}", fifo.as_raw_fd()))
        .map_err(step("the exec.fifo"))?;
    // Compared with the host's own, not read from the bundle: a joined
    // namespace may be the host's (`--network ns:/proc/1/ns/net`).
    let own_net = HostNamespaces::own(host.net, "net");
    let on_host = OnHost {
        net: !own_net,
        pid: flags & paddock_sys::ns::PID == 0,
    };
    let own_ipc = HostNamespaces::own(host.ipc, "ipc");
    for (k, v) in linux.map(|l| &l.sysctl).into_iter().flatten() {
        if k.contains("..") || k.contains('/') {
            return Err(format!("sysctl `{k}` is not a sysctl name"));
        }
        if !namespaced_sysctl(k, own_net, own_ipc) {
            return Err(format!(
                "sysctl `{k}` is the host's, not the container's: refused (only IPC and mqueue sysctls with an IPC namespace of the container's own, network sysctls with a network namespace of its own)"
            ));
        }
        let p = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        let fd = paddock_sys::openat2_path(None, &p, 0, resolve::NO_SYMLINKS)
            .map_err(|e| format!("sysctl {k}: {e}"))?;
        std::fs::write(magic(&fd), v).map_err(|e| format!("sysctl {k}: {e}"))?;
    }
    // paddock's own masks and read-only paths, whatever the bundle asks
    // (podman's `unmask=ALL` would leave /proc/sys writable: a write to
    // core_pattern runs a program on the host), then the bundle's.
    for p in ours_then(MASKED, linux.map(|l| l.masked_paths.as_slice())) {
        mask(Path::new(p)).map_err(|e| format!("masking {p}: {e}"))?;
    }
    for p in ours_then(READ_ONLY, linux.map(|l| l.readonly_paths.as_slice())) {
        read_only(Path::new(p)).map_err(|e| format!("read-only {p}: {e}"))?;
    }
    if cfg.root.as_ref().is_some_and(|r| r.readonly) {
        let root = paddock_sys::openat2_path(None, Path::new("/"), libc::O_DIRECTORY, 0)
            .map_err(step("the root"))?;
        paddock_sys::mount_setattr(root.as_fd(), false, attr::RDONLY | attr::NODEV, 0)
            .map_err(step("making the root read-only"))?;
    }
    if flags & paddock_sys::ns::UTS != 0 {
        if let Some(h) = &cfg.hostname {
            paddock_sys::sethostname(h).map_err(step("hostname"))?;
        }
    }
    let tty = console.as_ref().map(terminal).transpose()?;
    // 5. Ready; wait for start.
    let fifo_path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    sync.write_all(b"READY")
        .map_err(step("telling the runtime"))?;
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&fifo_path)
        .map_err(step("waiting for start"))?;
    w.write_all(b"0").map_err(step("exec.fifo"))?;
    drop(w);
    // startContainer's hooks: their programs are the image's, so each is
    // confined as the container's program is.
    run_confined_hooks(
        &hooks.start_container,
        process,
        &hook_state,
        &|p| match confine_and_exec(p, None, filters, 0, on_host, observe.as_ref()) {
            Ok(never) => match never {},
            Err(e) => e,
        },
    )?;
    confine_and_exec(
        process,
        tty,
        filters,
        preserve_fds,
        on_host,
        observe.as_ref(),
    )
}

/// The host's node `host` bound at `dest` in the root: the one place a
/// device node works (every other mount is `nodev`).
fn bind_device(root_fd: &OwnedFd, host: &Path, dest: &Path) -> Result<(), String> {
    let what = dest.display().to_string();
    let node = paddock_sys::openat2_path(None, host, 0, resolve::NO_SYMLINKS)
        .map_err(step(&format!("the host's {}", host.display())))?;
    let target = target_in(root_fd, dest, false, true).map_err(|e| format!("{what}: {e}"))?;
    let tree = paddock_sys::open_tree_clone(node.as_fd(), false).map_err(step(&what))?;
    paddock_sys::mount_setattr(
        tree.as_fd(),
        false,
        attr::NOSUID | attr::NOEXEC,
        attr::NODEV,
    )
    .map_err(step(&what))?;
    paddock_sys::move_mount(tree.as_fd(), target.as_fd()).map_err(step(&what))
}

/// The host's node for device `d` of `linux.devices` (its type and
/// number): the node at the same path on the host, else one under /dev
/// with that number. Bound, not made: the container gets the host's
/// node with the host's owner and mode (`fileMode`, `uid` and `gid` are
/// not applied), and nothing else of the host's devices.
fn host_device(d: &crate::config::Device) -> Result<PathBuf, String> {
    let kind = match d.kind.as_str() {
        "c" | "u" => libc::S_IFCHR,
        "b" => libc::S_IFBLK,
        other => {
            return Err(format!(
                "linux.devices {}: type `{other}` is not supported (only character and block devices, c and b)",
                d.path
            ))
        }
    };
    let dest = Path::new(&d.path);
    if !dest.is_absolute()
        || dest.components().any(|c| matches!(c, Component::ParentDir))
        || !dest.starts_with("/dev")
    {
        return Err(format!(
            "linux.devices {}: a device goes under /dev, by an absolute path without `..`",
            d.path
        ));
    }
    let want = libc::makedev(d.major, d.minor);
    let is_it = |p: &Path| {
        paddock_sys::openat2_path(None, p, 0, resolve::NO_SYMLINKS)
            .and_then(|f| paddock_sys::fstatat(f.as_fd(), Path::new("")))
            .is_ok_and(|st| st.mode & libc::S_IFMT == kind && st.rdev == want)
    };
    if is_it(dest) {
        return Ok(dest.to_path_buf());
    }
    // /dev and the folders in it (/dev/snd, /dev/dri, /dev/net, ...).
    let mut dirs = vec![PathBuf::from("/dev")];
    let mut i = 0;
    while i < dirs.len() && i < 64 {
        if let Ok(rd) = std::fs::read_dir(&dirs[i]) {
            for e in rd.flatten() {
                let p = e.path();
                match e.file_type() {
                    Ok(t) if t.is_dir() && i == 0 => dirs.push(p),
                    Ok(t) if !t.is_dir() && !t.is_symlink() && is_it(&p) => return Ok(p),
                    _ => {}
                }
            }
        }
        i += 1;
    }
    Err(format!(
        "linux.devices {}: the host has no {} device {}:{} under /dev to give (--device names a node of the host's)",
        d.path,
        if kind == libc::S_IFBLK { "block" } else { "character" },
        d.major,
        d.minor
    ))
}

/// The bundle's own seccomp profile, compiled (before anything is made,
/// so a profile that cannot be honoured is refused whole).
pub(crate) fn bundle_filters(
    cfg: &Config,
) -> Result<Option<paddock_sandbox::ContainerFilters>, String> {
    cfg.linux
        .as_ref()
        .and_then(|l| l.seccomp.as_ref())
        .map(paddock_sandbox::compile_oci_profile)
        .transpose()
}

/// The process's own setup, shared by `create` (after `start`) and `exec`:
/// limits, the terminal, and paddock's boundary; then `execve`. Returns
/// only with the step that failed.
pub(crate) fn confine_and_exec(
    process: &crate::config::Process,
    tty: Option<OwnedFd>,
    filters: &Option<paddock_sandbox::ContainerFilters>,
    preserve_fds: u32,
    on_host: OnHost,
    observe: Option<&crate::observer::Link>,
) -> Result<Never, String> {
    for r in &process.rlimits {
        let res = rlimit(&r.kind).ok_or("rlimit")?;
        paddock_sys::set_rlimit_pair(res, r.soft, r.hard)
            .map_err(step(&format!("{} {}:{}", r.kind, r.soft, r.hard)))?;
    }
    // Under a policy that audits, no core dumps: the kernel writes them
    // (a file made or overwritten in the working folder) with no call the
    // observer sees. Lowered for good: raising a hard limit needs
    // CAP_SYS_RESOURCE, which a container never keeps.
    if observe.is_some() {
        paddock_sys::set_rlimit_pair(libc::RLIMIT_CORE, 0, 0).map_err(step("core dumps off"))?;
    }
    if let Some(t) = tty {
        paddock_sys::setsid().map_err(step("setsid"))?;
        for fd in 0..3 {
            paddock_sys::dup2(t.as_fd(), fd).map_err(step("terminal"))?;
        }
        paddock_sys::set_controlling_tty(0).map_err(step("controlling terminal"))?;
    }
    // paddock's boundary.
    paddock_sys::set_no_new_privs().map_err(step("no_new_privs"))?;
    let caps = process.capabilities.as_ref();
    let sets = paddock_sys::CapSets {
        bounding: caps.map_or(0, |c| cap_mask(&c.bounding)),
        effective: caps.map_or(0, |c| cap_mask(&c.effective)),
        permitted: caps.map_or(0, |c| cap_mask(&c.permitted)),
        inheritable: caps.map_or(0, |c| cap_mask(&c.inheritable)),
        ambient: caps.map_or(0, |c| cap_mask(&c.ambient)),
    };
    // The bounding set first (that needs CAP_SETPCAP), then the user
    // (that needs CAP_SETUID and CAP_SETGID, which the bundle need not
    // give: `--cap-drop ALL`), keeping the permitted set across, then the
    // bundle's sets exactly.
    paddock_sys::limit_bounding_set(sets.bounding).map_err(step("capability bounding set"))?;
    let u = &process.user;
    paddock_sys::switch_user(u.uid, u.gid, &u.additional_gids, true).map_err(step("user"))?;
    paddock_sys::set_capability_sets(sets).map_err(step("capabilities"))?;
    paddock_sys::set_umask(u.umask.unwrap_or(0o022));
    let cwd = if process.cwd.is_empty() {
        "/"
    } else {
        &process.cwd
    };
    std::env::set_current_dir(cwd).map_err(step(&format!("cwd {cwd}")))?;
    paddock_sys::cloexec_from(3 + preserve_fds).map_err(step("closing inherited files"))?;
    // On the host's network, the host's abstract unix sockets are out of
    // reach; with the host's pids, the host's processes are not to be
    // signalled (Landlock's scopes; kernels before ABI 6 have none).
    paddock_sandbox::scope_container(on_host.net, on_host.pid)
        .map_err(|e| format!("Landlock (the host's sockets and processes): {e}"))?;
    // The bundle's profile, then paddock's filters: the kernel keeps the
    // most restrictive answer of all.
    if let Some(f) = filters {
        f.install()
            .map_err(|e| format!("the bundle's seccomp profile: {e}"))?;
    }
    // Under a policy that audits, the observing filter last, its listener
    // handed to the container's daemon and closed here (crate::observer).
    match observe {
        Some(link) => link.install()?,
        None => {
            paddock_sandbox::install_container_filters().map_err(|e| format!("seccomp: {e}"))?
        }
    }
    let env: Vec<CString> = process
        .env
        .iter()
        .filter_map(|e| CString::new(e.as_str()).ok())
        .collect();
    let argv: Vec<CString> = process
        .args
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| format!("argument `{a}` holds a NUL byte")))
        .collect::<Result<_, _>>()?;
    let prog = find_program(&process.args[0], &process.env)
        .ok_or_else(|| format!("{}: not found in the container's PATH", process.args[0]))?;
    let path = CString::new(prog.as_os_str().as_encoded_bytes()).map_err(|_| "program path")?;
    let e = paddock_sys::execve(&path, &argv, &env);
    // The runtime has exited: say why on the container's stderr.
    let _ = writeln!(
        std::io::stderr(),
        "paddock-oci: exec {}: {e}",
        process.args[0]
    );
    paddock_sys::exit_now(127);
}

/// The engine's console socket, connected (on the host), when the process
/// has a terminal.
pub(crate) fn console_socket(
    terminal: bool,
    path: Option<&Path>,
) -> Result<Option<UnixStream>, String> {
    if !terminal {
        return Ok(None);
    }
    let sock = path.ok_or("process.terminal is set but no --console-socket was given")?;
    UnixStream::connect(sock)
        .map(Some)
        .map_err(|e| format!("console socket {}: {e}", sock.display()))
}

/// A pty made here (on the devpts this process sees), its master handed
/// to the engine over the console socket; the slave is returned.
pub(crate) fn terminal(console: &UnixStream) -> Result<OwnedFd, String> {
    let (master, slave) = paddock_sys::openpty().map_err(|e| format!("openpty: {e}"))?;
    paddock_sys::send_fd(console.as_fd(), master.as_fd())
        .map_err(|e| format!("console socket: {e}"))?;
    Ok(slave)
}

/// The program `arg0` names: a path, or found on the `PATH` in `env`.
fn find_program(arg0: &str, env: &[String]) -> Option<PathBuf> {
    if arg0.contains('/') {
        return Some(PathBuf::from(arg0));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|d| Path::new(d).join(arg0))
        .find(|p| p.is_file())
}

/// `/proc/self/fd/N` for an fd: mounting there mounts on what it pins.
fn magic(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A real directory fd from an `O_PATH` one (for `*at` calls that create).
fn reopen_dir(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(magic(fd))?;
    Ok(f.into())
}

/// The mount target `dest` inside the root, made if missing (folders, or
/// for `file` an empty file), every step resolved with `RESOLVE_IN_ROOT`.
/// With `strict`, no symbolic link may be on the way at all (the mounts of
/// kernel filesystems: an image has no reason to make `/proc` a link).
fn target_in(root: &OwnedFd, dest: &Path, dir: bool, strict: bool) -> Result<OwnedFd, String> {
    target_in_depth(root, dest, dir, strict, 0)
}

fn target_in_depth(
    root: &OwnedFd,
    dest: &Path,
    dir: bool,
    strict: bool,
    depth: u32,
) -> Result<OwnedFd, String> {
    let how = if strict {
        resolve::IN_ROOT | resolve::NO_SYMLINKS
    } else {
        resolve::IN_ROOT
    };
    if depth > 40 {
        return Err("too many levels of symbolic links".into());
    }
    let rel: PathBuf = dest
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if dest.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err("the destination holds `..`".into());
    }
    let mut cur = PathBuf::new();
    let parts: Vec<_> = rel.components().collect();
    for (i, c) in parts.iter().enumerate() {
        let next = cur.join(c);
        let last = i + 1 == parts.len();
        match paddock_sys::openat2_path(Some(root.as_fd()), &next, 0, how) {
            Ok(fd) if last => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) && strict => {
                return Err(format!(
                    "{} is a symbolic link in the image: refused here",
                    Path::new("/").join(&next).display()
                ))
            }
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let parent = paddock_sys::openat2_path(
                    Some(root.as_fd()),
                    if cur.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        &cur
                    },
                    libc::O_DIRECTORY,
                    how,
                )
                .map_err(|e| e.to_string())?;
                let parent = reopen_dir(&parent).map_err(|e| e.to_string())?;
                let name = Path::new(c.as_os_str());
                // A dangling link (an image's `/etc/resolv.conf` into
                // `/run`): made where it points, inside the root.
                if let Ok(to) = paddock_sys::readlinkat(parent.as_fd(), name) {
                    if strict {
                        return Err(format!(
                            "{} is a symbolic link in the image: refused here",
                            Path::new("/").join(&next).display()
                        ));
                    }
                    let next = if to.is_absolute() {
                        to
                    } else {
                        Path::new("/").join(&cur).join(to)
                    };
                    let rest: PathBuf = parts[i + 1..].iter().collect();
                    return target_in_depth(root, &next.join(rest), dir, strict, depth + 1);
                }
                if last && !dir {
                    paddock_sys::openat(
                        parent.as_fd(),
                        name,
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                        0o644,
                    )
                    .map_err(|e| e.to_string())?;
                } else {
                    match paddock_sys::mkdirat(parent.as_fd(), name, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
                if last {
                    return paddock_sys::openat2_path(Some(root.as_fd()), &next, 0, how)
                        .map_err(|e| e.to_string());
                }
            }
            Err(e) => return Err(e.to_string()),
        }
        cur = next;
    }
    // The root itself.
    paddock_sys::openat2_path(Some(root.as_fd()), Path::new("."), 0, resolve::IN_ROOT)
        .map_err(|e| e.to_string())
}

fn mount_one(root: &OwnedFd, m: &Mount) -> Result<(), String> {
    let (flags, _prop, data) = mount_options(&m.options);
    let kind = m.kind.as_deref().unwrap_or(if flags & libc::MS_BIND != 0 {
        "bind"
    } else {
        "none"
    });
    let bind = kind == "bind" || flags & libc::MS_BIND != 0;
    let dest = Path::new(&m.destination);
    if kind == "cgroup" || kind == "cgroup2" {
        // The host's cgroup tree is not the container's business: an empty
        // read-only tmpfs in its place (limits degrade, as `paddock run`'s).
        let target = target_in(root, dest, true, true)?;
        return paddock_sys::mount(
            Some("tmpfs"),
            &magic(&target),
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("size=4k,mode=555"),
        )
        .map_err(|e| e.to_string());
    }
    if bind {
        // A detached copy of the source with its final attributes, then
        // attached on the target found once: nothing is looked up again
        // through what was just mounted.
        let src = m.source.as_deref().ok_or("a bind mount needs a source")?;
        let src_fd = paddock_sys::openat2_path(None, Path::new(src), 0, 0)
            .map_err(|e| format!("source {src}: {e}"))?;
        // The host's own proc or sysfs, or another of its kernel
        // filesystems, or a part of one: its processes, its /proc/sys,
        // its cgroups, unmasked. Refused, and so is a recursive bind that
        // would copy one along from below the source.
        if paddock_sys::fs_magic(src_fd.as_fd()).is_ok_and(|m| KERNEL_FS_MAGIC.contains(&m)) {
            return Err(format!(
                "source {src} is on the host's proc or sysfs, or another of its kernel filesystems: refused (the container has its own)"
            ));
        }
        if flags & libc::MS_REC != 0 {
            let real =
                std::fs::read_link(magic(&src_fd)).map_err(|e| format!("source {src}: {e}"))?;
            if let Some((at, kind)) =
                kernel_fs_below(&real).map_err(|e| format!("source {src}: {e}"))?
            {
                return Err(format!(
                    "source {src} is bound recursively and holds the host's {kind} at {}: refused (bind it without `rbind`, or bind a folder with no kernel filesystem below it)",
                    at.display()
                ));
            }
        }
        let meta = std::fs::metadata(magic(&src_fd)).map_err(|e| format!("source {src}: {e}"))?;
        let is_dir = meta.is_dir();
        let tree = paddock_sys::open_tree_clone(src_fd.as_fd(), flags & libc::MS_REC != 0)
            .map_err(|e| format!("source {src}: {e}"))?;
        // A bind of one of the host's device nodes is how a rootless
        // engine gives a device (`--device`): that one node works, unless
        // the mount says nodev. Everything else stays nodev.
        use std::os::unix::fs::FileTypeExt;
        let node = meta.file_type().is_char_device() || meta.file_type().is_block_device();
        let mut set = if node && flags & libc::MS_NODEV == 0 {
            0
        } else {
            attr::NODEV
        };
        for (ms, a) in [
            (libc::MS_RDONLY, attr::RDONLY),
            (libc::MS_NOSUID, attr::NOSUID),
            (libc::MS_NOEXEC, attr::NOEXEC),
        ] {
            if flags & ms != 0 {
                set |= a;
            }
        }
        paddock_sys::mount_setattr(tree.as_fd(), true, set, 0).map_err(|e| e.to_string())?;
        let target = target_in(root, dest, is_dir, false)?;
        return paddock_sys::move_mount(tree.as_fd(), target.as_fd()).map_err(|e| e.to_string());
    }
    // A kernel filesystem: on a target with no link on the way, with its
    // flags at once (nodev but for the pty filesystem). proc only at /proc
    // and sysfs only at /sys, read-only: anywhere else nothing would mask
    // them, and a writable sysfs writes the host's.
    if !MOUNTABLE_TYPES.contains(&kind) {
        return Err(format!(
            "filesystem type `{kind}` is refused: a container mounts only binds and {} (any other type can read the host's disks or kernel)",
            MOUNTABLE_TYPES.join(", ")
        ));
    }
    let mut flags = flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
    if kind != "devpts" {
        flags |= libc::MS_NODEV;
    }
    let at = dest.components().collect::<PathBuf>();
    match kind {
        "proc" if at != Path::new("/proc") => {
            return Err("a proc filesystem only at /proc: anywhere else it is not masked".into())
        }
        "sysfs" if at != Path::new("/sys") => return Err("a sysfs only at /sys".into()),
        "sysfs" => flags |= libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
        _ => {}
    }
    let target = target_in(root, dest, true, true)?;
    let data = data.join(",");
    let source = m.source.clone().unwrap_or_else(|| kind.to_string());
    paddock_sys::mount(
        Some(&source),
        &magic(&target),
        Some(kind),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| e.to_string())
}

/// Cover `p` (inside the container; no link on the way): a folder with
/// an empty read-only tmpfs, anything else with `/dev/null`. Missing:
/// nothing to hide.
fn mask(p: &Path) -> Result<(), String> {
    let fd = match paddock_sys::openat2_path(None, p, 0, resolve::NO_SYMLINKS) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e.to_string()),
        Ok(fd) => fd,
    };
    let is_dir = std::fs::metadata(magic(&fd))
        .map_err(|e| e.to_string())?
        .is_dir();
    if is_dir {
        return paddock_sys::mount(
            Some("tmpfs"),
            &magic(&fd),
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NODEV | libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("size=0"),
        )
        .map_err(|e| e.to_string());
    }
    let null = paddock_sys::openat2_path(None, Path::new("/dev/null"), 0, resolve::NO_SYMLINKS)
        .map_err(|e| e.to_string())?;
    let tree = paddock_sys::open_tree_clone(null.as_fd(), false).map_err(|e| e.to_string())?;
    paddock_sys::move_mount(tree.as_fd(), fd.as_fd()).map_err(|e| e.to_string())
}

/// Make `p` (inside the container; no link on the way) read-only: a
/// read-only copy of itself attached on itself.
fn read_only(p: &Path) -> Result<(), String> {
    let fd = match paddock_sys::openat2_path(None, p, 0, resolve::NO_SYMLINKS) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e.to_string()),
        Ok(fd) => fd,
    };
    let tree = paddock_sys::open_tree_clone(fd.as_fd(), true).map_err(|e| e.to_string())?;
    paddock_sys::mount_setattr(
        tree.as_fd(),
        true,
        attr::RDONLY | attr::NOSUID | attr::NODEV | attr::NOEXEC,
        0,
    )
    .map_err(|e| e.to_string())?;
    paddock_sys::move_mount(tree.as_fd(), fd.as_fd()).map_err(|e| e.to_string())
}

/// `startContainer`'s hooks, in the container after `start`: each forked
/// from the first process and confined as the container's program is
/// (`confine`, which only returns with an error), given the state on its
/// standard input; the first that fails, or outlives its timeout.
pub(crate) fn run_confined_hooks(
    hooks: &[crate::hooks::Hook],
    process: &crate::config::Process,
    state: &str,
    confine: &dyn Fn(&crate::config::Process) -> String,
) -> Result<(), String> {
    use std::os::fd::AsFd;
    for (i, h) in hooks.iter().enumerate() {
        let what = format!("hooks.startContainer[{i}] {}", h.path);
        let mut p = process.clone();
        p.args = std::iter::once(h.path.clone())
            .chain(h.args.iter().skip(1).cloned())
            .collect();
        p.env = h.env.clone();
        let (mut ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(|e| format!("{what}: {e}"))?;
        ours.write_all(state.as_bytes())
            .and_then(|()| ours.shutdown(std::net::Shutdown::Write))
            .map_err(|e| format!("{what}: {e}"))?;
        match paddock_sys::fork().map_err(|e| format!("{what}: fork: {e}"))? {
            paddock_sys::Forked::Child => {
                let why = match paddock_sys::dup2(theirs.as_fd(), 0) {
                    Ok(()) => confine(&p),
                    Err(e) => e.to_string(),
                };
                let _ = writeln!(std::io::stderr(), "paddock-oci: {what}: {why}");
                paddock_sys::exit_now(127);
            }
            paddock_sys::Forked::Parent { pid, .. } => {
                drop(theirs);
                let deadline = h.timeout.map(|t| {
                    std::time::Instant::now() + std::time::Duration::from_secs(t.max(1) as u64)
                });
                let status = loop {
                    match paddock_sys::waitpid(pid, deadline.is_some()) {
                        Ok(Some((_, s))) => break s,
                        Ok(None) if deadline.is_some_and(|d| std::time::Instant::now() >= d) => {
                            let _ = paddock_sys::kill(pid, libc::SIGKILL);
                            let _ = paddock_sys::waitpid(pid, false);
                            return Err(format!(
                                "{what}: did not end within its timeout of {}s",
                                h.timeout.unwrap_or(0)
                            ));
                        }
                        Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
                        Err(e) => return Err(format!("{what}: {e}")),
                    }
                };
                if status.code() != 0 {
                    return Err(format!("{what}: exit status {}", status.code()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Device;

    fn device(kind: &str, path: &str, major: u32, minor: u32) -> Device {
        Device {
            kind: kind.into(),
            path: path.into(),
            major,
            minor,
            ..Device::default()
        }
    }

    #[test]
    fn a_device_is_the_hosts_node_of_that_number_or_refused_with_why() {
        // /dev/null is 1:3 on every Linux host; found under another name too.
        assert_eq!(
            host_device(&device("c", "/dev/null", 1, 3)).unwrap(),
            Path::new("/dev/null")
        );
        assert_eq!(
            host_device(&device("c", "/dev/mynull", 1, 3)).unwrap(),
            Path::new("/dev/null")
        );
        for (d, why) in [
            (device("p", "/dev/fifo", 0, 0), "type `p` is not supported"),
            (device("c", "/etc/null", 1, 3), "goes under /dev"),
            (device("c", "/dev/../etc/x", 1, 3), "goes under /dev"),
            (device("c", "dev/null", 1, 3), "goes under /dev"),
            // 1:3 is a character device, not a block one.
            (device("b", "/dev/null", 1, 3), "no block device 1:3"),
            (
                device("c", "/dev/nothing", 4095, 1_048_575),
                "no character device",
            ),
        ] {
            let e = host_device(&d).unwrap_err();
            assert!(e.contains(why), "{}: {e}", d.path);
            assert!(e.contains(&d.path), "{e}");
        }
    }
}

//! `create`: from a bundle to a container process that waits, confined,
//! for `start`. The steps, in the order the boundary depends on:
//!
//! **The runtime, on the host:**
//! 1. Read and check `config.json` (what is not honoured is refused).
//! 2. Make the container's folder and its `exec.fifo`, and open the
//!    namespaces the bundle names by path (podman's network namespace).
//! 3. With a terminal, make a pty and hand its master to the engine over
//!    `--console-socket`.
//! 4. Clone the container's process into the new namespaces and wait for
//!    its word: ready (write the pid file, exit 0) or the step that failed
//!    (remove everything, exit 1). The process stays, re-parented to the
//!    engine's monitor (conmon, containerd's shim), blocked on the fifo.
//!
//! **The container's process, in its namespaces** ([`container`]):
//! 1. Join the namespaces named by path; make every mount private, so
//!    nothing made here reaches the host.
//! 2. Bind the root filesystem onto itself, then make each of the bundle's
//!    mounts, every target opened inside the root with `RESOLVE_IN_ROOT`
//!    (a symbolic link in the image cannot point a mount at the host).
//! 3. The default devices (bound from the host's `null`, `zero`, `full`,
//!    `random`, `urandom`, `tty`) and the `/dev` links.
//! 4. `pivot_root` into the root and detach the old one: no path leads to
//!    the host's tree from here on. Then the masked and read-only paths,
//!    the root read-only if asked, sysctls, the hostname, limits.
//! 5. Say "ready", and block opening the fifo for writing until `start`
//!    opens it for reading.
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

use paddock_sys::{mflags, resolve};

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
}

/// Run `create`. On error nothing is left behind: no folder, no process.
pub fn create(c: &Create<'_>) -> Result<(), String> {
    state::valid_id(c.id)?;
    let bundle = std::fs::canonicalize(c.bundle)
        .map_err(|e| format!("bundle {}: {e}", c.bundle.display()))?;
    let cfg = Config::load(&bundle)?;
    let linux = cfg.linux.as_ref();
    if linux.is_some_and(|l| !l.devices.is_empty()) {
        return Err(
            "linux.devices: extra devices (--device) are not supported by this runtime yet".into(),
        );
    }
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
    let console = if terminal {
        let Some(sock) = c.console_socket else {
            return Err(undo(
                "process.terminal is set but no --console-socket was given".into(),
            ));
        };
        Some(
            UnixStream::connect(sock)
                .map_err(|e| undo(format!("console socket {}: {e}", sock.display())))?,
        )
    } else {
        None
    };
    let (parent_end, child_end) = UnixStream::pair().map_err(|e| undo(e.to_string()))?;
    match paddock_sys::clone_into_namespaces(flags).map_err(|e| undo(format!("clone: {e}")))? {
        paddock_sys::Forked::Child => {
            drop(parent_end);
            let mut sync = child_end;
            let why = container(
                &cfg,
                &rootfs,
                &join,
                &fifo_fd,
                console,
                &filters,
                c.preserve_fds,
                flags,
                &mut sync,
            );
            let _ = sync.write_all(format!("ERR {why}").as_bytes());
            paddock_sys::exit_now(1);
        }
        paddock_sys::Forked::Parent { pid, .. } => {
            drop(child_end);
            let mut said = String::new();
            let mut parent_end = parent_end;
            let mut buf = [0u8; 4096];
            // The child says "READY" and keeps the socket open while it
            // waits on the fifo; an error closes it.
            let n = parent_end.read(&mut buf).unwrap_or(0);
            said.push_str(&String::from_utf8_lossy(&buf[..n]));
            if said != "READY" {
                let _ = paddock_sys::kill(pid, libc::SIGKILL);
                let _ = paddock_sys::waitpid(pid, false);
                let why = said
                    .strip_prefix("ERR ")
                    .unwrap_or("the container's process ended before it was ready");
                return Err(undo(format!("container `{}`: {why}", c.id)));
            }
            let record = Record {
                id: c.id.to_string(),
                pid,
                start_time: paddock_sys::process_start_time(pid).unwrap_or(0),
                bundle: bundle.display().to_string(),
                rootfs: rootfs.display().to_string(),
                created: state::now_rfc3339(),
                annotations: cfg.annotations.clone(),
                owner: String::new(),
            };
            state::save(c.root, &record).map_err(undo)?;
            if let Some(p) = c.pid_file {
                let tmp = p.with_extension("paddock-tmp");
                std::fs::write(&tmp, pid.to_string())
                    .and_then(|()| std::fs::rename(&tmp, p))
                    .map_err(|e| format!("pid file {}: {e}", p.display()))?;
            }
            Ok(())
        }
    }
}

/// The container's process: returns only with the step that failed.
#[allow(clippy::too_many_arguments)]
fn container(
    cfg: &Config,
    rootfs: &Path,
    join: &[(String, File)],
    fifo: &OwnedFd,
    console: Option<UnixStream>,
    filters: &Option<paddock_sandbox::ContainerFilters>,
    preserve_fds: u32,
    flags: u64,
    sync: &mut UnixStream,
) -> String {
    match setup(
        cfg,
        rootfs,
        join,
        fifo,
        console,
        filters,
        preserve_fds,
        flags,
        sync,
    ) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

pub(crate) enum Never {}

#[allow(clippy::too_many_arguments)]
fn setup(
    cfg: &Config,
    rootfs: &Path,
    join: &[(String, File)],
    fifo: &OwnedFd,
    console: Option<UnixStream>,
    filters: &Option<paddock_sandbox::ContainerFilters>,
    preserve_fds: u32,
    flags: u64,
    sync: &mut UnixStream,
) -> Result<Never, String> {
    let step = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    let linux = cfg.linux.as_ref();
    let process = cfg.process.as_ref().ok_or("no process")?;
    // 1. Namespaces by path; every mount private.
    for (kind, f) in join {
        paddock_sys::setns(f.as_fd()).map_err(step(&format!("joining the {kind} namespace")))?;
    }
    let prop = match linux.and_then(|l| l.rootfs_propagation.as_deref()) {
        Some("slave" | "rslave") => libc::MS_SLAVE,
        _ => libc::MS_PRIVATE,
    };
    paddock_sys::mount(None, Path::new("/"), None, prop | libc::MS_REC, None)
        .map_err(step("making the host's mounts private"))?;
    // 2. The root, and the bundle's mounts inside it.
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
    for m in &cfg.mounts {
        mount_one(&root_fd, m).map_err(|e| format!("mount {}: {e}", m.destination))?;
    }
    // 3. Devices and links.
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = PathBuf::from("/dev").join(d);
        let target = target_in(&root_fd, &PathBuf::from("/dev").join(d), false)
            .map_err(|e| format!("/dev/{d}: {e}"))?;
        paddock_sys::mount(host.to_str(), &magic(&target), None, libc::MS_BIND, None)
            .map_err(step(&format!("/dev/{d}")))?;
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
            resolve::IN_ROOT,
        )
        .map_err(step("/dev"))?;
        let dev = reopen_dir(&dev).map_err(step("/dev"))?;
        match paddock_sys::symlinkat(Path::new(to), dev.as_fd(), Path::new(link)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(format!("/dev/{link}: {e}")),
        }
    }
    // 4. Into the root.
    paddock_sys::fchdir(root_fd.as_fd()).map_err(step("entering the root"))?;
    drop(root_fd);
    paddock_sys::pivot_root_here().map_err(step("pivot_root"))?;
    paddock_sys::umount_detach(Path::new("/")).map_err(step("detaching the host's root"))?;
    std::env::set_current_dir("/").map_err(step("chdir /"))?;
    for (k, v) in linux.map(|l| &l.sysctl).into_iter().flatten() {
        if k.contains("..") || k.contains('/') {
            return Err(format!("sysctl `{k}` is not a sysctl name"));
        }
        let p = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&p, v).map_err(|e| format!("sysctl {k}: {e}"))?;
    }
    for p in linux.map(|l| l.masked_paths.as_slice()).unwrap_or_default() {
        mask(Path::new(p)).map_err(|e| format!("masking {p}: {e}"))?;
    }
    for p in linux
        .map(|l| l.readonly_paths.as_slice())
        .unwrap_or_default()
    {
        read_only(Path::new(p)).map_err(|e| format!("read-only {p}: {e}"))?;
    }
    if cfg.root.as_ref().is_some_and(|r| r.readonly) {
        paddock_sys::mount(
            None,
            Path::new("/"),
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )
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
    confine_and_exec(process, tty, filters, preserve_fds)
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
) -> Result<Never, String> {
    let step = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    for r in &process.rlimits {
        let res = rlimit(&r.kind).ok_or("rlimit")?;
        paddock_sys::set_rlimit_pair(res, r.soft, r.hard)
            .map_err(step(&format!("{} {}:{}", r.kind, r.soft, r.hard)))?;
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
    paddock_sys::set_capability_sets(sets).map_err(step("capabilities"))?;
    let u = &process.user;
    paddock_sys::switch_user(u.uid, u.gid, &u.additional_gids, true).map_err(step("user"))?;
    paddock_sys::set_capability_sets(sets).map_err(step("capabilities as the user"))?;
    paddock_sys::set_umask(u.umask.unwrap_or(0o022));
    let cwd = if process.cwd.is_empty() {
        "/"
    } else {
        &process.cwd
    };
    std::env::set_current_dir(cwd).map_err(step(&format!("cwd {cwd}")))?;
    paddock_sys::cloexec_from(3 + preserve_fds).map_err(step("closing inherited files"))?;
    // The bundle's profile, then paddock's filters: the kernel keeps the
    // most restrictive answer of all.
    if let Some(f) = filters {
        f.install()
            .map_err(|e| format!("the bundle's seccomp profile: {e}"))?;
    }
    paddock_sandbox::install_container_filters().map_err(|e| format!("seccomp: {e}"))?;
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
fn target_in(root: &OwnedFd, dest: &Path, dir: bool) -> Result<OwnedFd, String> {
    target_in_depth(root, dest, dir, 0)
}

fn target_in_depth(root: &OwnedFd, dest: &Path, dir: bool, depth: u32) -> Result<OwnedFd, String> {
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
        match paddock_sys::openat2_path(Some(root.as_fd()), &next, 0, resolve::IN_ROOT) {
            Ok(fd) if last => return Ok(fd),
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
                    resolve::IN_ROOT,
                )
                .map_err(|e| e.to_string())?;
                let parent = reopen_dir(&parent).map_err(|e| e.to_string())?;
                let name = Path::new(c.as_os_str());
                // A dangling link (an image's `/etc/resolv.conf` into
                // `/run`): made where it points, inside the root.
                if let Ok(to) = paddock_sys::readlinkat(parent.as_fd(), name) {
                    let next = if to.is_absolute() {
                        to
                    } else {
                        Path::new("/").join(&cur).join(to)
                    };
                    let rest: PathBuf = parts[i + 1..].iter().collect();
                    return target_in_depth(root, &next.join(rest), dir, depth + 1);
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
                    return paddock_sys::openat2_path(
                        Some(root.as_fd()),
                        &next,
                        0,
                        resolve::IN_ROOT,
                    )
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
    let (mut flags, prop, data) = mount_options(&m.options);
    let kind = m.kind.as_deref().unwrap_or(if flags & libc::MS_BIND != 0 {
        "bind"
    } else {
        "none"
    });
    let bind = kind == "bind" || flags & libc::MS_BIND != 0;
    if kind == "cgroup" || kind == "cgroup2" {
        // The host's cgroup tree is not the container's business: an empty
        // read-only tmpfs in its place (limits degrade, as `paddock run`'s).
        let target = target_in(root, Path::new(&m.destination), true)?;
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
        let src = m.source.as_deref().ok_or("a bind mount needs a source")?;
        let meta = std::fs::metadata(src).map_err(|e| format!("source {src}: {e}"))?;
        let target = target_in(root, Path::new(&m.destination), meta.is_dir())?;
        let rec = flags & libc::MS_REC;
        paddock_sys::mount(Some(src), &magic(&target), None, libc::MS_BIND | rec, None)
            .map_err(|e| e.to_string())?;
        let extra = flags & (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
        if extra != 0 {
            // Re-open: the fd pins the mount point under the new mount.
            let target = target_in(root, Path::new(&m.destination), meta.is_dir())?;
            paddock_sys::mount(
                None,
                &magic(&target),
                None,
                libc::MS_BIND | libc::MS_REMOUNT | extra,
                None,
            )
            .map_err(|e| e.to_string())?;
        }
        if prop != 0 {
            let target = target_in(root, Path::new(&m.destination), meta.is_dir())?;
            paddock_sys::mount(None, &magic(&target), None, prop, None)
                .map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    flags &= !(libc::MS_BIND | libc::MS_REC);
    let target = target_in(root, Path::new(&m.destination), true)?;
    let data = data.join(",");
    let source = m.source.clone().unwrap_or_else(|| kind.to_string());
    paddock_sys::mount(
        Some(&source),
        &magic(&target),
        Some(kind),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| e.to_string())?;
    if prop != 0 {
        let target = target_in(root, Path::new(&m.destination), true)?;
        paddock_sys::mount(None, &magic(&target), None, prop, None).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Cover `p` (inside the container): a folder with an empty read-only
/// tmpfs, anything else with `/dev/null`. Missing: nothing to hide.
fn mask(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => paddock_sys::mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            libc::MS_RDONLY,
            Some("size=0"),
        ),
        Ok(_) => paddock_sys::mount(Some("/dev/null"), p, None, libc::MS_BIND, None),
    }
}

/// Make `p` read-only (a bind of itself, remounted read-only).
fn read_only(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    paddock_sys::mount(p.to_str(), p, None, libc::MS_BIND | libc::MS_REC, None)?;
    paddock_sys::mount(
        None,
        p,
        None,
        mflags::BIND
            | mflags::REMOUNT
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC,
        None,
    )
}

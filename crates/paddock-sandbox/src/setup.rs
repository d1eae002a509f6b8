//! The filesystem the sandbox sees, built in one ordered sequence.
//!
//! This runs inside the new user and mount namespaces, as the sandbox's
//! pid 1, before any untrusted code exists. The order matters and each step
//! says why it comes where it does:
//!
//! 1. Make every inherited mount a slave, so nothing we mount or unmount
//!    propagates back to the host.
//! 2. Open every host object we will show (system folders, devices, the
//!    user's mounts, protected paths) *now*, with `openat2` refusing every
//!    symbolic link, and clone each into a detached mount with its final
//!    attributes (read-only, nosuid, nodev) already set. Doing this before
//!    anything is covered means even sources under `/tmp` are reachable, and
//!    the fd pins the checked object: there is no window between check and
//!    mount (no TOCTOU).
//! 3. Mount a fresh tmpfs as the future root and build the skeleton in it.
//!    Only paths inside this tmpfs are ever created; a mount target inside a
//!    host folder must already exist (checked on the host side too).
//! 4. Attach the detached trees, parents first, each target opened with
//!    `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH` so a link planted in a mounted
//!    folder cannot redirect a mount.
//! 5. Cover protected paths (`.git`, `.paddock`, ...) with read-only clones
//!    of themselves, and host secrets under `/etc` with empty read-only
//!    files.
//! 6. `pivot_root` into the new root and lazily detach the old one: from here
//!    on, no path leads to the host's tree.
//! 7. Make the root itself read-only.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use paddock_sys::{self as sys, attr, mflags, resolve};

use crate::prepare::Prepared;
use crate::spec::{MountMode, HIDDEN_SYSTEM_PATHS};

/// A failed step: which one, and the error.
#[derive(Debug)]
pub(crate) struct StepError {
    pub step: &'static str,
    pub detail: String,
}

fn step<T>(name: &'static str, what: &Path, r: io::Result<T>) -> Result<T, StepError> {
    r.map_err(|e| StepError {
        step: name,
        detail: format!("{}: {e}", what.display()),
    })
}

/// System folders shown read-only at the same path. A folder that is a
/// symbolic link on the host (`/bin -> usr/bin` on merged-/usr systems) is
/// recreated as the same link.
pub(crate) const SYSTEM_DIRS: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt",
];

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
fn open_nofollow(path: &Path) -> io::Result<OwnedFd> {
    sys::openat2_path(None, path, 0, resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS)
}

/// Open `rel` beneath `root`, refusing symbolic links and `..` escapes.
fn open_beneath(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    sys::openat2_path(
        Some(root),
        rel,
        0,
        resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS | resolve::BENEATH,
    )
}

/// A detached clone of the mount tree at `fd`, with `attrs` set throughout.
fn detached_clone(fd: BorrowedFd<'_>, recursive: bool, attrs: u64) -> io::Result<OwnedFd> {
    let tree = sys::open_tree_clone(fd, recursive)?;
    if attrs != 0 {
        sys::mount_setattr(tree.as_fd(), recursive, attrs, 0)?;
    }
    Ok(tree)
}

fn rel(p: &Path) -> &Path {
    p.strip_prefix("/").unwrap_or(p)
}

/// Make sure `rel` exists beneath `root` as a directory (or an empty file),
/// creating missing components only when `may_create` (i.e. inside our own
/// tmpfs), and return an `O_PATH` fd to it.
fn ensure(root: BorrowedFd<'_>, rel: &Path, dir: bool, may_create: bool) -> io::Result<OwnedFd> {
    match open_beneath(root, rel) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.kind() == io::ErrorKind::NotFound && may_create => {}
        Err(e) => return Err(e),
    }
    let mut cur = PathBuf::new();
    let n = rel.components().count();
    for (i, comp) in rel.components().enumerate() {
        cur.push(comp);
        match open_beneath(root, &cur) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let parent = match cur.parent() {
            Some(p) if !p.as_os_str().is_empty() => sys::openat2_path(
                Some(root),
                p,
                libc::O_DIRECTORY,
                resolve::NO_SYMLINKS | resolve::BENEATH,
            )?,
            _ => sys::openat2_path(Some(root), Path::new("."), libc::O_DIRECTORY, 0)?,
        };
        let name = Path::new(comp.as_os_str());
        if i + 1 == n && !dir {
            // An empty regular file to mount a file on.
            sys::openat(
                parent.as_fd(),
                name,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                0o644,
            )?;
        } else {
            sys::mkdirat(parent.as_fd(), name, 0o755)?;
        }
    }
    open_beneath(root, rel)
}

fn tmpfs(target: &Path, flags: u64, opts: &str) -> io::Result<()> {
    sys::mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(opts))
}

/// Is `target` strictly inside a host folder that is already attached?
fn inside_host_mount(attached: &[PathBuf], target: &Path) -> bool {
    attached
        .iter()
        .any(|a| target.starts_with(a) && target != a)
}

/// Build the sandbox's filesystem and enter it. On return, `/` is the new
/// root and the host's tree is unreachable.
pub(crate) fn build_root(p: &Prepared) -> Result<(), StepError> {
    let staging = Path::new(STAGING);

    // 1. No propagation back to the host.
    step(
        "make-mounts-slave",
        Path::new("/"),
        sys::mount(
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
        match std::fs::symlink_metadata(&host) {
            Ok(md) if md.file_type().is_symlink() => {
                let t = step("read-system-link", &host, std::fs::read_link(&host))?;
                links.push((name, t));
            }
            Ok(md) if md.is_dir() => {
                let fd = step("open-system-dir", &host, open_nofollow(&host))?;
                let tree = step(
                    "clone-system-dir",
                    &host,
                    detached_clone(fd.as_fd(), true, RO),
                )?;
                system.push((name, tree));
            }
            _ => {}
        }
    }
    let mut devices: Vec<(&str, OwnedFd)> = Vec::new();
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if let Ok(fd) = open_nofollow(&host) {
            let tree = step(
                "clone-device",
                &host,
                detached_clone(fd.as_fd(), false, attr::NOSUID | attr::NOEXEC),
            )?;
            devices.push((name, tree));
        }
    }
    let sys_cpu = match open_nofollow(Path::new(SYS_CPU)) {
        Ok(fd) => Some(step(
            "clone-sys-cpu",
            Path::new(SYS_CPU),
            detached_clone(fd.as_fd(), true, RO | attr::NOEXEC),
        )?),
        Err(_) => None,
    };
    // User mounts: a detached clone, or for `cow` the lower folder's fd.
    let mut user: Vec<(OwnedFd, bool)> = Vec::with_capacity(p.mounts.len());
    for m in &p.mounts {
        let fd = step("open-mount-source", &m.source, open_nofollow(&m.source))?;
        let is_dir = std::fs::metadata(&m.source)
            .map(|md| md.is_dir())
            .unwrap_or(true);
        let item = match m.mode {
            MountMode::Cow => fd,
            MountMode::Ro => step(
                "clone-mount",
                &m.source,
                detached_clone(fd.as_fd(), true, RO),
            )?,
            MountMode::Rw | MountMode::RwNoDelete => step(
                "clone-mount",
                &m.source,
                detached_clone(fd.as_fd(), true, RW),
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
                let up = step("open-cow-layer", &base, open_nofollow(&base.join("upper")))?;
                let work = step("open-cow-layer", &base, open_nofollow(&base.join("work")))?;
                Some((up, work))
            }
            _ => None,
        };
        layers.push(l);
    }
    let mut protected: Vec<OwnedFd> = Vec::with_capacity(p.protected.len());
    for pr in &p.protected {
        let fd = step("open-protected", &pr.source, open_nofollow(&pr.source))?;
        protected.push(step(
            "clone-protected",
            &pr.source,
            detached_clone(fd.as_fd(), true, RO),
        )?);
    }

    // 3. The new root: a tmpfs over the staging folder (our own mount
    // namespace: the host's /tmp is untouched and reappears after pivot).
    step(
        "mount-root-tmpfs",
        staging,
        tmpfs(
            staging,
            mflags::NOSUID | mflags::NODEV,
            "mode=0755,size=16m",
        ),
    )?;
    let root = step("open-root", staging, open_nofollow(staging))?;
    let rootfd = root.as_fd();

    for (name, tree) in &system {
        let t = step(
            "mkdir-system",
            Path::new(name),
            ensure(rootfd, Path::new(name), true, true),
        )?;
        step(
            "attach-system-dir",
            Path::new(name),
            sys::move_mount(tree.as_fd(), t.as_fd()),
        )?;
    }
    for (name, target) in &links {
        step(
            "link-system-dir",
            Path::new(name),
            sys::symlinkat(target, rootfd, Path::new(name)),
        )?;
    }

    // /dev: a small tmpfs with only harmless nodes, a private devpts (no
    // access to the host's other terminals) and a private /dev/shm.
    let dev = staging.join("dev");
    step(
        "mkdir-dev",
        &dev,
        ensure(rootfd, Path::new("dev"), true, true),
    )?;
    step(
        "mount-dev",
        &dev,
        tmpfs(&dev, mflags::NOSUID | mflags::NOEXEC, "mode=0755,size=64k"),
    )?;
    for (name, tree) in &devices {
        let r = Path::new("dev").join(name);
        let t = step("mknod-dev", &r, ensure(rootfd, &r, false, true))?;
        step(
            "attach-device",
            &r,
            sys::move_mount(tree.as_fd(), t.as_fd()),
        )?;
    }
    let pts = dev.join("pts");
    step(
        "mkdir-devpts",
        &pts,
        ensure(rootfd, Path::new("dev/pts"), true, true),
    )?;
    step(
        "mount-devpts",
        &pts,
        sys::mount(
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
        ensure(rootfd, Path::new("dev/shm"), true, true),
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
            sys::symlinkat(Path::new(target), rootfd, Path::new(name)),
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
        ensure(rootfd, Path::new("proc"), true, true),
    )?;
    step(
        "mount-proc",
        &proc_,
        sys::mount(
            Some("proc"),
            &proc_,
            Some("proc"),
            mflags::NOSUID | mflags::NODEV | mflags::NOEXEC,
            None,
        ),
    )?;
    for sub in PROC_READ_ONLY {
        let r = Path::new("proc").join(sub);
        if let Ok(fd) = open_beneath(rootfd, &r) {
            let tree = step("clone-proc-ro", &r, detached_clone(fd.as_fd(), true, RO))?;
            step(
                "attach-proc-ro",
                &r,
                sys::move_mount(tree.as_fd(), fd.as_fd()),
            )?;
        }
    }

    if let Some(tree) = &sys_cpu {
        let r = rel(Path::new(SYS_CPU));
        let t = step("mkdir-sys", r, ensure(rootfd, r, true, true))?;
        step(
            "attach-sys-cpu",
            r,
            sys::move_mount(tree.as_fd(), t.as_fd()),
        )?;
    }

    // Private scratch space with one size cap for all of it: /tmp, the
    // home folder (empty: the user's real home is never shown, only what is
    // mounted) and /dev/shm are three folders of one tmpfs, so together
    // they hold at most `tmp_size_mib` of host memory. /run is apart, 1 MiB.
    let run = staging.join("run");
    step(
        "mkdir-scratch",
        &run,
        ensure(rootfd, Path::new("run"), true, true),
    )?;
    step(
        "mount-scratch",
        &run,
        tmpfs(&run, mflags::NOSUID | mflags::NODEV, "mode=0755,size=1m"),
    )?;
    let pool = staging.join(".scratch");
    step(
        "mkdir-scratch",
        &pool,
        ensure(rootfd, Path::new(".scratch"), true, true),
    )?;
    step(
        "mount-scratch",
        &pool,
        tmpfs(
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
        step("mkdir-scratch", &dir, std::fs::create_dir(&dir))?;
        step(
            "chmod-scratch",
            &dir,
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)),
        )?;
        let src = step("open-scratch", &dir, open_nofollow(&dir))?;
        let tree = step("clone-scratch", &dir, detached_clone(src.as_fd(), false, 0))?;
        let t = step(
            "mkdir-scratch",
            &target,
            ensure(rootfd, &target, true, true),
        )?;
        step(
            "attach-scratch",
            &target,
            sys::move_mount(tree.as_fd(), t.as_fd()),
        )?;
    }
    // The pool's own mount goes; its three folders stay, one tmpfs.
    step("detach-scratch", &pool, sys::umount_detach(&pool))?;
    let _ = std::fs::remove_dir(&pool);
    step(
        "mkdir-var",
        Path::new("var"),
        ensure(rootfd, Path::new("var"), true, true),
    )?;
    // /var/tmp is /tmp inside, unless a mount lies under the host's
    // /var/tmp (a workspace there): then it is a real folder holding it.
    let under_var_tmp = p.mounts.iter().any(|m| m.target.starts_with("/var/tmp"));
    if under_var_tmp {
        step(
            "mkdir-var-tmp",
            Path::new("var/tmp"),
            ensure(rootfd, Path::new("var/tmp"), true, true),
        )?;
    } else {
        step(
            "link-var-tmp",
            Path::new("var/tmp"),
            sys::symlinkat(Path::new("../tmp"), rootfd, Path::new("var/tmp")),
        )?;
    }

    // 4. The user's mounts, parents first.
    let mut attached: Vec<PathBuf> = Vec::new();
    for (i, (m, (item, is_dir))) in p.mounts.iter().zip(&user).enumerate() {
        let r = rel(&m.target);
        let may_create = !inside_host_mount(&attached, &m.target);
        let target = step(
            "mount-target",
            &m.target,
            ensure(rootfd, r, *is_dir, may_create),
        )?;
        if m.mode == MountMode::Cow {
            let persistent = layers[i].as_ref().map(|(u, w)| (u.as_fd(), w.as_fd()));
            let tree = overlay(i, item.as_fd(), p.tmp_size_mib, rootfd, persistent)?;
            step(
                "attach-cow",
                &m.target,
                sys::move_mount(tree.as_fd(), target.as_fd()),
            )?;
        } else {
            step(
                "attach-mount",
                &m.target,
                sys::move_mount(item.as_fd(), target.as_fd()),
            )?;
        }
        attached.push(m.target.clone());
    }

    // 5. Protected paths: read-only clones of themselves on top.
    for (pr, tree) in p.protected.iter().zip(&protected) {
        let t = step(
            "protect-target",
            &pr.target,
            open_beneath(rootfd, rel(&pr.target)),
        )?;
        step(
            "attach-protected",
            &pr.target,
            sys::move_mount(tree.as_fd(), t.as_fd()),
        )?;
    }
    hide_secrets(rootfd, &p.model.hidden)?;

    // 6. Enter the new root; detach the old one.
    step("chdir-root", staging, sys::fchdir(rootfd))?;
    step("pivot-root", staging, sys::pivot_root_here())?;
    step(
        "detach-old-root",
        Path::new("/"),
        sys::umount_detach(Path::new(".")),
    )?;
    step("chdir", Path::new("/"), std::env::set_current_dir("/"))?;

    // 7. The root tmpfs holds only mount points and links: read-only.
    let newroot = step(
        "open-new-root",
        Path::new("/"),
        open_nofollow(Path::new("/")),
    )?;
    step(
        "root-read-only",
        Path::new("/"),
        sys::mount_setattr(newroot.as_fd(), false, attr::RDONLY, 0),
    )?;
    Ok(())
}

/// Tell the observer which device number files of this overlay's upper
/// layer show (overlayfs gives each layer its own): a socket the sandbox
/// binds in a cow mount is reported by the kernel under the overlay's
/// device and is recognised by it (observe.rs). Learnt by creating and
/// removing one file, which exists only in the upper layer. Best effort:
/// without it such sockets are refused, never wrongly allowed.
fn note_upper_dev(root: BorrowedFd<'_>) {
    let mut r = [0u8; 8];
    if sys::random_bytes(&mut r).is_err() {
        return;
    }
    let name = PathBuf::from(format!(".paddock-layer-{:016x}", u64::from_ne_bytes(r)));
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW;
    let Ok(f) = sys::openat(root, &name, flags, 0o600) else {
        return;
    };
    let (Ok(top), Ok(file)) = (
        sys::fstatat(root, Path::new("")),
        sys::fstatat(f.as_fd(), Path::new("")),
    ) else {
        let _ = sys::unlinkat(root, &name, false);
        return;
    };
    let _ = sys::unlinkat(root, &name, false);
    crate::observe::note_cow_layer(top.dev, file.dev);
}

/// A copy-on-write view of `lower`: an overlay whose upper layer lives in a
/// private, size-capped tmpfs. Returns a detached clone of it.
fn overlay(
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
    step("mkdir-cow", &merged_at, ensure(rootfd, &merged, true, true))?;
    // The upper layer: the session's folder on the host (kept for review),
    // or a private size-capped tmpfs (discarded with the sandbox).
    let (upper, work) = match persistent {
        Some((u, w)) => (
            PathBuf::from(format!("/proc/self/fd/{}", u.as_raw_fd())),
            PathBuf::from(format!("/proc/self/fd/{}", w.as_raw_fd())),
        ),
        None => {
            step("mkdir-cow", &layers_at, ensure(rootfd, &layers, true, true))?;
            step(
                "mount-cow-upper",
                &layers_at,
                tmpfs(
                    &layers_at,
                    mflags::NOSUID | mflags::NODEV,
                    &format!("mode=0755,size={size_mib}m"),
                ),
            )?;
            for d in ["upper", "work"] {
                step(
                    "mkdir-cow",
                    &layers_at.join(d),
                    ensure(rootfd, &layers.join(d), true, true),
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
        sys::mount(
            Some("overlay"),
            &merged_at,
            Some("overlay"),
            mflags::NOSUID | mflags::NODEV,
            Some(&opts),
        ),
    )?;
    let fd = step("open-overlay", &merged_at, open_nofollow(&merged_at))?;
    note_upper_dev(fd.as_fd());
    let tree = step(
        "clone-overlay",
        &merged_at,
        detached_clone(fd.as_fd(), true, 0),
    )?;
    // The staging mounts go away; the overlay keeps its own references.
    step(
        "detach-cow-staging",
        &merged_at,
        sys::umount_detach(&merged_at),
    )?;
    if persistent.is_none() {
        step(
            "detach-cow-staging",
            &layers_at,
            sys::umount_detach(&layers_at),
        )?;
    }
    let _ = std::fs::remove_dir(&merged_at);
    let _ = std::fs::remove_dir(&layers_at);
    Ok(tree)
}

/// Cover host secrets under the read-only system tree with empty read-only
/// files and folders.
fn hide_secrets(rootfd: BorrowedFd<'_>, denied: &[(PathBuf, PathBuf)]) -> Result<(), StepError> {
    let empty_file = Path::new(".hidden-file");
    let empty_dir = Path::new(".hidden-dir");
    let mut made = false;
    // Host secrets under the system tree, then what `filesystem.deny` hides
    // inside the user's mounts (the host path says whether it is a folder).
    let all = HIDDEN_SYSTEM_PATHS
        .iter()
        .map(|h| (PathBuf::from(h), PathBuf::from(h)))
        .chain(denied.iter().cloned());
    for (_, inside) in all {
        let h = inside.as_path();
        let r = rel(h);
        let Ok(target) = open_beneath(rootfd, r) else {
            continue;
        };
        // Stated through the new root (host paths under /tmp are covered
        // by the staging folder by now).
        let Ok(st) = sys::fstatat(target.as_fd(), Path::new("")) else {
            continue;
        };
        if !made {
            step(
                "mk-hidden",
                empty_file,
                ensure(rootfd, empty_file, false, true),
            )?;
            step(
                "mk-hidden",
                empty_dir,
                ensure(rootfd, empty_dir, true, true),
            )?;
            made = true;
        }
        let src = if st.is_dir() { empty_dir } else { empty_file };
        let sfd = step("open-hidden", src, open_beneath(rootfd, src))?;
        let tree = step(
            "clone-hidden",
            src,
            detached_clone(sfd.as_fd(), false, RO | attr::NOEXEC),
        )?;
        step(
            "attach-hidden",
            Path::new(h),
            sys::move_mount(tree.as_fd(), target.as_fd()),
        )?;
    }
    if made {
        let _ = std::fs::remove_file(Path::new(STAGING).join(empty_file));
        let _ = std::fs::remove_dir(Path::new(STAGING).join(empty_dir));
    }
    Ok(())
}

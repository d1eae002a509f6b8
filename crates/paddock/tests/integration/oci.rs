//! paddock as an OCI runtime under a real engine: Debian's podman runs
//! containers from an image built offline (a static busybox imported as a
//! root filesystem) with `--runtime` pointing at `paddock-oci`. Ground
//! truth is what the container printed, its exit codes, the runtime's
//! state folder, and the host's files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::*;

/// `paddock-oci`: a link named so, to the paddock binary (how engines
/// call it).
pub(crate) fn runtime(dir: &Path) -> PathBuf {
    let link = dir.join("paddock-oci");
    let _ = std::os::unix::fs::symlink(paddock_bin(), &link);
    link
}

/// The node's runtime as an engine is given it: a script that runs
/// `paddock-oci` with the node's policy and audit folders, any policy
/// choosable by annotation, after the `exports` lines.
pub(crate) fn node_runtime(root: &Path, exports: &str, policies: &Path, audit: &Path) -> PathBuf {
    let wrapper = root.join("paddock-oci-node");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{exports}exec {} --policy-dir {} --audit-dir {} --policies '*' \"$@\"\n",
            runtime(root).display(),
            policies.display(),
            audit.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["0755", wrapper.to_str().unwrap()])
        .status()
        .unwrap();
    wrapper
}

/// podman with its own storage (nothing of the host's images or
/// containers is touched) and paddock as the runtime.
pub(crate) struct Podman {
    pub(crate) dir: PathBuf,
    pub(crate) rt: PathBuf,
}

impl Podman {
    /// podman with its storage in `root/podman` (made) and `rt` as the
    /// runtime.
    pub(crate) fn at(root: &Path, rt: PathBuf) -> Podman {
        let p = Podman {
            dir: root.join("podman"),
            rt,
        };
        std::fs::create_dir_all(&p.dir).unwrap();
        p
    }

    /// `podman rm -f -t 0` of container `id`, which must succeed.
    pub(crate) fn remove(&self, id: &str) {
        let o = self
            .cmd()
            .args(["rm", "-f", "-t", "0", id])
            .output()
            .unwrap();
        assert!(o.status.success(), "podman rm {id}: {}", stderr(&o));
    }

    pub(crate) fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.args([
            "--root",
            self.dir.join("storage").to_str().unwrap(),
            "--runroot",
            self.dir.join("run").to_str().unwrap(),
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--runtime",
            self.rt.to_str().unwrap(),
        ]);
        c
    }

    /// `podman run` of the busybox image's shell with the limits this
    /// machine's root can set.
    fn run(&self, extra: &[&str], script: &str) -> Output {
        self.run_in(
            "localhost/paddock-test-busybox:1",
            extra,
            &["sh", "-c", script],
        )
    }

    /// `podman exec` of `argv` in container `id`.
    pub(crate) fn exec(&self, id: &str, argv: &[&str]) -> Output {
        self.cmd().arg("exec").arg(id).args(argv).output().unwrap()
    }

    /// `podman run` of `argv` in `image`, with those limits.
    pub(crate) fn run_in(&self, image: &str, extra: &[&str], argv: &[&str]) -> Output {
        self.cmd()
            .args([
                "run",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .args(extra)
            .arg(image)
            .args(argv)
            .output()
            .unwrap()
    }
}

impl Podman {
    /// Whether this user's podman runs containers (rootless needs the
    /// user's subordinate ids in /etc/subuid).
    pub(crate) fn usable(&self) -> bool {
        let ok = self
            .cmd()
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!("note: this user's podman does not run (no /etc/subuid entry?); skipped");
        }
        ok
    }

    /// Remove the storage of a rootless podman, whose files belong to the
    /// user's subordinate ids (the test's own clean-up cannot).
    pub(crate) fn clean(&self) {
        if running_as_root() {
            return;
        }
        let _ = self
            .cmd()
            .args(["unshare", "rm", "-rf"])
            .arg(self.dir.join("storage"))
            .arg(self.dir.join("run"))
            .output();
    }
}

/// Rootless podman (the runtime runs as root of a user namespace mapped
/// onto the user): run with exit codes, the attacks from inside, exec,
/// logs, stop and rm, and the runtime's state in the user's own runtime
/// folder, gone with the container.
fn rootless_podman(ws: &Ws, rt: PathBuf) {
    let p = Podman::at(&ws.root, rt);
    if !p.usable() {
        return;
    }
    let marker = ws.outside.join("host-file");
    std::fs::write(&marker, "the host's own\n").unwrap();
    image(&p, &marker);
    let secret = ws.home.join(".ssh-secret");
    std::fs::write(&secret, "home secret\n").unwrap();
    let o = p.run(
        &["--rm", "--cap-add", "SYS_ADMIN,SYS_PTRACE,NET_ADMIN"],
        &format!(
            "echo hello; grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status; cat {} 2>&1; echo procs=$(ls /proc | grep -c '^[0-9]'); mount -t tmpfs x /mnt 2>&1; echo mount=$?; unshare -U true 2>&1; echo unshare=$?; exit 3",
            secret.display()
        ),
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(3), "{out}{}", stderr(&o));
    assert!(out.contains("hello"), "{out}");
    assert!(
        out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t2"),
        "{out}"
    );
    assert!(!out.contains("home secret"), "{out}");
    let procs: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("procs="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(procs <= 4, "only the container's processes: {out}");
    let eff = out
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:\t"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    for cap in [21, 19, 12] {
        assert_eq!(eff & (1 << cap), 0, "capability {cap} given: {out}");
    }
    assert!(
        out.contains("mount=1") || out.contains("mount=255"),
        "{out}"
    );
    assert!(!out.contains("unshare=0"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "the host's own\n"
    );

    let o = p.run(
        &["-d", "--name", "paddock-oci-rootless"],
        "echo started; exec sleep 600",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    // podman's runtime folder for the user (without XDG_RUNTIME_DIR, its own).
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&ws.root).unwrap());
    let run_dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/podman-run-{uid}")));
    let state_dir = run_dir.join("paddock-oci").join(&id);
    assert!(
        state_dir.join("state.json").exists(),
        "the runtime keeps its state in the user's runtime folder, {}",
        state_dir.display()
    );
    let o = p
        .cmd()
        .args(["exec", "paddock-oci-rootless", "sh", "-c"])
        .arg("grep NoNewPrivs /proc/self/status; exit 7")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert!(stdout(&o).contains("NoNewPrivs:\t1"));
    let o = p
        .cmd()
        .args(["exec", "-t", "paddock-oci-rootless", "tty"])
        .output()
        .unwrap();
    assert!(
        stdout(&o).starts_with("/dev/pts/"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = p
        .cmd()
        .args(["logs", "paddock-oci-rootless"])
        .output()
        .unwrap();
    assert!(stdout(&o).contains("started"), "{}", stderr(&o));
    let o = p
        .cmd()
        .args(["stop", "-t", "1", "paddock-oci-rootless"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = p
        .cmd()
        .args(["rm", "paddock-oci-rootless"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!state_dir.exists(), "the runtime's state is removed");
    p.clean();
}

/// A root filesystem of a static busybox, its `/etc/hosts` a link that
/// points at `host_target` (an absolute path on the host).
fn image(p: &Podman, host_target: &Path) {
    image_as(p, "localhost/paddock-test-busybox:1", &|rootfs| {
        std::os::unix::fs::symlink(host_target, rootfs.join("etc/hosts")).unwrap();
    });
}

/// A busybox image named `tag`, its layout changed by `tweak`.
pub(crate) fn image_as(p: &Podman, tag: &str, tweak: &dyn Fn(&Path)) {
    let rootfs = p
        .dir
        .join(format!("rootfs-{}", tag.replace(['/', ':'], "-")));
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "mnt"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("needs busybox-static");
    for a in [
        "sh", "echo", "cat", "ls", "sleep", "id", "ps", "mount", "tty", "unshare", "grep", "true",
        "hostname", "mkdir",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    tweak(&rootfs);
    let tar = rootfs.with_extension("tar");
    let ok = Command::new("tar")
        .args([
            "-C",
            rootfs.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let o = p
        .cmd()
        .args(["import", "-q", tar.to_str().unwrap(), tag])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// podman runs, execs, logs, stops and removes containers with paddock as
/// the runtime; inside, the host's files and processes are out of reach,
/// capabilities that undo the boundary are never given (not even with
/// `--cap-add`), new user namespaces and mounts are refused, a link in
/// the image cannot point the engine's bind mount at the host, and a
/// privileged container is refused. As an unprivileged user, the runtime
/// refuses a bundle it cannot honour with a precise error and leaves
/// nothing behind, and rootless podman runs containers with it.
#[test]
fn podman_runs_containers_with_paddock_as_its_runtime() {
    let ws = Ws::new();
    let rt = runtime(&ws.root);
    if !running_as_root() {
        // Rootless (a user namespace) is not supported yet: refused, whole.
        let bundle = ws.root.join("bundle");
        std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
        std::fs::write(
            bundle.join("config.json"),
            r#"{"ociVersion":"1.0.2","process":{"args":["/bin/true"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"user"},{"type":"mount"},{"type":"pid"}],"uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}}"#,
        )
        .unwrap();
        let state = ws.root.join("state");
        let o = Command::new(&rt)
            .args([
                "--root",
                state.to_str().unwrap(),
                "create",
                "--bundle",
                bundle.to_str().unwrap(),
                "c1",
            ])
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(stderr(&o).contains("user namespace"), "{}", stderr(&o));
        assert!(!state.join("c1").exists(), "nothing left behind");
        let o = Command::new(&rt)
            .args(["--root", state.to_str().unwrap(), "state", "c1"])
            .output()
            .unwrap();
        assert!(
            stderr(&o).contains("container does not exist"),
            "{}",
            stderr(&o)
        );
        rootless_podman(&ws, rt);
        return;
    }
    let p = Podman::at(&ws.root, rt);
    let marker = ws.outside.join("host-file");
    std::fs::write(&marker, "the host's own\n").unwrap();
    image(&p, &marker);
    let secret = ws.outside.join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();

    // 1. Run: output, exit code, the runtime's own boundary. The network
    //    namespace is one the engine names by path (as podman's own
    //    networks are; made here with `ip netns`, so that no engine
    //    network changes the host's firewall under the other tests).
    let netns = format!("paddock-oci-test-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &netns])
        .status()
        .unwrap()
        .success();
    assert!(ok, "ip netns add");
    let ns_arg = format!("ns:/run/netns/{netns}");
    let ino = std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata(format!("/run/netns/{netns}")).unwrap(),
    );
    let o = p.run(
        &["--rm", "--network", &ns_arg],
        "echo hello from paddock; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; readlink /proc/self/ns/net; exit 3",
    );
    let _ = Command::new("ip").args(["netns", "del", &netns]).status();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("net:[{ino}]")),
        "the container joined the engine's network namespace: {out}"
    );
    assert!(out.contains("hello from paddock"), "{out}");
    assert!(
        out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t2"),
        "{out}"
    );

    // 2. The attacks of `paddock run`, from inside.
    let o = p.run(
        &[
            "--rm",
            "--network",
            "none",
            "--cap-add",
            "SYS_ADMIN,SYS_PTRACE,NET_ADMIN,DAC_READ_SEARCH",
        ],
        &format!(
            "cat {} 2>&1; echo procs=$(ls /proc | grep -c '^[0-9]'); grep CapEff /proc/self/status; mount -t tmpfs x /mnt 2>&1; echo mount=$?; unshare -U true 2>&1; echo unshare=$?; cat /etc/hosts",
            secret.display()
        ),
    );
    let out = stdout(&o);
    assert!(!out.contains("host secret"), "{out}");
    let procs: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("procs="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(procs <= 4, "only the container's processes: {out}");
    let eff = out
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:\t"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    for cap in [21, 19, 12, 2] {
        assert_eq!(eff & (1 << cap), 0, "capability {cap} given: {out}");
    }
    assert!(
        out.contains("mount=1") || out.contains("mount=255"),
        "{out}"
    );
    assert!(!out.contains("unshare=0"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "the host's own\n",
        "the link in the image did not lead the bind mount to the host"
    );
    // The engine's hosts file was bound where the link leads inside the
    // root, so the container reads it through the link.
    assert!(out.contains("localhost"), "{out}");

    // 2b. The bundle's own seccomp profile holds too, beside paddock's: a
    //     profile that refuses mkdir refuses it (and without it, mkdir works).
    let profile = p.dir.join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let seccomp = format!("seccomp={}", profile.display());
    let o = p.run(
        &["--rm", "--network", "none", "--security-opt", &seccomp],
        "mkdir /tmp/x 2>&1; echo mkdir=$?",
    );
    assert!(
        stdout(&o).contains("mkdir=1"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = p.run(
        &["--rm", "--network", "none"],
        "mkdir /tmp/x; echo mkdir=$?",
    );
    assert!(
        stdout(&o).contains("mkdir=0"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );

    // 2c. Images made to turn the engine's mounts (a hostile review's):
    //     - `/proc` a link: the masks would land elsewhere and the real
    //       procfs stay open (`core_pattern` runs a program on the host);
    //     - a device node in the image (the host's disks, with no device
    //       cgroup to refuse it), and mknod even with --cap-add MKNOD;
    //     - a read-only volume whose target leads back into itself, so a
    //       second lookup would make some other mount read-only.
    image_as(&p, "localhost/paddock-test-proclink:1", &|r| {
        std::fs::remove_dir(r.join("proc")).unwrap();
        std::fs::create_dir_all(r.join("q")).unwrap();
        std::os::unix::fs::symlink("/q", r.join("proc")).unwrap();
    });
    let o = p
        .cmd()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(["localhost/paddock-test-proclink:1", "true"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("/proc is a symbolic link"),
        "{}",
        stderr(&o)
    );
    image_as(&p, "localhost/paddock-test-devnode:1", &|r| {
        let ok = Command::new("mknod")
            .args([r.join("zero").to_str().unwrap(), "c", "1", "5"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mknod");
        std::fs::create_dir_all(r.join("t/tmp")).unwrap();
        std::os::unix::fs::symlink("/t", r.join("t/proc")).unwrap();
        std::os::unix::fs::symlink("/t/proc", r.join("host")).unwrap();
    });
    let vol = ws.outside.join("volume");
    std::fs::create_dir_all(vol.join("tmp")).unwrap();
    let o = p
        .cmd()
        .args(["run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"])
        .args(["--cap-add", "MKNOD", "-v", &format!("{}:/host:ro", vol.display())])
        .args([
            "localhost/paddock-test-devnode:1",
            "sh",
            "-c",
            "head -c 1 /zero >/dev/null 2>&1; echo node=$?; mknod /tmp/z c 1 5 2>&1; echo mknod=$?; echo x > /t/tmp/escape 2>&1; echo write=$?",
        ])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        out.contains("node=1"),
        "an image's device node is inert: {out}{}",
        stderr(&o)
    );
    assert!(out.contains("mknod=1"), "{out}");
    assert!(!out.contains("write=0"), "{out}");
    assert!(
        !vol.join("tmp/escape").exists(),
        "the read-only volume was written"
    );

    // 2d. The host's kernel settings stay out of reach (a second review):
    //     `unmask=ALL` still leaves /proc/sys read-only, and a bind of the
    //     host's own proc is refused.
    let core = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let o = p.run(
        &["--rm", "--network", "none", "--security-opt", "unmask=ALL"],
        "echo '|/bin/false' > /proc/sys/kernel/core_pattern 2>/dev/null; echo write=$?",
    );
    assert!(
        stdout(&o).contains("write=1"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = p.run(&["--rm", "--network", "none", "-v", "/proc:/hp"], "true");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("host's proc or sysfs"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core
    );

    // 3. A long-running container: exec (exit codes, a terminal), logs,
    //    stop, rm; the runtime's state goes with it.
    //    Its limits are the host's cgroups' (v1 pids and memory here).
    let o = p.run(
        &[
            "-d",
            "--network",
            "none",
            "--name",
            "paddock-oci-test",
            "--pids-limit",
            "30",
            "--memory",
            "48m",
        ],
        "echo started; while :; do sleep 1; done",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let state_dir = PathBuf::from("/run/paddock-oci").join(&id);
    assert!(state_dir.join("state.json").exists());
    let pid = stdout(
        &p.cmd()
            .args(["inspect", "-f", "{{.State.Pid}}", &id])
            .output()
            .unwrap(),
    )
    .trim()
    .to_string();
    let group = |c: &str| PathBuf::from(format!("/sys/fs/cgroup/{c}/libpod_parent/libpod-{id}"));
    let v1 = Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists();
    if v1 {
        let read = |c: &str, f: &str| std::fs::read_to_string(group(c).join(f)).unwrap();
        assert_eq!(read("pids", "pids.max").trim(), "30");
        assert_eq!(read("memory", "memory.limit_in_bytes").trim(), "50331648");
        assert!(
            read("pids", "cgroup.procs").lines().any(|l| l == pid),
            "the container's process is in its group"
        );
        // A memory hog is killed; the container lives on.
        let o = p
            .cmd()
            .args(["exec", "paddock-oci-test", "sh", "-c"])
            .arg("x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
            .output()
            .unwrap();
        assert!(!stdout(&o).contains("survived"), "{}", stdout(&o));
        let failcnt: u64 = read("memory", "memory.failcnt").trim().parse().unwrap();
        assert!(failcnt > 0, "the memory limit was reached");
        // An exec'd process joins them, and a fork bomb stops at the limit
        // (the first process, a shell, reaps what it leaves).
        let o = p
            .cmd()
            .args(["exec", "paddock-oci-test", "sh", "-c"])
            .arg("grep pids /proc/self/cgroup; for i in $(seq 1 40); do (sleep 2) & done 2>/dev/null; echo forked")
            .output()
            .unwrap();
        assert!(
            stdout(&o).contains(&format!("libpod-{id}")),
            "{}{}",
            stdout(&o),
            stderr(&o)
        );
        assert!(
            !stdout(&o).contains("forked") && !o.status.success(),
            "{}{}",
            stdout(&o),
            stderr(&o)
        );
        let current = || -> u32 { read("pids", "pids.current").trim().parse().unwrap() };
        assert!(current() <= 30, "{}", current());
        assert!(wait_until(std::time::Duration::from_secs(10), || current() < 5));
    }
    let o = p
        .cmd()
        .args([
            "exec",
            "paddock-oci-test",
            "sh",
            "-c",
            "grep NoNewPrivs /proc/self/status; exit 7",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert!(stdout(&o).contains("NoNewPrivs:\t1"));
    let o = p
        .cmd()
        .args(["exec", "-t", "paddock-oci-test", "tty"])
        .output()
        .unwrap();
    assert!(
        stdout(&o).starts_with("/dev/pts/"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = p.cmd().args(["logs", "paddock-oci-test"]).output().unwrap();
    assert!(stdout(&o).contains("started"), "{}", stderr(&o));
    let o = p
        .cmd()
        .args(["stop", "-t", "1", "paddock-oci-test"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = p.cmd().args(["rm", "paddock-oci-test"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!state_dir.exists(), "the runtime's state is removed");
    for c in ["pids", "memory", "cpu", "freezer"] {
        assert!(!group(c).exists(), "{} is left", group(c).display());
    }

    // 4. Refused whole, with the reason.
    let o = p.run(&["--rm", "--privileged"], "true");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("privileged container is refused"),
        "{}",
        stderr(&o)
    );

    // 5. containerd (Debian's), through its runc shim with paddock as the
    //    runtime binary: `ctr run` and `ctr task exec`, exit codes kept.
    let tar = p.dir.join("image-oci.tar");
    let o = p
        .cmd()
        .args([
            "save",
            "--format",
            "oci-archive",
            "-o",
            tar.to_str().unwrap(),
            "localhost/paddock-test-busybox:1",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let c = Containerd::start(&ws.root.join("containerd"));
    let o = c.ctr(&[
        "image",
        "import",
        "--base-name",
        "localhost/paddock-test-busybox",
        tar.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rt = p.rt.to_str().unwrap();
    let o = c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        rt,
        "localhost/paddock-test-busybox:1",
        "c1",
        "sh",
        "-c",
        "echo hello from containerd; grep NoNewPrivs /proc/self/status; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("hello from containerd") && stdout(&o).contains("NoNewPrivs:\t1"),
        "{}",
        stdout(&o)
    );
    // A second proc, where nothing would mask it: refused.
    let o = c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        rt,
        "--mount",
        "type=proc,src=proc,dst=/p2,options=rw",
        "localhost/paddock-test-busybox:1",
        "c3",
        "sh",
        "-c",
        "echo '|/bin/false' > /p2/sys/kernel/core_pattern",
    ]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core
    );
    let _ = c.ctr(&["container", "rm", "c3"]);
    let o = c.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        rt,
        "localhost/paddock-test-busybox:1",
        "c2",
        "sleep",
        "600",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c2",
        "sh",
        "-c",
        "grep NoNewPrivs /proc/self/status; exit 6",
    ]);
    assert_eq!(o.status.code(), Some(6), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("NoNewPrivs:\t1"), "{}", stdout(&o));
    let o = c.ctr(&["task", "kill", "-s", "SIGKILL", "c2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for _ in 0..100 {
        let l = c.ctr(&["task", "ls"]);
        if !stdout(&l).contains("RUNNING") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = c.ctr(&["task", "rm", "c2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = c.ctr(&["container", "rm", "c2"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A containerd of the test's own (its root, state and socket in `dir`).
struct Containerd {
    child: std::process::Child,
    sock: PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        std::fs::create_dir_all(dir).unwrap();
        let sock = dir.join("containerd.sock");
        let cfg = dir.join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{1}\"\n",
                dir.display(),
                sock.display()
            ),
        )
        .unwrap();
        let child = Command::new("containerd")
            .args(["--config", cfg.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("containerd.log")).unwrap())
            .spawn()
            .expect("containerd (Debian's package) runs");
        let c = Containerd { child, sock };
        for _ in 0..100 {
            if c.ctr(&["version"]).status.success() {
                return c;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "containerd did not start: {}",
            std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
        );
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .args(["-a", self.sock.to_str().unwrap(), "-n", "paddock-test"])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A program for the container that waits for a process running the
/// runtime's code to appear among its own (as `exec` makes one), holds its
/// `/proc/PID/exe`, and once that binary is no longer busy writes a script
/// over it: the next engine command would run it as root. It prints each
/// step.
const EXE_RACER: &str = r##"
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static void say(const char *what, const char *detail) {
    char line[4200];
    int n = snprintf(line, sizeof line, "%s %s\n", what, detail);
    if (write(1, line, n) < 0) {}
}
int main(void) {
    int held = -1;
    time_t end = time(NULL) + 60;
    while (time(NULL) < end) {
        if (held < 0) {
            DIR *d = opendir("/proc");
            struct dirent *e;
            while (d && (e = readdir(d))) {
                char p[300], l[4096];
                if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
                snprintf(p, sizeof p, "/proc/%s/exe", e->d_name);
                ssize_t n = readlink(p, l, sizeof l - 1);
                if (n <= 0) continue;
                l[n] = 0;
                if (strstr(l, "busybox") || strstr(l, "racer")) continue;
                say("seen", l);
                int fd = open(p, O_PATH);
                if (fd >= 0) { held = fd; say("held", l); break; }
                say("refused", strerror(errno));
            }
            if (d) closedir(d);
        } else {
            char p[64];
            snprintf(p, sizeof p, "/proc/self/fd/%d", held);
            int w = open(p, O_WRONLY | O_TRUNC);
            if (w >= 0) {
                const char *s = "#!/bin/sh\necho overwritten by the container\n";
                if (write(w, s, strlen(s)) < 0) {}
                close(w);
                say("overwrote", "the runtime");
                for (;;) sleep(1);
            }
            if (errno != ETXTBSY) { say("write refused:", strerror(errno)); held = -1; }
            usleep(200);
        }
    }
    return 0;
}
"##;

/// The engine's hooks (podman's `--hooks-dir`), each stage where the spec
/// puts it, judged by what each hook wrote on the host: prestart and
/// createRuntime on the host, createContainer in the container's mount
/// namespace, startContainer inside the container and confined as its
/// program is (no_new_privs, no capability that undoes the boundary), and
/// poststart; every one given the container's state. A hook that fails
/// stops the container before its program runs, with the hook's words,
/// and leaves nothing behind.
#[test]
fn podman_runs_the_engines_hooks_each_where_the_spec_puts_it() {
    let ws = Ws::new();
    let p = Podman::at(&ws.root, runtime(&ws.root));
    if !running_as_root() && !p.usable() {
        return;
    }
    image_as(&p, "localhost/paddock-test-busybox:1", &|_| {});
    let hk = ws.root.join("hooks");
    let dir = hk.join("d");
    std::fs::create_dir_all(&dir).unwrap();
    let log = hk.join("log");
    let script = hk.join("hook.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nst=$(cat)\n[ \"$1\" = fail ] && {{ echo the hook says no >&2; exit 3; }}\necho \"$1 $(echo \"$st\" | grep -o '\"status\":\"[a-z]*\"') $(echo \"$st\" | grep -o '\"id\":\"[0-9a-f]*\"') $(readlink /proc/self/ns/mnt) $(grep -E '^(NoNewPrivs|CapEff)' /proc/self/status | tr '\\n\\t' '  ')\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["-R", "a+rX", hk.to_str().unwrap()])
        .status()
        .unwrap();
    Command::new("chmod")
        .args(["755", script.to_str().unwrap()])
        .status()
        .unwrap();
    let stages = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
    ];
    let write_hooks = |fail: Option<&str>| {
        for st in stages {
            let arg = if fail == Some(st) { "fail" } else { st };
            std::fs::write(
                dir.join(format!("{st}.json")),
                format!(
                    r#"{{"version":"1.0.0","hook":{{"path":"{}","args":["hook.sh","{arg}"]}},"when":{{"always":true}},"stages":["{st}"]}}"#,
                    script.display()
                ),
            )
            .unwrap();
        }
    };
    write_hooks(None);
    let vol = format!("{0}:{0}", hk.display());
    let run = || {
        p.cmd()
            .args(["--hooks-dir", dir.to_str().unwrap()])
            .args(["run", "--rm", "--network", "none"])
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .args(["-v", &vol, "--cap-add", "SYS_ADMIN"])
            .args(["localhost/paddock-test-busybox:1", "sh", "-c"])
            .arg(format!("echo program >> {}", log.display()))
            .output()
            .unwrap()
    };
    let o = run();
    assert!(o.status.success(), "{}", stderr(&o));
    let got = std::fs::read_to_string(&log).unwrap();
    let line = |st: &str| {
        got.lines()
            .find(|l| l.starts_with(&format!("{st} ")))
            .unwrap_or_else(|| panic!("no {st} hook ran:\n{got}"))
            .to_string()
    };
    // The runtime's mount namespace: the host's as root; rootless,
    // podman's own for the user.
    let host_mnt = if running_as_root() {
        std::fs::read_link("/proc/self/ns/mnt")
            .unwrap()
            .to_string_lossy()
            .into_owned()
    } else {
        line("prestart")
            .split(' ')
            .find(|w| w.starts_with("mnt:"))
            .unwrap()
            .to_string()
    };
    let host_mnt = host_mnt.as_str();
    for st in stages {
        assert!(line(st).contains(r#""id":""#), "{st} got the state: {got}");
    }
    assert!(line("prestart").contains(r#""status":"creating""#), "{got}");
    for st in ["prestart", "createRuntime", "poststart"] {
        assert!(line(st).contains(host_mnt), "{st} runs on the host: {got}");
    }
    assert!(!line("createContainer").contains(host_mnt), "{got}");
    let start = line("startContainer");
    assert!(
        !start.contains(host_mnt) && start.contains("NoNewPrivs: 1"),
        "{got}"
    );
    let eff = start
        .split("CapEff: ")
        .nth(1)
        .and_then(|h| u64::from_str_radix(h.split_whitespace().next()?, 16).ok())
        .unwrap();
    assert_eq!(
        eff & (1 << 21),
        0,
        "startContainer had CAP_SYS_ADMIN: {got}"
    );
    // The program ran after every hook before it.
    let order: Vec<&str> = got.lines().map(|l| l.split(' ').next().unwrap()).collect();
    let pos = |w: &str| order.iter().position(|x| *x == w).unwrap();
    assert!(pos("createContainer") < pos("startContainer"));
    assert!(pos("startContainer") < pos("program"), "{got}");

    // A hook that fails stops the container, with its words.
    for st in ["createRuntime", "createContainer", "startContainer"] {
        std::fs::remove_file(&log).unwrap();
        write_hooks(Some(st));
        let o = run();
        assert!(!o.status.success(), "{st}");
        assert!(
            stderr(&o).contains("the hook says no"),
            "{st}: {}",
            stderr(&o)
        );
        let got = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!got.contains("program"), "{st}: the program ran: {got}");
    }
    let o = p.cmd().args(["ps", "-a", "-q"]).output().unwrap();
    assert_eq!(stdout(&o).trim(), "", "nothing is left");
    p.clean();
}

/// `source` (C) built as a static program `dir/name`, for an image
/// that has no libc.
fn static_program(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    let o = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "cc -static {name}: {}", stderr(&o));
    out
}

/// A program that leaves a setuid-root file made by `openat2` (whose mode
/// seccomp cannot read) and a file with capabilities in a folder.
const PLANTER: &str = r##"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    struct open_how how = { .flags = O_CREAT | O_WRONLY, .mode = 04755 };
    long fd = syscall(SYS_openat2, AT_FDCWD, argv[1], &how, sizeof how);
    printf("openat2=%s\n", fd < 0 ? strerror(errno) : "done");
    if (fd >= 0) close((int)fd);
    int f = open(argv[2], O_CREAT | O_WRONLY, 0755);
    if (f >= 0) close(f);
    /* struct vfs_cap_data, revision 2, effective: cap_setuid, cap_setgid */
    unsigned int cap[5] = { 0x02000001, (1u << 6) | (1u << 7), 0, 0, 0 };
    int r = setxattr(argv[2], "security.capability", cap, sizeof cap, 0);
    printf("setxattr=%s\n", r < 0 ? strerror(errno) : "done");
    return 0;
}
"##;

/// A third hostile review's attacks, through podman and straight at the
/// runtime, each judged on the host: the runtime's binary stays as it was
/// while a container races every `exec` for it; a bundle cannot mount a
/// disk's filesystem, nor bind the host's proc, sysfs or cgroups along
/// with a recursive bind; sysctls are set only in namespaces that are the
/// container's own, never the host's; and `kill --all` of a container
/// without a pid namespace of its own signals no other process.
#[test]
fn a_hostile_container_reaches_neither_the_runtime_nor_the_hosts_disks_sysctls_or_processes() {
    let ws = Ws::new();
    // The runtime engines call is a copy, which the attack may overwrite.
    let bin = ws.root.join("rt/paddock");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(paddock_bin(), &bin).unwrap();
    let rt = bin.with_file_name("paddock-oci");
    std::os::unix::fs::symlink(&bin, &rt).unwrap();
    let identity = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).unwrap();
        (m.len(), m.mtime(), m.mtime_nsec(), m.ino())
    };
    let before = identity(&bin);
    let p = Podman::at(&ws.root, rt.clone());
    // As a user, through rootless podman (1 and 2; the rest needs root).
    if !running_as_root() && !p.usable() {
        return;
    }
    let racer = static_program(&ws.root, "racer", EXE_RACER);
    let planter = static_program(&ws.root, "plant", PLANTER);
    image_as(&p, "localhost/paddock-test-racer:1", &|r| {
        std::fs::copy(&racer, r.join("bin/racer")).unwrap();
        std::fs::copy(&planter, r.join("bin/plant")).unwrap();
        // A dangling link to a name that is not UTF-8: a bind made there
        // must not blind the check of later recursive binds.
        std::os::unix::fs::symlink(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"/\xff"),
            r.join("x"),
        )
        .unwrap();
    });
    image_as(&p, "localhost/paddock-test-busybox:1", &|_| {});

    // 1. exec into a container that races for the runtime's binary.
    let o = p
        .cmd()
        .args(["run", "-d", "--name", "racer", "--network", "none"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(["localhost/paddock-test-racer:1", "/bin/racer"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for i in 0..5 {
        let o = p
            .cmd()
            .args(["exec", "racer", "sh", "-c", &format!("exit {i}")])
            .output()
            .unwrap();
        let logs = p.cmd().args(["logs", "racer"]).output().unwrap();
        assert_eq!(o.status.code(), Some(i), "{}{}", stderr(&o), stdout(&logs));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let logs = p.cmd().args(["logs", "racer"]).output().unwrap();
    let _ = p.cmd().args(["rm", "-f", "-t", "0", "racer"]).output();
    let seen = stdout(&logs);
    assert!(!seen.contains("overwrote"), "{seen}");
    assert!(
        !seen.contains("held"),
        "the runtime's process was reachable: {seen}"
    );
    assert_eq!(
        identity(&bin),
        before,
        "the runtime's binary changed: {seen}"
    );

    // 1b. Set-id and capability programs left in a host volume, with the
    //     engine's default capabilities.
    let vol = ws.root.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    // `--rm --network none` and the volumes `vols`, in the racer's image.
    let run_racer = |vols: &[String], argv: &[&str]| {
        let mut extra = vec!["--rm", "--network", "none"];
        for v in vols {
            extra.extend(["-v", v.as_str()]);
        }
        p.run_in("localhost/paddock-test-racer:1", &extra, argv)
    };
    let script = "plant /vol/suid /vol/fcap; grep CapEff /proc/self/status";
    let o = run_racer(&[format!("{}:/vol", vol.display())], &["sh", "-c", script]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains("=done"), "{out}");
    let eff = out
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:\t"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(eff & (1 << 31), 0, "CAP_SETFCAP given: {out}");
    if let Ok(m) = std::fs::metadata(vol.join("suid")) {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(m.permissions().mode() & 0o6000, 0, "{out}");
    }
    let xattrs = xattr_names(&vol.join("fcap"));
    assert!(!xattrs.contains("security.capability"), "{xattrs}{out}");

    // 2. Recursive binds that bring the host's kernel filesystems along
    //    (also after a bind made at a name that is not UTF-8), and the
    //    host's cgroups themselves.
    let empty = ws.root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = run_racer(
        &[format!("{}:/x", empty.display()), "/:/host".to_string()],
        &["true"],
    );
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("holds the host's"), "{}", stderr(&o));
    let o = p.run(
        &["--rm", "--network", "none", "-v", "/:/hostroot"],
        "echo ran",
    );
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("holds the host's"), "{}", stderr(&o));
    let cgroup = [
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup",
    ]
    .into_iter()
    .find(|c| Path::new(c).join("cgroup.procs").exists())
    .expect("a cgroup hierarchy");
    let o = p.run(
        &[
            "--rm",
            "--network",
            "none",
            "-v",
            &format!("{cgroup}:/cg:bind"),
        ],
        "ls /cg | head -3",
    );
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("kernel filesystems"), "{}", stderr(&o));

    if !running_as_root() {
        p.clean();
        return;
    }

    // 2b. On the host's network (`--network host`), the host's abstract
    //     unix sockets (X11's, D-Bus's, an engine shim's live there) are
    //     out of reach, from the first process and from exec; the
    //     container's own still work among its processes.
    {
        use std::io::Write as _;
        use std::os::linux::net::SocketAddrExt;
        let name = format!("paddock-it-abstract-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
        let reached = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let count = reached.clone();
        std::thread::spawn(move || {
            for c in listener.incoming().flatten() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = (&c).write_all(b"host secret\n");
            }
        });
        image_as(&p, "localhost/paddock-test-usr:1", &|r| {
            std::fs::create_dir_all(r.join("usr")).unwrap();
            for l in ["lib", "lib64"] {
                std::os::unix::fs::symlink(format!("usr/{l}"), r.join(l)).unwrap();
            }
        });
        let client = format!(
            "import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect('\\0{name}'); print('reached', s.recv(64))\nexcept OSError as e: print('refused', e.errno)\n"
        );
        let own = "import os, socket, time\nl = socket.socket(socket.AF_UNIX); l.bind('\\0mine'); l.listen(1)\nif os.fork() == 0:\n    c = socket.socket(socket.AF_UNIX); c.connect('\\0mine'); c.send(b'hi'); os._exit(0)\na, _ = l.accept(); print('own', a.recv(2))\n";
        let host_net = [
            "-d",
            "--name",
            "abstract",
            "--network",
            "host",
            "-v",
            "/usr:/usr:ro",
        ];
        let o = p.run_in(
            "localhost/paddock-test-usr:1",
            &host_net,
            &[
                "/usr/bin/python3",
                "-u",
                "-c",
                &format!("{client}\n{own}\nimport time; time.sleep(60)"),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let o = p
            .cmd()
            .args(["exec", "abstract", "/usr/bin/python3", "-c", &client])
            .output()
            .unwrap();
        let from_exec = stdout(&o);
        let logs = || stdout(&p.cmd().args(["logs", "abstract"]).output().unwrap());
        wait_until(std::time::Duration::from_secs(10), || {
            logs().contains("own")
        });
        let logs = logs();
        let _ = p.cmd().args(["rm", "-f", "-t", "0", "abstract"]).output();
        assert!(
            logs.contains("refused") && !logs.contains("reached"),
            "{logs}"
        );
        assert!(logs.contains("own b'hi'"), "the container's own: {logs}");
        assert!(from_exec.contains("refused"), "{from_exec}{}", stderr(&o));
        assert_eq!(
            reached.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "the host's socket was reached"
        );
    }

    // 2c. With the host's pids (`--pid host`), the host's processes are
    //     in view but not to be signalled (an egress daemon, a shell);
    //     the container's own are.
    {
        let mut bystander = Command::new("sleep").arg("60").spawn().unwrap();
        let o = p.run(
            &[
                "--rm",
                "--network",
                "none",
                "--pid",
                "host",
                "--cap-add",
                "KILL",
            ],
            &format!(
                "kill -KILL {} 2>&1; echo host=$?; sleep 30 & kill $!; wait $!; echo own=$?",
                bystander.id()
            ),
        );
        let out = stdout(&o);
        let alive = bystander.try_wait().unwrap().is_none();
        let _ = bystander.kill();
        let _ = bystander.wait();
        assert!(alive, "the host's process was killed: {out}{}", stderr(&o));
        assert!(
            !out.contains("host=0") && out.contains("own=143"),
            "{out}{}",
            stderr(&o)
        );
    }

    // 3. Sysctls: the host's network and IPC namespaces are not the
    //    container's, whatever the bundle joins; its own are.
    let martians = "/proc/sys/net/ipv4/conf/all/log_martians";
    let host_martians = std::fs::read_to_string(martians).unwrap();
    let flip = if host_martians.trim() == "0" {
        "1"
    } else {
        "0"
    };
    let netns = format!("ns:/proc/{}/ns/net", std::process::id());
    let msgmax = "/proc/sys/kernel/msgmax";
    let host_msgmax = std::fs::read_to_string(msgmax).unwrap();
    let lwt = "/proc/sys/net/netfilter/nf_hooks_lwtunnel";
    // Refused, and the host's value as it was.
    let refused = |extra: &[&str], host_file: &str| {
        let before = std::fs::read_to_string(host_file).ok();
        let o = p.run(&[&["--rm"], extra].concat(), "echo ran");
        assert!(!o.status.success(), "{extra:?}: {}", stdout(&o));
        assert!(stderr(&o).contains("is the host's"), "{}", stderr(&o));
        assert_eq!(std::fs::read_to_string(host_file).ok(), before, "{extra:?}");
    };
    let martians_flip = format!("net.ipv4.conf.all.log_martians={flip}");
    refused(&["--network", &netns, "--sysctl", &martians_flip], martians);
    refused(
        &[
            "--network",
            "none",
            "--ipc",
            "host",
            "--sysctl",
            "kernel.msgmax=12347",
        ],
        msgmax,
    );
    // A network sysctl that is per namespace by name only.
    refused(
        &[
            "--network",
            "none",
            "--sysctl",
            "net.netfilter.nf_hooks_lwtunnel=1",
        ],
        lwt,
    );
    let o = p.run(
        &[
            "--rm",
            "--network",
            "none",
            "--sysctl",
            "kernel.msgmax=12347",
            "--sysctl",
            &martians_flip,
        ],
        "cat /proc/sys/kernel/msgmax /proc/sys/net/ipv4/conf/all/log_martians",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("12347\n{flip}\n"),
        "the container's own"
    );
    assert_eq!(std::fs::read_to_string(msgmax).unwrap(), host_msgmax);
    assert_eq!(std::fs::read_to_string(martians).unwrap(), host_martians);

    // 4. A container with no capabilities at all, as another user (the
    //    user switch must not need capabilities the bundle withholds).
    let o = p.run(
        &[
            "--rm",
            "--network",
            "none",
            "--cap-drop",
            "ALL",
            "--user",
            "1000:1000",
        ],
        "id -u; grep CapEff /proc/self/status",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1000\nCapEff:\t0000000000000000\n");

    // 5. Straight at the runtime: a bundle that mounts a disk's
    //    filesystem, and one with no pid namespace of its own.
    let rootfs = ws.root.join("bundle/rootfs");
    for d in ["bin", "proc", "dev", "tmp", "host"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in ["sh", "sleep", "echo"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let disk = ws.root.join("disk.img");
    std::fs::write(&disk, vec![0u8; 8 << 20]).unwrap();
    let ok = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&disk)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfs.ext4");
    let o = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&disk)
        .output()
        .unwrap();
    let loop_dev = stdout(&o).trim().to_string();
    let state = ws.root.join("state");
    let bundle = ws.root.join("bundle");
    let caps = r#"["CAP_KILL","CAP_SETUID","CAP_SETGID"]"#;
    let config = |namespaces: &str, mounts: &str, args: &str| {
        format!(
            r#"{{"ociVersion":"1.0.2","process":{{"args":{args},"cwd":"/","env":["PATH=/bin"],"user":{{"uid":0,"gid":0}},"capabilities":{{"bounding":{caps},"effective":{caps},"permitted":{caps}}}}},"root":{{"path":"rootfs"}},"mounts":[{{"destination":"/proc","type":"proc","source":"proc"}}{mounts}],"linux":{{"namespaces":{namespaces}}}}}"#
        )
    };
    let runtime = |args: &[&str]| {
        Command::new(&rt)
            .arg("--root")
            .arg(&state)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        o.status.success() && loop_dev.starts_with("/dev/loop"),
        "losetup: {}",
        stderr(&o)
    );
    {
        std::fs::write(
            bundle.join("config.json"),
            config(
                r#"[{"type":"mount"},{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"network"}]"#,
                &format!(r#",{{"destination":"/host","type":"ext4","source":"{loop_dev}","options":["rw"]}}"#),
                r#"["/bin/sh","-c","echo pwned > /host/pwned"]"#,
            ),
        )
        .unwrap();
        let o = runtime(&["create", "--bundle", bundle.to_str().unwrap(), "disk"]);
        let _ = runtime(&["delete", "--force", "disk"]);
        let _ = Command::new("losetup").args(["-d", &loop_dev]).status();
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("filesystem type `ext4` is refused"),
            "{}",
            stderr(&o)
        );
        // Ground truth: nothing was written to the disk.
        let o = Command::new("debugfs")
            .args(["-R", "ls -l /"])
            .arg(&disk)
            .output();
        if let Ok(o) = o {
            assert!(!stdout(&o).contains("pwned"), "{}", stdout(&o));
        }
    }
    // kill --all, in a pid namespace of the test's own that stands for
    // the host's: a bystander there must survive.
    std::fs::write(
        bundle.join("config.json"),
        config(
            r#"[{"type":"mount"},{"type":"ipc"},{"type":"uts"},{"type":"network"}]"#,
            "",
            r#"["/bin/sleep","300"]"#,
        ),
    )
    .unwrap();
    let script = format!(
        "sleep 300 & by=$!; R='{rt} --root {state}'; $R create --bundle {bundle} hostpid || exit 9; $R start hostpid; $R kill --all hostpid KILL; sleep 0.5; if kill -0 $by 2>/dev/null; then echo bystander=alive; else echo bystander=dead; fi; $R delete --force hostpid; kill $by",
        rt = rt.display(),
        state = state.display(),
        bundle = bundle.display()
    );
    let o = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("bystander=alive"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );

    // 6. A bundle's cgroupsPath: never above a hierarchy's root, never a
    //    group in use (another container's, a slice's), whose limits
    //    would change.
    let pids = Path::new("/sys/fs/cgroup/pids");
    if pids.join("cgroup.procs").exists() {
        let busy = pids.join(format!("paddock-it-busy-{}", std::process::id()));
        std::fs::create_dir(&busy).unwrap();
        let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
        std::fs::write(busy.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
        let with_path = |path: &str| {
            config(
                r#"[{"type":"mount"},{"type":"pid"}]"#,
                "",
                r#"["/bin/true"]"#,
            )
            .replace(
                r#""linux":{"#,
                &format!(
                    r#""linux":{{"cgroupsPath":"{path}","resources":{{"pids":{{"limit":3}}}},"#
                ),
            )
        };
        for (path, why) in [
            (
                format!("/{}", busy.file_name().unwrap().to_str().unwrap()),
                "is in use",
            ),
            ("/../../escape".to_string(), "no `..`"),
        ] {
            std::fs::write(bundle.join("config.json"), with_path(&path)).unwrap();
            let o = runtime(&["create", "--bundle", bundle.to_str().unwrap(), "cg"]);
            assert!(!o.status.success(), "{path}");
            assert!(stderr(&o).contains(why), "{path}: {}", stderr(&o));
            assert!(!state.join("cg").exists());
        }
        assert_eq!(
            std::fs::read_to_string(busy.join("pids.max")).unwrap(),
            "max\n"
        );
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        let _ = std::fs::remove_dir(&busy);
        assert!(!Path::new("/sys/fs/escape").exists());
        assert!(!Path::new("/sys/fs/cgroup/memory")
            .join(busy.file_name().unwrap())
            .exists());
    }
    assert_eq!(identity(&bin), before);
}

/// `--device` gives a container the host's node, under its own name or
/// another, as root (the bundle's `linux.devices`) and rootless (podman
/// binds the node instead): it opens and works there, and nothing else
/// of the host's devices comes with it. An image's own node, or one made
/// inside, stays inert (every other mount is nodev).
#[test]
fn podman_gives_a_container_the_devices_it_names() {
    let ws = Ws::new();
    let p = Podman::at(&ws.root, runtime(&ws.root));
    if !p.usable() || !Path::new("/dev/fuse").exists() {
        eprintln!("note: no podman for this user, or no /dev/fuse; skipped");
        return;
    }
    image_as(&p, "localhost/paddock-test-devices:1", &|r| {
        std::os::unix::fs::symlink("busybox", r.join("bin/mknod")).unwrap();
    });
    let script = "ls -l /dev/fuse /dev/mynull 2>&1; echo x > /dev/mynull && echo wrote; [ -c /dev/fuse ] && (exec 3<>/dev/fuse) && echo fuse-opened; mknod /tmp/n c 1 3 2>/dev/null && (echo y > /tmp/n) 2>/dev/null && echo own-node-works; ls /dev/loop0 /dev/sda 2>/dev/null; echo end";
    let o = p.run_in(
        "localhost/paddock-test-devices:1",
        &[
            "--rm",
            "--device",
            "/dev/fuse",
            "--device",
            "/dev/null:/dev/mynull",
        ],
        &["sh", "-c", script],
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("10, 229") && out.contains("/dev/fuse"),
        "{out}"
    );
    assert!(out.contains("wrote"), "{out}");
    assert!(out.contains("fuse-opened"), "{out}");
    assert!(!out.contains("own-node-works"), "{out}");
    assert!(
        !out.contains("/dev/loop0") && !out.contains("/dev/sda"),
        "{out}"
    );
    // Without --device there is no such node.
    let o = p.run_in(
        "localhost/paddock-test-devices:1",
        &["--rm"],
        &["sh", "-c", "[ -c /dev/fuse ] && echo fuse-there; echo end"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("fuse-there"), "{}", stdout(&o));
    p.clean();
}

//! paddock as an OCI runtime: runc's command line, so that podman
//! (`--runtime`), containerd (the runc shim's `BinaryName`) and CRI-O run
//! containers with paddock's boundary on top of the bundle's.
//!
//! The binary is paddock's own, called as `paddock-oci` (a link to it) or
//! as `paddock oci ...`: engines take a runtime path, not a path and a
//! subcommand, and one binary keeps the runtime and `paddock run` on one
//! set of filters and one release.
//!
//! Commands: `create`, `start`, `state`, `kill`, `delete`, `features`,
//! `--version`; global options `--root`, `--log`, `--log-format`,
//! `--systemd-cgroup` (the container's cgroups are made through the cgroup
//! filesystem, [`cgroups`]; what cannot be held is said in the log).

mod cgroups;
mod config;
mod egress;
mod exec;
mod hooks;
mod init;
mod observer;
mod state;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// Whether this runtime runs for a user rather than for the host's root:
/// as a user, or as root of a user namespace an engine made for a user
/// (rootless podman runs its runtime so, as uid 0 mapped onto the user).
pub(crate) fn rootless() -> bool {
    if paddock_sys::getuid() != 0 {
        return true;
    }
    // The initial user namespace maps all of 0..2^32-1 onto itself.
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields != ["0", "0", "4294967295"]
}

/// The default state root: `/run/paddock-oci` as the host's root, else
/// under `$XDG_RUNTIME_DIR`.
fn default_root() -> PathBuf {
    if !rootless() {
        PathBuf::from("/run/paddock-oci")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join("paddock-oci")
    }
}

struct Globals {
    root: PathBuf,
    log: Option<PathBuf>,
    json: bool,
    places: egress::Places,
    /// `--systemd-cgroup`: `linux.cgroupsPath` is `slice:prefix:name`.
    systemd_cgroup: bool,
}

/// Run the runtime with `args` (without the program name); the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut g = Globals {
        root: default_root(),
        log: None,
        json: false,
        places: egress::Places::default_for(rootless()),
        systemd_cgroup: false,
    };
    let mut i = 0;
    // Global options come before the command.
    while i < args.len() && args[i].starts_with('-') {
        let (name, inline) = match args[i].split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (args[i].clone(), None),
        };
        let mut value = || {
            inline.clone().or_else(|| {
                i += 1;
                args.get(i).cloned()
            })
        };
        match name.as_str() {
            "--version" | "-v" => {
                println!(
                    "paddock-oci version {}\nspec: 1.0.2",
                    env!("CARGO_PKG_VERSION")
                );
                return 0;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return 0;
            }
            "--root" => match value() {
                Some(v) => g.root = PathBuf::from(v),
                None => return fail(&g, "--root needs a folder"),
            },
            "--log" => g.log = value().map(PathBuf::from),
            "--policy-dir" => match value() {
                Some(v) => g.places.policies = PathBuf::from(v),
                None => return fail(&g, "--policy-dir needs a folder"),
            },
            "--audit-dir" => match value() {
                Some(v) => g.places.audit = PathBuf::from(v),
                None => return fail(&g, "--audit-dir needs a folder"),
            },
            "--policies" => match value() {
                Some(v) => {
                    g.places.choosable = Some(
                        v.split(',')
                            .map(|n| n.trim().to_string())
                            .filter(|n| !n.is_empty())
                            .collect(),
                    )
                }
                None => return fail(&g, "--policies needs names of policies (A,B), or `*`"),
            },
            "--policy" => match value() {
                Some(v) => g.places.only = Some(v),
                None => {
                    return fail(
                        &g,
                        "--policy needs the name of a policy in the policy folder",
                    )
                }
            },
            "--log-format" => g.json = value().as_deref() == Some("json"),
            "--systemd-cgroup" => g.systemd_cgroup = true,
            "--debug" | "--no-pivot" => {}
            "--rootless" | "--criu" => {
                value();
            }
            other => return fail(&g, &format!("unknown global option `{other}`\n{USAGE}")),
        }
        i += 1;
    }
    let Some(cmd) = args.get(i) else {
        return fail(&g, USAGE);
    };
    let rest = &args[i + 1..];
    if matches!(cmd.as_str(), "create" | "exec") {
        if let Err(why) = seal_self() {
            return fail(&g, &why);
        }
    }
    let r = match cmd.as_str() {
        "create" => create(&g, rest),
        "start" => one_id(rest).and_then(|id| start(&g, &id)),
        "state" => one_id(rest).and_then(|id| {
            let r = state::load(&g.root, &id)?;
            let doc = state::document(&g.root, &r);
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            Ok(())
        }),
        "kill" => kill(&g, rest),
        "exec" => exec_cmd(&g, rest),
        "delete" => delete(&g, rest),
        "features" => {
            println!("{}", serde_json::to_string_pretty(&features()).unwrap_or_default());
            Ok(())
        }
        "version" => {
            println!("paddock-oci version {}\nspec: 1.0.2", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        other => Err(format!(
            "`{other}` is not a command of this runtime (create, start, state, kill, delete, features)"
        )),
    };
    match r {
        Ok(()) => 0,
        Err(e) => fail(&g, &e),
    }
}

const USAGE: &str = "usage: paddock-oci [--root DIR] [--log FILE] [--log-format text|json]
    [--policy-dir DIR (io.paddock.policy=NAME reads DIR/NAME.toml; default /etc/paddock/oci)]
    [--audit-dir DIR (default /var/log/paddock/oci)]
    [--policy NAME (every container runs under NAME; an annotation naming another is refused)]
    [--policies A,B|* (the policies an io.paddock.policy annotation may choose; none without)]
    COMMAND
  create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK] [--preserve-fds N] ID
  start ID | state ID | kill [--all] ID [SIGNAL] | delete [--force] ID | features";

/// Report `msg` on stderr and, with `--log`, in the log (JSON lines as
/// runc writes them with `--log-format json`); exit code 1.
fn fail(g: &Globals, msg: &str) -> i32 {
    eprintln!("paddock-oci: {msg}");
    log(g, "error", msg);
    1
}

/// One line in the `--log` file, if there is one.
fn log(g: &Globals, level: &str, msg: &str) {
    if let Some(p) = &g.log {
        let line = if g.json {
            serde_json::json!({"level": level, "msg": msg, "time": state::now_rfc3339()})
                .to_string()
        } else {
            format!(
                "time=\"{}\" level={level} msg={msg:?}",
                state::now_rfc3339()
            )
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn one_id(rest: &[String]) -> Result<String, String> {
    match rest {
        [id] => Ok(id.clone()),
        _ => Err("give exactly one container id".into()),
    }
}

/// A command's options and operands: `--name VALUE`, `--name=VALUE` and
/// short aliases for the options in `valued` (`(long, short)`), bare
/// `flags`; anything else starting with `-` is refused.
struct Opts {
    values: std::collections::BTreeMap<&'static str, String>,
    flags: std::collections::BTreeSet<&'static str>,
    operands: Vec<String>,
}

fn options(
    cmd: &str,
    rest: &[String],
    valued: &[(&'static str, &'static str)],
    flags: &[(&'static str, &'static str)],
) -> Result<Opts, String> {
    let mut o = Opts {
        values: Default::default(),
        flags: Default::default(),
        operands: Vec::new(),
    };
    let find = |list: &[(&'static str, &'static str)], n: &str| {
        list.iter()
            .find(|(l, s)| *l == n || (!s.is_empty() && *s == n))
            .map(|(l, _)| *l)
    };
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with('-') => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        if let Some(long) = find(valued, name) {
            let v = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    rest.get(i)
                        .cloned()
                        .ok_or(format!("{cmd}: {long} needs a value"))?
                }
            };
            o.values.insert(long, v);
        } else if let Some(long) = find(flags, name) {
            o.flags.insert(long);
        } else if name.starts_with('-') {
            return Err(format!("{cmd}: unknown option `{name}`"));
        } else {
            o.operands.push(a.clone());
        }
        i += 1;
    }
    Ok(o)
}

impl Opts {
    fn path(&self, name: &str) -> Option<PathBuf> {
        self.values.get(name).map(PathBuf::from)
    }

    fn number(&self, name: &str) -> Result<u32, String> {
        self.values.get(name).map_or(Ok(0), |v| {
            v.parse().map_err(|_| format!("{name} needs a number"))
        })
    }

    /// The one operand: the container id.
    fn id(&self, cmd: &str, extra: &str) -> Result<String, String> {
        match self.operands.as_slice() {
            [id] => Ok(id.clone()),
            [] => Err(format!("{cmd}: give the container id")),
            _ => Err(format!("{cmd}: give exactly one container id{extra}")),
        }
    }
}

fn create(g: &Globals, rest: &[String]) -> Result<(), String> {
    let o = options(
        "create",
        rest,
        &[
            ("--bundle", "-b"),
            ("--pid-file", ""),
            ("--console-socket", ""),
            ("--preserve-fds", ""),
        ],
        &[("--no-pivot", ""), ("--no-new-keyring", "")],
    )?;
    let id = o.id("create", "")?;
    let bundle = o.path("--bundle").unwrap_or_else(|| PathBuf::from("."));
    let (pid_file, console, preserve) = (
        o.path("--pid-file"),
        o.path("--console-socket"),
        o.number("--preserve-fds")?,
    );
    let warnings = init::create(&init::Create {
        root: &g.root,
        id: &id,
        bundle: &bundle,
        pid_file: pid_file.as_deref(),
        console_socket: console.as_deref(),
        preserve_fds: preserve,
        places: &g.places,
        systemd_cgroup: g.systemd_cgroup,
    })?;
    for w in warnings {
        log(g, "warning", &format!("container `{id}`: {w}"));
    }
    Ok(())
}

fn exec_cmd(g: &Globals, rest: &[String]) -> Result<(), String> {
    let o = options(
        "exec",
        rest,
        &[
            ("--pid-file", ""),
            ("--process", "-p"),
            ("--console-socket", ""),
            ("--preserve-fds", ""),
        ],
        &[("--detach", "-d"), ("--tty", "-t")],
    )?;
    let id = o.id(
        "exec",
        " (give the process as --process FILE, process.json, not as arguments)",
    )?;
    let process = o
        .path("--process")
        .ok_or("exec: give the process as --process FILE (process.json)")?;
    let (pid_file, console, preserve) = (
        o.path("--pid-file"),
        o.path("--console-socket"),
        o.number("--preserve-fds")?,
    );
    let (detach, tty) = (o.flags.contains("--detach"), o.flags.contains("--tty"));
    if !detach {
        // Wait for the process (it is re-parented to us) and exit with it.
        paddock_sys::set_child_subreaper().map_err(|e| e.to_string())?;
    }
    let pid = exec::exec(&exec::Exec {
        root: &g.root,
        id: &id,
        process: &process,
        pid_file: pid_file.as_deref(),
        console_socket: console.as_deref(),
        preserve_fds: preserve,
        tty,
        places: &g.places,
    })?;
    if detach {
        return Ok(());
    }
    loop {
        match paddock_sys::waitpid(-1, false) {
            Ok(Some((got, status))) if got == pid => std::process::exit(status.code()),
            Ok(_) => {}
            Err(e) => return Err(format!("waiting for the exec: {e}")),
        }
    }
}

/// Let the created container's process go on to its `execve`.
fn start(g: &Globals, id: &str) -> Result<(), String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let r = state::load(&g.root, id)?;
    match state::status(&g.root, &r) {
        state::Status::Created => {}
        s => return Err(format!("container `{id}` is {}, not created", s.name())),
    }
    let fifo = state::dir(&g.root, id).join("exec.fifo");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .map_err(|e| format!("{}: {e}", fifo.display()))?;
    let ready = paddock_sys::poll_readable(&[std::os::fd::AsFd::as_fd(&f)], 10_000)
        .map_err(|e| e.to_string())?;
    let mut b = [0u8; 1];
    if !ready.first().copied().unwrap_or(false) || f.read(&mut b).unwrap_or(0) != 1 {
        return Err(format!(
            "container `{id}` did not start (its process is gone)"
        ));
    }
    std::fs::remove_file(&fifo).map_err(|e| format!("{}: {e}", fifo.display()))?;
    // poststart: the program runs; a hook that fails is said, not fatal.
    run_late_hooks(g, &r, "poststart", "running");
    Ok(())
}

/// The hooks of `poststart` or `poststop`, from the container's bundle:
/// what fails is said in the log and on stderr (the container's life goes
/// on, as the spec has it).
fn run_late_hooks(g: &Globals, r: &state::Record, stage: &str, status: &str) {
    let Ok(cfg) = config::Config::load(std::path::Path::new(&r.bundle)) else {
        return;
    };
    let Some(h) = cfg.hooks else { return };
    let list = if stage == "poststart" {
        &h.poststart
    } else {
        &h.poststop
    };
    if list.is_empty() {
        return;
    }
    let st = hooks::state(
        &r.id,
        status,
        r.pid,
        &r.bundle,
        &serde_json::to_value(&r.annotations).unwrap_or_default(),
    );
    if let Err(e) = hooks::run(stage, list, &st) {
        eprintln!("paddock-oci: warning: container `{}`: {e}", r.id);
        log(g, "warning", &format!("container `{}`: {e}", r.id));
    }
}

fn signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let n = s.trim_start_matches("SIG");
    Some(match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        "PWR" => libc::SIGPWR,
        _ => return None,
    })
}

fn kill(g: &Globals, rest: &[String]) -> Result<(), String> {
    let all = rest.iter().any(|a| a == "--all" || a == "-a");
    let pos: Vec<&String> = rest.iter().filter(|a| !a.starts_with('-')).collect();
    let (id, sig) = match pos.as_slice() {
        [id] => (id.as_str(), libc::SIGTERM),
        [id, s] => (
            id.as_str(),
            signal(s).ok_or_else(|| format!("`{s}` is not a signal"))?,
        ),
        _ => return Err("kill: give the container id and a signal".into()),
    };
    let r = state::load(&g.root, id)?;
    if state::status(&g.root, &r) == state::Status::Stopped {
        return Err(format!("container not running: {id}"));
    }
    if all {
        for pid in in_pid_namespace(r.pid) {
            let _ = paddock_sys::kill(pid, sig);
        }
    }
    paddock_sys::kill(r.pid, sig).map_err(|e| format!("kill {}: {e}", r.pid))
}

/// `create` and `exec` start a process that enters the container while
/// it still runs the runtime's own code. Whatever is inside must not reach
/// the host's binary through it (`/proc/PID/exe`, opened and written once
/// the runtime is gone: the next engine command would run the container's
/// program as root). So these commands run from a sealed in-memory copy
/// of the binary, and are not dumpable (their `/proc` files are closed to
/// the container's processes) until the container's program replaces
/// them.
fn seal_self() -> Result<(), String> {
    paddock_sys::set_non_dumpable().map_err(|e| format!("prctl(PR_SET_DUMPABLE): {e}"))?;
    if paddock_sys::running_sealed() {
        return Ok(());
    }
    let argv: Vec<OsString> = std::env::args_os().collect();
    let e = paddock_sys::reexec_sealed(&argv);
    Err(format!(
        "running from a sealed copy of the runtime's binary: {e} (a kernel with vm.memfd_noexec = 2 refuses to run one: set it to 0 or 1)"
    ))
}

/// Every process in the pid namespace of `pid` (as seen from here), but
/// none when that namespace is the runtime's own: a container without a
/// pid namespace of its own shares the host's, and `kill --all` would
/// signal every process on the host.
fn in_pid_namespace(pid: i32) -> Vec<i32> {
    let ns = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let Some(want) = ns(pid) else {
        return Vec::new();
    };
    if std::fs::read_link("/proc/self/ns/pid").ok().as_ref() == Some(&want) {
        return Vec::new();
    }
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| *p != pid && ns(*p).as_ref() == Some(&want))
        .collect()
}

fn delete(g: &Globals, rest: &[String]) -> Result<(), String> {
    let force = rest.iter().any(|a| a == "--force" || a == "-f");
    let id = one_id(
        &rest
            .iter()
            .filter(|a| !a.starts_with('-'))
            .cloned()
            .collect::<Vec<_>>(),
    )?;
    let r = match state::load(&g.root, &id) {
        Ok(r) => r,
        Err(_) if force && !state::dir(&g.root, &id).join("state.json").exists() => {
            state::valid_id(&id)?;
            let _ = std::fs::remove_dir_all(state::dir(&g.root, &id));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    match state::status(&g.root, &r) {
        state::Status::Stopped => {}
        state::Status::Created if !force => {
            // A created container that is deleted never runs (runc's way).
            let _ = paddock_sys::kill(r.pid, libc::SIGKILL);
        }
        s if !force => {
            return Err(format!(
                "container `{id}` is {}: stop it first, or delete --force",
                s.name()
            ))
        }
        _ => {
            let _ = paddock_sys::kill(r.pid, libc::SIGKILL);
        }
    }
    for _ in 0..500 {
        if state::status(&g.root, &r) == state::Status::Stopped {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The egress daemon ends on its own once the container's process is
    // gone (its last records written); one that has not within two
    // seconds is ended.
    if let Some((d, start)) = r.egress {
        let alive = || paddock_sys::process_start_time(d) == Some(start);
        for _ in 0..200 {
            if !alive() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if alive() {
            let _ = paddock_sys::kill(d, libc::SIGKILL);
        }
    }
    // Its cgroups, once its processes are gone from them; then poststop.
    cgroups::remove(&r.cgroups_made);
    run_late_hooks(g, &r, "poststop", "stopped");
    std::fs::remove_dir_all(state::dir(&g.root, &id))
        .map_err(|e| format!("{}: {e}", state::dir(&g.root, &id).display()))
}

/// What `features` reports (runtime-spec's features document).
fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "bind", "rbind", "private", "rprivate", "slave", "rslave", "relatime", "noatime", "strictatime"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": true},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {"io.paddock.seccomp": "the bundle's profile and paddock's filters, both"}
    })
}

//! `exec`: another process in a running container (`podman exec`, a
//! Kubernetes probe). It joins every namespace of the container's first
//! process and gets the same boundary as that process: no_new_privs, the
//! capabilities it asks for minus [`crate::config::NEVER`], paddock's
//! seccomp filters.
//!
//! The runtime forks a helper on the host; the helper joins the
//! namespaces (the pid namespace counts for its children only) and forks
//! the process, reports its pid and exits. The process is re-parented to
//! the engine's monitor, as with `create`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::config::Process;
use crate::state::{self, Status};

/// What `exec` is given on its command line.
pub struct Exec<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub process: &'a Path,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
    pub preserve_fds: u32,
    /// `--tty`: a terminal whatever the process says.
    pub tty: bool,
    /// The node's policy and audit folders.
    pub places: &'a crate::egress::Places,
}

/// Start the process; its pid (as seen from here).
pub fn exec(e: &Exec<'_>) -> Result<i32, String> {
    let r = state::load(e.root, e.id)?;
    if state::status(e.root, &r) != Status::Running {
        return Err(format!("container not running: {}", e.id));
    }
    let text = std::fs::read_to_string(e.process)
        .map_err(|err| format!("--process {}: {err}", e.process.display()))?;
    let mut process: Process = serde_json::from_str(&text)
        .map_err(|err| format!("--process {}: {err}", e.process.display()))?;
    // The container's egress variables (the engine builds an exec's
    // environment from the image, not from what `create` added).
    process.env = crate::egress::with_env(&process.env, &r.env);
    if process.args.is_empty() {
        return Err("the process has no args: name the program to run".into());
    }
    if let Some(c) = &process.capabilities {
        for n in c.bounding.iter().chain(&c.effective).chain(&c.permitted) {
            if crate::config::capability(n).is_none() {
                return Err(format!("capability `{n}` is not known"));
            }
        }
    }
    // The container's seccomp profile holds for its every process.
    let cfg = crate::config::Config::load(Path::new(&r.bundle))?;
    let filters = crate::init::bundle_filters(&cfg)?;
    // The namespaces, opened while the pid is known to be the container's
    // (the start time was checked just now).
    let mut ns: Vec<(&str, File)> = Vec::new();
    for kind in ["ipc", "uts", "net", "pid", "cgroup", "mnt"] {
        let p = format!("/proc/{}/ns/{kind}", r.pid);
        let mine = std::fs::read_link(format!("/proc/self/ns/{kind}")).ok();
        let theirs = std::fs::read_link(&p).ok();
        if theirs.is_some() && theirs != mine {
            ns.push((kind, File::open(&p).map_err(|err| format!("{p}: {err}"))?));
        }
    }
    if paddock_sys::process_start_time(r.pid) != Some(r.start_time) {
        return Err(format!("container not running: {}", e.id));
    }
    // The container's policy, read again for its audit settings (the
    // process already runs under the container's network).
    let policy = match &r.policy {
        Some(name) => {
            let mut a = r.annotations.clone();
            a.insert(crate::egress::ANNOTATION.into(), name.clone());
            crate::egress::named_policy(&a, e.places)?
        }
        None => None,
    };
    // Under a policy that audits, the way to the container's observer,
    // made here on the host: a process that cannot hand its listener over
    // does not start.
    let exec_id = crate::observer::new_exec_id();
    let daemon = match &policy {
        Some(_) => Some(crate::observer::connect(&state::dir(e.root, e.id))?),
        None => None,
    };
    let link = match (&daemon, policy.as_ref().map(|p| p.eff.audit_level.value)) {
        (Some(d), Some(level)) if level != paddock_sandbox::AuditLevel::Off => {
            Some(crate::observer::link(d, level, exec_id)?)
        }
        _ => None,
    };
    let console = crate::init::console_socket(process.terminal || e.tty, e.console_socket)?;
    let (mut parent_end, child_end) = UnixStream::pair().map_err(|err| err.to_string())?;
    match paddock_sys::fork().map_err(|err| format!("fork: {err}"))? {
        paddock_sys::Forked::Child => {
            drop(parent_end);
            let mut sync = child_end;
            // The container's cgroups first, from the host (its
            // processes are counted and limited together).
            let why = match crate::cgroups::join(&r.cgroups, 0) {
                Ok(()) => helper(
                    &process,
                    &ns,
                    console,
                    &filters,
                    e.preserve_fds,
                    link,
                    &mut sync,
                ),
                Err(why) => why,
            };
            let _ = sync.write_all(format!("ERR {why}").as_bytes());
            paddock_sys::exit_now(1);
        }
        paddock_sys::Forked::Parent { pid: helper, .. } => {
            drop(child_end);
            drop(link);
            let mut buf = [0u8; 4096];
            let n = parent_end.read(&mut buf).unwrap_or(0);
            let said = String::from_utf8_lossy(&buf[..n]).to_string();
            let _ = paddock_sys::waitpid(helper, false);
            let Some(pid) = said
                .strip_prefix("PID ")
                .and_then(|p| p.parse::<i32>().ok())
            else {
                let why = said
                    .strip_prefix("ERR ")
                    .unwrap_or("the process ended before it started");
                return Err(format!("exec in `{}`: {why}", e.id));
            };
            if let Some(p) = e.pid_file {
                state::write_pid_file(p, pid)?;
            }
            // Each command attributed to its container (and pod), by the
            // container's daemon (the log's one writer); what it does
            // carries the same exec id.
            if let Some(d) = &daemon {
                let _ = crate::observer::start(
                    d,
                    &serde_json::json!({"argv": process.args, "cwd": process.cwd, "pid": pid, "exec_id": exec_id}),
                );
            }
            Ok(pid)
        }
    }
}

/// The helper: join, fork the process, say its pid. Returns only with
/// the step that failed.
fn helper(
    process: &Process,
    ns: &[(&str, File)],
    console: Option<UnixStream>,
    filters: &Option<paddock_sandbox::ContainerFilters>,
    preserve_fds: u32,
    link: Option<crate::observer::Link>,
    sync: &mut UnixStream,
) -> String {
    for (kind, f) in ns {
        if let Err(err) = paddock_sys::setns(f.as_fd()) {
            return format!("joining the container's {kind} namespace: {err}");
        }
    }
    if let Err(err) = std::env::set_current_dir("/") {
        return format!("chdir /: {err}");
    }
    // The pty on the container's devpts (this is its mount namespace now).
    let tty = match console.as_ref().map(crate::init::terminal).transpose() {
        Ok(t) => t,
        Err(e) => return e,
    };
    match paddock_sys::fork() {
        Err(err) => format!("fork: {err}"),
        Ok(paddock_sys::Forked::Parent { pid, .. }) => {
            let _ = sync.write_all(format!("PID {pid}").as_bytes());
            paddock_sys::exit_now(0);
        }
        Ok(paddock_sys::Forked::Child) => {
            // The container's network (pids) is the host's when this
            // runtime did not have to join it.
            let on_host = crate::init::OnHost {
                net: !ns.iter().any(|(kind, _)| *kind == "net"),
                pid: !ns.iter().any(|(kind, _)| *kind == "pid"),
            };
            let why = match crate::init::confine_and_exec(
                process,
                tty,
                filters,
                preserve_fds,
                on_host,
                link.as_ref(),
            ) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            // The helper has reported our pid already: say why on stderr.
            let _ = writeln!(std::io::stderr(), "paddock-oci: exec: {why}");
            paddock_sys::exit_now(127);
        }
    }
}

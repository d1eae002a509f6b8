//! The supervisor of one live session, and the `paddock exec` client.
//!
//! There is no central daemon. The first `paddock exec` of a session starts
//! its supervisor (`paddock __supervise ID`, in a session of its own), which
//! creates the sandbox (pid 1 in session mode), listens on
//! `sessions/ID/control.sock`, and lives until the session is stopped or
//! idle for its timeout. When no session is live, paddock runs no process.
//!
//! One exec: the client sends its stdin, stdout and stderr (SCM_RIGHTS) with
//! the command; the supervisor relays them to pid 1, which forks the command
//! with those descriptors, confines it exactly as `paddock run` does, and
//! reports `started` and `exited`; the client exits with the command's code.
//! Signals the client receives are relayed to the command.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use paddock_sandbox::{ExecEvent, ExecRequest};
use paddock_session::{Liveness, Meta, State, Store, Supervisor};
use serde::Serialize;

use crate::compile::{flags_layer, HostFacts, RunFlags};
use crate::error::CliError;
use crate::policy_files;

pub use paddock_protocol::{ControlRequest, PROTOCOL_VERSION};

fn io_err(what: &str) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| {
        CliError::new(
            "SESSION_IO",
            format!("{what}: {e}"),
            "check the session's folder and its supervisor.log",
        )
    }
}

pub(crate) fn session_err(e: paddock_session::SessionError) -> CliError {
    let code = match e {
        paddock_session::SessionError::NotFound(_) => "SESSION_NOT_FOUND",
        paddock_session::SessionError::NameTaken(_) => "SESSION_NAME_TAKEN",
        _ => "SESSION_IO",
    };
    CliError::new(
        code,
        e.to_string(),
        "`paddock session list` shows the sessions",
    )
}

thread_local! {
    /// Who is asking, for the audit events of this process's execs.
    static CALLER: std::cell::RefCell<paddock_audit::Caller> = std::cell::RefCell::new(paddock_audit::Caller::default());
}

/// Record who asks for the next execs: `--tool-call-id`/`--agent`, else
/// `PADDOCK_TOOL_CALL_ID`, `PADDOCK_AGENT`; `TRACEPARENT` from the
/// environment.
pub fn set_caller(tool_call_id: Option<String>, agent: Option<String>) {
    let mut c = crate::audit::caller_from_env();
    c.tool_call_id = tool_call_id.or(c.tool_call_id);
    c.agent = agent.or(c.agent);
    CALLER.with(|x| *x.borrow_mut() = c);
}

/// The flags a session was started with, as run flags.
pub fn session_flags(inputs: &paddock_session::Inputs) -> RunFlags {
    RunFlags {
        mounts: inputs.mounts.clone(),
        env: inputs.env.clone(),
        unprotect: inputs.unprotect.clone(),
        ..RunFlags::default()
    }
}

struct Shared {
    ctl: Mutex<UnixStream>,
    waiters: Mutex<HashMap<u64, mpsc::Sender<ExecEvent>>>,
    pids: Mutex<HashMap<u64, i32>>,
    active: AtomicUsize,
    last: Mutex<Instant>,
    next: AtomicU64,
    meta: Mutex<Meta>,
    store: Store,
    stop: mpsc::Sender<&'static str>,
    audit: Arc<paddock_audit::Log>,
    /// Who asked for each exec request and what (argv, cwd), for its
    /// `exec.start` and its processes' audit records.
    callers: Mutex<HashMap<u64, (paddock_audit::Caller, serde_json::Value)>>,
    /// Clients subscribed to the audit events.
    subscribers: Arc<Mutex<Vec<mpsc::Sender<paddock_audit::Event>>>>,
}

impl Shared {
    /// A copy of the session's record.
    fn meta(&self) -> Meta {
        self.meta.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn touch(&self, started: bool) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let mut m = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        m.last_used = paddock_session::now();
        if started {
            m.commands += 1;
        }
        let _ = self.store.save_quick(&m);
    }
}

/// `paddock __supervise ID`: become the session's supervisor. Prints
/// `ready` (or a JSON error) on stdout for the client that started it.
pub fn supervise_main(id: &str) -> i32 {
    match supervise(id) {
        Ok(c) => c,
        Err(e) => {
            let v = serde_json::json!({"code": e.code, "message": e.to_string(), "exit": e.exit});
            println!("{v}");
            eprintln!("{e}");
            e.exit
        }
    }
}

fn supervise(id: &str) -> Result<i32, CliError> {
    let _ = paddock_sys::setsid();
    let host0 = HostFacts::current()?;
    let store = Store::locate(&host0.home);
    let mut meta = store.load(id).map_err(session_err)?;
    // One supervisor per session, whatever races: the first to hold this
    // lock is it, for its whole life (the lock ends with the process).
    let dir = store.dir(&meta.id);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("supervisor.lock"))
        .map_err(io_err("supervisor.lock"))?;
    if !paddock_sys::flock_exclusive(lock.as_fd(), false).map_err(io_err("supervisor.lock"))? {
        return Err(CliError::new(
            "SESSION_RUNNING",
            format!("session {} already has a supervisor", meta.label()),
            "",
        ));
    }
    // Held (never closed) until this process ends.
    std::mem::forget(lock);
    meta = store.load(id).map_err(session_err)?;
    if meta.liveness() == Liveness::Running {
        return Err(CliError::new(
            "SESSION_RUNNING",
            format!("session {} already has a supervisor", meta.label()),
            "",
        ));
    }
    let host = HostFacts {
        cwd: meta.inputs.workspace.clone(),
        ..host0
    };
    let flags = session_flags(&meta.inputs);
    let eff = policy_files::effective(
        &host,
        meta.inputs.policy.as_deref(),
        Some(flags_layer(&flags)?),
    )?;
    if eff.hash() != meta.policy_hash {
        return Err(CliError::new(
            "SESSION_POLICY_CHANGED",
            format!(
                "the effective policy changed since session {} started ({} → {})",
                meta.label(),
                meta.policy_hash,
                eff.hash()
            ),
            "start a new session to use the new policy",
        ));
    }
    let cow_cap = eff.cow_mib.value.saturating_mul(1 << 20);
    let cow_used = paddock_session::cow::layer_bytes(&dir);
    if cow_used > cow_cap {
        return Err(cow_full(&meta, cow_used, eff.cow_mib.value));
    }
    let choice = crate::isolation::choose(&eff, &host.home)?;
    let paddock_plan::Plan { spec, egress, .. } = paddock_plan::plan(&paddock_plan::Request {
        host: &host,
        eff: &eff,
        flags: &flags,
        level: choice.level,
        purpose: paddock_plan::Purpose::Session {
            id: &meta.id,
            dir: &dir,
        },
    })?;

    // From here on, diagnostics go to the session's log.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("supervisor.log"))
        .map_err(io_err("supervisor.log"))?;
    let _ = paddock_sys::dup2(log.as_fd(), 2);
    crate::isolation::warn(&choice);

    // Single-threaded until here: the sandbox is cloned now.
    let mut running = paddock_sandbox::spawn(&spec)?;
    running.ready()?;
    let guard = running.guard();
    crate::status::save_summary(
        &store,
        &meta.id,
        &crate::status::summarize(&eff, &spec, &running.limits),
    );
    // Subscribers (`{"op":"subscribe"}`) get every event as it is recorded.
    let subscribers: Arc<Mutex<Vec<mpsc::Sender<paddock_audit::Event>>>> = Arc::default();
    let fanout = {
        let subs = subscribers.clone();
        Arc::new(move |e: &paddock_audit::Event| {
            subs.lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|tx| tx.send(e.clone()).is_ok());
        }) as paddock_audit::Sink
    };
    let mut audit_out = crate::audit::open_log(
        &dir,
        &meta.id,
        &meta.policy_hash,
        &eff,
        choice.level.as_str(),
        Some(fanout),
    )?;
    audit_out.start_export();
    let audit = audit_out.log.clone();
    if let (Some(g), Some(l)) = (&egress, running.proxy_listener.take()) {
        let log = audit.clone();
        let sink: paddock_proxy::EventSink = Arc::new(move |e: &paddock_proxy::Event| {
            log.emit(
                "net.decision",
                Some(e.allowed),
                Some(&e.code),
                &paddock_audit::Caller::default(),
                serde_json::to_value(e).unwrap_or_default(),
            );
        });
        let mut cfg = g.config(&eff, Some(sink))?;
        // On the host's loopback (no network namespace): this user only.
        if !choice.level.namespaces() {
            cfg.peer_uid = Some(paddock_sys::getuid());
        }
        paddock_proxy::spawn_thread(l, cfg).map_err(io_err("egress proxy"))?;
    }
    let ctl = running
        .control
        .take()
        .ok_or_else(|| CliError::new("SESSION_IO", "no control channel", ""))?;
    let sock = dir.join("control.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(io_err("control.sock"))?;

    let pid = std::process::id() as i32;
    meta.state = State::Running;
    meta.supervisor = Some(Supervisor {
        pid,
        start_time: paddock_sys::process_start_time(pid).unwrap_or(0),
    });
    meta.last_used = paddock_session::now();
    meta.isolation = Some(choice.level.as_str().to_string());
    store.save(&meta).map_err(session_err)?;

    let (stop_tx, stop_rx) = mpsc::channel::<&'static str>();
    let shared = Arc::new(Shared {
        ctl: Mutex::new(ctl.try_clone().map_err(io_err("control channel"))?),
        waiters: Mutex::new(HashMap::new()),
        pids: Mutex::new(HashMap::new()),
        active: AtomicUsize::new(0),
        last: Mutex::new(Instant::now()),
        next: AtomicU64::new(1),
        meta: Mutex::new(meta.clone()),
        store: store.clone(),
        stop: stop_tx,
        audit: audit.clone(),
        callers: Mutex::new(HashMap::new()),
        subscribers,
    });
    shared.audit.emit(
        "session.start",
        None,
        None,
        &paddock_audit::Caller::default(),
        serde_json::json!({"supervisor_pid": pid, "workspace": meta.inputs.workspace, "network": format!("{:?}", eff.network_mode.value).to_lowercase(), "isolation": choice.level.as_str()}),
    );

    // Protected names a command created in an rw mount are moved aside
    // before its client hears that it ended, and every second while
    // commands run (docs/sandbox.md says what this leaves open).
    // The cow layers' cap is checked at the same moments (every fifth
    // second while commands run): past it, the session stops, its changes
    // kept for review.
    let has_cow = spec
        .mounts
        .iter()
        .any(|m| m.mode == paddock_sandbox::MountMode::Cow);
    let sweep = {
        let shared = shared.clone();
        let guard = guard.clone();
        let dir = dir.clone();
        let cow_mib = eff.cow_mib.value;
        let ticks = AtomicU64::new(0);
        Arc::new(move |check: Check| {
            if check != Check::Cow && !guard.is_empty() {
                crate::audit::swept(Some(&shared.audit), guard.sweep());
            }
            let now = match check {
                Check::Protected => false,
                Check::Cow => true,
                Check::Tick => ticks.fetch_add(1, Ordering::Relaxed) % 5 == 4,
            };
            if has_cow && now {
                let used = paddock_session::cow::layer_bytes(&dir);
                if used > cow_cap {
                    let e = cow_full(&shared.meta(), used, cow_mib);
                    eprintln!("{e}");
                    shared.audit.emit(
                        "session.cow_full",
                        Some(false),
                        Some("COW_LAYER_FULL"),
                        &paddock_audit::Caller::default(),
                        serde_json::json!({"bytes": used, "cap_mib": cow_mib}),
                    );
                    // A moment for the client threads to deliver the exit
                    // statuses they hold before the sandbox goes.
                    let stop = shared.stop.clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(300));
                        let _ = stop.send("its cow layers passed process.limits.cow_mib");
                    });
                }
            }
        })
    };
    if !guard.is_empty() || has_cow {
        let shared = shared.clone();
        let sweep = sweep.clone();
        // Every second while the sandbox lives: a process left running in
        // the background after its command ended may still create names.
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            sweep(if shared.active.load(Ordering::SeqCst) > 0 {
                Check::Tick
            } else {
                Check::Protected
            });
        });
    }

    // pid 1's events, routed to the waiting clients.
    {
        let shared = shared.clone();
        let sweep = sweep.clone();
        std::thread::spawn(move || {
            // One message per read: records can be long (argv).
            for line in BufReader::with_capacity(1 << 16, ctl).lines() {
                let Ok(line) = line else { break };
                let Ok(ev) = serde_json::from_str::<ExecEvent>(&line) else {
                    continue;
                };
                let id = match &ev {
                    ExecEvent::Audit { id, record } => {
                        let caller = shared
                            .callers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(id)
                            .map(|c| c.0.clone())
                            .unwrap_or_default();
                        crate::audit::emit_record(&shared.audit, &caller, *id, record);
                        continue;
                    }
                    ExecEvent::Started { id, pid } => {
                        // Recorded here, in pid 1's order, so that it
                        // precedes the command's own records.
                        let (caller, mut data) = shared
                            .callers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(id)
                            .cloned()
                            .unwrap_or_default();
                        data["pid"] = (*pid).into();
                        data["exec_id"] = (*id).into();
                        shared
                            .audit
                            .emit("exec.start", Some(true), None, &caller, data);
                        *id
                    }
                    ExecEvent::Failed { id, .. } | ExecEvent::Exited { id, .. } => *id,
                };
                let done = !matches!(ev, ExecEvent::Started { .. });
                if done {
                    sweep(Check::Protected);
                }
                let tx = {
                    let mut w = shared.waiters.lock().unwrap_or_else(|e| e.into_inner());
                    if done {
                        w.remove(&id)
                    } else {
                        w.get(&id).cloned()
                    }
                };
                if let Some(tx) = tx {
                    let _ = tx.send(ev);
                }
                if done {
                    shared.active.fetch_sub(1, Ordering::SeqCst);
                    shared.touch(false);
                    // After the client has its answer: this may stop the session.
                    sweep(Check::Cow);
                }
            }
            let _ = shared.stop.send("sandbox ended"); // pid 1 is gone
        });
    }
    // Idle timeout: no command running for that long ends the sandbox.
    if meta.idle_timeout_s > 0 {
        let shared = shared.clone();
        let limit = Duration::from_secs(meta.idle_timeout_s);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200).min(limit));
            let idle = shared
                .last
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed();
            if shared.active.load(Ordering::SeqCst) == 0 && idle >= limit {
                let _ = shared.stop.send("idle timeout");
                break;
            }
        });
    }
    {
        let shared = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || client(shared, conn));
            }
        });
    }

    // SIGTERM, SIGINT or SIGHUP to the supervisor (kill, logout, a
    // service manager) stop the session cleanly. They are blocked in every
    // thread since the sandbox was spawned, so this thread takes them.
    {
        let stop = shared.stop.clone();
        std::thread::spawn(move || {
            let set = paddock_sys::SigSet::of(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
            if paddock_sys::wait_signal(&set).is_ok() {
                let _ = stop.send("terminated by a signal");
            }
        });
    }

    println!("ready");
    let _ = std::io::stdout().flush();
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = paddock_sys::dup2(null.as_fd(), 1);
    }

    let reason = stop_rx.recv().unwrap_or("supervisor ending");
    {
        let ctl = shared.ctl.lock().unwrap_or_else(|e| e.into_inner());
        let _ = paddock_sys::send_fds(ctl.as_fd(), &[], b"stop");
    }
    if let Ok(o) = running.wait() {
        for q in &o.created_protected {
            crate::audit::quarantined(Some(&shared.audit), q);
        }
    }
    let _ = std::fs::remove_file(&sock);
    shared.audit.emit(
        "session.stop",
        None,
        None,
        &paddock_audit::Caller::default(),
        serde_json::json!({"reason": reason}),
    );
    let mut m = shared.meta();
    m.state = State::Stopped;
    m.supervisor = None;
    store.save(&m).map_err(session_err)?;
    audit_out.finish();
    drop(egress);
    Ok(0)
}

fn send_line<T: Serialize>(conn: &UnixStream, v: &T) -> bool {
    let mut line = serde_json::to_vec(v).unwrap_or_default();
    line.push(b'\n');
    (&*conn).write_all(&line).is_ok()
}

/// One client connection.
fn client(shared: Arc<Shared>, conn: UnixStream) {
    let Ok((payload, fds)) = paddock_sys::recv_fds(conn.as_fd(), paddock_protocol::MAX_REQUEST)
    else {
        return;
    };
    let req = match paddock_protocol::parse_request(&payload) {
        Ok(r) => r,
        Err(e) => {
            send_line(
                &conn,
                &serde_json::json!({"error": "BAD_REQUEST", "field": e.field, "message": e.to_string(), "protocol": PROTOCOL_VERSION}),
            );
            return;
        }
    };
    match req {
        ControlRequest::Hello => {
            let m = shared.meta();
            send_line(
                &conn,
                &serde_json::json!({"protocol": PROTOCOL_VERSION, "paddock": env!("CARGO_PKG_VERSION"), "session": m.id, "policy_hash": m.policy_hash, "ops": ["hello", "exec", "status", "stop", "subscribe"]}),
            );
        }
        ControlRequest::Subscribe { after } => {
            // Registered first, so nothing falls between the backlog and
            // the live events; duplicates are skipped by sequence number.
            let (tx, rx) = mpsc::channel::<paddock_audit::Event>();
            shared
                .subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(tx);
            let path = shared.store.dir(&shared.meta().id).join("audit.jsonl");
            let mut last = after;
            for e in paddock_audit::read(&path) {
                if e.seq > last {
                    last = e.seq;
                    if !send_line(&conn, &e) {
                        return;
                    }
                }
            }
            while let Ok(e) = rx.recv() {
                if e.seq > last {
                    last = e.seq;
                    if !send_line(&conn, &e) {
                        return;
                    }
                }
            }
        }
        ControlRequest::Stop => {
            send_line(&conn, &serde_json::json!({"ok": true}));
            let _ = shared.stop.send("stopped on request");
        }
        ControlRequest::Status => {
            let m = shared.meta();
            send_line(
                &conn,
                &serde_json::json!({"id": m.id, "running_commands": shared.active.load(Ordering::SeqCst), "commands": m.commands}),
            );
        }
        ControlRequest::Exec {
            argv,
            cwd,
            caller,
            capture,
            stdin,
        } => {
            if argv.is_empty() {
                send_line(
                    &conn,
                    &serde_json::json!({"error": "BAD_REQUEST", "message": "argv is empty"}),
                );
                return;
            }
            // Captured: paddock makes the pipes and collects the output.
            let mut fds = fds;
            let mut captured = None;
            if capture && fds.is_empty() {
                match piped(stdin.unwrap_or_default().into_bytes(), 1 << 20) {
                    Ok((ends, output)) => {
                        fds = ends.into();
                        captured = Some(output);
                    }
                    Err(e) => {
                        send_line(
                            &conn,
                            &serde_json::json!({"error": "SESSION_IO", "message": format!("pipes: {e}")}),
                        );
                        return;
                    }
                }
            }
            if fds.len() != 3 {
                send_line(
                    &conn,
                    &ExecEvent::Failed {
                        id: 0,
                        code: 125,
                        message: "exec needs stdin, stdout and stderr as descriptors, or \"capture\": true"
                            .into(),
                    },
                );
                return;
            }
            let id = shared.next.fetch_add(1, Ordering::SeqCst);
            shared
                .callers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    id,
                    (
                        caller.clone(),
                        serde_json::json!({"argv": argv, "cwd": cwd}),
                    ),
                );
            let (tx, rx) = mpsc::channel();
            shared
                .waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, tx);
            shared.active.fetch_add(1, Ordering::SeqCst);
            shared.touch(true);
            let started_at = Instant::now();
            let audit_argv = argv.clone();
            let req = ExecRequest {
                id,
                argv,
                // Host tools (ps e, EDR) attribute sandbox processes to
                // their session through this marker.
                env: vec![("PADDOCK_SESSION".to_string(), shared.meta().id)],
                cwd,
            };
            let payload = serde_json::to_vec(&req).unwrap_or_default();
            let sent = {
                let ctl = shared.ctl.lock().unwrap_or_else(|e| e.into_inner());
                let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
                paddock_sys::send_fds(ctl.as_fd(), &borrowed, &payload)
            };
            drop(fds);
            if sent.is_err() {
                shared
                    .waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                shared.active.fetch_sub(1, Ordering::SeqCst);
                send_line(
                    &conn,
                    &ExecEvent::Failed {
                        id,
                        code: 125,
                        message: "the sandbox is gone".into(),
                    },
                );
                return;
            }
            // Signals from the client: "signal N" lines (to the command),
            // "signal-group N" (to its whole process group).
            if let Ok(rd) = conn.try_clone() {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(rd).lines() {
                        let Ok(line) = line else { break };
                        let (group, rest) = match line.strip_prefix("signal-group ") {
                            Some(r) => (true, Some(r)),
                            None => (false, line.strip_prefix("signal ")),
                        };
                        let Some(sig) = rest.and_then(|s| s.trim().parse::<i32>().ok()) else {
                            continue;
                        };
                        // The command may have reported itself before its
                        // `started` event reached us: wait for its pid.
                        let mut pid = None;
                        for _ in 0..500 {
                            pid = shared
                                .pids
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get(&id)
                                .copied();
                            if pid.is_some() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        if let Some(pid) = pid {
                            let ctl = shared.ctl.lock().unwrap_or_else(|e| e.into_inner());
                            let _ = paddock_sys::send_fds(
                                ctl.as_fd(),
                                &[],
                                format!("signal {} {sig}", if group { -pid } else { pid })
                                    .as_bytes(),
                            );
                        }
                    }
                });
            }
            while let Ok(ev) = rx.recv() {
                match &ev {
                    ExecEvent::Started { pid, .. } => {
                        shared
                            .pids
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id, *pid);
                    }
                    ExecEvent::Exited { code, signal, .. } => shared.audit.emit(
                        "exec.exit",
                        None,
                        None,
                        &caller,
                        serde_json::json!({"argv": audit_argv, "exit_code": code, "signal": signal, "duration_ms": started_at.elapsed().as_millis(), "exec_id": id}),
                    ),
                    ExecEvent::Audit { .. } => {}
                    ExecEvent::Failed { code, message, .. } => {
                        let reason = ExecEvent::failure_reason(*code);
                        shared.audit.emit(
                            "exec.exit",
                            Some(false),
                            Some(reason),
                            &caller,
                            serde_json::json!({"argv": audit_argv, "exit_code": code, "message": message, "exec_id": id}),
                        );
                    }
                }
                let done = !matches!(ev, ExecEvent::Started { .. });
                if done {
                    if let Some(output) = captured.take() {
                        let ((stdout, _), (stderr, _)) = output.collect();
                        send_line(
                            &conn,
                            &serde_json::json!({"event": "output", "id": id, "stdout": String::from_utf8_lossy(&stdout), "stderr": String::from_utf8_lossy(&stderr)}),
                        );
                    }
                }
                if !send_line(&conn, &ev) || done {
                    break;
                }
            }
            shared
                .pids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

/// Make sure `meta`'s supervisor runs; start it if not. Returns the
/// control socket path.
/// What one pass of the session's checks looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Protected names only (a command ended; its client is waiting).
    Protected,
    /// The cow layers' size only (after the client was answered).
    Cow,
    /// The periodic pass: protected names, and every fifth time the size.
    Tick,
}

/// A session whose cow layers passed their cap.
fn cow_full(meta: &Meta, used: u64, cap_mib: u64) -> CliError {
    CliError::new(
        "COW_LAYER_FULL",
        format!(
            "session {}'s copy-on-write changes take {} MiB, over process.limits.cow_mib = {cap_mib}",
            meta.label(),
            used >> 20
        ),
        format!(
            "review them with `paddock diff {0}`, then `paddock apply {0}` or `paddock discard {0}`; or raise process.limits.cow_mib",
            meta.label()
        ),
    )
}

pub fn ensure_supervisor(store: &Store, meta: &Meta) -> Result<PathBuf, CliError> {
    let sock = store.dir(&meta.id).join("control.sock");
    if meta.liveness() == Liveness::Running {
        return Ok(sock);
    }
    // Starting is serialised: the first caller starts the supervisor while
    // holding this lock; the others wait for it, then find the session
    // running and attach to the same supervisor.
    let start_lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(store.dir(&meta.id).join("start.lock"))
        .map_err(io_err("start.lock"))?;
    paddock_sys::flock_exclusive(start_lock.as_fd(), true).map_err(io_err("start.lock"))?;
    let meta = &store.load(&meta.id).map_err(session_err)?;
    if meta.liveness() == Liveness::Running {
        return Ok(sock);
    }
    let exe = std::env::current_exe().map_err(io_err("locating paddock"))?;
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(exe)
        .arg("__supervise")
        .arg(&meta.id)
        .current_dir(&meta.inputs.workspace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(io_err("starting the supervisor"))?;
    let mut line = String::new();
    let out = child
        .stdout
        .take()
        .ok_or_else(|| CliError::new("SESSION_IO", "no supervisor output", ""))?;
    let _ = BufReader::new(out).read_line(&mut line);
    if line.trim() == "ready" {
        // The supervisor outlives us; nobody waits for it but init.
        std::mem::drop(child);
        return Ok(sock);
    }
    let _ = child.wait();
    // The supervisor reports a failure as one JSON line.
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
    let message = v["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "the supervisor exited without a word; see {}",
                store.dir(&meta.id).join("supervisor.log").display()
            )
        });
    Err(CliError {
        code: "SESSION_START_FAILED",
        message: format!(
            "session {} could not start its sandbox [{}]:\n{message}",
            meta.label(),
            v["code"].as_str().unwrap_or("?")
        ),
        fix: String::new(),
        exit: v["exit"]
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(125),
        raw: false,
    })
}

/// `paddock exec`: run one command in the session's sandbox.
pub fn exec(store: &Store, meta: &Meta, argv: Vec<String>) -> Result<i32, CliError> {
    if paddock_sys::isatty(0) && paddock_sys::isatty(1) {
        return exec_tty(store, meta, argv);
    }
    let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    exec_with(store, meta, argv, [i.as_fd(), o.as_fd(), e.as_fd()])
}

/// An interactive exec: the command gets a fresh pseudo-terminal (its own
/// controlling terminal, so shells have job control), and this process
/// relays between it and the user's terminal in raw mode. The user's
/// terminal itself never enters the sandbox.
fn exec_tty(store: &Store, meta: &Meta, argv: Vec<String>) -> Result<i32, CliError> {
    use std::io::Read;
    let (master, slave) = paddock_sys::openpty().map_err(io_err("allocating a terminal"))?;
    paddock_sys::copy_winsize(0, std::os::fd::AsRawFd::as_raw_fd(&master));
    let saved = paddock_sys::make_raw(0).map_err(io_err("raw mode"))?;
    let mut from_master = std::fs::File::from(master.try_clone().map_err(io_err("terminal"))?);
    let mut to_master = std::fs::File::from(master);
    let out = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut stdout = std::io::stdout();
        // EIO once the last holder of the slave side is gone.
        while let Ok(n) = from_master.read(&mut buf) {
            if n == 0
                || stdout
                    .write_all(&buf[..n])
                    .and_then(|_| stdout.flush())
                    .is_err()
            {
                break;
            }
        }
    });
    let master_fd = std::os::fd::AsRawFd::as_raw_fd(&to_master);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || to_master.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let result = {
        let fds = [slave.as_fd(), slave.as_fd(), slave.as_fd()];
        exec_with_winch(store, meta, argv, fds, Some(master_fd))
    };
    drop(slave);
    // Drain what the command wrote last; a background process that still
    // holds the terminal must not keep us waiting.
    let deadline = Instant::now() + Duration::from_millis(500);
    while !out.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    paddock_sys::restore_terminal(0, &saved);
    result
}

/// Run one command in the session with the given stdin, stdout, stderr.
pub fn exec_with(
    store: &Store,
    meta: &Meta,
    argv: Vec<String>,
    stdio: [std::os::fd::BorrowedFd<'_>; 3],
) -> Result<i32, CliError> {
    exec_with_winch(store, meta, argv, stdio, None)
}

/// [`exec_with`], keeping `pty_master`'s window size in step with the
/// user's terminal on SIGWINCH.
fn exec_with_winch(
    store: &Store,
    meta: &Meta,
    argv: Vec<String>,
    stdio: [std::os::fd::BorrowedFd<'_>; 3],
    pty_master: Option<std::os::fd::RawFd>,
) -> Result<i32, CliError> {
    let cwd = std::env::current_dir()
        .ok()
        .filter(|c| c.starts_with(&meta.inputs.workspace));
    let caller = CALLER.with(|c| c.borrow().clone());
    let conn = send_exec(store, meta, argv, cwd, caller, &stdio)?;
    // Relay signals: the command runs in a session of its own, so even a
    // terminal's Ctrl-C reaches it only through us.
    let set = paddock_sys::SigSet::of(paddock_sandbox::FORWARDED_SIGNALS);
    let _ = paddock_sys::block_signals(&set);
    if let Ok(w) = conn.try_clone() {
        std::thread::spawn(move || {
            while let Ok(sig) = paddock_sys::wait_signal(&set) {
                if let (libc::SIGWINCH, Some(m)) = (sig.signo, pty_master) {
                    // The pty's own size change signals the command.
                    paddock_sys::copy_winsize(0, m);
                    continue;
                }
                if (&w)
                    .write_all(format!("signal {}\n", sig.signo).as_bytes())
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<ExecEvent>(&line) {
            Ok(ExecEvent::Started { .. } | ExecEvent::Audit { .. }) => {}
            Ok(ExecEvent::Exited { code, .. }) => return Ok(code),
            Ok(ExecEvent::Failed { code, message, .. }) => return Err(exec_failed(code, message)),
            Err(_) => {}
        }
    }
    Err(CliError::new(
        "SESSION_LOST",
        format!("session {} ended while the command ran", meta.label()),
        "see its supervisor.log",
    ))
}

/// Ask a live session (or a live `paddock run`) to stop and wait until it
/// has.
pub fn stop(store: &Store, meta: &Meta) -> Result<bool, CliError> {
    if meta.liveness() != Liveness::Running {
        return Ok(false);
    }
    if meta.oneshot {
        // A `paddock run`: its own process is the record's supervisor, and
        // SIGTERM is forwarded to its command (liveness above checked that
        // the pid is still that process).
        if let Some(s) = &meta.supervisor {
            let _ = paddock_sys::kill(s.pid, libc::SIGTERM);
        }
    } else {
        let sock = store.dir(&meta.id).join("control.sock");
        if let Ok(conn) = UnixStream::connect(&sock) {
            let payload = serde_json::to_vec(&ControlRequest::Stop).unwrap_or_default();
            let _ = paddock_sys::send_fds(conn.as_fd(), &[], &payload);
            let mut line = String::new();
            let _ = BufReader::new(conn).read_line(&mut line);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if store
            .load(&meta.id)
            .map(|m| m.liveness() != Liveness::Running)
            .unwrap_or(true)
        {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(CliError::new(
        "SESSION_STOP_TIMEOUT",
        format!("session {} did not stop within 10 s", meta.label()),
        "kill its supervisor (pid in meta.json); its sandbox dies with it",
    ))
}

/// A command to run with its output collected.
pub struct CaptureRequest {
    /// Command and arguments.
    pub argv: Vec<String>,
    /// Working directory inside the sandbox.
    pub cwd: Option<PathBuf>,
    /// Who asked.
    pub caller: paddock_audit::Caller,
    /// Its standard input.
    pub stdin: Vec<u8>,
    /// Killed (with its process group) after this long.
    pub timeout: Duration,
    /// Bytes of each stream kept.
    pub limit: usize,
}

/// What a captured exec produced.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// Exit code (128 + signal when killed; 124 when the timeout killed it).
    pub code: i32,
    /// Standard output, at most `limit` bytes kept (head and tail).
    pub stdout: Vec<u8>,
    /// Standard error, likewise.
    pub stderr: Vec<u8>,
    /// Bytes of output left out of the middle.
    pub truncated: u64,
    /// Whether the timeout ended it.
    pub timed_out: bool,
}

/// What a capture thread kept: the bytes, and how many were left out.
type Kept = (Vec<u8>, u64);

/// The threads collecting a command's stdout and stderr.
struct Output {
    out: std::thread::JoinHandle<Kept>,
    err: std::thread::JoinHandle<Kept>,
}

impl Output {
    /// Both streams, waiting at most half a second for each: a background
    /// process may hold a pipe open long after the command ended.
    fn collect(self) -> (Kept, Kept) {
        let join = |h: std::thread::JoinHandle<Kept>| {
            let until = Instant::now() + Duration::from_millis(500);
            while !h.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                h.join().unwrap_or_default()
            } else {
                (b"[output still open in a background process]".to_vec(), 0)
            }
        };
        (join(self.out), join(self.err))
    }
}

/// Three pipes for a command: its ends (stdin, stdout, stderr, to send
/// along with the exec request), a thread feeding it `stdin`, and threads
/// keeping `limit` bytes of each output (head and tail).
fn piped(stdin: Vec<u8>, limit: usize) -> std::io::Result<([std::os::fd::OwnedFd; 3], Output)> {
    let (in_r, mut in_w) = std::io::pipe()?;
    let (out_r, out_w) = std::io::pipe()?;
    let (err_r, err_w) = std::io::pipe()?;
    // Not waited for: a command that never reads its stdin must not hold
    // us up (the write fails once the command is gone).
    std::thread::spawn(move || {
        let _ = in_w.write_all(&stdin);
    });
    let output = Output {
        out: std::thread::spawn(move || capture_output(out_r, limit)),
        err: std::thread::spawn(move || capture_output(err_r, limit)),
    };
    Ok(([in_r.into(), out_w.into(), err_w.into()], output))
}

/// Connect to `meta`'s supervisor (starting it) and send an exec request
/// with the command's stdin, stdout and stderr.
fn send_exec(
    store: &Store,
    meta: &Meta,
    argv: Vec<String>,
    cwd: Option<PathBuf>,
    caller: paddock_audit::Caller,
    stdio: &[std::os::fd::BorrowedFd<'_>],
) -> Result<UnixStream, CliError> {
    // Validated here too, so the caller gets the field, not a lost session.
    paddock_protocol::check_argv(&argv, "argv")
        .and_then(|()| match &cwd {
            Some(c) => paddock_protocol::check_no_nul(&c.to_string_lossy(), "cwd"),
            None => Ok(()),
        })
        .map_err(|e| {
            CliError::new(
                "BAD_REQUEST",
                e.to_string(),
                "a command line cannot carry a NUL byte; remove it",
            )
        })?;
    let sock = ensure_supervisor(store, meta)?;
    let conn = UnixStream::connect(&sock).map_err(io_err("connecting to the session"))?;
    let payload = serde_json::to_vec(&ControlRequest::Exec {
        argv,
        cwd,
        caller,
        capture: false,
        stdin: None,
    })
    .unwrap_or_default();
    paddock_sys::send_fds(conn.as_fd(), stdio, &payload).map_err(io_err("sending the command"))?;
    Ok(conn)
}

/// The error of an exec that could not start.
fn exec_failed(code: i32, message: String) -> CliError {
    CliError {
        code: ExecEvent::failure_reason(code),
        message,
        fix: String::new(),
        exit: code,
        raw: false,
    }
}

/// Keep the first and last `limit / 2` bytes of what `r` produces.
fn capture_output(mut r: impl std::io::Read, limit: usize) -> (Vec<u8>, u64) {
    let half = limit / 2;
    let mut head = Vec::new();
    let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let mut dropped = 0u64;
    let mut buf = [0u8; 8192];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if head.len() < half {
                head.push(b);
            } else {
                tail.push_back(b);
                if tail.len() > half {
                    tail.pop_front();
                    dropped += 1;
                }
            }
        }
    }
    if dropped > 0 {
        head.extend_from_slice(format!("\n[… {dropped} bytes left out …]\n").as_bytes());
    }
    head.extend(tail);
    (head, dropped)
}

/// Run one command in the session with `stdin` as its input, collecting
/// its output (for programs driving paddock: the MCP server). The command
/// is killed after `timeout`. Safe to call from any thread: no signal
/// handling is touched.
pub fn exec_captured(store: &Store, meta: &Meta, r: CaptureRequest) -> Result<Captured, CliError> {
    let CaptureRequest {
        argv,
        cwd,
        caller,
        stdin,
        timeout,
        limit,
    } = r;
    let (ends, output) = piped(stdin, limit).map_err(io_err("pipe"))?;
    let conn = send_exec(
        store,
        meta,
        argv,
        cwd,
        caller,
        &[ends[0].as_fd(), ends[1].as_fd(), ends[2].as_fd()],
    )?;
    drop(ends);
    let deadline = Instant::now() + timeout;
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reader = BufReader::new(conn.try_clone().map_err(io_err("session"))?);
    let mut timed_out = false;
    let mut line = String::new();
    let result = loop {
        if !timed_out && Instant::now() >= deadline {
            timed_out = true;
            // The command and everything it started in its group.
            let _ = (&conn).write_all(format!("signal-group {}\n", libc::SIGKILL).as_bytes());
        }
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => {
                break Err(CliError::new(
                    "SESSION_LOST",
                    format!("session {} ended while the command ran", meta.label()),
                    "see its supervisor.log",
                ))
            }
            Ok(_) => match serde_json::from_str::<ExecEvent>(&line) {
                Ok(ExecEvent::Exited { code, .. }) => break Ok(code),
                Ok(ExecEvent::Failed { code, message, .. }) => {
                    break Err(exec_failed(code, message))
                }
                _ => {}
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => break Err(io_err("session")(e)),
        }
    };
    let ((stdout, t1), (stderr, t2)) = output.collect();
    let code = result?;
    Ok(Captured {
        code: if timed_out { 124 } else { code },
        stdout,
        stderr,
        truncated: t1 + t2,
        timed_out,
    })
}
